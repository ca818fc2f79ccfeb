//! Concurrent writers: one slug has one owner, one etag has one winner.

use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{Engine, TestApp, on_every_engine};

on_every_engine!(
    of_many_concurrent_creates_of_one_slug_exactly_one_wins,
    concurrent_derived_slugs_are_all_distinct,
    of_concurrent_updates_with_the_same_if_match_exactly_one_wins,
);

async fn of_many_concurrent_creates_of_one_slug_exactly_one_wins(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let app = &app;
    let attempts =
        (0..32).map(|i| async move { app.post(&json!({"name": format!("Racer {i}"), "slug": "the-one-slug"})).await });
    let answers = join_all(attempts).await;
    let won = answers.iter().filter(|a| a.status == StatusCode::CREATED).count();
    let lost = answers.iter().filter(|a| a.status == StatusCode::CONFLICT && a.code() == "slug_taken").count();
    assert_eq!((won, lost), (1, 31));
    let listed = app.list("").await;
    assert_eq!(listed.body["chatbots"].as_array().map(Vec::len), Some(1), "losers left nothing behind");
}

async fn concurrent_derived_slugs_are_all_distinct(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let answers = join_all((0..16).map(|_| async { app.post(&json!({"name": "Same Name"})).await })).await;
    let mut slugs: Vec<String> = answers
        .iter()
        .map(|a| {
            assert_eq!(a.status, StatusCode::CREATED);
            a.body["chatbot"]["slug"].as_str().expect("a slug").to_owned()
        })
        .collect();
    slugs.sort();
    slugs.dedup();
    assert_eq!(slugs.len(), 16);
}

async fn of_concurrent_updates_with_the_same_if_match_exactly_one_wins(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let created = app.post(&json!({"name": "Contested"})).await;
    let id = created.body["chatbot"]["id"].as_str().expect("an id").to_owned();
    let etag = created.header("etag").expect("an etag");
    let (app, id, etag) = (&app, id.as_str(), etag.as_str());
    let updates = (0..16).map(|i| async move {
        app.patch_if_match(id, etag, &json!({"description": format!("writer {i}")})).await.status
    });
    let statuses = join_all(updates).await;
    let won = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    let refused = statuses.iter().filter(|s| **s == StatusCode::PRECONDITION_FAILED).count();
    assert_eq!((won, refused), (1, 15));
}
