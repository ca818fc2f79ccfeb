//! `chatbotd export` and `chatbotd import`: a store moves to another (a sled store to PostgreSQL)
//! with every organisation, key and chatbot intact, and bad input is reported by line.

use std::process::Stdio;

use reqwest::StatusCode;
use serde_json::json;
use tokio::io::AsyncWriteExt as _;
use tokio::process::Command;

use crate::helpers::{Engine, PROCESS_TIMEOUT, Storage, TestApp, binary, contract_example, on_every_engine};

on_every_engine!(
    a_sled_store_exported_and_imported_serves_the_same_chatbots_and_keys,
    bad_import_lines_are_reported_by_number
);

/// Runs `chatbotd import` on `target` with `input` on stdin; returns whether it succeeded and its stderr.
pub(crate) async fn import(target: &Storage, input: &[u8]) -> (bool, String) {
    let mut child = Command::new(binary())
        .arg("import")
        .args(target.args())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("chatbotd import runs");
    let mut stdin = child.stdin.take().expect("piped stdin");
    stdin.write_all(input).await.expect("the export is fed");
    drop(stdin);
    let output = tokio::time::timeout(PROCESS_TIMEOUT, child.wait_with_output())
        .await
        .expect("import finishes in time")
        .expect("import runs");
    (output.status.success(), String::from_utf8_lossy(&output.stderr).into_owned())
}

/// The revisions of `id` as `app` lists them.
async fn history(app: &TestApp, id: &str) -> serde_json::Value {
    let path = format!("/api/external/chatbot/{id}/revisions");
    app.call(reqwest::Method::GET, &path, Some(&app.key), None).await.body
}

/// Public URLs independent of the port a server happens to get, so that answers compare across servers.
const PUBLIC_URL: &[&str] = &["--public-url", "https://bots.example.com"];

async fn a_sled_store_exported_and_imported_serves_the_same_chatbots_and_keys(engine: Engine) {
    let source = TestApp::spawn_on(Storage::new(Engine::Sled), "migration-key-0123456789".into(), PUBLIC_URL).await;
    let mut ids = vec![source.create_named("Plain", json!({})).await];
    ids.push(source.post(&contract_example()).await.body["chatbot"]["id"].as_str().expect("an id").to_owned());
    let keyed =
        source.create_named("Keyed", json!({"openai_api_key": "sk-proj-secretvalue1234", "is_public": true})).await;
    assert_eq!(source.patch(&keyed, &json!({"active": false})).await.status, StatusCode::OK);
    let mut gif = Vec::new();
    image::RgbImage::new(3, 3).write_to(&mut std::io::Cursor::new(&mut gif), image::ImageFormat::Gif).expect("encodes");
    let form = reqwest::multipart::Form::new().part("avatar", reqwest::multipart::Part::bytes(gif.clone()));
    let upload = source
        .http
        .patch(format!("{}/api/external/chatbot/{keyed}/update-avatar", source.rest))
        .header("x-api-key", &source.key)
        .multipart(form)
        .send()
        .await
        .expect("answered");
    assert_eq!(upload.status(), StatusCode::OK);
    ids.push(keyed);
    // History, notes and a deleted chatbot travel too.
    let noted = source
        .http
        .patch(format!("{}/api/external/chatbot/{}", source.rest, ids[0]))
        .header("x-api-key", &source.key)
        .header("x-change-note", "before the move")
        .json(&json!({"description": "moved with its history"}))
        .send()
        .await
        .expect("answered");
    assert_eq!(noted.status(), StatusCode::OK);
    let binned = source.create_named("Binned", json!({"slug": "binned-on-the-way"})).await;
    assert_eq!(source.delete(&binned).await.status, StatusCode::OK);
    let histories: Vec<_> = futures::future::join_all(ids.iter().chain([&binned]).map(|id| history(&source, id))).await;
    let before: Vec<_> = futures::future::join_all(ids.iter().map(|id| source.get(id))).await;
    let listed = source.list("").await.body;
    let listed_deleted = source.list("?show_deleted=true").await.body;
    let (key, storage) = (source.key.clone(), source.storage.clone());
    assert!(source.terminate().await.success());

    let export = Command::new(binary()).arg("export").args(storage.args()).output();
    let export = tokio::time::timeout(PROCESS_TIMEOUT, export).await.expect("export finishes").expect("export runs");
    assert!(export.status.success(), "{}", String::from_utf8_lossy(&export.stderr));
    let lines = String::from_utf8(export.stdout.clone()).expect("UTF-8");
    assert_eq!(lines.lines().filter(|l| l.contains(r#""kind":"chatbot""#)).count(), 3);
    assert_eq!(lines.lines().filter(|l| l.contains(r#""kind":"avatar""#)).count(), 1);
    assert_eq!(lines.lines().filter(|l| l.starts_with(r#"{"kind":"deleted""#)).count(), 1);
    assert!(lines.lines().filter(|l| l.starts_with(r#"{"kind":"revision""#)).count() >= 7);
    assert!(!lines.contains(&key), "keys travel as hashes only");

    let target = Storage::new(engine);
    let (ok, stderr) = import(&target, &export.stdout).await;
    assert!(ok, "{stderr}");
    let (again, stderr) = import(&target, &export.stdout).await;
    assert!(!again && stderr.contains("already holds"), "a non-empty store is refused: {stderr}");

    // The source's key works on the target because its hash was imported: the target is started with
    // another key of its own, so nothing but the import can have made the source's key valid.
    let app = TestApp::spawn_on(target, "migration-target-key-0123456789".into(), PUBLIC_URL).await;
    let with_imported_key =
        app.call(reqwest::Method::GET, &format!("/api/external/chatbot/{}", ids[0]), Some(&key), None).await;
    assert_eq!(with_imported_key.status, StatusCode::OK, "the imported key hash lets its key in");
    let avatar = app.get(&ids[2]).await.body["chatbot"]["settings"]["avatar"].as_str().expect("an avatar").to_owned();
    let served = app.http.get(avatar.replace("https://bots.example.com", &app.rest)).send().await.expect("answered");
    assert_eq!(served.status(), StatusCode::OK);
    assert_eq!(served.bytes().await.expect("the image").to_vec(), gif, "the image came along");
    for (id, before) in ids.iter().zip(before) {
        let after = app.get(id).await;
        assert_eq!((after.status, &after.body), (StatusCode::OK, &before.body), "{id}");
        assert_eq!(after.header("etag"), before.header("etag"), "{id} keeps its etag");
    }
    assert_eq!(app.list("").await.body, listed);
    assert_eq!(app.list("?show_deleted=true").await.body, listed_deleted, "the deleted chatbot came along");
    let moved: Vec<_> = futures::future::join_all(ids.iter().chain([&binned]).map(|id| history(&app, id))).await;
    assert_eq!(moved, histories, "every revision, actor and note came along");
    assert_eq!(histories[0]["revisions"][0]["note"], "before the move");
    let undeleted = app
        .call(reqwest::Method::POST, &format!("/api/external/chatbot/{binned}/undelete"), Some(&app.key), None)
        .await;
    assert_eq!(undeleted.status, StatusCode::OK, "{:?}", undeleted.body);
    let taken = app.post(&json!({"name": "x", "slug": "api-docs-demo-chatbot"})).await;
    assert_eq!(taken.status, StatusCode::CONFLICT, "the slug index came along");
}

async fn bad_import_lines_are_reported_by_number(engine: Engine) {
    let source = TestApp::spawn(Engine::Sled).await;
    source.create_named("Good", json!({})).await;
    let storage = source.storage.clone();
    assert!(source.terminate().await.success());
    let export = Command::new(binary()).arg("export").args(storage.args()).output().await.expect("export runs");
    let mut input = export.stdout.clone();
    input.extend_from_slice(b"not json\n");
    input.extend_from_slice(
        br#"{"kind":"api_key","hash":"zz","organisation_id":"00000000-0000-0000-0000-000000000000"}"#,
    );
    input.push(b'\n');
    let good_lines = export.stdout.iter().filter(|b| **b == b'\n').count();

    let (ok, stderr) = import(&Storage::new(engine), &input).await;
    assert!(!ok, "bad lines fail the import");
    assert!(stderr.contains(&format!("line {}: not a record", good_lines + 1)), "{stderr}");
    assert!(stderr.contains(&format!("line {}:", good_lines + 2)), "{stderr}");
}
