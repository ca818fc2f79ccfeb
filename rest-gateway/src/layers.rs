//! What every REST request goes through around its handler: a request id (kept from the client when it
//! is sane, else made up) echoed on the answer; admission (the API key, and its rate limit, with the
//! `RateLimit-*` headers); limits on the URL, the body and the time a request may take; and the error
//! shape, given to every error answer, including those that tower layers make with an empty body.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chatbot_core::{Principal, Registry};
use tower_http::request_id::{MakeRequestUuid, RequestId};
use tracing::Span;

use crate::error::{ApiError, error_json, rate_limit_headers};

/// The header that carries the caller's API key.
pub const API_KEY_HEADER: &str = "x-api-key";

/// The header that carries a request's id, both ways.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Longest URL accepted, in bytes (path and query).
pub const MAX_URI_BYTES: usize = 8 * 1024;

/// The address of the client at the other end of the connection (put in each request's extensions by
/// whoever accepts connections), for the per-client rate limit.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

/// The socket a request came on, for an answer that streams (an event stream): to notice at once
/// that its client has gone (a reset or a close, which HTTP/1 does not read while answering), and to
/// keep its send buffer small, so that a client that stops reading is found out by a write that waits.
#[derive(Debug, Clone)]
pub struct StreamingPeer(pub Arc<tokio::net::TcpStream>);

impl StreamingPeer {
    /// Completes when the client has closed or reset the connection. Bytes the client sends meanwhile
    /// (a next request) mean it is there: then it never completes.
    pub async fn gone(self) {
        let mut byte = [0u8; 1];
        match self.0.peek(&mut byte).await {
            Ok(0) | Err(_) => {}
            Ok(_) => std::future::pending().await,
        }
    }

    /// Asks the kernel for a send buffer of about `bytes`.
    pub fn limit_send_buffer(&self, bytes: usize) {
        let _ = socket2::SockRef::from(&*self.0).set_send_buffer_size(bytes);
    }
}

/// Who a request was admitted for (its key's organisation and id), put in its extensions by [`admit`].
#[derive(Debug, Clone, Copy)]
pub struct Admitted(pub Principal);

/// Keeps the client's `x-request-id` if it is sane (printable ASCII, at most 128 characters); drops it
/// otherwise, so that one is made up (by tower-http's `SetRequestId`).
pub async fn sanitize_request_id(mut request: Request, next: Next) -> Response {
    let sane = request
        .headers()
        .get(&REQUEST_ID_HEADER)
        .is_none_or(|id| id.to_str().is_ok_and(chatbot_core::request_id_is_valid));
    if !sane {
        request.headers_mut().remove(&REQUEST_ID_HEADER);
    }
    next.run(request).await
}

/// How request ids are made up: random UUIDs.
pub fn make_request_id() -> MakeRequestUuid {
    MakeRequestUuid
}

/// Gives every error answer the error shape and the request's id: an answer that already has the shape
/// gets `request_id` added; one without a JSON body (a tower layer's timeout, a body limit) gets the
/// shape for its status.
pub async fn shape_errors(request: Request, next: Next) -> Response {
    let id = request.extensions().get::<RequestId>().and_then(|id| id.header_value().to_str().ok()).map(str::to_owned);
    let closes = carries_body(&request) && request.version() <= axum::http::Version::HTTP_11;
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_json =
        response.headers().get(header::CONTENT_TYPE).is_some_and(|t| t.as_bytes().starts_with(b"application/json"));
    let (mut parts, body) = response.into_parts();
    let mut error: serde_json::Value = match is_json {
        true => match axum::body::to_bytes(body, 64 * 1024).await.ok().and_then(|b| serde_json::from_slice(&b).ok()) {
            Some(error) => error,
            None => serde_json::from_slice(&error_json(status, None)).unwrap_or_default(),
        },
        false => serde_json::from_slice(&error_json(status, None)).unwrap_or_default(),
    };
    if let (Some(id), Some(fields)) = (id, error.get_mut("error").and_then(|e| e.as_object_mut())) {
        fields.insert("request_id".into(), id.into());
    }
    let body = serde_json::to_vec(&error).unwrap_or_default();
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    parts.headers.remove(header::CONTENT_LENGTH);
    if closes {
        // An error may come before the body was read (a key refused, the store unavailable), and HTTP/1
        // cannot go on past an unread body: the connection is closed, and the answer says so, so that
        // no client sends its next request into a closed connection.
        parts.headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    Response::from_parts(parts, axum::body::Body::from(body))
}

/// Whether a request announces a body (a length over zero, or chunks).
fn carries_body(request: &Request) -> bool {
    let headers = request.headers();
    headers.contains_key(header::TRANSFER_ENCODING)
        || headers.get(header::CONTENT_LENGTH).is_some_and(|length| length.as_bytes() != b"0")
}

/// Refuses a URL over [`MAX_URI_BYTES`] with a 414.
pub async fn limit_uri(request: Request, next: Next) -> Response {
    let length = request.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if length > MAX_URI_BYTES {
        return StatusCode::URI_TOO_LONG.into_response();
    }
    next.run(request).await
}

/// The route a request matched, as its template (`/api/external/chatbot/{chatbot_id}`, never the raw
/// path), put on the response for [`observe`].
#[derive(Debug, Clone)]
pub struct RouteTemplate(pub MatchedPath);

/// (A route layer.) Records the matched route's template in the request's span, for the access log,
/// and on the response, for the metrics.
pub async fn record_route(request: Request, next: Next) -> Response {
    // A template is shared, not copied: cloning a `MatchedPath` counts a reference.
    let route = request.extensions().get::<MatchedPath>().cloned();
    if let Some(route) = &route {
        Span::current().record("route", route.as_str());
    }
    let mut response = next.run(request).await;
    if let Some(route) = route {
        response.extensions_mut().insert(RouteTemplate(route));
    }
    response
}

/// Counts every request by face, route template, method and status, with its latency, and how many
/// are in flight.
pub async fn observe(request: Request, next: Next) -> Response {
    let method = method_label(request.method());
    let started = std::time::Instant::now();
    let _in_flight = InFlight::enter("rest");
    let response = next.run(request).await;
    let route = response.extensions().get::<RouteTemplate>().map_or("unmatched", |r| r.0.as_str());
    let (duration, count) = RequestMetrics::of(route, method, response.status().as_u16());
    duration.record(started.elapsed().as_secs_f64());
    count.increment(1);
    response
}

/// The request metrics' handles, resolved once per route, method and status (each a closed set, so the
/// table is small) rather than built from label strings on every request.
struct RequestMetrics;

/// Route template -> (method -> duration histogram, (method, status) -> counter).
type Handles = std::collections::HashMap<
    String,
    (
        std::collections::HashMap<&'static str, metrics::Histogram>,
        std::collections::HashMap<(&'static str, u16), metrics::Counter>,
    ),
>;

impl RequestMetrics {
    /// The duration histogram and the request counter of a request of `route` and `method` answered
    /// with `status`.
    fn of(route: &str, method: &'static str, status: u16) -> (metrics::Histogram, metrics::Counter) {
        static HANDLES: std::sync::LazyLock<std::sync::Mutex<Handles>> = std::sync::LazyLock::new(Default::default);
        let mut handles = HANDLES.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !handles.contains_key(route) {
            handles.insert(route.to_owned(), Default::default());
        }
        let Some((durations, counts)) = handles.get_mut(route) else { unreachable!("inserted above") };
        let labels = |extra: Option<String>| {
            let mut labels =
                vec![("face", "rest".to_owned()), ("route", route.to_owned()), ("method", method.to_owned())];
            labels.extend(extra.map(|status| ("status", status)));
            labels
        };
        let duration = durations
            .entry(method)
            .or_insert_with(|| metrics::histogram!(chatbot_core::metric::REQUEST_DURATION, &labels(None)))
            .clone();
        let count = counts
            .entry((method, status))
            .or_insert_with(|| metrics::counter!(chatbot_core::metric::REQUESTS, &labels(Some(status.to_string()))))
            .clone();
        (duration, count)
    }
}

/// A method as a metrics label: one of HTTP's own, or `other` (a client may invent any number of
/// methods, and each would be a series of its own).
fn method_label(method: &axum::http::Method) -> &'static str {
    const KNOWN: [&str; 9] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"];
    KNOWN.into_iter().find(|known| *known == method.as_str()).unwrap_or("other")
}

/// One request in flight (the `chatbotd_requests_in_flight` gauge), until dropped, however the request
/// ends.
pub struct InFlight(metrics::Gauge);

impl InFlight {
    /// A request of `face` starts.
    pub fn enter(face: &'static str) -> Self {
        let gauge = metrics::gauge!(chatbot_core::metric::REQUESTS_IN_FLIGHT, "face" => face);
        gauge.increment(1);
        InFlight(gauge)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.decrement(1);
    }
}

/// The span of one request, in which every log line of the request is written; the access log line
/// ends it (see [`access_log`]).
pub fn request_span(request: &axum::http::Request<axum::body::Body>) -> Span {
    let id = request.headers().get(&REQUEST_ID_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("-");
    tracing::info_span!(
        "request",
        face = "rest",
        method = %request.method(),
        route = tracing::field::Empty,
        request_id = %id,
        org = tracing::field::Empty,
    )
}

/// The access log: one line per request, at its end, with its status and duration (the span adds the
/// face, method, route, request id and organisation). Never a header: no key can reach the log.
pub fn access_log(response: &axum::http::Response<axum::body::Body>, latency: Duration, _span: &Span) {
    let duration_ms = latency.as_secs_f64() * 1000.0;
    tracing::info!(target: "access", status = response.status().as_u16(), duration_ms, "answered");
}

/// Admits a request to the API: its `x-api-key` must be valid and within its rate limit (else 401 or
/// 429); without a valid key, the client address's limit applies. Every answer says what is left of
/// the bucket in `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset`.
pub async fn admit(State(registry): State<Arc<Registry>>, mut request: Request, next: Next) -> Response {
    let key = request.headers().get(API_KEY_HEADER).and_then(|v| v.to_str().ok());
    let client = request.extensions().get::<ClientAddr>().map(|addr| addr.0.ip());
    let (admitted, allowance) = registry.admission().admit(key, client).await;
    let mut response = match admitted {
        Ok(principal) => {
            Span::current().record("org", tracing::field::display(principal.org));
            request.extensions_mut().insert(Admitted(principal));
            next.run(request).await
        }
        Err(err) => ApiError::from(err).into_response(),
    };
    if let Some(allowance) = allowance {
        rate_limit_headers(&mut response, allowance);
    }
    response
}
