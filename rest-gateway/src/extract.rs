//! Request extractors whose rejections are [`ApiError`]s in the contract's shape, never plain text.

use axum::extract::multipart::MultipartError;
use axum::extract::{FromRequest, FromRequestParts, Multipart, Path, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use chatbot_core::avatar::MAX_AVATAR_BYTES;
use chatbot_core::domain::limits::MAX_REQUEST_BYTES;
use chatbot_core::{ChatbotId, Error, IdempotencyKey, OrgId, Provenance, Rejection, Violation, ViolationCode};
use serde_json::{Map, Value};

use crate::contract::json;
use crate::contract::request::json_type;
use crate::error::ApiError;
use crate::layers::Admitted;

/// The caller's organisation, as [`admit`](crate::layers::admit) found it from the `x-api-key` header
/// (which answered 401 or 429 before anything else of the request was read).
#[derive(Debug, Clone, Copy)]
pub struct Caller(pub OrgId);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let admitted = parts.extensions.get::<Admitted>().ok_or(Error::Unauthenticated)?;
        Ok(Caller(admitted.0.org))
    }
}

/// The header a write's author may explain it in (kept with its revision).
pub const CHANGE_NOTE_HEADER: &str = "x-change-note";

/// Who makes a write and why, as its revision records it: the admitted key, the request id (set by
/// the request id layer), and the optional `X-Change-Note` header (one line of up to 500 characters,
/// else a 400 naming it).
#[derive(Debug, Clone)]
pub struct Author(pub Provenance);

impl<S: Send + Sync> FromRequestParts<S> for Author {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let admitted = parts.extensions.get::<Admitted>().ok_or(Error::Unauthenticated)?;
        let note = match parts.headers.get(CHANGE_NOTE_HEADER) {
            None => None,
            Some(value) => Some(
                value
                    .to_str()
                    .map_err(|_| Rejection::new(ViolationCode::InvalidFormat, "must be printable ASCII"))
                    .and_then(chatbot_core::history::parse_note)
                    .map_err(|rejection| Error::invalid(rejection.at("X-Change-Note")))?,
            ),
        };
        let request_id = parts.headers.get(crate::layers::REQUEST_ID_HEADER).and_then(|v| v.to_str().ok());
        Ok(Author(Provenance::api_key(admitted.0.key, request_id, note)))
    }
}

/// The header that makes a write safe to retry.
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";

/// The header that marks an answer given again for a retried idempotency key.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";

/// The optional `Idempotency-Key` header: 1 to 255 printable ASCII characters, else a 400 naming it.
#[derive(Debug, Clone)]
pub struct Idempotency(pub Option<IdempotencyKey>);

impl<S: Send + Sync> FromRequestParts<S> for Idempotency {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get(IDEMPOTENCY_KEY_HEADER) else { return Ok(Idempotency(None)) };
        let key = value
            .to_str()
            .map_err(|_| Rejection::new(ViolationCode::InvalidFormat, "must be printable ASCII"))
            .and_then(IdempotencyKey::parse)
            .map_err(|rejection| Error::invalid(rejection.at("Idempotency-Key")))?;
        Ok(Idempotency(Some(key)))
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
/// [`MAX_REQUEST_BYTES`] (else 413), whole (else 400 `malformed_body`), well-formed (else 400 with line
/// and column), an object (else 400), with no key given twice (else 400 naming each).
#[derive(Debug)]
pub struct JsonObject(pub Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for JsonObject {
    type Rejection = ApiError;

    async fn from_request(request: Request, _: &S) -> Result<Self, Self::Rejection> {
        if !is_json(request.headers()) {
            return Err(ApiError::UnsupportedMediaType { expected: "application/json" });
        }
        let bytes = axum::body::to_bytes(request.into_body(), MAX_REQUEST_BYTES).await.map_err(|err| {
            // Over the limit (found by this read, or by the body limit layer), or broken off.
            let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&err);
            while let Some(error) = cause {
                if error.is::<http_body_util::LengthLimitError>() {
                    return ApiError::PayloadTooLarge { limit: MAX_REQUEST_BYTES };
                }
                cause = error.source();
            }
            ApiError::MalformedBody
        })?;
        let (value, duplicates) = json::parse(&bytes).map_err(ApiError::MalformedJson)?;
        if !duplicates.is_empty() {
            let violations = duplicates
                .into_iter()
                .map(|path| Violation::new(path, ViolationCode::DuplicateField, "is given more than once"))
                .collect();
            return Err(Error::Invalid { violations }.into());
        }
        match value {
            Value::Object(map) => Ok(JsonObject(map)),
            other @ (Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_) | Value::Array(_)) => {
                Err(ApiError::NotAnObject { found: json_type(&other) })
            }
        }
    }
}

/// An optional JSON object body: none at all (no `Content-Type`, no bytes) is `None`; anything else
/// is read as [`JsonObject`] is.
#[derive(Debug)]
pub struct OptionalJsonObject(pub Option<Map<String, Value>>);

impl<S: Send + Sync> FromRequest<S> for OptionalJsonObject {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let headers = request.headers();
        let empty = headers.get(header::CONTENT_LENGTH).is_none_or(|length| length.as_bytes() == b"0")
            && headers.get(header::TRANSFER_ENCODING).is_none();
        if empty && headers.get(header::CONTENT_TYPE).is_none() {
            return Ok(OptionalJsonObject(None));
        }
        let JsonObject(body) = JsonObject::from_request(request, state).await?;
        Ok(OptionalJsonObject(Some(body)))
    }
}

/// The bytes of the `avatar` file part of a `multipart/form-data` body (else 415): at most
/// [`MAX_AVATAR_BYTES`] (else 413, as soon as the part grows past it), the part given (else 400 naming
/// `avatar`). Other parts are read past and ignored. What the bytes are is for the core to decide, by
/// their content: the part's declared type is not trusted.
#[derive(Debug)]
pub struct AvatarUpload(pub Vec<u8>);

impl<S: Send + Sync> FromRequest<S> for AvatarUpload {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let not_multipart = ApiError::UnsupportedMediaType { expected: "multipart/form-data" };
        let mut form = Multipart::from_request(request, state).await.map_err(|_| not_multipart)?;
        let broken = |err: MultipartError| match err.status() {
            axum::http::StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge { limit: MAX_AVATAR_REQUEST_BYTES },
            _ => ApiError::MalformedBody,
        };
        let mut image = None;
        while let Some(mut part) = form.next_field().await.map_err(broken)? {
            if part.name() != Some("avatar") || image.is_some() {
                continue;
            }
            let mut bytes = Vec::new();
            while let Some(chunk) = part.chunk().await.map_err(broken)? {
                if bytes.len() + chunk.len() > MAX_AVATAR_BYTES {
                    return Err(Error::ImageTooLarge { max_bytes: MAX_AVATAR_BYTES }.into());
                }
                bytes.extend_from_slice(&chunk);
            }
            image = Some(bytes);
        }
        let missing = || {
            Error::invalid(Violation::new("avatar", ViolationCode::Required, "a file part named avatar is required"))
        };
        Ok(AvatarUpload(image.ok_or_else(missing)?))
    }
}

/// Largest avatar upload, in bytes: the image and the multipart framing around it.
pub const MAX_AVATAR_REQUEST_BYTES: usize = chatbot_core::avatar::MAX_AVATAR_UPLOAD_BYTES;

fn is_json(headers: &HeaderMap) -> bool {
    let Some(content_type) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else { return false };
    let essence = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}
