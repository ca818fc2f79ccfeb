//! The public widget route: what a customer's website fetches by slug without a key. Only what a
//! widget draws, never a secret; private, inactive and unknown slugs indistinguishable; cacheable and
//! open to any origin, within a per-address limit.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Answer, Engine, Storage, TestApp, contract_example, on_every_engine};

on_every_engine!(
    the_public_widget_carries_only_what_a_widget_draws,
    private_inactive_and_unknown_slugs_are_the_same_404,
    the_public_widget_is_cacheable_and_open_to_any_origin,
    the_public_routes_are_limited_per_client_address,
);

impl TestApp {
    async fn public_widget(&self, slug: &str) -> Answer {
        self.call(Method::GET, &format!("/api/public/chatbots/{slug}"), None, None).await
    }
}

/// Every string anywhere in `value`.
fn strings(value: &Value) -> Vec<String> {
    match value {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items.iter().flat_map(strings).collect(),
        Value::Object(map) => map.iter().flat_map(|(k, v)| std::iter::once(k.clone()).chain(strings(v))).collect(),
        Value::Null | Value::Bool(_) | Value::Number(_) => Vec::new(),
    }
}

async fn the_public_widget_carries_only_what_a_widget_draws(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let mut body = contract_example();
    body["openai_api_key"] = json!("sk-proj-secretsecret1234");
    let created = app.post(&body).await;
    assert_eq!(created.status, StatusCode::CREATED);
    let bot = &created.body["chatbot"];
    let id = bot["id"].as_str().expect("an id");
    let voice =
        json!({"appearance": {"buttonColor": "#000"}, "agentId": "agent-secret-id", "text": {"startCall": "Go"}});
    let voiced =
        app.call(Method::PATCH, &format!("/api/external/chatbot/{id}/voice-agent"), Some(&app.key), Some(&voice)).await;
    assert_eq!(voiced.status, StatusCode::OK);

    let answer = app.public_widget("api-docs-demo-chatbot").await;
    assert_eq!(answer.status, StatusCode::OK, "no key needed: {:?}", answer.body);
    let public = &answer.body["chatbot"];
    let mut keys: Vec<&str> = public.as_object().expect("an object").keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["avatar", "chat_widget", "greeting", "name", "slug", "voice_widget"]);
    assert_eq!(public["avatar"], Value::Null, "no avatar uploaded yet");
    assert_eq!(public["name"], "API Docs Demo Chatbot");
    assert_eq!(public["slug"], "api-docs-demo-chatbot");
    assert_eq!(public["greeting"], bot["settings"]["greeting"]);
    let mut widget = bot["settings"]["snippet"].clone();
    widget["language"] = json!("auto");
    assert_eq!(public["chat_widget"], widget);
    assert_eq!(public["voice_widget"]["appearance"]["buttonColor"], "#000");
    assert_eq!(public["voice_widget"]["text"]["startCall"], "Go");

    let everything = strings(&answer.body).join("\n");
    for secret in [
        bot["settings"]["prompt"].as_str().expect("a prompt"),
        bot["settings"]["model"].as_str().expect("a model"),
        "sk-proj",
        "1234",
        id,
        bot["organization_id"].as_str().expect("an organisation"),
        "agent-secret-id",
        "prompt",
        "model",
        "organization_id",
        "openai_api_key",
    ] {
        assert!(!everything.contains(secret), "the public widget must not carry {secret:?}: {everything}");
    }
}

async fn private_inactive_and_unknown_slugs_are_the_same_404(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    app.create_named("Private bot", json!({"slug": "private-bot"})).await;
    let inactive = app.create_named("Sleeping bot", json!({"slug": "sleeping-bot", "is_public": true})).await;
    assert_eq!(app.patch(&inactive, &json!({"active": false})).await.status, StatusCode::OK);
    let shown = app.create_named("Shown bot", json!({"slug": "shown-bot", "is_public": true})).await;
    assert_eq!(app.public_widget("shown-bot").await.status, StatusCode::OK);

    let mut seen = Vec::new();
    for slug in ["private-bot", "sleeping-bot", "no-such-bot", "Not%20A%20Slug", "x"] {
        let answer = app.public_widget(slug).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{slug}");
        let mut body = answer.body.clone();
        body["error"]["request_id"] = Value::Null;
        seen.push(body);
    }
    assert!(seen.windows(2).all(|pair| pair[0] == pair[1]), "indistinguishable: {seen:?}");

    // Made private, it disappears at once; deleted, likewise.
    assert_eq!(app.patch(&shown, &json!({"is_public": false})).await.status, StatusCode::OK);
    assert_eq!(app.public_widget("shown-bot").await.status, StatusCode::NOT_FOUND);
}

async fn the_public_widget_is_cacheable_and_open_to_any_origin(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let id = app.create_named("Cached", json!({"slug": "cached-bot", "is_public": true})).await;
    let url = format!("{}/api/public/chatbots/cached-bot", app.rest);
    let first = app.http.get(&url).header("origin", "https://customer.example").send().await.expect("answered");
    assert_eq!(first.status(), StatusCode::OK);
    let header =
        |r: &reqwest::Response, name: &str| r.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    assert_eq!(header(&first, "access-control-allow-origin").as_deref(), Some("*"));
    let cache = header(&first, "cache-control").expect("Cache-Control");
    assert!(cache.contains("public") && cache.contains("max-age=60"), "{cache}");
    let etag = header(&first, "etag").expect("an ETag");
    assert!(etag.starts_with('"') && !etag.starts_with("W/"), "a strong tag: {etag}");

    let again = app.http.get(&url).header("if-none-match", &etag).send().await.expect("answered");
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(header(&again, "etag").as_deref(), Some(etag.as_str()));

    // A change of something the widget does not show keeps the tag; one it shows changes it.
    assert_eq!(app.patch(&id, &json!({"settings": {"prompt": "new"}})).await.status, StatusCode::OK);
    let unchanged = app.http.get(&url).header("if-none-match", &etag).send().await.expect("answered");
    assert_eq!(unchanged.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(app.patch(&id, &json!({"settings": {"greeting": "Hi!"}})).await.status, StatusCode::OK);
    let changed = app.http.get(&url).header("if-none-match", &etag).send().await.expect("answered");
    assert_eq!(changed.status(), StatusCode::OK);
    assert_ne!(header(&changed, "etag"), Some(etag));

    // A browser's preflight is answered; the keyed API stays closed to other origins.
    let preflight = app
        .http
        .request(Method::OPTIONS, &url)
        .header("origin", "https://customer.example")
        .header("access-control-request-method", "GET")
        .send()
        .await
        .expect("answered");
    assert!(preflight.status().is_success(), "{:?}", preflight.status());
    assert_eq!(header(&preflight, "access-control-allow-origin").as_deref(), Some("*"));
    let keyed = app
        .http
        .get(format!("{}/api/external/chatbot/{id}", app.rest))
        .header("x-api-key", &app.key)
        .header("origin", "https://customer.example")
        .send()
        .await
        .expect("answered");
    assert_eq!(keyed.status(), StatusCode::OK);
    assert_eq!(header(&keyed, "access-control-allow-origin"), None);
}

async fn the_public_routes_are_limited_per_client_address(engine: Engine) {
    let app =
        TestApp::spawn_on(Storage::new(engine), "limit-key-0123456789".into(), &["--public-rate-limit", "3"]).await;
    app.create_named("Limited", json!({"slug": "limited-bot", "is_public": true})).await;
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(app.public_widget("limited-bot").await);
    }
    let codes: Vec<StatusCode> = statuses.iter().map(|a| a.status).collect();
    assert_eq!(codes, [StatusCode::OK, StatusCode::OK, StatusCode::OK, StatusCode::TOO_MANY_REQUESTS]);
    assert_eq!(statuses[3].code(), "rate_limited");
    assert!(statuses[3].header("retry-after").is_some());
    // The keyed API has its own budget.
    assert_eq!(app.list("").await.status, StatusCode::OK);
}
