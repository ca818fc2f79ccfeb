//! The change log on PostgreSQL. Writers insert an event in the same transaction as their change,
//! with no position yet: positions are not taken by writers, because a position taken inside a
//! transaction may commit after a later one, and a watcher that had read the later one would skip it.
//! Instead, publishing gives positions after the fact, to events already committed, one run at a
//! time (each run holds the lock on the log's one row), in the order they were inserted: every
//! position is visible the moment it exists, and positions have no gaps. A writer inserts its event
//! after taking its chatbot's row lock, so two changes of one chatbot are published in the order they
//! committed. Any replica may publish; each does after its own writes and every 100 ms.

use std::collections::HashSet;

use tokio_postgres::Row;
use tokio_postgres::types::{Json, ToSql};

use super::{Failure, PostgresStore, column};
use crate::changes::{ChangeKind, ChangeSignal, ChatbotEvent};
use crate::domain::{ChatbotId, OrgId, Timestamp, VersionId};
use crate::error::{Error, Result};
use crate::store::{ChangeLog, StoreFuture};

/// Events published per run, at most.
const PUBLISH_BATCH: i64 = 1000;
/// Events published by other replicas since a run last looked, at most, whose organisations a run
/// looks up to wake only their watchers; beyond it, it wakes every watcher.
const ELSEWHERE_NAMED: i64 = 10_000;

/// Inserts `event` (unpositioned) in the transaction of its change.
pub(super) async fn log(client: &impl deadpool_postgres::GenericClient, event: &ChatbotEvent) -> Result<(), Failure> {
    let statement = client
        .prepare_cached(
            "INSERT INTO chatbotd_changes (organisation_id, chatbot_id, kind, revision, etag, changed_at, version_id, changed)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .await?;
    let revision = i64::try_from(event.revision).map_err(Error::storage)?;
    let version = event.version_id.map(|version| *version.as_uuid());
    let changed = Json(&event.changed);
    let params: [&(dyn ToSql + Sync); 8] = [
        event.organization_id.as_uuid(),
        event.chatbot_id.as_uuid(),
        &event.kind.as_str(),
        &revision,
        &event.etag,
        &event.at.to_datetime(),
        &version,
        &changed,
    ];
    client.execute(&statement, &params).await?;
    Ok(())
}

fn position(value: i64) -> Result<u64> {
    u64::try_from(value).map_err(Error::storage)
}

fn event_from_row(row: &Row) -> Result<ChatbotEvent> {
    let name = column::<String>(row, 3)?;
    let kind = ChangeKind::parse(&name).ok_or_else(|| Error::storage(format!("unknown change kind {name:?}")))?;
    Ok(ChatbotEvent {
        position: position(column(row, 0)?)?,
        organization_id: OrgId::from_uuid(column(row, 1)?),
        chatbot_id: ChatbotId::from_uuid(column(row, 2)?),
        kind,
        revision: position(column(row, 4)?)?,
        etag: column(row, 5)?,
        at: Timestamp::from_datetime(column(row, 6)?),
        version_id: column::<Option<uuid::Uuid>>(row, 7)?.map(VersionId::from_uuid),
        changed: column::<Option<Json<Vec<String>>>>(row, 8)?.map(|Json(paths)| paths).unwrap_or_default(),
    })
}

impl PostgresStore {
    /// Up to `limit` published events of `org` (of every organisation when `None`) after `after`.
    pub(super) async fn changes_now(
        &self,
        org: Option<OrgId>,
        after: u64,
        limit: usize,
    ) -> Result<Vec<ChatbotEvent>, Failure> {
        let client = self.client().await?;
        let after_i64 = i64::try_from(after).map_err(Error::storage)?;
        let limit = i64::try_from(limit).map_err(Error::storage)?;
        let rows = match org {
            Some(org) => {
                let statement = client
                    .prepare_cached(
                        "SELECT position, organisation_id, chatbot_id, kind, revision, etag, changed_at, version_id,
                            changed
                         FROM chatbotd_changes WHERE organisation_id = $1 AND position > $2 ORDER BY position LIMIT $3",
                    )
                    .await?;
                client.query(&statement, &[org.as_uuid(), &after_i64, &limit]).await?
            }
            None => {
                let statement = client
                    .prepare_cached(
                        "SELECT position, organisation_id, chatbot_id, kind, revision, etag, changed_at, version_id,
                            changed
                         FROM chatbotd_changes WHERE position > $1 ORDER BY position LIMIT $2",
                    )
                    .await?;
                client.query(&statement, &[&after_i64, &limit]).await?
            }
        };
        let events = rows.iter().map(event_from_row).collect::<Result<Vec<_>>>()?;
        // Read after the events: the head only grows, and a prune since shows in `kept_from`.
        let log = client.query_one("SELECT head, kept_from FROM chatbotd_change_log WHERE singleton", &[]).await?;
        let (head, kept_from) = (position(column(&log, 0)?)?, position(column(&log, 1)?)?);
        if after > head || after + 1 < kept_from {
            return Err(Failure::Fail(Error::ResyncRequired));
        }
        Ok(events)
    }

    /// Gives positions to the committed events that have none, then advances the signal to the log's
    /// head, waking the watchers of the organisations whose events it moves over.
    pub(super) async fn publish_now(&self) -> Result<(), Failure> {
        let announced = self.signal.head();
        let mut client = self.client().await?;
        let row = client
            .query_one(
                "SELECT head, EXISTS (SELECT 1 FROM chatbotd_changes WHERE position IS NULL)
                 FROM chatbotd_change_log WHERE singleton",
                &[],
            )
            .await?;
        let (mut head, pending): (i64, bool) = (column(&row, 0)?, column(&row, 1)?);
        let mut orgs = HashSet::new();
        // Where the log was before this run's own positions: what lies between `announced` and it was
        // published by another replica.
        let mut published_elsewhere = head;
        if pending {
            let tx = client.transaction().await?;
            head = column(
                &tx.query_one("SELECT head FROM chatbotd_change_log WHERE singleton FOR UPDATE", &[]).await?,
                0,
            )?;
            published_elsewhere = head;
            let pending = tx
                .query(
                    "SELECT id, organisation_id FROM chatbotd_changes WHERE position IS NULL ORDER BY id LIMIT $1",
                    &[&PUBLISH_BATCH],
                )
                .await?;
            let mut ids = Vec::with_capacity(pending.len());
            for row in &pending {
                ids.push(column::<i64>(row, 0)?);
                orgs.insert(OrgId::from_uuid(column(row, 1)?));
            }
            let positions: Vec<i64> = (1..).map(|n| head + n).take(ids.len()).collect();
            if let Some(last) = positions.last().copied() {
                tx.execute(
                    "UPDATE chatbotd_changes AS c SET position = t.position
                     FROM unnest($1::BIGINT[], $2::BIGINT[]) AS t (id, position) WHERE c.id = t.id",
                    &[&ids, &positions],
                )
                .await?;
                tx.execute("UPDATE chatbotd_change_log SET head = $1 WHERE singleton", &[&last]).await?;
                head = last;
            }
            tx.commit().await?;
        }
        let announced_i64 = i64::try_from(announced).map_err(Error::storage)?;
        let elsewhere = published_elsewhere.saturating_sub(announced_i64);
        if elsewhere > ELSEWHERE_NAMED {
            // Too many to name cheaply (a replica that was cut off, or just started): wake everyone.
            self.signal.advance_all(position(head)?);
            return Ok(());
        }
        if elsewhere > 0 {
            let rows = client
                .query(
                    "SELECT DISTINCT organisation_id FROM chatbotd_changes WHERE position > $1 AND position <= $2",
                    &[&announced_i64, &published_elsewhere],
                )
                .await?;
            for row in &rows {
                orgs.insert(OrgId::from_uuid(column(row, 0)?));
            }
        }
        self.signal.advance(position(head)?, orgs);
        Ok(())
    }

    /// Removes up to `limit` of the oldest published events written before `before`.
    pub(super) async fn prune_changes_now(&self, before: Timestamp, limit: usize) -> Result<usize, Failure> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.query_one("SELECT kept_from FROM chatbotd_change_log WHERE singleton FOR UPDATE", &[]).await?;
        let limit = i64::try_from(limit).map_err(Error::storage)?;
        let oldest = tx
            .query(
                "SELECT position, changed_at FROM chatbotd_changes WHERE position IS NOT NULL ORDER BY position LIMIT $1",
                &[&limit],
            )
            .await?;
        let mut last = None;
        for row in &oldest {
            if Timestamp::from_datetime(column(row, 1)?) >= before {
                break;
            }
            last = Some(column::<i64>(row, 0)?);
        }
        let Some(last) = last else { return Ok(0) };
        let removed =
            tx.execute("DELETE FROM chatbotd_changes WHERE position IS NOT NULL AND position <= $1", &[&last]).await?;
        tx.execute("UPDATE chatbotd_change_log SET kept_from = $1 WHERE singleton", &[&(last + 1)]).await?;
        tx.commit().await?;
        Ok(usize::try_from(removed).unwrap_or(usize::MAX))
    }
}

impl ChangeLog for PostgresStore {
    fn change_signal(&self) -> &ChangeSignal {
        &self.signal
    }

    fn changes(&self, org: OrgId, after: u64, limit: usize) -> StoreFuture<'_, Vec<ChatbotEvent>> {
        Box::pin(async move { self.with_retries(|_| self.changes_now(Some(org), after, limit)).await })
    }

    fn all_changes(&self, after: u64, limit: usize) -> StoreFuture<'_, Vec<ChatbotEvent>> {
        Box::pin(async move { self.with_retries(|_| self.changes_now(None, after, limit)).await })
    }

    fn publish_changes(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move { self.with_retries(|_| self.publish_now()).await })
    }

    fn prune_changes(&self, before: Timestamp, limit: usize) -> StoreFuture<'_, usize> {
        Box::pin(async move { self.with_retries(|_| self.prune_changes_now(before, limit)).await })
    }
}
