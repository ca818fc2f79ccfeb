//! Configuration history: every committed change is a revision, listed, read, diffed and restored on
//! both faces, kept by retention, carried by the change stream, and durable like any write.

use futures::future::join_all;
use grpc_server::pb;
use reqwest::multipart::{Form, Part};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tonic::Code;

use crate::helpers::{Answer, Engine, TestApp, answer, is_lower_uuid, on_every_engine, with_key};

on_every_engine!(
    a_create_three_patches_and_an_avatar_are_revisions_one_to_five_each_as_details_showed_it,
    every_diff_applied_to_its_from_gives_its_to,
    a_restore_checks_if_match_makes_one_revision_and_a_replay_makes_none,
    a_write_that_changes_nothing_makes_no_revision,
    another_organisation_gets_404_on_every_history_route,
    a_bad_change_note_or_cursor_is_a_400_naming_it,
    revisions_are_listed_read_diffed_and_rolled_back_over_grpc,
    the_change_stream_carries_each_revisions_kind_version_and_changed_paths,
    retention_keeps_the_newest_revisions_and_frees_their_images,
    acknowledged_restores_survive_kill_9,
    publish_pins_the_public_widget_while_the_head_changes_and_unpublish_returns_it,
    a_published_revision_is_never_pruned,
    publishing_over_grpc_sets_the_version_id,
    a_deleted_chatbot_is_gone_everywhere_but_its_history_then_undeleted,
    a_deleted_slug_is_reserved_from_others_and_free_for_its_own,
    a_purge_removes_a_deleted_chatbot_and_its_history_at_once,
    the_undelete_window_expires_by_itself_and_zero_deletes_at_once,
    soft_delete_undelete_and_purge_over_grpc,
);

impl TestApp {
    async fn revisions(&self, id: &str, query: &str) -> Answer {
        self.call(Method::GET, &format!("/api/external/chatbot/{id}/revisions{query}"), Some(&self.key), None).await
    }

    async fn revision(&self, id: &str, which: &str) -> Answer {
        self.call(Method::GET, &format!("/api/external/chatbot/{id}/revisions/{which}"), Some(&self.key), None).await
    }

    async fn diff(&self, id: &str, which: &str, query: &str) -> Answer {
        let path = format!("/api/external/chatbot/{id}/revisions/{which}/diff{query}");
        self.call(Method::GET, &path, Some(&self.key), None).await
    }

    /// `POST .../restore` with optional `If-Match` and `Idempotency-Key`.
    async fn restore(&self, id: &str, which: &str, if_match: Option<&str>, key: Option<&str>) -> Answer {
        let mut request = self
            .http
            .post(format!("{}/api/external/chatbot/{id}/revisions/{which}/restore", self.rest))
            .header("x-api-key", &self.key);
        if let Some(tag) = if_match {
            request = request.header("if-match", tag);
        }
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        answer(request.send().await.expect("answered")).await
    }

    /// A PATCH of `path` with a change note and a request id of our own.
    async fn noted_patch(&self, path: &str, body: &Value, note: &str, request_id: &str) -> Answer {
        let request = self
            .http
            .patch(format!("{}{path}", self.rest))
            .header("x-api-key", &self.key)
            .header("x-change-note", note)
            .header("x-request-id", request_id)
            .json(body);
        answer(request.send().await.expect("answered")).await
    }

    async fn upload_png(&self, id: &str, shade: u8) -> Answer {
        let part = Part::bytes(png(shade)).file_name("a.png").mime_str("image/png").expect("a media type");
        let request = self
            .http
            .patch(format!("{}/api/external/chatbot/{id}/update-avatar", self.rest))
            .header("x-api-key", &self.key)
            .multipart(Form::new().part("avatar", part));
        answer(request.send().await.expect("answered")).await
    }

    /// The chatbot as Details shows it now.
    async fn details(&self, id: &str) -> Value {
        let read = self.get(id).await;
        assert_eq!(read.status, StatusCode::OK, "{:?}", read.body);
        read.body["chatbot"].clone()
    }
}

/// A 2x2 PNG of one shade.
fn png(shade: u8) -> Vec<u8> {
    let mut bytes = Vec::new();
    let pixels = image::RgbImage::from_fn(2, 2, |_, _| image::Rgb([shade, shade, shade]));
    pixels.write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png).expect("encodes");
    bytes
}

/// `(revision, kind)` of each revision of a list answer, in its order.
fn numbered(list: &Answer) -> Vec<(u64, String)> {
    assert_eq!(list.status, StatusCode::OK, "{:?}", list.body);
    list.body["revisions"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|r| (r["revision"].as_u64().expect("a number"), r["kind"].as_str().expect("a kind").to_owned()))
        .collect()
}

/// The Details object without the fields a restore sets anew.
fn content(chatbot: &Value) -> Value {
    let mut content = chatbot.clone();
    let object = content.as_object_mut().expect("an object");
    object.remove("updated_at");
    content
}

async fn a_create_three_patches_and_an_avatar_are_revisions_one_to_five_each_as_details_showed_it(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let id = app.create_named("Historian", json!({})).await;
    let mut shown = vec![app.details(&id).await];

    let renamed = app
        .noted_patch(&format!("/api/external/chatbot/{id}"), &json!({"name": "Renamed"}), "a better name", "req-2")
        .await;
    assert_eq!(renamed.status, StatusCode::OK, "{:?}", renamed.body);
    shown.push(app.details(&id).await);
    let by_body = json!({"id": id, "description": "Now described"});
    let by_body = app.call(Method::PATCH, "/api/external/chatbots", Some(&app.key), Some(&by_body)).await;
    assert_eq!(by_body.status, StatusCode::OK);
    shown.push(app.details(&id).await);
    let widget_path = format!("/api/external/chatbot/{id}/chat-widget");
    let widget = app.call(Method::PATCH, &widget_path, Some(&app.key), Some(&json!({"primaryColor": "#123456"}))).await;
    assert_eq!(widget.status, StatusCode::OK);
    shown.push(app.details(&id).await);
    assert_eq!(app.upload_png(&id, 10).await.status, StatusCode::OK);
    shown.push(app.details(&id).await);

    let list = app.revisions(&id, "").await;
    let kinds: Vec<(u64, &str)> = vec![(5, "updated"), (4, "updated"), (3, "updated"), (2, "updated"), (1, "created")];
    let listed = numbered(&list);
    assert_eq!(listed.iter().map(|(n, k)| (*n, k.as_str())).collect::<Vec<_>>(), kinds);
    assert_eq!(list.body["next_cursor"], Value::Null);
    let revisions = list.body["revisions"].as_array().expect("a list").clone();
    let changed: Vec<Value> = revisions.iter().map(|r| r["changed"].clone()).collect();
    assert_eq!(
        changed,
        [
            json!(["settings.avatar"]),
            json!(["settings.snippet.primaryColor"]),
            json!(["description"]),
            json!(["name"]),
            json!([]),
        ]
    );
    let actor = revisions[0]["actor"].clone();
    assert_eq!(actor["type"], "api_key");
    assert!(is_lower_uuid(actor["id"].as_str().expect("the key's id")));
    assert!(revisions.iter().all(|r| r["actor"] == actor), "one key made them all");
    assert_eq!(
        (revisions[3]["note"].as_str(), revisions[3]["request_id"].as_str()),
        (Some("a better name"), Some("req-2"))
    );
    assert_eq!(revisions[4]["note"], Value::Null);

    // Each revision's content is exactly what Details showed right after its change; by number or
    // by version_id, with a strong ETag and immutable caching.
    for (number, details) in (1..=5).zip(&shown) {
        let read = app.revision(&id, &number.to_string()).await;
        assert_eq!(read.status, StatusCode::OK, "{:?}", read.body);
        assert_eq!(&read.body["revision"]["chatbot"], details, "revision {number}");
        let version = read.body["revision"]["version_id"].as_str().expect("a version id").to_owned();
        assert_eq!(read.header("etag"), Some(format!("\"{version}\"")));
        assert_eq!(read.header("cache-control").as_deref(), Some("private, max-age=31536000, immutable"));
        let by_version = app.revision(&id, &version).await;
        assert_eq!(by_version.body, read.body);
        let cached = app
            .http
            .get(format!("{}/api/external/chatbot/{id}/revisions/{version}", app.rest))
            .header("x-api-key", &app.key)
            .header("if-none-match", format!("\"{version}\""))
            .send()
            .await
            .expect("answered");
        assert_eq!(cached.status(), StatusCode::NOT_MODIFIED);
    }
    assert_eq!(app.revision(&id, "6").await.status, StatusCode::NOT_FOUND);
    assert_eq!(app.revision(&id, "0").await.status, StatusCode::NOT_FOUND);

    // Pages, newest first.
    let first = app.revisions(&id, "?limit=2").await;
    assert_eq!(numbered(&first).iter().map(|(n, _)| *n).collect::<Vec<_>>(), [5, 4]);
    let cursor = first.body["next_cursor"].as_str().expect("more follow").to_owned();
    let second = app.revisions(&id, &format!("?limit=2&cursor={cursor}")).await;
    assert_eq!(numbered(&second).iter().map(|(n, _)| *n).collect::<Vec<_>>(), [3, 2]);
}

async fn every_diff_applied_to_its_from_gives_its_to(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let id = app.create_named("Differ", json!({})).await;
    let changes = [
        json!({"name": "Differ 2", "description": "one\ntwo"}),
        json!({"settings": {"prompt": "Be brief.", "snippet": {"slogan": "~/ and ~0 survive"}}}),
        json!({"is_public": true, "personality_config": {"tone": "Warm"}}),
        json!({"description": ""}),
    ];
    for change in &changes {
        assert_eq!(app.patch(&id, change).await.status, StatusCode::OK);
    }
    let content = |number: u64| {
        let app = &app;
        let id = &id;
        async move { app.revision(id, &number.to_string()).await.body["revision"]["chatbot"].clone() }
    };
    // Each against the one before (the default), and the last against the first.
    let pairs: Vec<(u64, Option<u64>)> = (2..=5).map(|to| (to, None)).chain([(5, Some(1)), (1, Some(5))]).collect();
    for (to, from) in pairs {
        let query = from.map(|f| format!("?from={f}")).unwrap_or_default();
        let diff = app.diff(&id, &to.to_string(), &query).await;
        assert_eq!(diff.status, StatusCode::OK, "{:?}", diff.body);
        let from = from.unwrap_or(to - 1);
        assert_eq!(diff.body["from"]["revision"], from);
        assert_eq!(diff.body["to"]["revision"], to);
        let patch: json_patch::Patch = serde_json::from_value(diff.body["patch"].clone()).expect("an RFC 6902 patch");
        assert!(!patch.0.is_empty(), "{from} and {to} differ");
        let mut document = content(from).await;
        json_patch::patch(&mut document, &patch).expect("the patch applies");
        assert_eq!(document, content(to).await, "from {from} to {to}");
    }
    let bad = app.diff(&id, "2", "?from=zero").await;
    assert_eq!(
        (bad.status, bad.violations()),
        (StatusCode::BAD_REQUEST, vec![("from".into(), "invalid_format".into())])
    );
    assert_eq!(app.diff(&id, "2", "?from=9").await.status, StatusCode::NOT_FOUND);
}

async fn a_restore_checks_if_match_makes_one_revision_and_a_replay_makes_none(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let id = app.create_named("Restorable", json!({"slug": "restorable"})).await;
    let original = app.details(&id).await;
    let changed =
        app.patch(&id, &json!({"name": "Broken", "slug": "broken-slug", "settings": {"prompt": "oops"}})).await;
    assert_eq!(changed.status, StatusCode::OK);
    let refused = app.restore(&id, "1", Some("\"1-0\""), None).await;
    assert_eq!((refused.status, refused.code()), (StatusCode::PRECONDITION_FAILED, "etag_mismatch"));

    let etag = changed.header("etag").expect("an etag");
    let restored = app.restore(&id, "1", Some(&etag), Some("restore-once")).await;
    assert_eq!(restored.status, StatusCode::OK, "{:?}", restored.body);
    assert_eq!(restored.body["message"], "Chatbot restored successfully");
    assert_eq!(content(&restored.body["chatbot"]), content(&original), "revision 1's content, slug included");
    assert!(restored.header("etag").is_some_and(|tag| tag.starts_with("\"3-")));
    let replayed = app.restore(&id, "1", Some(&etag), Some("restore-once")).await;
    assert_eq!(replayed.status, StatusCode::OK);
    assert_eq!(replayed.header("idempotent-replayed").as_deref(), Some("true"));
    let list = app.revisions(&id, "").await;
    assert_eq!(numbered(&list)[0], (3, "restored".to_owned()), "no revision 4");
    assert_eq!(list.body["revisions"][0]["restored_from"], 1);
    assert_eq!(list.body["revisions"][0]["changed"], json!(["name", "settings.prompt", "slug"]));

    // Restoring what is already there makes no revision; a slug taken since is a 409.
    let again = app.restore(&id, "3", None, None).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(numbered(&app.revisions(&id, "").await).len(), 3);
    assert_eq!(app.patch(&id, &json!({"slug": "moved-away"})).await.status, StatusCode::OK);
    app.create_named("Squatter", json!({"slug": "restorable"})).await;
    let taken = app.restore(&id, "1", None, None).await;
    assert_eq!((taken.status, taken.code()), (StatusCode::CONFLICT, "slug_taken"));
}

async fn a_write_that_changes_nothing_makes_no_revision(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let id = app.create_named("Steady", json!({"description": "same"})).await;
    let before = app.get(&id).await;
    let same = app.patch(&id, &json!({"description": "same", "name": "Steady"})).await;
    assert_eq!(same.status, StatusCode::OK);
    assert_eq!(same.header("etag"), before.header("etag"), "nothing changed, so neither did the tag");
    assert_eq!(numbered(&app.revisions(&id, "").await), [(1, "created".to_owned())]);
}

async fn another_organisation_gets_404_on_every_history_route(engine: Engine) {
    let (app, other) = TestApp::spawn_with_second_org(engine).await;
    let id = app.create_named("Private history", json!({})).await;
    assert_eq!(app.patch(&id, &json!({"name": "Still private"})).await.status, StatusCode::OK);
    let version = app.revision(&id, "1").await.body["revision"]["version_id"].as_str().expect("an id").to_owned();
    let base = format!("/api/external/chatbot/{id}/revisions");
    for (method, path) in [
        (Method::GET, base.clone()),
        (Method::GET, format!("{base}/1")),
        (Method::GET, format!("{base}/{version}")),
        (Method::GET, format!("{base}/2/diff")),
        (Method::POST, format!("{base}/1/restore")),
    ] {
        let answer = app.call(method.clone(), &path, Some(&other), None).await;
        assert_eq!((answer.status, answer.code()), (StatusCode::NOT_FOUND, "not_found"), "{method} {path}");
    }
    assert_eq!(numbered(&app.revisions(&id, "").await).len(), 2, "nothing restored");
    // Another chatbot's version id names nothing under this one.
    let mine = app.create_named("Mine", json!({})).await;
    assert_eq!(app.revision(&mine, &version).await.status, StatusCode::NOT_FOUND);
}

async fn a_bad_change_note_or_cursor_is_a_400_naming_it(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let id = app.create_named("Noted", json!({})).await;
    let path = format!("/api/external/chatbot/{id}");
    let long = "n".repeat(501);
    for note in [long.as_str(), "   "] {
        let refused = app.noted_patch(&path, &json!({"name": "x"}), note, "r").await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST);
        assert_eq!(refused.violations().first().map(|(field, _)| field.as_str()), Some("X-Change-Note"));
    }
    let fits = app.noted_patch(&path, &json!({"name": "y"}), &"n".repeat(500), "r").await;
    assert_eq!(fits.status, StatusCode::OK);
    assert_eq!(numbered(&app.revisions(&id, "").await).len(), 2, "only the accepted write made a revision");
    for query in ["?cursor=abc", "?limit=0", "?limit=101", "?page=2"] {
        assert_eq!(app.revisions(&id, query).await.status, StatusCode::BAD_REQUEST, "{query}");
    }
}

async fn revisions_are_listed_read_diffed_and_rolled_back_over_grpc(engine: Engine) {
    let (app, other) = TestApp::spawn_with_second_org(engine).await;
    let mut grpc = app.grpc_client().await;
    let mut create = app.grpc_request(pb::CreateChatbotRequest {
        chatbot: Some(pb::Chatbot { name: Some("Remote".into()), ..Default::default() }),
        ..Default::default()
    });
    create.metadata_mut().insert("x-change-note", "first cut".parse().expect("ascii"));
    let created = grpc.create_chatbot(create).await.expect("created").into_inner();
    let update = pb::UpdateChatbotRequest {
        chatbot: Some(pb::Chatbot { id: created.id.clone(), description: Some("remote".into()), ..Default::default() }),
        ..Default::default()
    };
    let updated = grpc.update_chatbot(app.grpc_request(update)).await.expect("updated").into_inner();

    let list = pb::ListChatbotRevisionsRequest { id: created.id.clone(), page_size: 1, ..Default::default() };
    let page = grpc.list_chatbot_revisions(app.grpc_request(list)).await.expect("listed").into_inner();
    assert_eq!(page.revisions.iter().map(|r| r.revision).collect::<Vec<_>>(), [2]);
    assert_eq!(page.revisions[0].changed_paths, ["description"]);
    assert!(page.revisions[0].chatbot.is_none(), "a list carries no content");
    let rest = pb::ListChatbotRevisionsRequest {
        id: created.id.clone(),
        page_token: page.next_page_token.clone(),
        ..Default::default()
    };
    let first = grpc.list_chatbot_revisions(app.grpc_request(rest)).await.expect("listed").into_inner();
    assert_eq!(first.revisions[0].kind, i32::from(pb::ChangeType::Created));
    assert_eq!(first.revisions[0].note, "first cut");
    assert_eq!(first.revisions[0].actor.as_ref().map(|a| a.r#type.as_str()), Some("api_key"));

    let get = pb::GetChatbotRevisionRequest { id: created.id.clone(), revision_id: "1".into() };
    let one = grpc.get_chatbot_revision(app.grpc_request(get)).await.expect("read").into_inner();
    assert_eq!(one.chatbot.as_ref().map(|c| c.etag.as_str()), Some(created.etag.as_str()), "revision 1 is the create");
    let diff =
        pb::DiffChatbotRevisionsRequest { id: created.id.clone(), revision_id: "2".into(), ..Default::default() };
    let diff = grpc.diff_chatbot_revisions(app.grpc_request(diff)).await.expect("diffed").into_inner();
    let patch: Value = serde_json::from_str(&diff.patch).expect("JSON");
    assert!(patch.as_array().is_some_and(|ops| ops.iter().any(|op| op["path"] == "/description")), "{patch}");

    let stale = pb::RollbackChatbotRequest {
        id: created.id.clone(),
        revision_id: one.version_id.clone(),
        etag: created.etag.clone(),
        ..Default::default()
    };
    let refused = grpc.rollback_chatbot(app.grpc_request(stale)).await.expect_err("a stale etag");
    assert_eq!(refused.code(), Code::Aborted);
    let rollback = pb::RollbackChatbotRequest {
        id: created.id.clone(),
        revision_id: one.version_id.clone(),
        etag: updated.etag.clone(),
        request_id: "rollback-1".into(),
    };
    let restored = grpc.rollback_chatbot(app.grpc_request(rollback.clone())).await.expect("rolled back").into_inner();
    assert_eq!((restored.description.as_deref(), restored.etag.starts_with("3-")), (Some(""), true));
    let replayed = grpc.rollback_chatbot(app.grpc_request(rollback)).await.expect("replayed");
    assert_eq!(replayed.metadata().get("idempotent-replayed").map(|v| v.to_str().ok()), Some(Some("true")));

    let missing = pb::GetChatbotRevisionRequest { id: created.id.clone(), revision_id: "nope".into() };
    assert_eq!(grpc.get_chatbot_revision(app.grpc_request(missing)).await.expect_err("404").code(), Code::NotFound);
    let theirs = pb::ListChatbotRevisionsRequest { id: created.id.clone(), ..Default::default() };
    let hidden = grpc.list_chatbot_revisions(with_key(theirs, &other)).await.expect_err("not theirs");
    assert_eq!(hidden.code(), Code::NotFound);
}

async fn the_change_stream_carries_each_revisions_kind_version_and_changed_paths(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let mut grpc = app.grpc_client().await;
    let mut watch = grpc
        .watch_chatbots(app.grpc_request(pb::WatchChatbotsRequest::default()))
        .await
        .expect("watching")
        .into_inner();
    let id = app.create_named("Streamed", json!({})).await;
    assert_eq!(
        app.patch(&id, &json!({"description": "d", "settings": {"greeting": "Hi"}})).await.status,
        StatusCode::OK
    );
    assert_eq!(app.restore(&id, "1", None, None).await.status, StatusCode::OK);
    assert_eq!(app.delete(&id).await.status, StatusCode::OK);

    let mut changes = Vec::new();
    while changes.len() < 4 {
        let message = tokio::time::timeout(std::time::Duration::from_secs(10), watch.message())
            .await
            .expect("in time")
            .expect("a message")
            .expect("open");
        if let Some(pb::watch_chatbots_response::Event::Change(change)) = message.event {
            changes.push(change);
        }
    }
    let kinds: Vec<(i32, i64)> = changes.iter().map(|c| (c.r#type, c.revision)).collect();
    let expected = [
        (pb::ChangeType::Created, 1),
        (pb::ChangeType::Updated, 2),
        (pb::ChangeType::Restored, 3),
        (pb::ChangeType::Deleted, 4),
    ];
    assert_eq!(kinds, expected.map(|(kind, n)| (i32::from(kind), n)));
    assert_eq!(changes[1].changed_paths, ["description", "settings.greeting"]);
    assert_eq!(changes[2].changed_paths, ["description", "settings.greeting"]);
    assert!(changes.iter().all(|c| is_lower_uuid(&c.version_id)), "the delete is a revision too");
}

async fn retention_keeps_the_newest_revisions_and_frees_their_images(engine: Engine) {
    let storage = crate::helpers::Storage::new(engine);
    // Pruning runs every quarter of the shortest retention: a short change retention makes it often.
    let flags = ["--history-keep", "2", "--history-max-age", "0s", "--change-retention", "2s"];
    let app = TestApp::spawn_on(storage, crate::helpers::fresh_key(), &flags).await;
    let id = app.create_named("Forgetful", json!({})).await;
    let first_image =
        app.upload_png(&id, 1).await.body["chatbot"]["settings"]["avatar"].as_str().expect("a URL").to_owned();
    for n in 0..4 {
        assert_eq!(app.patch(&id, &json!({"description": format!("v{n}")})).await.status, StatusCode::OK);
    }
    let started = std::time::Instant::now();
    loop {
        let listed: Vec<u64> = numbered(&app.revisions(&id, "").await).iter().map(|(n, _)| *n).collect();
        if listed == [6, 5] {
            break;
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(30), "still kept: {listed:?}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(app.revision(&id, "2").await.status, StatusCode::NOT_FOUND);
    // The head still points at the image, so it stays; once no kept revision does, it goes.
    assert_eq!(app.http.get(&first_image).send().await.expect("answered").status(), StatusCode::OK);
    assert_eq!(app.upload_png(&id, 2).await.status, StatusCode::OK);
    for n in 0..2 {
        assert_eq!(app.patch(&id, &json!({"description": format!("w{n}")})).await.status, StatusCode::OK);
    }
    let started = std::time::Instant::now();
    while app.http.get(&first_image).send().await.expect("answered").status() != StatusCode::NOT_FOUND {
        assert!(started.elapsed() < std::time::Duration::from_secs(30), "the old image is still served");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

async fn acknowledged_restores_survive_kill_9(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let id = app.create_named("Durable history", json!({})).await;
    for n in 0..3 {
        assert_eq!(app.patch(&id, &json!({"description": format!("v{n}")})).await.status, StatusCode::OK);
    }
    let app_ref = &app;
    let id_ref = &id;
    let restores =
        (0..24).map(|n| async move { app_ref.restore(id_ref, &((n % 4) + 1).to_string(), None, None).await });
    let acknowledged: Vec<u64> = join_all(restores)
        .await
        .iter()
        .filter(|a| a.status == StatusCode::OK)
        .filter_map(|a| a.header("etag"))
        .filter_map(|tag| tag.trim_matches('"').split('-').next().and_then(|n| n.parse().ok()))
        .collect();
    assert!(!acknowledged.is_empty());
    let key = app.key.clone();
    let storage = app.kill9().await;

    let app = TestApp::spawn_on(storage, key, &[]).await;
    let kept: Vec<(u64, String)> = numbered(&app.revisions(&id, "?limit=100").await);
    for number in acknowledged {
        let kind = kept.iter().find(|(n, _)| *n == number).map(|(_, kind)| kind.as_str());
        assert!(matches!(kind, Some("restored" | "updated")), "revision {number} was lost: {kept:?}");
    }
    let numbers: Vec<u64> = kept.iter().map(|(n, _)| *n).collect();
    assert!(numbers.windows(2).all(|w| w[0] == w[1] + 1), "no gaps: {numbers:?}");
}

impl TestApp {
    /// `POST` to `path` (publish, unpublish) with an optional `If-Match`.
    async fn post_action(&self, path: &str, if_match: Option<&str>) -> Answer {
        let mut request = self.http.post(format!("{}{path}", self.rest)).header("x-api-key", &self.key);
        if let Some(tag) = if_match {
            request = request.header("if-match", tag);
        }
        answer(request.send().await.expect("answered")).await
    }

    /// The public widget's answer for `slug` (no key).
    async fn public(&self, slug: &str) -> Answer {
        self.call(Method::GET, &format!("/api/public/chatbots/{slug}"), None, None).await
    }
}

async fn publish_pins_the_public_widget_while_the_head_changes_and_unpublish_returns_it(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let id = app.create_named("Live one", json!({"slug": "live-one", "is_public": true})).await;
    assert_eq!(app.details(&id).await["version_id"], Value::Null, "nothing published: the head is live");
    let version = app.revision(&id, "1").await.body["revision"]["version_id"].clone();

    let stale = app.post_action(&format!("/api/external/chatbot/{id}/revisions/1/publish"), Some("\"9-9\"")).await;
    assert_eq!(stale.status, StatusCode::PRECONDITION_FAILED);
    let published = app.post_action(&format!("/api/external/chatbot/{id}/revisions/1/publish"), None).await;
    assert_eq!(published.status, StatusCode::OK, "{:?}", published.body);
    assert_eq!(published.body["message"], "Chatbot published successfully");
    assert_eq!(published.body["chatbot"]["version_id"], version);

    // Edits change the head only: Details shows them, the widget keeps the published content.
    assert_eq!(
        app.patch(&id, &json!({"name": "Draft two", "settings": {"greeting": "New hello"}})).await.status,
        StatusCode::OK
    );
    assert_eq!(app.upload_png(&id, 50).await.status, StatusCode::OK);
    let head = app.details(&id).await;
    assert_eq!((head["name"].as_str(), &head["version_id"]), (Some("Draft two"), &version));
    let public = app.public("live-one").await;
    assert_eq!(public.status, StatusCode::OK);
    assert_eq!(public.body["chatbot"]["name"], "Live one");
    assert_eq!(public.body["chatbot"]["avatar"], Value::Null, "the published content has no avatar yet");
    let list = app.revisions(&id, "").await;
    assert_eq!(
        numbered(&list).iter().map(|(n, k)| (*n, k.as_str())).collect::<Vec<_>>(),
        [(4, "updated"), (3, "updated"), (2, "published"), (1, "created")]
    );
    assert_eq!(list.body["revisions"][2]["changed"], json!(["version_id"]));

    // Publishing the head shows the avatar; unpublishing serves the head as it changes.
    assert_eq!(
        app.post_action(&format!("/api/external/chatbot/{id}/revisions/4/publish"), None).await.status,
        StatusCode::OK
    );
    let public = app.public("live-one").await;
    assert_eq!(public.body["chatbot"]["name"], "Draft two");
    let avatar = public.body["chatbot"]["avatar"].as_str().expect("an avatar URL").to_owned();
    assert_eq!(app.http.get(&avatar).send().await.expect("answered").status(), StatusCode::OK);
    let unpublished = app.post_action(&format!("/api/external/chatbot/{id}/unpublish"), None).await;
    assert_eq!((unpublished.status, &unpublished.body["chatbot"]["version_id"]), (StatusCode::OK, &Value::Null));
    assert_eq!(unpublished.body["message"], "Chatbot unpublished successfully");
    assert_eq!(app.patch(&id, &json!({"name": "Draft three"})).await.status, StatusCode::OK);
    assert_eq!(app.public("live-one").await.body["chatbot"]["name"], "Draft three");
    // A private published revision hides the widget though the head is public.
    assert_eq!(app.patch(&id, &json!({"is_public": false})).await.status, StatusCode::OK);
    assert_eq!(
        app.post_action(&format!("/api/external/chatbot/{id}/revisions/8/publish"), None).await.status,
        StatusCode::OK
    );
    assert_eq!(app.patch(&id, &json!({"is_public": true})).await.status, StatusCode::OK);
    assert_eq!(app.public("live-one").await.status, StatusCode::NOT_FOUND);
    // A revision that is not there is a 404; so is another organisation's chatbot.
    assert_eq!(
        app.post_action(&format!("/api/external/chatbot/{id}/revisions/99/publish"), None).await.status,
        StatusCode::NOT_FOUND
    );
}

async fn a_published_revision_is_never_pruned(engine: Engine) {
    let storage = crate::helpers::Storage::new(engine);
    let flags = ["--history-keep", "1", "--history-max-age", "0s", "--change-retention", "2s"];
    let app = TestApp::spawn_on(storage, crate::helpers::fresh_key(), &flags).await;
    let id = app.create_named("Pinned", json!({"slug": "pinned", "is_public": true})).await;
    assert_eq!(app.upload_png(&id, 7).await.status, StatusCode::OK);
    assert_eq!(
        app.post_action(&format!("/api/external/chatbot/{id}/revisions/2/publish"), None).await.status,
        StatusCode::OK
    );
    for n in 0..3 {
        assert_eq!(app.patch(&id, &json!({"description": format!("v{n}")})).await.status, StatusCode::OK);
    }
    let started = std::time::Instant::now();
    loop {
        let listed: Vec<u64> = numbered(&app.revisions(&id, "").await).iter().map(|(n, _)| *n).collect();
        if listed == [6, 2] {
            break;
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(30), "kept: {listed:?}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let public = app.public("pinned").await;
    assert_eq!(public.body["chatbot"]["name"], "Pinned");
    let avatar = public.body["chatbot"]["avatar"].as_str().expect("the published avatar").to_owned();
    assert_eq!(app.http.get(&avatar).send().await.expect("answered").status(), StatusCode::OK);
}

async fn publishing_over_grpc_sets_the_version_id(engine: Engine) {
    let (app, other) = TestApp::spawn_with_second_org(engine).await;
    let mut grpc = app.grpc_client().await;
    let id = app.create_named("Remote live", json!({})).await;
    let publish = pb::PublishChatbotRevisionRequest { id: id.clone(), revision_id: "1".into(), ..Default::default() };
    let theirs = grpc.publish_chatbot_revision(with_key(publish.clone(), &other)).await.expect_err("not theirs");
    assert_eq!(theirs.code(), Code::NotFound);
    let published = grpc.publish_chatbot_revision(app.grpc_request(publish)).await.expect("published").into_inner();
    let version = app.revision(&id, "1").await.body["revision"]["version_id"].as_str().expect("an id").to_owned();
    assert_eq!(published.version_id, version);
    let stale = pb::UnpublishChatbotRequest { id: id.clone(), etag: "1-0".into(), ..Default::default() };
    assert_eq!(grpc.unpublish_chatbot(app.grpc_request(stale)).await.expect_err("stale").code(), Code::Aborted);
    let unpublish = pb::UnpublishChatbotRequest { id: id.clone(), ..Default::default() };
    let unpublished = grpc.unpublish_chatbot(app.grpc_request(unpublish)).await.expect("unpublished").into_inner();
    assert_eq!(unpublished.version_id, "");
    let kinds: Vec<String> = numbered(&app.revisions(&id, "").await).into_iter().map(|(_, kind)| kind).collect();
    assert_eq!(kinds, ["unpublished", "published", "created"]);
}

impl TestApp {
    async fn undelete(&self, id: &str, body: Option<&Value>) -> Answer {
        self.call(Method::POST, &format!("/api/external/chatbot/{id}/undelete"), Some(&self.key), body).await
    }

    async fn purge(&self, id: &str) -> Answer {
        self.call(Method::POST, &format!("/api/external/chatbot/{id}/purge"), Some(&self.key), None).await
    }
}

/// The ids of a list answer, with whether each is marked deleted.
fn listed(list: &Answer) -> Vec<(String, bool)> {
    assert_eq!(list.status, StatusCode::OK, "{:?}", list.body);
    list.body["chatbots"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|c| (c["id"].as_str().expect("an id").to_owned(), c["deleted"] == true))
        .collect()
}

async fn a_deleted_chatbot_is_gone_everywhere_but_its_history_then_undeleted(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let kept = app.create_named("Kept", json!({})).await;
    let id = app.create_named("Binned", json!({"slug": "binned", "is_public": true})).await;
    let avatar = app.upload_png(&id, 3).await.body["chatbot"]["settings"]["avatar"].as_str().expect("a URL").to_owned();
    let before = app.details(&id).await;
    let deleted = app.delete(&id).await;
    assert_eq!((deleted.status, &deleted.body), (StatusCode::OK, &json!({"message": "Chatbot deleted successfully"})));

    // A 404 on every existing route and on the public ones; absent from lists.
    assert_eq!(app.get(&id).await.status, StatusCode::NOT_FOUND);
    assert_eq!(app.patch(&id, &json!({"name": "x"})).await.status, StatusCode::NOT_FOUND);
    assert_eq!(app.delete(&id).await.status, StatusCode::NOT_FOUND);
    assert_eq!(app.public("binned").await.status, StatusCode::NOT_FOUND);
    assert_eq!(app.http.get(&avatar).send().await.expect("answered").status(), StatusCode::NOT_FOUND);
    assert_eq!(listed(&app.list("").await), [(kept.clone(), false)]);
    assert_eq!(listed(&app.list("?show_deleted=false").await), [(kept.clone(), false)]);

    // Listed with show_deleted, marked, with its times; the live ones unchanged.
    let with_deleted = app.list("?show_deleted=true").await;
    assert_eq!(listed(&with_deleted), [(id.clone(), true), (kept.clone(), false)]);
    let item = &with_deleted.body["chatbots"][0];
    assert!(crate::helpers::is_contract_timestamp(item["delete_time"].as_str().expect("a delete time")));
    assert!(crate::helpers::is_contract_timestamp(item["purge_time"].as_str().expect("a purge time")));
    assert!(item["purge_time"].as_str() > item["delete_time"].as_str());
    assert_eq!(item["name"], "Binned");
    let live = &with_deleted.body["chatbots"][1];
    assert!(live.get("deleted").is_none() && live.get("delete_time").is_none(), "a live item is as always");
    let first = app.list("?show_deleted=true&limit=1").await;
    assert_eq!(listed(&first), [(id.clone(), true)]);
    let cursor = first.body["next_cursor"].as_str().expect("more").to_owned();
    assert_eq!(
        listed(&app.list(&format!("?show_deleted=true&limit=1&cursor={cursor}")).await),
        [(kept.clone(), false)]
    );

    // Its history stays readable, the delete a revision of its own.
    let kinds: Vec<String> = numbered(&app.revisions(&id, "").await).into_iter().map(|(_, kind)| kind).collect();
    assert_eq!(kinds, ["deleted", "updated", "created"]);

    // Undelete: its last content as a new revision, its image served again.
    let back = app.undelete(&id, None).await;
    assert_eq!(back.status, StatusCode::OK, "{:?}", back.body);
    assert_eq!(back.body["message"], "Chatbot undeleted successfully");
    let mut expected = content(&before);
    let mut got = content(&back.body["chatbot"]);
    expected.as_object_mut().map(|o| o.remove("version_id"));
    got.as_object_mut().map(|o| o.remove("version_id"));
    assert_eq!(got, expected);
    assert!(back.header("etag").is_some_and(|tag| tag.starts_with("\"4-")));
    assert_eq!(app.get(&id).await.status, StatusCode::OK);
    assert_eq!(app.public("binned").await.status, StatusCode::OK);
    assert_eq!(app.http.get(&avatar).send().await.expect("answered").status(), StatusCode::OK);
    let again = app.undelete(&id, None).await;
    assert_eq!((again.status, again.code()), (StatusCode::CONFLICT, "not_deleted"));
    assert_eq!(numbered(&app.revisions(&id, "").await)[0], (4, "undeleted".to_owned()));
}

async fn a_deleted_slug_is_reserved_from_others_and_free_for_its_own(engine: Engine) {
    let (app, other) = TestApp::spawn_with_second_org(engine).await;
    let id = app.create_named("Reserved", json!({"slug": "reserved-slug"})).await;
    assert_eq!(app.delete(&id).await.status, StatusCode::OK);
    let theirs = app
        .call(
            Method::POST,
            "/api/external/chatbots",
            Some(&other),
            Some(&json!({"name": "x", "slug": "reserved-slug"})),
        )
        .await;
    assert_eq!((theirs.status, theirs.code()), (StatusCode::CONFLICT, "slug_taken"), "no one else's bot in its embeds");
    let derived =
        app.call(Method::POST, "/api/external/chatbots", Some(&other), Some(&json!({"name": "Reserved slug"}))).await;
    assert_eq!(derived.status, StatusCode::CREATED);
    assert_ne!(derived.body["chatbot"]["slug"], "reserved-slug");
    let mine = app.create_named("Mine now", json!({"slug": "reserved-slug"})).await;

    // Its undelete needs a new slug now: a 409 that says so, then a body that gives one.
    let refused = app.undelete(&id, None).await;
    assert_eq!((refused.status, refused.code()), (StatusCode::CONFLICT, "slug_taken"));
    let bad = app.undelete(&id, Some(&json!({"slug": "Not A Slug", "extra": 1}))).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let mut fields: Vec<String> = bad.violations().into_iter().map(|(field, _)| field).collect();
    fields.sort();
    assert_eq!(fields, ["extra", "slug"]);
    let back = app.undelete(&id, Some(&json!({"slug": "reserved-again"}))).await;
    assert_eq!((back.status, back.body["chatbot"]["slug"].as_str()), (StatusCode::OK, Some("reserved-again")));
    assert_eq!(app.get(&mine).await.body["chatbot"]["slug"], "reserved-slug");

    // Another organisation: a 404 on undelete and purge, and nothing in its deleted list.
    assert_eq!(app.delete(&id).await.status, StatusCode::OK);
    for path in ["undelete", "purge"] {
        let answer = app.call(Method::POST, &format!("/api/external/chatbot/{id}/{path}"), Some(&other), None).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{path}");
    }
    let their_list = app.call(Method::GET, "/api/external/chatbots?show_deleted=true", Some(&other), None).await;
    assert!(listed(&their_list).iter().all(|(listed, _)| listed != &id));
    let their_history =
        app.call(Method::GET, &format!("/api/external/chatbot/{id}/revisions"), Some(&other), None).await;
    assert_eq!(their_history.status, StatusCode::NOT_FOUND);
}

async fn a_purge_removes_a_deleted_chatbot_and_its_history_at_once(engine: Engine) {
    let (app, other) = TestApp::spawn_with_second_org(engine).await;
    let id = app.create_named("Purged", json!({"slug": "purged-slug"})).await;
    let live = app.purge(&id).await;
    assert_eq!((live.status, live.code()), (StatusCode::CONFLICT, "not_deleted"));
    assert_eq!(app.delete(&id).await.status, StatusCode::OK);
    let purged = app.purge(&id).await;
    assert_eq!((purged.status, &purged.body), (StatusCode::OK, &json!({"message": "Chatbot purged successfully"})));
    assert_eq!(app.revisions(&id, "").await.status, StatusCode::NOT_FOUND);
    assert_eq!(app.undelete(&id, None).await.status, StatusCode::NOT_FOUND);
    assert_eq!(app.purge(&id).await.status, StatusCode::NOT_FOUND);
    assert!(listed(&app.list("?show_deleted=true").await).is_empty());
    let theirs = app
        .call(Method::POST, "/api/external/chatbots", Some(&other), Some(&json!({"name": "x", "slug": "purged-slug"})))
        .await;
    assert_eq!(theirs.status, StatusCode::CREATED, "a purged slug is free for all");
}

async fn the_undelete_window_expires_by_itself_and_zero_deletes_at_once(engine: Engine) {
    let storage = crate::helpers::Storage::new(engine);
    let flags = ["--undelete-window", "1s", "--change-retention", "2s"];
    let app = TestApp::spawn_on(storage, crate::helpers::fresh_key(), &flags).await;
    let id = app.create_named("Brief", json!({})).await;
    assert_eq!(app.delete(&id).await.status, StatusCode::OK);
    assert_eq!(listed(&app.list("?show_deleted=true").await).len(), 1);
    let started = std::time::Instant::now();
    while app.revisions(&id, "").await.status != StatusCode::NOT_FOUND {
        assert!(started.elapsed() < std::time::Duration::from_secs(30), "not purged yet");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(listed(&app.list("?show_deleted=true").await).is_empty());

    let storage = crate::helpers::Storage::new(engine);
    let app = TestApp::spawn_on(storage, crate::helpers::fresh_key(), &["--undelete-window", "0s"]).await;
    let id = app.create_named("Gone at once", json!({})).await;
    assert_eq!(app.delete(&id).await.status, StatusCode::OK);
    assert_eq!(app.revisions(&id, "").await.status, StatusCode::NOT_FOUND, "no history kept");
    assert_eq!(app.undelete(&id, None).await.status, StatusCode::NOT_FOUND);
    assert!(listed(&app.list("?show_deleted=true").await).is_empty());
}

async fn soft_delete_undelete_and_purge_over_grpc(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let mut grpc = app.grpc_client().await;
    let id = app.create_named("Remote bin", json!({"slug": "remote-bin"})).await;
    let delete = pb::DeleteChatbotRequest { id: id.clone(), ..Default::default() };
    grpc.delete_chatbot(app.grpc_request(delete)).await.expect("deleted");
    let get = pb::GetChatbotRequest { id: id.clone() };
    assert_eq!(grpc.get_chatbot(app.grpc_request(get)).await.expect_err("gone").code(), Code::NotFound);
    let list = pb::ListChatbotsRequest { show_deleted: true, ..Default::default() };
    let page = grpc.list_chatbots(app.grpc_request(list)).await.expect("listed").into_inner();
    let item = page.chatbots.iter().find(|c| c.id == id).expect("listed as deleted");
    assert!(item.delete_time.is_some() && item.purge_time.is_some());
    let plain = grpc.list_chatbots(app.grpc_request(pb::ListChatbotsRequest::default())).await.expect("listed");
    assert!(plain.into_inner().chatbots.iter().all(|c| c.id != id && c.delete_time.is_none()));

    let bad = pb::UndeleteChatbotRequest { id: id.clone(), slug: "Bad Slug".into(), ..Default::default() };
    let refused = grpc.undelete_chatbot(app.grpc_request(bad)).await.expect_err("a bad slug");
    assert_eq!(
        (refused.code(), crate::helpers::field_violations(&refused)[0].0.as_str()),
        (Code::InvalidArgument, "slug")
    );
    let undelete = pb::UndeleteChatbotRequest { id: id.clone(), ..Default::default() };
    let back = grpc.undelete_chatbot(app.grpc_request(undelete.clone())).await.expect("undeleted").into_inner();
    assert!(back.etag.starts_with("3-"));
    let again = grpc.undelete_chatbot(app.grpc_request(undelete)).await.expect_err("not deleted");
    assert_eq!(again.code(), Code::FailedPrecondition);
    let purge = pb::PurgeChatbotRequest { id: id.clone() };
    assert_eq!(
        grpc.purge_chatbot(app.grpc_request(purge.clone())).await.expect_err("live").code(),
        Code::FailedPrecondition
    );
    grpc.delete_chatbot(app.grpc_request(pb::DeleteChatbotRequest { id: id.clone(), ..Default::default() }))
        .await
        .expect("deleted");
    grpc.purge_chatbot(app.grpc_request(purge)).await.expect("purged");
    assert_eq!(app.revisions(&id, "").await.status, StatusCode::NOT_FOUND);
}
