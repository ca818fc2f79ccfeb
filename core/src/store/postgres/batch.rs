//! Group commit, as the sled writer batches what waits: writes that arrive while others are being
//! written wait in a queue, and each batcher writes everything queued of one kind in one statement (the
//! records, their kept revisions and their change-log events), which commits as one transaction with
//! one WAL flush. Each write still gets its own outcome: a write the batch could not take (its slug was
//! taken, its chatbot changed since it was read, its row was locked elsewhere, or the statement failed)
//! is handed back and goes the one-by-one way, which gives it its own 409, 412 or error.
//!
//! Two kinds are batched: creates ([`NewRecord`]) and updates that keep their slug ([`Replacement`]),
//! both without an idempotency key (a keyed write claims its key in its own transaction), an avatar or
//! a publication. When a batch's connection breaks, whether it committed is read back by what is new
//! and ours alone in it (a create's id, an update's new version id), so that no write is applied twice
//! or refused for a change it made itself; when even that cannot be read, the write's outcome is
//! unknown, as for a write committed alone.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use deadpool_postgres::Client;
use futures_channel::oneshot;
use tokio::sync::mpsc;
use tokio_postgres::types::Json;
use uuid::Uuid;

use tokio_postgres::Error as DbError;

use super::PostgresStore;
use super::failure::{self, Failure};
use crate::chatbot::{Chatbot, ChatbotConfig};
use crate::history::Revision;

/// Most writes in one statement.
const MAX_BATCH: usize = 256;

/// How many batches of one kind may be written at once (each on a connection of its own).
const BATCHERS: usize = 2;

/// What became of a write handed to a batch.
pub(super) enum Taken {
    /// Written, committed and durable.
    Written,
    /// Not written: the caller writes it the one-by-one way, which says why.
    HandedBack,
    /// The batch's connection broke at its commit and whether it committed cannot be read back.
    Unknown,
}

/// A write that a batcher can take with others of its kind.
pub(super) trait Batched: Send + Sync + Sized + 'static {
    /// What identifies this write in what it stores: new, and this write's alone.
    fn key(&self) -> Uuid;

    /// The chatbot it writes: a batch writes a chatbot at most once.
    fn chatbot(&self) -> Uuid;

    /// Writes what it can of `batch` in one statement over `client`; the keys of the writes it stored.
    fn write_all(client: &Client, batch: &[&Self]) -> impl Future<Output = Result<HashSet<Uuid>, DbError>> + Send;

    /// After a failed batch, the keys of the writes of `batch` that are stored all the same.
    fn written(client: &Client, batch: &[&Self]) -> impl Future<Output = Result<HashSet<Uuid>, Failure>> + Send;
}

/// One write waiting, and where its outcome goes.
struct Job<W> {
    write: W,
    taken: oneshot::Sender<Taken>,
}

/// The queues of the batchers of one kind of write, which a write is handed to.
pub(super) struct Batchers<W> {
    queues: Arc<Vec<mpsc::UnboundedSender<Job<W>>>>,
    next: Arc<AtomicUsize>,
}

impl<W> Clone for Batchers<W> {
    fn clone(&self) -> Self {
        Batchers { queues: Arc::clone(&self.queues), next: Arc::clone(&self.next) }
    }
}

impl<W: Batched> Batchers<W> {
    /// The queues, and the batchers that drain them over handles on `store` (to spawn).
    pub(super) fn start(store: &PostgresStore) -> (Self, Vec<tokio::task::JoinHandle<()>>) {
        let (mut queues, mut tasks) = (Vec::new(), Vec::new());
        for _ in 0..BATCHERS {
            let (queue, jobs) = mpsc::unbounded_channel();
            queues.push(queue);
            tasks.push(tokio::spawn(run(store.handle(), jobs)));
        }
        (Batchers { queues: Arc::new(queues), next: Arc::default() }, tasks)
    }

    /// Writes `write` in the next batch.
    pub(super) async fn write(&self, write: W) -> Taken {
        let (taken, outcome) = oneshot::channel();
        let queue = &self.queues[self.next.fetch_add(1, Ordering::Relaxed) % self.queues.len()];
        if queue.send(Job { write, taken }).is_err() {
            return Taken::HandedBack;
        }
        outcome.await.unwrap_or(Taken::HandedBack)
    }
}

/// A batcher: takes whatever is queued, up to [`MAX_BATCH`], and writes it in one statement.
async fn run<W: Batched>(store: PostgresStore, mut jobs: mpsc::UnboundedReceiver<Job<W>>) {
    let mut queued = Vec::new();
    while jobs.recv_many(&mut queued, MAX_BATCH).await > 0 {
        // A second write of a chatbot in the same batch goes alone, after this batch.
        let mut chatbots = HashSet::new();
        let (batch, again): (Vec<_>, Vec<_>) = queued.drain(..).partition(|job| chatbots.insert(job.write.chatbot()));
        for job in again {
            let _ = job.taken.send(Taken::HandedBack);
        }
        metrics::histogram!(crate::metric::STORE_BATCH_SIZE).record(batch.len() as f64);
        let writes: Vec<&W> = batch.iter().map(|job| &job.write).collect();
        let stored = write(&store, &writes).await;
        for job in batch {
            let taken = match &stored {
                Some(stored) if stored.contains(&job.write.key()) => Taken::Written,
                Some(_) => Taken::HandedBack,
                None => Taken::Unknown,
            };
            let _ = job.taken.send(taken);
        }
    }
}

/// Writes `batch`: the keys of the writes stored, or `None` when that cannot be known.
async fn write<W: Batched>(store: &PostgresStore, batch: &[&W]) -> Option<HashSet<Uuid>> {
    // Without a connection nothing was sent: each write goes on alone (and says why).
    let Ok(client) = store.client().await else { return Some(HashSet::new()) };
    match W::write_all(&client, batch).await {
        Ok(stored) => return Some(stored),
        // The database answered with an error: the statement, and so its transaction, did not commit.
        Err(err) if err.code().is_some() => {
            tracing::debug!(error = %failure::described(&err), "a batch of writes failed; each goes on alone");
            return Some(HashSet::new());
        }
        Err(err) => {
            tracing::warn!(error = %err, "the database connection broke under a batch; finding out what it wrote")
        }
    }
    // The connection broke, maybe after the statement committed: what is stored under the batch's keys
    // (new, ours alone) was written by it, and is acknowledged as such rather than written again.
    drop(client);
    let client = store.client().await.ok()?;
    W::written(&client, batch).await.ok()
}

/// A revision number as an `int8` column holds it: every number was read from one, plus one.
fn stored_number(revision: u64) -> i64 {
    i64::try_from(revision).unwrap_or(i64::MAX)
}

/// A create: the record with its exact slug, and its first revision.
pub(super) struct NewRecord {
    pub(super) chatbot: Chatbot,
    pub(super) revision: Revision,
}

impl Batched for NewRecord {
    fn key(&self) -> Uuid {
        *self.chatbot.id.as_uuid()
    }

    fn chatbot(&self) -> Uuid {
        *self.chatbot.id.as_uuid()
    }

    /// Inserts every record whose slug is free, with its `created` event.
    async fn write_all(client: &Client, batch: &[&Self]) -> Result<HashSet<Uuid>, DbError> {
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
                    INSERT INTO chatbotd_changes
                        (organisation_id, chatbot_id, kind, revision, etag, changed_at, version_id, changed)
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
        let revisions: Vec<i64> = chatbots.clone().map(|c| stored_number(c.revision)).collect();
        let configs: Vec<Json<&ChatbotConfig>> = chatbots.clone().map(|c| Json(&c.config)).collect();
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
        rows.iter().map(|row| row.try_get::<_, Uuid>(0)).collect()
    }

    /// The ids stored: new and random, so a stored one is this batch's.
    async fn written(client: &Client, batch: &[&Self]) -> Result<HashSet<Uuid>, Failure> {
        let ids: Vec<Uuid> = batch.iter().map(|job| job.key()).collect();
        let statement = client.prepare_cached("SELECT id FROM chatbots WHERE id = ANY($1)").await?;
        let rows = client.query(&statement, &[&ids]).await?;
        rows.iter().map(|row| row.try_get::<_, Uuid>(0).map_err(Failure::from)).collect()
    }
}

/// An update that keeps the chatbot's slug: `next` replaces `current` (read without a lock) if the
/// chatbot is still at `current`'s revision when the batch writes it, and `current` is kept as the
/// revision `replaced` with its content.
pub(super) struct Replacement {
    pub(super) current: Chatbot,
    pub(super) replaced: Revision,
    pub(super) next: Chatbot,
    pub(super) made: Revision,
}

impl Batched for Replacement {
    fn key(&self) -> Uuid {
        *self.made.version_id.as_uuid()
    }

    fn chatbot(&self) -> Uuid {
        *self.next.id.as_uuid()
    }

    /// Replaces every record still at the revision its update read and not locked by another
    /// transaction (which would hold up the whole batch: that update waits alone instead), keeping
    /// the replaced head as a revision, with each its event.
    async fn write_all(client: &Client, batch: &[&Self]) -> Result<HashSet<Uuid>, DbError> {
        let statement = client
            .prepare_cached(
                "WITH given AS (
                    SELECT * FROM unnest($1::uuid[], $2::int8[], $3::bool[], $4::bool[], $5::timestamptz[],
                        $6::int8[], $7::jsonb[], $8::int8[], $9::uuid[], $10::jsonb[], $11::jsonb[], $12::uuid[],
                        $13::timestamptz[], $14::jsonb[], $15::uuid[], $16::text[], $17::text[], $18::uuid[],
                        $19::jsonb[])
                    AS g(id, expected, is_public, active, updated_at, revision, config, published_revision,
                        published_version, head, snapshot, kept_version, kept_at, kept_meta, organisation_id, kind,
                        etag, version_id, changed)
                 ), locked AS (
                    SELECT c.id FROM chatbots c JOIN given g ON c.id = g.id AND c.revision = g.expected
                    FOR UPDATE OF c SKIP LOCKED
                 ), updated AS (
                    UPDATE chatbots c SET is_public = g.is_public, active = g.active, updated_at = g.updated_at,
                        revision = g.revision, config = g.config, published_revision = g.published_revision,
                        published_version = g.published_version, head = g.head
                    FROM given g
                    WHERE c.id = g.id AND c.revision = g.expected AND c.id IN (SELECT id FROM locked)
                    RETURNING c.id
                 ), kept AS (
                    INSERT INTO chatbot_revisions (chatbot_id, revision, version_id, created_at, meta, snapshot)
                    SELECT g.id, g.expected, g.kept_version, g.kept_at, g.kept_meta, g.snapshot
                    FROM given g JOIN updated u ON u.id = g.id
                 ), logged AS (
                    INSERT INTO chatbotd_changes
                        (organisation_id, chatbot_id, kind, revision, etag, changed_at, version_id, changed)
                    SELECT g.organisation_id, g.id, g.kind, g.revision, g.etag, g.updated_at, g.version_id, g.changed
                    FROM given g JOIN updated u ON u.id = g.id
                 )
                 SELECT g.version_id FROM given g JOIN updated u ON u.id = g.id",
            )
            .await?;
        let ids: Vec<Uuid> = batch.iter().map(|job| job.chatbot()).collect();
        let expected: Vec<i64> = batch.iter().map(|job| stored_number(job.current.revision)).collect();
        let public: Vec<bool> = batch.iter().map(|job| job.next.config.is_public).collect();
        let active: Vec<bool> = batch.iter().map(|job| job.next.config.active).collect();
        let updated: Vec<_> = batch.iter().map(|job| job.next.updated_at.to_datetime()).collect();
        let revisions: Vec<i64> = batch.iter().map(|job| stored_number(job.next.revision)).collect();
        let configs: Vec<Json<&ChatbotConfig>> = batch.iter().map(|job| Json(&job.next.config)).collect();
        let published: Vec<Option<i64>> =
            batch.iter().map(|job| job.next.published.map(|p| stored_number(p.revision))).collect();
        let published_versions: Vec<Option<Uuid>> =
            batch.iter().map(|job| job.next.published.map(|p| *p.version_id.as_uuid())).collect();
        let heads: Vec<Json<&Revision>> = batch.iter().map(|job| Json(&job.made)).collect();
        let snapshots: Vec<Json<&Chatbot>> = batch.iter().map(|job| Json(&job.current)).collect();
        let kept_versions: Vec<Uuid> = batch.iter().map(|job| *job.replaced.version_id.as_uuid()).collect();
        let kept_at: Vec<_> = batch.iter().map(|job| job.replaced.create_time.to_datetime()).collect();
        let kept_metas: Vec<Json<&Revision>> = batch.iter().map(|job| Json(&job.replaced)).collect();
        let orgs: Vec<Uuid> = batch.iter().map(|job| *job.next.organization_id.as_uuid()).collect();
        let kinds: Vec<&str> = batch.iter().map(|job| job.made.kind.as_str()).collect();
        let etags: Vec<String> = batch.iter().map(|job| job.next.etag()).collect();
        let versions: Vec<Uuid> = batch.iter().map(|job| job.key()).collect();
        let changed: Vec<Json<&Vec<String>>> = batch.iter().map(|job| Json(&job.made.changed)).collect();
        let rows = client
            .query(
                &statement,
                &[
                    &ids,
                    &expected,
                    &public,
                    &active,
                    &updated,
                    &revisions,
                    &configs,
                    &published,
                    &published_versions,
                    &heads,
                    &snapshots,
                    &kept_versions,
                    &kept_at,
                    &kept_metas,
                    &orgs,
                    &kinds,
                    &etags,
                    &versions,
                    &changed,
                ],
            )
            .await?;
        rows.iter().map(|row| row.try_get::<_, Uuid>(0)).collect()
    }

    /// The new version ids stored: as the chatbot's head, or already kept as a revision by a later
    /// update.
    async fn written(client: &Client, batch: &[&Self]) -> Result<HashSet<Uuid>, Failure> {
        let ids: Vec<Uuid> = batch.iter().map(|job| job.chatbot()).collect();
        let versions: Vec<Uuid> = batch.iter().map(|job| job.key()).collect();
        let named: Vec<String> = versions.iter().map(Uuid::to_string).collect();
        let statement = client
            .prepare_cached(
                "SELECT version_id FROM chatbot_revisions WHERE chatbot_id = ANY($1) AND version_id = ANY($2)
                 UNION ALL
                 SELECT (head->>'version_id')::uuid FROM chatbots WHERE id = ANY($1) AND head->>'version_id' = ANY($3)",
            )
            .await?;
        let rows = client.query(&statement, &[&ids, &versions, &named]).await?;
        rows.iter().map(|row| row.try_get::<_, Uuid>(0).map_err(Failure::from)).collect()
    }
}
