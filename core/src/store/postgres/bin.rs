//! The `deleted_chatbots` table: deleted chatbots kept for undelete until `purge_at`, their slugs
//! reserved against other organisations meanwhile, their images (in `avatars`) withheld from the
//! public route. Each operation is one transaction with its revision, its event and its claim.

use deadpool_postgres::GenericClient;
use tokio_postgres::types::Json;
use uuid::Uuid;

use super::avatars::remove_avatars;
use super::chatbots::{Logged, insert};
use super::claims::{check_claim, commit, record_claim};
use super::failure::Failure;
use super::{PostgresStore, changes, column, history};
use crate::changes::{ChangeKind, ChatbotEvent};
use crate::chatbot::Chatbot;
use crate::domain::{ChatbotId, OrgId, Timestamp};
use crate::error::{Error, Result};
use crate::history::{DeletedChatbot, Revision};
use crate::idempotency::{Outcome, Written};
use crate::store::{Filter, PageCursor, RecycleBin, StoreFuture, Undeletion};

/// Which of `slugs` another organisation's deleted chatbot (not yet purged) reserves from `org`.
pub(super) async fn reserved(client: &impl GenericClient, slugs: &[&str], org: OrgId) -> Result<Vec<String>, Failure> {
    let statement = client
        .prepare_cached(
            "SELECT slug FROM deleted_chatbots WHERE slug = ANY($1) AND organisation_id <> $2 AND purge_at > now()",
        )
        .await?;
    let rows = client.query(&statement, &[&slugs, org.as_uuid()]).await?;
    Ok(rows.iter().map(|row| column(row, 0)).collect::<Result<_>>()?)
}

/// Puts `deleted` in the bin.
pub(super) async fn put_deleted(client: &impl GenericClient, deleted: &DeletedChatbot) -> Result<(), Failure> {
    let statement = client
        .prepare_cached(
            "INSERT INTO deleted_chatbots (id, organisation_id, slug, is_public, active, created_at, purge_at, record)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .await?;
    let chatbot = &deleted.chatbot;
    let config = &chatbot.config;
    client
        .execute(
            &statement,
            &[
                chatbot.id.as_uuid(),
                chatbot.organization_id.as_uuid(),
                &config.slug.as_str(),
                &config.is_public,
                &config.active,
                &chatbot.created_at.to_datetime(),
                &deleted.purge_time.to_datetime(),
                &Json(deleted),
            ],
        )
        .await?;
    Ok(())
}

/// Every avatar image `chatbot` or a revision of it points at.
pub(super) async fn images(client: &impl GenericClient, chatbot: &Chatbot) -> Result<Vec<Uuid>, Failure> {
    let statement = client.prepare_cached("SELECT meta FROM chatbot_revisions WHERE chatbot_id = $1").await?;
    let rows = client.query(&statement, &[chatbot.id.as_uuid()]).await?;
    let mut images: Vec<Uuid> = Vec::new();
    for row in &rows {
        let Json(revision): Json<Revision> = column(row, 0)?;
        images.extend(revision.avatar.map(|avatar| *avatar.id.as_uuid()));
    }
    images.extend(chatbot.config.settings.avatar.map(|avatar| *avatar.id.as_uuid()));
    images.sort_unstable();
    images.dedup();
    Ok(images)
}

/// Withholds (or serves again) images from the public route.
pub(super) async fn withhold(client: &impl GenericClient, images: &[Uuid], withheld: bool) -> Result<(), Failure> {
    if !images.is_empty() {
        let statement = client.prepare_cached("UPDATE avatars SET withheld = $2 WHERE id = ANY($1)").await?;
        client.execute(&statement, &[&images, &withheld]).await?;
    }
    Ok(())
}

/// The deleted chatbot `id` of `org`, locked for this transaction; [`Error::NotDeleted`] if it is a
/// live chatbot of `org`, [`Error::NotFound`] otherwise.
async fn deleted_of(client: &impl GenericClient, org: OrgId, id: ChatbotId) -> Result<DeletedChatbot, Failure> {
    let statement = client
        .prepare_cached("SELECT record FROM deleted_chatbots WHERE id = $1 AND organisation_id = $2 FOR UPDATE")
        .await?;
    if let Some(row) = client.query_opt(&statement, &[id.as_uuid(), org.as_uuid()]).await? {
        let Json(deleted): Json<DeletedChatbot> = column(&row, 0)?;
        return Ok(deleted);
    }
    let statement = client.prepare_cached("SELECT 1 FROM chatbots WHERE id = $1 AND organisation_id = $2").await?;
    match client.query_opt(&statement, &[id.as_uuid(), org.as_uuid()]).await? {
        Some(_) => Err(Failure::Fail(Error::NotDeleted)),
        None => Err(Failure::Fail(Error::NotFound)),
    }
}

/// Removes `deleted` (whose row this transaction has locked), its history and its images; logs
/// `purged`.
async fn purge_now(client: &impl GenericClient, deleted: &DeletedChatbot) -> Result<(), Failure> {
    let images = images(client, &deleted.chatbot).await?;
    let statement = client.prepare_cached("DELETE FROM deleted_chatbots WHERE id = $1").await?;
    client.execute(&statement, &[deleted.chatbot.id.as_uuid()]).await?;
    history::forget_all(client, deleted.chatbot.id).await?;
    remove_avatars(client, &images).await?;
    changes::log(client, &ChatbotEvent::removed(ChangeKind::Purged, &deleted.chatbot)).await
}

impl PostgresStore {
    async fn deleted_now(
        &self,
        org: OrgId,
        filter: Filter,
        after: Option<PageCursor>,
        limit: usize,
    ) -> Result<Vec<DeletedChatbot>, Failure> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "SELECT record FROM deleted_chatbots WHERE organisation_id = $1
                 AND ($2::bool IS NULL OR is_public = $2) AND ($3::bool IS NULL OR active = $3)
                 AND ($4::timestamptz IS NULL OR created_at < $4 OR (created_at = $4 AND id > $5))
                 ORDER BY created_at DESC, id LIMIT $6",
            )
            .await?;
        let at = after.map(|cursor| cursor.created_at().to_datetime());
        let id = after.map_or(Uuid::nil(), |cursor| *cursor.id().as_uuid());
        let limit = i64::try_from(limit).map_err(Error::storage)?;
        let rows =
            client.query(&statement, &[org.as_uuid(), &filter.is_public, &filter.active, &at, &id, &limit]).await?;
        Ok(rows.iter().map(|row| column::<Json<DeletedChatbot>>(row, 0).map(|Json(d)| d)).collect::<Result<_>>()?)
    }

    async fn undelete_attempt(&self, undeletion: &Undeletion, attempt: u32) -> Result<Written<Chatbot>, Failure> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let org = undeletion.org;
        if let Some(claim) = &undeletion.claim
            && let Some(outcome) = check_claim(&tx, org, claim).await?
        {
            return Ok(outcome.replayed_chatbot()?);
        }
        let deleted = deleted_of(&tx, org, undeletion.id).await?;
        let (chatbot, revision) = deleted.undeleted(undeletion.slug.clone(), undeletion.provenance.clone());
        let slug = &chatbot.config.slug;
        let taken = || Failure::Fail(Error::SlugTaken { slug: slug.to_string() });
        if !reserved(&tx, &[slug.as_str()], org).await?.is_empty() {
            return Err(taken());
        }
        let statement = tx.prepare_cached("DELETE FROM deleted_chatbots WHERE id = $1").await?;
        tx.execute(&statement, &[chatbot.id.as_uuid()]).await?;
        if !insert(&tx, &chatbot, slug, Logged::No).await? {
            return Err(taken());
        }
        // Its head revision (`undeleted`) and its publication, which the insert does not set.
        let statement = tx
            .prepare_cached(
                "UPDATE chatbots SET head = $2, published_revision = $3, published_version = $4 WHERE id = $1",
            )
            .await?;
        let published = chatbot.published.map(|p| i64::try_from(p.revision)).transpose().map_err(Error::storage)?;
        let version = chatbot.published.map(|p| *p.version_id.as_uuid());
        tx.execute(&statement, &[chatbot.id.as_uuid(), &Json(&revision), &published, &version]).await?;
        withhold(&tx, &images(&tx, &chatbot).await?, false).await?;
        changes::log(&tx, &ChatbotEvent::of_revision(&revision, Some(chatbot.etag()))).await?;
        if let Some(claim) = &undeletion.claim {
            record_claim(&tx, org, claim, Outcome::Chatbot(Box::new(chatbot.clone()))).await?;
        }
        self.maybe_inject_failure(&tx, attempt).await?;
        commit(self, tx, org, undeletion.claim.as_ref()).await?;
        Ok(Written::fresh(chatbot))
    }

    async fn purge_attempt(&self, org: OrgId, id: ChatbotId) -> Result<(), Failure> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let deleted = deleted_of(&tx, org, id).await?;
        purge_now(&tx, &deleted).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn purge_expired_now(&self, now: Timestamp, limit: usize) -> Result<usize, Failure> {
        let mut client = self.client().await?;
        let statement = client
            .prepare_cached("SELECT id FROM deleted_chatbots WHERE purge_at < $1 ORDER BY purge_at LIMIT $2")
            .await?;
        let limit = i64::try_from(limit).map_err(Error::storage)?;
        let ids: Vec<Uuid> = client
            .query(&statement, &[&now.to_datetime(), &limit])
            .await?
            .iter()
            .map(|row| column(row, 0))
            .collect::<Result<_>>()?;
        let mut purged = 0;
        for id in ids {
            let tx = client.transaction().await?;
            let statement = tx
                .prepare_cached("SELECT record FROM deleted_chatbots WHERE id = $1 AND purge_at < $2 FOR UPDATE")
                .await?;
            // Undeleted since the read: nothing to do.
            if let Some(row) = tx.query_opt(&statement, &[&id, &now.to_datetime()]).await? {
                let Json(deleted): Json<DeletedChatbot> = column(&row, 0)?;
                purge_now(&tx, &deleted).await?;
                purged += 1;
            }
            tx.commit().await?;
        }
        Ok(purged)
    }
}

impl RecycleBin for PostgresStore {
    fn deleted(
        &self,
        org: OrgId,
        filter: Filter,
        after: Option<PageCursor>,
        limit: usize,
    ) -> StoreFuture<'_, Vec<DeletedChatbot>> {
        Box::pin(async move { self.with_retries(|_| self.deleted_now(org, filter, after, limit)).await })
    }

    fn undelete(&self, undeletion: Undeletion) -> StoreFuture<'_, Written<Chatbot>> {
        Box::pin(
            async move { self.written(self.with_retries(|attempt| self.undelete_attempt(&undeletion, attempt)).await) },
        )
    }

    fn purge(&self, org: OrgId, id: ChatbotId) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let purged = self.with_retries(|_| self.purge_attempt(org, id)).await;
            self.written(purged.map(Written::fresh)).map(|written| written.value)
        })
    }

    fn purge_expired(&self, now: Timestamp, limit: usize) -> StoreFuture<'_, usize> {
        Box::pin(async move { self.with_retries(|_| self.purge_expired_now(now, limit)).await })
    }
}
