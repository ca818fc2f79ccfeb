//! Hostile clients, at the socket: nothing they send makes the service hang, answer a 5xx, or answer
//! without the error shape, and no number of stalled connections takes it from others. (These are
//! about connections and framing, which never reach a store: they run on the embedded engine.)

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use grpc_server::pb;
use prost::Message as _;
use tonic_types::StatusExt;

use crate::helpers::{Engine, TestApp};

/// The REST address of `app`.
fn rest_addr(app: &TestApp) -> SocketAddr {
    app.rest.trim_start_matches("http://").parse().expect("an address")
}

/// Sends `bytes` on a fresh connection, half-closes it unless `keep_open`, and reads the answer: the
/// status code and the body, or `None` if the connection closed without one. Never waits past `wait`.
fn exchange(addr: SocketAddr, bytes: &[u8], keep_open: bool, wait: Duration) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(addr).expect("connects");
    stream.set_read_timeout(Some(wait)).expect("a timeout");
    let _ = stream.write_all(bytes);
    if !keep_open {
        let _ = stream.shutdown(std::net::Shutdown::Write);
    }
    let mut answer = Vec::new();
    let mut buffer = [0u8; 64 * 1024];
    let started = Instant::now();
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => {
                answer.extend_from_slice(&buffer[..n]);
                if head_and_body_complete(&answer) {
                    break;
                }
            }
            Err(_) => break,
        }
        assert!(started.elapsed() < wait * 2, "the service never stopped talking");
    }
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()?;
    Some((status, text.split_once("\r\n\r\n").map(|(_, body)| body.to_owned()).unwrap_or_default()))
}

fn head_and_body_complete(answer: &[u8]) -> bool {
    let text = String::from_utf8_lossy(answer);
    let Some((head, body)) = text.split_once("\r\n\r\n") else { return false };
    let length = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length: ").and_then(|n| n.trim().parse().ok()));
    length.is_some_and(|length: usize| body.len() >= length)
}

/// Asserts an answer in the error shape with `status` and `code`.
fn shaped(answer: Option<(u16, String)>, status: u16, code: &str, what: &str) {
    let (got, body) = answer.unwrap_or_else(|| panic!("{what}: no answer"));
    assert_eq!(got, status, "{what}: {body}");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap_or_else(|_| panic!("{what}: not JSON: {body}"));
    assert_eq!(body["error"]["code"], code, "{what}: {body}");
    assert!(body["error"]["request_id"].is_string(), "{what}: a request id in {body}");
}

#[tokio::test]
async fn a_half_sent_request_head_is_closed_within_the_header_timeout() {
    let app =
        TestApp::spawn_on(crate::helpers::Storage::new(Engine::Sled), "k".repeat(32), &["--header-timeout", "1s"])
            .await;
    let addr = rest_addr(&app);
    let started = Instant::now();
    let answer = tokio::task::spawn_blocking(move || {
        exchange(addr, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ", true, Duration::from_secs(10))
    })
    .await
    .expect("joined");
    assert!(started.elapsed() < Duration::from_secs(5), "closed after {:?}", started.elapsed());
    if let Some((status, _)) = answer {
        assert!(status < 500, "{status}");
    }
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let app =
        TestApp::spawn_on(crate::helpers::Storage::new(Engine::Sled), "k".repeat(32), &["--header-timeout", "1s"])
            .await;
    let addr = rest_addr(&app);
    let closed = tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(addr).expect("connects");
        stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").expect("sent");
        stream.set_read_timeout(Some(Duration::from_secs(10))).expect("a timeout");
        let mut buffer = [0u8; 4096];
        let _ = stream.read(&mut buffer).expect("the answer");
        let idle = Instant::now();
        while stream.read(&mut buffer).is_ok_and(|n| n > 0) {}
        idle.elapsed()
    })
    .await
    .expect("joined");
    assert!(closed < Duration::from_secs(5), "an idle connection stayed open {closed:?}");
}

#[tokio::test]
async fn a_declared_oversize_body_gets_413_at_once_and_a_body_that_breaks_off_400() {
    let app = TestApp::spawn(Engine::Sled).await;
    let (addr, key) = (rest_addr(&app), app.key.clone());
    tokio::task::spawn_blocking(move || {
        let head = |length: &str| {
            format!(
                "POST /api/external/chatbots HTTP/1.1\r\nHost: x\r\nx-api-key: {key}\r\ncontent-type: application/json\r\ncontent-length: {length}\r\n\r\n"
            )
        };
        let started = Instant::now();
        let oversize = exchange(addr, head("10000000000").as_bytes(), true, Duration::from_secs(10));
        assert!(started.elapsed() < Duration::from_secs(2), "answered at once, not after the body");
        shaped(oversize, 413, "payload_too_large", "a declared 10 GB body");

        let broken = [head("100").as_bytes(), b"{\"name\":"].concat();
        shaped(exchange(addr, &broken, false, Duration::from_secs(10)), 400, "malformed_body", "a body cut short");

        // The limit itself (256 KiB) is read and judged by the rules (here: a description far too long);
        // one byte more is a 413.
        let limit = chatbot_core::domain::limits::MAX_REQUEST_BYTES;
        let body = |length: usize| {
            let frame = r#"{"name":"Big","description":""}"#.len();
            format!(r#"{{"name":"Big","description":"{}"}}"#, "d".repeat(length - frame))
        };
        let at_limit = [head(&limit.to_string()).as_bytes(), body(limit).as_bytes()].concat();
        let answer = exchange(addr, &at_limit, false, Duration::from_secs(10));
        assert_eq!(answer.as_ref().map(|a| a.0), Some(400), "a body at the limit is read: {answer:?}");
        assert!(answer.is_some_and(|a| a.1.contains(r#""field":"description""#)), "and judged by the rules");
        let past = [head(&(limit + 1).to_string()).as_bytes(), body(limit + 1).as_bytes()].concat();
        shaped(exchange(addr, &past, false, Duration::from_secs(10)), 413, "payload_too_large", "one byte past it");
    })
    .await
    .expect("joined");
}

#[tokio::test]
async fn rejections_below_the_handlers_come_in_the_error_shape() {
    let app = TestApp::spawn(Engine::Sled).await;
    let addr = rest_addr(&app);
    tokio::task::spawn_blocking(move || {
        let wait = Duration::from_secs(10);
        let long_url = format!("GET /api/external/chatbots?{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(100 * 1024));
        shaped(exchange(addr, long_url.as_bytes(), false, wait), 414, "uri_too_long", "a 100 KB URL");

        let medium_url = format!("GET /healthz?{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(10 * 1024));
        shaped(exchange(addr, medium_url.as_bytes(), false, wait), 414, "uri_too_long", "a 10 KB URL");

        // `--max-headers` (64 by default) at the limit and one past it, each line far below the
        // head's byte limit: what refuses the 65th is the count.
        let headers = |count: usize| -> String {
            let lines: String = (1..count).map(|i| format!("X-H{i}: v\r\n")).collect();
            format!("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{lines}\r\n")
        };
        let at_limit = exchange(addr, headers(63).as_bytes(), false, wait);
        assert_eq!(at_limit.map(|a| a.0), Some(200), "64 header lines are taken");
        shaped(exchange(addr, headers(64).as_bytes(), false, wait), 431, "headers_too_large", "65 header lines");

        shaped(
            exchange(addr, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Nul: a\0b\r\n\r\n", false, wait),
            400,
            "malformed_request",
            "a NUL in a header",
        );
        let bad_length = b"POST /api/external/chatbots HTTP/1.1\r\nHost: x\r\ncontent-length: abc\r\n\r\n";
        shaped(exchange(addr, bad_length, false, wait), 400, "malformed_request", "a bad Content-Length");
        shaped(exchange(addr, b"GARBAGE\r\n\r\n", false, wait), 400, "malformed_request", "a bad request line");
    })
    .await
    .expect("joined");
}

#[tokio::test]
async fn connections_past_the_cap_make_room_by_closing_silent_ones_and_the_service_keeps_answering() {
    let app =
        TestApp::spawn_on(crate::helpers::Storage::new(Engine::Sled), "k".repeat(32), &["--max-connections", "8"])
            .await;
    let addr = rest_addr(&app);
    tokio::task::spawn_blocking(move || {
        let mut kept = TcpStream::connect(addr).expect("connects");
        kept.set_read_timeout(Some(Duration::from_secs(5))).expect("a timeout");
        let mut buffer = [0u8; 4096];
        let mut healthz = || {
            kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").expect("sent");
            let n = kept.read(&mut buffer).expect("an answer");
            String::from_utf8_lossy(&buffer[..n]).starts_with("HTTP/1.1 200")
        };
        assert!(healthz());
        let flood: Vec<TcpStream> = (0..40).filter_map(|_| TcpStream::connect(addr).ok()).collect();
        std::thread::sleep(Duration::from_millis(300));
        let over = exchange(addr, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", false, Duration::from_secs(5));
        assert_eq!(over.map(|a| a.0), Some(200), "a connection over the cap is served: a silent one made room");
        assert!(healthz(), "a connection made before the flood still answers");
        drop(flood);
        std::thread::sleep(Duration::from_millis(300));
        let after = exchange(
            addr,
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            false,
            Duration::from_secs(5),
        );
        assert_eq!(after.map(|a| a.0), Some(200), "once the flood is gone, new connections are served");
    })
    .await
    .expect("joined");
}

#[tokio::test]
async fn grpc_messages_that_do_not_decode_or_are_too_large_get_their_right_codes() {
    let app = TestApp::spawn(Engine::Sled).await;
    let channel =
        tonic::transport::Channel::from_shared(app.grpc.clone()).expect("a URL").connect().await.expect("connects");

    // A CreateChatbotRequest whose `chatbot` field claims more bytes than follow.
    let garbage = bytes::Bytes::from_static(&[0x0a, 0x50, 0x01]);
    let mut raw = tonic::client::Grpc::new(channel.clone());
    raw.ready().await.expect("ready");
    let path = http::uri::PathAndQuery::from_static("/chatbot.v1.ChatbotService/CreateChatbot");
    let status = raw.unary::<_, bytes::Bytes, _>(app.grpc_request(garbage), path, RawCodec).await.expect_err("refused");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert_eq!(status.get_error_details().error_info().map(|i| i.reason.as_str()), Some("malformed_message"));

    let mut client = pb::chatbot_service_client::ChatbotServiceClient::new(channel);
    let huge = pb::CreateChatbotRequest {
        chatbot: Some(pb::Chatbot {
            name: Some("Huge".into()),
            description: Some("x".repeat(300 * 1024)),
            ..Default::default()
        }),
        validate_only: false,
        request_id: String::new(),
    };
    assert!(huge.encoded_len() > 256 * 1024);
    let status = client.create_chatbot(app.grpc_request(huge)).await.expect_err("refused");
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    assert_eq!(status.get_error_details().error_info().map(|i| i.reason.as_str()), Some("payload_too_large"));
}

#[tokio::test]
async fn arbitrary_bytes_on_the_socket_never_get_a_5xx_or_a_hang() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};

    let app = TestApp::spawn(Engine::Sled).await;
    let addr = rest_addr(&app);
    tokio::task::spawn_blocking(move || {
        let prefix = prop_oneof![
            Just(b"".to_vec()),
            Just(b"GET / HTTP/1.1\r\n".to_vec()),
            Just(b"POST /api/external/chatbots HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n".to_vec()),
        ];
        let requests =
            (prefix, proptest::collection::vec(any::<u8>(), 0..600)).prop_map(|(p, tail)| [p, tail].concat());
        let mut runner = TestRunner::new(Config { cases: 64, ..Config::default() });
        runner
            .run(&requests, |bytes| {
                let started = Instant::now();
                let answer = exchange(addr, &bytes, false, Duration::from_secs(15));
                prop_assert!(started.elapsed() < Duration::from_secs(12), "it hung");
                if let Some((status, _)) = answer {
                    prop_assert!(status < 500, "answered {status}");
                }
                Ok(())
            })
            .expect("no input gets a 5xx or hangs");
    })
    .await
    .expect("joined");
}

/// A codec that sends bytes as they are, to put a malformed message on the wire.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RawCodec;

impl tonic::codec::Codec for RawCodec {
    type Encode = bytes::Bytes;
    type Decode = bytes::Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl tonic::codec::Encoder for RawCodec {
    type Item = bytes::Bytes;
    type Error = tonic::Status;

    fn encode(&mut self, item: Self::Item, dst: &mut tonic::codec::EncodeBuf<'_>) -> Result<(), Self::Error> {
        bytes::BufMut::put_slice(dst, &item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawCodec {
    type Item = bytes::Bytes;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut tonic::codec::DecodeBuf<'_>) -> Result<Option<Self::Item>, Self::Error> {
        let length = bytes::Buf::remaining(src);
        Ok(Some(bytes::Buf::copy_to_bytes(src, length)))
    }
}

#[tokio::test]
async fn a_request_whose_body_trickles_past_the_request_timeout_gets_408_and_one_inside_it_is_served() {
    let flags = ["--request-timeout", "2s", "--header-timeout", "10s", "--idle-timeout", "60s"];
    let app = TestApp::spawn_on(crate::helpers::Storage::new(Engine::Sled), "t".repeat(32), &flags).await;
    let (addr, key) = (rest_addr(&app), app.key.clone());
    tokio::task::spawn_blocking(move || {
        let body = r#"{"name":"Slow but in time"}"#;
        let head = format!(
            "POST /api/external/chatbots HTTP/1.1\r\nHost: x\r\nx-api-key: {key}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        // Half the body, then nothing: the answer is a 408 at the timeout, not at the idle timeout.
        let started = Instant::now();
        let stalled = exchange(addr, [head.as_bytes(), &body.as_bytes()[..10]].concat().as_slice(), true, Duration::from_secs(20));
        let waited = started.elapsed();
        shaped(stalled, 408, "request_timeout", "a body that stops half way");
        assert!(waited >= Duration::from_millis(1_900) && waited < Duration::from_secs(8), "answered after {waited:?}");

        // The same request, its body sent a second late: inside the timeout, so it is served.
        let mut stream = TcpStream::connect(addr).expect("connects");
        stream.set_read_timeout(Some(Duration::from_secs(10))).expect("a timeout");
        stream.write_all([head.as_bytes(), &body.as_bytes()[..10]].concat().as_slice()).expect("sent");
        std::thread::sleep(Duration::from_secs(1));
        stream.write_all(&body.as_bytes()[10..]).expect("sent");
        let mut answer = [0u8; 12];
        stream.read_exact(&mut answer).expect("an answer");
        assert_eq!(&answer, b"HTTP/1.1 201", "served within the timeout");
    })
    .await
    .expect("joined");
}

#[tokio::test]
async fn a_grpc_connection_runs_at_most_max_streams_calls_at_once() {
    use grpc_server::pb;
    let app =
        TestApp::spawn_on(crate::helpers::Storage::new(Engine::Sled), "s".repeat(32), &["--max-streams", "2"]).await;
    let channel =
        tonic::transport::Channel::from_shared(app.grpc.clone()).expect("a URL").connect().await.expect("connects");
    let mut client = pb::chatbot_service_client::ChatbotServiceClient::new(channel);
    // Two change streams hold both of the connection's slots.
    let mut watches = Vec::new();
    for _ in 0..2 {
        let request = app.grpc_request(pb::WatchChatbotsRequest::default());
        watches.push(client.watch_chatbots(request).await.expect("a watch opens").into_inner());
    }
    let list = || app.grpc_request(pb::ListChatbotsRequest::default());
    let third = tokio::time::timeout(Duration::from_secs(1), client.list_chatbots(list())).await;
    assert!(!matches!(third, Ok(Ok(_))), "a third call on the connection is not served while two streams run");
    drop(watches.pop());
    let freed = tokio::time::timeout(Duration::from_secs(5), client.list_chatbots(list())).await;
    assert!(matches!(freed, Ok(Ok(_))), "served once a slot is free: {freed:?}");
}
