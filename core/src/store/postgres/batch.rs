//! Group commit for creates, as the sled writer batches what waits: creates that arrive while others
//! are being written wait in a queue, and each batcher inserts everything queued in one statement (the
//! records and their change-log events), which commits as one transaction with one WAL flush. Each
//! create still gets its own outcome: a create the batch could not take (its slug was taken, or the
//! statement failed) is handed back and goes the one-by-one way, which gives it its own 409 or error.
//!
//! Only creates without an idempotency key are batched: a keyed create claims its key in its own
//! transaction. When a batch's connection breaks, whether it committed is read back by its ids (new
//! and random, so a stored one is this batch's), so that no create is written twice or refused for a
//! slug it took itself.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures_channel::oneshot;
use tokio::sync::mpsc;
use tokio_postgres::types::Json;
use uuid::Uuid;

use super::PostgresStore;
use super::chatbots::revision;
use super::failure::Failure;
use crate::chatbot::Chatbot;
use crate::error::Result;
use crate::history::Revision;

/// Most creates in one statement.
const MAX_BATCH: usize = 256;

/// How many batches may be written at once (each on a connection of its own).
const BATCHERS: usize = 2;

/// One create waiting: the record, and where its outcome goes (`true`: inserted, committed, durable).
struct Job {
    chatbot: Chatbot,
    revision: Revision,
    inserted: oneshot::Sender<bool>,
}

/// The queues of the batchers, which a create is handed to.
#[derive(Clone)]
pub(super) struct Creates {
    queues: Arc<Vec<mpsc::UnboundedSender<Job>>>,
    next: Arc<AtomicUsize>,
}

impl Creates {
    /// The queues, and the batchers that drain them over handles on `store` (to spawn).
    pub(super) fn start(store: &PostgresStore) -> (Self, Vec<tokio::task::JoinHandle<()>>) {
        let (mut queues, mut tasks) = (Vec::new(), Vec::new());
        for _ in 0..BATCHERS {
            let (queue, jobs) = mpsc::unbounded_channel();
            queues.push(queue);
            tasks.push(tokio::spawn(run(store.handle(), jobs)));
        }
        (Creates { queues: Arc::new(queues), next: Arc::default() }, tasks)
    }

    /// Inserts `chatbot` with its exact slug in the next batch; whether it was inserted and committed.
    /// `false` means the batch could not take it (its slug was taken, or the batch failed): the caller
    /// creates it the one-by-one way, which says why.
    pub(super) async fn insert(&self, chatbot: Chatbot, revision: Revision) -> bool {
        let (inserted, outcome) = oneshot::channel();
        let queue = &self.queues[self.next.fetch_add(1, Ordering::Relaxed) % self.queues.len()];
        if queue.send(Job { chatbot, revision, inserted }).is_err() {
            return false;
        }
        outcome.await.unwrap_or(false)
    }
}

/// A batcher: takes whatever is queued, up to [`MAX_BATCH`], and writes it in one statement.
async fn run(store: PostgresStore, mut jobs: mpsc::UnboundedReceiver<Job>) {
    let mut batch = Vec::new();
    while jobs.recv_many(&mut batch, MAX_BATCH).await > 0 {
        metrics::histogram!(crate::metric::STORE_BATCH_SIZE).record(batch.len() as f64);
        let inserted = match insert_all(&store, &batch).await {
            Ok(inserted) => inserted,
            Err(failure) => {
                tracing::debug!(error = %failure.into_error(), "a batch of creates failed; each goes on alone");
                // The connection may have broken after the statement committed: what is stored under
                // the batch's ids (new, random, ours alone) was written by it, and is acknowledged as
                // such rather than written again.
                written(&store, &batch).await.unwrap_or_default()
            }
        };
        for job in batch.drain(..) {
            let _ = job.inserted.send(inserted.contains(job.chatbot.id.as_uuid()));
        }
    }
}

/// Inserts every record of `batch` whose slug is free, with its `created` event, in one statement and
/// so one transaction; the ids inserted.
async fn insert_all(store: &PostgresStore, batch: &[Job]) -> Result<HashSet<Uuid>, Failure> {
    let client = store.client().await?;
    let statement = client
        .prepare_cached(
            "WITH given AS (
                SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::bool[], $5::bool[],
                    $6::timestamptz[], $7::timestamptz[], $8::int8[], $9::jsonb[], $10::text[], $11::uuid[],
                    $12::jsonb[])
                AS g(id, organisation_id, slug, is_public, active, created_at, updated_at, revision, config, etag,
                    version_id, meta)
             ), inserted AS (
                INSERT INTO chatbots
                    (id, organisation_id, slug, is_public, active, created_at, updated_at, revision, config, head)
                SELECT id, organisation_id, slug, is_public, active, created_at, updated_at, revision, config, meta
                FROM given g
                WHERE NOT EXISTS (SELECT 1 FROM deleted_chatbots d
                    WHERE d.slug = g.slug AND d.organisation_id <> g.organisation_id AND d.purge_at > now())
                ON CONFLICT (slug) DO NOTHING RETURNING id
             ), logged AS (
                INSERT INTO chatbotd_changes (organisation_id, chatbot_id, kind, revision, etag, changed_at, version_id, changed)
                SELECT g.organisation_id, g.id, 'created', g.revision, g.etag, g.updated_at, g.version_id, '[]'::jsonb
                FROM given g JOIN inserted i ON i.id = g.id
             )
             SELECT id FROM inserted",
        )
        .await?;
    let chatbots = batch.iter().map(|job| &job.chatbot);
    let ids: Vec<Uuid> = chatbots.clone().map(|c| *c.id.as_uuid()).collect();
    let orgs: Vec<Uuid> = chatbots.clone().map(|c| *c.organization_id.as_uuid()).collect();
    let slugs: Vec<&str> = chatbots.clone().map(|c| c.config.slug.as_str()).collect();
    let public: Vec<bool> = chatbots.clone().map(|c| c.config.is_public).collect();
    let active: Vec<bool> = chatbots.clone().map(|c| c.config.active).collect();
    let created: Vec<_> = chatbots.clone().map(|c| c.created_at.to_datetime()).collect();
    let updated: Vec<_> = chatbots.clone().map(|c| c.updated_at.to_datetime()).collect();
    let revisions: Vec<i64> = chatbots.clone().map(revision).collect::<Result<_>>()?;
    let configs: Vec<Json<&crate::chatbot::ChatbotConfig>> = chatbots.clone().map(|c| Json(&c.config)).collect();
    let etags: Vec<String> = chatbots.map(Chatbot::etag).collect();
    let versions: Vec<Uuid> = batch.iter().map(|job| *job.revision.version_id.as_uuid()).collect();
    let metas: Vec<Json<&Revision>> = batch.iter().map(|job| Json(&job.revision)).collect();
    let rows = client
        .query(
            &statement,
            &[
                &ids, &orgs, &slugs, &public, &active, &created, &updated, &revisions, &configs, &etags, &versions,
                &metas,
            ],
        )
        .await?;
    rows.iter().map(|row| row.try_get::<_, Uuid>(0).map_err(Failure::from)).collect()
}

/// The ids of `batch` that are stored: after a failed batch, the creates it committed all the same.
async fn written(store: &PostgresStore, batch: &[Job]) -> Result<HashSet<Uuid>, Failure> {
    let client = store.client().await?;
    let ids: Vec<Uuid> = batch.iter().map(|job| *job.chatbot.id.as_uuid()).collect();
    let statement = client.prepare_cached("SELECT id FROM chatbots WHERE id = ANY($1)").await?;
    let rows = client.query(&statement, &[&ids]).await?;
    rows.iter().map(|row| row.try_get::<_, Uuid>(0).map_err(Failure::from)).collect()
}
