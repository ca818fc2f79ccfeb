//! `chatbotd`: the chatbot configuration service.
//!
//! - `chatbotd` or `chatbotd serve`: opens the sled store in `--data-dir` (default `./data`) and serves
//!   REST on `--rest-addr` (default `127.0.0.1:8080`) and gRPC on `--grpc-addr` (default
//!   `127.0.0.1:50051`) until SIGTERM or Ctrl-C. With `--grpc-upstream URL` it serves only REST,
//!   forwarding to a remote grpc-server.
//! - `chatbotd keys create --org NAME`: creates the organisation if needed and prints a new API key
//!   as the last line of stdout.
//!
//! Every flag has an environment variable (`CHATBOTD_DATA_DIR`, ...); see `chatbotd help serve`.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use chatbot_core::{ApiKey, ModelAllowList, Registry, Rules};
use clap::{Args, Parser, Subcommand};
use rest_gateway::backend;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// The organisation that the first key (or `CHATBOTD_API_KEY`) belongs to.
const DEFAULT_ORG: &str = "default";

#[derive(Parser)]
#[command(name = "chatbotd", version, about = "Creates and manages chatbot configurations over REST and gRPC.")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve REST and gRPC over the embedded store (the default).
    Serve(ServeArgs),
    /// Manage API keys (stop the server first: the store allows one process at a time).
    #[command(subcommand)]
    Keys(KeysCommand),
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
    },
}

#[derive(Args, Clone)]
struct StoreArgs {
    /// Directory of the sled store.
    #[arg(long, env = "CHATBOTD_DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,
    /// Allowed models, comma-separated (default: gpt-4o-mini, gpt-4o, gpt-4.1, gpt-4.1-mini,
    /// gpt-4.1-nano, o3-mini).
    #[arg(long, env = "CHATBOTD_MODELS", value_delimiter = ',')]
    models: Vec<String>,
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
    /// Serve only REST, forwarding to the grpc-server at this URL (e.g. http://10.0.0.5:50051)
    /// instead of opening a store.
    #[arg(long, env = "CHATBOTD_GRPC_UPSTREAM")]
    grpc_upstream: Option<String>,
    /// An API key to make valid for the default organisation (for scripts and containers).
    #[arg(long, env = "CHATBOTD_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
}

impl Default for ServeArgs {
    fn default() -> Self {
        let Cli { command: Some(Command::Serve(args)) } = Cli::parse_from(["chatbotd", "serve"]) else {
            unreachable!("`chatbotd serve` parses as the serve command")
        };
        args
    }
}

impl StoreArgs {
    fn open(&self) -> anyhow::Result<Registry> {
        let rules = Rules { models: ModelAllowList::new(&self.models) };
        Registry::open(&self.data_dir, rules).with_context(|| {
            format!("cannot open the store in {} (is another chatbotd using it?)", self.data_dir.display())
        })
    }
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        None => serve(ServeArgs::default()),
        Some(Command::Serve(args)) => serve(args),
        Some(Command::Keys(KeysCommand::Create { org, store })) => {
            let registry = store.open()?;
            let (org_id, key) = registry.create_api_key(&org)?;
            println!("organisation {org} ({org_id})");
            println!("{}", key.expose());
            Ok(())
        }
    }
}

#[tokio::main]
async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down");
        let _ = stop.send(true);
    });
    let until_stopped = move || {
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        }
    };

    let (backend, grpc) = match &args.grpc_upstream {
        Some(upstream) => (backend::remote(upstream).context("invalid --grpc-upstream")?, None),
        None => {
            let registry = Arc::new(args.store.open()?);
            bootstrap_key(&registry, args.api_key.as_deref())?;
            let api = grpc_server::ChatbotApi::new(registry);
            let listener = bind(args.grpc_addr).await?;
            announce("gRPC", &listener)?;
            (backend::in_process(api.clone()), Some(tokio::spawn(grpc_server::serve(listener, api, until_stopped()))))
        }
    };

    let listener = bind(args.rest_addr).await?;
    announce("REST", &listener)?;
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, rest_gateway::app(backend)).with_graceful_shutdown(until_stopped()).await?;
    if let Some(grpc) = grpc {
        grpc.await??;
    }
    tracing::info!("stopped");
    Ok(())
}

/// Makes sure someone can use the service: the operator's key if given, else a new key for the
/// default organisation on the very first start, printed once.
fn bootstrap_key(registry: &Registry, given: Option<&str>) -> anyhow::Result<()> {
    if let Some(secret) = given.filter(|s| !s.is_empty()) {
        registry.add_api_key(DEFAULT_ORG, &ApiKey::from_secret(secret)).context("cannot register CHATBOTD_API_KEY")?;
    } else if !registry.has_api_keys() {
        let (_, key) = registry.create_api_key(DEFAULT_ORG)?;
        println!("API key for organisation '{DEFAULT_ORG}' (shown once, store it now): {}", key.expose());
    }
    Ok(())
}

async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))
}

/// Prints where a face listens (tests read these lines to find ephemeral ports).
fn announce(face: &str, listener: &TcpListener) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    println!("{face} listening on {addr}");
    std::io::stdout().flush()?;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("a SIGTERM handler can be installed");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
