//! TLS on both faces and to PostgreSQL, with certificates made in the test (rcgen; no key files are
//! committed): REST and gRPC over TLS, mutual TLS on gRPC accepted and refused, a renewed certificate
//! (on SIGHUP, and on the files' change alone) served to new connections while an open one goes on,
//! a stalled handshake cut off at the header timeout, and replicas that reach PostgreSQL over verified
//! TLS and refuse a server their CA did not sign.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chatbotd_tests::postgres::Cluster;
use grpc_server::pb;
use grpc_server::pb::chatbot_service_client::ChatbotServiceClient;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use reqwest::StatusCode;
use serde_json::json;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

use crate::helpers::{Engine, Storage, TestApp, fresh_key, with_key};

/// A certificate authority made for one test.
struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().expect("a key");
        let cert = params.self_signed(&key).expect("a CA certificate");
        Ca { cert, key }
    }

    fn pem(&self) -> String {
        self.cert.pem()
    }

    /// A certificate for `names` (DNS names or IP addresses) signed by this CA: (certificate, key) PEM.
    fn issue(&self, names: &[&str]) -> (String, String) {
        let params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).expect("names");
        let key = KeyPair::generate().expect("a key");
        let cert = params.signed_by(&key, &self.cert, &self.key).expect("a signed certificate");
        (cert.pem(), key.serialize_pem())
    }
}

/// Writes `contents` to `dir/name` (replacing it at once, as a renewal tool does) and returns the path.
fn put(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let path = dir.join(name);
    let staged = dir.join(format!(".{name}.new"));
    std::fs::write(&staged, contents).expect("written");
    std::fs::rename(&staged, &path).expect("renamed");
    path
}

fn https_client(ca: &Ca) -> reqwest::Client {
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.pem().as_bytes()).expect("a CA"))
        .timeout(Duration::from_secs(10))
        .build()
        .expect("a client")
}

async fn grpc_over_tls(app: &TestApp, ca: &Ca, identity: Option<Identity>) -> Result<Channel, tonic::transport::Error> {
    let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca.pem())).domain_name("localhost");
    if let Some(identity) = identity {
        tls = tls.identity(identity);
    }
    Channel::from_shared(app.grpc.clone()).expect("a URL").tls_config(tls)?.connect().await
}

/// A chatbot created over gRPC on `channel`, or the status that refused it.
async fn grpc_create(app: &TestApp, channel: Channel, name: &str) -> Result<pb::Chatbot, tonic::Status> {
    let chatbot = pb::Chatbot { name: Some(name.into()), ..Default::default() };
    let request = pb::CreateChatbotRequest { chatbot: Some(chatbot), ..Default::default() };
    let created = ChatbotServiceClient::new(channel).create_chatbot(with_key(request, &app.key)).await?;
    Ok(created.into_inner())
}

#[tokio::test]
async fn both_faces_serve_over_tls_and_a_renewed_certificate_reaches_new_connections_while_open_ones_go_on() {
    let dir = tempfile::tempdir().expect("a dir");
    let first_ca = Ca::new("first CA");
    let (cert, key) = first_ca.issue(&["localhost", "127.0.0.1"]);
    let (cert_file, key_file) = (put(dir.path(), "cert.pem", &cert), put(dir.path(), "key.pem", &key));
    let flags = ["--tls-cert", cert_file.to_str().expect("UTF-8"), "--tls-key", key_file.to_str().expect("UTF-8")];
    let app = TestApp::spawn_over_tls(Storage::new(Engine::Sled), fresh_key(), &flags, &first_ca.pem()).await;
    assert!(app.rest.starts_with("https://"), "{}", app.rest);

    // REST: the contract over TLS, and the public URLs say https.
    let created = app
        .http
        .post(format!("{}/api/external/chatbots", app.rest))
        .header("x-api-key", &app.key)
        .json(&json!({"name": "Over TLS"}))
        .send()
        .await
        .expect("answered over TLS");
    assert_eq!(created.status(), StatusCode::CREATED);
    // Plaintext to the TLS port gets no answer.
    let plain = app.rest.replace("https://", "http://");
    assert!(reqwest::Client::new().get(format!("{plain}/healthz")).send().await.is_err(), "no plaintext answer");

    // gRPC over TLS, with tonic.
    let channel = grpc_over_tls(&app, &first_ca, None).await.expect("a TLS channel");
    let over_grpc = grpc_create(&app, channel.clone(), "Over gRPC and TLS").await.expect("created");
    assert_eq!(over_grpc.name.as_deref(), Some("Over gRPC and TLS"));

    // Renewed under another CA: new connections get it; the REST connection already open (its client
    // trusts only the first CA, so it could not open a new one) and the gRPC channel go on.
    let second_ca = Ca::new("second CA");
    let (cert, key) = second_ca.issue(&["localhost", "127.0.0.1"]);
    put(dir.path(), "key.pem", &key);
    put(dir.path(), "cert.pem", &cert);
    app.signal(nix::sys::signal::Signal::SIGHUP);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match https_client(&second_ca).get(format!("{}/healthz", app.rest)).send().await {
            Ok(answer) if answer.status() == StatusCode::OK => break,
            other => assert!(Instant::now() < deadline, "the renewed certificate is never served: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        https_client(&first_ca).get(format!("{}/healthz", app.rest)).send().await.is_err(),
        "a new connection no longer gets the old certificate"
    );
    let open = app.http.get(format!("{}/healthz", app.rest)).send().await.expect("the open connection goes on");
    assert_eq!(open.status(), StatusCode::OK);
    grpc_create(&app, channel, "Still on the old channel").await.expect("the open gRPC connection goes on");
    let renewed = grpc_over_tls(&app, &second_ca, None).await.expect("a new channel gets the renewed certificate");
    grpc_create(&app, renewed, "On the renewed certificate").await.expect("created");
    assert!(app.log().contains("TLS certificate reloaded"), "the reload is logged");

    // Renewed again with no signal at all: the changed files alone are noticed.
    let third_ca = Ca::new("third CA");
    let (cert, key) = third_ca.issue(&["localhost", "127.0.0.1"]);
    put(dir.path(), "key.pem", &key);
    put(dir.path(), "cert.pem", &cert);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match https_client(&third_ca).get(format!("{}/healthz", app.rest)).send().await {
            Ok(answer) if answer.status() == StatusCode::OK => break,
            other => assert!(Instant::now() < deadline, "a renewal without SIGHUP is never served: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn mutual_tls_on_grpc_admits_a_caller_signed_by_the_client_ca_and_refuses_others_at_the_handshake() {
    let dir = tempfile::tempdir().expect("a dir");
    let (server_ca, client_ca, stranger_ca) = (Ca::new("server CA"), Ca::new("client CA"), Ca::new("stranger CA"));
    let (cert, key) = server_ca.issue(&["localhost", "127.0.0.1"]);
    let cert_file = put(dir.path(), "cert.pem", &cert);
    let key_file = put(dir.path(), "key.pem", &key);
    let ca_file = put(dir.path(), "clients.pem", &client_ca.pem());
    let flags = [
        "--tls-cert",
        cert_file.to_str().expect("UTF-8"),
        "--tls-key",
        key_file.to_str().expect("UTF-8"),
        "--tls-client-ca",
        ca_file.to_str().expect("UTF-8"),
    ];
    let app = TestApp::spawn_over_tls(Storage::new(Engine::Sled), fresh_key(), &flags, &server_ca.pem()).await;

    let (cert, key) = client_ca.issue(&["billing-service"]);
    let trusted = grpc_over_tls(&app, &server_ca, Some(Identity::from_pem(cert, key))).await.expect("admitted");
    grpc_create(&app, trusted, "Mutual").await.expect("a caller with a certificate of the client CA is served");

    let (cert, key) = stranger_ca.issue(&["intruder"]);
    for identity in [None, Some(Identity::from_pem(cert, key))] {
        let presented = identity.is_some();
        // tonic connects lazily in places: the refusal shows at the connect or at the first call.
        let refused = match grpc_over_tls(&app, &server_ca, identity).await {
            Err(_) => true,
            Ok(channel) => grpc_create(&app, channel, "Refused").await.is_err(),
        };
        assert!(
            refused,
            "a caller {} is refused",
            if presented { "with a stranger's certificate" } else { "without a certificate" }
        );
    }
    // REST asks for no client certificate.
    let health = app.http.get(format!("{}/healthz", app.rest)).send().await.expect("answered");
    assert_eq!(health.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_client_that_opens_tls_and_stalls_is_cut_off_at_the_header_timeout_on_both_faces() {
    let dir = tempfile::tempdir().expect("a dir");
    let ca = Ca::new("CA");
    let (cert, key) = ca.issue(&["localhost", "127.0.0.1"]);
    let (cert_file, key_file) = (put(dir.path(), "cert.pem", &cert), put(dir.path(), "key.pem", &key));
    let flags = [
        "--tls-cert",
        cert_file.to_str().expect("UTF-8"),
        "--tls-key",
        key_file.to_str().expect("UTF-8"),
        "--header-timeout",
        "1s",
    ];
    let app = TestApp::spawn_over_tls(Storage::new(Engine::Sled), fresh_key(), &flags, &ca.pem()).await;
    for url in [&app.rest, &app.grpc] {
        let addr = url.split("://").nth(1).expect("an address").to_owned();
        let mut stream = std::net::TcpStream::connect(&addr).expect("connects");
        // The start of a ClientHello record, and then nothing.
        stream.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]).expect("sent");
        stream.set_read_timeout(Some(Duration::from_secs(10))).expect("a timeout");
        let started = Instant::now();
        let mut byte = [0u8; 1];
        let closed = matches!(stream.read(&mut byte), Ok(0) | Err(_)) && started.elapsed() < Duration::from_secs(8);
        assert!(closed, "{url}: a stalled handshake is closed within the header timeout ({:?})", started.elapsed());
    }
}

#[tokio::test]
#[cfg_attr(postgres_missing, ignore = "PostgreSQL is not installed (apt-get install postgresql)")]
async fn replicas_reach_postgresql_over_verified_tls_and_refuse_a_server_their_ca_did_not_sign() {
    if !Engine::Postgres.available() {
        return;
    }
    let dir = tempfile::tempdir().expect("a dir");
    let (ca, stranger) = (Ca::new("database CA"), Ca::new("another CA"));
    let (cert, key) = ca.issue(&["localhost", "127.0.0.1"]);
    let cluster = Cluster::start_with_tls(&cert, &key).expect("a cluster with TLS");
    let url = cluster.create_database().expect("a database");
    let database = url.rsplit('/').next().expect("a name").to_owned();
    let root = put(dir.path(), "root.pem", &ca.pem());
    let wrong_root = put(dir.path(), "wrong.pem", &stranger.pem());

    let verified = format!("{url}?sslmode=verify-full&sslrootcert={}", root.display());
    let app = TestApp::spawn_on(Storage::Postgres { url: verified }, fresh_key(), &[]).await;
    let created = app
        .http
        .post(format!("{}/api/external/chatbots", app.rest))
        .header("x-api-key", &app.key)
        .json(&json!({"name": "Over TLS to the database"}))
        .send()
        .await
        .expect("answered");
    assert_eq!(created.status(), StatusCode::CREATED);
    let encrypted = cluster
        .psql(&database, "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE s.ssl AND a.datname = current_database() AND a.pid <> pg_backend_pid()")
        .expect("pg_stat_ssl");
    assert_ne!(encrypted.trim(), "0", "the replica's connections are encrypted");
    drop(app);

    // A root that did not sign the server's certificate: the start fails at once, saying why.
    let refused = format!("{url}?sslmode=verify-full&sslrootcert={}", wrong_root.display());
    let started = Instant::now();
    let output = tokio::process::Command::new(crate::helpers::binary())
        .args(["serve", "--rest-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0"])
        .args(Storage::Postgres { url: refused }.args())
        .output();
    let output =
        tokio::time::timeout(Duration::from_secs(30), output).await.expect("it gives up at once").expect("runs");
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "it does not start");
    assert!(said.contains("cannot secure the connection to the database") && said.contains("UnknownIssuer"), "{said}");
    assert!(started.elapsed() < Duration::from_secs(20), "it does not wait for a database it cannot trust");
}
