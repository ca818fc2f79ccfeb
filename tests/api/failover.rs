//! Database failover as a tested promise: a primary with a synchronous streaming standby, two replicas
//! on a multi-host URL that asks for the read-write server, writers retrying with idempotency keys;
//! the primary is killed and the standby promoted. Every acknowledged write is there exactly once, no
//! answer but 201 and 503 (`unavailable`, or `outcome_unknown` for a commit cut off) is given,
//! `/healthz` says not ready while no server takes writes, and both replicas serve again without a
//! restart.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chatbotd_tests::postgres::Cluster;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{Engine, Storage, TestApp};

/// How long after the promotion both replicas must take writes again.
const RECOVERY_BOUND: Duration = Duration::from_secs(10);

/// What one writer saw.
#[derive(Default)]
struct Written {
    /// Idempotency key -> the id its create was acknowledged with (the same on every retry).
    acknowledged: HashMap<String, String>,
    unavailable: usize,
    /// Of those, answers that a commit's outcome was unknown.
    unknown: usize,
    /// When a write was acknowledged, for the gap.
    acknowledged_at: Vec<Instant>,
}

#[tokio::test]
#[cfg_attr(postgres_missing, ignore = "PostgreSQL is not installed (apt-get install postgresql)")]
async fn a_killed_primary_and_a_promoted_standby_lose_no_acknowledged_write() {
    if !Engine::Postgres.available() {
        return;
    }
    let primary = Cluster::start_primary().expect("a primary starts");
    // The standby first: the primary's commits (a CREATE DATABASE too) wait for it.
    let standby = Cluster::start_standby_of(&primary).expect("a standby starts");
    let url = primary.create_database().expect("a database");
    let database = url.rsplit('/').next().expect("a database name").to_owned();
    let both = format!(
        "postgres://chatbotd@127.0.0.1:{},127.0.0.1:{}/{database}?target_session_attrs=read-write",
        primary.port(),
        standby.port()
    );
    let key = "failover-key-0123456789abcdef".to_owned();
    let storage = Storage::Postgres { url: both };
    let flags = ["--database-timeout", "1s"];
    let a = Arc::new(TestApp::spawn_on(storage.clone(), key.clone(), &flags).await);
    let b = Arc::new(TestApp::spawn_on(storage, key.clone(), &flags).await);

    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..16)
        .map(|writer| {
            let (app, key, stop) = (if writer % 2 == 0 { a.clone() } else { b.clone() }, key.clone(), stop.clone());
            tokio::spawn(async move {
                let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("a client");
                let mut seen = Written::default();
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let idempotency = format!("failover-{writer}-{n}");
                    // The same write, with the same key, until it is acknowledged (or the test ends).
                    loop {
                        let answer = http
                            .post(format!("{}/api/external/chatbots", app.rest))
                            .header("x-api-key", &key)
                            .header("idempotency-key", &idempotency)
                            .json(&json!({"name": format!("Failover {writer} {n}")}))
                            .send()
                            .await
                            .expect("the service answers, even without a database");
                        let status = answer.status();
                        let body: serde_json::Value = answer.json().await.expect("a JSON answer");
                        match status {
                            StatusCode::CREATED => {
                                let id = body["chatbot"]["id"].as_str().expect("an id").to_owned();
                                let first = seen.acknowledged.insert(idempotency.clone(), id.clone());
                                assert!(first.is_none_or(|first| first == id), "one key, one chatbot");
                                seen.acknowledged_at.push(Instant::now());
                                break;
                            }
                            StatusCode::SERVICE_UNAVAILABLE => {
                                // `outcome_unknown`: its commit was sent when the primary died, and no
                                // server could say whether it happened; the retry with its key will.
                                let code = body["error"]["code"].as_str().unwrap_or_default().to_owned();
                                assert!(["unavailable", "outcome_unknown"].contains(&code.as_str()), "{body}");
                                seen.unknown += usize::from(code == "outcome_unknown");
                                // Retried until acknowledged, even once told to stop: a write whose
                                // commit outcome was unknown must end up acknowledged exactly once.
                                seen.unavailable += 1;
                                tokio::time::sleep(Duration::from_millis(50)).await;
                            }
                            other => panic!("answered {other} during the failover: {body}"),
                        }
                    }
                }
                seen
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_secs(2)).await;
    let killed = Instant::now();
    primary.kill9().expect("the primary is killed");
    // While no server takes writes, neither replica is ready.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for app in [&a, &b] {
        let health = app.http.get(format!("{}/healthz", app.rest)).send().await.expect("answered");
        assert_eq!(health.status(), StatusCode::SERVICE_UNAVAILABLE, "not ready without a read-write server");
    }
    standby.promote().expect("the standby is promoted");
    let promoted = Instant::now();
    for app in [&a, &b] {
        loop {
            let health = app.http.get(format!("{}/healthz", app.rest)).send().await.expect("answered");
            if health.status() == StatusCode::OK {
                break;
            }
            assert!(
                promoted.elapsed() < RECOVERY_BOUND,
                "a replica is not ready {RECOVERY_BOUND:?} after the promotion"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    let mut acknowledged = HashMap::new();
    let (mut unavailable, mut unknown, mut after_promotion, mut gap_end) = (0, 0, 0, None::<Instant>);
    for writer in writers {
        let seen = writer.await.expect("a writer ends");
        unavailable += seen.unavailable;
        unknown += seen.unknown;
        after_promotion += seen.acknowledged_at.iter().filter(|at| **at > promoted).count();
        let first_after = seen.acknowledged_at.iter().filter(|at| **at > promoted).min().copied();
        gap_end = first_after.into_iter().chain(gap_end).min();
        acknowledged.extend(seen.acknowledged);
    }
    assert!(after_promotion > 0, "writes went through after the promotion");

    // Every acknowledged write is there, exactly once: no other chatbot exists.
    let mut listed: Vec<String> =
        a.list_all().await.iter().map(|c| c["id"].as_str().expect("an id").to_owned()).collect();
    listed.sort();
    let mut expected: Vec<String> = acknowledged.values().cloned().collect();
    expected.sort();
    assert_eq!(listed, expected, "every acknowledged create, once, and nothing else");
    let (gap, since_promotion) = (gap_end.map(|end| end - killed), gap_end.map(|end| end - promoted));
    eprintln!(
        "failover: {} acknowledged creates, {unavailable} answers of 503 ({unknown} of them outcome_unknown), {after_promotion} acknowledged after the \
         promotion; writes went on {gap:?} after the kill ({since_promotion:?} after the promotion); 0 lost, 0 twice",
        acknowledged.len()
    );
}
