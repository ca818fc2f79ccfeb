//! `POST /api/external/chatbots` and `GET /api/external/chatbot/{id}`: the contract and its rules.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Engine, TestApp, contract_example, is_contract_timestamp, is_lower_uuid, on_every_engine};

on_every_engine!(
    a_key_given_twice_is_a_400_naming_it,
    only_the_canonical_spelling_of_an_id_names_a_chatbot,
    the_contract_example_creates_a_chatbot_with_every_documented_field,
    a_created_chatbot_reads_back_the_same_without_a_message,
    the_organisation_comes_from_the_key_and_is_the_same_for_every_chatbot,
    a_bare_name_gets_the_documented_defaults,
    slugs_are_derived_from_names_and_made_unique,
    a_taken_slug_is_rejected_with_409_and_nothing_is_stored,
    every_violation_is_reported_at_once_with_its_json_path,
    each_rule_accepts_its_limit_and_rejects_just_past_it,
    wrong_json_types_are_named,
    malformed_json_is_a_400_that_says_where,
    a_body_that_is_not_json_is_a_415,
    a_body_over_256_kib_is_a_413,
    a_failed_create_stores_nothing_and_takes_no_slug,
    an_openai_key_is_stored_but_only_ever_shown_masked,
    unknown_or_malformed_ids_are_404_and_unknown_routes_answer_in_the_error_shape,
);

/// Fields of the documented chatbot object that are always null.
const NULL_FIELDS: [&str; 8] = [
    "docs_metadata",
    "enabled_plugins",
    "managers",
    "openai_api_key",
    "suggestions",
    "v1_chatbot_id",
    "version_id",
    "voice_widget_config",
];

async fn the_contract_example_creates_a_chatbot_with_every_documented_field(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let sent = contract_example();
    let answer = app.post(&sent).await;

    assert_eq!(answer.status, StatusCode::CREATED);
    assert_eq!(answer.body["message"], "Chatbot created successfully");
    let bot = answer.body["chatbot"].as_object().expect("a chatbot object");
    assert_eq!(bot.len(), 20, "exactly the 20 documented fields: {:?}", bot.keys().collect::<Vec<_>>());
    for field in ["description", "is_public", "name", "personality_config", "settings", "slug"] {
        assert_eq!(bot[field], sent[field], "{field} is echoed as sent");
    }
    for field in NULL_FIELDS {
        assert_eq!(bot[field], Value::Null, "{field} is present and null");
    }
    assert_eq!(bot["active"], true);
    assert_eq!(bot["migrated_data"], false);
    let id = bot["id"].as_str().expect("id is a string");
    assert!(is_lower_uuid(id), "{id}");
    assert!(is_lower_uuid(bot["organization_id"].as_str().expect("a string")));
    let created = bot["created_at"].as_str().expect("created_at is a string");
    assert!(is_contract_timestamp(created), "{created}");
    assert_eq!(bot["updated_at"], bot["created_at"]);
    assert_eq!(answer.header("location").as_deref(), Some(format!("/api/external/chatbot/{id}").as_str()));
    assert!(answer.header("etag").is_some_and(|tag| tag.starts_with('"') && tag.ends_with('"')));
}

async fn a_created_chatbot_reads_back_the_same_without_a_message(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let created = app.post(&contract_example()).await;
    let id = created.body["chatbot"]["id"].as_str().expect("an id");

    let read = app.get(id).await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.body, json!({ "chatbot": created.body["chatbot"] }));
    assert_eq!(read.header("etag"), created.header("etag"));
}

async fn the_organisation_comes_from_the_key_and_is_the_same_for_every_chatbot(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let a = app.post(&json!({"name": "One"})).await;
    let b = app.post(&json!({"name": "Two"})).await;
    assert_eq!(a.body["chatbot"]["organization_id"], b.body["chatbot"]["organization_id"]);

    let forged = app.post(&json!({"name": "Three", "organization_id": "123042b2-86e2-4184-a86e-95423d728815"})).await;
    assert_eq!(forged.status, StatusCode::BAD_REQUEST);
    assert_eq!(forged.violations(), [("organization_id".into(), "read_only".into())]);
}

async fn a_bare_name_gets_the_documented_defaults(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let answer = app.post(&json!({"name": "  Plain  "})).await;
    assert_eq!(answer.status, StatusCode::CREATED);
    let bot = &answer.body["chatbot"];
    assert_eq!(bot["name"], "Plain", "the name is trimmed");
    assert_eq!(bot["slug"], "plain");
    assert_eq!(bot["description"], "");
    assert_eq!(bot["is_public"], false);
    assert_eq!(bot["active"], true);
    assert_eq!(bot["personality_config"], json!({"style": "Friendly", "tone": "Professional"}));
    assert_eq!(
        bot["settings"],
        json!({
            "greeting": "Hello! How can I assist you today?",
            "isRequestUserInfoEnabled": false,
            "isToolEnabled": false,
            "model": "gpt-4o-mini",
            "prompt": "You are a helpful assistant.",
            "snippet": {"header": "", "logo": null, "name": "", "primaryColor": "#4F46E5", "secondaryColor": "#10B981", "slogan": ""}
        })
    );
}

async fn slugs_are_derived_from_names_and_made_unique(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let mut slugs = Vec::new();
    for name in ["Test", "Test", "test!", "API Docs Demo Chatbot", "Café Crème", "A", "日本"] {
        let answer = app.post(&json!({ "name": name })).await;
        assert_eq!(answer.status, StatusCode::CREATED, "{name}: {:?}", answer.body);
        slugs.push(answer.body["chatbot"]["slug"].as_str().expect("a slug").to_owned());
    }
    assert_eq!(slugs, ["test", "test-1", "test-2", "api-docs-demo-chatbot", "cafe-creme", "a-bot", "ri-ben"]);
}

async fn a_taken_slug_is_rejected_with_409_and_nothing_is_stored(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    assert_eq!(app.post(&contract_example()).await.status, StatusCode::CREATED);

    let mut again = contract_example();
    again["name"] = json!("Another one");
    let answer = app.post(&again).await;
    assert_eq!(answer.status, StatusCode::CONFLICT);
    assert_eq!(answer.code(), "slug_taken");
    assert_eq!(app.list("").await.body["chatbots"].as_array().map(Vec::len), Some(1));
}

async fn every_violation_is_reported_at_once_with_its_json_path(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let answer = app
        .post(&json!({
            "name": "",
            "slug": "Not A Slug",
            "description": "d".repeat(501),
            "personality_config": {"style": "s".repeat(101), "tone": 7},
            "settings": {
                "greeting": "g".repeat(1001),
                "model": "gpt-2",
                "prompt": "p".repeat(20_001),
                "isToolEnabled": "yes",
                "snippet": {"logo": "/logo.png", "primaryColor": "blue", "secondaryColor": "#12345", "slogan": "s".repeat(101), "colour": "#fff"}
            },
            "nmae": "typo"
        }))
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.code(), "invalid_argument");
    let expected: Vec<(String, String)> = [
        ("description", "too_long"),
        ("name", "too_short"),
        ("nmae", "unknown_field"),
        ("personality_config.style", "too_long"),
        ("personality_config.tone", "wrong_type"),
        ("settings.greeting", "too_long"),
        ("settings.isToolEnabled", "wrong_type"),
        ("settings.model", "not_allowed"),
        ("settings.prompt", "too_long"),
        ("settings.snippet.colour", "unknown_field"),
        ("settings.snippet.logo", "invalid_format"),
        ("settings.snippet.primaryColor", "invalid_format"),
        ("settings.snippet.secondaryColor", "invalid_format"),
        ("settings.snippet.slogan", "too_long"),
        ("slug", "invalid_format"),
    ]
    .into_iter()
    .map(|(f, c)| (f.to_owned(), c.to_owned()))
    .collect();
    assert_eq!(answer.violations(), expected);
    for violation in answer.body["error"]["violations"].as_array().expect("a list") {
        assert!(violation["message"].as_str().is_some_and(|m| !m.is_empty()), "{violation}");
    }
}

/// One rule: a body with a value at the limit is accepted, one just past it is rejected with `code`.
struct Rule {
    path: &'static str,
    accepted: Value,
    rejected: Value,
    code: &'static str,
}

fn body_with(path: &str, value: Value) -> Value {
    let mut body = json!({"name": "Rule check"});
    let mut at = &mut body;
    let parts: Vec<&str> = path.split('.').collect();
    for part in &parts[..parts.len() - 1] {
        at = at.as_object_mut().expect("an object").entry(*part).or_insert_with(|| json!({}));
    }
    at[parts[parts.len() - 1]] = value;
    body
}

async fn each_rule_accepts_its_limit_and_rejects_just_past_it(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let rules = [
        Rule { path: "name", accepted: json!("n".repeat(100)), rejected: json!("n".repeat(101)), code: "too_long" },
        Rule { path: "name", accepted: json!(" x "), rejected: json!("   "), code: "too_short" },
        Rule { path: "slug", accepted: json!("abc"), rejected: json!("ab"), code: "too_short" },
        Rule { path: "slug", accepted: json!("a".repeat(64)), rejected: json!("a".repeat(65)), code: "too_long" },
        Rule { path: "slug", accepted: json!("my-bot-2"), rejected: json!("my--bot"), code: "invalid_format" },
        Rule { path: "slug", accepted: json!("bot-9x"), rejected: json!("Bot-9x"), code: "invalid_format" },
        Rule {
            path: "description",
            accepted: json!("é".repeat(500)),
            rejected: json!("é".repeat(501)),
            code: "too_long",
        },
        Rule {
            path: "personality_config.style",
            accepted: json!("s".repeat(100)),
            rejected: json!("s".repeat(101)),
            code: "too_long",
        },
        Rule {
            path: "personality_config.tone",
            accepted: json!("t".repeat(100)),
            rejected: json!("t".repeat(101)),
            code: "too_long",
        },
        Rule {
            path: "settings.greeting",
            accepted: json!("g".repeat(1000)),
            rejected: json!("g".repeat(1001)),
            code: "too_long",
        },
        Rule {
            path: "settings.prompt",
            accepted: json!("p".repeat(20_000)),
            rejected: json!("p".repeat(20_001)),
            code: "too_long",
        },
        Rule {
            path: "settings.model",
            accepted: json!("o3-mini"),
            rejected: json!("gpt-3.5-turbo"),
            code: "not_allowed",
        },
        Rule {
            path: "settings.snippet.header",
            accepted: json!("h".repeat(100)),
            rejected: json!("h".repeat(101)),
            code: "too_long",
        },
        Rule {
            path: "settings.snippet.name",
            accepted: json!("n".repeat(100)),
            rejected: json!("n".repeat(101)),
            code: "too_long",
        },
        Rule {
            path: "settings.snippet.slogan",
            accepted: json!("s".repeat(100)),
            rejected: json!("s".repeat(101)),
            code: "too_long",
        },
        Rule {
            path: "settings.snippet.logo",
            accepted: json!("http://cdn.example.org/l.svg"),
            rejected: json!("ftp://example.org/l.svg"),
            code: "invalid_format",
        },
        Rule {
            path: "settings.snippet.logo",
            accepted: json!(format!("https://e.com/{}", "a".repeat(2048 - 14))),
            rejected: json!(format!("https://e.com/{}", "a".repeat(2048 - 13))),
            code: "too_long",
        },
        Rule {
            path: "settings.snippet.primaryColor",
            accepted: json!("#abc"),
            rejected: json!("#abcd"),
            code: "invalid_format",
        },
        Rule {
            path: "settings.snippet.secondaryColor",
            accepted: json!("#A1B2C3"),
            rejected: json!("A1B2C3"),
            code: "invalid_format",
        },
        Rule {
            path: "openai_api_key",
            accepted: json!("sk-abcdefghijklmnop"),
            rejected: json!("sk- spaced"),
            code: "invalid_format",
        },
    ];
    for rule in rules {
        let ok = app.post(&body_with(rule.path, rule.accepted.clone())).await;
        assert_eq!(
            ok.status,
            StatusCode::CREATED,
            "{} = {:.40} should be accepted: {}",
            rule.path,
            rule.accepted.to_string(),
            ok.body
        );
        let bad = app.post(&body_with(rule.path, rule.rejected.clone())).await;
        assert_eq!(
            bad.status,
            StatusCode::BAD_REQUEST,
            "{} = {:.40} should be rejected",
            rule.path,
            rule.rejected.to_string()
        );
        assert_eq!(bad.violations(), [(rule.path.to_owned(), rule.code.to_owned())], "{}", rule.path);
    }
}

async fn wrong_json_types_are_named(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let answer = app.post(&json!({"name": ["x"], "is_public": "true", "settings": "none"})).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        answer.violations(),
        [
            ("is_public".into(), "wrong_type".into()),
            ("name".into(), "wrong_type".into()),
            ("settings".into(), "wrong_type".into())
        ]
    );
}

async fn malformed_json_is_a_400_that_says_where(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let response = app
        .http
        .post(format!("{}/api/external/chatbots", app.rest))
        .header("x-api-key", &app.key)
        .header("content-type", "application/json")
        .body("{\n  \"name\": \"x\",\n  oops\n}")
        .send()
        .await
        .expect("answered");
    let answer = crate::helpers::answer(response).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.code(), "malformed_json");
    assert!(answer.body["error"]["message"].as_str().is_some_and(|m| m.contains("line 3")), "{}", answer.body);

    let array = app.post(&json!(["name"])).await;
    assert_eq!(array.status, StatusCode::BAD_REQUEST);
}

async fn a_body_that_is_not_json_is_a_415(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    for content_type in [None, Some("text/plain"), Some("application/x-www-form-urlencoded")] {
        let mut request =
            app.http.post(format!("{}/api/external/chatbots", app.rest)).header("x-api-key", &app.key).body("name=x");
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let answer = crate::helpers::answer(request.send().await.expect("answered")).await;
        assert_eq!(answer.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{content_type:?}");
        assert_eq!(answer.code(), "unsupported_media_type");
    }
}

async fn a_body_over_256_kib_is_a_413(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let answer = app.post(&json!({"name": "big", "description": "x".repeat(300 * 1024)})).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(answer.code(), "payload_too_large");
}

async fn a_failed_create_stores_nothing_and_takes_no_slug(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let bad = app
        .post(&json!({"name": "Keep", "slug": "keep-free", "settings": {"snippet": {"primaryColor": "nope"}}}))
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let typo = app.post(&json!({"name": "Keep", "slug": "keep-free", "is_pubic": true})).await;
    assert_eq!(typo.status, StatusCode::BAD_REQUEST);
    assert_eq!(app.list("").await.body["chatbots"], json!([]));

    let good = app.post(&json!({"name": "Keep", "slug": "keep-free"})).await;
    assert_eq!(good.status, StatusCode::CREATED);
    assert_eq!(good.body["chatbot"]["slug"], "keep-free");
}

async fn an_openai_key_is_stored_but_only_ever_shown_masked(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let secret = "sk-proj-verysecretvalue9876";
    let created = app.post(&json!({"name": "Keyed", "openai_api_key": secret})).await;
    assert_eq!(created.status, StatusCode::CREATED);
    assert_eq!(created.body["chatbot"]["openai_api_key"], "sk-...9876");
    let id = created.body["chatbot"]["id"].as_str().expect("an id");

    let read = app.get(id).await;
    assert_eq!(read.body["chatbot"]["openai_api_key"], "sk-...9876");
    let listed = app.list("").await;
    for answer in [&created, &read, &listed] {
        assert!(!answer.body.to_string().contains("verysecret"), "the key leaked: {}", answer.body);
    }
    assert!(listed.body["chatbots"][0].get("openai_api_key").is_none(), "the list projection has no key field");
}

async fn unknown_or_malformed_ids_are_404_and_unknown_routes_answer_in_the_error_shape(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    for id in ["3317853e-0af2-427d-a56f-351a9587f48f", "not-a-uuid", "%FF"] {
        let answer = app.get(id).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{id}");
        assert_eq!(answer.code(), "not_found");
    }
    let route = app.call(Method::GET, "/api/external/nothing", Some(&app.key), None).await;
    assert_eq!((route.status, route.code()), (StatusCode::NOT_FOUND, "not_found"));
    let method = app.call(Method::PUT, "/api/external/chatbots", Some(&app.key), Some(&json!({}))).await;
    assert_eq!((method.status, method.code()), (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"));
}

async fn a_key_given_twice_is_a_400_naming_it(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let response = app
        .http
        .post(format!("{}/api/external/chatbots", app.rest))
        .header("x-api-key", &app.key)
        .header("content-type", "application/json")
        .body(r#"{"name": "First", "name": "Second", "settings": {"snippet": {"logo": null, "logo": null}}}"#)
        .send()
        .await
        .expect("answered");
    let answer = crate::helpers::answer(response).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        answer.violations(),
        [("name".into(), "duplicate_field".into()), ("settings.snippet.logo".into(), "duplicate_field".into())]
    );
    assert_eq!(app.list("").await.body["chatbots"], json!([]), "nothing was created");
}

async fn only_the_canonical_spelling_of_an_id_names_a_chatbot(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let id = app.create_named("Canonical", json!({})).await;
    assert_eq!(app.get(&id).await.status, StatusCode::OK);
    for other in [id.to_uppercase(), format!("{{{id}}}"), format!("urn:uuid:{id}"), id.replace('-', "")] {
        let answer = app.get(&other).await;
        assert_eq!((answer.status, answer.code()), (StatusCode::NOT_FOUND, "not_found"), "{other}");
    }
    let mut client = app.grpc_client().await;
    let request = app.grpc_request(grpc_server::pb::GetChatbotRequest { id: id.to_uppercase() });
    assert_eq!(client.get_chatbot(request).await.expect_err("not found").code(), tonic::Code::NotFound);
}
