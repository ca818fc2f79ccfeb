//! API keys: every endpoint needs one, and an organisation sees only its own chatbots.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{Engine, Storage, TestApp, create_key, on_every_engine, spawn_without_key};

on_every_engine!(
    every_endpoint_answers_401_without_a_key_or_with_an_unknown_one,
    another_organisation_cannot_see_or_touch_a_chatbot_and_gets_404,
    keys_create_prints_a_new_key_last_and_stores_only_its_hash,
    a_first_start_without_a_key_prints_one_that_works,
);

async fn every_endpoint_answers_401_without_a_key_or_with_an_unknown_one(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let id = app.create_named("Guarded", json!({})).await;
    let body = json!({"name": "x"});
    let calls = [
        (Method::POST, "/api/external/chatbots".to_owned(), Some(&body)),
        (Method::GET, "/api/external/chatbots".to_owned(), None),
        (Method::PATCH, format!("/api/external/chatbots?id={id}"), Some(&body)),
        (Method::GET, format!("/api/external/chatbot/{id}"), None),
        (Method::PATCH, format!("/api/external/chatbot/{id}"), Some(&body)),
        (Method::DELETE, format!("/api/external/chatbot/{id}"), None),
    ];
    for (method, path, body) in calls {
        for key in [None, Some("0123456789abcdef0123456789abcdef0123456789abcdef")] {
            let answer = app.call(method.clone(), &path, key, body).await;
            assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{method} {path} with {key:?}");
            assert_eq!(answer.code(), "unauthenticated");
        }
    }
    assert_eq!(app.get(&id).await.body["chatbot"]["name"], "Guarded", "nothing changed");
}

async fn another_organisation_cannot_see_or_touch_a_chatbot_and_gets_404(engine: Engine) {
    let (app, other) = TestApp::spawn_with_second_org(engine).await;
    let id = app.create_named("Private", json!({"slug": "private-bot"})).await;
    let path = format!("/api/external/chatbot/{id}");

    for (method, body) in
        [(Method::GET, None), (Method::PATCH, Some(json!({"name": "Stolen"}))), (Method::DELETE, None)]
    {
        let answer = app.call(method.clone(), &path, Some(&other), body.as_ref()).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{method}");
        assert_eq!(answer.code(), "not_found");
        let unknown = app
            .call(
                method.clone(),
                "/api/external/chatbot/00000000-0000-4000-8000-000000000000",
                Some(&other),
                body.as_ref(),
            )
            .await;
        let without_request_id = |body: &serde_json::Value| {
            let mut body = body.clone();
            body["error"].as_object_mut().map(|e| e.remove("request_id"));
            body
        };
        assert_eq!(
            without_request_id(&unknown.body),
            without_request_id(&answer.body),
            "{method}: indistinguishable from an unknown id"
        );
    }
    let patched = app
        .call(Method::PATCH, &format!("/api/external/chatbots?id={id}"), Some(&other), Some(&json!({"name": "Stolen"})))
        .await;
    assert_eq!(patched.status, StatusCode::NOT_FOUND);

    let theirs = app.call(Method::GET, "/api/external/chatbots", Some(&other), None).await;
    assert_eq!(theirs.body["chatbots"], json!([]));
    let mine = app.get(&id).await;
    assert_eq!(mine.body["chatbot"]["name"], "Private", "untouched");

    let created =
        app.call(Method::POST, "/api/external/chatbots", Some(&other), Some(&json!({"name": "Theirs"}))).await;
    assert_eq!(created.status, StatusCode::CREATED);
    assert_ne!(created.body["chatbot"]["organization_id"], mine.body["chatbot"]["organization_id"]);
}

async fn keys_create_prints_a_new_key_last_and_stores_only_its_hash(engine: Engine) {
    let storage = Storage::new(engine);
    let key = create_key(&storage, "acme").await;
    assert_eq!(key.len(), 48);
    assert!(key.bytes().all(|b| b.is_ascii_hexdigit()));
    let second = create_key(&storage, "acme").await;
    assert_ne!(key, second);

    // Nothing the store holds has the key in clear: no file of a sled store, nothing in a dump of the
    // PostgreSQL database.
    let holds_key = |bytes: &[u8]| bytes.windows(key.len()).any(|w| w == key.as_bytes());
    match &storage {
        Storage::Sled(dir) => {
            let mut stack = vec![dir.path().to_path_buf()];
            while let Some(path) = stack.pop() {
                if path.is_dir() {
                    stack.extend(std::fs::read_dir(&path).expect("readable").map(|e| e.expect("an entry").path()));
                } else {
                    assert!(!holds_key(&std::fs::read(&path).expect("readable")), "{} holds the key", path.display());
                }
            }
        }
        Storage::Postgres { .. } => {
            let cluster = chatbotd_tests::postgres::shared().expect("PostgreSQL is available");
            let dump = cluster.dump(storage.database().expect("a database")).expect("pg_dump runs");
            assert!(dump.contains("api_keys"), "the dump holds the keys table");
            assert!(!holds_key(dump.as_bytes()), "the database holds the key");
        }
    }
}

async fn a_first_start_without_a_key_prints_one_that_works(engine: Engine) {
    let storage = Storage::new(engine);
    let (_child, key, rest) = spawn_without_key(&storage).await;
    let key = key.expect("a first key is printed");
    let response = reqwest::Client::new()
        .get(format!("http://{rest}/api/external/chatbots"))
        .header("x-api-key", &key)
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), StatusCode::OK);
}
