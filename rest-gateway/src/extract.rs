//! Request extractors whose rejections are [`ApiError`]s in the contract's shape, never plain text.

use std::sync::Arc;

use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use chatbot_core::domain::limits::MAX_REQUEST_BYTES;
use chatbot_core::{ChatbotId, Error, OrgId, Registry};
use serde_json::{Map, Value};

use crate::contract::request::json_type;
use crate::error::ApiError;

/// The header that carries the caller's API key.
pub const API_KEY_HEADER: &str = "x-api-key";

/// The caller's organisation, from the `x-api-key` header: 401 when it is missing or unknown, before
/// anything else of the request is read.
#[derive(Debug, Clone, Copy)]
pub struct Caller(pub OrgId);

impl FromRequestParts<Arc<Registry>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, registry: &Arc<Registry>) -> Result<Self, Self::Rejection> {
        let key = parts.headers.get(API_KEY_HEADER).and_then(|v| v.to_str().ok()).filter(|key| !key.is_empty());
        let key = key.ok_or(Error::Unauthenticated)?;
        Ok(Caller(registry.authenticate(key).await?))
    }
}

/// The `{chatbotId}` path segment; one that is not an id names no chatbot (404).
#[derive(Debug, Clone, Copy)]
pub struct ChatbotIdPath(pub ChatbotId);

impl<S: Send + Sync> FromRequestParts<S> for ChatbotIdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(id) = Path::<String>::from_request_parts(parts, state).await.map_err(|_| Error::NotFound)?;
        Ok(ChatbotIdPath(id.parse().map_err(|_| Error::NotFound)?))
    }
}

/// A JSON object body: `Content-Type` must be JSON (else 415), the body at most
/// [`MAX_REQUEST_BYTES`] (else 413), well-formed (else 400 with line and column), and an object
/// (else 400).
#[derive(Debug)]
pub struct JsonObject(pub Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for JsonObject {
    type Rejection = ApiError;

    async fn from_request(request: Request, _: &S) -> Result<Self, Self::Rejection> {
        if !is_json(request.headers()) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let bytes = axum::body::to_bytes(request.into_body(), MAX_REQUEST_BYTES)
            .await
            .map_err(|_| ApiError::PayloadTooLarge { limit: MAX_REQUEST_BYTES })?;
        match serde_json::from_slice::<Value>(&bytes).map_err(ApiError::MalformedJson)? {
            Value::Object(map) => Ok(JsonObject(map)),
            other @ (Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_) | Value::Array(_)) => {
                Err(ApiError::NotAnObject { found: json_type(&other) })
            }
        }
    }
}

fn is_json(headers: &HeaderMap) -> bool {
    let Some(content_type) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else { return false };
    let essence = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}
