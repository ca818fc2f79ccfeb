//! The chat widget and the voice agent: their endpoints' documented answers, their rules at the limit
//! and one past it, and the same through gRPC's update masks.

use grpc_server::pb;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tonic::Code;

use crate::helpers::{Answer, Engine, TestApp, on_every_engine, with_key};

on_every_engine!(
    the_chat_widget_answers_its_documented_shape_and_is_the_snippet,
    the_chat_widget_rules_hold_at_the_limit_and_fail_one_past_all_at_once,
    the_voice_agent_is_null_until_set_then_answers_its_documented_shape,
    a_first_partial_voice_agent_takes_the_documented_defaults,
    the_voice_agent_rules_hold_at_the_limit_and_fail_one_past_all_at_once,
    another_organisation_gets_404_on_both_widgets,
    both_widgets_are_set_through_grpc_update_masks_with_the_same_rules,
    a_widget_write_with_an_idempotency_key_is_replayed,
);

impl TestApp {
    async fn chat_widget(&self, id: &str, key: &str, body: &Value) -> Answer {
        self.call(Method::PATCH, &format!("/api/external/chatbot/{id}/chat-widget"), Some(key), Some(body)).await
    }

    async fn voice_agent(&self, id: &str, key: &str, body: &Value) -> Answer {
        self.call(Method::PATCH, &format!("/api/external/chatbot/{id}/voice-agent"), Some(key), Some(body)).await
    }
}

/// The keys of a JSON object, sorted.
fn keys(value: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = value.as_object().expect("an object").keys().map(String::as_str).collect();
    keys.sort_unstable();
    keys
}

/// The Voice Agent page's example body.
fn voice_example() -> Value {
    json!({
        "agentId": "agent_01jxyz",
        "appearance": {
            "backgroundColor": "#FFFFFF",
            "borderColor": "#E5E7EB",
            "buttonColor": "#111827",
            "buttonRadius": 32,
            "buttonTextColor": "#FFFFFF",
            "cardRadius": 20,
            "focusOutlineColor": "#2563EB",
            "textColor": "#111827"
        },
        "avatar": { "imageUrl": "https://example.com/agent.png" },
        "model": { "max_output_tokens": 2048, "temperature": 0.7 },
        "text": {
            "callToAction": "Talk to our assistant",
            "endCall": "End call",
            "listeningStatus": "Listening...",
            "speakingStatus": "Speaking...",
            "startCall": "Start call"
        },
        "vad": { "prefix_padding_ms": 500, "silence_duration_ms": 1000, "threshold": 0.8 },
        "voice": "shimmer"
    })
}

async fn the_chat_widget_answers_its_documented_shape_and_is_the_snippet(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let id = app.create_named("Widget", json!({})).await;
    let widget = json!({
        "header": "Support",
        "language": "pt-BR",
        "logo": "https://example.com/w.png",
        "name": "Ana",
        "primaryColor": "#112233",
        "secondaryColor": "#445566",
        "slogan": "Always here"
    });
    let answer = app.chat_widget(&id, &app.key, &widget).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    assert_eq!(keys(&answer.body), ["chat_widget_config", "message"]);
    assert_eq!(answer.body["message"], "Chat widget config updated successfully");
    assert_eq!(answer.body["chat_widget_config"], widget, "every field echoed as stored");

    // The same look is the chatbot's settings.snippet: one source of truth, the contract's shape kept.
    let read = app.get(&id).await;
    let snippet = &read.body["chatbot"]["settings"]["snippet"];
    assert_eq!(keys(snippet), ["header", "logo", "name", "primaryColor", "secondaryColor", "slogan"]);
    for field in keys(snippet) {
        assert_eq!(snippet[field], widget[field], "{field}");
    }
    assert_eq!(answer.header("etag"), read.header("etag"), "the answer carries the chatbot's new entity tag");

    // Merge semantics: what is left out stays, null resets to the default.
    let merged = app.chat_widget(&id, &app.key, &json!({"language": "en", "slogan": null})).await;
    assert_eq!(merged.status, StatusCode::OK, "{:?}", merged.body);
    let config = &merged.body["chat_widget_config"];
    assert_eq!((config["language"].as_str(), config["slogan"].as_str()), (Some("en"), Some("")));
    assert_eq!(config["primaryColor"], "#112233");

    // And a snippet changed through the chatbot shows in the widget.
    let patched = app.patch(&id, &json!({"settings": {"snippet": {"header": "Help"}}})).await;
    assert_eq!(patched.status, StatusCode::OK);
    let again = app.chat_widget(&id, &app.key, &json!({"name": "Bia"})).await;
    assert_eq!(again.body["chat_widget_config"]["header"], "Help");
    assert_eq!(again.body["chat_widget_config"]["language"], "en", "language survives a chatbot update");

    let empty = app.chat_widget(&id, &app.key, &json!({})).await;
    assert_eq!((empty.status, empty.code()), (StatusCode::BAD_REQUEST, "invalid_argument"));
}

async fn the_chat_widget_rules_hold_at_the_limit_and_fail_one_past_all_at_once(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let id = app.create_named("Limits", json!({})).await;
    let url = |bytes: usize| format!("https://example.com/{}", "a".repeat(bytes - 20));
    let at_limit = json!({
        "header": "h".repeat(100),
        "language": "zh-Hant-TW-x-abcdefgh-abcdefgh-abcd",
        "logo": url(2048),
        "name": "n".repeat(100),
        "primaryColor": "#ABC",
        "secondaryColor": "#abcdef",
        "slogan": "é".repeat(100)
    });
    assert_eq!(at_limit["language"].as_str().map(str::len), Some(35));
    let answer = app.chat_widget(&id, &app.key, &at_limit).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);

    let before = app.get(&id).await.body;
    let past = json!({
        "header": "h".repeat(101),
        "language": "english please",
        "logo": url(2049),
        "name": "n".repeat(101),
        "primaryColor": "blue",
        "secondaryColor": "#12345",
        "slogan": "é".repeat(101),
        "colour": "#000",
        "settings": {}
    });
    let answer = app.chat_widget(&id, &app.key, &past).await;
    assert_eq!((answer.status, answer.code()), (StatusCode::BAD_REQUEST, "invalid_argument"));
    let expected = [
        ("colour", "unknown_field"),
        ("header", "too_long"),
        ("language", "invalid_format"),
        ("logo", "too_long"),
        ("name", "too_long"),
        ("primaryColor", "invalid_format"),
        ("secondaryColor", "invalid_format"),
        ("settings", "unknown_field"),
        ("slogan", "too_long"),
    ];
    let expected: Vec<(String, String)> = expected.iter().map(|(f, c)| ((*f).into(), (*c).into())).collect();
    assert_eq!(answer.violations(), expected);
    assert_eq!(app.get(&id).await.body, before, "nothing was written");
}

async fn the_voice_agent_is_null_until_set_then_answers_its_documented_shape(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let id = app.create_named("Voice", json!({})).await;
    assert_eq!(app.get(&id).await.body["chatbot"]["voice_widget_config"], Value::Null);

    let answer = app.voice_agent(&id, &app.key, &voice_example()).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    assert_eq!(keys(&answer.body), ["message", "voice_widget_config"]);
    assert_eq!(answer.body["message"], "Voice widget config updated successfully");
    assert_eq!(answer.body["voice_widget_config"], voice_example(), "every field echoed as stored");

    let read = app.get(&id).await;
    assert_eq!(read.body["chatbot"]["voice_widget_config"], voice_example());
    assert_eq!(answer.header("etag"), read.header("etag"));
    let listed = app.list("").await;
    assert_eq!(listed.body["chatbots"][0]["voice_widget_config"], voice_example(), "the list shows it too");

    let merged = app.voice_agent(&id, &app.key, &json!({"vad": {"threshold": 0.5}, "agentId": null})).await;
    assert_eq!(merged.status, StatusCode::OK, "{:?}", merged.body);
    let mut expected = voice_example();
    expected["vad"]["threshold"] = json!(0.5);
    expected["agentId"] = Value::Null;
    assert_eq!(merged.body["voice_widget_config"], expected, "a merge: only what is given changes");

    // The chatbot's own body cannot set it: it belongs to this endpoint.
    let refused = app.patch(&id, &json!({"voice_widget_config": voice_example()})).await;
    assert_eq!(refused.violations(), [("voice_widget_config".to_owned(), "read_only".to_owned())]);
}

async fn a_first_partial_voice_agent_takes_the_documented_defaults(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let id = app.create_named("Defaults", json!({})).await;
    let answer = app.voice_agent(&id, &app.key, &json!({"appearance": {"buttonColor": "#000"}})).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    let config = &answer.body["voice_widget_config"];
    assert_eq!(config["appearance"]["buttonColor"], "#000");
    assert_eq!(config["appearance"]["buttonRadius"], 32);
    assert_eq!(config["appearance"]["cardRadius"], 20);
    assert_eq!(config["model"], json!({"max_output_tokens": 2048, "temperature": 0.7}));
    assert_eq!(config["vad"], json!({"prefix_padding_ms": 500, "silence_duration_ms": 1000, "threshold": 0.8}));
    assert_eq!(config["voice"], "shimmer");
    assert_eq!(config["agentId"], Value::Null);
    assert_eq!(config["avatar"], json!({"imageUrl": null}));
    for label in ["callToAction", "endCall", "listeningStatus", "speakingStatus", "startCall"] {
        assert!(config["text"][label].as_str().is_some_and(|l| !l.is_empty()), "{label} has a default");
    }
}

async fn the_voice_agent_rules_hold_at_the_limit_and_fail_one_past_all_at_once(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let id = app.create_named("Voice limits", json!({})).await;
    for (low, high) in [(true, false), (false, true)] {
        let pick = |min: Value, max: Value| if low { min } else { max };
        let body = json!({
            "agentId": "a".repeat(100),
            "appearance": {"buttonRadius": pick(json!(0), json!(64)), "cardRadius": pick(json!(0), json!(64)), "textColor": "#fff"},
            "avatar": {"imageUrl": format!("https://example.com/{}", "a".repeat(2048 - 20))},
            "model": {"max_output_tokens": pick(json!(1), json!(16384)), "temperature": pick(json!(0), json!(2))},
            "text": {"startCall": "s".repeat(100)},
            "vad": {
                "prefix_padding_ms": pick(json!(0), json!(10000)),
                "silence_duration_ms": pick(json!(0), json!(10000)),
                "threshold": pick(json!(0), json!(1))
            },
            "voice": "alloy"
        });
        let answer = app.voice_agent(&id, &app.key, &body).await;
        assert_eq!(answer.status, StatusCode::OK, "low {low} high {high}: {:?}", answer.body);
        assert_eq!(
            answer.body["voice_widget_config"]["model"]["max_output_tokens"],
            body["model"]["max_output_tokens"]
        );
    }

    let before = app.get(&id).await.body;
    let past = json!({
        "agentId": "a".repeat(101),
        "appearance": {"buttonRadius": 65, "cardRadius": -1, "borderColor": "grey", "buttonTextColor": 3},
        "avatar": {"imageUrl": "not a url"},
        "model": {"max_output_tokens": 16385, "temperature": 2.001},
        "text": {"endCall": "e".repeat(101)},
        "vad": {"prefix_padding_ms": 10001, "silence_duration_ms": -1, "threshold": 1.001},
        "voice": "robot"
    });
    let answer = app.voice_agent(&id, &app.key, &past).await;
    assert_eq!((answer.status, answer.code()), (StatusCode::BAD_REQUEST, "invalid_argument"));
    let expected = [
        ("agentId", "too_long"),
        ("appearance.borderColor", "invalid_format"),
        ("appearance.buttonRadius", "out_of_range"),
        ("appearance.buttonTextColor", "wrong_type"),
        ("appearance.cardRadius", "out_of_range"),
        ("avatar.imageUrl", "invalid_format"),
        ("model.max_output_tokens", "out_of_range"),
        ("model.temperature", "out_of_range"),
        ("text.endCall", "too_long"),
        ("vad.prefix_padding_ms", "out_of_range"),
        ("vad.silence_duration_ms", "out_of_range"),
        ("vad.threshold", "out_of_range"),
        ("voice", "not_allowed"),
    ];
    let expected: Vec<(String, String)> = expected.iter().map(|(f, c)| ((*f).into(), (*c).into())).collect();
    assert_eq!(answer.violations(), expected);
    assert_eq!(app.get(&id).await.body, before, "nothing was written");

    let fractional = app.voice_agent(&id, &app.key, &json!({"appearance": {"cardRadius": 2.5}})).await;
    assert_eq!(fractional.violations(), [("appearance.cardRadius".to_owned(), "wrong_type".to_owned())]);
}

async fn another_organisation_gets_404_on_both_widgets(engine: Engine) {
    let (app, other) = TestApp::spawn_with_second_org(engine).await;
    let id = app.create_named("Mine", json!({})).await;
    let before = app.get(&id).await.body;
    for answer in [
        app.chat_widget(&id, &other, &json!({"name": "theirs"})).await,
        app.voice_agent(&id, &other, &json!({"voice": "alloy"})).await,
        app.chat_widget(&id, &other, &json!({"name": "n".repeat(101)})).await,
        app.voice_agent("00000000-0000-4000-8000-000000000000", &app.key, &json!({"voice": "alloy"})).await,
        app.chat_widget("not-a-uuid", &app.key, &json!({"name": "x"})).await,
    ] {
        assert_eq!((answer.status, answer.code()), (StatusCode::NOT_FOUND, "not_found"), "{:?}", answer.body);
    }
    assert_eq!(app.get(&id).await.body, before);
}

async fn both_widgets_are_set_through_grpc_update_masks_with_the_same_rules(engine: Engine) {
    let (app, other) = TestApp::spawn_with_second_org(engine).await;
    let id = app.create_named("Over gRPC", json!({})).await;
    let mut client = app.grpc_client().await;
    let update = |chatbot: pb::Chatbot, paths: &[&str]| pb::UpdateChatbotRequest {
        chatbot: Some(chatbot),
        update_mask: Some(prost_types::FieldMask { paths: paths.iter().map(|p| (*p).to_owned()).collect() }),
        ..Default::default()
    };
    let voice = pb::VoiceWidgetConfig {
        appearance: Some(pb::VoiceAppearance { button_radius: Some(12), ..Default::default() }),
        model: Some(pb::VoiceModel { temperature: Some(1.5), ..Default::default() }),
        ..Default::default()
    };
    let change = pb::Chatbot {
        id: id.clone(),
        voice_widget_config: Some(voice),
        settings: Some(pb::Settings {
            snippet: Some(pb::Snippet { language: Some("fr".into()), ..Default::default() }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let paths = ["voice_widget_config", "settings.snippet.language"];
    let updated = client.update_chatbot(app.grpc_request(update(change.clone(), &paths))).await.expect("updated");
    let updated = updated.into_inner();
    let voice = updated.voice_widget_config.as_ref().expect("configured");
    let appearance = voice.appearance.as_ref().expect("appearance");
    assert_eq!((appearance.button_radius, appearance.card_radius), (Some(12), Some(20)));
    assert_eq!(voice.model.as_ref().and_then(|m| m.temperature), Some(1.5));
    assert_eq!(voice.voice.as_deref(), Some("shimmer"));
    assert_eq!(updated.settings.and_then(|s| s.snippet).and_then(|s| s.language).as_deref(), Some("fr"));

    // REST sees what gRPC wrote.
    let read = app.get(&id).await;
    assert_eq!(read.body["chatbot"]["voice_widget_config"]["appearance"]["buttonRadius"], 12);
    let widget = app.chat_widget(&id, &app.key, &json!({"slogan": "x"})).await;
    assert_eq!(widget.body["chat_widget_config"]["language"], "fr");

    let mut bad = change.clone();
    bad.voice_widget_config = Some(pb::VoiceWidgetConfig {
        vad: Some(pb::VoiceActivityDetection { threshold: Some(1.5), ..Default::default() }),
        voice: Some("robot".into()),
        ..Default::default()
    });
    let status = client.update_chatbot(app.grpc_request(update(bad, &paths))).await.expect_err("rejected");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        crate::helpers::field_violations(&status),
        [
            ("voice_widget_config.vad.threshold".to_owned(), "out_of_range".to_owned()),
            ("voice_widget_config.voice".to_owned(), "not_allowed".to_owned()),
        ]
    );

    let hidden = client.update_chatbot(with_key(update(change, &paths), &other)).await.expect_err("hidden");
    assert_eq!(hidden.code(), Code::NotFound);
}

async fn a_widget_write_with_an_idempotency_key_is_replayed(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let id = app.create_named("Retry", json!({})).await;
    let send = || {
        app.http
            .patch(format!("{}/api/external/chatbot/{id}/voice-agent", app.rest))
            .header("x-api-key", &app.key)
            .header("idempotency-key", "voice-once")
            .json(&json!({"voice": "echo"}))
            .send()
    };
    let first = crate::helpers::answer(send().await.expect("answered")).await;
    assert_eq!(first.status, StatusCode::OK);
    let second = crate::helpers::answer(send().await.expect("answered")).await;
    assert_eq!(second.status, StatusCode::OK);
    assert_eq!(second.header("idempotent-replayed").as_deref(), Some("true"));
    assert_eq!(second.body, first.body);
    assert_eq!(app.get(&id).await.header("etag"), first.header("etag"), "written once");
}
