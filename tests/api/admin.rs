//! Key management and backups while the service runs: the admin API (and the CLI over it) makes,
//! lists and revokes keys with immediate effect, and exports a point-in-time snapshot under load.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use grpc_server::admin_pb::ListApiKeysRequest;
use grpc_server::admin_pb::admin_service_client::AdminServiceClient;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::process::Command;

use crate::helpers::{Engine, PROCESS_TIMEOUT, Storage, TestApp, binary, on_every_engine};

on_every_engine!(
    a_key_made_through_the_admin_api_works_at_once_and_stops_at_once_when_revoked,
    the_admin_api_refuses_callers_without_its_token_and_is_off_without_one,
    an_export_under_a_write_load_is_one_moment_and_imports_into_an_empty_store,
    wrong_admin_tokens_are_throttled_and_a_short_token_is_refused_at_start_up,
);

pub(crate) const TOKEN: &str = "admin-token-for-tests-0123456789";

async fn spawn_with_admin(engine: Engine) -> TestApp {
    TestApp::spawn_on(Storage::new(engine), "admin-test-key-0123456789abcdef".into(), &["--admin-token", TOKEN]).await
}

/// Runs `chatbotd ARGS --server <app's gRPC> --admin-token TOKEN`; returns its stdout.
pub(crate) async fn cli(app: &TestApp, args: &[&str]) -> String {
    let run = Command::new(binary()).args(args).args(["--server", &app.grpc, "--admin-token", TOKEN]).output();
    let output = tokio::time::timeout(PROCESS_TIMEOUT, run).await.expect("in time").expect("runs");
    assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("UTF-8")
}

async fn a_key_made_through_the_admin_api_works_at_once_and_stops_at_once_when_revoked(engine: Engine) {
    let app = spawn_with_admin(engine).await;
    let created = cli(&app, &["keys", "create", "--org", "acme"]).await;
    let key = created.lines().last().expect("the key on the last line").to_owned();
    let key_id = created.lines().find_map(|l| l.strip_prefix("key id ")).expect("its id").to_owned();
    let theirs = app.call(Method::POST, "/api/external/chatbots", Some(&key), Some(&json!({"name": "Acme bot"}))).await;
    assert_eq!(theirs.status, StatusCode::CREATED, "works at once");

    let listed = cli(&app, &["keys", "list"]).await;
    let line = listed.lines().find(|l| l.starts_with(&key_id)).expect("the new key is listed");
    assert!(line.contains("acme") && line.contains(&key[..6]), "{line}");
    assert!(line.contains("last used 2"), "its use is noted: {line}");
    assert!(!listed.contains(&key), "never the secret");
    assert_eq!(cli(&app, &["keys", "list", "--org", "acme"]).await.lines().count(), 1);

    cli(&app, &["keys", "revoke", &key_id]).await;
    let refused = app.call(Method::GET, "/api/external/chatbots", Some(&key), None).await;
    assert_eq!((refused.status, refused.code()), (StatusCode::UNAUTHORIZED, "unauthenticated"), "refused at once");
    assert!(!cli(&app, &["keys", "list"]).await.contains(&key_id));
    assert_eq!(app.list("").await.status, StatusCode::OK, "other keys go on working");
}

/// A `ListApiKeys` call presenting `token`.
fn list_keys_with(token: &str) -> tonic::Request<ListApiKeysRequest> {
    let mut request = tonic::Request::new(ListApiKeysRequest::default());
    request.metadata_mut().insert("x-admin-token", token.parse().expect("ASCII"));
    request
}

async fn wrong_admin_tokens_are_throttled_and_a_short_token_is_refused_at_start_up(engine: Engine) {
    use tonic_types::StatusExt as _;
    let app = spawn_with_admin(engine).await;
    let mut client = AdminServiceClient::connect(app.grpc.clone()).await.expect("connects");
    let started = std::time::Instant::now();
    let mut guesses = 0;
    let shut = loop {
        let status = client.list_api_keys(list_keys_with(&format!("guess-{guesses}"))).await.expect_err("wrong");
        if status.code() != tonic::Code::Unauthenticated {
            break status;
        }
        guesses += 1;
        assert!(guesses < 100, "100 wrong tokens and never throttled");
    };
    println!("throttled after {guesses} wrong admin tokens in {:?}", started.elapsed());
    assert_eq!(shut.code(), tonic::Code::ResourceExhausted, "{shut:?}");
    let retry = shut.get_error_details().retry_info().and_then(|r| r.retry_delay).expect("RetryInfo");
    assert!(retry > std::time::Duration::ZERO);
    let right = client.list_api_keys(list_keys_with(TOKEN)).await.expect_err("the right token is refused too");
    assert_eq!(right.code(), tonic::Code::ResourceExhausted, "a shut door says nothing of the token");
    tokio::time::sleep(retry + std::time::Duration::from_millis(200)).await;
    assert!(client.list_api_keys(list_keys_with(TOKEN)).await.is_ok(), "open again once the bucket refills");

    let short = Command::new(binary())
        .args(["serve", "--rest-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0", "--admin-token", "x"])
        .args(Storage::new(engine).args())
        .output();
    let short = tokio::time::timeout(PROCESS_TIMEOUT, short).await.expect("in time").expect("runs");
    assert!(!short.status.success(), "a one-character admin token is refused");
    let stderr = String::from_utf8_lossy(&short.stderr);
    assert!(stderr.contains("at least 32 characters"), "{stderr}");
}

async fn the_admin_api_refuses_callers_without_its_token_and_is_off_without_one(engine: Engine) {
    let app = spawn_with_admin(engine).await;
    let mut client = AdminServiceClient::connect(app.grpc.clone()).await.expect("connects");
    let status = client.list_api_keys(ListApiKeysRequest::default()).await.expect_err("no token");
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
    let mut wrong = tonic::Request::new(ListApiKeysRequest::default());
    wrong.metadata_mut().insert("x-admin-token", "not-the-token".parse().expect("ASCII"));
    assert_eq!(client.list_api_keys(wrong).await.expect_err("wrong token").code(), tonic::Code::Unauthenticated);

    let closed = TestApp::spawn(engine).await;
    let mut client = AdminServiceClient::connect(closed.grpc.clone()).await.expect("connects");
    let mut request = tonic::Request::new(ListApiKeysRequest::default());
    request.metadata_mut().insert("x-admin-token", TOKEN.parse().expect("ASCII"));
    assert_eq!(client.list_api_keys(request).await.expect_err("off").code(), tonic::Code::PermissionDenied);
}

async fn an_export_under_a_write_load_is_one_moment_and_imports_into_an_empty_store(engine: Engine) {
    let app = spawn_with_admin(engine).await;
    // The pair is stored far apart (A first, B last of 242), so that an export that is not one moment
    // reads them milliseconds apart, while the updater moves on between them.
    let pair_a = app.create_named("Pair A", json!({})).await;
    let mut doomed = Vec::new();
    for i in 0..40 {
        doomed.push(app.create_named(&format!("Doomed {i}"), json!({})).await);
    }
    for i in 0..200 {
        app.create_named(&format!("Base {i}"), json!({})).await;
    }
    let pair = [pair_a, app.create_named("Pair B", json!({})).await];

    // Three writers, each doing one thing in a known order, so that a point-in-time view can be told
    // from a mix: creates numbered in order, deletes in order, and the pair always updated A then B.
    let stop = Arc::new(AtomicBool::new(false));
    let app = Arc::new(app);
    let creator = tokio::spawn({
        let (app, stop) = (Arc::clone(&app), Arc::clone(&stop));
        async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                app.create_named(&format!("Seq {n:05}"), json!({})).await;
                n += 1;
            }
        }
    });
    let deleter = tokio::spawn({
        let (app, stop, doomed) = (Arc::clone(&app), Arc::clone(&stop), doomed.clone());
        async move {
            for id in &doomed {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                assert_eq!(app.delete(id).await.status, StatusCode::OK);
            }
        }
    });
    let updater = tokio::spawn({
        let (app, stop, pair) = (Arc::clone(&app), Arc::clone(&stop), pair.clone());
        async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                for id in &pair {
                    assert_eq!(app.patch(id, &json!({"description": format!("v{n}")})).await.status, StatusCode::OK);
                }
            }
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let export = cli(&app, &["export"]).await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    for writer in [creator, deleter, updater] {
        writer.await.expect("a writer");
    }

    let records: Vec<Value> = export.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect();
    let chatbots: Vec<&Value> = records.iter().filter(|r| r["kind"] == "chatbot").collect();
    let names: HashSet<&str> = chatbots.iter().map(|c| c["config"]["name"].as_str().expect("a name")).collect();
    assert_eq!(names.len(), chatbots.len(), "each chatbot once");
    let mut sequence: Vec<&str> = names.iter().copied().filter(|n| n.starts_with("Seq ")).collect();
    sequence.sort();
    assert!(!sequence.is_empty(), "the export ran while the writers did");
    for (i, name) in sequence.iter().enumerate() {
        assert_eq!(*name, format!("Seq {i:05}"), "creates are seen in order, without a gap");
    }
    let gone: Vec<bool> = (0..40).map(|i| !names.contains(format!("Doomed {i}").as_str())).collect();
    assert!(gone.windows(2).all(|w| w[0] >= w[1]), "deletes are seen in order: {gone:?}");
    let version = |name: &str| {
        let chatbot = chatbots.iter().find(|c| c["config"]["name"] == name).expect("the pair is there");
        chatbot["config"]["description"]
            .as_str()
            .expect("a description")
            .trim_start_matches('v')
            .parse::<u64>()
            .unwrap_or(0)
    };
    let (a, b) = (version("Pair A"), version("Pair B"));
    assert!(a == b || a == b + 1, "A is updated before B, so B is never ahead: A v{a}, B v{b}");

    let target = Storage::new(engine);
    let mut import = Command::new(binary())
        .arg("import")
        .args(target.args())
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("import runs");
    use tokio::io::AsyncWriteExt as _;
    let mut stdin = import.stdin.take().expect("stdin");
    stdin.write_all(export.as_bytes()).await.expect("fed");
    drop(stdin);
    let imported = import.wait_with_output().await.expect("import ends");
    assert!(imported.status.success(), "{}", String::from_utf8_lossy(&imported.stderr));

    let restored = TestApp::spawn_on(target, app.key.clone(), &[]).await;
    let listed: HashMap<String, Value> = restored
        .list_all()
        .await
        .into_iter()
        .map(|item| (item["id"].as_str().expect("an id").to_owned(), item))
        .collect();
    assert_eq!(listed.len(), chatbots.len(), "the same number of chatbots");
    for chatbot in &chatbots {
        let item = &listed[chatbot["id"].as_str().expect("an id")];
        assert_eq!(item["name"], chatbot["config"]["name"]);
        assert_eq!(item["description"], chatbot["config"]["description"]);
        assert_eq!(item["slug"], chatbot["config"]["slug"]);
    }
}
