//! The public routes: what a customer's website fetches without an API key (it must never ship one to
//! browsers). They answer any origin (CORS) and are rate-limited per client address; nothing else of
//! the service is reachable this way.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chatbot_core::Registry;
use tower_http::cors::{Any, CorsLayer};

use crate::error::ApiError;
use crate::error::rate_limit_headers;
use crate::layers::ClientAddr;
use crate::preconditions::{etag_header, if_none_match};

/// How long a browser or a CDN may reuse a public widget's configuration without asking again: short,
/// so that a change shows within a minute.
const WIDGET_CACHE_CONTROL: &str = "public, max-age=60";

/// The public routes, with CORS for any origin and the per-address limit.
pub fn routes(registry: Arc<Registry>) -> Router<Arc<Registry>> {
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::HEAD])
        .allow_headers([header::IF_NONE_MATCH])
        .expose_headers([header::ETAG]);
    Router::new()
        // OPTIONS is routed so that the CORS layer sees browsers' preflights (it answers them itself).
        .route("/api/public/chatbots/{slug}", get(widget).options(no_content))
        .route("/api/public/avatars/{file}", get(avatar).options(no_content))
        .route_layer(middleware::from_fn_with_state(registry, admit_public))
        .layer(cors)
}

/// How long an avatar image may be reused: a year, since its URL changes whenever the image does.
const AVATAR_CACHE_CONTROL: &str = "public, max-age=31536000, immutable";

/// `GET /api/public/avatars/{id}.{ext}`: an avatar image, with the type its content was found to be,
/// never sniffed again by a browser, and never run as anything but an image.
async fn avatar(
    State(registry): State<Arc<Registry>>,
    Path(file): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let avatar = registry.avatar(&file).await?;
    let headers_out = [
        (header::ETAG, etag_header(&avatar.digest)),
        (header::CACHE_CONTROL, HeaderValue::from_static(AVATAR_CACHE_CONTROL)),
        (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        (header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("default-src 'none'; sandbox")),
    ];
    if if_none_match(&headers, &avatar.digest)? {
        return Ok((StatusCode::NOT_MODIFIED, headers_out).into_response());
    }
    let content_type = [(header::CONTENT_TYPE, HeaderValue::from_static(avatar.reference.kind.content_type()))];
    Ok((headers_out, content_type, avatar.bytes).into_response())
}

/// An `OPTIONS` that is not a preflight: nothing to say.
async fn no_content() -> StatusCode {
    StatusCode::NO_CONTENT
}

/// Lets a request in within its client address's public limit (429 `rate_limited` past it).
async fn admit_public(State(registry): State<Arc<Registry>>, request: Request, next: Next) -> Response {
    let client = request.extensions().get::<ClientAddr>().map(|addr| addr.0.ip());
    let (admitted, allowance) = registry.admission().admit_public(client);
    let mut response = match admitted {
        Ok(()) => next.run(request).await,
        Err(err) => ApiError::from(err).into_response(),
    };
    if let Some(allowance) = allowance {
        rate_limit_headers(&mut response, allowance);
    }
    response
}

/// `GET /api/public/chatbots/{slug}`: a public, active chatbot's widget configuration. Any other slug
/// is the same 404. The entity tag is a digest of the answer, so it changes exactly when the answer does.
async fn widget(
    State(registry): State<Arc<Registry>>,
    Path(slug): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    // Rendered once per change of the chatbot, then answered from memory.
    let widget = registry.public_chatbot(&slug).await?;
    let cache = [
        (header::ETAG, etag_header(&widget.etag)),
        (header::CACHE_CONTROL, HeaderValue::from_static(WIDGET_CACHE_CONTROL)),
    ];
    if if_none_match(&headers, &widget.etag)? {
        return Ok((StatusCode::NOT_MODIFIED, cache).into_response());
    }
    let json = [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))];
    Ok((cache, json, axum::body::Body::from(axum::body::Bytes::copy_from_slice(&widget.body))).into_response())
}
