//! Resealing on PostgreSQL: a batch of contents read without locks, then one transaction that writes
//! back each content the closure changed, only where it is still what was read (a compare-and-set on
//! the JSON), so that a write made meanwhile is never undone and no row is locked while the closure
//! runs. A content left by the compare is sealed by the write that replaced it, or by the next pass.

use std::sync::Arc;

use deadpool_postgres::GenericClient;
use tokio_postgres::types::Json;
use uuid::Uuid;

use super::failure::Failure;
use super::{PostgresStore, column};
use crate::chatbot::{Chatbot, ChatbotConfig};
use crate::domain::ChatbotId;
use crate::error::{Error, Result};
use crate::history::DeletedChatbot;
use crate::store::{Reseal, ResealBatch, ResealCursor, Resealing, SealingMark, StoreFuture};

use super::chatbots::{COLUMNS, chatbot_from_row_at};

/// One content to write back: the statement's key columns, the content as read and as resealed.
struct Rewrite {
    sql: &'static str,
    id: Uuid,
    revision: Option<i64>,
    read: serde_json::Value,
    resealed: serde_json::Value,
}

fn json<T: serde::Serialize>(value: &T) -> Result<serde_json::Value> {
    serde_json::to_value(value).map_err(Error::storage)
}

impl PostgresStore {
    async fn reseal_now(&self, from: ResealCursor, limit: usize, reseal: &Reseal) -> Result<ResealBatch, Failure> {
        let mut client = self.client().await?;
        let after = from.after.map_or(Uuid::nil(), |id| *id.as_uuid());
        let count = i64::try_from(limit).map_err(Error::storage)?;
        let mut rewrites = Vec::new();
        let mut ids = Vec::new();
        let mut contents = 0;
        if from.deleted {
            let sql = "SELECT id, record FROM deleted_chatbots WHERE id > $1 ORDER BY id LIMIT $2";
            for row in client.query(sql, &[&after, &count]).await? {
                let (id, Json(read)): (Uuid, Json<serde_json::Value>) = (column(&row, 0)?, column(&row, 1)?);
                ids.push(ChatbotId::from_uuid(id));
                contents += 1;
                let mut deleted: DeletedChatbot = serde_json::from_value(read.clone()).map_err(Error::storage)?;
                if reseal(&mut deleted.chatbot) {
                    let sql = "UPDATE deleted_chatbots SET record = $3 WHERE id = $1 AND record = $2";
                    rewrites.push(Rewrite { sql, id, revision: None, read, resealed: json(&deleted)? });
                }
            }
        } else {
            let sql = format!("SELECT config, {COLUMNS} FROM chatbots WHERE id > $1 ORDER BY id LIMIT $2");
            for row in client.query(&sql, &[&after, &count]).await? {
                let Json(read): Json<serde_json::Value> = column(&row, 0)?;
                let mut chatbot: Chatbot = chatbot_from_row_at(&row, 1)?;
                ids.push(chatbot.id);
                contents += 1;
                if reseal(&mut chatbot) {
                    let sql = "UPDATE chatbots SET config = $3 WHERE id = $1 AND config = $2";
                    let resealed = json::<ChatbotConfig>(&chatbot.config)?;
                    rewrites.push(Rewrite { sql, id: *chatbot.id.as_uuid(), revision: None, read, resealed });
                }
            }
        }
        let uuids: Vec<Uuid> = ids.iter().map(|id| *id.as_uuid()).collect();
        let sql = "SELECT chatbot_id, revision, snapshot FROM chatbot_revisions
                   WHERE chatbot_id = ANY($1) AND snapshot IS NOT NULL";
        for row in client.query(sql, &[&uuids]).await? {
            let (id, revision, Json(read)): (Uuid, i64, Json<serde_json::Value>) =
                (column(&row, 0)?, column(&row, 1)?, column(&row, 2)?);
            contents += 1;
            let mut content: Chatbot = serde_json::from_value(read.clone()).map_err(Error::storage)?;
            if reseal(&mut content) {
                let sql = "UPDATE chatbot_revisions SET snapshot = $4 WHERE chatbot_id = $1 AND revision = $2 AND snapshot = $3";
                rewrites.push(Rewrite { sql, id, revision: Some(revision), read, resealed: json(&content)? });
            }
        }
        let mut rewritten = 0;
        if !rewrites.is_empty() {
            let tx = client.transaction().await?;
            for rewrite in &rewrites {
                let (read, resealed) = (Json(&rewrite.read), Json(&rewrite.resealed));
                let statement = tx.prepare_cached(rewrite.sql).await?;
                rewritten += match rewrite.revision {
                    Some(revision) => tx.execute(&statement, &[&rewrite.id, &revision, &read, &resealed]).await?,
                    None => tx.execute(&statement, &[&rewrite.id, &read, &resealed]).await?,
                };
            }
            tx.commit().await?;
        }
        let rewritten = usize::try_from(rewritten).map_err(Error::storage)?;
        Ok(ResealBatch { next: from.after_batch(&ids, limit), contents, rewritten })
    }
}

impl Resealing for PostgresStore {
    fn reseal(&self, from: ResealCursor, limit: usize, reseal: Arc<Reseal>) -> StoreFuture<'_, ResealBatch> {
        Box::pin(async move { self.with_retries(|_| self.reseal_now(from, limit.max(1), reseal.as_ref())).await })
    }

    /// None: replicas take the census at each start (reading, never resealing), so there is nothing a
    /// mark would let them skip that one replica could vouch for on behalf of the others.
    fn sealing_mark(&self) -> StoreFuture<'_, Option<SealingMark>> {
        Box::pin(std::future::ready(Ok(None)))
    }

    fn mark_sealed(&self, _mark: SealingMark) -> StoreFuture<'_, ()> {
        Box::pin(std::future::ready(Ok(())))
    }
}
