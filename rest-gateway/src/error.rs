//! The one error type of the REST face, and the one mapping from it to the wire.
//!
//! Every error on every endpoint is answered as
//! `{"error": {"code": "...", "message": "...", "violations": [{"field", "code", "message"}]}}`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chatbot_core::Violation;
use chatbot_core::fair_use::Allowance;
use serde::Serialize;

/// Everything the REST face can answer with an error: what the core said, and what the gateway
/// itself refuses before the core is asked.
#[derive(Debug)]
pub enum ApiError {
    /// An error of the core (invalid input, unknown key, no such chatbot, store failure...).
    Core(chatbot_core::Error),
    /// The body is not JSON.
    MalformedJson(serde_json::Error),
    /// The body is JSON, but not an object.
    NotAnObject {
        /// The JSON type found instead, e.g. "an array".
        found: &'static str,
    },
    /// The body is not sent as the endpoint takes it.
    UnsupportedMediaType {
        /// What the endpoint takes: `application/json`.
        expected: &'static str,
    },
    /// The body is over the limit.
    PayloadTooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The body broke off, or its framing was broken (a bad chunk, a connection closed mid-body).
    MalformedBody,
    /// The service is shutting down and takes no new work.
    Draining,
    /// No route has that path.
    NoSuchRoute,
    /// The route does not take that method.
    MethodNotAllowed,
    /// An `If-Match` or `If-None-Match` header that is not a list of quoted entity tags.
    MalformedConditional,
}

impl From<chatbot_core::Error> for ApiError {
    fn from(err: chatbot_core::Error) -> Self {
        ApiError::Core(err)
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorJson<'a>,
}

#[derive(Serialize)]
struct ErrorJson<'a> {
    code: &'a str,
    message: &'a str,
    violations: Vec<ViolationJson<'a>>,
    /// Added by the layer that knows the request (`layers::shape_errors`), or here when there is none.
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<&'a str>,
}

#[derive(Serialize)]
struct ViolationJson<'a> {
    field: &'a str,
    code: &'a str,
    message: &'a str,
}

/// An error as it goes on the wire: status, stable code, message, violations, and for a rate limit
/// what its headers say.
struct Described {
    status: StatusCode,
    code: &'static str,
    message: String,
    violations: Vec<Violation>,
    rate_limited: Option<(u32, std::time::Duration)>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let described = self.described();
        let mut response = shaped(described.status, described.code, &described.message, &described.violations);
        if let Some((limit, retry_after)) = described.rate_limited {
            let wait = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(wait.max(1)));
            let allowance = Allowance { limit, remaining: 0, reset: retry_after };
            rate_limit_headers(&mut response, allowance);
        }
        response
    }
}

/// The error body of `err`, as JSON text: for an error that ends an event stream.
pub(crate) fn error_body(err: ApiError) -> String {
    let described = err.described();
    let violations = described
        .violations
        .iter()
        .map(|v| ViolationJson { field: &v.field, code: v.code.as_str(), message: &v.message })
        .collect();
    let error = ErrorJson { code: described.code, message: &described.message, violations, request_id: None };
    serde_json::to_string(&ErrorBody { error }).unwrap_or_default()
}

impl ApiError {
    /// The one mapping of every error to its wire form.
    fn described(self) -> Described {
        use chatbot_core::Error;
        let mut violations: Vec<Violation> = Vec::new();
        let mut rate_limited = None;
        let (status, code, message) = match self {
            ApiError::Core(err) => {
                let code = err.reason();
                let said = err.to_string();
                let (status, message) = match err {
                    Error::Invalid { violations: found } => {
                        let fields: Vec<&str> = found.iter().map(|v| v.field.as_str()).collect();
                        let message = format!("the request is invalid: check {}", fields.join(", "));
                        violations = found;
                        (StatusCode::BAD_REQUEST, message)
                    }
                    Error::NothingToUpdate => (StatusCode::BAD_REQUEST, "the body names no field to change".to_owned()),
                    Error::OutcomeUnknown => (StatusCode::SERVICE_UNAVAILABLE, said),
                    Error::Unavailable(source) => {
                        tracing::warn!(error = %source, "the store is unavailable");
                        (StatusCode::SERVICE_UNAVAILABLE, "the store is unavailable right now; retry later".to_owned())
                    }
                    Error::Storage(_) | Error::Keyring(_) => {
                        // The cause stays in the log; the client learns only that it was not its fault.
                        tracing::error!(error = %said, "storage failure");
                        let message = "the service could not complete the request; the cause has been logged";
                        (StatusCode::INTERNAL_SERVER_ERROR, message.to_owned())
                    }
                    Error::RateLimited { limit, retry_after } => {
                        rate_limited = Some((limit, retry_after));
                        (StatusCode::TOO_MANY_REQUESTS, said)
                    }
                    Error::Unauthenticated => (StatusCode::UNAUTHORIZED, said),
                    Error::NotFound => (StatusCode::NOT_FOUND, said),
                    Error::SlugTaken { .. } | Error::NotDeleted => (StatusCode::CONFLICT, said),
                    Error::EtagMismatch => (StatusCode::PRECONDITION_FAILED, said),
                    Error::ImageTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, said),
                    Error::UnsupportedImage => (StatusCode::UNSUPPORTED_MEDIA_TYPE, said),
                    Error::IdempotencyKeyReused => (StatusCode::UNPROCESSABLE_ENTITY, said),
                    Error::TooManyWatchers { .. } => (StatusCode::TOO_MANY_REQUESTS, said),
                    Error::ResyncRequired => (StatusCode::GONE, said),
                };
                (status, code, message)
            }
            ApiError::MalformedJson(err) => {
                let message =
                    format!("the body is not valid JSON: {err} (line {}, column {})", err.line(), err.column());
                (StatusCode::BAD_REQUEST, "malformed_json", message)
            }
            ApiError::NotAnObject { found } => {
                (StatusCode::BAD_REQUEST, "invalid_argument", format!("the body must be a JSON object, not {found}"))
            }
            ApiError::UnsupportedMediaType { expected } => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!("the body must be sent with Content-Type: {expected}"),
            ),
            ApiError::PayloadTooLarge { limit } => {
                (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", format!("the body must be at most {limit} bytes"))
            }
            ApiError::Draining => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the service is shutting down; retry on another replica".to_owned(),
            ),
            ApiError::MalformedBody => (
                StatusCode::BAD_REQUEST,
                "malformed_body",
                "the body broke off before its declared end, or its framing is broken".to_owned(),
            ),
            ApiError::NoSuchRoute => (StatusCode::NOT_FOUND, "not_found", "no such resource".to_owned()),
            ApiError::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this endpoint does not take that method".to_owned(),
            ),
            ApiError::MalformedConditional => (
                StatusCode::BAD_REQUEST,
                "invalid_argument",
                "a conditional header is not a list of quoted entity tags".to_owned(),
            ),
        };
        Described { status, code, message, violations, rate_limited }
    }
}

/// An answer in the error shape.
fn shaped(status: StatusCode, code: &str, message: &str, violations: &[Violation]) -> Response {
    let violations = violations
        .iter()
        .map(|v| ViolationJson { field: &v.field, code: v.code.as_str(), message: &v.message })
        .collect();
    (status, axum::Json(ErrorBody { error: ErrorJson { code, message, violations, request_id: None } })).into_response()
}

/// The error body for an answer known only by its status: one made below the handlers, by hyper (a
/// bad request line, a too-long URL, too many headers) or by a tower layer (a timeout, a body limit).
pub fn error_json(status: StatusCode, request_id: Option<&str>) -> Vec<u8> {
    let (code, message) = match status.as_u16() {
        400 => ("malformed_request", "the request could not be read as HTTP"),
        404 => ("not_found", "no such resource"),
        405 => ("method_not_allowed", "this endpoint does not take that method"),
        408 => ("request_timeout", "the request took too long to arrive or to answer"),
        413 => ("payload_too_large", "the body is over the limit"),
        414 => ("uri_too_long", "the URL is over the limit"),
        429 => ("rate_limited", "too many requests"),
        431 => ("headers_too_large", "the request's headers are too many or too large"),
        503 => ("unavailable", "the service cannot take this request now; retry later"),
        500..=599 => ("internal", "the service could not complete the request"),
        _ => ("http_error", "the request was refused"),
    };
    let body = ErrorBody { error: ErrorJson { code, message, violations: Vec::new(), request_id } };
    serde_json::to_vec(&body).unwrap_or_default()
}

/// The `RateLimit-*` headers (IETF draft) for `allowance`: on every answer of the API, and on a 429.
pub fn rate_limit_headers(response: &mut Response, allowance: Allowance) {
    let headers = response.headers_mut();
    let seconds = |d: std::time::Duration| HeaderValue::from(d.as_secs() + u64::from(d.subsec_nanos() > 0));
    headers.insert("ratelimit-limit", HeaderValue::from(allowance.limit));
    headers.insert("ratelimit-remaining", HeaderValue::from(allowance.remaining));
    headers.insert("ratelimit-reset", seconds(allowance.reset));
}
