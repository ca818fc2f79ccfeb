//! `GET /api/external/chatbots/events`: the caller's chatbot changes as Server-Sent Events. Each event
//! is named after what happened (`created`, `updated`, `deleted`) and carries its resume token as its
//! `id`, so that a client (`EventSource` among them) reconnecting with `Last-Event-ID` resumes exactly
//! after it. A token the log no longer reaches back to gets one `resync` event, then the stream ends:
//! re-list, then watch from now. Comments keep an idle stream alive through proxies; the stream ends
//! when the service drains.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use chatbot_core::{ChatbotEvent, Error, Registry, ResumeToken};
use futures_util::future::{self, BoxFuture, FutureExt as _};
use futures_util::stream::{self, BoxStream, StreamExt};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::error::ApiError;
use crate::extract::Caller;
use crate::layers::StreamingPeer;

/// About how many bytes of events may wait in the kernel for a client: a client that stops reading
/// fills it (and its own receive buffer) soon, and is then found out by the connection's write timeout.
const STREAM_SEND_BUFFER: usize = 16 * 1024;

/// What every event stream is held to.
#[derive(Debug, Clone)]
pub struct Watching {
    /// How often an idle stream gets a heartbeat comment.
    pub heartbeat: Duration,
    /// Cancelled when the service drains: every stream ends.
    pub stopping: CancellationToken,
}

impl Default for Watching {
    fn default() -> Self {
        Watching { heartbeat: chatbot_core::DEFAULT_HEARTBEAT, stopping: CancellationToken::new() }
    }
}

/// The data of a change event.
#[derive(Debug, Serialize)]
struct ChangeJson {
    #[serde(rename = "type")]
    kind: &'static str,
    chatbot_id: String,
    /// The new entity tag; null for a delete.
    etag: Option<String>,
    /// The revision the change made (a delete is one too; a purge names the last).
    revision: u64,
    /// That revision's id; null when there is none (a purge, a delete with no undelete window).
    version_id: Option<String>,
    /// The paths whose values it changed (never the values).
    changed: Vec<String>,
    changed_at: String,
    resume_token: String,
}

impl From<&ChatbotEvent> for ChangeJson {
    fn from(event: &ChatbotEvent) -> Self {
        ChangeJson {
            kind: event.kind.as_str(),
            chatbot_id: event.chatbot_id.to_string(),
            etag: event.etag.clone(),
            revision: event.revision,
            version_id: event.version_id.map(|version| version.to_string()),
            changed: event.changed.clone(),
            changed_at: event.at.to_contract_string(),
            resume_token: event.resume_token().encode(),
        }
    }
}

/// The SSE event for an event of the log, or for the error that ends the stream (`resync` when the log
/// no longer reaches back far enough, `error` otherwise, with the error body as its data).
fn sse_event(item: Result<ChatbotEvent, Error>) -> Event {
    match item {
        Ok(event) => {
            let data = serde_json::to_string(&ChangeJson::from(&event)).unwrap_or_default();
            Event::default().event(event.kind.as_str()).id(event.resume_token().encode()).data(data)
        }
        Err(err) => {
            let name = if matches!(err, Error::ResyncRequired) { "resync" } else { "error" };
            Event::default().event(name).data(crate::error::error_body(ApiError::Core(err)))
        }
    }
}

/// `GET /api/external/chatbots/events`.
pub(crate) async fn events(
    State(registry): State<Arc<Registry>>,
    Caller(org): Caller,
    Extension(watching): Extension<Watching>,
    peer: Option<Extension<StreamingPeer>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let resume = match headers.get("last-event-id") {
        None => None,
        Some(value) => {
            let token = value.to_str().unwrap_or_default();
            let parsed =
                ResumeToken::parse(token).map_err(|rejection| Error::invalid(rejection.at("Last-Event-ID")))?;
            Some(parsed)
        }
    };
    let items: BoxStream<'static, Result<ChatbotEvent, Error>> = match registry.watching().watch(org, resume).await {
        Ok(watch) => watch,
        Err(err @ Error::ResyncRequired) => stream::iter([Err(err)]).boxed(),
        Err(err) => return Err(err.into()),
    };
    // The stream ends when the service drains, or at once when its client has gone.
    let gone: BoxFuture<'static, ()> = match peer {
        Some(Extension(peer)) => {
            peer.limit_send_buffer(STREAM_SEND_BUFFER);
            peer.gone().boxed()
        }
        None => future::pending().boxed(),
    };
    let end = future::select(watching.stopping.cancelled_owned().boxed(), gone);
    let events = items.map(|item| Ok::<_, Infallible>(sse_event(item))).take_until(end);
    let keep_alive = KeepAlive::new().interval(watching.heartbeat).text("heartbeat");
    Ok(Sse::new(events).keep_alive(keep_alive).into_response())
}
