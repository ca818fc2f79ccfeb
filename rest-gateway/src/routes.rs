//! The REST endpoints. Each handler reads the contract's request, calls the gRPC service and shapes
//! the contract's answer.

use axum::extract::{FromRequestParts, Path, RawQuery, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use grpc_server::pb;
use serde_json::json;

use crate::backend::Backend;
use crate::contract::request::{ChatbotBody, Target, read_chatbot};
use crate::contract::response::{ChatbotEnvelope, ChatbotPage, MessageOnly};
use crate::error::{ApiError, FieldViolation};
use crate::extract::{ApiKey, JsonObject};
use crate::preconditions::{IfMatch, etag_header, if_match, if_none_match, precondition_failed};
use crate::query::QueryParams;

/// The gateway's routes over `backend`.
pub fn app(backend: Backend) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/api/external/chatbots", get(list).post(create).patch(update_by_body))
        .route("/api/external/chatbot/{chatbot_id}", get(get_one).patch(update_by_path).delete(delete_one))
        .fallback(|| async { ApiError::not_found() })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this endpoint does not take that method",
            )
        })
        .with_state(backend)
}

/// Readiness: the store is open and both servers accept connections.
async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// `POST /api/external/chatbots` (Create Chatbot).
async fn create(
    State(backend): State<Backend>,
    key: ApiKey,
    JsonObject(body): JsonObject,
) -> Result<Response, ApiError> {
    let body = read_chatbot(&body, Target::Create);
    let validate_only = !body.violations.is_empty();
    let request = pb::CreateChatbotRequest { chatbot: Some(body.chatbot), validate_only };
    let created = settle(backend.create_chatbot(grpc(&key, request)?).await, body.violations)?;
    let location = format!("/api/external/chatbot/{}", created.id);
    let mut response = chatbot_response(StatusCode::CREATED, created, Some("Chatbot created successfully"));
    if let Ok(location) = location.parse() {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// `GET /api/external/chatbot/{chatbotId}` (Get Chatbot Details).
async fn get_one(
    State(backend): State<Backend>,
    key: ApiKey,
    ChatbotIdPath(id): ChatbotIdPath,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let chatbot = backend.get_chatbot(grpc(&key, pb::GetChatbotRequest { id })?).await?.into_inner();
    if if_none_match(&headers, &chatbot.etag)? {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag_header(&chatbot.etag))]).into_response());
    }
    Ok(chatbot_response(StatusCode::OK, chatbot, None))
}

/// `GET /api/external/chatbots` (Get Chatbots), with `limit`, `cursor`, `is_public` and `active`.
async fn list(State(backend): State<Backend>, key: ApiKey, RawQuery(query): RawQuery) -> Result<Response, ApiError> {
    let params = QueryParams::parse(query.as_deref(), &["limit", "cursor", "is_public", "active"])?;
    let mut violations = Vec::new();
    let page_size = match params.get("limit").map(str::parse::<i32>) {
        None => 0,
        Some(Ok(limit @ 1..=100)) => limit,
        Some(_) => {
            violations.push(FieldViolation::new("limit", "invalid_format", "must be a whole number from 1 to 100"));
            0
        }
    };
    let is_public = params.flag("is_public", &mut violations);
    let active = params.flag("active", &mut violations);
    if !violations.is_empty() {
        return Err(ApiError::invalid(violations));
    }
    let page_token = params.get("cursor").unwrap_or_default().to_owned();
    let request = pb::ListChatbotsRequest { page_size, page_token, is_public, active };
    let page = backend
        .list_chatbots(grpc(&key, request)?)
        .await
        .map_err(|status| ApiError::from(status).rename_fields(&[("page_token", "cursor"), ("page_size", "limit")]))?;
    let page = page.into_inner();
    let next_cursor = Some(page.next_page_token).filter(|token| !token.is_empty());
    Ok(Json(ChatbotPage { chatbots: page.chatbots.into_iter().map(Into::into).collect(), next_cursor }).into_response())
}

/// `PATCH /api/external/chatbot/{chatbotId}`: Update Chatbot with the target in the path.
async fn update_by_path(
    State(backend): State<Backend>,
    key: ApiKey,
    ChatbotIdPath(id): ChatbotIdPath,
    headers: HeaderMap,
    JsonObject(body): JsonObject,
) -> Result<Response, ApiError> {
    update(&backend, &key, id, &headers, read_chatbot(&body, Target::Update)).await
}

/// `PATCH /api/external/chatbots` (Update Chatbot as documented): the target is the body's `id` or
/// `?id=`; neither, or both disagreeing, is a 400.
async fn update_by_body(
    State(backend): State<Backend>,
    key: ApiKey,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    JsonObject(body): JsonObject,
) -> Result<Response, ApiError> {
    let params = QueryParams::parse(query.as_deref(), &["id"])?;
    let mut body = read_chatbot(&body, Target::UpdateById);
    body.present.retain(|path| path != "id");
    let in_body = std::mem::take(&mut body.chatbot.id);
    let id = match (in_body.as_str(), params.get("id")) {
        ("", None) => Err(FieldViolation::new("id", "required", "name the chatbot in the body's id or in ?id=")),
        (id, None) | ("", Some(id)) => Ok(id.to_owned()),
        (a, Some(b)) if a == b => Ok(a.to_owned()),
        (_, Some(_)) => {
            Err(FieldViolation::new("id", "invalid_format", "the body's id and ?id= name different chatbots"))
        }
    };
    let id = id.map_err(|violation| ApiError::invalid(vec![violation]))?;
    update(&backend, &key, id, &headers, body).await
}

/// Both PATCH forms: the fields present in the body change (nested objects merge, `null` resets).
async fn update(
    backend: &Backend,
    key: &ApiKey,
    id: String,
    headers: &HeaderMap,
    body: ChatbotBody,
) -> Result<Response, ApiError> {
    if body.present.is_empty() && body.violations.is_empty() {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "invalid_argument", "the body names no field to change"));
    }
    let etag = expected_etag(backend, key, &id, headers).await?;
    let chatbot = pb::Chatbot { id, etag, ..body.chatbot };
    let validate_only = !body.violations.is_empty();
    let update_mask = Some(prost_types::FieldMask { paths: body.present });
    let request = pb::UpdateChatbotRequest { chatbot: Some(chatbot), update_mask, validate_only };
    let updated = settle(backend.update_chatbot(grpc(key, request)?).await, body.violations)?;
    Ok(chatbot_response(StatusCode::OK, updated, Some("Chatbot updated successfully")))
}

/// `DELETE /api/external/chatbot/{chatbotId}` (Delete Chatbot).
async fn delete_one(
    State(backend): State<Backend>,
    key: ApiKey,
    ChatbotIdPath(id): ChatbotIdPath,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let etag = expected_etag(&backend, &key, &id, &headers).await?;
    backend.delete_chatbot(grpc(&key, pb::DeleteChatbotRequest { id, etag })?).await?;
    Ok(Json(MessageOnly { message: "Chatbot deleted successfully" }).into_response())
}

/// The etag a write must still find (empty for none), from `If-Match`. A list of tags is checked
/// against a fresh read, whose tag the write then requires, so the check stays atomic.
async fn expected_etag(backend: &Backend, key: &ApiKey, id: &str, headers: &HeaderMap) -> Result<String, ApiError> {
    match if_match(headers)? {
        IfMatch::Anything => Ok(String::new()),
        IfMatch::Tag(tag) => Ok(tag),
        IfMatch::OneOf(tags) => {
            let request = pb::GetChatbotRequest { id: id.to_owned() };
            let current = backend.get_chatbot(grpc(key, request)?).await?.into_inner();
            if tags.contains(&current.etag) { Ok(current.etag) } else { Err(precondition_failed()) }
        }
    }
}

/// A gRPC request carrying the caller's key.
fn grpc<T>(key: &ApiKey, message: T) -> Result<tonic::Request<T>, ApiError> {
    let mut request = tonic::Request::new(message);
    let value = key.0.parse().map_err(|_| {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", "the x-api-key header is not a valid key")
    })?;
    request.metadata_mut().insert(grpc_server::API_KEY_METADATA, value);
    Ok(request)
}

/// The service's answer, unless the gateway found problems of shape: then a 400 listing them with
/// the service's own violations (the service was asked to validate only).
fn settle<T>(result: Result<tonic::Response<T>, tonic::Status>, shape: Vec<FieldViolation>) -> Result<T, ApiError> {
    match result {
        Ok(response) if shape.is_empty() => Ok(response.into_inner()),
        Ok(_) => Err(ApiError::invalid(shape)),
        Err(status) => Err(ApiError::from(status).with_shape_violations(shape)),
    }
}

/// A chatbot envelope with its `ETag`.
fn chatbot_response(status: StatusCode, chatbot: pb::Chatbot, message: Option<&'static str>) -> Response {
    let etag = etag_header(&chatbot.etag);
    let body = ChatbotEnvelope { chatbot: chatbot.into(), message };
    (status, [(header::ETAG, etag)], Json(body)).into_response()
}

/// The `{chatbotId}` path segment; one that cannot be read names no chatbot (404).
struct ChatbotIdPath(String);

impl<S: Send + Sync> FromRequestParts<S> for ChatbotIdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(id) = Path::<String>::from_request_parts(parts, state).await.map_err(|_| ApiError::not_found())?;
        Ok(ChatbotIdPath(id))
    }
}
