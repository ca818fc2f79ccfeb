//! Running it: metrics that rise as requests are made, one access-log line per request (with its id,
//! never a secret), and a SIGTERM that turns new connections away at once, lets the requests in
//! flight finish and keeps what was written.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use grpc_server::pb;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{Engine, Storage, TestApp, on_every_engine};

on_every_engine!(
    metrics_count_each_request_under_its_route_template,
    every_request_leaves_one_access_log_line_with_its_id_and_no_secret,
    sigterm_during_a_load_lets_requests_in_flight_finish_and_keeps_every_acknowledged_write,
    a_request_half_sent_at_sigterm_is_answered_while_new_connections_are_refused,
);

async fn metrics(app: &TestApp) -> String {
    app.http.get(format!("{}/metrics", app.rest)).send().await.expect("answered").text().await.expect("text")
}

/// The value of the metric line that starts with `prefix`, or 0.
fn value(metrics: &str, prefix: &str) -> f64 {
    metrics.lines().find(|l| l.starts_with(prefix)).and_then(|l| l.rsplit(' ').next()?.parse().ok()).unwrap_or(0.0)
}

async fn metrics_count_each_request_under_its_route_template(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let created = r#"chatbotd_requests_total{face="rest",route="/api/external/chatbots",method="POST",status="201"}"#;
    let before = value(&metrics(&app).await, created);
    let id = app.create_named("Counted", json!({})).await;
    app.create_named("Counted too", json!({})).await;
    assert_eq!(app.get(&id).await.status, StatusCode::OK);
    let mut client = app.grpc_client().await;
    client.list_chatbots(app.grpc_request(pb::ListChatbotsRequest::default())).await.expect("listed");

    let after = metrics(&app).await;
    assert_eq!(value(&after, created) - before, 2.0, "two 201s under the route template");
    let read =
        r#"chatbotd_requests_total{face="rest",route="/api/external/chatbot/{chatbot_id}",method="GET",status="200"}"#;
    assert_eq!(value(&after, read), 1.0);
    assert!(!after.contains(&id), "a raw path never becomes a label");
    let listed = r#"chatbotd_requests_total{face="grpc",route="/chatbot.v1.ChatbotService/ListChatbots",method="POST",status="Ok"}"#;
    assert_eq!(value(&after, listed), 1.0);
    assert!(after.contains("chatbotd_request_duration_seconds_bucket"), "latency histograms");
    assert!(after.contains("chatbotd_requests_in_flight"));
    assert!(after.contains(r#"chatbotd_open_connections{face="rest"}"#));
    assert!(after.contains("chatbotd_build_info{version="));
    match engine {
        Engine::Sled => {
            assert!(value(&after, "chatbotd_store_batch_size_count") >= 2.0);
            assert!(after.contains("chatbotd_store_flush_seconds_bucket"));
            assert!(after.contains("chatbotd_store_queue_depth"));
        }
        Engine::Postgres => assert!(after.contains(r#"chatbotd_store_pool_connections{state="in_use"}"#)),
    }
}

async fn every_request_leaves_one_access_log_line_with_its_id_and_no_secret(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let secret = "sk-proj-never-in-a-log-0123456789";
    let created = app
        .http
        .post(format!("{}/api/external/chatbots", app.rest))
        .header("x-api-key", &app.key)
        .header("x-request-id", "log-me-1")
        .json(&json!({"name": "Logged", "openai_api_key": secret}))
        .send()
        .await
        .expect("answered");
    assert_eq!(created.status(), StatusCode::CREATED);
    let mut client = app.grpc_client().await;
    let mut request = app.grpc_request(pb::ListChatbotsRequest::default());
    request.metadata_mut().insert("x-request-id", "log-me-2".parse().expect("ASCII"));
    client.list_chatbots(request).await.expect("listed");
    tokio::time::sleep(Duration::from_millis(200)).await;

    let log = app.log();
    let lines_of = |id: &str| log.lines().filter(|l| l.contains("answered") && l.contains(id)).count();
    assert_eq!(lines_of("log-me-1"), 1, "one access line for the REST request:\n{log}");
    assert_eq!(lines_of("log-me-2"), 1, "one access line for the gRPC call:\n{log}");
    let rest_line = log.lines().find(|l| l.contains("log-me-1") && l.contains("answered")).expect("a line");
    for field in ["face", "method", "route=\"/api/external/chatbots\"", "status=201", "duration_ms", "org="] {
        assert!(rest_line.contains(field), "{field} in {rest_line}");
    }
    assert!(!log.contains(&app.key), "the API key never reaches the log");
    assert!(!log.contains(secret), "nor does a stored secret");
}

async fn sigterm_during_a_load_lets_requests_in_flight_finish_and_keeps_every_acknowledged_write(engine: Engine) {
    let app =
        TestApp::spawn_on(Storage::new(engine), "drain-key-0123456789abcdef".into(), &["--shutdown-grace", "10s"])
            .await;
    let (rest, key) = (app.rest.clone(), app.key.clone());
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..8)
        .map(|writer| {
            let (rest, key, stop) = (rest.clone(), key.clone(), stop.clone());
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                let (mut acknowledged, mut n) = (Vec::new(), 0);
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let sent = http
                        .post(format!("{rest}/api/external/chatbots"))
                        .header("x-api-key", &key)
                        .json(&json!({"name": format!("Drain {writer}-{n}")}))
                        .send()
                        .await;
                    match sent {
                        Ok(response) if response.status() == StatusCode::CREATED => {
                            let body: serde_json::Value = response.json().await.expect("JSON");
                            acknowledged.push(body["chatbot"]["id"].as_str().expect("an id").to_owned());
                        }
                        Ok(response) => {
                            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE, "only a drain refusal");
                        }
                        Err(_) => break,
                    }
                }
                acknowledged
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let storage = app.storage.clone();
    let status = app.terminate().await;
    stop.store(true, Ordering::Relaxed);
    assert!(status.success(), "exit status {status:?}");
    let mut acknowledged = Vec::new();
    for writer in writers {
        acknowledged.extend(writer.await.expect("a writer"));
    }
    assert!(acknowledged.len() > 10, "the load ran ({})", acknowledged.len());

    let app = TestApp::spawn_on(storage, key, &[]).await;
    for id in &acknowledged {
        assert_eq!(app.get(id).await.status, StatusCode::OK, "{id} was acknowledged, then lost");
    }
}

/// A request truly in flight at SIGTERM (its head and half its body sent before the signal, the rest
/// after it): the drain refuses new connections at once, yet this one is read to its end, answered 201,
/// and kept.
async fn a_request_half_sent_at_sigterm_is_answered_while_new_connections_are_refused(engine: Engine) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let app =
        TestApp::spawn_on(Storage::new(engine), "drain-key-0123456789abcdef".into(), &["--shutdown-grace", "10s"])
            .await;
    let addr = app.rest.trim_start_matches("http://").to_owned();
    let body = json!({"name": "In flight", "slug": "in-flight-at-sigterm"}).to_string();
    let (first, rest) = body.split_at(body.len() / 2);
    let mut stream = tokio::net::TcpStream::connect(&addr).await.expect("connects");
    let head = format!(
        "POST /api/external/chatbots HTTP/1.1\r\nhost: {addr}\r\nx-api-key: {}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n\r\n{first}",
        app.key,
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("the head and half the body are sent");
    tokio::time::sleep(Duration::from_millis(200)).await; // the server has read them
    app.signal(nix::sys::signal::Signal::SIGTERM);

    // New connections are refused (or closed unanswered) once the drain has begun.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let refused = match reqwest::Client::new().get(format!("{}/healthz", app.rest)).send().await {
            Err(_) => true,
            Ok(answer) => answer.status() == StatusCode::SERVICE_UNAVAILABLE,
        };
        if refused {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the drain never turned new requests away");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The request in flight goes on, even a second later (well inside the grace): the rest of its body
    // is read and it is answered.
    tokio::time::sleep(Duration::from_secs(1)).await;
    stream.write_all(rest.as_bytes()).await.expect("the rest of the body is sent");
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    while !String::from_utf8_lossy(&answer).contains("Chatbot created successfully") {
        let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buffer))
            .await
            .expect("answered within the grace")
            .expect("read");
        assert!(read > 0, "the connection closed before the answer: {}", String::from_utf8_lossy(&answer));
        answer.extend_from_slice(&buffer[..read]);
    }
    assert!(answer.starts_with(b"HTTP/1.1 201"), "{}", String::from_utf8_lossy(&answer));
    let (key, storage) = (app.key.clone(), app.storage.clone());
    assert!(app.terminate().await.success(), "the drain ends with exit 0");

    let app = TestApp::spawn_on(storage, key, &[]).await;
    let kept = app.list("").await;
    let slugs: Vec<&str> =
        kept.body["chatbots"].as_array().expect("a list").iter().filter_map(|c| c["slug"].as_str()).collect();
    assert_eq!(slugs, ["in-flight-at-sigterm"], "the answered request was kept");
}
