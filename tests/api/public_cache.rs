//! The public widget from memory: fresh after every change made through the replica that serves it,
//! fresh within a second of a change made through another, one store read for many callers of a
//! slug, and still served while the database is down.

use std::time::{Duration, Instant};

use chatbotd_tests::postgres::Cluster;
use futures::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{Answer, Engine, Storage, TestApp, on_every_engine, postgres_only};

on_every_engine!(
    a_change_through_this_replica_is_public_at_once,
    many_callers_of_one_slug_make_one_store_read,
    with_the_cache_off_every_read_goes_to_the_store,
);

impl TestApp {
    async fn widget(&self, slug: &str) -> Answer {
        self.call(Method::GET, &format!("/api/public/chatbots/{slug}"), None, None).await
    }

    /// The value of the counter `chatbotd_public_cache_total{result="..."}` in `/metrics`.
    async fn cache_counter(&self, result: &str) -> u64 {
        let metrics = self.http.get(format!("{}/metrics", self.rest)).send().await.expect("answered");
        let text = metrics.text().await.expect("text");
        let prefix = format!("chatbotd_public_cache_total{{result=\"{result}\"}} ");
        text.lines().find_map(|line| line.strip_prefix(&prefix)).map_or(0, |n| n.trim().parse().expect("a count"))
    }
}

async fn a_change_through_this_replica_is_public_at_once(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let id = app.create_named("Cached", json!({"slug": "cached-bot", "is_public": true})).await;
    let first = app.widget("cached-bot").await;
    assert_eq!((first.status, &first.body["chatbot"]["name"]), (StatusCode::OK, &json!("Cached")));
    let hits = app.cache_counter("hit").await;
    let again = app.widget("cached-bot").await;
    assert_eq!(
        (again.body.clone(), again.header("etag")),
        (first.body.clone(), first.header("etag")),
        "the same bytes"
    );
    assert_eq!(app.cache_counter("hit").await, hits + 1, "the second read came from memory");

    // Every kind of change shows at once.
    assert_eq!(app.patch(&id, &json!({"name": "Renamed"})).await.status, StatusCode::OK);
    assert_eq!(app.widget("cached-bot").await.body["chatbot"]["name"], "Renamed");
    assert_eq!(app.patch(&id, &json!({"active": false})).await.status, StatusCode::OK);
    assert_eq!(app.widget("cached-bot").await.status, StatusCode::NOT_FOUND);
    assert_eq!(app.patch(&id, &json!({"active": true, "slug": "moved-bot"})).await.status, StatusCode::OK);
    assert_eq!(app.widget("cached-bot").await.status, StatusCode::NOT_FOUND, "the old slug is gone");
    assert_eq!(app.widget("moved-bot").await.body["chatbot"]["name"], "Renamed");
    let path = format!("/api/external/chatbot/{id}/revisions/2/publish");
    assert_eq!(app.call(Method::POST, &path, Some(&app.key), None).await.status, StatusCode::OK);
    assert_eq!(
        app.widget("moved-bot").await.body["chatbot"]["name"],
        "Renamed",
        "revision 2, served by the head's slug"
    );
    let path = format!("/api/external/chatbot/{id}/unpublish");
    assert_eq!(app.call(Method::POST, &path, Some(&app.key), None).await.status, StatusCode::OK);
    assert_eq!(app.delete(&id).await.status, StatusCode::OK);
    assert_eq!(app.widget("moved-bot").await.status, StatusCode::NOT_FOUND);

    // An unknown slug, remembered as unknown, is public the moment a chatbot takes it here.
    assert_eq!(app.widget("not-yet").await.status, StatusCode::NOT_FOUND);
    assert_eq!(app.widget("not-yet").await.status, StatusCode::NOT_FOUND);
    app.create_named("Now", json!({"slug": "not-yet", "is_public": true})).await;
    assert_eq!(app.widget("not-yet").await.body["chatbot"]["name"], "Now");
}

async fn many_callers_of_one_slug_make_one_store_read(engine: Engine) {
    let app = TestApp::spawn_on(Storage::new(engine), crate::helpers::fresh_key(), &["--public-rate-limit", "0"]).await;
    app.create_named("Popular", json!({"slug": "popular-bot", "is_public": true})).await;
    let misses = app.cache_counter("miss").await;
    let answers = join_all((0..64).map(|_| app.widget("popular-bot"))).await;
    assert!(answers.iter().all(|a| a.status == StatusCode::OK && a.body == answers[0].body));
    assert_eq!(app.cache_counter("miss").await, misses + 1, "one read for 64 callers");
}

async fn with_the_cache_off_every_read_goes_to_the_store(engine: Engine) {
    let app = TestApp::spawn_on(Storage::new(engine), crate::helpers::fresh_key(), &["--public-cache-size", "0"]).await;
    let id = app.create_named("Uncached", json!({"slug": "uncached-bot", "is_public": true})).await;
    assert_eq!(app.widget("uncached-bot").await.status, StatusCode::OK);
    assert_eq!(app.patch(&id, &json!({"name": "Still fresh"})).await.status, StatusCode::OK);
    assert_eq!(app.widget("uncached-bot").await.body["chatbot"]["name"], "Still fresh");
    assert_eq!(app.cache_counter("hit").await, 0);
}

#[tokio::test]
#[cfg_attr(postgres_missing, ignore = "PostgreSQL is not installed (apt-get install postgresql)")]
async fn a_change_through_another_replica_is_public_here_within_a_second() {
    let Some(storage) = postgres_only() else { return };
    let key = "public-cache-key-0123456789abcdef".to_owned();
    let a = TestApp::spawn_on(storage.clone(), key.clone(), &[]).await;
    let b = TestApp::spawn_on(storage, key, &[]).await;
    let id = a.create_named("Shared widget", json!({"slug": "shared-widget", "is_public": true})).await;
    assert_eq!(b.widget("shared-widget").await.body["chatbot"]["name"], "Shared widget");
    assert_eq!(b.widget("shared-widget").await.status, StatusCode::OK, "now in B's memory");

    for (change, expect) in [
        (json!({"name": "Changed on A"}), Some("Changed on A")),
        (json!({"is_public": false}), None),
        (json!({"is_public": true, "name": "Back"}), Some("Back")),
    ] {
        assert_eq!(a.patch(&id, &change).await.status, StatusCode::OK);
        let changed = Instant::now();
        loop {
            let seen = b.widget("shared-widget").await;
            let name = seen.body["chatbot"]["name"].as_str().map(str::to_owned);
            if name.as_deref() == expect {
                break;
            }
            assert!(changed.elapsed() < Duration::from_secs(1), "B still serves {name:?} after a second");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    assert_eq!(a.delete(&id).await.status, StatusCode::OK);
    let deleted = Instant::now();
    while b.widget("shared-widget").await.status != StatusCode::NOT_FOUND {
        assert!(deleted.elapsed() < Duration::from_secs(1), "B still serves a deleted chatbot after a second");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
#[cfg_attr(postgres_missing, ignore = "PostgreSQL is not installed (apt-get install postgresql)")]
async fn the_widgets_in_memory_are_served_while_the_database_is_down() {
    if !Engine::Postgres.available() {
        return;
    }
    // A cluster of its own: stopping the shared one would fail every other test.
    let cluster = Cluster::start().expect("a private cluster starts");
    let storage = Storage::Postgres { url: cluster.create_database().expect("a database") };
    let app =
        TestApp::spawn_on(storage, "cache-outage-key-0123456789abcdef".into(), &["--database-timeout", "1s"]).await;
    app.create_named("Resilient", json!({"slug": "resilient-bot", "is_public": true})).await;
    let before = app.widget("resilient-bot").await;
    assert_eq!(before.status, StatusCode::OK);

    cluster.stop_server().expect("the database stops");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let during = app.widget("resilient-bot").await;
    assert_eq!((during.status, &during.body), (StatusCode::OK, &before.body), "served from memory");
    assert_eq!(during.header("etag"), before.header("etag"));
    let unknown = app.widget("never-seen-bot").await;
    assert_eq!((unknown.status, unknown.code()), (StatusCode::SERVICE_UNAVAILABLE, "unavailable"));
    let health = app.http.get(format!("{}/healthz", app.rest)).send().await.expect("answered");
    assert_eq!(health.status(), StatusCode::SERVICE_UNAVAILABLE, "still not ready: writes cannot be taken");
    cluster.start_server().expect("the database starts again");
}
