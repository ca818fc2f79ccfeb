//! The REST endpoints. Each handler reads the contract's request into core types, calls the
//! [`Registry`] and shapes the contract's answer.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch};
use axum::{Extension, Json, Router, middleware};
use chatbot_core::domain::limits::{MAX_PAGE_SIZE, MAX_REQUEST_BYTES};
use chatbot_core::{
    AvatarImage, Chatbot, ChatbotId, Error, IdempotencyKey, ListQuery, OrgId, PageCursor, Provenance, Registry,
    Violation, ViolationCode, Written,
};
use serde_json::{Value, json};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::contract::request::{ChatbotBody, Target, json_type, read_chatbot};
use crate::contract::response::{
    ChatWidgetEnvelope, ChatbotEnvelope, ChatbotJson, ChatbotPage, ListedChatbot, MessageOnly, VoiceWidgetEnvelope,
};
use crate::error::ApiError;
use crate::events::Watching;
use crate::extract::{
    Author, AvatarUpload, Caller, ChatbotIdPath, Idempotency, JsonObject, MAX_AVATAR_REQUEST_BYTES, REPLAYED_HEADER,
};
use crate::layers;
use crate::preconditions::{IfMatch, etag_header, if_match, if_none_match};
use crate::query::QueryParams;

/// How long a request may take by default, from its first byte to its answer.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How the gateway runs.
#[derive(Clone)]
pub struct AppOptions {
    /// Requests are cut off with 408 after this.
    pub request_timeout: Duration,
    /// Set when the service is shutting down: `/healthz` answers 503 from then on.
    pub draining: Arc<AtomicBool>,
    /// Renders the metrics in Prometheus' text format, served at `/metrics` when given.
    pub metrics: Option<MetricsRenderer>,
    /// What event streams are held to (heartbeats, the end on draining).
    pub watching: Watching,
}

/// Renders the metrics in Prometheus' text format.
pub type MetricsRenderer = Arc<dyn Fn() -> String + Send + Sync>;

impl std::fmt::Debug for AppOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppOptions").field("request_timeout", &self.request_timeout).finish_non_exhaustive()
    }
}

impl Default for AppOptions {
    fn default() -> Self {
        AppOptions {
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            draining: Arc::default(),
            metrics: None,
            watching: Watching::default(),
        }
    }
}

/// The gateway's routes over `registry`, with every layer (see [`crate::layers`]) and the default
/// options.
pub fn app(registry: Arc<Registry>) -> Router {
    app_with(registry, AppOptions::default())
}

/// [`app`], with `options`.
pub fn app_with(registry: Arc<Registry>, options: AppOptions) -> Router {
    let health = {
        let (registry, draining) = (Arc::clone(&registry), options.draining);
        move || healthz(registry, draining)
    };
    let request_timeout = options.request_timeout;
    let api = Router::new()
        .route("/api/external/chatbots", get(list).post(create).patch(update_by_body))
        .route("/api/external/chatbots/events", get(crate::events::events))
        .route("/api/external/chatbot/{chatbot_id}", get(get_one).patch(update_by_path).delete(delete_one))
        .route("/api/external/chatbot/{chatbot_id}/chat-widget", patch(update_chat_widget))
        .route("/api/external/chatbot/{chatbot_id}/voice-agent", patch(update_voice_agent))
        .merge(crate::history::routes())
        // JSON bodies: a Content-Length over the limit is a 413 before any of the body is read.
        .layer(RequestBodyLimitLayer::new(MAX_REQUEST_BYTES))
        .route("/api/external/chatbot/{chatbot_id}/update-avatar", patch(update_avatar))
        .route_layer(middleware::from_fn_with_state(Arc::clone(&registry), layers::admit));
    let public = crate::public::routes(Arc::clone(&registry));
    let mut router =
        Router::new().route("/healthz", get(health)).merge(api).merge(public).merge(crate::openapi::routes());
    if let Some(render) = options.metrics {
        router = router.route("/metrics", get(move || std::future::ready(render())));
    }
    router
        .route_layer(middleware::from_fn(layers::record_route))
        .fallback(|State(registry): State<Arc<Registry>>, client: Option<Extension<layers::ClientAddr>>| async move {
            unrouted(&registry, client, ApiError::NoSuchRoute)
        })
        .method_not_allowed_fallback(
            |State(registry): State<Arc<Registry>>, client: Option<Extension<layers::ClientAddr>>| async move {
                unrouted(&registry, client, ApiError::MethodNotAllowed)
            },
        )
        .with_state(registry)
        .layer(Extension(options.watching))
        // Outermost last: the request id is set first and echoed last; every request is traced and
        // counted; every error is shaped.
        .layer(RequestBodyLimitLayer::new(MAX_AVATAR_REQUEST_BYTES))
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, request_timeout))
        .layer(middleware::from_fn(layers::limit_uri))
        .layer(middleware::from_fn(layers::shape_errors))
        .layer(middleware::from_fn(layers::observe))
        .layer(PropagateRequestIdLayer::new(layers::REQUEST_ID_HEADER))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(layers::request_span)
                .on_request(())
                .on_response(layers::access_log)
                .on_failure(()),
        )
        .layer(SetSensitiveRequestHeadersLayer::new([HeaderName::from_static(crate::layers::API_KEY_HEADER)]))
        .layer(SetRequestIdLayer::new(layers::REQUEST_ID_HEADER, layers::make_request_id()))
        .layer(middleware::from_fn(layers::sanitize_request_id))
}

/// The answer to a request no route takes (`answer`: 404 or 405), once it has passed its client
/// address's limit like any request without a key (429 past it).
fn unrouted(registry: &Registry, client: Option<Extension<layers::ClientAddr>>, answer: ApiError) -> ApiError {
    match registry.admission().admit_unrouted(client.map(|Extension(addr)| addr.0.ip())) {
        Ok(()) => answer,
        Err(err) => err.into(),
    }
}

/// Readiness: both servers accept connections and the store can serve (503 `unavailable` while its
/// database cannot be reached, and from the moment the service starts shutting down).
async fn healthz(registry: Arc<Registry>, draining: Arc<AtomicBool>) -> Result<Json<Value>, ApiError> {
    if draining.load(Ordering::Relaxed) {
        return Err(ApiError::Draining);
    }
    registry.ready().await?;
    // How the stored secrets stand, as of the last census (taken at start unless nothing changed since
    // a clean shutdown, and after each rotation), and when it was taken.
    let secrets = registry.secrets().last_counted().map(|(census, at)| {
        json!({
            "sealed_under_current_key": census.current,
            "under_older_keys": census.older,
            "under_unknown_keys": census.unknown_key,
            "in_clear": census.clear,
            "counted_at": at.to_contract_string(),
        })
    });
    Ok(Json(json!({"status": "ok", "secrets": secrets})))
}

/// `POST /api/external/chatbots` (Create Chatbot).
async fn create(
    State(registry): State<Arc<Registry>>,
    Caller(org): Caller,
    Idempotency(key): Idempotency,
    Author(by): Author,
    JsonObject(body): JsonObject,
) -> Result<Response, ApiError> {
    let body = read_chatbot(&body, Target::Create);
    if !body.violations.is_empty() {
        return Err(Error::invalid_with(body.violations, registry.validate(&body.draft)).into());
    }
    let created = registry.create_with(org, body.draft, key, by).await?;
    let location = format!("/api/external/chatbot/{}", created.value.id);
    let mut response = chatbot_response(&registry, StatusCode::CREATED, created, Some("Chatbot created successfully"));
    if let Ok(location) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// `GET /api/external/chatbot/{chatbotId}` (Get Chatbot Details).
async fn get_one(
    State(registry): State<Arc<Registry>>,
    Caller(org): Caller,
    ChatbotIdPath(id): ChatbotIdPath,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let chatbot = registry.get(org, id).await?;
    let etag = chatbot.etag();
    if if_none_match(&headers, &etag)? {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag_header(&etag))]).into_response());
    }
    Ok(chatbot_response(&registry, StatusCode::OK, Written::fresh(chatbot), None))
}

/// `GET /api/external/chatbots` (Get Chatbots), with `limit`, `cursor`, `is_public` and `active`.
async fn list(
    State(registry): State<Arc<Registry>>,
    Caller(org): Caller,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params = QueryParams::parse(query.as_deref(), &["limit", "cursor", "is_public", "active", "show_deleted"])?;
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
    let is_public = params.flag("is_public", &mut violations);
    let active = params.flag("active", &mut violations);
    let show_deleted = params.flag("show_deleted", &mut violations).unwrap_or(false);
    let after = params
        .get("cursor")
        .and_then(|token| PageCursor::parse(token).map_err(|rejection| violations.push(rejection.at("cursor"))).ok());
    if !violations.is_empty() {
        return Err(Error::Invalid { violations }.into());
    }
    let page = registry.list(org, &ListQuery { limit, after, is_public, active, show_deleted }).await?;
    let next_cursor = page.next.map(|cursor| cursor.encode());
    let listed = |chatbot| ListedChatbot::new(chatbot, page.deletion(chatbot.id), registry.public_url());
    let chatbots = page.items.iter().map(listed).collect();
    Ok(Json(ChatbotPage { chatbots, next_cursor }).into_response())
}

/// `PATCH /api/external/chatbot/{chatbotId}`: Update Chatbot with the target in the path.
async fn update_by_path(
    State(registry): State<Arc<Registry>>,
    Caller(org): Caller,
    ChatbotIdPath(id): ChatbotIdPath,
    Idempotency(key): Idempotency,
    Author(by): Author,
    headers: HeaderMap,
    JsonObject(body): JsonObject,
) -> Result<Response, ApiError> {
    let updated = update(&registry, org, id, (key, by), &headers, &body, Target::Update).await?;
    Ok(chatbot_response(&registry, StatusCode::OK, updated, Some("Chatbot updated successfully")))
}

/// `PATCH /api/external/chatbot/{chatbotId}/chat-widget` (Chat Widget): changes the chatbot's
/// `settings.snippet` and the widget's language.
async fn update_chat_widget(
    State(registry): State<Arc<Registry>>,
    Caller(org): Caller,
    ChatbotIdPath(id): ChatbotIdPath,
    Idempotency(key): Idempotency,
    Author(by): Author,
    headers: HeaderMap,
    JsonObject(body): JsonObject,
) -> Result<Response, ApiError> {
    let updated = update(&registry, org, id, (key, by), &headers, &body, Target::ChatWidget).await?;
    let snippet = &updated.value.config.settings.snippet;
    let envelope =
        ChatWidgetEnvelope { chat_widget_config: snippet.into(), message: "Chat widget config updated successfully" };
    Ok(written_response(&updated, Json(envelope)))
}

/// `PATCH /api/external/chatbot/{chatbotId}/update-avatar` (Chatbot Avatar): a `multipart/form-data`
/// body whose file part `avatar` is the image. It is stored with the chatbot, which then shows its URL
/// as `settings.avatar`; the image it replaces is removed.
async fn update_avatar(
    State(registry): State<Arc<Registry>>,
    Caller(org): Caller,
    ChatbotIdPath(id): ChatbotIdPath,
    Idempotency(key): Idempotency,
    Author(by): Author,
    headers: HeaderMap,
    AvatarUpload(bytes): AvatarUpload,
) -> Result<Response, ApiError> {
    let image = AvatarImage::parse(bytes)?;
    let etag = expected_etag(&registry, org, id, &headers).await?;
    let updated = registry.update_avatar_with(org, id, image, etag.as_deref(), key, by).await?;
    Ok(chatbot_response(&registry, StatusCode::OK, updated, Some("Avatar updated successfully")))
}

/// `PATCH /api/external/chatbot/{chatbotId}/voice-agent` (Voice Agent): configures the voice agent's
/// widget, from its defaults the first time.
async fn update_voice_agent(
    State(registry): State<Arc<Registry>>,
    Caller(org): Caller,
    ChatbotIdPath(id): ChatbotIdPath,
    Idempotency(key): Idempotency,
    Author(by): Author,
    headers: HeaderMap,
    JsonObject(body): JsonObject,
) -> Result<Response, ApiError> {
    let updated = update(&registry, org, id, (key, by), &headers, &body, Target::VoiceAgent).await?;
    let voice = updated.value.config.voice.as_ref().map(Into::into);
    let envelope =
        VoiceWidgetEnvelope { voice_widget_config: voice, message: "Voice widget config updated successfully" };
    Ok(written_response(&updated, Json(envelope)))
}

/// `PATCH /api/external/chatbots` (Update Chatbot as documented): the target is the body's `id` or
/// `?id=`; neither, or both disagreeing, is a 400.
async fn update_by_body(
    State(registry): State<Arc<Registry>>,
    Caller(org): Caller,
    Idempotency(key): Idempotency,
    Author(by): Author,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    JsonObject(mut body): JsonObject,
) -> Result<Response, ApiError> {
    let params = QueryParams::parse(query.as_deref(), &["id"])?;
    let in_body = match body.remove("id") {
        Some(Value::String(id)) => Some(id),
        None | Some(Value::Null) => None,
        Some(other) => {
            let message = format!("must be a string, not {}", json_type(&other));
            return Err(Error::invalid(Violation::new("id", ViolationCode::WrongType, message)).into());
        }
    };
    let id = match (in_body.as_deref(), params.get("id")) {
        (None, None) => {
            let message = "name the chatbot in the body's id or in ?id=";
            return Err(Error::invalid(Violation::new("id", ViolationCode::Required, message)).into());
        }
        (Some(id), None) | (None, Some(id)) => id,
        (Some(a), Some(b)) if a == b => a,
        (Some(_), Some(_)) => {
            let message = "the body's id and ?id= name different chatbots";
            return Err(Error::invalid(Violation::new("id", ViolationCode::InvalidFormat, message)).into());
        }
    };
    let id: ChatbotId = id.parse().map_err(|_| Error::NotFound)?;
    let updated = update(&registry, org, id, (key, by), &headers, &body, Target::Update).await?;
    Ok(chatbot_response(&registry, StatusCode::OK, updated, Some("Chatbot updated successfully")))
}

/// Every PATCH: the fields present in the body for `target` change (nested objects merge, `null`
/// resets); violations name fields by their paths in that body.
async fn update(
    registry: &Registry,
    org: OrgId,
    id: ChatbotId,
    (key, by): (Option<IdempotencyKey>, Provenance),
    headers: &HeaderMap,
    body: &serde_json::Map<String, Value>,
    target: Target,
) -> Result<Written<Chatbot>, ApiError> {
    let form = target.form();
    let ChatbotBody { draft, present, violations } = read_chatbot(body, target);
    if !violations.is_empty() {
        let checked = registry.validate_update(org, id, &draft, present).await.map_err(|e| form.localize(e));
        return Err(Error::invalid_with(violations, checked).into());
    }
    let etag = expected_etag(registry, org, id, headers).await?;
    let updated = registry.update_with(org, id, draft, present, etag.as_deref(), key, by).await;
    updated.map_err(|err| form.localize(err).into())
}

/// `DELETE /api/external/chatbot/{chatbotId}` (Delete Chatbot).
async fn delete_one(
    State(registry): State<Arc<Registry>>,
    Caller(org): Caller,
    ChatbotIdPath(id): ChatbotIdPath,
    Idempotency(key): Idempotency,
    Author(by): Author,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let etag = expected_etag(&registry, org, id, &headers).await?;
    let deleted = registry.delete_with(org, id, etag.as_deref(), key, by).await?;
    let mut response = Json(MessageOnly { message: "Chatbot deleted successfully" }).into_response();
    mark_replayed(&mut response, deleted.replayed);
    Ok(response)
}

/// The etag a write must still find, from `If-Match`. A list of tags is checked against a fresh read,
/// whose tag the write then requires, so the check stays atomic.
pub(crate) async fn expected_etag(
    registry: &Registry,
    org: OrgId,
    id: ChatbotId,
    headers: &HeaderMap,
) -> Result<Option<String>, ApiError> {
    match if_match(headers)? {
        IfMatch::Anything => Ok(None),
        IfMatch::Tag(tag) => Ok(Some(tag)),
        IfMatch::OneOf(tags) => {
            let current = registry.get(org, id).await?.etag();
            if tags.contains(&current) { Ok(Some(current)) } else { Err(Error::EtagMismatch.into()) }
        }
    }
}

/// A chatbot envelope with its `ETag`, marked `Idempotent-Replayed` when it is an earlier answer given
/// again.
pub(crate) fn chatbot_response(
    registry: &Registry,
    status: StatusCode,
    written: Written<Chatbot>,
    message: Option<&'static str>,
) -> Response {
    let envelope = Json(ChatbotEnvelope { chatbot: ChatbotJson::new(&written.value, registry.public_url()), message });
    let mut response = written_response(&written, envelope);
    *response.status_mut() = status;
    response
}

/// `body`, the answer to a write of `written`: with the chatbot's `ETag`, marked
/// `Idempotent-Replayed` when it is an earlier answer given again.
fn written_response(written: &Written<Chatbot>, body: impl IntoResponse) -> Response {
    let mut response = ([(header::ETAG, etag_header(&written.value.etag()))], body).into_response();
    mark_replayed(&mut response, written.replayed);
    response
}

pub(crate) fn mark_replayed(response: &mut Response, replayed: bool) {
    if replayed {
        response.headers_mut().insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
    }
}
