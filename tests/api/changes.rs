//! The change stream, over SSE and gRPC: every committed change of the caller's organisation, in
//! commit order, resumable by token across a `kill -9`, a resync answer for a token past retention,
//! heartbeats, limits, and a watcher that stops reading never holding writers back.

use std::time::Duration;

use futures::StreamExt as _;
use grpc_server::pb;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tonic::Code;
use tonic_types::StatusExt;

use crate::helpers::{Engine, Storage, TestApp, on_every_engine, postgres_only, with_key};

on_every_engine!(
    a_watcher_sees_create_update_and_delete_in_commit_order_on_both_faces,
    a_watcher_sees_only_its_own_organisation,
    a_watcher_resumes_after_a_kill_9_without_gaps_or_repeats,
    a_token_past_retention_gets_a_resync_answer_and_a_bad_one_a_400,
    idle_streams_get_heartbeats_and_end_when_the_service_drains,
    the_number_of_watchers_is_limited,
    a_watcher_that_stops_reading_holds_no_writer_back_and_misses_nothing,
    concurrent_updates_of_one_chatbot_arrive_in_revision_order,
    many_watchers_of_one_organisation_each_see_every_change_once_in_order,
);

/// How long a test waits for an event it expects.
const EVENT_WAIT: Duration = Duration::from_secs(15);

/// One Server-Sent Event: its name, id and data (a comment has only `comment`).
#[derive(Debug, Clone, Default)]
pub(crate) struct Sse {
    event: String,
    pub(crate) id: String,
    data: String,
    comment: bool,
}

impl Sse {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.data).expect("the data is JSON")
    }
}

/// An open SSE stream, read event by event.
pub(crate) struct SseStream {
    body: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buffer: String,
}

impl SseStream {
    /// Opens the caller's event stream with `key`, resuming after `last_event_id` if given.
    pub(crate) async fn open(app: &TestApp, key: &str, last_event_id: Option<&str>) -> SseStream {
        let mut request = app.http.get(format!("{}/api/external/chatbots/events", app.rest)).header("x-api-key", key);
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        let response = request.send().await.expect("the stream opens");
        assert_eq!(response.status(), StatusCode::OK);
        let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok()).map(str::to_owned);
        assert_eq!(content_type.as_deref(), Some("text/event-stream"));
        SseStream { body: response.bytes_stream().boxed(), buffer: String::new() }
    }

    /// The next event or comment, or `None` once the stream has ended.
    async fn next_any(&mut self) -> Option<Sse> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut sse = Sse::default();
                for line in block.lines() {
                    match line.split_once(':') {
                        Some(("", _)) => sse.comment = true,
                        Some(("event", value)) => sse.event = value.trim_start().to_owned(),
                        Some(("id", value)) => sse.id = value.trim_start().to_owned(),
                        Some(("data", value)) => sse.data.push_str(value.trim_start()),
                        _ => {}
                    }
                }
                return Some(sse);
            }
            let chunk = tokio::time::timeout(EVENT_WAIT, self.body.next()).await.expect("the stream moves on in time");
            match chunk {
                Some(Ok(bytes)) => self.buffer.push_str(&String::from_utf8_lossy(&bytes)),
                Some(Err(_)) | None => return None,
            }
        }
    }

    /// The next event, skipping heartbeats.
    pub(crate) async fn next(&mut self) -> Sse {
        loop {
            let sse = self.next_any().await.expect("an event before the stream ends");
            if !sse.comment {
                return sse;
            }
        }
    }

    /// The next `count` events.
    pub(crate) async fn take(&mut self, count: usize) -> Vec<Sse> {
        let mut events = Vec::with_capacity(count);
        for _ in 0..count {
            events.push(self.next().await);
        }
        events
    }
}

/// `count` chatbots named `{name} {n}`, created 32 at a time: their ids.
async fn create_burst(app: &TestApp, name: &str, count: usize) -> Vec<String> {
    futures::stream::iter(0..count)
        .map(|n| async move { app.create_named(&format!("{name} {n}"), json!({})).await })
        .buffered(32)
        .collect()
        .await
}

/// The caller's gRPC change stream, from now.
async fn grpc_watch(app: &TestApp) -> tonic::Streaming<pb::WatchChatbotsResponse> {
    let request = app.grpc_request(pb::WatchChatbotsRequest::default());
    app.grpc_client().await.watch_chatbots(request).await.expect("the watch opens").into_inner()
}

async fn a_watcher_sees_create_update_and_delete_in_commit_order_on_both_faces(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let mut sse = SseStream::open(&app, &app.key, None).await;
    let mut grpc = grpc_watch(&app).await;

    let created = app.post(&json!({"name": "Watched"})).await;
    let id = created.body["chatbot"]["id"].as_str().expect("an id").to_owned();
    let updated = app.patch(&id, &json!({"description": "changed"})).await;
    let widget = app
        .call(
            Method::PATCH,
            &format!("/api/external/chatbot/{id}/voice-agent"),
            Some(&app.key),
            Some(&json!({"voice": "echo"})),
        )
        .await;
    assert_eq!(app.delete(&id).await.status, StatusCode::OK);
    let etags: Vec<Option<String>> = [&created, &updated, &widget]
        .iter()
        .map(|answer| answer.header("etag").map(|tag| tag.trim_matches('"').to_owned()))
        .chain([None])
        .collect();

    let events = sse.take(4).await;
    let kinds: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(kinds, ["created", "updated", "updated", "deleted"]);
    for (event, etag) in events.iter().zip(&etags) {
        let data = event.json();
        assert_eq!(data["chatbot_id"], id.as_str());
        assert_eq!(data["type"], event.event.as_str());
        assert_eq!(data["etag"].as_str().map(str::to_owned), *etag, "the new etag, none for a delete");
        assert_eq!(data["resume_token"], event.id.as_str());
    }
    let revisions: Vec<u64> = events.iter().map(|e| e.json()["revision"].as_u64().expect("a revision")).collect();
    assert_eq!(revisions, [1, 2, 3, 4], "a delete is a revision of its own");

    // gRPC sees the same changes with the same tokens.
    let mut over_grpc = Vec::new();
    while over_grpc.len() < 4 {
        let message = tokio::time::timeout(EVENT_WAIT, grpc.message()).await.expect("in time").expect("a message");
        if let Some(pb::watch_chatbots_response::Event::Change(change)) = message.and_then(|m| m.event) {
            over_grpc.push(change);
        }
    }
    let tokens: Vec<&str> = over_grpc.iter().map(|c| c.resume_token.as_str()).collect();
    assert_eq!(tokens, events.iter().map(|e| e.id.as_str()).collect::<Vec<_>>());
    let types: Vec<i32> = over_grpc.iter().map(|c| c.r#type).collect();
    let expected = [pb::ChangeType::Created, pb::ChangeType::Updated, pb::ChangeType::Updated, pb::ChangeType::Deleted];
    assert_eq!(types, expected.map(i32::from));
    assert_eq!(over_grpc[1].etag, etags[1].clone().unwrap_or_default());
}

async fn a_watcher_sees_only_its_own_organisation(engine: Engine) {
    let (app, other) = TestApp::spawn_with_second_org(engine).await;
    let mut theirs = SseStream::open(&app, &other, None).await;
    let mut mine = SseStream::open(&app, &app.key, None).await;
    let my_bot = app.create_named("Mine", json!({})).await;
    let their_bot = app
        .call(Method::POST, "/api/external/chatbots", Some(&other), Some(&json!({"name": "Theirs"})))
        .await
        .body["chatbot"]["id"]
        .as_str()
        .expect("an id")
        .to_owned();
    assert_eq!(mine.next().await.json()["chatbot_id"], my_bot.as_str());
    assert_eq!(theirs.next().await.json()["chatbot_id"], their_bot.as_str(), "not the other organisation's");
    let mut grpc = app
        .grpc_client()
        .await
        .watch_chatbots(with_key(pb::WatchChatbotsRequest { resume_token: "c0".into() }, &other))
        .await
        .expect("the watch opens")
        .into_inner();
    let first = tokio::time::timeout(EVENT_WAIT, grpc.message()).await.expect("in time").expect("a message");
    match first.and_then(|m| m.event) {
        Some(pb::watch_chatbots_response::Event::Change(change)) => assert_eq!(change.chatbot_id, their_bot),
        other => panic!("expected their change first, got {other:?}"),
    }
}

async fn a_watcher_resumes_after_a_kill_9_without_gaps_or_repeats(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let mut sse = SseStream::open(&app, &app.key, None).await;
    let mut written = Vec::new();
    for i in 0..3 {
        written.push(app.create_named(&format!("Before {i}"), json!({})).await);
    }
    let seen = sse.take(2).await;
    let token = seen[1].id.clone();
    for i in 0..4 {
        written.push(app.create_named(&format!("Unseen {i}"), json!({})).await);
    }
    let key = app.key.clone();
    let storage = app.kill9().await;

    let app = TestApp::spawn_on(storage, key, &[]).await;
    written.push(app.create_named("After the restart", json!({})).await);
    let mut resumed = SseStream::open(&app, &app.key, Some(&token)).await;
    let rest = resumed.take(written.len() - 2).await;
    let ids: Vec<String> =
        rest.iter().map(|e| e.json()["chatbot_id"].as_str().unwrap_or_default().to_owned()).collect();
    assert_eq!(ids, written[2..], "exactly the changes after the token, in order, once each");
    let positions: Vec<String> = seen.iter().chain(&rest).map(|e| e.id.clone()).collect();
    let expected: Vec<String> = (1..=written.len()).map(|n| format!("c{n:x}")).collect();
    assert_eq!(positions, expected, "the log has no gaps, across the crash");
}

async fn a_token_past_retention_gets_a_resync_answer_and_a_bad_one_a_400(engine: Engine) {
    let app =
        TestApp::spawn_on(Storage::new(engine), "retention-key-0123456789".into(), &["--change-retention", "1s"]).await;
    // Tokens as a client has them: from events it was sent (on PostgreSQL an event has a position, and
    // so a token, only once it is published, a moment after its write).
    let mut live = SseStream::open(&app, &app.key, None).await;
    app.create_named("Old", json!({})).await;
    app.create_named("Older", json!({})).await;
    let seen: Vec<String> = live.take(2).await.into_iter().map(|event| event.id).collect();
    assert_eq!(seen, ["c1", "c2"]);
    drop(live);
    // A fresh token still works...
    let mut fresh = SseStream::open(&app, &app.key, Some("c1")).await;
    assert_eq!(fresh.next().await.id, "c2");
    // ...until the log has forgotten what follows it (pruned at least every 250 ms here).
    tokio::time::sleep(Duration::from_millis(2500)).await;
    app.create_named("New", json!({})).await;
    let mut stale = SseStream::open(&app, &app.key, Some("c1")).await;
    let resync = stale.next().await;
    assert_eq!(resync.event, "resync");
    assert_eq!(resync.json()["error"]["code"], "resync_required");
    assert!(stale.next_any().await.is_none(), "the stream ends after the resync event");

    let mut client = app.grpc_client().await;
    let request = app.grpc_request(pb::WatchChatbotsRequest { resume_token: "c1".into() });
    let status = match client.watch_chatbots(request).await {
        Err(status) => status,
        Ok(stream) => stream.into_inner().message().await.expect_err("refused"),
    };
    assert_eq!(status.code(), Code::FailedPrecondition);
    let reason = status.get_error_details().error_info().map(|i| i.reason.clone());
    assert_eq!(reason.as_deref(), Some("resync_required"));

    // A token from the future (another store, a restored backup) cannot be resumed either.
    assert_eq!(SseStream::open(&app, &app.key, Some("cffff")).await.next().await.event, "resync");
    let bad = app
        .http
        .get(format!("{}/api/external/chatbots/events", app.rest))
        .header("x-api-key", &app.key)
        .header("last-event-id", "not-a-token")
        .send()
        .await
        .expect("answered");
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let body: Value = bad.json().await.expect("an error body");
    assert_eq!(body["error"]["violations"][0]["field"], "Last-Event-ID");
    let bad_grpc = client.watch_chatbots(app.grpc_request(pb::WatchChatbotsRequest { resume_token: "x".into() })).await;
    assert_eq!(bad_grpc.map(drop).expect_err("refused").code(), Code::InvalidArgument);
}

async fn idle_streams_get_heartbeats_and_end_when_the_service_drains(engine: Engine) {
    // A grace far longer than the test may wait: streams that end only when the grace cuts them off
    // fail it.
    let flags = ["--heartbeat", "300ms", "--shutdown-grace", "60s"];
    let app = TestApp::spawn_on(Storage::new(engine), "heartbeat-key-0123456789".into(), &flags).await;
    let mut sse = SseStream::open(&app, &app.key, None).await;
    let first = sse.next_any().await.expect("something before the stream ends");
    assert!(first.comment, "an idle stream gets a heartbeat comment: {first:?}");
    let mut grpc = grpc_watch(&app).await;
    let beat = tokio::time::timeout(EVENT_WAIT, grpc.message()).await.expect("in time").expect("a message");
    assert!(matches!(beat.and_then(|m| m.event), Some(pb::watch_chatbots_response::Event::Heartbeat(_))));

    let draining = std::time::Instant::now();
    let status = app.terminate().await;
    assert!(status.success(), "{status:?}");
    let drained = draining.elapsed();
    assert!(drained < Duration::from_secs(10), "the streams ended at once, not at the grace's end ({drained:?})");
    while let Some(event) = sse.next_any().await {
        assert!(event.comment, "nothing but heartbeats before the end: {event:?}");
    }
    let ended = tokio::time::timeout(EVENT_WAIT, grpc.message()).await.expect("the gRPC stream ends in time");
    assert!(!matches!(ended, Ok(Some(_))), "the gRPC stream ended: {ended:?}");
}

async fn the_number_of_watchers_is_limited(engine: Engine) {
    // Heartbeats often: a stream whose client went away is noticed when the next one is written.
    let flags = ["--max-watchers", "2", "--heartbeat", "200ms"];
    let app = TestApp::spawn_on(Storage::new(engine), "watchers-key-0123456789".into(), &flags).await;
    let first = SseStream::open(&app, &app.key, None).await;
    let _second = SseStream::open(&app, &app.key, None).await;
    let third = app.call(Method::GET, "/api/external/chatbots/events", Some(&app.key), None).await;
    assert_eq!((third.status, third.code()), (StatusCode::TOO_MANY_REQUESTS, "too_many_watchers"));
    let grpc = app.grpc_client().await.watch_chatbots(app.grpc_request(pb::WatchChatbotsRequest::default())).await;
    assert_eq!(grpc.map(drop).expect_err("refused").code(), Code::ResourceExhausted);
    drop(first);
    // The place is given back once the server sees the stream closed.
    let mut reopened = None;
    for _ in 0..100 {
        let response = app.open_events().await;
        if response.status() == StatusCode::OK {
            reopened = Some(response);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(reopened.is_some(), "a closed stream frees its place");
}

async fn a_watcher_that_stops_reading_holds_no_writer_back_and_misses_nothing(engine: Engine) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // A watcher may stop reading for as long as the write timeout (past it, it is cut off: see
    // `shares::a_stream_nobody_reads_is_closed_and_gives_its_slot_back`).
    let flags = ["--write-timeout", "10m"];
    let app = TestApp::spawn_on(Storage::new(engine), "stalled-key-0123456789abcdef".into(), &flags).await;
    // A watcher with a tiny receive window that reads nothing while the writes go on.
    let addr: std::net::SocketAddr = app.rest.trim_start_matches("http://").parse().expect("an address");
    let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
    socket.set_recv_buffer_size(4096).expect("a small window");
    let mut stalled = socket.connect(addr).await.expect("connects");
    let head = format!("GET /api/external/chatbots/events HTTP/1.1\r\nhost: {addr}\r\nx-api-key: {}\r\n\r\n", app.key);
    stalled.write_all(head.as_bytes()).await.expect("the request is sent");
    let mut first = [0u8; 64];
    let read = stalled.read(&mut first).await.expect("the head arrives");
    assert!(String::from_utf8_lossy(&first[..read]).starts_with("HTTP/1.1 200"));

    // Far more events than the stalled socket's buffers hold.
    const WRITES: usize = 1500;
    let ids = create_burst(&app, "Load", WRITES).await;
    assert_eq!(ids.len(), WRITES, "every write was acknowledged while the watcher read nothing");

    // The watcher then reads on, and finds every change, in order.
    let mut received = String::new();
    let mut buffer = vec![0u8; 64 * 1024];
    let last_token = format!("c{WRITES:x}");
    while !received.contains(&format!("id: {last_token}\n")) {
        let read = tokio::time::timeout(EVENT_WAIT, stalled.read(&mut buffer))
            .await
            .expect("the stream moves on")
            .expect("readable");
        assert!(read > 0, "the stream ended early");
        received.push_str(&String::from_utf8_lossy(&buffer[..read]));
    }
    let tokens: Vec<&str> = received.lines().filter_map(|line| line.strip_prefix("id: ")).collect();
    let expected: Vec<String> = (1..=WRITES).map(|n| format!("c{n:x}")).collect();
    assert_eq!(tokens, expected);
}

async fn concurrent_updates_of_one_chatbot_arrive_in_revision_order(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let mut sse = SseStream::open(&app, &app.key, None).await;
    let id = app.create_named("Contended", json!({})).await;
    assert_eq!(sse.next().await.event, "created");
    const UPDATES: usize = 40;
    let statuses: Vec<StatusCode> = futures::stream::iter(0..UPDATES)
        .map(|i| {
            let (app, id) = (&app, &id);
            async move { app.patch(id, &json!({"description": format!("v{i}")})).await.status }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    assert!(statuses.iter().all(|s| *s == StatusCode::OK));
    let revisions: Vec<u64> =
        sse.take(UPDATES).await.iter().map(|e| e.json()["revision"].as_u64().unwrap_or(0)).collect();
    assert_eq!(revisions, (2..=UPDATES as u64 + 1).collect::<Vec<_>>());
}

/// The watchers of one organisation share what one of them reads of the log and each event's
/// rendering, and a stream sends the events that are ready together: none of that may lose, repeat or
/// reorder an event for any of them, nor for a watcher that joins behind them from a token.
async fn many_watchers_of_one_organisation_each_see_every_change_once_in_order(engine: Engine) {
    const WATCHERS: usize = 8;
    const WRITES: usize = 200;
    let app = TestApp::spawn(engine).await;
    let mut streams = Vec::with_capacity(WATCHERS);
    for _ in 0..WATCHERS {
        streams.push(SseStream::open(&app, &app.key, None).await);
    }
    let first = app.create_named("First", json!({})).await;
    let mut created = create_burst(&app, "Burst", WRITES).await;
    created.push(first);
    created.sort();
    // Joins after the burst, resuming after the first create: it reads from behind the others.
    let mut late = SseStream::open(&app, &app.key, Some("c1")).await;

    let seen = |events: &[Sse]| -> (Vec<String>, Vec<String>) {
        let tokens = events.iter().map(|event| event.id.clone()).collect();
        let ids =
            events.iter().map(|event| event.json()["chatbot_id"].as_str().unwrap_or_default().to_owned()).collect();
        (tokens, ids)
    };
    let tokens: Vec<String> = (1..=WRITES + 1).map(|n| format!("c{n:x}")).collect();
    let mut first_order: Option<Vec<String>> = None;
    for stream in &mut streams {
        let events = stream.take(WRITES + 1).await;
        assert!(events.iter().all(|event| event.event == "created"), "{events:?}");
        let (got_tokens, ids) = seen(&events);
        assert_eq!(got_tokens, tokens, "every position once, in order");
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(sorted, created, "every create once");
        match &first_order {
            None => first_order = Some(ids),
            Some(order) => assert_eq!(&ids, order, "every watcher sees the same order"),
        }
    }
    let (late_tokens, late_ids) = seen(&late.take(WRITES).await);
    assert_eq!(late_tokens, tokens[1..], "the late watcher resumes right after its token");
    assert_eq!(Some(&late_ids[..]), first_order.as_deref().map(|order| &order[1..]), "in the same order");
}

#[tokio::test]
#[cfg_attr(postgres_missing, ignore = "PostgreSQL is not installed (apt-get install postgresql)")]
async fn a_watcher_on_one_replica_sees_what_another_writes_in_order() {
    let Some(storage) = postgres_only() else { return };
    let key = "replica-watch-key-0123456789".to_owned();
    let a = TestApp::spawn_on(storage.clone(), key.clone(), &[]).await;
    let b = TestApp::spawn_on(storage, key, &[]).await;
    let mut on_b = SseStream::open(&b, &b.key, None).await;
    let id = a.create_named("Across replicas", json!({})).await;
    // Updates through both replicas at once, all of one chatbot.
    let statuses: Vec<StatusCode> = futures::stream::iter(0..30)
        .map(|i| {
            let (app, id) = (if i % 2 == 0 { &a } else { &b }, &id);
            async move { app.patch(id, &json!({"description": format!("v{i}")})).await.status }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    assert!(statuses.iter().all(|s| *s == StatusCode::OK));
    let events = on_b.take(31).await;
    assert_eq!(events[0].event, "created");
    let revisions: Vec<u64> = events.iter().map(|e| e.json()["revision"].as_u64().unwrap_or(0)).collect();
    assert_eq!(revisions, (1..=31).collect::<Vec<_>>(), "in commit order, through both replicas");
    let tokens: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
    assert_eq!(tokens, (1..=31).map(|n| format!("c{n:x}")).collect::<Vec<_>>(), "no gaps");
}
