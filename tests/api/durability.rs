//! An acknowledged write survives `kill -9` right after it, and SIGTERM stops the server cleanly.

use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{Engine, TestApp, on_every_engine};

on_every_engine!(
    acknowledged_creates_survive_kill_9,
    acknowledged_updates_and_deletes_survive_kill_9,
    sigterm_stops_the_server_cleanly_and_keeps_the_data,
);

async fn acknowledged_creates_survive_kill_9(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let app_ref = &app;
    let creates = (0..40).map(|i| async move {
        app_ref.post(&json!({"name": format!("Durable {i}"), "slug": format!("durable-{i}")})).await
    });
    let answers = join_all(creates).await;
    let ids: Vec<String> = answers
        .iter()
        .map(|a| {
            assert_eq!(a.status, StatusCode::CREATED);
            a.body["chatbot"]["id"].as_str().expect("an id").to_owned()
        })
        .collect();
    let key = app.key.clone();
    let storage = app.kill9().await;

    let app = TestApp::spawn_on(storage, key, &[]).await;
    for (i, id) in ids.iter().enumerate() {
        let read = app.get(id).await;
        assert_eq!(read.status, StatusCode::OK, "chatbot {i} was lost");
        assert_eq!(read.body["chatbot"]["slug"], format!("durable-{i}"));
    }
    let taken = app.post(&json!({"name": "x", "slug": "durable-0"})).await;
    assert_eq!(taken.status, StatusCode::CONFLICT, "the slug index survived too");
}

async fn acknowledged_updates_and_deletes_survive_kill_9(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let kept = app.create_named("Kept", json!({"slug": "kept-bot"})).await;
    let gone = app.create_named("Gone", json!({"slug": "gone-bot"})).await;
    assert_eq!(
        app.patch(&kept, &json!({"slug": "renamed-bot", "description": "changed"})).await.status,
        StatusCode::OK
    );
    assert_eq!(app.delete(&gone).await.status, StatusCode::OK);
    let key = app.key.clone();
    let storage = app.kill9().await;

    let app = TestApp::spawn_on(storage, key, &[]).await;
    let read = app.get(&kept).await;
    assert_eq!(read.body["chatbot"]["slug"], "renamed-bot");
    assert_eq!(read.body["chatbot"]["description"], "changed");
    assert_eq!(app.get(&gone).await.status, StatusCode::NOT_FOUND);
    for slug in ["kept-bot", "gone-bot"] {
        let reuse = app.post(&json!({"name": "Reuse", "slug": slug})).await;
        assert_eq!(reuse.status, StatusCode::CREATED, "{slug} was freed");
    }
}

async fn sigterm_stops_the_server_cleanly_and_keeps_the_data(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let id = app.create_named("Graceful", json!({})).await;
    let (key, storage) = (app.key.clone(), app.storage.clone());
    let status = app.terminate().await;
    assert!(status.success(), "exit status {status:?}");

    let app = TestApp::spawn_on(storage, key, &[]).await;
    assert_eq!(app.get(&id).await.status, StatusCode::OK);
}
