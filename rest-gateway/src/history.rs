//! The history endpoints: a chatbot's revisions listed, read, diffed, restored and published. Every
//! route is behind `x-api-key`; another organisation's chatbot is a 404 as everywhere.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chatbot_core::domain::Slug;
use chatbot_core::domain::limits::MAX_PAGE_SIZE;
use chatbot_core::history::RevisionRef;
use chatbot_core::view::{MessageOnly, RevisionDiffJson, RevisionEnvelope, RevisionJson, RevisionPageJson};
use chatbot_core::{ChatbotId, Error, Registry, Violation, ViolationCode};
use serde_json::Value;

use crate::contract::request::json_type;
use crate::error::ApiError;
use crate::extract::{Author, Caller, ChatbotIdPath, Idempotency, OptionalJsonObject};
use crate::preconditions::{etag_header, if_none_match};
use crate::query::QueryParams;
use crate::routes::{chatbot_response, expected_etag};

/// The history routes (to merge under the API's admission layer).
pub(crate) fn routes() -> Router<Arc<Registry>> {
    Router::new()
        .route("/api/external/chatbot/{chatbot_id}/revisions", get(list))
        .route("/api/external/chatbot/{chatbot_id}/revisions/{revision}", get(get_one))
        .route("/api/external/chatbot/{chatbot_id}/revisions/{revision}/diff", get(diff))
        .route("/api/external/chatbot/{chatbot_id}/revisions/{revision}/restore", post(restore))
        .route("/api/external/chatbot/{chatbot_id}/revisions/{revision}/publish", post(publish))
        .route("/api/external/chatbot/{chatbot_id}/unpublish", post(unpublish))
        .route("/api/external/chatbot/{chatbot_id}/undelete", post(undelete))
        .route("/api/external/chatbot/{chatbot_id}/purge", post(purge))
}

/// A revision's content never changes: caches may keep it as long as they like (for this caller).
const IMMUTABLE: HeaderValue = HeaderValue::from_static("private, max-age=31536000, immutable");

/// The chatbot and the revision a path names; either not being one is a 404.
fn target(chatbot: &str, revision: &str) -> Result<(ChatbotId, RevisionRef), ApiError> {
    let id = chatbot.parse().map_err(|_| Error::NotFound)?;
    Ok((id, RevisionRef::parse(revision).ok_or(Error::NotFound)?))
}

/// `GET /api/external/chatbot/{chatbotId}/revisions`: newest first, `limit` (1 to 100) and `cursor`.
async fn list(
    State(registry): State<Arc<Registry>>,
    Caller(org): Caller,
    Path(chatbot): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let id: ChatbotId = chatbot.parse().map_err(|_| Error::NotFound)?;
    let params = QueryParams::parse(query.as_deref(), &["limit", "cursor"])?;
    let mut violations = Vec::new();
    let limit = match params.get("limit").map(str::parse::<usize>) {
        None => None,
        Some(Ok(limit @ 1..=MAX_PAGE_SIZE)) => Some(limit),
        Some(_) => {
            let message = format!("must be a whole number from 1 to {MAX_PAGE_SIZE}");
            violations.push(Violation::new("limit", ViolationCode::InvalidFormat, message));
            None
        }
    };
    let below = match params.get("cursor").map(RevisionRef::parse) {
        None => None,
        Some(Some(RevisionRef::Number(below))) => Some(below),
        Some(_) => {
            violations.push(Violation::new(
                "cursor",
                ViolationCode::InvalidFormat,
                "is not a cursor this service gave",
            ));
            None
        }
    };
    if !violations.is_empty() {
        return Err(Error::Invalid { violations }.into());
    }
    let page = registry.revisions(org, id, limit, below).await?;
    let revisions = page.revisions.iter().map(RevisionJson::new).collect();
    Ok(Json(RevisionPageJson { revisions, next_cursor: page.next.map(|n| n.to_string()) }).into_response())
}

/// `GET /api/external/chatbot/{chatbotId}/revisions/{revision}`: by number or `version_id`, with its
/// content; strong `ETag` (its `version_id`) and immutable caching.
async fn get_one(
    State(registry): State<Arc<Registry>>,
    Caller(org): Caller,
    Path((chatbot, revision)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (id, which) = target(&chatbot, &revision)?;
    let snapshot = registry.revision(org, id, which).await?;
    let etag = snapshot.revision.version_id.to_string();
    let cached = [(header::ETAG, etag_header(&etag)), (header::CACHE_CONTROL, IMMUTABLE)];
    if if_none_match(&headers, &etag)? {
        return Ok((StatusCode::NOT_MODIFIED, cached).into_response());
    }
    let envelope = RevisionEnvelope { revision: RevisionJson::with_content(&snapshot, registry.public_url()) };
    Ok((cached, Json(envelope)).into_response())
}

/// `GET /api/external/chatbot/{chatbotId}/revisions/{revision}/diff?from=`: the RFC 6902 patch from
/// `from` (by default the revision before) to this one.
async fn diff(
    State(registry): State<Arc<Registry>>,
    Caller(org): Caller,
    Path((chatbot, revision)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let (id, to) = target(&chatbot, &revision)?;
    let params = QueryParams::parse(query.as_deref(), &["from"])?;
    let from = match params.get("from") {
        None => None,
        Some(from) => Some(RevisionRef::parse(from).ok_or_else(|| {
            let message = "must be a revision number or a version_id";
            Error::invalid(Violation::new("from", ViolationCode::InvalidFormat, message))
        })?),
    };
    let diff = registry.diff(org, id, to, from).await?;
    let body =
        RevisionDiffJson { from: RevisionJson::new(&diff.from), to: RevisionJson::new(&diff.to), patch: &diff.patch };
    Ok(Json(body).into_response())
}

/// `POST /api/external/chatbot/{chatbotId}/revisions/{revision}/restore`: the revision's content as a
/// new revision; `If-Match` and `Idempotency-Key` as on every write.
async fn restore(
    State(registry): State<Arc<Registry>>,
    Caller(org): Caller,
    Path((chatbot, revision)): Path<(String, String)>,
    Idempotency(key): Idempotency,
    Author(by): Author,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (id, which) = target(&chatbot, &revision)?;
    let etag = expected_etag(&registry, org, id, &headers).await?;
    let restored = registry.restore_with(org, id, which, etag.as_deref(), key, by).await?;
    Ok(chatbot_response(&registry, StatusCode::OK, restored, Some("Chatbot restored successfully")))
}

/// `POST /api/external/chatbot/{chatbotId}/revisions/{revision}/publish`: the public routes serve this
/// revision's content (and the chatbot's `version_id` is its) until the next publish or unpublish.
async fn publish(
    State(registry): State<Arc<Registry>>,
    Caller(org): Caller,
    Path((chatbot, revision)): Path<(String, String)>,
    Idempotency(key): Idempotency,
    Author(by): Author,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (id, which) = target(&chatbot, &revision)?;
    let etag = expected_etag(&registry, org, id, &headers).await?;
    let published = registry.publish_with(org, id, Some(which), etag.as_deref(), key, by).await?;
    Ok(chatbot_response(&registry, StatusCode::OK, published, Some("Chatbot published successfully")))
}

/// `POST /api/external/chatbot/{chatbotId}/unpublish`: the public routes serve the current content
/// again (`version_id` null).
async fn unpublish(
    State(registry): State<Arc<Registry>>,
    Caller(org): Caller,
    ChatbotIdPath(id): ChatbotIdPath,
    Idempotency(key): Idempotency,
    Author(by): Author,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let etag = expected_etag(&registry, org, id, &headers).await?;
    let unpublished = registry.publish_with(org, id, None, etag.as_deref(), key, by).await?;
    Ok(chatbot_response(&registry, StatusCode::OK, unpublished, Some("Chatbot unpublished successfully")))
}

/// `POST /api/external/chatbot/{chatbotId}/undelete`: a deleted chatbot back, as a new revision; an
/// optional JSON body `{"slug": ...}` gives it a new slug when its own has been taken since (409).
async fn undelete(
    State(registry): State<Arc<Registry>>,
    Caller(org): Caller,
    ChatbotIdPath(id): ChatbotIdPath,
    Idempotency(key): Idempotency,
    Author(by): Author,
    OptionalJsonObject(body): OptionalJsonObject,
) -> Result<Response, ApiError> {
    let mut violations = Vec::new();
    let mut slug = None;
    for (name, value) in body.unwrap_or_default() {
        match (name.as_str(), value) {
            ("slug", Value::String(given)) => match Slug::parse(&given) {
                Ok(given) => slug = Some(given),
                Err(rejection) => violations.push(rejection.at("slug")),
            },
            ("slug", Value::Null) => {}
            ("slug", other) => {
                let message = format!("must be a string, not {}", json_type(&other));
                violations.push(Violation::new("slug", ViolationCode::WrongType, message));
            }
            (other, _) => {
                violations.push(Violation::new(other, ViolationCode::UnknownField, "is not a field of this body"))
            }
        }
    }
    if !violations.is_empty() {
        return Err(Error::Invalid { violations }.into());
    }
    let undeleted = registry.undelete_with(org, id, slug, key, by).await?;
    Ok(chatbot_response(&registry, StatusCode::OK, undeleted, Some("Chatbot undeleted successfully")))
}

/// `POST /api/external/chatbot/{chatbotId}/purge`: a deleted chatbot, its history and its images
/// removed at once.
async fn purge(
    State(registry): State<Arc<Registry>>,
    Caller(org): Caller,
    ChatbotIdPath(id): ChatbotIdPath,
) -> Result<Response, ApiError> {
    registry.purge(org, id).await?;
    Ok(Json(MessageOnly { message: "Chatbot purged successfully" }).into_response())
}
