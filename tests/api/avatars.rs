//! The chatbot's avatar: uploaded as multipart (REST) or bytes (gRPC), its type decided by its content,
//! bounded in size and sides, stored with the chatbot, served publicly with its true type, replaced
//! and deleted with the chatbot.

use grpc_server::pb;
use reqwest::multipart::{Form, Part};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tonic::Code;
use tonic_types::StatusExt;

use crate::helpers::{Answer, Engine, TestApp, answer, on_every_engine, with_key};

on_every_engine!(
    an_avatar_is_stored_and_served_with_the_type_of_its_content,
    every_supported_format_is_accepted_as_what_it_is,
    what_is_not_an_image_is_415_whatever_it_claims,
    size_and_side_limits_hold_at_the_limit_and_fail_one_past,
    a_replaced_avatar_is_kept_for_its_revisions_and_removed_with_the_chatbot,
    another_organisation_or_a_malformed_upload_changes_nothing,
    the_avatar_is_uploaded_over_grpc_with_the_same_rules,
);

/// An image of `width` x `height` in `format`, encoded by the image crate.
fn image(width: u32, height: u32, format: image::ImageFormat) -> Vec<u8> {
    let mut bytes = Vec::new();
    let pixels = image::RgbImage::from_fn(width, height, |x, y| image::Rgb([x as u8, y as u8, 128]));
    pixels.write_to(&mut std::io::Cursor::new(&mut bytes), format).expect("encodes");
    bytes
}

fn png(width: u32, height: u32) -> Vec<u8> {
    image(width, height, image::ImageFormat::Png)
}

impl TestApp {
    /// Uploads `bytes` as the file part `avatar`, declared as `declared` and named `file_name`.
    async fn upload(&self, id: &str, key: &str, bytes: Vec<u8>, declared: &str, file_name: &str) -> Answer {
        let part = Part::bytes(bytes).file_name(file_name.to_owned()).mime_str(declared).expect("a media type");
        self.upload_form(id, key, Form::new().part("avatar", part)).await
    }

    async fn upload_form(&self, id: &str, key: &str, form: Form) -> Answer {
        let request = self
            .http
            .patch(format!("{}/api/external/chatbot/{id}/update-avatar", self.rest))
            .header("x-api-key", key)
            .multipart(form);
        answer(request.send().await.expect("answered")).await
    }

    /// Fetches a public URL without a key: status, headers and raw bytes.
    async fn fetch(&self, url: &str) -> (StatusCode, reqwest::header::HeaderMap, Vec<u8>) {
        let response = self.http.get(url).send().await.expect("answered");
        let (status, headers) = (response.status(), response.headers().clone());
        (status, headers, response.bytes().await.expect("a body").to_vec())
    }
}

fn header<'a>(headers: &'a reqwest::header::HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

async fn an_avatar_is_stored_and_served_with_the_type_of_its_content(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let id = app.create_named("Face", json!({"slug": "face-bot", "is_public": true})).await;
    let created = app.get(&id).await;
    assert_eq!(created.body["chatbot"]["settings"].get("avatar"), None, "no avatar, no field: the contract's shape");

    let bytes = png(64, 48);
    // A PNG sent as a JPEG is stored as what it is.
    let answer = app.upload(&id, &app.key, bytes.clone(), "image/jpeg", "face.jpg").await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    assert_eq!(answer.body["message"], "Avatar updated successfully");
    let url = answer.body["chatbot"]["settings"]["avatar"].as_str().expect("settings.avatar").to_owned();
    assert!(url.starts_with(&format!("{}/api/public/avatars/", app.rest)) && url.ends_with(".png"), "{url}");
    assert_eq!(app.get(&id).await.body["chatbot"]["settings"]["avatar"], url.as_str());
    assert_eq!(answer.header("etag"), app.get(&id).await.header("etag"));

    let (status, headers, served) = app.fetch(&url).await;
    assert_eq!(status, StatusCode::OK, "no key needed");
    assert_eq!(served, bytes);
    assert_eq!(header(&headers, "content-type"), Some("image/png"));
    assert_eq!(header(&headers, "x-content-type-options"), Some("nosniff"));
    let cache = header(&headers, "cache-control").expect("Cache-Control");
    assert!(cache.contains("immutable") && cache.contains("max-age=31536000"), "{cache}");
    let etag = header(&headers, "etag").expect("an ETag").to_owned();
    assert!(etag.starts_with('"') && etag.len() > 40, "a strong tag of the content: {etag}");
    let again = app.http.get(&url).header("if-none-match", &etag).send().await.expect("answered");
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    let cross = app.http.get(&url).header("origin", "https://customer.example").send().await.expect("answered");
    assert_eq!(header(cross.headers(), "access-control-allow-origin"), Some("*"));

    // The public widget shows it too; any other spelling of the URL is a 404.
    assert_eq!(
        app.call(Method::GET, "/api/public/chatbots/face-bot", None, None).await.body["chatbot"]["avatar"],
        url.as_str()
    );
    for wrong in [url.replace(".png", ".gif"), url.to_uppercase().replace("HTTP://", "http://"), format!("{url}x")] {
        assert_eq!(app.fetch(&wrong).await.0, StatusCode::NOT_FOUND, "{wrong}");
    }
}

async fn every_supported_format_is_accepted_as_what_it_is(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let id = app.create_named("Formats", json!({})).await;
    for (format, extension, content_type) in [
        (image::ImageFormat::Jpeg, "jpg", "image/jpeg"),
        (image::ImageFormat::WebP, "webp", "image/webp"),
        (image::ImageFormat::Gif, "gif", "image/gif"),
        (image::ImageFormat::Png, "png", "image/png"),
    ] {
        let bytes = image(16, 16, format);
        let answer = app.upload(&id, &app.key, bytes.clone(), "application/octet-stream", "upload").await;
        assert_eq!(answer.status, StatusCode::OK, "{format:?}: {:?}", answer.body);
        let url = answer.body["chatbot"]["settings"]["avatar"].as_str().expect("a URL").to_owned();
        assert!(url.ends_with(&format!(".{extension}")), "{url}");
        let (status, headers, served) = app.fetch(&url).await;
        assert_eq!((status, header(&headers, "content-type")), (StatusCode::OK, Some(content_type)));
        assert_eq!(served, bytes);
    }
}

async fn what_is_not_an_image_is_415_whatever_it_claims(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let id = app.create_named("Strict", json!({})).await;
    let before = app.get(&id).await.body;
    let mut truncated = png(32, 32);
    truncated.truncate(20);
    let bmp = image(8, 8, image::ImageFormat::Bmp);
    for (bytes, declared, name) in [
        (b"<html><script>alert(1)</script></html>".to_vec(), "image/png", "avatar.png"),
        (truncated, "image/png", "cut.png"),
        (b"just some text".to_vec(), "text/plain", "notes.txt"),
        (bmp, "image/bmp", "old.bmp"),
        (Vec::new(), "image/png", "empty.png"),
    ] {
        let answer = app.upload(&id, &app.key, bytes, declared, name).await;
        assert_eq!(
            (answer.status, answer.code()),
            (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
            "{name}"
        );
    }
    assert_eq!(app.get(&id).await.body, before, "nothing was stored");
}

async fn size_and_side_limits_hold_at_the_limit_and_fail_one_past(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let id = app.create_named("Limits", json!({})).await;
    // A valid PNG padded with trailing bytes to exactly the limit, then one byte more.
    let padded = |len: usize| {
        let mut bytes = png(8, 8);
        bytes.resize(len, 0);
        bytes
    };
    let at_limit = app.upload(&id, &app.key, padded(1024 * 1024), "image/png", "big.png").await;
    assert_eq!(at_limit.status, StatusCode::OK, "{:?}", at_limit.body);
    let stored = app.get(&id).await.body;
    let past = app.upload(&id, &app.key, padded(1024 * 1024 + 1), "image/png", "bigger.png").await;
    assert_eq!((past.status, past.code()), (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"));
    // A body declared far past the limit is refused from its head, before any of it is read.
    let far_past = declared_upload(&app, &id, 3 * 1024 * 1024).await;
    assert!(far_past.starts_with("HTTP/1.1 413"), "{far_past}");
    assert!(far_past.contains("payload_too_large"), "{far_past}");

    assert_eq!(app.upload(&id, &app.key, png(2048, 1), "image/png", "wide.png").await.status, StatusCode::OK);
    assert_eq!(app.upload(&id, &app.key, png(1, 2048), "image/png", "tall.png").await.status, StatusCode::OK);
    let stored_after = app.get(&id).await.body;
    for (width, height) in [(2049, 1), (1, 2049)] {
        let answer = app.upload(&id, &app.key, png(width, height), "image/png", "over.png").await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{width}x{height}");
        assert_eq!(answer.violations(), [("avatar".to_owned(), "out_of_range".to_owned())]);
    }
    assert_eq!(app.get(&id).await.body, stored_after, "a refused image changes nothing");
    assert_ne!(stored_after, stored);
}

/// Sends only the head of an upload declaring `length` bytes of body, and returns the raw answer.
async fn declared_upload(app: &TestApp, id: &str, length: usize) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = app.rest.trim_start_matches("http://");
    let mut socket = tokio::net::TcpStream::connect(addr).await.expect("connects");
    let head = format!(
        "PATCH /api/external/chatbot/{id}/update-avatar HTTP/1.1\r\nhost: {addr}\r\nx-api-key: {}\r\n\
         content-type: multipart/form-data; boundary=x\r\ncontent-length: {length}\r\n\r\n",
        app.key
    );
    socket.write_all(head.as_bytes()).await.expect("the head is sent");
    let mut answer = vec![0; 4096];
    let read = tokio::time::timeout(std::time::Duration::from_secs(10), socket.read(&mut answer))
        .await
        .expect("answered at once, without the body")
        .expect("readable");
    String::from_utf8_lossy(&answer[..read]).into_owned()
}

async fn a_replaced_avatar_is_kept_for_its_revisions_and_removed_with_the_chatbot(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let id = app.create_named("Replaced", json!({})).await;
    let first = app.upload(&id, &app.key, png(10, 10), "image/png", "a.png").await;
    let first_url = first.body["chatbot"]["settings"]["avatar"].as_str().expect("a URL").to_owned();
    let second = app.upload(&id, &app.key, png(10, 10), "image/png", "a.png").await;
    let second_url = second.body["chatbot"]["settings"]["avatar"].as_str().expect("a URL").to_owned();
    assert_ne!(first_url, second_url, "the URL changes with every upload, even of the same image");
    // Revision 2 points at the first image: a restore of it must find it (retention frees it later).
    assert_eq!(app.fetch(&first_url).await.0, StatusCode::OK, "the replaced image is kept for its revision");
    assert_eq!(app.fetch(&second_url).await.0, StatusCode::OK);

    // Other changes of the chatbot keep it.
    assert_eq!(app.patch(&id, &json!({"settings": null, "description": "x"})).await.status, StatusCode::OK);
    assert_eq!(app.get(&id).await.body["chatbot"]["settings"]["avatar"], second_url.as_str());
    assert_eq!(app.fetch(&second_url).await.0, StatusCode::OK);

    assert_eq!(app.delete(&id).await.status, StatusCode::OK);
    assert_eq!(app.fetch(&second_url).await.0, StatusCode::NOT_FOUND, "deleting the chatbot removes its image");
    assert_eq!(app.fetch(&first_url).await.0, StatusCode::NOT_FOUND, "and every image its revisions pointed at");
}

async fn another_organisation_or_a_malformed_upload_changes_nothing(engine: Engine) {
    let (app, other) = TestApp::spawn_with_second_org(engine).await;
    let id = app.create_named("Mine", json!({})).await;
    let before = app.get(&id).await.body;
    let theirs = app.upload(&id, &other, png(4, 4), "image/png", "x.png").await;
    assert_eq!((theirs.status, theirs.code()), (StatusCode::NOT_FOUND, "not_found"));

    let no_part = app.upload_form(&id, &app.key, Form::new().text("avatr", "oops")).await;
    assert_eq!(no_part.status, StatusCode::BAD_REQUEST);
    assert_eq!(no_part.violations(), [("avatar".to_owned(), "required".to_owned())]);

    let as_json = app
        .call(
            Method::PATCH,
            &format!("/api/external/chatbot/{id}/update-avatar"),
            Some(&app.key),
            Some(&json!({"avatar": "x"})),
        )
        .await;
    assert_eq!((as_json.status, as_json.code()), (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"));

    let no_key = app.call(Method::PATCH, &format!("/api/external/chatbot/{id}/update-avatar"), None, None).await;
    assert_eq!(no_key.status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.get(&id).await.body, before);
}

async fn the_avatar_is_uploaded_over_grpc_with_the_same_rules(engine: Engine) {
    let (app, other) = TestApp::spawn_with_second_org(engine).await;
    let id = app.create_named("Over gRPC", json!({})).await;
    let mut client = app.grpc_client().await;
    let request = |avatar: Vec<u8>| pb::UpdateChatbotAvatarRequest { id: id.clone(), avatar, ..Default::default() };
    let bytes = image(20, 20, image::ImageFormat::Gif);
    let updated = client.update_chatbot_avatar(app.grpc_request(request(bytes.clone()))).await.expect("updated");
    let url = updated.into_inner().settings.and_then(|s| s.avatar).expect("settings.avatar");
    assert!(url.ends_with(".gif"), "{url}");
    let (status, headers, served) = app.fetch(&url).await;
    assert_eq!((status, header(&headers, "content-type"), served), (StatusCode::OK, Some("image/gif"), bytes));
    let rest: Value = app.get(&id).await.body;
    assert_eq!(rest["chatbot"]["settings"]["avatar"], url.as_str());

    let status =
        client.update_chatbot_avatar(app.grpc_request(request(b"<svg/>".to_vec()))).await.expect_err("refused");
    assert_eq!(status.code(), Code::InvalidArgument);
    let reason = status.get_error_details().error_info().map(|i| i.reason.clone());
    assert_eq!(reason.as_deref(), Some("unsupported_media_type"));

    let mut huge = png(4, 4);
    huge.resize(1024 * 1024 + 1, 0);
    let status = client.update_chatbot_avatar(app.grpc_request(request(huge))).await.expect_err("refused");
    assert_eq!(status.code(), Code::ResourceExhausted);

    let hidden = client.update_chatbot_avatar(with_key(request(png(4, 4)), &other)).await.expect_err("hidden");
    assert_eq!(hidden.code(), Code::NotFound);
    assert_eq!(app.fetch(&url).await.0, StatusCode::OK, "the refused uploads left the image in place");
}
