//! What the sled engine forgets by itself: change-log events, idempotency keys and revisions past
//! their [`Retention`]. Each prune is found with a read, then removed as one change of the writer (so the
//! writer only spends the time to remove them), between the batches of writes, as long as the store
//! is open: an embedder needs no loop of its own.

use std::time::{Duration, Instant};

use super::changes;
use super::claims::{claim_time_prefix, decode_claim};
use super::writer::{Job, Tx, job};
use crate::domain::Timestamp;
use crate::error::{Error, Result};
use crate::store::Retention;

/// How many records a prune found, and the change that forgets them.
pub(super) type Prune<F> = Option<(usize, F)>;

/// The change that forgets up to `limit` idempotency keys claimed before `before`, if there are any.
pub(super) fn prune_claims(
    tree: &sled::Tree,
    before: Timestamp,
    limit: usize,
) -> Result<Prune<impl FnOnce(&mut Tx<'_>) -> Result<usize> + Send + 'static>> {
    let stale = tree.range(claim_time_prefix(Timestamp::from_micros(0))..claim_time_prefix(before));
    let stale: Vec<sled::IVec> = stale.keys().take(limit).collect::<sled::Result<_>>()?;
    if stale.is_empty() {
        return Ok(None);
    }
    Ok(Some((stale.len(), move |tx: &mut Tx<'_>| {
        let count = stale.len();
        for time_key in stale {
            // `t` | time (8) | organisation (16) | key: the record it indexes is pruned unless a newer
            // claim of the same key has replaced it.
            let (at, rest) = time_key[1..].split_at(8);
            let at = Timestamp::from_micros(u64::from_be_bytes(at.try_into().map_err(Error::storage)?) as i64);
            let record_key = [b"i".as_slice(), rest].concat();
            if let Some(bytes) = tx.get(&record_key)?
                && decode_claim(&bytes)?.at == at
            {
                tx.remove(record_key);
            }
            tx.remove(time_key.to_vec());
        }
        Ok(count)
    })))
}

/// The change that forgets up to `limit` of the oldest events written before `before` (none past the
/// log's `head`), if there are any.
pub(super) fn prune_changes(
    tree: &sled::Tree,
    before: Timestamp,
    head: u64,
    limit: usize,
) -> Result<Prune<impl FnOnce(&mut Tx<'_>) -> Result<usize> + Send + 'static>> {
    let keys = changes::prunable(tree, before, head, limit)?;
    let Some(last) = keys.iter().filter_map(|key| changes::position_of(key)).max() else { return Ok(None) };
    let count = keys.len() / 2;
    Ok(Some((count, move |tx: &mut Tx<'_>| {
        keys.into_iter().for_each(|key| tx.remove(key));
        tx.insert(changes::KEPT_FROM_KEY, (last + 1).to_be_bytes().to_vec());
        Ok(count)
    })))
}

/// The writer's upkeep: when it is due, and the changes it makes then.
pub(super) struct Upkeep {
    retention: Retention,
    due: Instant,
    /// Where the next pass over revisions starts (empty: at the first).
    history_from: Vec<u8>,
}

/// Chatbots whose revisions one upkeep reads: a pass over a large store takes many upkeeps, which is
/// fine for history kept by the month.
const HISTORY_CHATBOTS_PER_UPKEEP: usize = 1000;

impl Upkeep {
    /// Upkeep keeping what `retention` says, first due one period from now.
    pub(super) fn new(retention: Retention) -> Self {
        Upkeep { retention, due: Instant::now() + retention.upkeep_every(), history_from: Vec::new() }
    }

    /// How long until the upkeep is due.
    pub(super) fn due_in(&self) -> Duration {
        self.due.saturating_duration_since(Instant::now())
    }

    /// The changes that prune what is due now, reading the log up to `head`; due again at once while a
    /// prune meets its batch limit (there is more), else one period later.
    pub(super) fn jobs(&mut self, tree: &sled::Tree, head: u64) -> Vec<Job> {
        let now = Timestamp::now();
        let limit = Retention::BATCH;
        let mut more = false;
        let mut jobs = Vec::new();
        match prune_claims(tree, self.retention.claims_before(now), limit) {
            Ok(Some((found, prune))) => {
                more |= found == limit;
                jobs.push(job(prune, report("idempotency keys")));
            }
            Ok(None) => {}
            Err(err) => tracing::warn!(error = %err, "cannot prune idempotency keys"),
        }
        match prune_changes(tree, self.retention.changes_before(now), head, limit) {
            Ok(Some((found, prune))) => {
                more |= found == limit;
                jobs.push(job(prune, report("change log events")));
            }
            Ok(None) => {}
            Err(err) => tracing::warn!(error = %err, "cannot prune the change log"),
        }
        match super::bin::expired(tree, now, limit) {
            Ok(Some((found, purge))) => {
                more |= found == limit;
                jobs.push(job(purge, report("deleted chatbots")));
            }
            Ok(None) => {}
            Err(err) => tracing::warn!(error = %err, "cannot purge deleted chatbots"),
        }
        let history = self.retention.history;
        match super::history::prunable(tree, history, now, &self.history_from, HISTORY_CHATBOTS_PER_UPKEEP) {
            Ok((found, next)) => {
                self.history_from = next.unwrap_or_default();
                if !found.is_empty() {
                    jobs.push(job(move |tx: &mut Tx<'_>| super::history::forget(tx, found), report("revisions")));
                }
            }
            Err(err) => tracing::warn!(error = %err, "cannot prune revisions"),
        }
        // A full batch means more may be waiting: due again at once (after the writes queued meanwhile).
        self.due = if more { Instant::now() } else { Instant::now() + self.retention.upkeep_every() };
        jobs
    }
}

/// What to do once a prune of `what` is on disk: say how many were forgotten.
fn report(what: &'static str) -> impl FnOnce(Result<usize>) + Send + 'static {
    move |pruned| match pruned {
        Ok(0) => {}
        Ok(pruned) => tracing::info!(pruned, "forgot {what} past their retention"),
        Err(err) => tracing::warn!(error = %err, "cannot prune {what}"),
    }
}
