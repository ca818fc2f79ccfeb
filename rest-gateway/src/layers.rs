//! What every REST request goes through around its handler: a request id (kept from the client when it
//! is sane, else made up) echoed on the answer; admission (the API key, and its rate limit, with the
//! `RateLimit-*` headers); limits on the URL, the body and the time a request may take; and the error
//! shape, given to every error answer, including those that tower layers make with an empty body.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chatbot_core::fair_use::Allowance;
use chatbot_core::{OrgId, Registry};
use tower_http::request_id::{MakeRequestUuid, RequestId};

use crate::error::{ApiError, error_json};
use crate::extract::API_KEY_HEADER;

/// The header that carries a request's id, both ways.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Longest URL accepted, in bytes (path and query).
pub const MAX_URI_BYTES: usize = 8 * 1024;

/// The address of the client at the other end of the connection (put in each request's extensions by
/// whoever accepts connections), for the per-client rate limit.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

/// The organisation a request was admitted for, put in its extensions by [`admit`].
#[derive(Debug, Clone, Copy)]
pub struct Admitted(pub OrgId);

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
    Response::from_parts(parts, axum::body::Body::from(body))
}

/// Refuses a URL over [`MAX_URI_BYTES`] with a 414.
pub async fn limit_uri(request: Request, next: Next) -> Response {
    let length = request.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if length > MAX_URI_BYTES {
        return StatusCode::URI_TOO_LONG.into_response();
    }
    next.run(request).await
}

/// Admits a request to the API: its `x-api-key` must be valid and within its rate limit (else 401 or
/// 429); without a valid key, the client address's limit applies. Every answer says what is left of
/// the bucket in `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset`.
pub async fn admit(State(registry): State<Arc<Registry>>, mut request: Request, next: Next) -> Response {
    let key = request.headers().get(API_KEY_HEADER).and_then(|v| v.to_str().ok());
    let client = request.extensions().get::<ClientAddr>().map(|addr| addr.0.ip());
    let (admitted, allowance) = registry.admit(key, client).await;
    let mut response = match admitted {
        Ok(org) => {
            request.extensions_mut().insert(Admitted(org));
            next.run(request).await
        }
        Err(err) => ApiError::from(err).into_response(),
    };
    if let Some(allowance) = allowance {
        rate_limit_headers(&mut response, allowance);
    }
    response
}

/// The `RateLimit-*` headers (IETF draft) for `allowance`.
pub fn rate_limit_headers(response: &mut Response, allowance: Allowance) {
    let headers = response.headers_mut();
    let seconds = |d: Duration| HeaderValue::from(d.as_secs() + u64::from(d.subsec_nanos() > 0));
    headers.insert("ratelimit-limit", HeaderValue::from(allowance.limit));
    headers.insert("ratelimit-remaining", HeaderValue::from(allowance.remaining));
    headers.insert("ratelimit-reset", seconds(allowance.reset));
}
