//! When PostgreSQL goes away, requests fail fast with 503 `unavailable` (never hang, never another
//! 5xx) and `/healthz` says not ready; when it comes back, the same process recovers and every write it
//! acknowledged is there.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chatbotd_tests::postgres::Cluster;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{Engine, Storage, TestApp};

#[tokio::test]
#[cfg_attr(postgres_missing, ignore = "PostgreSQL is not installed (apt-get install postgresql)")]
async fn a_database_outage_is_a_fast_503_and_the_service_recovers_without_losing_a_write() {
    if !Engine::Postgres.available() {
        return;
    }
    // A cluster of its own: stopping the shared one would fail every other test.
    let cluster = Cluster::start().expect("a private cluster starts");
    let storage = Storage::Postgres { url: cluster.create_database().expect("a database") };
    let app =
        TestApp::spawn_on(storage, "outage-test-key-0123456789abcdef".into(), &["--database-timeout", "1s"]).await;
    let (rest, key) = (app.rest.clone(), app.key.clone());

    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (rest, key, stop) = (rest.clone(), key.clone(), stop.clone());
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            let (mut acknowledged, mut unavailable, mut slowest) = (Vec::new(), 0, Duration::ZERO);
            // Writes acknowledged before the first 503, and after it (so after the database came back).
            let (mut before, mut after) = (0, 0);
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let started = Instant::now();
                let response = http
                    .post(format!("{rest}/api/external/chatbots"))
                    .header("x-api-key", &key)
                    .json(&json!({"name": format!("Outage {n}")}))
                    .send()
                    .await
                    .expect("the service answers even while its database is down");
                slowest = slowest.max(started.elapsed());
                let status = response.status();
                let connection = response.headers().get("connection").and_then(|v| v.to_str().ok()).map(str::to_owned);
                let body: serde_json::Value = response.json().await.expect("a JSON answer");
                match status {
                    StatusCode::CREATED => {
                        acknowledged.push(body["chatbot"]["id"].as_str().expect("an id").to_owned());
                        if unavailable == 0 { before += 1 } else { after += 1 }
                    }
                    StatusCode::SERVICE_UNAVAILABLE => {
                        // A create whose connection broke under it may have committed: it says so.
                        let code = body["error"]["code"].as_str();
                        assert!(matches!(code, Some("unavailable" | "outcome_unknown")), "{body}");
                        // Its body may be unread: the connection closes, and the answer says so.
                        assert_eq!(connection.as_deref(), Some("close"), "a 503 to a POST says it closes");
                        unavailable += 1;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    other => panic!("answered {other} during the outage: {body}"),
                }
            }
            (acknowledged, unavailable, slowest, before, after)
        })
    };

    tokio::time::sleep(Duration::from_millis(500)).await;
    cluster.stop_server().expect("the database stops");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let health = app.http.get(format!("{rest}/healthz")).send().await.expect("healthz answers");
    assert_eq!(health.status(), StatusCode::SERVICE_UNAVAILABLE, "not ready without its database");

    cluster.start_server().expect("the database starts again");
    let recovered = Instant::now();
    while app.http.get(format!("{rest}/healthz")).send().await.map(|r| r.status()).ok() != Some(StatusCode::OK) {
        assert!(recovered.elapsed() < Duration::from_secs(30), "the service recovers without a restart");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let (acknowledged, unavailable, slowest, before, after) = load.await.expect("the load ran");

    assert!(unavailable > 0, "some requests met the outage");
    assert!(slowest < Duration::from_secs(5), "no request hung ({slowest:?})");
    assert!(before > 0 && after > 0, "writes went through before the outage ({before}) and after it ({after})");
    for id in &acknowledged {
        assert_eq!(app.get(id).await.status, StatusCode::OK, "{id} was acknowledged, then lost");
    }
}

#[tokio::test]
#[cfg_attr(postgres_missing, ignore = "PostgreSQL is not installed (apt-get install postgresql)")]
async fn a_replica_started_before_its_database_waits_for_it() {
    if !Engine::Postgres.available() {
        return;
    }
    let cluster = Cluster::start().expect("a private cluster starts");
    let storage = Storage::Postgres { url: cluster.create_database().expect("a database") };
    cluster.stop_server().expect("the database stops");
    let starting = tokio::spawn(async move {
        TestApp::spawn_on(storage, "early-replica-key-0123456789abcdef".into(), &["--database-timeout", "1s"]).await
    });
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!starting.is_finished(), "it waits for its database instead of serving without it");
    cluster.start_server().expect("the database starts");
    let app = tokio::time::timeout(Duration::from_secs(30), starting).await.expect("ready in time").expect("started");
    assert_eq!(app.post(&json!({"name": "Patient"})).await.status, StatusCode::CREATED);
    assert!(app.log().contains("the database cannot be reached yet"), "it said why it waited");
}

#[tokio::test]
#[cfg_attr(postgres_missing, ignore = "PostgreSQL is not installed (apt-get install postgresql)")]
async fn a_write_behind_a_row_lock_held_elsewhere_is_a_503_at_the_database_timeout_and_goes_through_after() {
    let Some(storage) = crate::helpers::postgres_only() else { return };
    let cluster = chatbotd_tests::postgres::shared().expect("the cluster");
    let database = storage.database().expect("a database").to_owned();
    let app = TestApp::spawn_on(storage, "locked-key-0123456789abcdef".into(), &["--database-timeout", "1s"]).await;
    let id = app.create_named("Locked", json!({})).await;

    // Another client of the database holds the chatbot's row for 4 s.
    let holder = {
        let mut psql = cluster.command("psql");
        psql.args(["-h", "127.0.0.1", "-p", &cluster.port().to_string(), "-U", "chatbotd", "-d", &database, "-c"]);
        psql.arg(format!("BEGIN; SELECT 1 FROM chatbots WHERE id = '{id}' FOR UPDATE; SELECT pg_sleep(4); COMMIT;"));
        tokio::task::spawn_blocking(move || psql.output().expect("psql runs"))
    };
    tokio::time::sleep(Duration::from_millis(500)).await; // the lock is taken
    let started = Instant::now();
    let blocked = app.patch(&id, &json!({"description": "behind the lock"})).await;
    let waited = started.elapsed();
    assert_eq!(
        (blocked.status, blocked.code()),
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        "{:?}",
        blocked.body
    );
    assert!(waited < Duration::from_millis(2_500), "bounded by --database-timeout, not the lock: {waited:?}");
    assert!(holder.await.expect("joined").status.success(), "the holder committed");

    // Nothing of the refused write was kept, and the same write goes through once the lock is gone.
    assert_eq!(app.get(&id).await.body["chatbot"]["description"], "");
    let after = app.patch(&id, &json!({"description": "behind the lock"})).await;
    assert_eq!(after.status, StatusCode::OK, "{:?}", after.body);
}
