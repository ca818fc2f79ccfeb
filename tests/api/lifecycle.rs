//! Listing with pages and filters, updating with merge semantics and preconditions, deleting.

use std::collections::HashSet;

use futures::stream::{self, StreamExt};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Engine, TestApp, on_every_engine};

on_every_engine!(
    paging_through_250_chatbots_in_pages_of_7_under_churn_skips_and_repeats_nothing,
    the_list_projection_has_15_fields_and_pages_follow_limit,
    lists_filter_by_visibility_and_activity,
    bad_list_parameters_are_400s_naming_them,
    patch_changes_only_what_is_sent_and_merges_nested_objects,
    null_resets_a_field_to_its_default,
    patch_follows_the_create_rules_and_reports_every_violation,
    a_changed_slug_is_checked_and_the_old_one_freed,
    the_documented_collection_patch_takes_the_id_from_the_body_or_the_query,
    id_created_at_and_organisation_never_change,
    deactivation_keeps_the_chatbot_and_its_slug,
    delete_answers_the_documented_message_frees_the_slug_and_a_second_delete_is_404,
    etags_guard_writes_and_make_reads_conditional,
);

/// Creates `n` chatbots named `{prefix} {i}`, a few at a time, and returns their ids.
async fn create_many(app: &TestApp, prefix: &str, n: usize) -> Vec<String> {
    stream::iter(0..n)
        .map(|i| async move { app.create_named(&format!("{prefix} {i}"), json!({})).await })
        .buffer_unordered(16)
        .collect()
        .await
}

async fn paging_through_250_chatbots_in_pages_of_7_under_churn_skips_and_repeats_nothing(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let doomed = create_many(&app, "Doomed", 30).await;
    let stable: HashSet<String> = create_many(&app, "Stable", 250).await.into_iter().collect();

    let pager = async {
        let (mut seen, mut cursor, mut pages) = (Vec::<(String, String)>::new(), None::<String>, 0);
        loop {
            let query = match &cursor {
                Some(cursor) => format!("?limit=7&cursor={cursor}"),
                None => "?limit=7".to_owned(),
            };
            let page = app.list(&query).await;
            assert_eq!(page.status, StatusCode::OK, "{}", page.body);
            let items = page.body["chatbots"].as_array().expect("a list").clone();
            assert!(items.len() <= 7);
            pages += 1;
            seen.extend(items.iter().map(|c| {
                (
                    c["created_at"].as_str().unwrap_or_default().to_owned(),
                    c["id"].as_str().unwrap_or_default().to_owned(),
                )
            }));
            match page.body["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => break (seen, pages),
            }
            tokio::task::yield_now().await;
        }
    };
    let churn = async {
        for (i, id) in doomed.iter().enumerate() {
            assert_eq!(app.delete(id).await.status, StatusCode::OK);
            app.create_named(&format!("Newcomer {i}"), json!({})).await;
        }
    };
    let ((seen, pages), ()) = tokio::join!(pager, churn);

    let ids: Vec<&String> = seen.iter().map(|(_, id)| id).collect();
    let unique: HashSet<&String> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "no chatbot is listed twice");
    assert!(stable.iter().all(|id| unique.contains(id)), "every chatbot that existed throughout is listed");
    let in_order = |w: &[(String, String)]| w[0].0 > w[1].0 || (w[0].0 == w[1].0 && w[0].1 < w[1].1);
    assert!(seen.windows(2).all(in_order), "newest first, ties broken by ascending id");
    assert!(pages >= 250 / 7, "{pages} pages");
}

async fn the_list_projection_has_15_fields_and_pages_follow_limit(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    create_many(&app, "Bot", 5).await;
    let all = app.list("").await;
    assert_eq!(all.body["next_cursor"], Value::Null);
    let first = all.body["chatbots"][0].as_object().expect("an object");
    assert_eq!(first.len(), 15, "{:?}", first.keys().collect::<Vec<_>>());
    for absent in ["docs_metadata", "managers", "migrated_data", "openai_api_key", "v1_chatbot_id"] {
        assert!(!first.contains_key(absent), "{absent}");
    }
    let page = app.list("?limit=2").await;
    assert_eq!(page.body["chatbots"].as_array().map(Vec::len), Some(2));
    assert!(page.body["next_cursor"].is_string());
}

async fn lists_filter_by_visibility_and_activity(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let public = app.create_named("Public", json!({"is_public": true})).await;
    let private = app.create_named("Private", json!({})).await;
    let inactive = app.create_named("Inactive", json!({"is_public": true})).await;
    assert_eq!(app.patch(&inactive, &json!({"active": false})).await.status, StatusCode::OK);

    let ids = |answer: crate::helpers::Answer| -> HashSet<String> {
        answer.body["chatbots"]
            .as_array()
            .expect("a list")
            .iter()
            .map(|c| c["id"].as_str().unwrap_or("").to_owned())
            .collect()
    };
    assert_eq!(ids(app.list("?is_public=true").await), HashSet::from([public.clone(), inactive.clone()]));
    assert_eq!(ids(app.list("?is_public=false").await), HashSet::from([private.clone()]));
    assert_eq!(ids(app.list("?active=false").await), HashSet::from([inactive.clone()]));
    assert_eq!(ids(app.list("?is_public=true&active=true").await), HashSet::from([public]));
}

async fn bad_list_parameters_are_400s_naming_them(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    for (query, field) in [
        ("?limit=0", "limit"),
        ("?limit=101", "limit"),
        ("?limit=ten", "limit"),
        ("?is_public=yes", "is_public"),
        ("?cursor=garbage", "cursor"),
        ("?limt=5", "limt"),
    ] {
        let answer = app.list(query).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(answer.violations().first().map(|(f, _)| f.as_str()), Some(field), "{query}: {}", answer.body);
    }
}

async fn patch_changes_only_what_is_sent_and_merges_nested_objects(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let created = app.post(&crate::helpers::contract_example()).await;
    let before = created.body["chatbot"].clone();
    let id = before["id"].as_str().expect("an id");

    let answer = app.patch(id, &json!({"settings": {"snippet": {"primaryColor": "#000000"}}})).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body["message"], "Chatbot updated successfully");
    let after = &answer.body["chatbot"];
    let mut expected = before.clone();
    expected["settings"]["snippet"]["primaryColor"] = json!("#000000");
    expected["updated_at"] = after["updated_at"].clone();
    assert_eq!(after, &expected, "only that color (and updated_at) changed");
    assert!(after["updated_at"].as_str() > before["updated_at"].as_str());
    assert_ne!(answer.header("etag"), created.header("etag"));
}

async fn null_resets_a_field_to_its_default(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let id =
        app.post(&crate::helpers::contract_example()).await.body["chatbot"]["id"].as_str().expect("an id").to_owned();
    let answer =
        app.patch(&id, &json!({"description": null, "settings": {"snippet": {"logo": null}, "model": null}})).await;
    assert_eq!(answer.status, StatusCode::OK);
    let bot = &answer.body["chatbot"];
    assert_eq!(bot["description"], "");
    assert_eq!(bot["settings"]["snippet"]["logo"], Value::Null);
    assert_eq!(bot["settings"]["model"], "gpt-4o-mini");
    assert_eq!(bot["settings"]["snippet"]["header"], "Customer Support", "siblings are kept");

    let reset = app.patch(&id, &json!({"settings": null})).await;
    assert_eq!(reset.body["chatbot"]["settings"]["snippet"]["header"], "");
    let no_name = app.patch(&id, &json!({"name": null})).await;
    assert_eq!(no_name.violations(), [("name".into(), "required".into())]);
}

async fn patch_follows_the_create_rules_and_reports_every_violation(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let id = app.create_named("Strict", json!({})).await;
    let answer = app
        .patch(&id, &json!({"slug": "NO", "organization_id": "x", "created_at": "y", "settings": {"snippet": {"primaryColor": 5}}}))
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        answer.violations(),
        [
            ("created_at".into(), "read_only".into()),
            ("organization_id".into(), "read_only".into()),
            ("settings.snippet.primaryColor".into(), "wrong_type".into()),
            ("slug".into(), "too_short".into()),
        ]
    );
    assert_eq!(app.patch(&id, &json!({})).await.status, StatusCode::BAD_REQUEST, "an empty patch changes nothing");
    assert_eq!(app.get(&id).await.body["chatbot"]["slug"], "strict");
}

async fn a_changed_slug_is_checked_and_the_old_one_freed(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let a = app.create_named("A bot", json!({"slug": "first-slug"})).await;
    app.create_named("B bot", json!({"slug": "taken-slug"})).await;

    let clash = app.patch(&a, &json!({"slug": "taken-slug"})).await;
    assert_eq!((clash.status, clash.code()), (StatusCode::CONFLICT, "slug_taken"));
    let same = app.patch(&a, &json!({"slug": "first-slug", "description": "same slug is fine"})).await;
    assert_eq!(same.status, StatusCode::OK);

    let moved = app.patch(&a, &json!({"slug": "second-slug"})).await;
    assert_eq!(moved.body["chatbot"]["slug"], "second-slug");
    let reuse = app.post(&json!({"name": "C bot", "slug": "first-slug"})).await;
    assert_eq!(reuse.status, StatusCode::CREATED, "the old slug is free");
}

async fn the_documented_collection_patch_takes_the_id_from_the_body_or_the_query(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let id = app.create_named("Target", json!({})).await;
    let other = app.create_named("Other", json!({})).await;
    let patch = |path: String, body: Value| {
        let app = &app;
        async move { app.call(Method::PATCH, &path, Some(&app.key), Some(&body)).await }
    };

    let by_body = patch("/api/external/chatbots".into(), json!({"id": id, "description": "by body"})).await;
    assert_eq!(by_body.status, StatusCode::OK, "{}", by_body.body);
    assert_eq!(by_body.body["chatbot"]["description"], "by body");
    let by_query = patch(format!("/api/external/chatbots?id={id}"), json!({"description": "by query"})).await;
    assert_eq!(by_query.body["chatbot"]["description"], "by query");
    let both = patch(format!("/api/external/chatbots?id={id}"), json!({"id": id, "description": "both"})).await;
    assert_eq!(both.status, StatusCode::OK);

    let neither = patch("/api/external/chatbots".into(), json!({"description": "x"})).await;
    assert_eq!(
        (neither.status, neither.violations()),
        (StatusCode::BAD_REQUEST, vec![("id".into(), "required".into())])
    );
    let disagree = patch(format!("/api/external/chatbots?id={other}"), json!({"id": id, "description": "x"})).await;
    assert_eq!(disagree.status, StatusCode::BAD_REQUEST);
    assert_eq!(app.get(&other).await.body["chatbot"]["description"], "", "nothing changed");
}

async fn id_created_at_and_organisation_never_change(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let created = app.post(&json!({"name": "Stable"})).await.body["chatbot"].clone();
    let id = created["id"].as_str().expect("an id");
    let updated = app.patch(id, &json!({"name": "Renamed"})).await.body["chatbot"].clone();
    for field in ["id", "created_at", "organization_id", "slug"] {
        assert_eq!(updated[field], created[field], "{field}");
    }
    assert_eq!(updated["name"], "Renamed");
}

async fn deactivation_keeps_the_chatbot_and_its_slug(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let id = app.create_named("Sleepy", json!({"slug": "sleepy-bot"})).await;
    let answer = app.patch(&id, &json!({"active": false})).await;
    assert_eq!(answer.body["chatbot"]["active"], false);
    assert_eq!(app.get(&id).await.body["chatbot"]["slug"], "sleepy-bot");
    assert_eq!(app.post(&json!({"name": "x", "slug": "sleepy-bot"})).await.status, StatusCode::CONFLICT);
}

async fn delete_answers_the_documented_message_frees_the_slug_and_a_second_delete_is_404(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let id = app.create_named("Doomed", json!({"slug": "doomed-bot"})).await;
    let answer = app.delete(&id).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body, json!({"message": "Chatbot deleted successfully"}));
    assert_eq!(app.get(&id).await.status, StatusCode::NOT_FOUND);
    assert_eq!(app.delete(&id).await.status, StatusCode::NOT_FOUND);
    assert_eq!(app.post(&json!({"name": "Reborn", "slug": "doomed-bot"})).await.status, StatusCode::CREATED);
}

async fn etags_guard_writes_and_make_reads_conditional(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let created = app.post(&json!({"name": "Tagged"})).await;
    let id = created.body["chatbot"]["id"].as_str().expect("an id").to_owned();
    let tag = created.header("etag").expect("an etag");
    let path = format!("{}/api/external/chatbot/{id}", app.rest);
    let send = |request: reqwest::RequestBuilder| async move {
        crate::helpers::answer(request.send().await.expect("answered")).await
    };

    let unchanged = send(app.http.get(&path).header("x-api-key", &app.key).header("if-none-match", &tag)).await;
    assert_eq!(unchanged.status, StatusCode::NOT_MODIFIED);
    assert_eq!(unchanged.header("etag"), Some(tag.clone()));

    let fresh = send(
        app.http
            .patch(&path)
            .header("x-api-key", &app.key)
            .header("if-match", &tag)
            .json(&json!({"description": "v2"})),
    )
    .await;
    assert_eq!(fresh.status, StatusCode::OK);
    let new_tag = fresh.header("etag").expect("a new etag");
    assert_ne!(new_tag, tag);

    let stale = send(
        app.http
            .patch(&path)
            .header("x-api-key", &app.key)
            .header("if-match", &tag)
            .json(&json!({"description": "v3"})),
    )
    .await;
    assert_eq!((stale.status, stale.code()), (StatusCode::PRECONDITION_FAILED, "etag_mismatch"));
    let changed = send(app.http.get(&path).header("x-api-key", &app.key).header("if-none-match", &tag)).await;
    assert_eq!(changed.status, StatusCode::OK);
    assert_eq!(changed.body["chatbot"]["description"], "v2", "the stale write changed nothing");

    let list = format!("{tag}, {new_tag}");
    let any_of = send(
        app.http
            .patch(&path)
            .header("x-api-key", &app.key)
            .header("if-match", &list)
            .json(&json!({"description": "v4"})),
    )
    .await;
    assert_eq!(any_of.status, StatusCode::OK);

    let stale_delete = send(app.http.delete(&path).header("x-api-key", &app.key).header("if-match", &new_tag)).await;
    assert_eq!(stale_delete.status, StatusCode::PRECONDITION_FAILED);
    let latest = any_of.header("etag").expect("an etag");
    let delete = send(app.http.delete(&path).header("x-api-key", &app.key).header("if-match", &latest)).await;
    assert_eq!(delete.status, StatusCode::OK);
}
