//! Starting the real `chatbotd` binary on ephemeral ports over a fresh store, on either engine, and
//! typed clients for its REST and gRPC faces.

use std::ffi::OsString;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use chatbotd_tests::{Profile, announced, postgres};
use grpc_server::pb::chatbot_service_client::ChatbotServiceClient;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::process::{Child, Command};
use tonic::transport::Channel;

/// How long a started server may take to announce its ports, or a stopped one to exit.
pub const PROCESS_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs each listed async test `name(engine: Engine)` once per storage engine, as the tests
/// `name::sled` and `name::postgres`. Without PostgreSQL the second is skipped with a loud note, unless
/// `CHATBOTD_TEST_REQUIRE_POSTGRES` is set (as in CI), which makes it fail.
macro_rules! on_every_engine {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn sled() {
                super::$name($crate::helpers::Engine::Sled).await
            }

            #[tokio::test]
            #[cfg_attr(postgres_missing, ignore = "PostgreSQL is not installed (apt-get install postgresql)")]
            async fn postgres() {
                if $crate::helpers::Engine::Postgres.available() {
                    super::$name($crate::helpers::Engine::Postgres).await
                }
            }
        }
    )*};
}
pub(crate) use on_every_engine;

/// A storage engine the server can run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// The embedded default, in a temp dir.
    Sled,
    /// A fresh database of the throwaway cluster shared by this test process.
    Postgres,
}

impl Engine {
    /// Whether the engine can run here. A missing PostgreSQL is a skip with a note, or a failure when
    /// CI requires it.
    pub fn available(self) -> bool {
        match (self, postgres::shared()) {
            (Engine::Sled, _) | (Engine::Postgres, Ok(_)) => true,
            (Engine::Postgres, Err(why)) => {
                assert!(std::env::var_os(postgres::REQUIRE_VAR).is_none(), "PostgreSQL is required: {why}");
                eprintln!("\n!!! SKIPPED on PostgreSQL: {why}\n");
                false
            }
        }
    }
}

/// A fresh PostgreSQL store for a test that only makes sense there (replicas, outages), or `None` with
/// a loud note when PostgreSQL is missing (a failure in CI).
pub fn postgres_only() -> Option<Storage> {
    Engine::Postgres.available().then(|| Storage::new(Engine::Postgres))
}

/// A store that outlives server processes: a server killed and started again on it finds its data.
#[derive(Debug, Clone)]
pub enum Storage {
    /// A sled data directory.
    Sled(Arc<tempfile::TempDir>),
    /// A PostgreSQL database of the shared cluster.
    Postgres {
        /// Its URL.
        url: String,
    },
}

/// The keyring every PostgreSQL replica of a test is given (sled makes its own in its data directory).
pub const TEST_KEYRING: &str = "test-1=dGVzdC1rZXlyaW5nLWZvci1jaGF0Ym90ZC1yZXBsISE=";

impl Storage {
    /// A new, empty store on `engine`.
    pub fn new(engine: Engine) -> Storage {
        match engine {
            Engine::Sled => Storage::Sled(Arc::new(tempfile::tempdir().expect("a temp dir"))),
            Engine::Postgres => {
                let cluster = postgres::shared().expect("PostgreSQL is available");
                Storage::Postgres { url: cluster.create_database().expect("a fresh database") }
            }
        }
    }

    /// The command-line flags that point chatbotd at this store.
    pub fn args(&self) -> Vec<OsString> {
        match self {
            Storage::Sled(dir) => vec!["--data-dir".into(), dir.path().into()],
            Storage::Postgres { url } => {
                vec!["--database-url".into(), url.into(), "--secret-keys".into(), TEST_KEYRING.into()]
            }
        }
    }

    /// The database's name, for PostgreSQL.
    pub fn database(&self) -> Option<&str> {
        match self {
            Storage::Sled(_) => None,
            Storage::Postgres { url } => url.rsplit('/').next(),
        }
    }
}

/// A running server.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`.
    pub rest: String,
    /// `http://127.0.0.1:PORT`.
    pub grpc: String,
    /// A valid key of the default organisation.
    pub key: String,
    /// Where `/metrics` is served apart from REST, when it is.
    metrics: Option<std::net::SocketAddr>,
    /// The store (kept alive across restarts).
    pub storage: Storage,
    pub http: reqwest::Client,
    child: Child,
    /// Where the server's log goes (at `info`), unless `TEST_LOG` sends it to the terminal.
    log: Arc<tempfile::NamedTempFile>,
}

/// An HTTP answer: status, headers, and the body as JSON (`Value::Null` when empty).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Answer {
    /// The `error.code` of an error body.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or_default()
    }

    /// The `(field, code)` of each violation, sorted.
    pub fn violations(&self) -> Vec<(String, String)> {
        let mut found: Vec<(String, String)> = self.body["error"]["violations"]
            .as_array()
            .map(|list| {
                list.iter()
                    .map(|v| {
                        (v["field"].as_str().unwrap_or("").to_owned(), v["code"].as_str().unwrap_or("").to_owned())
                    })
                    .collect()
            })
            .unwrap_or_default();
        found.sort();
        found
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
    }
}

pub fn binary() -> &'static Path {
    chatbotd_tests::chatbotd(Profile::Dev)
}

/// A fresh random key for the default organisation.
pub fn fresh_key() -> String {
    format!("test-key-{}", uuid_like())
}

fn uuid_like() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).expect("time after 1970").as_nanos();
    format!("{nanos:x}{:x}", std::process::id())
}

impl TestApp {
    /// A server over a new, empty store on `engine`.
    pub async fn spawn(engine: Engine) -> TestApp {
        TestApp::spawn_on(Storage::new(engine), fresh_key(), &[]).await
    }

    /// A server over `storage`, with `key` valid for the default organisation and extra flags.
    pub async fn spawn_on(storage: Storage, key: String, extra: &[&str]) -> TestApp {
        TestApp::spawn_trusting(storage, key, extra, None).await
    }

    /// A server over `storage` with `extra` flags that turn TLS on (`--tls-cert`, `--tls-key`), its
    /// REST client trusting the CA `ca_pem` (and its URLs `https://`).
    pub async fn spawn_over_tls(storage: Storage, key: String, extra: &[&str], ca_pem: &str) -> TestApp {
        TestApp::spawn_trusting(storage, key, extra, Some(ca_pem)).await
    }

    async fn spawn_trusting(storage: Storage, key: String, extra: &[&str], ca_pem: Option<&str>) -> TestApp {
        let log = Arc::new(tempfile::NamedTempFile::new().expect("a log file"));
        let mut child = Command::new(binary())
            .args(["serve", "--rest-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0"])
            .args(storage.args())
            .args(extra)
            .env("CHATBOTD_API_KEY", &key)
            .env_remove("CHATBOTD_MODELS")
            .env_remove("CHATBOTD_VOICES")
            .env("RUST_LOG", if std::env::var_os("TEST_LOG").is_some() { "debug" } else { "info" })
            .stdout(Stdio::piped())
            .stderr(match std::env::var_os("TEST_LOG") {
                Some(_) => Stdio::inherit(),
                None => Stdio::from(log.reopen().expect("the log file reopens")),
            })
            .kill_on_drop(true)
            .spawn()
            .expect("chatbotd starts");
        // `/metrics` on an address of its own is announced last, when asked for.
        let faces: &[&str] =
            if extra.contains(&"--metrics-addr") { &["REST", "gRPC", "metrics"] } else { &["REST", "gRPC"] };
        let ports = match announced(&mut child, faces, PROCESS_TIMEOUT).await {
            Ok(ports) => ports,
            Err(err) => {
                let said = std::fs::read_to_string(log.path()).unwrap_or_default();
                panic!("chatbotd did not announce its ports: {err}\nits log:\n{said}")
            }
        };
        let scheme = if ca_pem.is_some() { "https" } else { "http" };
        let mut http =
            reqwest::Client::builder().connect_timeout(Duration::from_secs(10)).read_timeout(Duration::from_secs(60));
        if let Some(ca) = ca_pem {
            http = http.add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).expect("a PEM CA"));
        }
        let app = TestApp {
            rest: format!("{scheme}://{}", ports.addr("REST")),
            grpc: format!("{scheme}://{}", ports.addr("gRPC")),
            metrics: ports.addrs.get("metrics").copied(),
            key,
            storage,
            // A hang fails its test within a minute instead of stalling the suite until CI's limit.
            http: http.build().expect("an HTTP client"),
            child,
            log,
        };
        let health = app.http.get(format!("{}/healthz", app.rest)).send().await.expect("healthz answers");
        assert_eq!(health.status(), StatusCode::OK);
        app
    }

    /// Where `/metrics` is served apart from REST (`--metrics-addr`).
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        self.metrics
    }

    /// What the server has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// Kills the process with SIGKILL (no chance to flush anything) and waits for it to die.
    pub async fn kill9(mut self) -> Storage {
        tokio::time::timeout(PROCESS_TIMEOUT, self.child.kill())
            .await
            .expect("chatbotd dies within 30 s of SIGKILL")
            .expect("SIGKILL is delivered");
        self.storage.clone()
    }

    /// Sends `signal` to the process.
    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        let pid = self.child.id().expect("still running") as i32;
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal).expect("the signal is delivered");
    }

    /// Sends SIGTERM and returns the exit status.
    pub async fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().expect("still running") as i32;
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGTERM)
            .expect("SIGTERM is delivered");
        tokio::time::timeout(PROCESS_TIMEOUT, self.child.wait())
            .await
            .expect("chatbotd stops within 30 s of SIGTERM")
            .expect("exit status")
    }

    /// A server, and a key of a second organisation made with `chatbotd keys create` (before the server
    /// starts, since a sled store allows one process at a time).
    pub async fn spawn_with_second_org(engine: Engine) -> (TestApp, String) {
        let storage = Storage::new(engine);
        let other = create_key(&storage, "globex").await;
        (TestApp::spawn_on(storage, fresh_key(), &[]).await, other)
    }

    /// Any request with `key` (or none).
    pub async fn call(&self, method: Method, path: &str, key: Option<&str>, body: Option<&Value>) -> Answer {
        let mut request = self.http.request(method, format!("{}{path}", self.rest));
        if let Some(key) = key {
            request = request.header("x-api-key", key);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        answer(request.send().await.expect("the request is answered")).await
    }

    pub async fn post(&self, body: &Value) -> Answer {
        self.call(Method::POST, "/api/external/chatbots", Some(&self.key), Some(body)).await
    }

    pub async fn get(&self, id: &str) -> Answer {
        self.call(Method::GET, &format!("/api/external/chatbot/{id}"), Some(&self.key), None).await
    }

    pub async fn patch(&self, id: &str, body: &Value) -> Answer {
        self.call(Method::PATCH, &format!("/api/external/chatbot/{id}"), Some(&self.key), Some(body)).await
    }

    /// `PATCH` with `If-Match: etag`.
    pub async fn patch_if_match(&self, id: &str, etag: &str, body: &Value) -> Answer {
        let request = self
            .http
            .patch(format!("{}/api/external/chatbot/{id}", self.rest))
            .header("x-api-key", &self.key)
            .header("if-match", etag)
            .json(body);
        answer(request.send().await.expect("the request is answered")).await
    }

    pub async fn delete(&self, id: &str) -> Answer {
        self.call(Method::DELETE, &format!("/api/external/chatbot/{id}"), Some(&self.key), None).await
    }

    pub async fn list(&self, query: &str) -> Answer {
        self.call(Method::GET, &format!("/api/external/chatbots{query}"), Some(&self.key), None).await
    }

    /// Every chatbot of the key's organisation, page after page (100 a page), in listing order.
    pub async fn list_all(&self) -> Vec<Value> {
        let mut listed = Vec::new();
        let mut cursor = String::new();
        loop {
            let page = self.list(&format!("?limit=100{cursor}")).await;
            assert_eq!(page.status, StatusCode::OK, "{:?}", page.body);
            listed.extend(page.body["chatbots"].as_array().expect("a page").iter().cloned());
            match page.body["next_cursor"].as_str() {
                Some(next) => cursor = format!("&cursor={next}"),
                None => return listed,
            }
        }
    }

    /// A create of `body` with `Idempotency-Key: key`.
    pub async fn post_with_key(&self, key: &str, body: &Value) -> Answer {
        let request = self
            .http
            .post(format!("{}/api/external/chatbots", self.rest))
            .header("x-api-key", &self.key)
            .header("idempotency-key", key)
            .json(body);
        answer(request.send().await.expect("answered")).await
    }

    /// Creates a chatbot named `name` (plus `extra` fields) and returns its id.
    pub async fn create_named(&self, name: &str, extra: Value) -> String {
        let mut body = json!({ "name": name });
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        let answer = self.post(&body).await;
        assert_eq!(answer.status, StatusCode::CREATED, "{:?}", answer.body);
        answer.body["chatbot"]["id"].as_str().expect("an id").to_owned()
    }

    /// Opens the caller's event stream (SSE) and returns the answer as it starts, its body unread.
    pub async fn open_events(&self) -> reqwest::Response {
        let request =
            self.http.get(format!("{}/api/external/chatbots/events", self.rest)).header("x-api-key", &self.key);
        request.send().await.expect("answered")
    }

    /// A gRPC client.
    pub async fn grpc_client(&self) -> ChatbotServiceClient<Channel> {
        ChatbotServiceClient::connect(self.grpc.clone()).await.expect("gRPC connects")
    }

    /// A gRPC request carrying this app's key.
    pub fn grpc_request<T>(&self, message: T) -> tonic::Request<T> {
        with_key(message, &self.key)
    }
}

/// The `(field, reason)` of each field violation in a status's `BadRequest` details, in order.
pub fn field_violations(status: &tonic::Status) -> Vec<(String, String)> {
    use tonic_types::StatusExt as _;
    let details = status.get_error_details();
    let bad_request = details.bad_request().expect("BadRequest details");
    bad_request.field_violations.iter().map(|v| (v.field.clone(), v.reason.clone())).collect()
}

/// A gRPC request carrying `key`.
pub fn with_key<T>(message: T, key: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("x-api-key", key.parse().expect("an ASCII key"));
    request
}

pub async fn answer(response: reqwest::Response) -> Answer {
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.expect("a body");
    let body = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).expect("the body is JSON") };
    Answer { status, headers, body }
}

/// Starts a server on `storage` with no `CHATBOTD_API_KEY`; returns it and the first key it printed,
/// if it printed one.
pub async fn spawn_without_key(storage: &Storage) -> (Child, Option<String>, std::net::SocketAddr) {
    let mut child = Command::new(binary())
        .args(["serve", "--rest-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0"])
        .args(storage.args())
        .env_remove("CHATBOTD_API_KEY")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("chatbotd starts");
    let ports = announced(&mut child, &["REST"], PROCESS_TIMEOUT).await.expect("chatbotd announces its ports");
    let key =
        ports.other_lines.iter().find_map(|line| line.split_once("store it now): ").map(|k| k.1.trim().to_owned()));
    (child, key, ports.addr("REST"))
}

/// Runs `chatbotd keys create` and returns the key it prints last.
pub async fn create_key(storage: &Storage, org: &str) -> String {
    let run = Command::new(binary()).args(["keys", "create", "--org", org]).args(storage.args()).output();
    let output = tokio::time::timeout(PROCESS_TIMEOUT, run)
        .await
        .expect("chatbotd keys create finishes within 30 s")
        .expect("chatbotd keys create runs");
    assert!(output.status.success(), "keys create failed: {}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8(output.stdout).expect("UTF-8 output");
    stdout.lines().last().expect("a key on the last line").trim().to_owned()
}

/// The contract page's example request body.
pub fn contract_example() -> Value {
    json!({
      "description": "A helpful support assistant",
      "is_public": true,
      "name": "API Docs Demo Chatbot",
      "personality_config": { "style": "Friendly", "tone": "Professional" },
      "settings": {
        "greeting": "Hello! How can I assist you today?",
        "isRequestUserInfoEnabled": false,
        "isToolEnabled": true,
        "model": "gpt-4o-mini",
        "prompt": "You are a highly skilled customer support assistant for [company name]. Your goal is to provide accurate, polite, and concise answers to customer inquiries. If you do not know the answer, recommend the customer to contact human support or check the FAQ section. Ensure a positive tone in all responses",
        "snippet": {
          "header": "Customer Support",
          "logo": "https://example.com/logo.png",
          "name": "Support Assistant",
          "primaryColor": "#4F46E5",
          "secondaryColor": "#10B981",
          "slogan": "How can I help you today?"
        }
      },
      "slug": "api-docs-demo-chatbot"
    })
}

/// Whether `value` is a lowercase hyphenated UUID.
pub fn is_lower_uuid(value: &str) -> bool {
    let groups: Vec<&str> = value.split('-').collect();
    groups.iter().map(|g| g.len()).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
        && groups.iter().all(|g| g.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
}

/// Whether `value` has the contract's timestamp form `2025-01-22T04:30:45.790337+00:00`.
pub fn is_contract_timestamp(value: &str) -> bool {
    let b = value.as_bytes();
    b.len() == 32
        && value.ends_with("+00:00")
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b'.'
        && [0..4, 5..7, 8..10, 11..13, 14..16, 17..19, 20..26].into_iter().all(|r| b[r].iter().all(u8::is_ascii_digit))
}
