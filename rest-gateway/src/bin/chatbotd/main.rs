//! `chatbotd`: the chatbot configuration service.
//!
//! - `chatbotd` or `chatbotd serve`: serves REST on `--rest-addr` (default `127.0.0.1:8080`) and gRPC
//!   on `--grpc-addr` (default `127.0.0.1:50051`) until SIGTERM or Ctrl-C, over the sled store in
//!   `--data-dir` (default `./data`), or over PostgreSQL with `--database-url`.
//! - `chatbotd keys create --org NAME`: creates the organisation if needed and prints a new API key
//!   as the last line of stdout.
//! - `chatbotd export` / `chatbotd import`: every organisation, key hash and chatbot as JSON lines, e.g.
//!   to move a sled store to PostgreSQL.
//! - `chatbotd secrets rotate`: reseals every stored secret under the keyring's first key.
//!
//! Every flag has an environment variable (`CHATBOTD_DATA_DIR`, ...); see `chatbotd help serve`.

mod cli;
mod commands;
mod connections;
mod grpc;
mod rest;
mod startup;
mod tls;

use std::io::Write as _;
use std::time::Duration;

use clap::Parser;
use cli::{Cli, Command, KeysCommand, LogFormat, SecretsCommand, ServeArgs};
use startup::{Application, DEFAULT_ORG};

/// The allocator: mimalloc's thread-local free lists take the small, short-lived allocations of every
/// request (headers, JSON, log fields) faster than glibc's malloc, which a profile showed at about an
/// eighth of the server's time under load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// How many bytes of log lines the log thread gathers, at most, into one write to stderr.
const LOG_WRITE_BYTES: usize = 64 * 1024;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let colours = std::io::IsTerminal::is_terminal(&std::io::stderr());
    // Log lines (an access line per request) go to stderr from a thread of their own, so that a slow
    // reader of stderr never stalls a request; past its buffer, lines are dropped and counted, never
    // waited for. That thread writes the lines waiting for it together (one system call, not one per
    // line) and flushes each time it has caught up, so a line is never held back longer than it
    // waits anyway. The guard flushes what is buffered when the process ends.
    let stderr = std::io::BufWriter::with_capacity(LOG_WRITE_BYTES, std::io::stderr());
    let (writer, _flush_on_exit) = tracing_appender::non_blocking(stderr);
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
        Command::Export { decrypt, store, server } => server.target(&store).await?.export(decrypt, &mut out).await,
        Command::Secrets(SecretsCommand::Rotate { batch_size, store, server }) => {
            server.target(&store).await?.rotate_secrets(batch_size).await
        }
        Command::Import { store, allow_non_empty } => commands::import(&store.open().await?, allow_non_empty).await,
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let stop = shutdown_signal()?;
    let config = args.config(Some(install_metrics()?))?;
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

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    #[tokio::test]
    async fn the_application_is_built_and_served_in_process() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let mut args = ServeArgs::default();
        args.store.data_dir = dir.path().to_owned();
        (args.rest_addr, args.grpc_addr) =
            ("127.0.0.1:0".parse().expect("an address"), "127.0.0.1:0".parse().expect("an address"));
        let app = Application::build(args.config(None).expect("a config")).await.expect("built");
        assert!(app.first_key().is_some(), "a first start makes the first key");
        let rest = app.rest_addr().expect("bound");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(app.run_until_stopped(async move {
            let _ = stopped.await;
        }));

        let mut stream = tokio::net::TcpStream::connect(rest).await.expect("connects");
        stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.expect("sent");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.expect("answered");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

        stop.send(()).expect("still serving");
        serving.await.expect("joined").expect("stopped cleanly");
    }

    #[test]
    fn an_admin_token_too_short_to_resist_guessing_is_refused() {
        let args =
            ServeArgs { admin_token: Some("x".repeat(grpc_server::MIN_ADMIN_TOKEN_CHARS - 1)), ..ServeArgs::default() };
        let refused = args.config(None).map(drop).expect_err("refused");
        assert!(refused.to_string().contains("at least 32 characters"), "{refused}");
    }
}
