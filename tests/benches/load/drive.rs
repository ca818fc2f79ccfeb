//! The load generator: N concurrent clients, each on its own connection, issuing one request after
//! another for a fixed time; every latency goes into a histogram.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chatbot_core::blocking::Registry;
use chatbot_core::{ChatbotDraft, Rules};
use grpc_server::pb;
use grpc_server::pb::chatbot_service_client::ChatbotServiceClient;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tonic::transport::Channel;

/// What one run measured.
pub struct Measured {
    pub ops: u64,
    pub errors: u64,
    pub elapsed: Duration,
    /// Latencies in microseconds.
    pub latency: Histogram<u64>,
}

impl Measured {
    fn new() -> Self {
        Measured {
            ops: 0,
            errors: 0,
            elapsed: Duration::ZERO,
            latency: Histogram::new(3).expect("3 significant digits"),
        }
    }

    fn record(&mut self, started: Instant, ok: bool) {
        let micros = started.elapsed().as_micros().max(1) as u64;
        let _ = self.latency.record(micros);
        self.ops += 1;
        self.errors += u64::from(!ok);
    }

    fn merge(&mut self, other: Measured) {
        self.ops += other.ops;
        self.errors += other.errors;
        let _ = self.latency.add(other.latency);
    }
}

/// One kind of request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    RestCreate,
    /// The example with an `openai_api_key`: sealed before it is stored.
    RestCreateWithSecret,
    RestCreateIdempotent,
    RestGet,
    RestList,
    RestUpdate,
    RestRevisions,
    PublicGet,
    GrpcCreate,
    GrpcGet,
    HyperCanned,
    TonicEmpty,
}

impl Op {
    pub fn label(self) -> &'static str {
        match self {
            Op::RestCreate => "REST create",
            Op::RestCreateWithSecret => "REST create with a secret",
            Op::RestCreateIdempotent => "REST create with Idempotency-Key",
            Op::RestGet => "REST get",
            Op::RestList => "REST list (20)",
            Op::RestUpdate => "REST update (PATCH with If-Match)",
            Op::RestRevisions => "REST revision list (20)",
            Op::PublicGet => "public get",
            Op::GrpcCreate => "gRPC create",
            Op::GrpcGet => "gRPC get",
            Op::HyperCanned => "HTTP ceiling",
            Op::TonicEmpty => "gRPC ceiling",
        }
    }
}

/// Everything a client needs to know about its target.
#[derive(Clone)]
pub struct Target {
    /// REST addresses: client `i` talks to `rest[i % rest.len()]` (several replicas share the load).
    pub rest: Vec<SocketAddr>,
    pub grpc: SocketAddr,
    pub key: String,
    /// Chatbots to read.
    pub ids: Arc<Vec<String>>,
    /// Set when the REST face speaks TLS: how clients open it.
    pub tls: Option<tokio_rustls::TlsConnector>,
}

/// The contract's example body with a `__SLUG__` placeholder, and with a provider key when `secret`.
pub fn create_template(secret: bool) -> String {
    let mut body: serde_json::Value =
        serde_json::from_str(include_str!("example.json")).expect("the embedded example is JSON");
    body["slug"] = serde_json::Value::String("__SLUG__".into());
    if secret {
        body["openai_api_key"] = serde_json::Value::String("sk-bench-0123456789abcdefghijklmnopqrstuvwxyzABCD".into());
    }
    body.to_string()
}

enum Connection {
    Http(SendRequest<Full<Bytes>>),
    Chatbots(ChatbotServiceClient<Channel>),
    Health(tonic_health::pb::health_client::HealthClient<Channel>),
}

async fn connect(op: Op, target: &Target, client: usize) -> anyhow::Result<Connection> {
    Ok(match op {
        Op::RestCreate
        | Op::RestCreateWithSecret
        | Op::RestCreateIdempotent
        | Op::RestGet
        | Op::RestList
        | Op::RestUpdate
        | Op::RestRevisions
        | Op::PublicGet
        | Op::HyperCanned => {
            let stream = tokio::net::TcpStream::connect(target.rest[client % target.rest.len()]).await?;
            stream.set_nodelay(true)?;
            Connection::Http(match &target.tls {
                None => http1(stream).await?,
                Some(tls) => {
                    http1(tls.connect(rustls::pki_types::ServerName::try_from("localhost")?, stream).await?).await?
                }
            })
        }
        Op::GrpcCreate | Op::GrpcGet => {
            let channel = Channel::from_shared(format!("http://{}", target.grpc))?.tcp_nodelay(true).connect().await?;
            Connection::Chatbots(ChatbotServiceClient::new(channel))
        }
        Op::TonicEmpty => {
            let channel = Channel::from_shared(format!("http://{}", target.grpc))?.tcp_nodelay(true).connect().await?;
            Connection::Health(tonic_health::pb::health_client::HealthClient::new(channel))
        }
    })
}

/// An HTTP/1.1 client connection over `io`, its driver spawned.
async fn http1<T>(io: T) -> anyhow::Result<SendRequest<Full<Bytes>>>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
    tokio::spawn(connection);
    Ok(sender)
}

/// Runs `clients` concurrent clients issuing `op` against `target` for `duration`.
pub async fn drive(op: Op, target: &Target, clients: usize, duration: Duration) -> anyhow::Result<Measured> {
    let template = Arc::new(create_template(op == Op::RestCreateWithSecret));
    let tag = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let mut connections = Vec::with_capacity(clients);
    for client in 0..clients {
        connections.push(connect(op, target, client).await?);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let tasks: Vec<_> = connections
        .into_iter()
        .enumerate()
        .map(|(worker, mut connection)| {
            let (target, template, tag, stop) = (target.clone(), template.clone(), tag.clone(), stop.clone());
            tokio::spawn(async move {
                let mut measured = Measured::new();
                let mut seq = 0u64;
                // An updater edits a chatbot of its own, each time with the tag its last answer gave.
                let mut own = Own { id: target.ids[worker % target.ids.len()].clone(), etag: None };
                while !stop.load(Ordering::Relaxed) {
                    let at = Instant::now();
                    let unique = format!("{tag}-{worker}-{seq}");
                    let ok = call(op, &mut connection, &target, &template, &unique, seq, &mut own).await;
                    measured.record(at, ok);
                    seq += 1;
                }
                measured
            })
        })
        .collect();
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    let mut total = Measured::new();
    for task in tasks {
        total.merge(task.await?);
    }
    total.elapsed = started.elapsed();
    Ok(total)
}

/// What one client of an update row keeps: its chatbot, and the entity tag of its last answer.
struct Own {
    id: String,
    etag: Option<String>,
}

async fn call(
    op: Op,
    connection: &mut Connection,
    target: &Target,
    template: &str,
    unique: &str,
    seq: u64,
    own: &mut Own,
) -> bool {
    let id = || target.ids[(seq as usize * 7919) % target.ids.len()].clone();
    match connection {
        Connection::Http(sender) => {
            let (method, path, body, expected) = match op {
                Op::RestCreate | Op::RestCreateWithSecret | Op::RestCreateIdempotent | Op::HyperCanned => {
                    let body = template.replace("__SLUG__", &format!("bench-{unique}"));
                    ("POST", "/api/external/chatbots".to_owned(), Bytes::from(body), 201)
                }
                Op::RestGet => ("GET", format!("/api/external/chatbot/{}", id()), Bytes::new(), 200),
                Op::RestUpdate => {
                    // Every PATCH changes the description: each one is a revision.
                    let body = format!(r#"{{"description":"bench {unique}"}}"#);
                    ("PATCH", format!("/api/external/chatbot/{}", own.id), Bytes::from(body), 200)
                }
                // The clients' own chatbots: the update row (run just before) gave them many revisions.
                Op::RestRevisions => {
                    ("GET", format!("/api/external/chatbot/{}/revisions?limit=20", own.id), Bytes::new(), 200)
                }
                // The seeded chatbots are public, with slugs `seed-0`, `seed-1`, ...: no key is sent.
                Op::PublicGet => {
                    let slug = format!("seed-{}", (seq as usize * 7919) % target.ids.len());
                    ("GET", format!("/api/public/chatbots/{slug}"), Bytes::new(), 200)
                }
                Op::RestList | Op::GrpcCreate | Op::GrpcGet | Op::TonicEmpty => {
                    ("GET", "/api/external/chatbots?limit=20".to_owned(), Bytes::new(), 200)
                }
            };
            let mut request = hyper::Request::builder().method(method).uri(path).header("host", "127.0.0.1");
            if op != Op::PublicGet {
                request = request.header("x-api-key", &target.key);
            }
            if !body.is_empty() {
                request = request.header("content-type", "application/json");
            }
            if op == Op::RestCreateIdempotent {
                request = request.header("idempotency-key", unique);
            }
            if let (Op::RestUpdate, Some(etag)) = (op, &own.etag) {
                request = request.header("if-match", etag);
            }
            let Ok(request) = request.body(Full::new(body)) else { return false };
            if sender.ready().await.is_err() {
                return false;
            }
            match sender.send_request(request).await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    if op == Op::RestUpdate {
                        own.etag = response.headers().get("etag").and_then(|v| v.to_str().ok()).map(str::to_owned);
                    }
                    response.into_body().collect().await.is_ok() && status == expected
                }
                Err(_) => false,
            }
        }
        Connection::Chatbots(client) => {
            if op == Op::GrpcCreate {
                let chatbot = pb::Chatbot {
                    name: Some("API Docs Demo Chatbot".into()),
                    slug: Some(format!("grpc-{unique}")),
                    ..example_message()
                };
                let request = with_key(
                    pb::CreateChatbotRequest { chatbot: Some(chatbot), validate_only: false, ..Default::default() },
                    &target.key,
                );
                client.create_chatbot(request).await.is_ok()
            } else {
                client.get_chatbot(with_key(pb::GetChatbotRequest { id: id() }, &target.key)).await.is_ok()
            }
        }
        Connection::Health(client) => {
            client.check(tonic_health::pb::HealthCheckRequest { service: String::new() }).await.is_ok()
        }
    }
}

/// A gRPC request carrying `key`.
fn with_key<T>(message: T, key: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Ok(key) = key.parse() {
        request.metadata_mut().insert("x-api-key", key);
    }
    request
}

/// The contract's example as a core draft, read by the REST gateway's own reader (so through the
/// field catalog, like every request).
pub fn example_draft(slug: String) -> ChatbotDraft {
    let body: serde_json::Value = serde_json::from_str(include_str!("example.json")).expect("JSON");
    let body = body.as_object().expect("the example is an object");
    let read = rest_gateway::contract::request::read_chatbot(body, rest_gateway::contract::request::Target::Create);
    assert!(read.violations.is_empty(), "the example is valid: {:?}", read.violations);
    ChatbotDraft { slug: Some(slug), ..read.draft }
}

/// The contract's example as a protobuf message, converted by the gRPC face's own converter.
pub fn example_message() -> pb::Chatbot {
    grpc_server::message_from_draft(example_draft("api-docs-demo-chatbot".into()))
}

/// Runs `threads` OS threads calling `work(thread, seq)` for `duration`.
fn drive_blocking(threads: usize, duration: Duration, work: impl Fn(usize, u64) -> bool + Sync) -> Measured {
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    let mut total = Measured::new();
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|thread| {
                let (stop, work) = (&stop, &work);
                scope.spawn(move || {
                    let mut measured = Measured::new();
                    let mut seq = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let at = Instant::now();
                        measured.record(at, work(thread, seq));
                        seq += 1;
                    }
                    measured
                })
            })
            .collect();
        std::thread::sleep(duration);
        stop.store(true, Ordering::Relaxed);
        for handle in handles {
            total.merge(handle.join().expect("a worker thread"));
        }
    });
    total.elapsed = started.elapsed();
    total
}

/// sled as an application would use it at its simplest: the stored form of the example chatbot inserted
/// into a bare tree (one key, no index), each insert made durable by sled's own flush.
pub fn sled_raw(threads: usize, duration: Duration) -> anyhow::Result<Measured> {
    let scratch = tempfile::tempdir()?;
    let record = {
        let registry = Registry::open(scratch.path().join("scratch"), Rules::default())?;
        let (org, _) = registry.create_api_key("bench")?;
        let chatbot = registry.create(org, example_draft("scratch-bot".into()))?;
        let mut bytes = vec![1u8];
        serde_json::to_writer(&mut bytes, &chatbot)?;
        bytes
    };
    let db = sled::Config::new().path(scratch.path().join("raw")).mode(sled::Mode::HighThroughput).open()?;
    let tree = db.open_tree("chatbots")?;
    Ok(drive_blocking(threads, duration, |_, _| {
        tree.insert(uuid::Uuid::now_v7().as_bytes(), record.as_slice()).is_ok() && db.flush().is_ok()
    }))
}

/// The core library called directly: rules and store, no network.
pub fn core_create(threads: usize, duration: Duration) -> anyhow::Result<Measured> {
    let scratch = tempfile::tempdir()?;
    let registry = Registry::open(scratch.path(), Rules::default())?;
    let (org, _) = registry.create_api_key("bench")?;
    Ok(drive_blocking(threads, duration, |thread, seq| {
        registry.create(org, example_draft(format!("core-{thread}-{seq}"))).is_ok()
    }))
}
