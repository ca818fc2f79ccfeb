//! The same operations through a tonic client, with errors as `google.rpc` details.

use grpc_server::pb;
use tonic::Code;
use tonic_types::StatusExt;

use crate::helpers::{Engine, TestApp, on_every_engine, with_key};

on_every_engine!(
    the_contract_example_is_created_and_read_over_grpc,
    violations_arrive_as_bad_request_details_with_json_paths,
    validate_only_checks_without_creating,
    a_taken_slug_is_already_exists_with_reason_slug_taken,
    calls_without_a_valid_key_are_unauthenticated,
    another_organisation_gets_not_found_over_grpc,
    update_with_a_mask_list_and_delete_with_etags,
    health_and_reflection_answer_stock_clients,
    grpc_lists_page_through_everything_once_and_filter_by_flags,
);

fn example() -> pb::Chatbot {
    pb::Chatbot {
        name: Some("API Docs Demo Chatbot".into()),
        slug: Some("api-docs-demo-chatbot".into()),
        description: Some("A helpful support assistant".into()),
        is_public: Some(true),
        personality_config: Some(pb::PersonalityConfig {
            style: Some("Friendly".into()),
            tone: Some("Professional".into()),
        }),
        settings: Some(pb::Settings {
            greeting: Some("Hello! How can I assist you today?".into()),
            is_request_user_info_enabled: Some(false),
            is_tool_enabled: Some(true),
            model: Some("gpt-4o-mini".into()),
            prompt: Some("You are a highly skilled customer support assistant.".into()),
            snippet: Some(pb::Snippet {
                header: Some("Customer Support".into()),
                logo: Some("https://example.com/logo.png".into()),
                name: Some("Support Assistant".into()),
                primary_color: Some("#4F46E5".into()),
                secondary_color: Some("#10B981".into()),
                slogan: Some("How can I help you today?".into()),
                language: Some("auto".into()),
            }),
            avatar: None,
        }),
        ..Default::default()
    }
}

fn create(chatbot: pb::Chatbot) -> pb::CreateChatbotRequest {
    pb::CreateChatbotRequest { chatbot: Some(chatbot), validate_only: false, ..Default::default() }
}

async fn the_contract_example_is_created_and_read_over_grpc(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let mut client = app.grpc_client().await;
    let created = client.create_chatbot(app.grpc_request(create(example()))).await.expect("created").into_inner();

    let sent = example();
    assert_eq!(created.name, sent.name);
    assert_eq!(created.slug, sent.slug);
    assert_eq!(created.description, sent.description);
    assert_eq!(created.is_public, Some(true));
    assert_eq!(created.active, Some(true));
    assert_eq!(created.personality_config, sent.personality_config);
    assert_eq!(created.settings, sent.settings);
    assert_eq!(created.openai_api_key, None);
    assert!(created.create_time.is_some() && created.create_time == created.update_time);
    assert!(!created.etag.is_empty());

    let read = client
        .get_chatbot(app.grpc_request(pb::GetChatbotRequest { id: created.id.clone() }))
        .await
        .expect("read")
        .into_inner();
    assert_eq!(read, created);

    // The REST face sees the same chatbot.
    let rest = app.get(&created.id).await;
    assert_eq!(rest.body["chatbot"]["slug"], "api-docs-demo-chatbot");
}

async fn violations_arrive_as_bad_request_details_with_json_paths(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let mut client = app.grpc_client().await;
    let mut bad = example();
    bad.name = None;
    bad.slug = Some("Bad Slug".into());
    if let Some(snippet) = bad.settings.as_mut().and_then(|s| s.snippet.as_mut()) {
        snippet.primary_color = Some("blue".into());
    }
    let status = client.create_chatbot(app.grpc_request(create(bad))).await.expect_err("rejected");
    assert_eq!(status.code(), Code::InvalidArgument);
    let details = status.get_error_details();
    assert_eq!(details.error_info().map(|i| i.reason.as_str()), Some("invalid_argument"));
    assert_eq!(
        crate::helpers::field_violations(&status),
        [
            ("name".to_owned(), "required".to_owned()),
            ("slug".to_owned(), "invalid_format".to_owned()),
            ("settings.snippet.primaryColor".to_owned(), "invalid_format".to_owned()),
        ]
    );
}

async fn validate_only_checks_without_creating(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let mut client = app.grpc_client().await;
    let request = pb::CreateChatbotRequest { chatbot: Some(example()), validate_only: true, ..Default::default() };
    client.create_chatbot(app.grpc_request(request)).await.expect("valid");
    let created = client.create_chatbot(app.grpc_request(create(example()))).await.expect("the slug is still free");
    assert_eq!(created.get_ref().slug.as_deref(), Some("api-docs-demo-chatbot"));
}

async fn a_taken_slug_is_already_exists_with_reason_slug_taken(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let mut client = app.grpc_client().await;
    client.create_chatbot(app.grpc_request(create(example()))).await.expect("created");
    let status = client.create_chatbot(app.grpc_request(create(example()))).await.expect_err("taken");
    assert_eq!(status.code(), Code::AlreadyExists);
    assert_eq!(status.get_error_details().error_info().map(|i| i.reason.clone()).as_deref(), Some("slug_taken"));
}

async fn calls_without_a_valid_key_are_unauthenticated(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let mut client = app.grpc_client().await;
    let status = client.create_chatbot(tonic::Request::new(create(example()))).await.expect_err("no key");
    assert_eq!(status.code(), Code::Unauthenticated);
    let status =
        client.list_chatbots(with_key(pb::ListChatbotsRequest::default(), "wrong")).await.expect_err("bad key");
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(status.get_error_details().error_info().map(|i| i.reason.clone()).as_deref(), Some("unauthenticated"));
}

async fn another_organisation_gets_not_found_over_grpc(engine: Engine) {
    let (app, other) = TestApp::spawn_with_second_org(engine).await;
    let mut client = app.grpc_client().await;
    let created = client.create_chatbot(app.grpc_request(create(example()))).await.expect("created").into_inner();
    let status = client
        .get_chatbot(with_key(pb::GetChatbotRequest { id: created.id.clone() }, &other))
        .await
        .expect_err("hidden");
    assert_eq!(status.code(), Code::NotFound);
    let delete = pb::DeleteChatbotRequest { id: created.id.clone(), etag: String::new(), ..Default::default() };
    assert_eq!(client.delete_chatbot(with_key(delete, &other)).await.expect_err("hidden").code(), Code::NotFound);
}

async fn update_with_a_mask_list_and_delete_with_etags(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let mut client = app.grpc_client().await;
    let created = client.create_chatbot(app.grpc_request(create(example()))).await.expect("created").into_inner();

    let change = pb::Chatbot {
        id: created.id.clone(),
        etag: created.etag.clone(),
        settings: Some(pb::Settings {
            snippet: Some(pb::Snippet { primary_color: Some("#000".into()), ..Default::default() }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mask = prost_types::FieldMask { paths: vec!["settings.snippet.primary_color".into(), "description".into()] };
    let request = pb::UpdateChatbotRequest {
        chatbot: Some(change.clone()),
        update_mask: Some(mask.clone()),
        validate_only: false,
        ..Default::default()
    };
    let updated = client.update_chatbot(app.grpc_request(request)).await.expect("updated").into_inner();
    let snippet = updated.settings.as_ref().and_then(|s| s.snippet.as_ref()).expect("a snippet");
    assert_eq!(snippet.primary_color.as_deref(), Some("#000"));
    assert_eq!(snippet.secondary_color.as_deref(), Some("#10B981"), "unmasked fields are kept");
    assert_eq!(updated.description.as_deref(), Some(""), "a masked field left unset is reset");
    assert_ne!(updated.etag, created.etag);
    assert_eq!(updated.create_time, created.create_time);

    let stale = pb::UpdateChatbotRequest {
        chatbot: Some(change),
        update_mask: Some(mask),
        validate_only: false,
        ..Default::default()
    };
    let status = client.update_chatbot(app.grpc_request(stale)).await.expect_err("stale etag");
    assert_eq!(status.code(), Code::Aborted);
    assert_eq!(status.get_error_details().error_info().map(|i| i.reason.clone()).as_deref(), Some("etag_mismatch"));

    let bad_mask = pb::UpdateChatbotRequest {
        chatbot: Some(pb::Chatbot { id: created.id.clone(), ..Default::default() }),
        update_mask: Some(prost_types::FieldMask { paths: vec!["settings.colour".into()] }),
        validate_only: false,
        ..Default::default()
    };
    assert_eq!(
        client.update_chatbot(app.grpc_request(bad_mask)).await.expect_err("bad mask").code(),
        Code::InvalidArgument
    );

    let page =
        client.list_chatbots(app.grpc_request(pb::ListChatbotsRequest::default())).await.expect("listed").into_inner();
    assert_eq!(page.chatbots.len(), 1);
    assert_eq!(page.next_page_token, "");

    let stale = pb::DeleteChatbotRequest { id: created.id.clone(), etag: created.etag.clone(), ..Default::default() };
    assert_eq!(client.delete_chatbot(app.grpc_request(stale)).await.expect_err("stale").code(), Code::Aborted);
    let fresh = pb::DeleteChatbotRequest { id: created.id.clone(), etag: updated.etag.clone(), ..Default::default() };
    client.delete_chatbot(app.grpc_request(fresh)).await.expect("deleted");
    let again = pb::DeleteChatbotRequest { id: created.id.clone(), etag: String::new(), ..Default::default() };
    assert_eq!(client.delete_chatbot(app.grpc_request(again)).await.expect_err("gone").code(), Code::NotFound);
}

async fn health_and_reflection_answer_stock_clients(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let channel =
        tonic::transport::Channel::from_shared(app.grpc.clone()).expect("a URL").connect().await.expect("connects");
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let check = tonic_health::pb::HealthCheckRequest { service: "chatbot.v1.ChatbotService".into() };
    let answer = health.check(check).await.expect("health answers").into_inner();
    assert_eq!(answer.status, tonic_health::pb::health_check_response::ServingStatus::Serving as i32);

    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let mut reflection = ServerReflectionClient::new(channel);
    let request = tonic_reflection::pb::v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream =
        reflection.server_reflection_info(tokio_stream::iter([request])).await.expect("reflection").into_inner();
    let response = stream.message().await.expect("a message").expect("one response");
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else { panic!("a service list") };
    assert!(list.service.iter().any(|s| s.name == "chatbot.v1.ChatbotService"), "{:?}", list.service);
}

async fn grpc_lists_page_through_everything_once_and_filter_by_flags(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let mut client = app.grpc_client().await;
    let mut made = Vec::new();
    for n in 0..23 {
        let chatbot = pb::Chatbot {
            name: Some(format!("Listed {n}")),
            is_public: Some(n % 2 == 0),
            active: Some(n % 3 != 0),
            ..Default::default()
        };
        let request = pb::CreateChatbotRequest { chatbot: Some(chatbot), ..Default::default() };
        made.push(client.create_chatbot(app.grpc_request(request)).await.expect("created").into_inner());
    }
    let list = |page_size: i32, page_token: String, is_public: Option<bool>, active: Option<bool>| {
        pb::ListChatbotsRequest { page_size, page_token, is_public, active, ..Default::default() }
    };
    for (is_public, active) in [(None, None), (Some(true), None), (Some(false), Some(true)), (None, Some(false))] {
        let mut seen = Vec::new();
        let mut token = String::new();
        loop {
            let page = client
                .list_chatbots(app.grpc_request(list(5, token.clone(), is_public, active)))
                .await
                .expect("listed")
                .into_inner();
            assert!(page.chatbots.len() <= 5, "a page holds at most its size");
            seen.extend(page.chatbots.into_iter().map(|c| c.id));
            if page.next_page_token.is_empty() {
                break;
            }
            token = page.next_page_token;
        }
        // Newest first, ties by id, with only what the filter lets through.
        let mut expected: Vec<&pb::Chatbot> = made
            .iter()
            .filter(|c| is_public.is_none_or(|p| c.is_public == Some(p)) && active.is_none_or(|a| c.active == Some(a)))
            .collect();
        let created = |c: &pb::Chatbot| c.create_time.map(|t| (t.seconds, t.nanos)).expect("a create time");
        expected.sort_by(|x, y| created(y).cmp(&created(x)).then_with(|| x.id.cmp(&y.id)));
        let expected: Vec<String> = expected.into_iter().map(|c| c.id.clone()).collect();
        assert_eq!(seen, expected, "is_public {is_public:?}, active {active:?}: every match once, in order");
    }
    let bad = client.list_chatbots(app.grpc_request(list(5, "not-a-token".into(), None, None))).await;
    assert_eq!(bad.expect_err("a bad token").code(), Code::InvalidArgument);
}
