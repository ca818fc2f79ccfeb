//! Fair use and traceability: a key over its rate limit gets 429 (gRPC `RESOURCE_EXHAUSTED`) while
//! other keys go on; every answer says what is left of the bucket and carries a request id, which
//! error bodies repeat.

use futures::future::join_all;
use grpc_server::pb;
use reqwest::{Method, StatusCode};
use tonic_types::StatusExt;

use crate::helpers::{Engine, Storage, TestApp, create_key, on_every_engine};

on_every_engine!(
    a_burst_over_the_rate_limit_gets_429_and_another_key_is_unaffected,
    every_answer_carries_its_allowance_and_a_request_id,
    api_keys_with_surrounding_spaces_are_accepted_on_both_faces,
);

async fn a_burst_over_the_rate_limit_gets_429_and_another_key_is_unaffected(engine: Engine) {
    let storage = Storage::new(engine);
    let other = create_key(&storage, "globex").await;
    let app = TestApp::spawn_on(storage, "limited-key-0123456789abcdef".into(), &["--rate-limit", "5"]).await;
    let answers = join_all((0..12).map(|_| app.list(""))).await;
    let refused: Vec<_> = answers.iter().filter(|a| a.status == StatusCode::TOO_MANY_REQUESTS).collect();
    assert!(
        !refused.is_empty() && refused.len() <= 7,
        "5 a second, burst 5: {:?}",
        answers.iter().map(|a| a.status).collect::<Vec<_>>()
    );
    for answer in &refused {
        assert_eq!(answer.code(), "rate_limited");
        let retry_after: u64 = answer.header("retry-after").and_then(|v| v.parse().ok()).expect("a Retry-After");
        assert!((1..=2).contains(&retry_after), "{retry_after}");
        assert_eq!(answer.header("ratelimit-remaining").as_deref(), Some("0"));
    }
    let theirs = app.call(Method::GET, "/api/external/chatbots", Some(&other), None).await;
    assert_eq!(theirs.status, StatusCode::OK, "another key has its own bucket");

    let mut client = app.grpc_client().await;
    let mut statuses = Vec::new();
    for _ in 0..8 {
        if let Err(status) = client.list_chatbots(app.grpc_request(pb::ListChatbotsRequest::default())).await {
            statuses.push(status);
        }
    }
    let status = statuses.first().expect("gRPC calls over the limit are refused too");
    assert_eq!(status.code(), tonic::Code::ResourceExhausted);
    let details = status.get_error_details();
    assert_eq!(details.error_info().map(|i| i.reason.as_str()), Some("rate_limited"));
    assert!(details.retry_info().and_then(|r| r.retry_delay).is_some(), "RetryInfo says when to retry");

    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(app.list("").await.status, StatusCode::OK, "the bucket refills");
}

async fn every_answer_carries_its_allowance_and_a_request_id(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let listed = app.list("").await;
    assert_eq!(listed.header("ratelimit-limit").as_deref(), Some("1000"));
    assert!(listed.header("ratelimit-remaining").and_then(|v| v.parse::<u32>().ok()).is_some_and(|r| r < 1000));
    assert!(listed.header("ratelimit-reset").is_some());
    let made_up = listed.header("x-request-id").expect("a request id");
    assert!(!made_up.is_empty());

    let sent = app
        .http
        .get(format!("{}/api/external/chatbot/00000000-0000-4000-8000-000000000000", app.rest))
        .header("x-api-key", &app.key)
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .expect("answered");
    let missing = crate::helpers::answer(sent).await;
    assert_eq!(missing.header("x-request-id").as_deref(), Some("trace-me-42"), "a sane id is kept");
    assert_eq!(missing.body["error"]["request_id"], "trace-me-42", "and repeated in the error body");

    let insane = "x".repeat(200);
    let sent =
        app.http.get(format!("{}/healthz", app.rest)).header("x-request-id", &insane).send().await.expect("answered");
    let replaced = sent.headers().get("x-request-id").and_then(|v| v.to_str().ok()).expect("an id").to_owned();
    assert_ne!(replaced, insane, "an id over 128 characters is replaced");

    let mut client = app.grpc_client().await;
    let mut request = app.grpc_request(pb::GetChatbotRequest { id: "00000000-0000-4000-8000-000000000000".into() });
    request.metadata_mut().insert("x-request-id", "grpc-trace-7".parse().expect("ASCII"));
    let status = client.get_chatbot(request).await.expect_err("not found");
    assert_eq!(status.metadata().get("x-request-id").and_then(|v| v.to_str().ok()), Some("grpc-trace-7"));
    let info = status.get_error_details().error_info().cloned().expect("an ErrorInfo");
    assert_eq!(info.metadata.get("request_id").map(String::as_str), Some("grpc-trace-7"));
}

async fn api_keys_with_surrounding_spaces_are_accepted_on_both_faces(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let spaced = format!("  {}  ", app.key);
    let rest = app
        .http
        .get(format!("{}/api/external/chatbots", app.rest))
        .header("x-api-key", &spaced)
        .send()
        .await
        .expect("answered");
    assert_eq!(rest.status(), StatusCode::OK);
    let mut client = app.grpc_client().await;
    let listed = client.list_chatbots(crate::helpers::with_key(pb::ListChatbotsRequest::default(), &spaced)).await;
    assert!(listed.is_ok(), "{listed:?}");
}
