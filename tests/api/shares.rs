//! Fair shares against one hostile client: its connections are capped per address and closed first
//! when the face is full, so others are served; invented methods and paths add no metric series; and a
//! change stream's slot comes back soon after its client has gone or stopped reading, while a client
//! reconnecting in a loop is slowed with 429.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use grpc_server::pb;
use reqwest::{Method, StatusCode};
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpSocket, TcpStream};
use tonic::Code;
use tonic_types::StatusExt as _;

use crate::helpers::{Engine, Storage, TestApp, on_every_engine};

on_every_engine!(
    one_address_over_its_share_and_over_the_cap_leaves_the_others_served,
    a_connection_that_sends_nothing_is_closed_at_the_header_timeout,
    invented_methods_and_paths_add_no_metric_series,
    a_reset_or_closed_stream_gives_its_slot_back_at_once,
    a_stream_nobody_reads_is_closed_and_gives_its_slot_back,
    a_client_reconnecting_in_a_loop_is_slowed_with_429,
    a_url_over_the_limit_is_414_however_long_and_an_early_error_says_it_closes,
);

fn addr(url: &str) -> SocketAddr {
    url.trim_start_matches("http://").parse().expect("an address")
}

/// A connection to `to` from the loopback address `127.0.0.<from>`.
async fn connect_from(from: u8, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from(([127, 0, 0, from], 0)))?;
    socket.connect(to).await
}

/// Sends a `GET /healthz` on `stream` and returns the answer's status, if one comes within 5 s.
async fn healthz_on(stream: &mut TcpStream) -> Option<u16> {
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.ok()?;
    let mut buffer = [0u8; 1024];
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buffer)).await.ok()?.ok()?;
    String::from_utf8_lossy(&buffer[..read]).strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

async fn one_address_over_its_share_and_over_the_cap_leaves_the_others_served(engine: Engine) {
    let flags = ["--max-connections", "40", "--max-connections-per-client", "16"];
    let app = TestApp::spawn_on(Storage::new(engine), "shares-key-0123456789abcdef".into(), &flags).await;
    let (rest, grpc) = (addr(&app.rest), addr(&app.grpc));

    // 127.0.0.2 takes its whole share with connections that say nothing; one more is refused.
    let mut held = Vec::new();
    for _ in 0..16 {
        held.push(connect_from(2, rest).await.expect("within its share"));
    }
    let mut over = connect_from(2, rest).await.expect("the handshake itself succeeds");
    assert_eq!(healthz_on(&mut over).await, Some(503), "a 17th connection from one address is refused");

    // 127.0.0.3 and .4 take theirs too, one request each and then idle: 48 held, over the cap of 40.
    for from in [3, 4] {
        for _ in 0..16 {
            let mut stream = connect_from(from, rest).await.expect("connects");
            assert_eq!(healthz_on(&mut stream).await, Some(200));
            held.push(stream);
        }
    }
    tokio::time::sleep(Duration::from_millis(600)).await;

    // Everyone else is served: each request on a connection of its own.
    for i in 0..20 {
        let answer = app
            .http
            .get(format!("{}/healthz", app.rest))
            .header("connection", "close")
            .send()
            .await
            .unwrap_or_else(|err| panic!("request {i} is answered: {err}"));
        assert_eq!(answer.status(), StatusCode::OK, "request {i}");
    }
    let mut open = 0;
    for stream in &mut held {
        let mut byte = [0u8; 1];
        // A connection closed to make room reads its end at once; one still held waits.
        if tokio::time::timeout(Duration::from_millis(20), stream.read(&mut byte)).await.is_err() {
            open += 1;
        }
    }
    assert!(open <= 40, "the attacker holds {open} connections, over the cap");
    println!("REST: the attacker held {open} of the 48 connections it opened; 20 of 20 others were served");

    // The same on gRPC: silent connections over the share and the cap, and a caller still served.
    let mut silent = Vec::new();
    for from in [2, 3, 4] {
        for _ in 0..16 {
            silent.push(connect_from(from, grpc).await.expect("connects"));
        }
        if from == 2 {
            let mut over = connect_from(2, grpc).await.expect("the handshake itself succeeds");
            let mut byte = [0u8; 1];
            let refused = tokio::time::timeout(Duration::from_secs(5), over.read(&mut byte)).await;
            assert!(matches!(refused, Ok(Ok(0) | Err(_))), "a 17th gRPC connection from one address: {refused:?}");
        }
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut client = app.grpc_client().await;
    for i in 0..5 {
        let listed = client.list_chatbots(app.grpc_request(pb::ListChatbotsRequest::default())).await;
        assert!(listed.is_ok(), "gRPC call {i}: {listed:?}");
    }
    let metrics =
        app.http.get(format!("{}/metrics", app.rest)).send().await.expect("metrics").text().await.expect("text");
    for face in ["rest", "grpc"] {
        let evicted = metric(&metrics, &format!("chatbotd_connections_evicted_total{{face=\"{face}\"}}"));
        assert!(evicted >= 1.0, "{face}: evictions are counted ({evicted})");
        let refused =
            metric(&metrics, &format!("chatbotd_connections_refused_total{{face=\"{face}\",reason=\"per_client\"}}"));
        assert!(refused >= 1.0, "{face}: refusals are counted ({refused})");
    }
    drop((held, silent));
}

/// The value of the series `name` (with its labels, as the exposition writes them), or 0.
fn metric(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(name).and_then(|rest| rest.trim().parse().ok()))
        .unwrap_or_default()
}

async fn a_connection_that_sends_nothing_is_closed_at_the_header_timeout(engine: Engine) {
    let flags = ["--header-timeout", "1s", "--idle-timeout", "60s"];
    let app = TestApp::spawn_on(Storage::new(engine), "silent-key-0123456789abcdef".into(), &flags).await;
    for (face, to) in [("REST", addr(&app.rest)), ("gRPC", addr(&app.grpc))] {
        let mut stream = TcpStream::connect(to).await.expect("connects");
        let started = Instant::now();
        let mut buffer = [0u8; 256];
        let closed = tokio::time::timeout(Duration::from_secs(20), async {
            while stream.read(&mut buffer).await.is_ok_and(|n| n > 0) {}
        })
        .await;
        assert!(closed.is_ok(), "{face}: a silent connection is still open after 20 s");
        let after = started.elapsed();
        assert!(after < Duration::from_secs(5), "{face}: closed after {after:?}, not at the 1 s header timeout");
    }
}

/// The number of series of the request metrics on `/metrics`.
async fn request_series(app: &TestApp) -> usize {
    let metrics =
        app.http.get(format!("{}/metrics", app.rest)).send().await.expect("metrics").text().await.expect("text");
    metrics.lines().filter(|line| line.starts_with("chatbotd_requests_total{")).count()
}

async fn invented_methods_and_paths_add_no_metric_series(engine: Engine) {
    let app =
        TestApp::spawn_on(Storage::new(engine), "series-key-0123456789abcdef".into(), &["--client-rate-limit", "5"])
            .await;
    let invented = |i: usize| Method::from_bytes(format!("M{i}").as_bytes()).expect("a method");
    let channel =
        tonic::transport::Channel::from_shared(app.grpc.clone()).expect("a URL").connect().await.expect("connects");
    let call_invented = |i: usize| {
        let mut raw = tonic::client::Grpc::new(channel.clone());
        async move {
            raw.ready().await.expect("ready");
            let path: http::uri::PathAndQuery =
                format!("/chatbot.v1.ChatbotService/Invented{i}").parse().expect("a path");
            raw.unary::<_, bytes::Bytes, _>(tonic::Request::new(bytes::Bytes::new()), path, crate::hostile::RawCodec)
                .await
        }
    };
    // Every kind of answer an invented method or path gets (405, 404 and 429 past the address's
    // limit; UNIMPLEMENTED) shows once, then never adds a series.
    let mut limited = 0;
    for i in 0..10 {
        let answer = app.call(invented(i), "/healthz", None, None).await;
        let answer_unknown = app.call(invented(i), &format!("/nowhere/{i}"), None, None).await;
        for answer in [answer, answer_unknown] {
            if answer.status == StatusCode::TOO_MANY_REQUESTS {
                limited += 1;
                assert!(answer.header("retry-after").is_some(), "a 429 says when to retry");
            } else {
                assert!(matches!(answer.status.as_u16(), 404 | 405), "{:?}", answer.status);
            }
        }
        let _ = call_invented(i).await;
    }
    assert!(limited > 0, "requests of no route pass the address's limit too");
    // A scrape counts itself after it is rendered: the first adds its own series.
    request_series(&app).await;
    let before = request_series(&app).await;
    for i in 10..1_010 {
        let _ = app.call(invented(i), &format!("/nowhere/{i}"), None, None).await;
        if i % 10 == 0 {
            let _ = call_invented(i).await;
        }
    }
    let after = request_series(&app).await;
    println!("request series: {before} before 1,000 invented methods and 100 invented gRPC paths, {after} after");
    assert_eq!(after, before);
}

/// Opens the caller's event stream on a raw socket and reads its head; returns the socket. A stream
/// the test just dropped may hold the one slot a moment longer: a 429 is tried again, for up to 5 s.
async fn open_raw_stream(app: &TestApp, recv_buffer: Option<u32>) -> TcpStream {
    let to = addr(&app.rest);
    let started = Instant::now();
    loop {
        let socket = TcpSocket::new_v4().expect("a socket");
        if let Some(bytes) = recv_buffer {
            socket.set_recv_buffer_size(bytes).expect("a small window");
        }
        let mut stream = socket.connect(to).await.expect("connects");
        let head =
            format!("GET /api/external/chatbots/events HTTP/1.1\r\nhost: {to}\r\nx-api-key: {}\r\n\r\n", app.key);
        stream.write_all(head.as_bytes()).await.expect("sent");
        let mut first = [0u8; 64];
        let read = stream.read(&mut first).await.expect("the head arrives");
        let head = String::from_utf8_lossy(&first[..read]);
        if head.starts_with("HTTP/1.1 200") {
            return stream;
        }
        assert!(head.starts_with("HTTP/1.1 429") && started.elapsed() < Duration::from_secs(5), "{head:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// How long until a new event stream of the caller opens (the one slot is free again); panics after
/// `within`.
async fn slot_back_within(app: &TestApp, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let answer = app.open_events().await;
        if answer.status() == StatusCode::OK {
            return started.elapsed();
        }
        assert_eq!(answer.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(started.elapsed() < within, "the slot is still taken after {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn a_reset_or_closed_stream_gives_its_slot_back_at_once(engine: Engine) {
    // Heartbeats far apart: a slot that comes back soon was not found out by a failed heartbeat.
    let flags = ["--max-watchers-per-org", "1", "--heartbeat", "60s"];
    let app = TestApp::spawn_on(Storage::new(engine), "slots-key-0123456789abcdef".into(), &flags).await;

    let reset = open_raw_stream(&app, None).await;
    // Linger 0 makes the close a reset, at once: nothing blocks.
    #[allow(deprecated, reason = "SO_LINGER of zero never blocks the thread")]
    reset.set_linger(Some(Duration::ZERO)).expect("linger 0: a reset on close");
    drop(reset);
    let after_reset = slot_back_within(&app, Duration::from_secs(10)).await;

    let closed = open_raw_stream(&app, None).await;
    drop(closed);
    let after_close = slot_back_within(&app, Duration::from_secs(10)).await;

    let mut client = app.grpc_client().await;
    // The last REST stream was closed by its client a moment ago: its slot comes back first.
    grpc_slot_back_within(&app, &mut client, Duration::from_secs(10)).await;
    let after_cancel = grpc_slot_back_within(&app, &mut client, Duration::from_secs(10)).await;
    println!(
        "slot back: {after_reset:?} after a reset, {after_close:?} after a close, {after_cancel:?} after a gRPC cancel"
    );
    for (what, took) in [("reset", after_reset), ("close", after_close), ("gRPC cancel", after_cancel)] {
        assert!(took < Duration::from_secs(3), "after a {what}: {took:?}");
    }
}

/// How long until a gRPC watch of the caller opens (then dropped: the client cancels it); panics after
/// `within`.
async fn grpc_slot_back_within(
    app: &TestApp,
    client: &mut pb::chatbot_service_client::ChatbotServiceClient<tonic::transport::Channel>,
    within: Duration,
) -> Duration {
    let started = Instant::now();
    loop {
        match client.watch_chatbots(app.grpc_request(pb::WatchChatbotsRequest::default())).await {
            Ok(_) => return started.elapsed(),
            Err(status) => assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}"),
        }
        assert!(started.elapsed() < within, "the gRPC slot is still taken after {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn a_stream_nobody_reads_is_closed_and_gives_its_slot_back(engine: Engine) {
    let flags = ["--max-watchers-per-org", "1", "--heartbeat", "60s", "--write-timeout", "1s"];
    let app = TestApp::spawn_on(Storage::new(engine), "unread-key-0123456789abcdef".into(), &flags).await;
    let _unread = open_raw_stream(&app, Some(4096)).await;
    // Far more events than the stream's buffers hold, while its client reads nothing.
    let created: Vec<StatusCode> = futures::stream::iter(0..800)
        .map(|n| {
            let app = &app;
            async move { app.post(&json!({ "name": format!("Unread {n}") })).await.status }
        })
        .buffered(16)
        .collect()
        .await;
    assert!(created.iter().all(|status| *status == StatusCode::CREATED), "{created:?}");
    let took = slot_back_within(&app, Duration::from_secs(15)).await;
    println!("slot back {took:?} after the last write to a stream nobody reads (write timeout 1 s)");
}

async fn a_client_reconnecting_in_a_loop_is_slowed_with_429(engine: Engine) {
    let flags = ["--watch-rate-limit", "1"];
    let app = TestApp::spawn_on(Storage::new(engine), "storm-key-0123456789abcdef".into(), &flags).await;
    let mut refused = None;
    for _ in 0..30 {
        let answer = app.open_events().await;
        if answer.status() == StatusCode::TOO_MANY_REQUESTS {
            refused = Some(answer);
            break;
        }
        assert_eq!(answer.status(), StatusCode::OK);
    }
    let refused = refused.expect("a loop of reconnections meets the limit");
    assert!(refused.headers().get("retry-after").is_some(), "a 429 says when to retry");
    let body: serde_json::Value = refused.json().await.expect("JSON");
    assert_eq!(body["error"]["code"], "rate_limited");

    let status = app
        .grpc_client()
        .await
        .watch_chatbots(app.grpc_request(pb::WatchChatbotsRequest::default()))
        .await
        .map(drop)
        .expect_err("the gRPC face shares the organisation's limit");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.get_error_details().retry_info().is_some(), "RetryInfo says when to retry");
}

async fn a_url_over_the_limit_is_414_however_long_and_an_early_error_says_it_closes(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let to = addr(&app.rest);
    // 8 KiB is the limit: at it and one past it, then far past hyper's 64 KiB head buffer.
    for (length, expected) in [(8 * 1024, 404), (8 * 1024 + 1, 414), (100 * 1024, 414), (1024 * 1024, 414)] {
        let path = format!("/nowhere?{}", "a".repeat(length - "/nowhere?".len()));
        let mut stream = TcpStream::connect(to).await.expect("connects");
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let _ = stream.write_all(request.as_bytes()).await;
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
        let answer = String::from_utf8_lossy(&answer);
        let status: u16 = answer.get(9..12).and_then(|s| s.parse().ok()).unwrap_or_default();
        assert_eq!(status, expected, "a URL of {length} bytes: {}", answer.lines().next().unwrap_or_default());
        if expected == 414 {
            assert!(answer.contains(r#""code":"uri_too_long""#), "{answer}");
        }
    }

    // Refused before its body is read: the answer says the connection closes.
    let refused = app
        .http
        .post(format!("{}/api/external/chatbots", app.rest))
        .header("x-api-key", "not-a-key")
        .json(&json!({"name": "x"}))
        .send()
        .await
        .expect("answered");
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(refused.headers().get("connection").and_then(|v| v.to_str().ok()), Some("close"));
    assert_eq!(app.list("").await.status, StatusCode::OK, "the next request goes through");
}
