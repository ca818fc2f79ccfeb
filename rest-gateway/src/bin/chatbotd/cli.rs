//! The command line: every subcommand and flag (each flag with its environment variable), and the
//! start-up configuration the `serve` flags make.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use chatbot_core::fair_use::{self, RateLimits};
use chatbot_core::history::HistoryRetention;
use chatbot_core::store::Retention;
use chatbot_core::store::postgres::{Isolation, PostgresOptions};
use chatbot_core::store::sled::SledOptions;
use chatbot_core::{AllowList, Rules};
use clap::{Args, Parser, Subcommand, ValueEnum};
use grpc_server::CallLimits;
use humantime::Duration as Span;

use crate::commands::{Remote, Target};
use crate::connections::ConnectionLimits;
use crate::startup::{Config, Keys, StoreConfig};
use crate::tls::TlsFiles;
use anyhow::Context as _;
use chatbot_core::secrets::Keyring;

#[derive(Parser)]
#[command(name = "chatbotd", version, about = "Creates and manages chatbot configurations over REST and gRPC.")]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Option<Command>,
    /// How log lines are written to stderr (levels from RUST_LOG, default info).
    #[arg(long, global = true, env = "CHATBOTD_LOG_FORMAT", value_enum, default_value = "text")]
    pub(crate) log_format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum LogFormat {
    /// For people.
    Text,
    /// One JSON object a line, for log pipelines.
    Json,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Serve REST and gRPC (the default).
    Serve(Box<ServeArgs>),
    /// Manage API keys: against a running service with --server, or the store itself (with sled, only
    /// while no server holds it).
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Write every organisation, API key record and chatbot, as they were at one moment, to stdout as
    /// JSON lines (with --server, while the service goes on taking writes).
    Export {
        /// Write stored secrets in clear (to move a store to another keyring); by default they stay
        /// sealed, with their key ids, so that an export is no more dangerous than the store.
        #[arg(long)]
        decrypt: bool,
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Stored secrets: reseal them under the keyring's first key.
    #[command(subcommand)]
    Secrets(SecretsCommand),
    /// Read what `export` wrote from stdin into a store, checking each record; bad lines are reported
    /// by number.
    Import {
        #[command(flatten)]
        store: StoreArgs,
        /// Import even into a store that already holds organisations.
        #[arg(long)]
        allow_non_empty: bool,
    },
}

#[derive(Subcommand)]
pub(crate) enum SecretsCommand {
    /// Reseal every stored secret (in clear, or under an older key) under the keyring's first key, a
    /// batch at a time, with progress on stderr; through a running service with --server, while it
    /// serves. Safe to interrupt and run again; afterwards older keys can leave the keyring.
    Rotate {
        /// Chatbots per batch (each batch one atomic write).
        #[arg(long, default_value_t = chatbot_core::secrets::DEFAULT_ROTATION_BATCH)]
        batch_size: usize,
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        server: ServerArgs,
    },
}

#[derive(Subcommand)]
pub(crate) enum KeysCommand {
    /// Create a key for an organisation (created if needed) and print it as the last line of stdout.
    Create {
        /// The organisation's name.
        #[arg(long)]
        org: String,
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Print one line per key: its id, organisation, first characters, creation and last use.
    List {
        /// Only this organisation's keys.
        #[arg(long)]
        org: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Revoke a key by its id: it lets nothing in from the next request on.
    Revoke {
        /// The key's id (from `keys list`).
        id: String,
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        server: ServerArgs,
    },
}

/// How to reach a running service's admin API.
#[derive(Args, Clone)]
pub(crate) struct ServerArgs {
    /// A running chatbotd's gRPC address (e.g. http://127.0.0.1:50051): act through its admin API
    /// instead of opening the store.
    #[arg(long, env = "CHATBOTD_SERVER")]
    pub(crate) server: Option<String>,
    /// The admin token that service was started with.
    #[arg(long, env = "CHATBOTD_ADMIN_TOKEN", hide_env_values = true)]
    pub(crate) admin_token: Option<String>,
}

impl ServerArgs {
    /// The service's admin API if --server is given, else the store.
    pub(crate) async fn target(&self, store: &StoreArgs) -> anyhow::Result<Target> {
        Ok(match &self.server {
            Some(url) => Target::Server(Remote::connect(url, self.admin_token.as_deref()).await?),
            None => Target::Store(Box::new(store.open().await?)),
        })
    }
}

/// The isolation level of PostgreSQL transactions.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum IsolationArg {
    ReadCommitted,
    Serializable,
}

#[derive(Args, Clone)]
pub(crate) struct StoreArgs {
    /// Directory of the sled store (used unless --database-url is given).
    #[arg(long, env = "CHATBOTD_DATA_DIR", default_value = "./data")]
    pub(crate) data_dir: PathBuf,
    /// The most memory the sled store's page cache may take (e.g. `128MiB`, `1GiB`).
    #[arg(long, env = "CHATBOTD_CACHE_SIZE", default_value = "128MiB")]
    pub(crate) cache_size: bytesize::ByteSize,
    /// Use PostgreSQL instead of sled: postgres://user:password@host:port/database.
    #[arg(long, env = "CHATBOTD_DATABASE_URL", hide_env_values = true)]
    pub(crate) database_url: Option<String>,
    /// Most PostgreSQL connections this process opens.
    #[arg(long, env = "CHATBOTD_DATABASE_POOL_SIZE", default_value_t = PostgresOptions::default().pool_size)]
    pub(crate) database_pool_size: usize,
    /// How long connecting to PostgreSQL, waiting for a connection, or one statement may take before the
    /// request fails with 503 `unavailable` (e.g. `3s`, `500ms`).
    #[arg(long, env = "CHATBOTD_DATABASE_TIMEOUT", default_value_t = Span::from(PostgresOptions::default().timeout))]
    pub(crate) database_timeout: Span,
    /// The isolation level of PostgreSQL transactions.
    #[arg(long, env = "CHATBOTD_DATABASE_ISOLATION", value_enum, default_value = "read-committed")]
    pub(crate) database_isolation: IsolationArg,
    /// Testing only: make the first attempt of every PostgreSQL transaction fail with a serialization
    /// failure, to exercise the retry path.
    #[arg(long, hide = true)]
    pub(crate) database_fault_injection: bool,
    /// Allowed models, comma-separated (default: gpt-4o-mini, gpt-4o, gpt-4.1, gpt-4.1-mini,
    /// gpt-4.1-nano, o3-mini).
    #[arg(long, env = "CHATBOTD_MODELS", value_delimiter = ',')]
    pub(crate) models: Vec<String>,
    /// Allowed voice agent voices, comma-separated (default: alloy, ash, ballad, coral, echo, sage,
    /// shimmer, verse).
    #[arg(long, env = "CHATBOTD_VOICES", value_delimiter = ',')]
    pub(crate) voices: Vec<String>,
    /// The keyring that seals stored secrets (`openai_api_key`): a file of `key-id=<32 bytes in
    /// base64>` lines, the first of which seals and all of which open. With sled the default is
    /// `secret-keys` in the data directory, made on the first start; PostgreSQL needs one given.
    #[arg(long, env = "CHATBOTD_SECRET_KEYS_FILE")]
    pub(crate) secret_keys_file: Option<PathBuf>,
    /// The keyring itself, as the file would hold it (entries separated by newlines or commas); given
    /// twice, the last one counts. Takes precedence over --secret-keys-file.
    #[arg(long, env = "CHATBOTD_SECRET_KEYS", hide_env_values = true, overrides_with = "secret_keys")]
    pub(crate) secret_keys: Option<String>,
    /// With PostgreSQL and no keyring: store secrets in clear rather than refuse to start. Anyone who
    /// reads the database or a backup of it can then read every customer's provider key.
    #[arg(long, env = "CHATBOTD_ALLOW_PLAINTEXT_SECRETS")]
    pub(crate) allow_plaintext_secrets: bool,
}

impl StoreArgs {
    pub(crate) fn rules(&self) -> Rules {
        Rules { models: AllowList::models(&self.models), voices: AllowList::voices(&self.voices) }
    }

    /// Where the store is, and how its engine runs, keeping what it prunes for `retention`.
    pub(crate) fn store(&self, retention: Retention) -> StoreConfig {
        match &self.database_url {
            None => StoreConfig::Sled {
                data_dir: self.data_dir.clone(),
                options: SledOptions { cache_bytes: self.cache_size.as_u64(), retention },
            },
            Some(url) => StoreConfig::Postgres {
                url: url.clone(),
                options: PostgresOptions {
                    pool_size: self.database_pool_size.max(1),
                    timeout: Duration::from(self.database_timeout).max(Duration::from_millis(1)),
                    isolation: match self.database_isolation {
                        IsolationArg::ReadCommitted => Isolation::ReadCommitted,
                        IsolationArg::Serializable => Isolation::Serializable,
                    },
                    inject_serialization_failures: self.database_fault_injection,
                    retention,
                },
            },
        }
    }

    /// Where the keyring comes from: given, the data directory's (sled), or none at all (PostgreSQL
    /// with `--allow-plaintext-secrets` only).
    pub(crate) fn keys(&self) -> anyhow::Result<Keys> {
        if let Some(text) = self.secret_keys.as_deref().filter(|text| !text.trim().is_empty()) {
            return Ok(Keys::Given(Keyring::parse(text).context("CHATBOTD_SECRET_KEYS")?));
        }
        if let Some(path) = &self.secret_keys_file {
            return Ok(Keys::Given(Keyring::read(path)?));
        }
        match (&self.database_url, self.allow_plaintext_secrets) {
            (None, _) => Ok(Keys::InDataDir),
            (Some(_), true) => Ok(Keys::Plaintext),
            (Some(_), false) => anyhow::bail!(
                "with PostgreSQL every replica needs the keyring that seals stored secrets: give the same one \
                 to each with --secret-keys-file or CHATBOTD_SECRET_KEYS (make one with \
                 `echo \"key-1=$(openssl rand -base64 32)\"`), or start with --allow-plaintext-secrets to \
                 store them in clear"
            ),
        }
    }

    /// The store, for an operator's command (which prunes nothing it would not prune serving).
    pub(crate) async fn open(&self) -> anyhow::Result<chatbot_core::Registry> {
        let store = self.store(Retention::default());
        store.open(self.rules(), chatbot_core::RegistryOptions::default(), self.keys()?).await
    }
}

#[derive(Args, Clone)]
pub(crate) struct ServeArgs {
    #[command(flatten)]
    pub(crate) store: StoreArgs,
    /// Address of the REST gateway.
    #[arg(long, env = "CHATBOTD_REST_ADDR", default_value = "127.0.0.1:8080")]
    pub(crate) rest_addr: SocketAddr,
    /// Address of the gRPC service.
    #[arg(long, env = "CHATBOTD_GRPC_ADDR", default_value = "127.0.0.1:50051")]
    pub(crate) grpc_addr: SocketAddr,
    /// An API key to make valid for the default organisation (for scripts and containers).
    #[arg(long, env = "CHATBOTD_API_KEY", hide_env_values = true)]
    pub(crate) api_key: Option<String>,
    /// Requests a second per API key (and burst); 0 turns the limit off.
    #[arg(long, env = "CHATBOTD_RATE_LIMIT", default_value_t = fair_use::DEFAULT_PER_KEY)]
    pub(crate) rate_limit: u32,
    /// Requests a second per client address for requests without a valid key (and burst); 0 turns the
    /// limit off.
    #[arg(long, env = "CHATBOTD_CLIENT_RATE_LIMIT", default_value_t = fair_use::DEFAULT_PER_CLIENT)]
    pub(crate) client_rate_limit: u32,
    /// Requests a second per client address on the public routes (a widget's configuration and
    /// avatars, which need no key), and burst; 0 turns the limit off.
    #[arg(long, env = "CHATBOTD_PUBLIC_RATE_LIMIT", default_value_t = fair_use::DEFAULT_PER_PUBLIC_CLIENT)]
    pub(crate) public_rate_limit: u32,
    /// How long an idempotency key (and the answer it replays) is kept.
    #[arg(long, env = "CHATBOTD_IDEMPOTENCY_TTL", default_value_t = Span::from(Retention::default().claims))]
    pub(crate) idempotency_ttl: Span,
    /// Most connections open at once, per face; past it the connection quiet for longest is closed to
    /// make room, or, if every one is busy, new ones are refused (REST: 503).
    #[arg(long, env = "CHATBOTD_MAX_CONNECTIONS", default_value_t = 4096)]
    pub(crate) max_connections: usize,
    /// Most connections open at once from one client address, per face; past it new ones from that
    /// address are refused (REST: 503).
    #[arg(long, env = "CHATBOTD_MAX_CONNECTIONS_PER_CLIENT", default_value_t = 256)]
    pub(crate) max_connections_per_client: usize,
    /// How long a client may take to send a request's head; also how long an idle HTTP/1 keep-alive
    /// connection waits for the next request.
    #[arg(long, env = "CHATBOTD_HEADER_TIMEOUT", default_value = "10s")]
    pub(crate) header_timeout: Span,
    /// How long a connection may stay silent before it is closed (one that has not sent a byte yet
    /// gets the header timeout).
    #[arg(long, env = "CHATBOTD_IDLE_TIMEOUT", default_value = "60s")]
    pub(crate) idle_timeout: Span,
    /// How long a write may wait for a client that does not read (a change stream nobody reads, once
    /// the socket's buffers are full) before its connection is closed.
    #[arg(long, env = "CHATBOTD_WRITE_TIMEOUT", default_value = "30s")]
    pub(crate) write_timeout: Span,
    /// How long one request may take, from its first byte to its answer (REST 408, gRPC
    /// DEADLINE_EXCEEDED).
    #[arg(long, env = "CHATBOTD_REQUEST_TIMEOUT", default_value_t = Span::from(rest_gateway::DEFAULT_REQUEST_TIMEOUT))]
    pub(crate) request_timeout: Span,
    /// Most concurrent HTTP/2 streams (gRPC calls) on one connection.
    #[arg(long, env = "CHATBOTD_MAX_STREAMS", default_value_t = 128)]
    pub(crate) max_streams: u32,
    /// Most header lines in one request.
    #[arg(long, env = "CHATBOTD_MAX_HEADERS", default_value_t = 64)]
    pub(crate) max_headers: usize,
    /// How long requests in flight may take to finish after SIGTERM.
    #[arg(long, env = "CHATBOTD_SHUTDOWN_GRACE", default_value = "10s")]
    pub(crate) shutdown_grace: Span,
    /// Serve `/metrics` on this address instead of the REST one.
    #[arg(long, env = "CHATBOTD_METRICS_ADDR")]
    pub(crate) metrics_addr: Option<SocketAddr>,
    /// Turns the admin API (key management, exports) on, for callers presenting this token as
    /// `x-admin-token`.
    #[arg(long, env = "CHATBOTD_ADMIN_TOKEN", hide_env_values = true)]
    pub(crate) admin_token: Option<String>,
    /// What the service's public URLs (avatar images) start with, as browsers reach the REST face
    /// (`https://bots.example.com`); default `http://` and the REST address.
    #[arg(long, env = "CHATBOTD_PUBLIC_URL", value_parser = parse_public_url)]
    pub(crate) public_url: Option<String>,
    /// How long the change log keeps events; a watcher resuming from an older token is told to resync.
    #[arg(long, env = "CHATBOTD_CHANGE_RETENTION", default_value_t = Span::from(Retention::default().changes))]
    pub(crate) change_retention: Span,
    /// Revisions kept per chatbot, however old (besides every one younger than --history-max-age).
    #[arg(long, env = "CHATBOTD_HISTORY_KEEP", default_value_t = chatbot_core::history::DEFAULT_HISTORY_KEEP,
          value_parser = clap::value_parser!(usize))]
    pub(crate) history_keep: usize,
    /// Revisions younger than this are kept, however many (besides the newest --history-keep).
    #[arg(long, env = "CHATBOTD_HISTORY_MAX_AGE", default_value = "90days")]
    pub(crate) history_max_age: Span,
    /// How long a deleted chatbot is kept for undelete (its slug reserved against other
    /// organisations meanwhile); `0s` deletes at once, history and all.
    #[arg(long, env = "CHATBOTD_UNDELETE_WINDOW", default_value = "30days")]
    pub(crate) undelete_window: Span,
    /// Public widget configurations (and unknown slugs, for a second) each replica keeps in memory,
    /// kept fresh by the change log; 0 reads the store every time.
    #[arg(long, env = "CHATBOTD_PUBLIC_CACHE_SIZE", default_value_t = chatbot_core::public::DEFAULT_PUBLIC_CACHE_ENTRIES)]
    pub(crate) public_cache_size: usize,
    /// Most change streams (SSE and gRPC watches) open at once.
    #[arg(long, env = "CHATBOTD_MAX_WATCHERS", default_value_t = chatbot_core::DEFAULT_MAX_WATCHERS)]
    pub(crate) max_watchers: usize,
    /// Most change streams open at once per organisation.
    #[arg(long, env = "CHATBOTD_MAX_WATCHERS_PER_ORG", default_value_t = chatbot_core::DEFAULT_MAX_WATCHERS_PER_ORG)]
    pub(crate) max_watchers_per_org: usize,
    /// Change streams an organisation may open a second (with a burst of ten times as many), so that a
    /// client reconnecting in a loop is slowed (REST 429, gRPC RESOURCE_EXHAUSTED); 0 turns it off.
    #[arg(long, env = "CHATBOTD_WATCH_RATE_LIMIT", default_value_t = fair_use::DEFAULT_WATCH_OPENS_PER_ORG)]
    pub(crate) watch_rate_limit: u32,
    /// Serve both faces over TLS with this certificate chain (PEM, the server's own first); re-read
    /// without a restart when the file changes or on SIGHUP. Needs --tls-key.
    #[arg(long, env = "CHATBOTD_TLS_CERT", requires = "tls_key")]
    pub(crate) tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, env = "CHATBOTD_TLS_KEY", requires = "tls_cert")]
    pub(crate) tls_key: Option<PathBuf>,
    /// Mutual TLS on gRPC: refuse, at the handshake, a caller without a certificate signed by this CA
    /// (PEM). Needs --tls-cert.
    #[arg(long, env = "CHATBOTD_TLS_CLIENT_CA", requires = "tls_cert")]
    pub(crate) tls_client_ca: Option<PathBuf>,
    /// How often an idle change stream gets a heartbeat.
    #[arg(long, env = "CHATBOTD_HEARTBEAT", default_value_t = Span::from(chatbot_core::DEFAULT_HEARTBEAT))]
    pub(crate) heartbeat: Span,
}

/// An absolute http(s) URL without a query or fragment.
fn parse_public_url(value: &str) -> Result<String, String> {
    let url = url::Url::parse(value).map_err(|err| err.to_string())?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err("must be an absolute http(s) URL".to_owned());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must have no query or fragment".to_owned());
    }
    Ok(value.trim_end_matches('/').to_owned())
}

impl Default for ServeArgs {
    fn default() -> Self {
        let Cli { command: Some(Command::Serve(args)), .. } = Cli::parse_from(["chatbotd", "serve"]) else {
            unreachable!("`chatbotd serve` parses as the serve command")
        };
        *args
    }
}

impl ServeArgs {
    /// What the service starts with, from the command line: every limit, the store, and `metrics` (the
    /// Prometheus recorder, installed once per process, or none). Refuses an admin token too short to
    /// resist guessing.
    pub(crate) fn config(self, metrics: Option<rest_gateway::MetricsRenderer>) -> anyhow::Result<Config> {
        if let Some(token) = self.admin_token.as_deref().filter(|token| !token.is_empty()) {
            let chars = token.chars().count();
            anyhow::ensure!(
                chars >= grpc_server::MIN_ADMIN_TOKEN_CHARS,
                "CHATBOTD_ADMIN_TOKEN must be at least {} characters (it has {chars}): make one with \
                 `openssl rand -hex 32`",
                grpc_server::MIN_ADMIN_TOKEN_CHARS
            );
        }
        let history = HistoryRetention { keep: self.history_keep.max(1), max_age: self.history_max_age.into() };
        let retention =
            Retention { changes: self.change_retention.into(), claims: self.idempotency_ttl.into(), history };
        let tls = match (self.tls_cert, self.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key, client_ca: self.tls_client_ca }),
            _ => None,
        };
        Ok(Config {
            tls,
            keys: self.store.keys()?,
            rules: self.store.rules(),
            store: self.store.store(retention),
            rest_addr: self.rest_addr,
            grpc_addr: self.grpc_addr,
            api_key: self.api_key,
            rate_limits: RateLimits::new(self.rate_limit, self.client_rate_limit)
                .with_public(self.public_rate_limit)
                .with_watch_opens(self.watch_rate_limit),
            connections: ConnectionLimits {
                max_connections: self.max_connections.max(1),
                max_connections_per_client: self.max_connections_per_client.max(1),
                header_timeout: self.header_timeout.into(),
                idle_timeout: self.idle_timeout.into(),
                write_timeout: self.write_timeout.into(),
                max_headers: self.max_headers.max(1),
                max_streams: self.max_streams.max(1),
            },
            calls: CallLimits {
                max_streams: self.max_streams.max(1),
                request_timeout: self.request_timeout.into(),
                keepalive: Duration::from(self.idle_timeout) / 2,
            },
            shutdown_grace: self.shutdown_grace.into(),
            metrics,
            metrics_addr: self.metrics_addr,
            admin_token: self.admin_token,
            public_url: self.public_url,
            max_watchers: self.max_watchers,
            max_watchers_per_org: self.max_watchers_per_org,
            undelete_window: self.undelete_window.into(),
            public_cache_entries: self.public_cache_size,
            heartbeat: self.heartbeat.into(),
        })
    }
}
