//! The PostgreSQL engine's own background work, started by [`PostgresStore::connect`] and stopped when
//! the store is dropped (as pict-rs's postgres repo keeps its notification task): an embedder's
//! watchers see every replica's changes, and old events and keys are forgotten, with no loop of its
//! own.
//!
//! - The publisher gives positions to committed events after every write through this replica, and
//!   every [`PUBLISH_EVERY`] for the others' (what bounds how late a watcher here sees a change made
//!   through another replica).
//! - The upkeep forgets change-log events and idempotency keys past their [`Retention`], a batch at a
//!   time, every [`Retention::upkeep_every`].

use std::time::Duration;

use tokio::task::JoinHandle;

use super::PostgresStore;
use crate::domain::Timestamp;
use crate::store::{ChangeLog, ClaimStore, Retention};
use crate::store::{History, RecycleBin};

/// How often the change log is published when nothing is written through this replica.
pub const PUBLISH_EVERY: Duration = Duration::from_millis(100);

/// The running tasks; aborted when dropped.
pub(super) struct Tasks(Vec<JoinHandle<()>>);

impl Tasks {
    /// Starts the publisher and the upkeep over handles on `store`; `others` (the batchers of group commit)
    /// are stopped with them.
    pub(super) fn start(store: &PostgresStore, others: Vec<JoinHandle<()>>) -> Self {
        let mut tasks = vec![tokio::spawn(publish(store.handle())), tokio::spawn(upkeep(store.handle()))];
        tasks.extend(others);
        Tasks(tasks)
    }

    /// Stops every task now.
    pub(super) fn stop(&self) {
        self.0.iter().for_each(JoinHandle::abort);
    }
}

impl Drop for Tasks {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Publishes the change log after every write through this replica, and every [`PUBLISH_EVERY`].
async fn publish(store: PostgresStore) {
    loop {
        // Listening before publishing, so that a write during it is not missed.
        let written = store.written.listen();
        if let Err(err) = store.publish_changes().await {
            tracing::warn!(error = %err, "cannot publish the change log");
        }
        let _ = tokio::time::timeout(PUBLISH_EVERY, written).await;
    }
}

/// Forgets what is past its retention, now and then.
async fn upkeep(store: PostgresStore) {
    let retention = store.options.retention;
    let mut ticks = tokio::time::interval(retention.upkeep_every());
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let now = Timestamp::now();
        let claims = drain(|| store.prune_claims(retention.claims_before(now), Retention::BATCH)).await;
        report("idempotency keys", claims);
        let events = drain(|| store.prune_changes(retention.changes_before(now), Retention::BATCH)).await;
        report("change log events", events);
        report("revisions", store.prune_history(now, Retention::BATCH).await);
        report("deleted chatbots", drain(|| store.purge_expired(now, Retention::BATCH)).await);
    }
}

/// Runs `prune` until a batch comes back short; how many were forgotten in all.
async fn drain<F>(mut prune: impl FnMut() -> F) -> crate::error::Result<usize>
where
    F: std::future::Future<Output = crate::error::Result<usize>>,
{
    let mut pruned = 0;
    loop {
        let count = prune().await?;
        pruned += count;
        if count < Retention::BATCH {
            return Ok(pruned);
        }
    }
}

fn report(what: &str, pruned: crate::error::Result<usize>) {
    match pruned {
        Ok(0) => {}
        Ok(pruned) => tracing::info!(pruned, "forgot {what} past their retention"),
        Err(err) => tracing::warn!(error = %err, "cannot prune {what}"),
    }
}
