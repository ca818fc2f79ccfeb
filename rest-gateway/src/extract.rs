//! Request extractors whose rejections are [`ApiError`]s in the contract's shape, never plain text.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use serde_json::{Map, Value};

use crate::error::{ApiError, FieldViolation};

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// The caller's `x-api-key` header. A missing (or non-ASCII) key is rejected with 401 at once; an
/// unknown one is rejected by the service.
#[derive(Debug, Clone)]
pub struct ApiKey(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ApiKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let key = parts.headers.get(grpc_server::API_KEY_METADATA).and_then(|v| v.to_str().ok());
        match key {
            Some(key) if !key.is_empty() => Ok(ApiKey(key.to_owned())),
            _ => Err(ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", "the x-api-key header is required")),
        }
    }
}

/// A JSON object body: `Content-Type` must be JSON (else 415), the body at most 256 KiB (else 413),
/// well-formed (else 400 with line and column), and an object (else 400).
#[derive(Debug)]
pub struct JsonObject(pub Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for JsonObject {
    type Rejection = ApiError;

    async fn from_request(request: Request, _: &S) -> Result<Self, Self::Rejection> {
        if !is_json(request.headers()) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "the body must be sent with Content-Type: application/json",
            ));
        }
        let bytes = axum::body::to_bytes(request.into_body(), MAX_BODY_BYTES).await.map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("the body must be at most {MAX_BODY_BYTES} bytes"),
            )
        })?;
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(map)) => Ok(JsonObject(map)),
            Ok(other) => Err(ApiError::invalid(vec![FieldViolation::new(
                "",
                "wrong_type",
                format!("the body must be a JSON object, not {}", json_type(&other)),
            )])),
            Err(err) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "malformed_json",
                format!("the body is not valid JSON: {err} (line {}, column {})", err.line(), err.column()),
            )),
        }
    }
}

fn is_json(headers: &HeaderMap) -> bool {
    let Some(content_type) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else { return false };
    let essence = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// The JSON type of a value, for messages.
pub fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
