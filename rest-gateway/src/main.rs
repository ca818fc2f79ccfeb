//! `chatbotd`: the chatbot configuration service.
//!
//! - `chatbotd` or `chatbotd serve`: opens the sled store in `--data-dir` (default `./data`) and serves
//!   REST on `--rest-addr` (default `127.0.0.1:8080`) and gRPC on `--grpc-addr` (default
//!   `127.0.0.1:50051`) until SIGTERM or Ctrl-C.
//! - `chatbotd keys create --org NAME`: creates the organisation if needed and prints a new API key
//!   as the last line of stdout.
//!
//! Every flag has an environment variable (`CHATBOTD_DATA_DIR`, ...); see `chatbotd help serve`.

mod startup;

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;

use chatbot_core::{ModelAllowList, Rules};
use clap::{Args, Parser, Subcommand};
use startup::{Application, Config, DEFAULT_ORG};

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

impl StoreArgs {
    fn rules(&self) -> Rules {
        Rules { models: ModelAllowList::new(&self.models) }
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
}

impl Default for ServeArgs {
    fn default() -> Self {
        let Cli { command: Some(Command::Serve(args)) } = Cli::parse_from(["chatbotd", "serve"]) else {
            unreachable!("`chatbotd serve` parses as the serve command")
        };
        args
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
            let registry = chatbot_core::blocking::Registry::open(&store.data_dir, store.rules())?;
            let (org_id, key) = registry.create_api_key(&org)?;
            println!("organisation {org} ({org_id})");
            println!("{}", key.expose());
            Ok(())
        }
    }
}

#[tokio::main]
async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = Config {
        rules: args.store.rules(),
        data_dir: args.store.data_dir,
        rest_addr: args.rest_addr,
        grpc_addr: args.grpc_addr,
        api_key: args.api_key,
    };
    let stop = shutdown_signal()?;
    let app = Application::build(config).await?;
    if let Some(key) = app.first_key() {
        println!("API key for organisation '{DEFAULT_ORG}' (shown once, store it now): {}", key.expose());
    }
    // Tests and scripts read these lines to find ephemeral ports.
    println!("gRPC listening on {}", app.grpc_addr()?);
    println!("REST listening on {}", app.rest_addr()?);
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
