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

mod archive;
mod avatars;
mod background;
mod batch;
mod bin;
mod changes;
mod chatbots;
mod claims;
mod failure;
mod history;
mod keys;
mod resealing;
mod schema;
mod tls;

/// The statement a listing of `filter` runs (parameters: the organisation, then with a cursor its
/// creation time and id, then the row limit), for suites that look at its plan.
#[cfg(feature = "conformance")]
pub fn listing_statement(filter: super::Filter, with_cursor: bool) -> String {
    chatbots::list_sql(filter, with_cursor)
}

use std::future::Future;
use std::time::Duration;

use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::Row;

use self::failure::{Failure, backoff};

use crate::changes::ChangeSignal;
use crate::error::{Error, Result};
use crate::idempotency::Written;
use crate::store::{Lifecycle, Retention, StoreFuture};

/// Most attempts of one transaction before its serialization failures are reported as unavailability.
const MAX_ATTEMPTS: u32 = 8;

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
    /// The queues of the create batchers (group commit); `None` in the tasks' own handles.
    creates: Option<batch::Batchers<batch::NewRecord>>,
    /// The queues of the update batchers (group commit); `None` in the tasks' own handles.
    updates: Option<batch::Batchers<batch::Replacement>>,
}

/// A value read from a row, or a storage error (a column of an unexpected type is a corrupt store).
fn column<'a, T: tokio_postgres::types::FromSql<'a>>(row: &'a Row, index: usize) -> Result<T> {
    row.try_get(index).map_err(Error::storage)
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://user:password@host:port/database`), brings its
    /// schema up to date, and warns loudly if it does not make commits durable.
    pub async fn connect(url: &str, options: PostgresOptions) -> Result<Self> {
        let (url, tls) = tls::split_url(url)?;
        let mut config: tokio_postgres::Config =
            url.parse().map_err(|err| Error::storage(format!("the database URL is not valid: {err}")))?;
        config.ssl_mode(tls.ssl_mode());
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
        let manager =
            Manager::from_config(config, tls.connector()?, ManagerConfig { recycling_method: RecyclingMethod::Fast });
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
            creates: None,
            updates: None,
        };
        store.migrate().await?;
        store.with_retries(|_| store.publish_now()).await?;
        store.warn_unless_durable().await;
        let (creates, mut batchers) = batch::Batchers::start(&store);
        let (updates, update_batchers) = batch::Batchers::start(&store);
        batchers.extend(update_batchers);
        store.creates = Some(creates);
        store.updates = Some(updates);
        store.background = Some(background::Tasks::start(&store, batchers));
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
            creates: None,
            updates: None,
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
        metrics::gauge!(crate::metric::STORE_POOL_CONNECTIONS, "state" => "in_use")
            .set((status.size - status.available) as f64);
        metrics::gauge!(crate::metric::STORE_POOL_CONNECTIONS, "state" => "idle").set(status.available as f64);
        metrics::gauge!(crate::metric::STORE_POOL_WAITING).set(status.waiting as f64);
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
                    metrics::counter!(crate::metric::STORE_RETRIES).increment(1);
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

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore").field("options", &self.options).finish_non_exhaustive()
    }
}
