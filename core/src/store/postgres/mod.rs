//! The PostgreSQL engine, for N stateless replicas over one database (cargo feature `postgres`).
//!
//! Each operation is one statement or one transaction: an acknowledged write is a committed
//! transaction. Slugs are unique by a unique index, etags are a compare-and-set on the `revision`
//! column, and a listing reads only its page: one index scan per flag combination its filter allows,
//! merged with `UNION ALL`, as the sled engine merges its ranges. A transaction that fails with a
//! serialization failure (40001) or a deadlock (40P01) runs again, with bounded, jittered backoff,
//! which is why an update's change must be re-runnable.
//!
//! The SQL stays within what CockroachDB and YugabyteDB also accept: no LISTEN/NOTIFY, no advisory
//! locks, `INSERT ... ON CONFLICT ... DO NOTHING` only, UUID keys. Only PostgreSQL 15 is tested.
//!
//! Futures of this engine need a tokio runtime: its connections are driven by tokio.

mod background;
mod changes;
mod schema;

use std::future::Future;
use std::time::Duration;

use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Json;
use tokio_postgres::{NoTls, Row};
use uuid::Uuid;

use crate::auth::{ApiKeyInfo, KeyHash};
use crate::avatar::{AvatarId, AvatarRef, ImageType, StoredAvatar};
use crate::changes::{ChangeKind, ChangeSignal, ChatbotEvent};
use crate::chatbot::{Chatbot, ChatbotConfig};
use crate::domain::{ChatbotId, KeyId, OrgId, Slug, Timestamp};
use crate::error::{Error, Result, Violation, ViolationCode};
use crate::idempotency::{Claim, Fingerprint, IdempotencyKey, Outcome, Record as ClaimRecord, Verdict, Written};
use crate::rules::SlugChoice;
use crate::store::{
    Archive, ChangeLog, ChatbotDeletion, ChatbotStore, ChatbotUpdate, ClaimStore, Filter, KeyStore, Lifecycle, Listing,
    NewChatbot, Organisation, PageCursor, Record, Retention, StoreFuture, slug_candidates,
};

/// Most attempts of one transaction before its serialization failures are reported as unavailability.
const MAX_ATTEMPTS: u32 = 8;
/// How many derived-slug candidates are looked up in one query.
const SLUG_BATCH: usize = 64;
/// The columns a chatbot is read from, in [`chatbot_from_row`]'s order.
const COLUMNS: &str = "id, organisation_id, config, created_at, updated_at, revision";

/// The isolation level of every transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Isolation {
    /// PostgreSQL's default; writes lock the rows they read (`FOR UPDATE`).
    #[default]
    ReadCommitted,
    /// What CockroachDB always runs: conflicts surface as serialization failures, which are retried.
    Serializable,
}

/// How to reach and use the database.
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    /// Most connections this replica opens.
    pub pool_size: usize,
    /// How long connecting, waiting for a pooled connection, or one statement may take before the
    /// request fails with [`Error::Unavailable`].
    pub timeout: Duration,
    /// The isolation level of every transaction.
    pub isolation: Isolation,
    /// For tests of the retry path: make the first attempt of every transaction fail with a real
    /// serialization failure (SQLSTATE 40001), raised by the server just before the commit.
    pub inject_serialization_failures: bool,
    /// How long change-log events and idempotency keys are kept before the engine prunes them.
    pub retention: Retention,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions {
            pool_size: 16,
            timeout: Duration::from_secs(3),
            isolation: Isolation::ReadCommitted,
            inject_serialization_failures: false,
            retention: Retention::default(),
        }
    }
}

/// The PostgreSQL engine: a connection pool, the options it runs with, and its own background work
/// (publishing the change log, pruning), which runs from [`PostgresStore::connect`] until the store is
/// dropped.
pub struct PostgresStore {
    pool: Pool,
    options: PostgresOptions,
    /// The change log's head as this replica last saw it.
    signal: std::sync::Arc<ChangeSignal>,
    /// Notified after every write through this replica, for the publisher.
    written: std::sync::Arc<event_listener::Event>,
    /// The background tasks, stopped when the store is dropped; `None` in the tasks' own handles.
    background: Option<background::Tasks>,
}

/// Why one attempt of an operation failed: worth another attempt, or final.
enum Failure {
    /// A serialization failure, a deadlock, or a race lost to a concurrent transaction: this one was
    /// rolled back and may run again. Says why.
    Retry(String),
    /// Anything else.
    Fail(Error),
}

impl Failure {
    fn into_error(self) -> Error {
        match self {
            Failure::Retry(why) => Error::unavailable(format!("the database kept refusing the transaction: {why}")),
            Failure::Fail(err) => err,
        }
    }

    /// A retry after `err`, described by its SQLSTATE and message.
    fn retry(err: &tokio_postgres::Error) -> Self {
        Failure::Retry(described(err))
    }
}

/// `err` as the database said it: `SQLSTATE 22P05: unsupported Unicode escape sequence (detail)`.
fn described(err: &tokio_postgres::Error) -> String {
    match err.as_db_error() {
        None => err.to_string(),
        Some(db) => {
            let detail = db.detail().map(|d| format!(" ({d})")).unwrap_or_default();
            format!("SQLSTATE {}: {}{detail}", db.code().code(), db.message())
        }
    }
}

impl From<Error> for Failure {
    fn from(err: Error) -> Self {
        Failure::Fail(err)
    }
}

impl From<tokio_postgres::Error> for Failure {
    fn from(err: tokio_postgres::Error) -> Self {
        match err.code() {
            Some(code) if *code == SqlState::T_R_SERIALIZATION_FAILURE || *code == SqlState::T_R_DEADLOCK_DETECTED => {
                Failure::retry(&err)
            }
            Some(code) if is_unavailability(code) => Failure::Fail(Error::unavailable(err)),
            // The database's own words (SQLSTATE and message), not tokio-postgres' bare "db error".
            Some(_) => Failure::Fail(Error::storage(described(&err))),
            // No SQLSTATE: the connection broke or timed out on the way.
            None => Failure::Fail(Error::unavailable(err)),
        }
    }
}

impl From<PoolError> for Failure {
    fn from(err: PoolError) -> Self {
        Failure::Fail(Error::unavailable(err))
    }
}

/// Whether an error of the server means "not now" rather than "never": the server is shutting down or
/// starting, has no connection to spare, or cancelled a statement that ran past its timeout.
fn is_unavailability(code: &SqlState) -> bool {
    code.code().starts_with("08") // connection exceptions
        || *code == SqlState::ADMIN_SHUTDOWN
        || *code == SqlState::CRASH_SHUTDOWN
        || *code == SqlState::CANNOT_CONNECT_NOW
        || *code == SqlState::TOO_MANY_CONNECTIONS
        || *code == SqlState::QUERY_CANCELED
}

/// A value read from a row, or a storage error (a column of an unexpected type is a corrupt store).
fn column<'a, T: tokio_postgres::types::FromSql<'a>>(row: &'a Row, index: usize) -> Result<T> {
    row.try_get(index).map_err(Error::storage)
}

/// A chatbot from a row of [`COLUMNS`]; its configuration is re-checked by the types' own parsers.
fn chatbot_from_row(row: &Row) -> Result<Chatbot> {
    let Json(config): Json<ChatbotConfig> = column(row, 2)?;
    Ok(Chatbot {
        id: ChatbotId::from_uuid(column(row, 0)?),
        organization_id: OrgId::from_uuid(column(row, 1)?),
        config,
        created_at: Timestamp::from_datetime(column(row, 3)?),
        updated_at: Timestamp::from_datetime(column(row, 4)?),
        revision: u64::try_from(column::<i64>(row, 5)?).map_err(Error::storage)?,
    })
}

/// The revision as stored.
fn revision(chatbot: &Chatbot) -> Result<i64> {
    i64::try_from(chatbot.revision).map_err(Error::storage)
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://user:password@host:port/database`), brings its
    /// schema up to date, and warns loudly if it does not make commits durable.
    pub async fn connect(url: &str, options: PostgresOptions) -> Result<Self> {
        let mut config: tokio_postgres::Config =
            url.parse().map_err(|err| Error::storage(format!("the database URL is not valid: {err}")))?;
        let isolation = match options.isolation {
            Isolation::ReadCommitted => "read\\ committed",
            Isolation::Serializable => "serializable",
        };
        let session = format!(
            "-c statement_timeout={} -c default_transaction_isolation={isolation}",
            options.timeout.as_millis()
        );
        let given = config.get_options().map(str::to_owned);
        config.options(given.map_or(session.clone(), |given| format!("{given} {session}")));
        config.connect_timeout(options.timeout);
        config.keepalives(true);
        config.keepalives_idle(Duration::from_secs(10));
        let manager = Manager::from_config(config, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(manager)
            .max_size(options.pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(options.timeout))
            .create_timeout(Some(options.timeout))
            .recycle_timeout(Some(options.timeout))
            .build()
            .map_err(Error::storage)?;
        let mut store = PostgresStore {
            pool,
            options,
            signal: std::sync::Arc::default(),
            written: std::sync::Arc::default(),
            background: None,
        };
        store.migrate().await?;
        store.with_retries(|_| store.publish_now()).await?;
        store.warn_unless_durable().await;
        store.background = Some(background::Tasks::start(&store));
        Ok(store)
    }

    /// Another handle on this store's pool and signal, without its background tasks: what those tasks
    /// work through.
    fn handle(&self) -> PostgresStore {
        PostgresStore {
            pool: self.pool.clone(),
            options: self.options.clone(),
            signal: std::sync::Arc::clone(&self.signal),
            written: std::sync::Arc::clone(&self.written),
            background: None,
        }
    }

    /// `outcome`, after telling the publisher of a fresh write.
    fn written<T>(&self, outcome: Result<Written<T>>) -> Result<Written<T>> {
        if matches!(&outcome, Ok(written) if !written.replayed) {
            self.written.notify(usize::MAX);
        }
        outcome
    }

    /// A pooled connection.
    async fn client(&self) -> Result<deadpool_postgres::Object, Failure> {
        let client = self.pool.get().await?;
        let status = self.pool.status();
        metrics::gauge!("chatbotd_store_pool_connections", "state" => "in_use")
            .set((status.size - status.available) as f64);
        metrics::gauge!("chatbotd_store_pool_connections", "state" => "idle").set(status.available as f64);
        metrics::gauge!("chatbotd_store_pool_waiting").set(status.waiting as f64);
        Ok(client)
    }

    /// Runs `attempt` until it succeeds, fails for good, or has failed [`MAX_ATTEMPTS`] times with a
    /// serialization failure; between attempts, waits a jittered, growing moment.
    async fn with_retries<T, F>(&self, mut attempt: impl FnMut(u32) -> F) -> Result<T>
    where
        F: Future<Output = Result<T, Failure>>,
    {
        let mut number = 0;
        loop {
            match attempt(number).await {
                Ok(value) => return Ok(value),
                Err(Failure::Retry(cause)) if number + 1 < MAX_ATTEMPTS => {
                    tracing::info!(attempt = number + 1, %cause, "retrying a transaction");
                    metrics::counter!("chatbotd_store_transaction_retries_total").increment(1);
                    tokio::time::sleep(backoff(number)).await;
                    number += 1;
                }
                Err(failure) => return Err(failure.into_error()),
            }
        }
    }

    /// Before committing the first attempt of a transaction, when asked to: make the server raise a
    /// serialization failure, so that the retry path runs for real.
    async fn maybe_inject_failure(&self, tx: &deadpool_postgres::Transaction<'_>, attempt: u32) -> Result<(), Failure> {
        if self.options.inject_serialization_failures && attempt == 0 {
            let raise = "DO $$ BEGIN RAISE EXCEPTION 'injected serialization failure' USING ERRCODE = '40001'; END $$";
            tx.batch_execute(raise).await?;
        }
        Ok(())
    }

    /// Warns loudly when the server may lose committed transactions.
    async fn warn_unless_durable(&self) {
        let Ok(client) = self.pool.get().await else { return };
        for setting in ["fsync", "synchronous_commit"] {
            match client.query_one("SELECT current_setting($1, true)", &[&setting]).await {
                Ok(row) => match row.try_get::<_, Option<String>>(0) {
                    Ok(Some(value)) if value == "off" => tracing::warn!(
                        "PostgreSQL runs with {setting}=off: a crash of the database can lose writes chatbotd \
                         has acknowledged. Turn it on for production."
                    ),
                    Ok(_) => {}
                    Err(err) => tracing::warn!(%err, "cannot read PostgreSQL's {setting} setting"),
                },
                Err(err) => tracing::warn!(%err, "cannot read PostgreSQL's {setting} setting"),
            }
        }
    }

    async fn create_attempt(&self, new: &NewChatbot, attempt: u32) -> Result<Written<Chatbot>, Failure> {
        let mut client = self.client().await?;
        let Some(claim) = &new.claim else {
            // Without a key, one statement: nothing to make atomic beyond it.
            return Ok(Written::fresh(insert_resolving_slug(&client, new).await?));
        };
        let org = new.chatbot.organization_id;
        let tx = client.transaction().await?;
        if let Some(outcome) = check_claim(&tx, org, claim).await? {
            return Ok(outcome.replayed_chatbot()?);
        }
        let chatbot = insert_resolving_slug(&tx, new).await?;
        record_claim(&tx, org, claim, Outcome::Chatbot(Box::new(chatbot.clone()))).await?;
        self.maybe_inject_failure(&tx, attempt).await?;
        tx.commit().await?;
        Ok(Written::fresh(chatbot))
    }

    /// The stored chatbot, locked for this transaction, if `org` owns it and it has `expected_etag`.
    async fn lock_owned(
        tx: &deadpool_postgres::Transaction<'_>,
        org: OrgId,
        id: ChatbotId,
        expected_etag: Option<&str>,
    ) -> Result<Chatbot, Failure> {
        let sql = format!("SELECT {COLUMNS} FROM chatbots WHERE id = $1 AND organisation_id = $2 FOR UPDATE");
        let statement = tx.prepare_cached(&sql).await?;
        let row = tx.query_opt(&statement, &[id.as_uuid(), org.as_uuid()]).await?.ok_or(Error::NotFound)?;
        let current = chatbot_from_row(&row)?;
        current.check_etag(expected_etag)?;
        Ok(current)
    }

    async fn update_attempt(&self, update: &ChatbotUpdate, attempt: u32) -> Result<Written<Chatbot>, Failure> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        if let Some(claim) = &update.claim
            && let Some(outcome) = check_claim(&tx, update.org, claim).await?
        {
            return Ok(outcome.replayed_chatbot()?);
        }
        let current = Self::lock_owned(&tx, update.org, update.id, None).await?;
        let (mut next, slug) = update.apply(&current)?;
        next.config.slug = match slug {
            SlugChoice::Kept | SlugChoice::Exact => next.config.slug,
            SlugChoice::Derived => first_free_slug(&tx, &next.config.slug, Some(next.id))
                .await?
                .ok_or_else(|| Error::SlugTaken { slug: next.config.slug.to_string() })?,
        };
        let statement = tx
            .prepare_cached(
                "UPDATE chatbots SET slug = $3, is_public = $4, active = $5, updated_at = $6, revision = $7, config = $8
                 WHERE id = $1 AND revision = $2",
            )
            .await?;
        let config = &next.config;
        let changed = tx
            .execute(
                &statement,
                &[
                    next.id.as_uuid(),
                    &revision(&current)?,
                    &config.slug.as_str(),
                    &config.is_public,
                    &config.active,
                    &next.updated_at.to_datetime(),
                    &revision(&next)?,
                    &Json(config),
                ],
            )
            .await;
        match changed {
            Ok(1) => {}
            Ok(_) => return Err(Failure::Fail(Error::storage("a locked chatbot changed under its lock"))),
            Err(err) if is_slug_conflict(&err) => {
                return Err(match slug {
                    // A derived slug found free was taken since: look again.
                    SlugChoice::Derived => Failure::retry(&err),
                    SlugChoice::Kept | SlugChoice::Exact => {
                        Failure::Fail(Error::SlugTaken { slug: config.slug.to_string() })
                    }
                });
            }
            Err(err) => return Err(err.into()),
        }
        let (before, after) = (current.config.settings.avatar, next.config.settings.avatar);
        replace_avatar(&tx, before, after, update.avatar.as_ref()).await?;
        changes::log(&tx, &ChatbotEvent::of(ChangeKind::Updated, &next)).await?;
        if let Some(claim) = &update.claim {
            record_claim(&tx, update.org, claim, Outcome::Chatbot(Box::new(next.clone()))).await?;
        }
        self.maybe_inject_failure(&tx, attempt).await?;
        tx.commit().await?;
        Ok(Written::fresh(next))
    }

    async fn delete_attempt(&self, deletion: &ChatbotDeletion, attempt: u32) -> Result<Written<()>, Failure> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        if let Some(claim) = &deletion.claim
            && let Some(outcome) = check_claim(&tx, deletion.org, claim).await?
        {
            return Ok(outcome.replayed_deletion()?);
        }
        let current = Self::lock_owned(&tx, deletion.org, deletion.id, deletion.expected_etag.as_deref()).await?;
        let statement = tx.prepare_cached("DELETE FROM chatbots WHERE id = $1").await?;
        tx.execute(&statement, &[current.id.as_uuid()]).await?;
        replace_avatar(&tx, current.config.settings.avatar, None, None).await?;
        changes::log(&tx, &ChatbotEvent::of(ChangeKind::Deleted, &current)).await?;
        if let Some(claim) = &deletion.claim {
            record_claim(&tx, deletion.org, claim, Outcome::Deleted).await?;
        }
        self.maybe_inject_failure(&tx, attempt).await?;
        tx.commit().await?;
        Ok(Written::fresh(()))
    }

    async fn claimed_now(&self, org: OrgId, key: &IdempotencyKey) -> Result<Option<ClaimRecord>, Failure> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "SELECT fingerprint, created_at, outcome FROM idempotency_keys WHERE organisation_id = $1 AND key = $2",
            )
            .await?;
        let row = client.query_opt(&statement, &[org.as_uuid(), &key.as_str()]).await?;
        Ok(row.as_ref().map(claim_from_row).transpose()?)
    }

    async fn prune_claims_now(&self, before: Timestamp, limit: usize) -> Result<usize, Failure> {
        let client = self.client().await?;
        let limit = i64::try_from(limit).map_err(Error::storage)?;
        let pruned = client
            .execute(
                "DELETE FROM idempotency_keys WHERE (organisation_id, key) IN \
                 (SELECT organisation_id, key FROM idempotency_keys WHERE created_at < $1 LIMIT $2)",
                &[&before.to_datetime(), &limit],
            )
            .await?;
        Ok(usize::try_from(pruned).map_err(Error::storage)?)
    }

    async fn list_now(
        &self,
        org: OrgId,
        filter: Filter,
        after: Option<PageCursor>,
        limit: usize,
    ) -> Result<Listing, Failure> {
        let client = self.client().await?;
        let statement = client.prepare_cached(&list_sql(filter, after.is_some())).await?;
        // One more than the page, to know whether more follow.
        let fetch = i64::try_from(limit + 1).map_err(Error::storage)?;
        let rows = match after {
            Some(cursor) => {
                let at = cursor.created_at().to_datetime();
                client.query(&statement, &[org.as_uuid(), &at, cursor.id().as_uuid(), &fetch]).await?
            }
            None => client.query(&statement, &[org.as_uuid(), &fetch]).await?,
        };
        let mut items = rows.iter().map(chatbot_from_row).collect::<Result<Vec<_>>>()?;
        let more = items.len() > limit;
        items.truncate(limit);
        Ok(Listing { items, more })
    }

    /// The organisation called `name`, created with id `new_id` if there is none.
    async fn ensure_org_now(&self, name: &str, new_id: OrgId) -> Result<OrgId, Failure> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO organisations (id, name) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
                &[new_id.as_uuid(), &name],
            )
            .await?;
        let row = client.query_one("SELECT id FROM organisations WHERE name = $1", &[&name]).await?;
        Ok(OrgId::from_uuid(column(&row, 0)?))
    }

    async fn add_api_key_now(&self, key: &ApiKeyInfo) -> Result<(), Failure> {
        let client = self.client().await?;
        insert_key(&client, key).await?;
        let hash = key.hash.as_bytes().as_slice();
        let row = client.query_one("SELECT organisation_id FROM api_keys WHERE hash = $1", &[&hash]).await?;
        if OrgId::from_uuid(column(&row, 0)?) != key.organisation_id {
            return Err(Failure::Fail(Error::invalid(Violation::new(
                "api_key",
                ViolationCode::NotAllowed,
                "this key already belongs to another organisation",
            ))));
        }
        Ok(())
    }

    async fn add_first_api_key_attempt(&self, key: &ApiKeyInfo, attempt: u32) -> Result<bool, Failure> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // Locking the organisation's row makes concurrent bootstraps take turns.
        tx.query_one("SELECT id FROM organisations WHERE id = $1 FOR UPDATE", &[key.organisation_id.as_uuid()]).await?;
        let exists = tx.query_one("SELECT EXISTS (SELECT 1 FROM api_keys)", &[]).await?;
        if column::<bool>(&exists, 0)? {
            return Ok(false);
        }
        insert_key(&tx, key).await?;
        self.maybe_inject_failure(&tx, attempt).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn api_keys_now(&self, org: Option<OrgId>) -> Result<Vec<ApiKeyInfo>, Failure> {
        let client = self.client().await?;
        let sql = "SELECT hash, id, organisation_id, prefix, created_at, last_used_at FROM api_keys \
                   WHERE $1::uuid IS NULL OR organisation_id = $1 ORDER BY created_at, id";
        let rows = client.query(sql, &[&org.map(|org| *org.as_uuid())]).await?;
        Ok(rows.iter().map(key_from_row).collect::<Result<_>>()?)
    }

    async fn revoke_now(&self, id: KeyId) -> Result<(), Failure> {
        let client = self.client().await?;
        match client.execute("DELETE FROM api_keys WHERE id = $1", &[id.as_uuid()]).await? {
            0 => Err(Failure::Fail(Error::NotFound)),
            _ => Ok(()),
        }
    }

    async fn touch_now(&self, key: KeyHash, at: Timestamp) -> Result<(), Failure> {
        let client = self.client().await?;
        let hash = key.as_bytes().as_slice();
        client.execute("UPDATE api_keys SET last_used_at = $2 WHERE hash = $1", &[&hash, &at.to_datetime()]).await?;
        Ok(())
    }

    async fn org_of_key_now(&self, key: KeyHash) -> Result<OrgId, Failure> {
        let client = self.client().await?;
        let statement = client.prepare_cached("SELECT organisation_id FROM api_keys WHERE hash = $1").await?;
        let row = client.query_opt(&statement, &[&key.as_bytes().as_slice()]).await?.ok_or(Error::Unauthenticated)?;
        Ok(OrgId::from_uuid(column(&row, 0)?))
    }
}

impl ChatbotStore for PostgresStore {
    fn create(&self, new: NewChatbot) -> StoreFuture<'_, Written<Chatbot>> {
        Box::pin(async move { self.written(self.with_retries(|attempt| self.create_attempt(&new, attempt)).await) })
    }

    fn get(&self, org: OrgId, id: ChatbotId) -> StoreFuture<'_, Chatbot> {
        Box::pin(async move {
            self.with_retries(|_| async {
                let client = self.client().await?;
                let sql = format!("SELECT {COLUMNS} FROM chatbots WHERE id = $1 AND organisation_id = $2");
                let statement = client.prepare_cached(&sql).await?;
                let row = client.query_opt(&statement, &[id.as_uuid(), org.as_uuid()]).await?.ok_or(Error::NotFound)?;
                Ok(chatbot_from_row(&row)?)
            })
            .await
        })
    }

    fn public_by_slug(&self, slug: &Slug) -> StoreFuture<'_, Option<Chatbot>> {
        let slug = slug.as_str().to_owned();
        Box::pin(async move {
            self.with_retries(|_| async {
                let client = self.client().await?;
                let statement = client
                    .prepare_cached(&format!("SELECT {COLUMNS} FROM chatbots WHERE slug = $1 AND is_public AND active"))
                    .await?;
                let row = client.query_opt(&statement, &[&slug]).await?;
                Ok(row.map(|row| chatbot_from_row(&row)).transpose()?)
            })
            .await
        })
    }

    fn list(&self, org: OrgId, filter: Filter, after: Option<PageCursor>, limit: usize) -> StoreFuture<'_, Listing> {
        Box::pin(async move { self.with_retries(|_| self.list_now(org, filter, after, limit)).await })
    }

    fn update(&self, update: ChatbotUpdate) -> StoreFuture<'_, Written<Chatbot>> {
        Box::pin(async move { self.written(self.with_retries(|attempt| self.update_attempt(&update, attempt)).await) })
    }

    fn delete(&self, deletion: ChatbotDeletion) -> StoreFuture<'_, Written<()>> {
        Box::pin(
            async move { self.written(self.with_retries(|attempt| self.delete_attempt(&deletion, attempt)).await) },
        )
    }

    fn avatar(&self, reference: AvatarRef) -> StoreFuture<'_, Option<StoredAvatar>> {
        Box::pin(async move {
            self.with_retries(|_| async {
                let client = self.client().await?;
                let statement =
                    client.prepare_cached("SELECT id, image_type, digest, bytes FROM avatars WHERE id = $1").await?;
                let row = client.query_opt(&statement, &[reference.id.as_uuid()]).await?;
                Ok(row.map(|row| avatar_from_row(&row)).transpose()?)
            })
            .await
        })
    }
}

impl KeyStore for PostgresStore {
    fn ensure_org(&self, name: &str) -> StoreFuture<'_, OrgId> {
        let name = name.to_owned();
        Box::pin(async move { self.with_retries(|_| self.ensure_org_now(&name, OrgId::new_random())).await })
    }

    fn organisations(&self) -> StoreFuture<'_, Vec<Organisation>> {
        Box::pin(async move { self.with_retries(|_| self.organisations_now()).await })
    }

    fn add_api_key(&self, key: ApiKeyInfo) -> StoreFuture<'_, ()> {
        Box::pin(async move { self.with_retries(|_| self.add_api_key_now(&key)).await })
    }

    fn org_of_key(&self, key: KeyHash) -> StoreFuture<'_, OrgId> {
        Box::pin(async move { self.with_retries(|_| self.org_of_key_now(key)).await })
    }

    fn add_first_api_key(&self, key: ApiKeyInfo) -> StoreFuture<'_, bool> {
        Box::pin(async move { self.with_retries(|attempt| self.add_first_api_key_attempt(&key, attempt)).await })
    }

    fn api_keys(&self, org: Option<OrgId>) -> StoreFuture<'_, Vec<ApiKeyInfo>> {
        Box::pin(async move { self.with_retries(|_| self.api_keys_now(org)).await })
    }

    fn revoke_api_key(&self, id: KeyId) -> StoreFuture<'_, ()> {
        Box::pin(async move { self.with_retries(|_| self.revoke_now(id)).await })
    }

    fn touch_api_key(&self, key: KeyHash, at: Timestamp) -> StoreFuture<'_, ()> {
        Box::pin(async move { self.with_retries(|_| self.touch_now(key, at)).await })
    }
}

impl ClaimStore for PostgresStore {
    fn claimed(&self, org: OrgId, key: &IdempotencyKey) -> StoreFuture<'_, Option<ClaimRecord>> {
        let key = key.clone();
        Box::pin(async move { self.with_retries(|_| self.claimed_now(org, &key)).await })
    }

    fn prune_claims(&self, before: Timestamp, limit: usize) -> StoreFuture<'_, usize> {
        Box::pin(async move { self.with_retries(|_| self.prune_claims_now(before, limit)).await })
    }
}

impl ChangeLog for PostgresStore {
    fn change_signal(&self) -> &ChangeSignal {
        &self.signal
    }

    fn changes(&self, org: OrgId, after: u64, limit: usize) -> StoreFuture<'_, Vec<ChatbotEvent>> {
        Box::pin(async move { self.with_retries(|_| self.changes_now(org, after, limit)).await })
    }

    fn publish_changes(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move { self.with_retries(|_| self.publish_now()).await })
    }

    fn prune_changes(&self, before: Timestamp, limit: usize) -> StoreFuture<'_, usize> {
        Box::pin(async move { self.with_retries(|_| self.prune_changes_now(before, limit)).await })
    }
}

impl Archive for PostgresStore {
    fn snapshot(&self) -> StoreFuture<'_, Box<dyn crate::store::Snapshot + '_>> {
        Box::pin(async move {
            let snapshot: Box<dyn crate::store::Snapshot + '_> = Box::new(PgSnapshot::take(self).await?);
            Ok(snapshot)
        })
    }

    fn import_organisation(&self, organisation: Organisation) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let id = self.with_retries(|_| self.ensure_org_now(&organisation.name, organisation.id)).await?;
            if id == organisation.id {
                Ok(())
            } else {
                Err(Error::storage(format!("another organisation is already called '{}'", organisation.name)))
            }
        })
    }

    fn import_chatbot(&self, chatbot: Chatbot) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let slug = chatbot.config.slug.clone();
            let insert = || async { insert(&self.client().await?, &chatbot, &slug, Logged::No).await };
            if self.with_retries(|_| insert()).await? {
                Ok(())
            } else {
                Err(Error::SlugTaken { slug: slug.to_string() })
            }
        })
    }

    fn import_avatar(&self, avatar: StoredAvatar) -> StoreFuture<'_, ()> {
        Box::pin(
            async move { self.with_retries(|_| async { insert_avatar(&self.client().await?, &avatar).await }).await },
        )
    }
}

impl Lifecycle for PostgresStore {
    fn ready(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let client = self.client().await.map_err(Failure::into_error)?;
            client.simple_query("SELECT 1").await.map_err(|err| Failure::from(err).into_error())?;
            Ok(())
        })
    }

    fn retention(&self) -> Retention {
        self.options.retention
    }

    fn close(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            if let Some(background) = &self.background {
                background.stop();
            }
            self.pool.close();
            Ok(())
        })
    }
}

impl PostgresStore {
    async fn organisations_now(&self) -> Result<Vec<Organisation>, Failure> {
        let rows = self.client().await?.query("SELECT id, name FROM organisations ORDER BY id", &[]).await?;
        let organisation =
            |row: &Row| Ok(Organisation { id: OrgId::from_uuid(column(row, 0)?), name: column(row, 1)? });
        Ok(rows.iter().map(organisation).collect::<Result<_>>()?)
    }
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore").field("options", &self.options).finish_non_exhaustive()
    }
}

/// The first of `wanted`, `wanted-1`, `wanted-2`... that no chatbot but `owner` has, looked up
/// [`SLUG_BATCH`] at a time; `None` when every candidate ([`slug_candidates`]) is taken.
async fn first_free_slug(
    client: &impl GenericClient,
    wanted: &Slug,
    owner: Option<ChatbotId>,
) -> Result<Option<Slug>, Failure> {
    let owner = owner.map(|id| *id.as_uuid()).unwrap_or_else(Uuid::nil);
    let statement = client.prepare_cached("SELECT slug FROM chatbots WHERE slug = ANY($1) AND id <> $2").await?;
    let mut all = slug_candidates(wanted, SlugChoice::Derived).peekable();
    while all.peek().is_some() {
        let candidates: Vec<Slug> = all.by_ref().take(SLUG_BATCH).collect();
        let names: Vec<&str> = candidates.iter().map(Slug::as_str).collect();
        let taken: Vec<String> = client
            .query(&statement, &[&names, &owner])
            .await?
            .iter()
            .map(|row| column(row, 0))
            .collect::<Result<_>>()?;
        if let Some(free) = candidates.into_iter().find(|slug| !taken.iter().any(|t| t == slug.as_str())) {
            return Ok(Some(free));
        }
    }
    Ok(None)
}

/// Inserts `chatbot` with `slug` unless the slug is taken; whether it did.
async fn insert(client: &impl GenericClient, chatbot: &Chatbot, slug: &Slug, logged: Logged) -> Result<bool, Failure> {
    let sql = match logged {
        Logged::No => {
            "INSERT INTO chatbots (id, organisation_id, slug, is_public, active, created_at, updated_at, revision, config)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (slug) DO NOTHING"
        }
        // One statement, so that a create stays one round trip: its event exactly when it is inserted.
        Logged::Yes => {
            "WITH inserted AS (
                INSERT INTO chatbots (id, organisation_id, slug, is_public, active, created_at, updated_at, revision, config)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (slug) DO NOTHING RETURNING id
             )
             INSERT INTO chatbotd_changes (organisation_id, chatbot_id, kind, revision, etag, changed_at)
             SELECT $2, id, 'created', $8, $10, $7 FROM inserted"
        }
    };
    let statement = client.prepare_cached(sql).await?;
    let config = &chatbot.config;
    let (created, updated) = (chatbot.created_at.to_datetime(), chatbot.updated_at.to_datetime());
    let (revision, etag) = (revision(chatbot)?, chatbot.etag());
    let stored = Json(ChatbotConfig { slug: slug.clone(), ..config.clone() });
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 10] = [
        chatbot.id.as_uuid(),
        chatbot.organization_id.as_uuid(),
        &slug.as_str(),
        &config.is_public,
        &config.active,
        &created,
        &updated,
        &revision,
        &stored,
        &etag,
    ];
    let given = if logged == Logged::Yes { &params[..] } else { &params[..9] };
    let inserted = client.execute(&statement, given).await?;
    Ok(inserted == 1)
}

/// Whether an insert adds its event to the change log (a create) or not (an import).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Logged {
    Yes,
    No,
}

/// Inserts a new chatbot, resolving its slug as the proposal says; returns it as stored.
async fn insert_resolving_slug(client: &impl GenericClient, new: &NewChatbot) -> Result<Chatbot, Failure> {
    let wanted = &new.chatbot.config.slug;
    let taken = || Failure::Fail(Error::SlugTaken { slug: wanted.to_string() });
    // Each lost race means another chatbot just took a candidate; a few are plenty.
    for _ in 0..16 {
        let slug = match new.slug {
            SlugChoice::Kept | SlugChoice::Exact => wanted.clone(),
            SlugChoice::Derived => first_free_slug(client, wanted, None).await?.ok_or_else(taken)?,
        };
        // The unique index decides between concurrent creates.
        if insert(client, &new.chatbot, &slug, Logged::Yes).await? {
            let mut chatbot = new.chatbot.clone();
            chatbot.config.slug = slug;
            return Ok(chatbot);
        }
        if new.slug != SlugChoice::Derived {
            break;
        }
    }
    Err(taken())
}

/// Points the store from the avatar image `before` to `after`, in the chatbot's transaction: the
/// image no longer pointed at is removed, the new one (if any) stored.
async fn replace_avatar(
    client: &impl GenericClient,
    before: Option<AvatarRef>,
    after: Option<AvatarRef>,
    new: Option<&StoredAvatar>,
) -> Result<(), Failure> {
    if let Some(old) = before.filter(|old| Some(*old) != after) {
        let statement = client.prepare_cached("DELETE FROM avatars WHERE id = $1").await?;
        client.execute(&statement, &[old.id.as_uuid()]).await?;
    }
    if let Some(new) = new {
        insert_avatar(client, new).await?;
    }
    Ok(())
}

/// Stores an avatar image (again, harmlessly, if it is there already).
async fn insert_avatar(client: &impl GenericClient, avatar: &StoredAvatar) -> Result<(), Failure> {
    let statement = client
        .prepare_cached(
            "INSERT INTO avatars (id, image_type, digest, bytes) VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING",
        )
        .await?;
    let kind = avatar.reference.kind.extension();
    client.execute(&statement, &[avatar.reference.id.as_uuid(), &kind, &avatar.digest, &avatar.bytes]).await?;
    Ok(())
}

/// An avatar image from a row of `id, image_type, digest, bytes`.
fn avatar_from_row(row: &Row) -> Result<StoredAvatar> {
    let kind: String = column(row, 1)?;
    let kind = ImageType::from_extension(&kind).ok_or_else(|| Error::storage(format!("image type {kind:?}")))?;
    Ok(StoredAvatar {
        reference: AvatarRef { id: AvatarId::from_uuid(column(row, 0)?), kind },
        digest: column(row, 2)?,
        bytes: column(row, 3)?,
    })
}

/// Chatbots read per batch of an export.
const EXPORT_BATCH: i64 = 500;

/// Avatar images read per batch of an export (up to a megabyte each).
const AVATAR_EXPORT_BATCH: i64 = 8;

/// A snapshot of the database: one REPEATABLE READ, READ ONLY transaction on a connection of its own,
/// read in id order, a batch at a time.
struct PgSnapshot {
    /// `None` once the transaction is committed (and the connection back in the pool).
    client: Option<deadpool_postgres::Object>,
    head_read: bool,
    /// Whether every chatbot has been read (avatar images come next).
    chatbots_read: bool,
    /// The last chatbot, then the last avatar image, read.
    after: Option<Uuid>,
}

impl PgSnapshot {
    async fn take(store: &PostgresStore) -> Result<Self> {
        let client = store.client().await.map_err(Failure::into_error)?;
        // The snapshot is taken by the transaction's first statement.
        client
            .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; SELECT 1")
            .await
            .map_err(|err| Failure::from(err).into_error())?;
        Ok(PgSnapshot { client: Some(client), head_read: false, chatbots_read: false, after: None })
    }

    async fn next_now(&mut self) -> Result<Option<Vec<Record>>, Failure> {
        let Some(client) = &self.client else { return Ok(None) };
        let mut batch = Vec::new();
        if !self.head_read {
            self.head_read = true;
            for row in client.query("SELECT id, name FROM organisations ORDER BY id", &[]).await? {
                batch.push(Record::Organisation(Organisation {
                    id: OrgId::from_uuid(column(&row, 0)?),
                    name: column(&row, 1)?,
                }));
            }
            let keys = "SELECT hash, id, organisation_id, prefix, created_at, last_used_at FROM api_keys ORDER BY created_at, id";
            for row in client.query(keys, &[]).await? {
                batch.push(Record::ApiKey(key_from_row(&row)?));
            }
            return Ok(Some(batch));
        }
        if !self.chatbots_read {
            let sql = format!("SELECT {COLUMNS} FROM chatbots WHERE $1::uuid IS NULL OR id > $1 ORDER BY id LIMIT $2");
            let rows = client.query(&sql, &[&self.after, &EXPORT_BATCH]).await?;
            for row in &rows {
                let chatbot = chatbot_from_row(row)?;
                self.after = Some(*chatbot.id.as_uuid());
                batch.push(Record::Chatbot(Box::new(chatbot)));
            }
            if rows.len() < EXPORT_BATCH as usize {
                (self.chatbots_read, self.after) = (true, None);
            }
            return Ok(Some(batch));
        }
        let sql =
            "SELECT id, image_type, digest, bytes FROM avatars WHERE $1::uuid IS NULL OR id > $1 ORDER BY id LIMIT $2";
        let rows = client.query(sql, &[&self.after, &AVATAR_EXPORT_BATCH]).await?;
        for row in &rows {
            let avatar = avatar_from_row(row)?;
            self.after = Some(*avatar.reference.id.as_uuid());
            batch.push(Record::Avatar(avatar));
        }
        if rows.len() < AVATAR_EXPORT_BATCH as usize {
            client.batch_execute("COMMIT").await?;
            self.client = None;
        }
        Ok(Some(batch))
    }
}

impl crate::store::Snapshot for PgSnapshot {
    fn next_batch(&mut self) -> StoreFuture<'_, Option<Vec<Record>>> {
        Box::pin(async move { self.next_now().await.map_err(Failure::into_error) })
    }
}

impl Drop for PgSnapshot {
    fn drop(&mut self) {
        // Left mid-transaction: close the connection rather than hand it back to the pool in one.
        if let Some(client) = self.client.take() {
            drop(deadpool_postgres::Object::take(client));
        }
    }
}

/// Inserts a key's record unless its hash is there already.
async fn insert_key(client: &impl GenericClient, key: &ApiKeyInfo) -> Result<(), Failure> {
    client
        .execute(
            "INSERT INTO api_keys (hash, id, organisation_id, prefix, created_at, last_used_at)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (hash) DO NOTHING",
            &[
                &key.hash.as_bytes().as_slice(),
                key.id.as_uuid(),
                key.organisation_id.as_uuid(),
                &key.prefix,
                &key.created_at.to_datetime(),
                &key.last_used_at.map(Timestamp::to_datetime),
            ],
        )
        .await?;
    Ok(())
}

/// A key's record from a row of (hash, id, organisation_id, prefix, created_at, last_used_at).
fn key_from_row(row: &Row) -> Result<ApiKeyInfo> {
    let hash: [u8; 32] =
        column::<&[u8]>(row, 0)?.try_into().map_err(|_| Error::storage("a key hash is not 32 bytes"))?;
    let last_used_at: Option<chrono::DateTime<chrono::Utc>> = column(row, 5)?;
    Ok(ApiKeyInfo {
        hash: KeyHash::from_bytes(hash),
        id: KeyId::from_uuid(column(row, 1)?),
        organisation_id: OrgId::from_uuid(column(row, 2)?),
        prefix: column(row, 3)?,
        created_at: Timestamp::from_datetime(column(row, 4)?),
        last_used_at: last_used_at.map(Timestamp::from_datetime),
    })
}

/// A claim record from a row of (fingerprint, created_at, outcome).
fn claim_from_row(row: &Row) -> Result<ClaimRecord> {
    let fingerprint: [u8; 32] =
        column::<&[u8]>(row, 0)?.try_into().map_err(|_| Error::storage("a fingerprint is not 32 bytes"))?;
    let Json(outcome): Json<Outcome> = column(row, 2)?;
    Ok(ClaimRecord {
        fingerprint: Fingerprint::from_bytes(fingerprint),
        at: Timestamp::from_datetime(column(row, 1)?),
        outcome,
    })
}

/// Within a write's transaction: what it finds of its key, as the sled engine's `check_claim`. An
/// existing record is locked; an expired one is removed, since the write replaces it.
async fn check_claim(
    tx: &deadpool_postgres::Transaction<'_>,
    org: OrgId,
    claim: &Claim,
) -> Result<Option<Outcome>, Failure> {
    let statement = tx
        .prepare_cached(
            "SELECT fingerprint, created_at, outcome FROM idempotency_keys WHERE organisation_id = $1 AND key = $2 FOR UPDATE",
        )
        .await?;
    let row = tx.query_opt(&statement, &[org.as_uuid(), &claim.key.as_str()]).await?;
    match claim.verdict(row.as_ref().map(claim_from_row).transpose()?)? {
        Verdict::Unclaimed => Ok(None),
        Verdict::Expired { .. } => {
            tx.execute(
                "DELETE FROM idempotency_keys WHERE organisation_id = $1 AND key = $2",
                &[org.as_uuid(), &claim.key.as_str()],
            )
            .await?;
            Ok(None)
        }
        Verdict::Replay(outcome) => Ok(Some(outcome)),
    }
}

/// Within a write's transaction: records its outcome under its key. A concurrent transaction that
/// claimed the same key first makes this one wait, then fail the insert: it runs again, and replays.
async fn record_claim(
    tx: &deadpool_postgres::Transaction<'_>,
    org: OrgId,
    claim: &Claim,
    outcome: Outcome,
) -> Result<(), Failure> {
    let statement = tx
        .prepare_cached(
            "INSERT INTO idempotency_keys (organisation_id, key, fingerprint, created_at, outcome)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (organisation_id, key) DO NOTHING",
        )
        .await?;
    let fingerprint = claim.fingerprint.as_bytes().as_slice();
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 5] =
        [org.as_uuid(), &claim.key.as_str(), &fingerprint, &claim.at.to_datetime(), &Json(&outcome)];
    match tx.execute(&statement, &params).await? {
        1 => Ok(()),
        _ => Err(Failure::Retry("a concurrent request claimed the same idempotency key".into())),
    }
}

/// Whether `err` is the unique slug index refusing a slug.
fn is_slug_conflict(err: &tokio_postgres::Error) -> bool {
    err.as_db_error()
        .is_some_and(|db| *db.code() == SqlState::UNIQUE_VIOLATION && db.constraint() == Some("chatbots_slug_key"))
}

/// The listing query for `filter`: per flag combination, an index scan of at most the page in listing
/// order (newest first, ties by ascending id), after the cursor when there is one; the scans merged
/// with `UNION ALL` and cut to the page. Parameters: `$1` organisation, then (with a cursor) `$2` its
/// creation time and `$3` its id, then the row limit.
fn list_sql(filter: Filter, with_cursor: bool) -> String {
    let (after, limit) =
        if with_cursor { (" AND (created_at < $2 OR (created_at = $2 AND id > $3))", "$4") } else { ("", "$2") };
    let scans: Vec<String> = filter
        .flag_combinations()
        .into_iter()
        .map(|(is_public, active)| {
            format!(
                "(SELECT id, created_at FROM chatbots \
                 WHERE organisation_id = $1 AND is_public = {is_public} AND active = {active}{after} \
                 ORDER BY created_at DESC, id LIMIT {limit})"
            )
        })
        .collect();
    let columns: Vec<String> = COLUMNS.split(", ").map(|c| format!("c.{c}")).collect();
    format!(
        "SELECT {} FROM ({}) AS page JOIN chatbots AS c ON c.id = page.id \
         ORDER BY page.created_at DESC, page.id LIMIT {limit}",
        columns.join(", "),
        scans.join(" UNION ALL ")
    )
}

/// The wait before attempt `number + 1`: 5 ms doubled each time, up to 320 ms, jittered by up to half
/// again so that replicas that collided do not collide again.
fn backoff(number: u32) -> Duration {
    let base = 5u64 << number.min(6);
    let mut random = [0u8; 8];
    let jitter = match getrandom::fill(&mut random) {
        Ok(()) => u64::from_le_bytes(random) % (base / 2 + 1),
        Err(_) => 0,
    };
    Duration::from_millis(base + jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listing_scans_one_range_per_flag_combination() {
        let all = list_sql(Filter::default(), false);
        assert_eq!(all.matches("UNION ALL").count(), 3);
        assert!(all.ends_with("LIMIT $2"));
        let one = list_sql(Filter { is_public: Some(true), active: Some(false) }, true);
        assert_eq!(one.matches("UNION ALL").count(), 0);
        assert!(one.contains("is_public = true AND active = false AND (created_at < $2"));
        assert!(one.ends_with("LIMIT $4"));
    }

    #[test]
    fn backoff_grows_and_stays_bounded() {
        assert!(backoff(0) >= Duration::from_millis(5) && backoff(0) <= Duration::from_millis(8));
        assert!(backoff(20) <= Duration::from_millis(480));
    }
}
