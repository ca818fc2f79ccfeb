//! On PostgreSQL, a transaction refused with a serialization failure runs again: run at SERIALIZABLE,
//! with the server made to refuse the first attempt of every transaction, every outcome still happens
//! exactly once.

use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{TestApp, postgres_only};

#[tokio::test]
#[cfg_attr(postgres_missing, ignore = "PostgreSQL is not installed (apt-get install postgresql)")]
async fn injected_serialization_failures_are_retried_and_every_outcome_happens_exactly_once() {
    let Some(storage) = postgres_only() else { return };
    let flags = ["--database-isolation", "serializable", "--database-fault-injection"];
    let app = TestApp::spawn_on(storage, "retry-test-key-0123456789abcdef".into(), &flags).await;
    let app = &app;

    // 16 updates of one chatbot without a precondition: each applied once, none lost.
    let id = app.create_named("Retried", json!({})).await;
    let id = id.as_str();
    let updates = (0..16).map(|i| async move { app.patch(id, &json!({"description": format!("writer {i}")})).await });
    let answers = join_all(updates).await;
    assert!(
        answers.iter().all(|a| a.status == StatusCode::OK),
        "{:?}",
        answers.iter().map(|a| a.status).collect::<Vec<_>>()
    );
    let mut etags: Vec<String> = answers.iter().map(|a| a.header("etag").expect("an etag")).collect();
    etags.sort();
    etags.dedup();
    assert_eq!(etags.len(), 16, "each update made its own revision");
    let last = app.get(id).await.header("etag").expect("an etag");
    assert!(last.starts_with("\"17-"), "1 create + 16 updates = revision 17, got {last}");

    // 8 updates with the same If-Match: exactly one wins.
    let last = last.as_str();
    let contested = (0..8).map(|i| async move {
        app.patch_if_match(id, last, &json!({"description": format!("contender {i}")})).await.status
    });
    let statuses = join_all(contested).await;
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::OK).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::PRECONDITION_FAILED).count(), 7, "{statuses:?}");

    // A delete happens once: the retry finds nothing left to delete only if the first attempt stuck.
    assert_eq!(app.delete(id).await.status, StatusCode::OK);
    assert_eq!(app.get(id).await.status, StatusCode::NOT_FOUND);

    // Every transaction that went through (16 updates, 1 winning contender, 1 delete) had its first
    // attempt refused, by the injected failure or, earlier, by a real conflict at SERIALIZABLE.
    let log = app.log();
    let retries: Vec<&str> = log.lines().filter(|l| l.contains("retrying a transaction")).collect();
    let succeeded = 16 + 1 + 1;
    assert!(retries.len() >= succeeded, "{} retries:\n{}", retries.len(), retries.join("\n"));
    assert!(retries.iter().any(|l| l.contains("40001: injected serialization failure")), "the server raised them");
}
