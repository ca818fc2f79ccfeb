//! Safe retries: a write sent with an idempotency key (REST `Idempotency-Key`, gRPC `request_id`)
//! happens once, and a retry gets the first answer again, even across a `kill -9`.

use futures::future::join_all;
use grpc_server::pb;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Answer, Engine, TestApp, answer, on_every_engine};

on_every_engine!(
    thirty_two_concurrent_creates_with_one_key_make_exactly_one_chatbot,
    a_retry_after_kill_9_gets_the_first_answer_again,
    the_same_key_with_another_request_is_422_and_changes_nothing,
    a_refused_request_claims_nothing_so_the_fixed_retry_with_the_same_key_works,
    updates_and_deletes_replay_too,
    grpc_request_ids_make_creates_and_deletes_safe_to_retry,
    a_malformed_idempotency_key_is_a_400_naming_it,
);

fn replayed(answer: &Answer) -> bool {
    answer.header("idempotent-replayed").as_deref() == Some("true")
}

async fn thirty_two_concurrent_creates_with_one_key_make_exactly_one_chatbot(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let body = json!({"name": "Once only"});
    let answers = join_all((0..32).map(|_| app.post_with_key("create-once", &body))).await;
    // A duplicate sent while the first is in flight waits for it and replays its answer: every one
    // of the 32 is that 201.
    let created: Vec<&Answer> = answers.iter().filter(|a| a.status == StatusCode::CREATED).collect();
    assert_eq!(created.len(), 32, "{:?}", answers.iter().map(|a| (a.status, a.code())).collect::<Vec<_>>());
    let first = created.first().expect("at least one answer");
    for answer in &created {
        assert_eq!(answer.body, first.body, "every answer is the first one");
        assert_eq!(answer.header("etag"), first.header("etag"));
        assert_eq!(answer.header("location"), first.header("location"));
    }
    assert_eq!(created.iter().filter(|a| !replayed(a)).count(), 1, "one fresh answer, the rest replayed");
    assert_eq!(app.list("").await.body["chatbots"].as_array().map(Vec::len), Some(1), "one chatbot");
}

async fn a_retry_after_kill_9_gets_the_first_answer_again(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let body = json!({"name": "Survivor"});
    let first = app.post_with_key("survives-a-crash", &body).await;
    assert_eq!(first.status, StatusCode::CREATED);
    assert!(!replayed(&first));
    let key = app.key.clone();
    let storage = app.kill9().await;

    let app = TestApp::spawn_on(storage, key, &[]).await;
    let retry = app.post_with_key("survives-a-crash", &body).await;
    assert_eq!((retry.status, &retry.body), (StatusCode::CREATED, &first.body));
    assert_eq!(retry.header("etag"), first.header("etag"));
    assert_eq!(retry.header("location"), first.header("location"));
    assert!(replayed(&retry));
    assert_eq!(app.list("").await.body["chatbots"].as_array().map(Vec::len), Some(1));
}

async fn the_same_key_with_another_request_is_422_and_changes_nothing(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    assert_eq!(app.post_with_key("k1", &json!({"name": "First"})).await.status, StatusCode::CREATED);
    let other = app.post_with_key("k1", &json!({"name": "Second"})).await;
    assert_eq!((other.status, other.code()), (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused"));
    assert_eq!(app.list("").await.body["chatbots"].as_array().map(Vec::len), Some(1));

    // Keys are per organisation: another organisation may use the same one.
    let (app, other_key) = TestApp::spawn_with_second_org(engine).await;
    assert_eq!(app.post_with_key("shared", &json!({"name": "Mine"})).await.status, StatusCode::CREATED);
    let theirs = app
        .http
        .post(format!("{}/api/external/chatbots", app.rest))
        .header("x-api-key", &other_key)
        .header("idempotency-key", "shared")
        .json(&json!({"name": "Theirs"}));
    let theirs = answer(theirs.send().await.expect("answered")).await;
    assert_eq!(theirs.status, StatusCode::CREATED);
    assert!(!replayed(&theirs));
}

async fn a_refused_request_claims_nothing_so_the_fixed_retry_with_the_same_key_works(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let invalid = app.post_with_key("fix-me", &json!({"name": "Fixed", "settings": {"model": "gpt-2"}})).await;
    assert_eq!(invalid.status, StatusCode::BAD_REQUEST);
    let fixed = app.post_with_key("fix-me", &json!({"name": "Fixed"})).await;
    assert_eq!(fixed.status, StatusCode::CREATED);
    assert!(!replayed(&fixed));

    app.create_named("Owner", json!({"slug": "taken-slug"})).await;
    let conflict = app.post_with_key("retry-slug", &json!({"name": "Late", "slug": "taken-slug"})).await;
    assert_eq!(conflict.status, StatusCode::CONFLICT);
    let moved = app.post_with_key("retry-slug", &json!({"name": "Late", "slug": "free-slug"})).await;
    assert_eq!(moved.status, StatusCode::CREATED, "{}", moved.body);
}

async fn updates_and_deletes_replay_too(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let id = app.create_named("Patched", json!({})).await;
    let path = format!("{}/api/external/chatbot/{id}", app.rest);
    let send = |method: Method, body: Option<Value>| {
        let mut request = app.http.request(method, &path).header("x-api-key", &app.key).header("idempotency-key", "p1");
        if let Some(body) = body {
            request = request.json(&body);
        }
        async move { answer(request.send().await.expect("answered")).await }
    };
    let first = send(Method::PATCH, Some(json!({"description": "once"}))).await;
    let again = send(Method::PATCH, Some(json!({"description": "once"}))).await;
    assert_eq!((first.status, again.status), (StatusCode::OK, StatusCode::OK));
    assert_eq!((again.header("etag"), replayed(&again)), (first.header("etag"), true));
    let etag = first.header("etag").expect("an etag");
    assert!(etag.starts_with("\"2-"), "applied once: {etag}");

    // A key names one request: the same key on a delete is another request.
    let reused = send(Method::DELETE, None).await;
    assert_eq!(reused.status, StatusCode::UNPROCESSABLE_ENTITY);
    let delete = |key: &'static str| {
        let request = app.http.delete(&path).header("x-api-key", &app.key).header("idempotency-key", key);
        async move { answer(request.send().await.expect("answered")).await }
    };
    assert_eq!(delete("d1").await.status, StatusCode::OK);
    let retried = delete("d1").await;
    assert_eq!((retried.status, replayed(&retried)), (StatusCode::OK, true), "a retried delete is not a 404");
    assert_eq!(app.get(&id).await.status, StatusCode::NOT_FOUND);
}

async fn grpc_request_ids_make_creates_and_deletes_safe_to_retry(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let mut client = app.grpc_client().await;
    let request_id = "0b0a7a2e-3e1f-4a8e-9a59-7d1c5e0c1f00".to_owned();
    let create = || pb::CreateChatbotRequest {
        chatbot: Some(pb::Chatbot { name: Some("Over gRPC".into()), ..Default::default() }),
        validate_only: false,
        request_id: request_id.clone(),
    };
    let first = client.create_chatbot(app.grpc_request(create())).await.expect("created");
    let again = client.create_chatbot(app.grpc_request(create())).await.expect("replayed");
    assert_eq!(first.get_ref(), again.get_ref());
    assert!(first.metadata().get("idempotent-replayed").is_none());
    assert_eq!(again.metadata().get("idempotent-replayed").and_then(|v| v.to_str().ok()), Some("true"));

    // The REST face knows the same key: the same request there is a replay too.
    let rest = app.post_with_key(&request_id, &json!({"name": "Over gRPC"})).await;
    assert_eq!((rest.status, replayed(&rest)), (StatusCode::CREATED, true));
    assert_eq!(rest.body["chatbot"]["id"], first.get_ref().id.as_str());

    let delete =
        || pb::DeleteChatbotRequest { id: first.get_ref().id.clone(), etag: String::new(), request_id: "del-1".into() };
    client.delete_chatbot(app.grpc_request(delete())).await.expect("deleted");
    let retried = client.delete_chatbot(app.grpc_request(delete())).await.expect("a retried delete succeeds");
    assert_eq!(retried.metadata().get("idempotent-replayed").and_then(|v| v.to_str().ok()), Some("true"));

    let reused = pb::CreateChatbotRequest {
        chatbot: Some(pb::Chatbot { name: Some("Something else".into()), ..Default::default() }),
        validate_only: false,
        request_id,
    };
    let status = client.create_chatbot(app.grpc_request(reused)).await.expect_err("reused");
    assert_eq!(status.code(), tonic::Code::FailedPrecondition);
}

async fn a_malformed_idempotency_key_is_a_400_naming_it(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let answer = app.post_with_key(&"k".repeat(256), &json!({"name": "x"})).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.violations(), [("Idempotency-Key".into(), "too_long".into())]);
    assert_eq!(app.list("").await.body["chatbots"], json!([]));
}
