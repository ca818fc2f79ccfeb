//! `chatbotd`: the chatbot configuration service.
//!
//! - `chatbotd` or `chatbotd serve`: serves REST on `--rest-addr` (default `127.0.0.1:8080`) and gRPC
//!   on `--grpc-addr` (default `127.0.0.1:50051`) until SIGTERM or Ctrl-C, over the sled store in
//!   `--data-dir` (default `./data`), or over PostgreSQL with `--database-url`.
//! - `chatbotd keys create --org NAME`: creates the organisation if needed and prints a new API key
//!   as the last line of stdout.
//! - `chatbotd export` / `chatbotd import`: every organisation, key hash and chatbot as JSON lines, e.g.
//!   to move a sled store to PostgreSQL.
//!
//! Every flag has an environment variable (`CHATBOTD_DATA_DIR`, ...); see `chatbotd help serve`.

mod commands;
mod connections;
mod grpc;
mod rest;
mod startup;

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use chatbot_core::fair_use::{self, RateLimits};
use chatbot_core::store::Retention;
use chatbot_core::store::postgres::{Isolation, PostgresOptions};
use chatbot_core::store::sled::SledOptions;
use chatbot_core::{AllowList, Rules};
use clap::{Args, Parser, Subcommand, ValueEnum};
use commands::{Remote, Target};
use connections::ConnectionLimits;
use grpc_server::CallLimits;
use humantime::Duration as Span;
use startup::{Application, Config, DEFAULT_ORG, StoreConfig};

#[derive(Parser)]
#[command(name = "chatbotd", version, about = "Creates and manages chatbot configurations over REST and gRPC.")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// How log lines are written to stderr (levels from RUST_LOG, default info).
    #[arg(long, global = true, env = "CHATBOTD_LOG_FORMAT", value_enum, default_value = "text")]
    log_format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    /// For people.
    Text,
    /// One JSON object a line, for log pipelines.
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Serve REST and gRPC (the default).
    Serve(Box<ServeArgs>),
    /// Manage API keys: against a running service with --server, or the store itself (with sled, only
    /// while no server holds it).
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Write every organisation, API key record and chatbot, as they were at one moment, to stdout as
    /// JSON lines (with --server, while the service goes on taking writes).
    Export {
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        server: ServerArgs,
    },
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
enum KeysCommand {
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
struct ServerArgs {
    /// A running chatbotd's gRPC address (e.g. http://127.0.0.1:50051): act through its admin API
    /// instead of opening the store.
    #[arg(long, env = "CHATBOTD_SERVER")]
    server: Option<String>,
    /// The admin token that service was started with.
    #[arg(long, env = "CHATBOTD_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
}

impl ServerArgs {
    /// The service's admin API if --server is given, else the store.
    async fn target(&self, store: &StoreArgs) -> anyhow::Result<Target> {
        Ok(match &self.server {
            Some(url) => Target::Server(Remote::connect(url, self.admin_token.as_deref()).await?),
            None => Target::Store(Box::new(store.open().await?)),
        })
    }
}

/// The isolation level of PostgreSQL transactions.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum IsolationArg {
    ReadCommitted,
    Serializable,
}

#[derive(Args, Clone)]
struct StoreArgs {
    /// Directory of the sled store (used unless --database-url is given).
    #[arg(long, env = "CHATBOTD_DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,
    /// The most memory the sled store's page cache may take (e.g. `128MiB`, `1GiB`).
    #[arg(long, env = "CHATBOTD_CACHE_SIZE", default_value = "128MiB")]
    cache_size: bytesize::ByteSize,
    /// Use PostgreSQL instead of sled: postgres://user:password@host:port/database.
    #[arg(long, env = "CHATBOTD_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Most PostgreSQL connections this process opens.
    #[arg(long, env = "CHATBOTD_DATABASE_POOL_SIZE", default_value_t = PostgresOptions::default().pool_size)]
    database_pool_size: usize,
    /// How long connecting to PostgreSQL, waiting for a connection, or one statement may take before the
    /// request fails with 503 `unavailable` (e.g. `3s`, `500ms`).
    #[arg(long, env = "CHATBOTD_DATABASE_TIMEOUT", default_value_t = Span::from(PostgresOptions::default().timeout))]
    database_timeout: Span,
    /// The isolation level of PostgreSQL transactions.
    #[arg(long, env = "CHATBOTD_DATABASE_ISOLATION", value_enum, default_value = "read-committed")]
    database_isolation: IsolationArg,
    /// Testing only: make the first attempt of every PostgreSQL transaction fail with a serialization
    /// failure, to exercise the retry path.
    #[arg(long, hide = true)]
    database_fault_injection: bool,
    /// Allowed models, comma-separated (default: gpt-4o-mini, gpt-4o, gpt-4.1, gpt-4.1-mini,
    /// gpt-4.1-nano, o3-mini).
    #[arg(long, env = "CHATBOTD_MODELS", value_delimiter = ',')]
    models: Vec<String>,
    /// Allowed voice agent voices, comma-separated (default: alloy, ash, ballad, coral, echo, sage,
    /// shimmer, verse).
    #[arg(long, env = "CHATBOTD_VOICES", value_delimiter = ',')]
    voices: Vec<String>,
}

impl StoreArgs {
    fn rules(&self) -> Rules {
        Rules { models: AllowList::models(&self.models), voices: AllowList::voices(&self.voices) }
    }

    /// Where the store is, and how its engine runs, keeping what it prunes for `retention`.
    fn store(&self, retention: Retention) -> StoreConfig {
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

    /// The store, for an operator's command (which prunes nothing it would not prune serving).
    async fn open(&self) -> anyhow::Result<chatbot_core::Registry> {
        self.store(Retention::default()).open(self.rules(), chatbot_core::RegistryOptions::default()).await
    }
}

#[derive(Args, Clone)]
struct ServeArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Address of the REST gateway.
    #[arg(long, env = "CHATBOTD_REST_ADDR", default_value = "127.0.0.1:8080")]
    rest_addr: SocketAddr,
    /// Address of the gRPC service.
    #[arg(long, env = "CHATBOTD_GRPC_ADDR", default_value = "127.0.0.1:50051")]
    grpc_addr: SocketAddr,
    /// An API key to make valid for the default organisation (for scripts and containers).
    #[arg(long, env = "CHATBOTD_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Requests a second per API key (and burst); 0 turns the limit off.
    #[arg(long, env = "CHATBOTD_RATE_LIMIT", default_value_t = fair_use::DEFAULT_PER_KEY)]
    rate_limit: u32,
    /// Requests a second per client address for requests without a valid key (and burst); 0 turns the
    /// limit off.
    #[arg(long, env = "CHATBOTD_CLIENT_RATE_LIMIT", default_value_t = fair_use::DEFAULT_PER_CLIENT)]
    client_rate_limit: u32,
    /// Requests a second per client address on the public routes (a widget's configuration and
    /// avatars, which need no key), and burst; 0 turns the limit off.
    #[arg(long, env = "CHATBOTD_PUBLIC_RATE_LIMIT", default_value_t = fair_use::DEFAULT_PER_PUBLIC_CLIENT)]
    public_rate_limit: u32,
    /// How long an idempotency key (and the answer it replays) is kept.
    #[arg(long, env = "CHATBOTD_IDEMPOTENCY_TTL", default_value_t = Span::from(Retention::default().claims))]
    idempotency_ttl: Span,
    /// Most connections open at once, per face; past it the connection quiet for longest is closed to
    /// make room, or, if every one is busy, new ones are refused (REST: 503).
    #[arg(long, env = "CHATBOTD_MAX_CONNECTIONS", default_value_t = 4096)]
    max_connections: usize,
    /// Most connections open at once from one client address, per face; past it new ones from that
    /// address are refused (REST: 503).
    #[arg(long, env = "CHATBOTD_MAX_CONNECTIONS_PER_CLIENT", default_value_t = 256)]
    max_connections_per_client: usize,
    /// How long a client may take to send a request's head; also how long an idle HTTP/1 keep-alive
    /// connection waits for the next request.
    #[arg(long, env = "CHATBOTD_HEADER_TIMEOUT", default_value = "10s")]
    header_timeout: Span,
    /// How long a connection may stay silent before it is closed (one that has not sent a byte yet
    /// gets the header timeout).
    #[arg(long, env = "CHATBOTD_IDLE_TIMEOUT", default_value = "60s")]
    idle_timeout: Span,
    /// How long a write may wait for a client that does not read (a change stream nobody reads, once
    /// the socket's buffers are full) before its connection is closed.
    #[arg(long, env = "CHATBOTD_WRITE_TIMEOUT", default_value = "30s")]
    write_timeout: Span,
    /// How long one request may take, from its first byte to its answer (REST 408, gRPC
    /// DEADLINE_EXCEEDED).
    #[arg(long, env = "CHATBOTD_REQUEST_TIMEOUT", default_value_t = Span::from(rest_gateway::DEFAULT_REQUEST_TIMEOUT))]
    request_timeout: Span,
    /// Most concurrent HTTP/2 streams (gRPC calls) on one connection.
    #[arg(long, env = "CHATBOTD_MAX_STREAMS", default_value_t = 128)]
    max_streams: u32,
    /// Most header lines in one request.
    #[arg(long, env = "CHATBOTD_MAX_HEADERS", default_value_t = 64)]
    max_headers: usize,
    /// How long requests in flight may take to finish after SIGTERM.
    #[arg(long, env = "CHATBOTD_SHUTDOWN_GRACE", default_value = "10s")]
    shutdown_grace: Span,
    /// Serve `/metrics` on this address instead of the REST one.
    #[arg(long, env = "CHATBOTD_METRICS_ADDR")]
    metrics_addr: Option<SocketAddr>,
    /// Turns the admin API (key management, exports) on, for callers presenting this token as
    /// `x-admin-token`.
    #[arg(long, env = "CHATBOTD_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// What the service's public URLs (avatar images) start with, as browsers reach the REST face
    /// (`https://bots.example.com`); default `http://` and the REST address.
    #[arg(long, env = "CHATBOTD_PUBLIC_URL", value_parser = parse_public_url)]
    public_url: Option<String>,
    /// How long the change log keeps events; a watcher resuming from an older token is told to resync.
    #[arg(long, env = "CHATBOTD_CHANGE_RETENTION", default_value_t = Span::from(Retention::default().changes))]
    change_retention: Span,
    /// Most change streams (SSE and gRPC watches) open at once.
    #[arg(long, env = "CHATBOTD_MAX_WATCHERS", default_value_t = chatbot_core::DEFAULT_MAX_WATCHERS)]
    max_watchers: usize,
    /// Most change streams open at once per organisation.
    #[arg(long, env = "CHATBOTD_MAX_WATCHERS_PER_ORG", default_value_t = chatbot_core::DEFAULT_MAX_WATCHERS_PER_ORG)]
    max_watchers_per_org: usize,
    /// Change streams an organisation may open a second (with a burst of ten times as many), so that a
    /// client reconnecting in a loop is slowed (REST 429, gRPC RESOURCE_EXHAUSTED); 0 turns it off.
    #[arg(long, env = "CHATBOTD_WATCH_RATE_LIMIT", default_value_t = fair_use::DEFAULT_WATCH_OPENS_PER_ORG)]
    watch_rate_limit: u32,
    /// How often an idle change stream gets a heartbeat.
    #[arg(long, env = "CHATBOTD_HEARTBEAT", default_value_t = Span::from(chatbot_core::DEFAULT_HEARTBEAT))]
    heartbeat: Span,
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

/// The allocator: mimalloc's thread-local free lists take the small, short-lived allocations of every
/// request (headers, JSON, log fields) faster than glibc's malloc, which a profile showed at about an
/// eighth of the server's time under load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let colours = std::io::IsTerminal::is_terminal(&std::io::stderr());
    // Log lines (an access line per request) go to stderr from a thread of their own, so that a slow
    // reader of stderr never stalls a request; past its buffer, lines are dropped and counted, never
    // waited for. The guard flushes what is buffered when the process ends.
    let (writer, _flush_on_exit) = tracing_appender::non_blocking(std::io::stderr());
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer).with_ansi(colours);
    match cli.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().with_current_span(true).with_span_list(false).init(),
    }
    let command = cli.command.unwrap_or_else(|| Command::Serve(Box::default()));
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(run(command))
}

/// Installs the Prometheus recorder behind the `metrics` facade and returns what renders it.
fn install_metrics() -> anyhow::Result<rest_gateway::MetricsRenderer> {
    use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
    let seconds = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
    let sizes = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0];
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &seconds)?
        .set_buckets_for_metric(Matcher::Full(chatbot_core::metric::STORE_BATCH_SIZE.into()), &sizes)?
        .install_recorder()?;
    metrics::gauge!(chatbot_core::metric::BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    // Without its own HTTP listener the exporter needs its upkeep run now and then.
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(5));
        loop {
            every.tick().await;
            upkeep.run_upkeep();
        }
    });
    Ok(std::sync::Arc::new(move || handle.render()))
}

async fn run(command: Command) -> anyhow::Result<()> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    match command {
        Command::Serve(args) => serve(*args).await,
        Command::Keys(KeysCommand::Create { org, store, server }) => {
            server.target(&store).await?.create_key(&org, &mut out).await
        }
        Command::Keys(KeysCommand::List { org, store, server }) => {
            server.target(&store).await?.list_keys(org.as_deref(), &mut out).await
        }
        Command::Keys(KeysCommand::Revoke { id, store, server }) => {
            server.target(&store).await?.revoke_key(&id, &mut out).await
        }
        Command::Export { store, server } => server.target(&store).await?.export(&mut out).await,
        Command::Import { store, allow_non_empty } => commands::import(&store.open().await?, allow_non_empty).await,
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    if let Some(token) = args.admin_token.as_deref().filter(|token| !token.is_empty()) {
        let chars = token.chars().count();
        anyhow::ensure!(
            chars >= grpc_server::MIN_ADMIN_TOKEN_CHARS,
            "CHATBOTD_ADMIN_TOKEN must be at least {} characters (it has {chars}): make one with \
             `openssl rand -hex 32`",
            grpc_server::MIN_ADMIN_TOKEN_CHARS
        );
    }
    let stop = shutdown_signal()?;
    let config = Config {
        rules: args.store.rules(),
        store: args
            .store
            .store(Retention { changes: args.change_retention.into(), claims: args.idempotency_ttl.into() }),
        rest_addr: args.rest_addr,
        grpc_addr: args.grpc_addr,
        api_key: args.api_key,
        rate_limits: RateLimits::new(args.rate_limit, args.client_rate_limit)
            .with_public(args.public_rate_limit)
            .with_watch_opens(args.watch_rate_limit),
        connections: ConnectionLimits {
            max_connections: args.max_connections.max(1),
            max_connections_per_client: args.max_connections_per_client.max(1),
            header_timeout: args.header_timeout.into(),
            idle_timeout: args.idle_timeout.into(),
            write_timeout: args.write_timeout.into(),
            max_headers: args.max_headers.max(1),
            max_streams: args.max_streams.max(1),
        },
        calls: CallLimits {
            max_streams: args.max_streams.max(1),
            request_timeout: args.request_timeout.into(),
            keepalive: Duration::from(args.idle_timeout) / 2,
        },
        shutdown_grace: args.shutdown_grace.into(),
        metrics: Some(install_metrics()?),
        metrics_addr: args.metrics_addr,
        admin_token: args.admin_token,
        public_url: args.public_url,
        max_watchers: args.max_watchers,
        max_watchers_per_org: args.max_watchers_per_org,
        heartbeat: args.heartbeat.into(),
    };
    let app = Application::build(config).await?;
    if let Some(key) = app.first_key() {
        println!("API key for organisation '{DEFAULT_ORG}' (shown once, store it now): {}", key.expose());
    }
    // Tests and scripts read these lines to find ephemeral ports.
    println!("gRPC listening on {}", app.grpc_addr()?);
    println!("REST listening on {}", app.rest_addr()?);
    if let Some(addr) = app.metrics_addr() {
        println!("metrics listening on {}", addr?);
    }
    std::io::stdout().flush()?;
    app.run_until_stopped(stop).await
}

/// Completes on SIGTERM or Ctrl-C. The handlers are installed at once, so a signal sent as soon as the
/// ports are announced is not missed.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = interrupt.recv() => {}
        }
    })
}
