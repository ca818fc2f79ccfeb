//! Text that every engine stores: NUL and the other C0 control characters are refused on both faces,
//! with a violation per field (tab and line breaks only where text may run over lines); an import
//! names such a record's line and field; and arbitrary Unicode through every text field gets only a
//! 201 that reads back the same, or a 400 naming that field.

use proptest::prelude::*;
use proptest::strategy::ValueTree as _;
use proptest::test_runner::{Config, TestRunner};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::process::Command;

use crate::helpers::{Engine, PROCESS_TIMEOUT, Storage, TestApp, binary, field_violations, on_every_engine};

on_every_engine!(
    control_characters_are_refused_per_field_on_both_faces,
    an_import_names_the_line_and_field_of_text_no_engine_stores,
    arbitrary_unicode_in_any_text_field_is_stored_as_sent_or_refused_by_path,
);

async fn control_characters_are_refused_per_field_on_both_faces(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let body = json!({
        "name": "N\u{0}ul",
        "description": "a\u{0}b",
        "personality_config": { "style": "tab\there" },
        "settings": {
            "greeting": "Hello!\r\n\tHow can I help?",
            "prompt": "bell\u{7}",
            "snippet": { "header": "two\nlines", "slogan": "esc\u{1b}[0m", "logo": "https://example.com/a\u{0}.png" }
        }
    });
    let refused = app.post(&body).await;
    assert_eq!((refused.status, refused.code()), (StatusCode::BAD_REQUEST, "invalid_argument"), "{:?}", refused.body);
    let expected: Vec<(String, String)> = [
        "description",
        "name",
        "personality_config.style",
        "settings.prompt",
        "settings.snippet.header",
        "settings.snippet.logo",
        "settings.snippet.slogan",
    ]
    .iter()
    .map(|path| ((*path).to_owned(), "invalid_format".to_owned()))
    .collect();
    assert_eq!(refused.violations(), expected);
    assert_eq!(app.list("").await.body["chatbots"], json!([]), "nothing was stored");

    let multiline =
        json!({ "name": "Lines", "description": "one\ntwo\tthree\r\n", "settings": { "greeting": "Hi\n" } });
    let created = app.post(&multiline).await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let id = created.body["chatbot"]["id"].as_str().expect("an id");
    let read = app.get(id).await.body;
    assert_eq!(read["chatbot"]["description"], "one\ntwo\tthree\r\n");
    assert_eq!(read["chatbot"]["settings"]["greeting"], "Hi\n");

    let mut client = app.grpc_client().await;
    let message = grpc_server::pb::CreateChatbotRequest {
        chatbot: Some(grpc_server::pb::Chatbot {
            name: Some("Grpc".into()),
            description: Some("a\u{0}b".into()),
            ..Default::default()
        }),
        validate_only: false,
        request_id: String::new(),
    };
    let status = client.create_chatbot(app.grpc_request(message)).await.expect_err("refused");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert_eq!(field_violations(&status), [("description".to_owned(), "invalid_format".to_owned())]);
}

async fn an_import_names_the_line_and_field_of_text_no_engine_stores(engine: Engine) {
    let source = TestApp::spawn(Engine::Sled).await;
    source.create_named("Held", json!({"description": "fine"})).await;
    let storage = source.storage.clone();
    assert!(source.terminate().await.success());
    let export = Command::new(binary()).arg("export").args(storage.args()).output();
    let export = tokio::time::timeout(PROCESS_TIMEOUT, export).await.expect("in time").expect("export runs");
    // As a store written before the rule might hold it.
    let text = String::from_utf8(export.stdout)
        .expect("UTF-8")
        .replace(r#""description":"fine""#, r#""description":"a\u0000b""#);
    let line = text.lines().position(|l| l.contains(r"a\u0000b")).expect("the chatbot's line") + 1;

    let (ok, stderr) = crate::migration::import(&Storage::new(engine), text.as_bytes()).await;
    assert!(!ok, "the bad record fails the import");
    let reported = stderr.lines().find(|l| l.starts_with(&format!("line {line}:"))).unwrap_or_default();
    assert!(reported.contains("description"), "the field is named: {stderr}");
    assert!(!stderr.contains("storage failure"), "refused by the rules, not by the database: {stderr}");
    assert!(stderr.contains("1 bad lines"), "the other lines went in: {stderr}");
}

/// The text fields of Create Chatbot's body, by their contract paths.
fn text_fields() -> Vec<&'static str> {
    use chatbot_core::{Field, Form, Kind};
    Form::Chatbot.fields().filter(|f| f.spec().kind == Kind::Text).map(Field::json_path).collect()
}

/// A body with `value` at `path` (and a name unless the path is the name).
fn body_with(path: &str, value: &str) -> Value {
    let mut body = json!({"name": "Unicode"});
    let mut at = &mut body;
    let parts: Vec<&str> = path.split('.').collect();
    for part in &parts[..parts.len() - 1] {
        at = at.as_object_mut().expect("an object").entry(*part).or_insert_with(|| json!({}));
    }
    at[parts[parts.len() - 1]] = json!(value);
    body
}

/// The value at `path` of `value`.
fn at<'a>(value: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(value, |value, part| &value[part])
}

async fn arbitrary_unicode_in_any_text_field_is_stored_as_sent_or_refused_by_path(engine: Engine) {
    let app =
        TestApp::spawn_on(Storage::new(engine), "unicode-key-0123456789abcdef".into(), &["--rate-limit", "0"]).await;
    let fields = text_fields();
    assert!(fields.len() >= 12, "{fields:?}");
    // Any character, with control characters, NUL and line breaks made common.
    let character = prop_oneof![
        3 => any::<char>(),
        1 => prop::sample::select(vec!['\u{0}', '\u{1}', '\t', '\n', '\r', '\u{1f}', '\u{7f}', '\u{85}', '\u{feff}']),
    ];
    let strategy = (prop::sample::select(fields), prop::collection::vec(character, 0..24));
    let mut runner = TestRunner::new(Config { cases: 64, failure_persistence: None, ..Config::default() });
    let mut cases = Vec::new();
    for _ in 0..64 {
        let (field, chars) = strategy.new_tree(&mut runner).expect("a case").current();
        cases.push((field, chars.into_iter().collect::<String>()));
    }
    let (mut stored, mut refused) = (0, 0);
    for (field, text) in cases {
        let answer = app.post(&body_with(field, &text)).await;
        match answer.status {
            StatusCode::CREATED => {
                stored += 1;
                let id = answer.body["chatbot"]["id"].as_str().expect("an id");
                let read = app.get(id).await.body;
                match field {
                    // Trimmed, derived or masked by rule: each has its own test.
                    "name" | "slug" | "openai_api_key" => {}
                    _ => assert_eq!(at(&read["chatbot"], field), &json!(text), "{field} reads back as sent"),
                }
            }
            StatusCode::BAD_REQUEST => {
                refused += 1;
                let paths: Vec<String> = answer.violations().into_iter().map(|(path, _)| path).collect();
                assert_eq!(paths, [field.to_owned()], "{field} {text:?}: {:?}", answer.body);
            }
            status => panic!("{field} {text:?}: {status} {:?}", answer.body),
        }
    }
    println!("arbitrary text: {stored} stored, {refused} refused");
}
