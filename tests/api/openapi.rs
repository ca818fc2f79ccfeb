//! The published OpenAPI document and the server agree: it is served as committed, real answers of
//! both faces' store engines match its schemas, and its human page renders in a real browser.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Answer, Engine, TestApp, contract_example, on_every_engine};

on_every_engine!(the_served_document_is_the_committed_one, real_answers_match_the_documents_schemas);

/// The committed document.
fn committed() -> Value {
    serde_json::from_str(rest_gateway::openapi::DOCUMENT).expect("the committed document is JSON")
}

/// The violations of the component schema `name` of the document by `instance`.
fn violations(name: &str, instance: &Value) -> Vec<String> {
    let mut schema = committed();
    schema["$ref"] = json!(format!("#/components/schemas/{name}"));
    let validator = jsonschema::draft202012::new(&schema).expect("the document's schemas compile");
    validator.iter_errors(instance).map(|e| format!("{} at {}", e, e.instance_path())).collect()
}

/// Checks `instance` against the component schema `name` of the document.
fn conforms(name: &str, instance: &Value) {
    let errors = violations(name, instance);
    assert!(errors.is_empty(), "{name}: {errors:?}\n{instance}");
}

async fn the_served_document_is_the_committed_one(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let served = app.call(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(served.status, StatusCode::OK, "no key is needed");
    assert_eq!(served.body, committed());
}

async fn real_answers_match_the_documents_schemas(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let created = app.post(&contract_example()).await;
    conforms("ChatbotCreated", &created.body);
    let mut broken = created.body.clone();
    broken["chatbot"]["settings"]["snippet"]["primaryColor"] = json!("blue");
    broken["chatbot"]["extra"] = json!(1);
    assert_eq!(violations("ChatbotCreated", &broken).len(), 2, "the schemas do hold answers to something");
    let id = created.body["chatbot"]["id"].as_str().expect("an id").to_owned();
    conforms("ChatbotRead", &app.get(&id).await.body);
    let keyed = app.create_named("Keyed", json!({"openai_api_key": "sk-proj-0123456789abcdef"})).await;
    conforms("ChatbotRead", &app.get(&keyed).await.body);
    conforms("ChatbotPage", &app.list("?limit=1").await.body);
    conforms("ChatbotUpdated", &app.patch(&id, &json!({"settings": {"snippet": {"logo": null}}})).await.body);
    let widget = app
        .call(
            Method::PATCH,
            &format!("/api/external/chatbot/{id}/chat-widget"),
            Some(&app.key),
            Some(&json!({"language": "de"})),
        )
        .await;
    conforms("ChatWidgetUpdated", &widget.body);
    let voice = app
        .call(
            Method::PATCH,
            &format!("/api/external/chatbot/{id}/voice-agent"),
            Some(&app.key),
            Some(&json!({"vad": {"threshold": 1}})),
        )
        .await;
    conforms("VoiceWidgetUpdated", &voice.body);
    conforms("ChatbotRead", &app.get(&id).await.body);
    conforms("ChatbotPage", &app.list("").await.body);
    let mut png = Vec::new();
    image::RgbImage::new(2, 2).write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png).expect("encodes");
    let form = reqwest::multipart::Form::new().part("avatar", reqwest::multipart::Part::bytes(png));
    let upload = app
        .http
        .patch(format!("{}/api/external/chatbot/{id}/update-avatar", app.rest))
        .header("x-api-key", &app.key)
        .multipart(form)
        .send()
        .await
        .expect("answered");
    conforms("AvatarUpdated", &crate::helpers::answer(upload).await.body);
    conforms("ChatbotRead", &app.get(&id).await.body);
    let mut events = crate::changes::SseStream::open(&app, &app.key, Some("c0")).await;
    conforms("ChatbotChange", &events.next().await.json());
    let public = app.call(Method::GET, "/api/public/chatbots/api-docs-demo-chatbot", None, None).await;
    assert_eq!(public.status, StatusCode::OK);
    conforms("PublicChatbot", &public.body);
    conforms("ChatbotDeleted", &app.delete(&keyed).await.body);

    // History, publishing and the recycle bin.
    let history = |path: &str| format!("/api/external/chatbot/{id}{path}");
    let call = |method: Method, path: String| {
        let app = &app;
        async move { app.call(method, &path, Some(&app.key), None).await }
    };
    conforms("RevisionPage", &call(Method::GET, history("/revisions?limit=2")).await.body);
    conforms("RevisionRead", &call(Method::GET, history("/revisions/1")).await.body);
    conforms("RevisionDiff", &call(Method::GET, history("/revisions/3/diff?from=1")).await.body);
    conforms("ChatbotRestored", &call(Method::POST, history("/revisions/1/restore")).await.body);
    conforms("ChatbotPublished", &call(Method::POST, history("/revisions/2/publish")).await.body);
    conforms("ChatbotRead", &app.get(&id).await.body);
    conforms("ChatbotUnpublished", &call(Method::POST, history("/unpublish")).await.body);
    conforms("ChatbotPage", &app.list("?show_deleted=true").await.body);
    conforms(
        "ChatbotUndeleted",
        &app.call(Method::POST, &format!("/api/external/chatbot/{keyed}/undelete"), Some(&app.key), None).await.body,
    );
    assert_eq!(app.delete(&keyed).await.status, StatusCode::OK);
    conforms(
        "ChatbotPurged",
        &app.call(Method::POST, &format!("/api/external/chatbot/{keyed}/purge"), Some(&app.key), None).await.body,
    );
    let mut events = crate::changes::SseStream::open(&app, &app.key, Some("c0")).await;
    for _ in 0..12 {
        conforms("ChatbotChange", &events.next().await.json());
    }

    let errors: Vec<Answer> = vec![
        app.post(&json!({"name": "", "colour": 1})).await,
        app.get("00000000-0000-4000-8000-000000000000").await,
        app.call(Method::GET, "/api/external/chatbots", None, None).await,
        app.post(&contract_example()).await,
        app.list("?limit=0").await,
    ];
    for error in &errors {
        assert!(error.status.is_client_error(), "{}", error.body);
        conforms("Error", &error.body);
    }
    let health = app.call(Method::GET, "/healthz", None, None).await;
    conforms("Health", &health.body);
}

#[tokio::test]
async fn the_documents_page_renders_in_headless_chromium() {
    let chromium = std::path::Path::new("/usr/bin/chromium");
    if !chromium.exists() {
        assert!(
            std::env::var_os("CHATBOTD_TEST_REQUIRE_CHROMIUM").is_none(),
            "Chromium is required (apt-get install chromium)"
        );
        eprintln!("\n!!! SKIPPED: Chromium is not installed (apt-get install chromium)\n");
        return;
    }
    let app = TestApp::spawn(Engine::Sled).await;
    let profile = tempfile::tempdir().expect("a profile dir");
    let run = tokio::process::Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=15000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("{}/docs/", app.rest))
        .output();
    let output =
        tokio::time::timeout(std::time::Duration::from_secs(60), run).await.expect("in time").expect("Chromium runs");
    let dom = String::from_utf8_lossy(&output.stdout);
    assert!(
        dom.contains("class=\"title\">chatbotd"),
        "Swagger UI drew the document's title:\n{}",
        &dom[..dom.len().min(2000)]
    );
    assert!(dom.contains("createChatbot") || dom.contains("Create Chatbot"), "and its operations");
}
