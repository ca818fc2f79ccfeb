//! Revisions on PostgreSQL. The head revision's record (who, why, what it changed) is the `head`
//! column of the chatbot's own row, beside its content, so that a create writes one row; the
//! `chatbot_revisions` table holds the revisions before the head, each with its content, one row per
//! update, written in the update's statement (see `chatbots.rs`).

use deadpool_postgres::GenericClient;
use tokio_postgres::types::Json;
use uuid::Uuid;

use super::chatbots::{COLUMNS, chatbot_from_row_at};
use super::failure::Failure;
use super::{PostgresStore, column};
use crate::chatbot::Chatbot;
use crate::domain::{ChatbotId, OrgId, Timestamp};
use crate::error::{Error, Result};
use crate::history::{Pruning, Revision, RevisionRef, RevisionSnapshot, StoredRevision};
use crate::store::{History, StoreFuture};

fn number(revision: u64) -> Result<i64> {
    i64::try_from(revision).map_err(Error::storage)
}

/// The head revision of `chatbot` from its row's `head` column: as recorded, or, for a chatbot stored
/// before history was kept, its unrecorded revision.
pub(super) fn head_of(chatbot: &Chatbot, head: Option<Json<Revision>>) -> Revision {
    head.map_or_else(|| Revision::unrecorded(chatbot), |Json(head)| head)
}

/// Stores a revision as given: a head's (no content) in its chatbot's row, an older one as a row of
/// its own (imports, and the `deleted` revision of a delete).
pub(super) async fn put(client: &impl GenericClient, stored: &StoredRevision) -> Result<(), Failure> {
    let revision = &stored.revision;
    let Some(snapshot) = stored.snapshot.as_deref() else {
        let statement = client.prepare_cached("UPDATE chatbots SET head = $2 WHERE id = $1").await?;
        client.execute(&statement, &[revision.chatbot_id.as_uuid(), &Json(revision)]).await?;
        return Ok(());
    };
    let statement = client
        .prepare_cached(
            "INSERT INTO chatbot_revisions (chatbot_id, revision, version_id, created_at, meta, snapshot)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .await?;
    client
        .execute(
            &statement,
            &[
                revision.chatbot_id.as_uuid(),
                &number(revision.revision)?,
                revision.version_id.as_uuid(),
                &revision.create_time.to_datetime(),
                &Json(revision),
                &Json(snapshot),
            ],
        )
        .await?;
    Ok(())
}

/// Keeps `current`, the head leaving its row (a delete), as a revision with its content.
pub(super) async fn keep_head(client: &impl GenericClient, current: &Chatbot, head: Revision) -> Result<(), Failure> {
    put(client, &StoredRevision { revision: head, snapshot: Some(Box::new(current.clone())) }).await
}

/// Removes every revision of chatbot `id`; returns them.
pub(super) async fn forget_all(client: &impl GenericClient, id: ChatbotId) -> Result<Vec<Revision>, Failure> {
    let statement = client.prepare_cached("DELETE FROM chatbot_revisions WHERE chatbot_id = $1 RETURNING meta").await?;
    let rows = client.query(&statement, &[id.as_uuid()]).await?;
    Ok(rows.iter().map(|row| column::<Json<Revision>>(row, 0).map(|Json(r)| r)).collect::<Result<_>>()?)
}

impl PostgresStore {
    /// The chatbot `id` and its head revision if `org` owns it, live (`Some`), or deleted and kept
    /// (`None`: every revision of a deleted chatbot has a row, with its content).
    async fn owned_now(
        &self,
        client: &impl GenericClient,
        org: OrgId,
        id: ChatbotId,
    ) -> Result<Option<(Chatbot, Revision)>, Failure> {
        let sql = format!("SELECT head, {COLUMNS} FROM chatbots WHERE id = $1 AND organisation_id = $2");
        let statement = client.prepare_cached(&sql).await?;
        if let Some(row) = client.query_opt(&statement, &[id.as_uuid(), org.as_uuid()]).await? {
            let chatbot = chatbot_from_row_at(&row, 1)?;
            let head = head_of(&chatbot, column(&row, 0)?);
            return Ok(Some((chatbot, head)));
        }
        let statement =
            client.prepare_cached("SELECT 1 FROM deleted_chatbots WHERE id = $1 AND organisation_id = $2").await?;
        match client.query_opt(&statement, &[id.as_uuid(), org.as_uuid()]).await? {
            Some(_) => Ok(None),
            None => Err(Error::NotFound.into()),
        }
    }

    async fn revisions_now(
        &self,
        org: OrgId,
        id: ChatbotId,
        below: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Revision>, Failure> {
        let client = self.client().await?;
        let head = self.owned_now(&client, org, id).await?.map(|(_, head)| head);
        let statement = client
            .prepare_cached(
                "SELECT meta FROM chatbot_revisions WHERE chatbot_id = $1 AND revision < $2
                 ORDER BY revision DESC LIMIT $3",
            )
            .await?;
        // History is read in a second statement, which may see a write that committed after the head
        // was read: bounding it below that head keeps the page one consistent moment.
        let bound = [below, head.as_ref().map(|head| head.revision)].into_iter().flatten().min();
        let below_number = bound.map_or(Ok(i64::MAX), number)?;
        let limit_rows = i64::try_from(limit).map_err(Error::storage)?;
        let rows = client.query(&statement, &[id.as_uuid(), &below_number, &limit_rows]).await?;
        let mut revisions: Vec<Revision> =
            rows.iter().map(|row| column::<Json<Revision>>(row, 0).map(|Json(r)| r)).collect::<Result<_>>()?;
        // The head first, when the page starts above it.
        if let Some(head) = head.filter(|head| below.is_none_or(|below| head.revision < below)) {
            revisions.insert(0, head);
            revisions.truncate(limit);
        }
        Ok(revisions)
    }

    async fn revision_now(&self, org: OrgId, id: ChatbotId, which: RevisionRef) -> Result<RevisionSnapshot, Failure> {
        let client = self.client().await?;
        // The chatbot with its head, and the older revision asked for if it is one: one statement.
        let sql = format!(
            "SELECT r.meta, r.snapshot, c.head, {} FROM chatbots c LEFT JOIN chatbot_revisions r ON r.chatbot_id = c.id
             AND (r.revision = $3 OR r.version_id = $4) WHERE c.id = $1 AND c.organisation_id = $2",
            COLUMNS.split(", ").map(|c| format!("c.{c}")).collect::<Vec<_>>().join(", ")
        );
        let statement = client.prepare_cached(&sql).await?;
        let (by_number, by_version) = match which {
            RevisionRef::Number(n) => (number(n)?, Uuid::nil()),
            RevisionRef::Version(version) => (-1, *version.as_uuid()),
        };
        let Some(row) = client.query_opt(&statement, &[id.as_uuid(), org.as_uuid(), &by_number, &by_version]).await?
        else {
            return self.deleted_revision(&client, org, id, by_number, by_version).await;
        };
        let chatbot = chatbot_from_row_at(&row, 3)?;
        let meta: Option<Json<Revision>> = column(&row, 0)?;
        let snapshot: Option<Json<Chatbot>> = column(&row, 1)?;
        if let (Some(Json(revision)), Some(Json(content))) = (meta, snapshot) {
            return Ok(RevisionSnapshot { revision, chatbot: content });
        }
        let head = head_of(&chatbot, column(&row, 2)?);
        if which == RevisionRef::Number(head.revision) || which == RevisionRef::Version(head.version_id) {
            Ok(RevisionSnapshot { revision: head, chatbot })
        } else {
            Err(Error::NotFound.into())
        }
    }

    /// A revision of a deleted chatbot (each has its content), if `org` owns it.
    async fn deleted_revision(
        &self,
        client: &impl GenericClient,
        org: OrgId,
        id: ChatbotId,
        by_number: i64,
        by_version: Uuid,
    ) -> Result<RevisionSnapshot, Failure> {
        if self.owned_now(client, org, id).await?.is_some() {
            return Err(Error::NotFound.into()); // live after all: the revision is not kept
        }
        let statement = client
            .prepare_cached(
                "SELECT meta, snapshot FROM chatbot_revisions WHERE chatbot_id = $1 AND (revision = $2 OR version_id = $3)",
            )
            .await?;
        let row =
            client.query_opt(&statement, &[id.as_uuid(), &by_number, &by_version]).await?.ok_or(Error::NotFound)?;
        let Json(revision): Json<Revision> = column(&row, 0)?;
        let snapshot: Option<Json<Chatbot>> = column(&row, 1)?;
        let Json(chatbot) = snapshot.ok_or(Error::NotFound)?;
        Ok(RevisionSnapshot { revision, chatbot })
    }

    async fn prune_history_now(&self, now: Timestamp, limit: usize) -> Result<usize, Failure> {
        let retention = self.options.retention.history;
        let mut client = self.client().await?;
        // Chatbots with more revisions than retention keeps by count, whose oldest is past its age.
        let young_from = Timestamp::from_micros(
            now.as_micros().saturating_sub(i64::try_from(retention.max_age.as_micros()).unwrap_or(i64::MAX)),
        );
        let statement = client
            .prepare_cached(
                "SELECT chatbot_id FROM chatbot_revisions GROUP BY chatbot_id
                 HAVING count(*) >= $1 AND min(created_at) < $2 LIMIT $3",
            )
            .await?;
        let keep = i64::try_from(retention.keep.max(1)).map_err(Error::storage)?;
        let limit_rows = i64::try_from(limit).map_err(Error::storage)?;
        let ids: Vec<Uuid> = client
            .query(&statement, &[&keep, &young_from.to_datetime(), &limit_rows])
            .await?
            .iter()
            .map(|row| column(row, 0))
            .collect::<Result<_>>()?;
        let mut forgotten = 0;
        for id in ids {
            let tx = client.transaction().await?;
            // The chatbot's row first, as its writers lock it: a publish waits, or is waited for.
            let sql = format!("SELECT head, {COLUMNS} FROM chatbots WHERE id = $1 FOR UPDATE");
            let statement = tx.prepare_cached(&sql).await?;
            let head = match tx.query_opt(&statement, &[&id]).await? {
                Some(row) => {
                    let chatbot = chatbot_from_row_at(&row, 1)?;
                    Some((head_of(&chatbot, column(&row, 0)?), chatbot.published.map(|p| p.revision)))
                }
                None => None,
            };
            let statement = tx
                .prepare_cached(
                    "SELECT meta FROM chatbot_revisions WHERE chatbot_id = $1 ORDER BY revision DESC FOR UPDATE",
                )
                .await?;
            let mut revisions: Vec<Revision> = tx
                .query(&statement, &[&id])
                .await?
                .iter()
                .map(|row| column::<Json<Revision>>(row, 0).map(|Json(r)| r))
                .collect::<Result<_>>()?;
            let published = head.as_ref().and_then(|(_, published)| *published);
            if let Some((head, _)) = head {
                revisions.insert(0, head);
            }
            let Pruning { revisions: numbers, images } = retention.prune(&revisions, published, now);
            let numbers: Vec<i64> = numbers.into_iter().map(number).collect::<Result<_>>()?;
            let statement = tx
                .prepare_cached(
                    "DELETE FROM chatbot_revisions WHERE chatbot_id = $1 AND revision = ANY($2) AND snapshot IS NOT NULL",
                )
                .await?;
            forgotten += tx.execute(&statement, &[&id, &numbers]).await?;
            // An image the head points at by now (a restore since) stays.
            let images: Vec<Uuid> = images.iter().map(|image| *image.id.as_uuid()).collect();
            let statement = tx
                .prepare_cached(
                    "DELETE FROM avatars WHERE id = ANY($1) AND NOT EXISTS (
                        SELECT 1 FROM chatbots WHERE id = $2 AND config->'settings'->'avatar'->>'id' = avatars.id::text)",
                )
                .await?;
            tx.execute(&statement, &[&images, &id]).await?;
            tx.commit().await?;
        }
        Ok(usize::try_from(forgotten).unwrap_or(usize::MAX))
    }
}

impl History for PostgresStore {
    fn revisions(&self, org: OrgId, id: ChatbotId, below: Option<u64>, limit: usize) -> StoreFuture<'_, Vec<Revision>> {
        Box::pin(async move { self.with_retries(|_| self.revisions_now(org, id, below, limit)).await })
    }

    fn revision(&self, org: OrgId, id: ChatbotId, which: RevisionRef) -> StoreFuture<'_, RevisionSnapshot> {
        Box::pin(async move { self.with_retries(|_| self.revision_now(org, id, which)).await })
    }

    fn prune_history(&self, now: Timestamp, limit: usize) -> StoreFuture<'_, usize> {
        Box::pin(async move { self.with_retries(|_| self.prune_history_now(now, limit)).await })
    }
}
