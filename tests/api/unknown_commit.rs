//! A connection to PostgreSQL that breaks after a COMMIT is sent and before its answer arrives: the
//! write may or may not have happened. A keyed write finds out (by its claim) and answers once, truly;
//! a group-committed one finds out by its new version id; an unkeyed one written alone says the
//! outcome is unknown. Made to happen on demand by a TCP proxy between the service and the database
//! that cuts the connection which carried a marked write right after forwarding its commit.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use chatbotd_tests::postgres::Cluster;
use reqwest::{Method, StatusCode};
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

use crate::helpers::{Engine, Storage, TestApp};

/// Bytes a write carries in its parameters that mark its connection for the cut.
const MARKER: &[u8] = b"cut-at-the-commit";

/// Where the armed proxy cuts the marked connection.
const OFF: u8 = 0;
/// Right after it forwards a COMMIT (the simple-protocol query `COMMIT`): a write in a transaction.
const AT_COMMIT: u8 = 1;
/// Right after it forwards the marked statement itself, which commits on its own: a group commit.
const AFTER_STATEMENT: u8 = 2;

/// A proxy to `upstream`: while `armed` says where, the first connection that carries [`MARKER`] is
/// cut there, before the answer comes back.
async fn proxy(upstream: u16, armed: Arc<AtomicU8>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let port = listener.local_addr().expect("an address").port();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let armed = armed.clone();
            tokio::spawn(async move {
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)).await else { return };
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                let back = tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
                });
                let mut marked = false;
                let mut buffer = vec![0u8; 64 * 1024];
                while let Ok(read @ 1..) = client_read.read(&mut buffer).await {
                    let chunk = &buffer[..read];
                    let mode = armed.load(Ordering::SeqCst);
                    let marker = chunk.windows(MARKER.len()).any(|w| w == MARKER);
                    marked |= mode != OFF && marker;
                    let cut_here = match mode {
                        AT_COMMIT => marked && chunk.windows(7).any(|w| w == b"COMMIT\0"),
                        AFTER_STATEMENT => marker,
                        _ => false,
                    };
                    if server_write.write_all(chunk).await.is_err() {
                        break;
                    }
                    if cut_here && armed.swap(OFF, Ordering::SeqCst) == mode {
                        // The server gets the commit; its answer never reaches the service.
                        back.abort();
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        return;
                    }
                }
                back.abort();
            });
        }
    });
    port
}

#[tokio::test]
#[cfg_attr(postgres_missing, ignore = "PostgreSQL is not installed (apt-get install postgresql)")]
async fn a_commit_whose_answer_is_lost_is_resolved_or_said_unknown_and_a_keyed_retry_is_exactly_once() {
    if !Engine::Postgres.available() {
        return;
    }
    let cluster = Cluster::start().expect("a cluster starts");
    let url = cluster.create_database().expect("a database");
    let armed = Arc::new(AtomicU8::new(OFF));
    let port = proxy(cluster.port(), armed.clone()).await;
    let through = url.replace(&format!(":{}/", cluster.port()), &format!(":{port}/"));
    let app = TestApp::spawn_on(Storage::Postgres { url: through }, "cut-key-0123456789abcdef".into(), &[]).await;
    let id = app.create_named("Cut", json!({})).await;
    let patch = |key: Option<&'static str>, description: String| {
        let mut request = app
            .http
            .patch(format!("{}/api/external/chatbot/{id}", app.rest))
            .header("x-api-key", &app.key)
            .json(&json!({"description": description}));
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        request
    };
    let marker = String::from_utf8(MARKER.to_vec()).expect("ASCII");

    // Keyed: the service finds its claim committed, and answers 200 once; a retry replays it.
    armed.store(AT_COMMIT, Ordering::SeqCst);
    let keyed = patch(Some("cut-1"), format!("{marker} one")).send().await.expect("answered");
    assert_eq!(armed.load(Ordering::SeqCst), OFF, "the cut happened");
    assert_eq!(keyed.status(), StatusCode::OK, "{:?}", keyed.text().await);
    let retried = patch(Some("cut-1"), format!("{marker} one")).send().await.expect("answered");
    assert_eq!(retried.status(), StatusCode::OK);
    assert_eq!(retried.headers().get("idempotent-replayed").and_then(|v| v.to_str().ok()), Some("true"));

    // Unkeyed and written alone (a new slug is checked in its own transaction): nothing to find it by,
    // so the answer says the outcome is unknown.
    armed.store(AT_COMMIT, Ordering::SeqCst);
    let unkeyed = app
        .call(
            Method::PATCH,
            &format!("/api/external/chatbot/{id}"),
            Some(&app.key),
            Some(&json!({"description": format!("{marker} two"), "slug": "cut-two"})),
        )
        .await;
    assert_eq!(armed.load(Ordering::SeqCst), OFF, "the cut happened");
    assert_eq!((unkeyed.status, unkeyed.code()), (StatusCode::SERVICE_UNAVAILABLE, "outcome_unknown"));

    // The server got the COMMIT, so the write lands, though maybe a moment after the service gave up
    // on its answer: wait (bounded) until it is visible.
    let mut landed = false;
    for _ in 0..100 {
        if app.get(&id).await.body["chatbot"]["description"] == format!("{marker} two") {
            landed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(landed, "the unkeyed write, whose COMMIT reached the server, committed");

    // Unkeyed and group-committed (it keeps its slug): its new version id is its own, so the batch
    // finds it stored on another connection and answers once, truly.
    armed.store(AFTER_STATEMENT, Ordering::SeqCst);
    let batched = app
        .call(
            Method::PATCH,
            &format!("/api/external/chatbot/{id}"),
            Some(&app.key),
            Some(&json!({"description": format!("{marker} three")})),
        )
        .await;
    assert_eq!(armed.load(Ordering::SeqCst), OFF, "the cut happened");
    assert_eq!(batched.status, StatusCode::OK, "{}", batched.body);
    assert_eq!(batched.body["chatbot"]["description"], format!("{marker} three"));
    assert_eq!(app.get(&id).await.body["chatbot"]["description"], format!("{marker} three"), "it is stored");

    // Each committed write is one revision, whatever its answer said.
    let revisions = app.call(Method::GET, &format!("/api/external/chatbot/{id}/revisions"), Some(&app.key), None).await;
    let descriptions: Vec<u64> = revisions.body["revisions"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|r| r["revision"].as_u64().expect("n"))
        .collect();
    assert_eq!(
        descriptions,
        [4, 3, 2, 1],
        "the keyed write, the unkeyed one (committed) and the batched one once each"
    );
}
