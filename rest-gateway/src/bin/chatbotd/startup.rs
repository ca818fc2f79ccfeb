//! Start-up, in one place: open the store, make sure someone can use it, bind both faces, then serve
//! until told to stop, with the upkeep (expired idempotency keys, idle rate-limit buckets) running in
//! the background. The binary is its only caller; tests and the benchmark run the binary.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use chatbot_core::fair_use::RateLimits;
use chatbot_core::secrets::{AtStart, Keyring};
use chatbot_core::store::postgres::{PostgresOptions, PostgresStore};
use chatbot_core::store::sled::{SledOptions, SledStore};
use chatbot_core::{ApiKey, Registry, RegistryOptions, Rules};
use grpc_server::CallLimits;
use rest_gateway::events::Watching;
use rest_gateway::{AppOptions, MetricsRenderer};

use crate::connections::ConnectionLimits;
use crate::tls::{Tls, TlsFiles};
use crate::{grpc, rest};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// The organisation that the first key (or `CHATBOTD_API_KEY`) belongs to.
pub const DEFAULT_ORG: &str = "default";

/// Where the chatbots are kept.
#[derive(Debug, Clone)]
pub enum StoreConfig {
    /// The embedded sled store in this directory (one process at a time).
    Sled {
        /// Its directory.
        data_dir: PathBuf,
        /// Its cache and retention.
        options: SledOptions,
    },
    /// A PostgreSQL database, shared by any number of replicas.
    Postgres {
        /// `postgres://user:password@host:port/database`.
        url: String,
        /// Pool size, timeouts, isolation.
        options: PostgresOptions,
    },
}

/// How long a replica waits at start for a database it cannot reach, before it gives up.
const DATABASE_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Where the keyring that seals stored secrets comes from.
pub enum Keys {
    /// Given by the operator (`--secret-keys-file`, `CHATBOTD_SECRET_KEYS`).
    Given(Keyring),
    /// The sled data directory's, made on its first start.
    InDataDir,
    /// None: secrets are stored in clear (`--allow-plaintext-secrets`, PostgreSQL only).
    Plaintext,
}

impl Keys {
    /// The keyring, making the data directory's if it is the one and there is none yet.
    fn keyring(self, data_dir: Option<&std::path::Path>) -> anyhow::Result<Option<Keyring>> {
        match (self, data_dir) {
            (Keys::Given(keyring), _) => Ok(Some(keyring)),
            (Keys::InDataDir, Some(dir)) => {
                let path = dir.join(chatbot_core::secrets::KEYRING_FILE);
                let (keyring, made) = Keyring::read_or_create(&path)?;
                if made {
                    tracing::warn!(
                        path = %path.display(),
                        "made a keyring to seal stored secrets (readable by this user only); keep a copy apart \
                         from the data directory and its backups: without it stored secrets cannot be opened, \
                         and beside them it protects nothing (see --secret-keys-file)"
                    );
                }
                Ok(Some(keyring))
            }
            (Keys::InDataDir | Keys::Plaintext, _) => {
                tracing::warn!(
                    "STORED SECRETS ARE KEPT IN CLEAR (--allow-plaintext-secrets): anyone who reads the database \
                     or a backup of it can read every customer's OpenAI key. Give a keyring with \
                     --secret-keys-file, then run `chatbotd secrets rotate`."
                );
                Ok(None)
            }
        }
    }
}

impl StoreConfig {
    /// A registry enforcing `rules` over this store, running as `options` say, sealing secrets with
    /// the keyring `keys` names.
    pub async fn open(&self, rules: Rules, mut options: RegistryOptions, keys: Keys) -> anyhow::Result<Registry> {
        match self {
            StoreConfig::Sled { data_dir, options: engine } => {
                let store = SledStore::open_with(data_dir, *engine).with_context(|| {
                    format!("cannot open the store in {} (is another chatbotd using it?)", data_dir.display())
                })?;
                options.keyring = keys.keyring(Some(data_dir))?;
                Ok(Registry::with_options(store, rules, options))
            }
            StoreConfig::Postgres { url, options: engine } => {
                // A database that cannot be reached yet (starting, failing over, or too busy to answer
                // within --database-timeout) is waited for, not given up on at once: replicas often
                // start before their database. Anything else (a bad URL, a refused password, a schema
                // newer than this binary) ends the start at once.
                let started = std::time::Instant::now();
                let mut wait = std::time::Duration::from_millis(100);
                let store = loop {
                    match PostgresStore::connect(url, engine.clone()).await {
                        Ok(store) => break store,
                        Err(err @ chatbot_core::Error::Unavailable(_)) if started.elapsed() < DATABASE_WAIT => {
                            tracing::warn!(error = %err, "the database cannot be reached yet; trying again");
                            tokio::time::sleep(wait).await;
                            wait = (wait * 2).min(std::time::Duration::from_secs(2));
                        }
                        Err(err) => return Err(err).context("cannot use the database"),
                    }
                };
                options.keyring = keys.keyring(None)?;
                Ok(Registry::with_options(store, rules, options))
            }
        }
    }
}

/// Everything the service needs to start.
pub struct Config {
    /// Where the chatbots are kept.
    pub store: StoreConfig,
    /// The keyring that seals stored secrets.
    pub keys: Keys,
    /// TLS on both faces, when on.
    pub tls: Option<TlsFiles>,
    /// The rules chatbots must obey.
    pub rules: Rules,
    /// Where REST listens (port 0 picks a free one).
    pub rest_addr: SocketAddr,
    /// Where gRPC listens.
    pub grpc_addr: SocketAddr,
    /// A key to make valid for the default organisation (scripts, containers).
    pub api_key: Option<String>,
    /// Requests a second per API key, and per client address without a valid key.
    pub rate_limits: RateLimits,
    /// What every connection of either face is held to.
    pub connections: ConnectionLimits,
    /// What every call is held to: how long it may take, how many may share a connection.
    pub calls: CallLimits,
    /// How long requests in flight may take to finish once the service is told to stop.
    pub shutdown_grace: Duration,
    /// Renders the metrics; served at `/metrics` on the REST address, or on `metrics_addr`.
    pub metrics: Option<MetricsRenderer>,
    /// Where to serve `/metrics` instead of the REST address.
    pub metrics_addr: Option<SocketAddr>,
    /// The admin API's token; without one, the admin API refuses every call.
    pub admin_token: Option<String>,
    /// What public URLs (avatar images) start with; by default `http://` and the REST address.
    pub public_url: Option<String>,
    /// Most watches open at once.
    pub max_watchers: usize,
    /// Most watches open at once per organisation.
    pub max_watchers_per_org: usize,
    /// How long a deleted chatbot is kept for undelete.
    pub undelete_window: Duration,
    /// Public widget configurations held in memory.
    pub public_cache_entries: usize,
    /// How often an idle watch gets a heartbeat.
    pub heartbeat: Duration,
}

/// The service, built and bound, not yet serving.
pub struct Application {
    registry: Arc<Registry>,
    rest: TcpListener,
    grpc: TcpListener,
    first_key: Option<ApiKey>,
    connections: ConnectionLimits,
    calls: CallLimits,
    shutdown_grace: Duration,
    metrics: Option<MetricsRenderer>,
    metrics_listener: Option<TcpListener>,
    admin_token: Option<String>,
    heartbeat: Duration,
    /// Whether to reseal stored secrets at start (the embedded engine).
    seal_at_start: bool,
    /// Both faces' TLS, when on.
    tls: Option<Tls>,
}

impl Application {
    /// Opens the store, makes sure a key exists and binds both listeners.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let rest = bind(config.rest_addr).await?;
        let public_url = match config.public_url {
            Some(url) => url,
            None => format!("{}://{}", if config.tls.is_some() { "https" } else { "http" }, rest.local_addr()?),
        };
        let options = RegistryOptions {
            rate_limits: config.rate_limits,
            public_url,
            max_watchers: config.max_watchers,
            max_watchers_per_org: config.max_watchers_per_org,
            undelete_window: config.undelete_window,
            public_cache_entries: config.public_cache_entries,
            keyring: None,
        };
        let seal_at_start = matches!(config.store, StoreConfig::Sled { .. });
        let tls = config.tls.as_ref().map(Tls::load).transpose().context("cannot set up TLS")?;
        let registry = config.store.open(config.rules, options, config.keys).await?;
        let first_key = bootstrap_key(&registry, config.api_key.as_deref()).await?;
        Ok(Application {
            registry: Arc::new(registry),
            rest,
            grpc: bind(config.grpc_addr).await?,
            first_key,
            connections: config.connections,
            calls: config.calls,
            shutdown_grace: config.shutdown_grace,
            metrics_listener: match (config.metrics_addr, &config.metrics) {
                (Some(addr), Some(_)) => Some(bind(addr).await?),
                _ => None,
            },
            metrics: config.metrics,
            admin_token: config.admin_token,
            heartbeat: config.heartbeat,
            seal_at_start,
            tls,
        })
    }

    /// The key created on the very first start, to show its owner once.
    pub fn first_key(&self) -> Option<&ApiKey> {
        self.first_key.as_ref()
    }

    /// Where REST listens.
    pub fn rest_addr(&self) -> std::io::Result<SocketAddr> {
        self.rest.local_addr()
    }

    /// Where gRPC listens.
    pub fn grpc_addr(&self) -> std::io::Result<SocketAddr> {
        self.grpc.local_addr()
    }

    /// Where `/metrics` is served apart from REST, if it is.
    pub fn metrics_addr(&self) -> Option<std::io::Result<SocketAddr>> {
        self.metrics_listener.as_ref().map(TcpListener::local_addr)
    }

    /// Serves both faces until `stop` completes; then drains: `/healthz` turns to 503 and no new
    /// connection is taken at once, the requests in flight get the grace period to finish, and the store
    /// is flushed and closed.
    pub async fn run_until_stopped(self, stop: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let (stopping, stopped) = watch::channel(false);
        let draining = Arc::new(AtomicBool::new(false));
        let drain = Arc::clone(&draining);
        // Watches never end by themselves: they end at once when the service drains.
        let watches_end = CancellationToken::new();
        let end_watches = watches_end.clone();
        tokio::spawn(async move {
            stop.await;
            tracing::info!("shutting down: draining the requests in flight");
            drain.store(true, Ordering::Relaxed);
            end_watches.cancel();
            let _ = stopping.send(true);
        });
        let until_stopped = move || {
            let mut stopped = stopped.clone();
            async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            }
        };

        let api =
            grpc_server::ChatbotApi::new(Arc::clone(&self.registry)).with_watching(self.heartbeat, watches_end.clone());
        let admin = grpc_server::AdminApi::new(&self.registry, self.admin_token.as_deref());
        let incoming = grpc::incoming(self.grpc, &self.connections, self.tls.as_ref().map(|tls| tls.grpc.clone()));
        let grpc = tokio::spawn(grpc_server::serve(incoming, api, admin, self.calls.clone(), until_stopped()));
        let maintenance = tokio::spawn(forget_idle_buckets(Arc::clone(&self.registry)));
        let sealing = tokio::spawn(secrets_at_start(Arc::clone(&self.registry), self.seal_at_start));
        let on_rest = self.metrics.clone().filter(|_| self.metrics_listener.is_none());
        if let (Some(listener), Some(render)) = (self.metrics_listener, self.metrics.clone()) {
            let metrics =
                axum::Router::new().route("/metrics", axum::routing::get(move || std::future::ready(render())));
            tokio::spawn(async move { axum::serve(listener, metrics).await });
        }
        let watching = Watching::new(self.heartbeat, watches_end);
        let options = AppOptions { request_timeout: self.calls.request_timeout, draining, metrics: on_rest, watching };
        let app = rest_gateway::app_with(Arc::clone(&self.registry), options);
        let tls = self.tls.map(|tls| tls.rest);
        rest::serve(self.rest, app, self.connections, until_stopped(), self.shutdown_grace, tls).await?;
        grpc.await??;
        maintenance.abort();
        sealing.abort();
        self.registry.close().await.context("cannot flush the store")?;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Forgets, once a minute, the rate-limit buckets of callers that have been quiet (the store's own
/// upkeep, pruning the change log and idempotency keys, is the engine's).
async fn forget_idle_buckets(registry: Arc<Registry>) {
    let mut ticks = tokio::time::interval(Duration::from_secs(60));
    loop {
        ticks.tick().await;
        registry.admission().rate_limits().forget_idle();
    }
}

/// Takes the census of stored secrets for `/healthz` and the `chatbotd_secrets_stale` gauge; first,
/// with `seal` (the embedded engine, whose one process is the only writer), reseals what is in clear or
/// under an older key: the start-up migration of a store written before sealing, or after a new first
/// key. An embedded store left by a clean shutdown under the same first key, and not written since, is
/// not read at all. With PostgreSQL resealing is `chatbotd secrets rotate`'s job, run once for all
/// replicas.
async fn secrets_at_start(registry: Arc<Registry>, seal: bool) {
    let secrets = registry.secrets();
    let outcome = match seal && secrets.keyring().is_some() {
        true => secrets.seal_at_start(chatbot_core::secrets::DEFAULT_ROTATION_BATCH).await.map(|found| {
            match found {
                AtStart::Unchanged(_) => {
                    tracing::info!("stored secrets unchanged since a clean shutdown under the same key: not read")
                }
                AtStart::Looked { rotation, .. } if rotation.resealed > 0 => {
                    tracing::info!(resealed = rotation.resealed, "sealed stored secrets under the keyring's first key")
                }
                AtStart::Looked { .. } => {}
            }
            found.census()
        }),
        false => secrets.census().await,
    };
    match outcome {
        Ok(census) if census.stale() > 0 => tracing::warn!(
            under_older_keys = census.older,
            under_unknown_keys = census.unknown_key,
            in_clear = census.clear,
            "stored secrets are not all sealed under the keyring's first key: run `chatbotd secrets rotate`"
        ),
        Ok(_) => {}
        Err(err) => tracing::warn!(error = %err, "cannot take the census of stored secrets"),
    }
}

/// Makes sure someone can use the service: the operator's key if given, else a new key for the
/// default organisation on the very first start (returned, to be printed once).
async fn bootstrap_key(registry: &Registry, given: Option<&str>) -> anyhow::Result<Option<ApiKey>> {
    if let Some(secret) = given.filter(|s| !s.is_empty()) {
        let key = ApiKey::from_secret(secret);
        registry.admission().add_api_key(DEFAULT_ORG, &key).await.context("cannot register CHATBOTD_API_KEY")?;
        Ok(None)
    } else {
        Ok(registry.admission().create_first_api_key(DEFAULT_ORG).await?)
    }
}

async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))
}
