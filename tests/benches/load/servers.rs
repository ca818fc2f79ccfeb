//! The servers under load, each a separate process: chatbotd itself, and the ceilings (this
//! benchmark binary started again in `--serve-ceiling` mode).

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use grpc_server::pb;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::process::{Child, Command};

use crate::drive::{self, Measured, Op, Target};

/// The API key the benchmark's chatbotd accepts.
pub const KEY: &str = "bench-key-0123456789abcdef0123456789abcdef";

/// A server process, and its log file (removed once the process is gone).
pub struct Running {
    _child: Child,
    _log: tempfile::TempPath,
}

/// Starts `command` and waits until every face in `faces` has announced where it listens.
async fn start(mut command: Command, faces: &[&str]) -> anyhow::Result<(Running, Vec<SocketAddr>)> {
    // As production runs it: the log (an access line per request, at the default level) is written,
    // to a file that lives as long as the process.
    let log = tempfile::NamedTempFile::new()?;
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::from(log.reopen()?)).kill_on_drop(true).spawn()?;
    let announced = chatbotd_tests::announced(&mut child, faces, Duration::from_secs(120)).await?;
    let addrs = faces.iter().map(|face| announced.addr(face)).collect();
    Ok((Running { _child: child, _log: log.into_temp_path() }, addrs))
}

/// Our service: one process over a fresh sled temp dir, or replicas over one PostgreSQL database.
pub struct Chatbotd {
    target: Target,
    /// A key of another organisation than [`KEY`]'s (sled only).
    other_key: Option<String>,
    /// The CA (PEM) that signed the server's certificate, when it speaks TLS.
    tls_ca: Option<String>,
    _children: Vec<Running>,
    _dir: Option<tempfile::TempDir>,
}

/// The command that serves the store `store_args` name (`--data-dir DIR` or `--database-url URL`) on
/// ephemeral ports.
pub fn chatbotd_command(store_args: &[&std::ffi::OsStr]) -> Command {
    let mut command = Command::new(chatbotd_tests::chatbotd(chatbotd_tests::Profile::Release));
    command
        .args(["serve", "--rest-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0"])
        .args(store_args)
        // Fair use stays on, its limits raised only as far as 64 clients of one key (and of one
        // address, on the public route) need.
        .args(["--rate-limit", "1000000", "--public-rate-limit", "1000000"])
        .env("CHATBOTD_API_KEY", KEY)
        // PostgreSQL replicas are given a keyring, as production's are (sled makes its own).
        .env("CHATBOTD_SECRET_KEYS", "bench-1=YmVuY2gta2V5cmluZy1mb3ItY2hhdGJvdGQtcmVwbCE=")
        .env_remove("RUST_LOG");
    command
}

impl Chatbotd {
    /// One process over a fresh sled store.
    pub async fn sled() -> anyhow::Result<Self> {
        Chatbotd::sled_with(&[]).await
    }

    /// One process over a fresh sled store, with `extra` flags; the store has a second organisation.
    pub async fn sled_with(extra: &[&str]) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let made = Command::new(chatbotd_tests::chatbotd(chatbotd_tests::Profile::Release))
            .args(["keys", "create", "--org", "elsewhere", "--data-dir"])
            .arg(dir.path())
            .output()
            .await?;
        anyhow::ensure!(made.status.success(), "keys create failed: {}", String::from_utf8_lossy(&made.stderr));
        let other_key = String::from_utf8(made.stdout)?.lines().last().map(|line| line.trim().to_owned());
        let mut command = chatbotd_command(&["--data-dir".as_ref(), dir.path().as_os_str()]);
        command.args(extra);
        let (child, addrs) = start(command, &["REST", "gRPC"]).await?;
        let target =
            Target { rest: vec![addrs[0]], grpc: addrs[1], key: KEY.into(), ids: Arc::new(Vec::new()), tls: None };
        Ok(Chatbotd { target, other_key, tls_ca: None, _children: vec![child], _dir: Some(dir) })
    }

    /// One process over a fresh sled store, both faces over TLS with a certificate for `localhost`
    /// made now (rcgen) by a CA the benchmark's clients trust.
    pub async fn sled_over_tls() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let ca_key = rcgen::KeyPair::generate()?;
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new())?;
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca.self_signed(&ca_key)?;
        let key = rcgen::KeyPair::generate()?;
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])?.signed_by(&key, &ca, &ca_key)?;
        let (cert_file, key_file) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        std::fs::write(&cert_file, cert.pem())?;
        std::fs::write(&key_file, key.serialize_pem())?;
        let mut command = chatbotd_command(&["--data-dir".as_ref(), dir.path().join("data").as_os_str()]);
        command.arg("--tls-cert").arg(&cert_file).arg("--tls-key").arg(&key_file);
        let (child, addrs) = start(command, &["REST", "gRPC"]).await?;
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.der().clone())?;
        let mut config =
            rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()?
                .with_root_certificates(roots)
                .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let tls = Some(tokio_rustls::TlsConnector::from(Arc::new(config)));
        let target = Target { rest: vec![addrs[0]], grpc: addrs[1], key: KEY.into(), ids: Arc::new(Vec::new()), tls };
        Ok(Chatbotd { target, other_key: None, tls_ca: Some(ca.pem()), _children: vec![child], _dir: Some(dir) })
    }

    /// `replicas` processes over the PostgreSQL database at `url`; REST clients are spread over them.
    pub async fn postgres(url: &str, replicas: usize) -> anyhow::Result<Self> {
        let (mut children, mut rest, mut grpc) = (Vec::new(), Vec::new(), None);
        for _ in 0..replicas {
            // As many connections as pgbench's peer row opens at most, so that both meet the same database.
            let args: [&std::ffi::OsStr; 4] =
                ["--database-url".as_ref(), url.as_ref(), "--database-pool-size".as_ref(), "64".as_ref()];
            let (child, addrs) = start(chatbotd_command(&args), &["REST", "gRPC"]).await?;
            children.push(child);
            rest.push(addrs[0]);
            grpc.get_or_insert(addrs[1]);
        }
        let grpc = grpc.ok_or_else(|| anyhow::anyhow!("no replica"))?;
        Ok(Chatbotd {
            target: Target { rest, grpc, key: KEY.into(), ids: Arc::new(Vec::new()), tls: None },
            other_key: None,
            tls_ca: None,
            _children: children,
            _dir: None,
        })
    }

    /// Creates `n` chatbots over gRPC and returns their ids, for the read rows.
    pub async fn seed(&self, n: usize) -> anyhow::Result<Arc<Vec<String>>> {
        let channel = match &self.tls_ca {
            None => tonic::transport::Channel::from_shared(format!("http://{}", self.target.grpc))?,
            Some(ca) => tonic::transport::Channel::from_shared(format!("https://{}", self.target.grpc))?.tls_config(
                tonic::transport::ClientTlsConfig::new()
                    .ca_certificate(tonic::transport::Certificate::from_pem(ca))
                    .domain_name("localhost"),
            )?,
        }
        .connect()
        .await?;
        let mut client = pb::chatbot_service_client::ChatbotServiceClient::new(channel);
        let mut ids = Vec::with_capacity(n);
        for i in 0..n {
            let chatbot = pb::Chatbot { slug: Some(format!("seed-{i}")), ..drive::example_message() };
            let mut request = tonic::Request::new(pb::CreateChatbotRequest {
                chatbot: Some(chatbot),
                validate_only: false,
                ..Default::default()
            });
            request.metadata_mut().insert("x-api-key", KEY.parse()?);
            ids.push(client.create_chatbot(request).await?.into_inner().id);
        }
        Ok(Arc::new(ids))
    }

    /// Opens `n` change streams of `whose` chatbots that read everything and do nothing with it, as
    /// services watching for changes do; they end when the returned handles are dropped.
    pub async fn watchers(&self, n: usize, whose: Whose) -> anyhow::Result<Watchers> {
        use futures::StreamExt as _;
        let key = match whose {
            Whose::Driven => KEY,
            Whose::Another => self.other_key.as_deref().ok_or_else(|| anyhow::anyhow!("no other organisation"))?,
        };
        let http = reqwest::Client::new();
        let mut tasks = Vec::with_capacity(n);
        for _ in 0..n {
            let url = format!("http://{}/api/external/chatbots/events", self.target.rest[0]);
            let response = http.get(url).header("x-api-key", key).send().await?;
            anyhow::ensure!(response.status().is_success(), "a watcher was refused: {}", response.status());
            let mut body = response.bytes_stream();
            tasks.push(tokio::spawn(async move { while let Some(Ok(_)) = body.next().await {} }));
        }
        Ok(Watchers(tasks))
    }

    /// The public cache's hit rate so far, from the first replica's `/metrics`.
    pub async fn public_hit_rate(&self) -> anyhow::Result<f64> {
        let text = reqwest::get(format!("http://{}/metrics", self.target.rest[0])).await?.text().await?;
        let count = |result: &str| {
            let prefix = format!("chatbotd_public_cache_total{{result=\"{result}\"}} ");
            text.lines().find_map(|line| line.strip_prefix(&prefix)).and_then(|n| n.trim().parse::<f64>().ok())
        };
        let (hits, misses) = (count("hit").unwrap_or(0.0), count("miss").unwrap_or(0.0));
        Ok(if hits + misses > 0.0 { hits / (hits + misses) } else { 0.0 })
    }

    pub async fn drive(
        &self,
        op: Op,
        clients: usize,
        duration: Duration,
        ids: &Arc<Vec<String>>,
    ) -> anyhow::Result<Measured> {
        let target = Target { ids: ids.clone(), ..self.target.clone() };
        drive::drive(op, &target, clients, duration).await
    }
}

/// A ceiling server in its own process.
pub struct Ceiling {
    target: Target,
    _child: Running,
}

impl Ceiling {
    pub async fn start(kind: &str) -> anyhow::Result<Self> {
        let mut command = Command::new(std::env::current_exe()?);
        command.args(["--serve-ceiling", kind]);
        let (child, addrs) = start(command, &["ceiling"]).await?;
        let target = Target {
            rest: vec![addrs[0]],
            grpc: addrs[0],
            key: KEY.into(),
            ids: Arc::new(vec![String::new()]),
            tls: None,
        };
        Ok(Ceiling { target, _child: child })
    }

    pub async fn drive(&self, op: Op, clients: usize, duration: Duration) -> anyhow::Result<Measured> {
        drive::drive(op, &self.target, clients, duration).await
    }
}

/// Child mode: serve a ceiling until killed. `hyper`: every request gets a canned 201 with a body the
/// size of our create answer. `tonic`: the gRPC health service, whose `Check` is a near-empty unary call.
pub fn serve_ceiling(kind: &str) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        println!("ceiling listening on {}", listener.local_addr()?);
        match kind {
            "hyper" => serve_canned(listener).await,
            "tonic" => {
                let (health, service) = tonic_health::server::health_reporter();
                health.set_service_status("", tonic_health::ServingStatus::Serving).await;
                tonic::transport::Server::builder()
                    .add_service(service)
                    .serve_with_incoming(grpc_server::accept_nodelay(listener))
                    .await?;
                Ok(())
            }
            other => anyhow::bail!("unknown ceiling {other}"),
        }
    })
}

async fn serve_canned(listener: tokio::net::TcpListener) -> anyhow::Result<()> {
    let canned = Bytes::from(canned_body());
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        let canned = canned.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                let canned = canned.clone();
                async move {
                    let _ = request.into_body().collect().await;
                    hyper::Response::builder()
                        .status(201)
                        .header("content-type", "application/json")
                        .body(Full::new(canned))
                }
            });
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

/// A body the size of our create answer for the example: the example wrapped in the envelope with the
/// fields the service adds.
fn canned_body() -> String {
    let mut chatbot: serde_json::Value = serde_json::from_str(include_str!("example.json")).expect("JSON");
    for (field, value) in [
        ("active", serde_json::json!(true)),
        ("created_at", serde_json::json!("2025-01-22T04:30:45.790337+00:00")),
        ("updated_at", serde_json::json!("2025-01-22T04:30:45.790337+00:00")),
        ("id", serde_json::json!("3317853e-0af2-427d-a56f-351a9587f48f")),
        ("organization_id", serde_json::json!("123042b2-86e2-4184-a86e-95423d728815")),
        ("migrated_data", serde_json::json!(false)),
    ] {
        chatbot[field] = value;
    }
    for null in [
        "docs_metadata",
        "enabled_plugins",
        "managers",
        "openai_api_key",
        "suggestions",
        "v1_chatbot_id",
        "version_id",
        "voice_widget_config",
    ] {
        chatbot[null] = serde_json::Value::Null;
    }
    serde_json::json!({"chatbot": chatbot, "message": "Chatbot created successfully"}).to_string()
}

/// Whose changes watchers watch.
#[derive(Debug, Clone, Copy)]
pub enum Whose {
    /// The organisation the load writes to: every create reaches every watcher.
    Driven,
    /// Another organisation: the load's creates are none of theirs.
    Another,
}

/// Open change streams; closed when dropped.
pub struct Watchers(Vec<tokio::task::JoinHandle<()>>);

impl Drop for Watchers {
    fn drop(&mut self) {
        self.0.iter().for_each(tokio::task::JoinHandle::abort);
    }
}
