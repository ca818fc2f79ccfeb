//! The one error type of the REST face, and the one mapping from it to the wire.
//!
//! Every error on every endpoint is answered as
//! `{"error": {"code": "...", "message": "...", "violations": [{"field", "code", "message"}]}}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chatbot_core::Violation;
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
    /// The body is not sent as JSON.
    UnsupportedMediaType,
    /// The body is over the limit.
    PayloadTooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
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
}

#[derive(Serialize)]
struct ViolationJson<'a> {
    field: &'a str,
    code: &'a str,
    message: &'a str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        use chatbot_core::Error;
        let mut violations: Vec<Violation> = Vec::new();
        let (status, code, message) = match self {
            ApiError::Core(Error::Invalid { violations: found }) => {
                let fields: Vec<&str> = found.iter().map(|v| v.field.as_str()).collect();
                let message = format!("the request is invalid: check {}", fields.join(", "));
                violations = found;
                (StatusCode::BAD_REQUEST, "invalid_argument", message)
            }
            ApiError::Core(Error::NothingToUpdate) => {
                (StatusCode::BAD_REQUEST, "invalid_argument", "the body names no field to change".to_owned())
            }
            ApiError::Core(err @ Error::Unauthenticated) => {
                (StatusCode::UNAUTHORIZED, "unauthenticated", err.to_string())
            }
            ApiError::Core(err @ Error::NotFound) => (StatusCode::NOT_FOUND, "not_found", err.to_string()),
            ApiError::Core(err @ Error::SlugTaken { .. }) => (StatusCode::CONFLICT, "slug_taken", err.to_string()),
            ApiError::Core(err @ Error::EtagMismatch) => {
                (StatusCode::PRECONDITION_FAILED, "etag_mismatch", err.to_string())
            }
            ApiError::Core(Error::Unavailable(source)) => {
                tracing::warn!(error = %source, "the store is unavailable");
                let message = "the store is unavailable right now; retry later";
                (StatusCode::SERVICE_UNAVAILABLE, "unavailable", message.to_owned())
            }
            ApiError::Core(Error::Storage(source)) => {
                // The cause stays in the log; the client learns only that it was not its fault.
                tracing::error!(error = %source, "storage failure");
                let message = "the service could not complete the request; the cause has been logged";
                (StatusCode::INTERNAL_SERVER_ERROR, "internal", message.to_owned())
            }
            ApiError::MalformedJson(err) => {
                let message =
                    format!("the body is not valid JSON: {err} (line {}, column {})", err.line(), err.column());
                (StatusCode::BAD_REQUEST, "malformed_json", message)
            }
            ApiError::NotAnObject { found } => {
                (StatusCode::BAD_REQUEST, "invalid_argument", format!("the body must be a JSON object, not {found}"))
            }
            ApiError::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "the body must be sent with Content-Type: application/json".to_owned(),
            ),
            ApiError::PayloadTooLarge { limit } => {
                (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", format!("the body must be at most {limit} bytes"))
            }
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
        let violations = violations
            .iter()
            .map(|v| ViolationJson { field: &v.field, code: v.code.as_str(), message: &v.message })
            .collect();
        let body = ErrorBody { error: ErrorJson { code, message: &message, violations } };
        (status, axum::Json(body)).into_response()
    }
}
