//! `GET /api/external/chatbots/events`: the caller's chatbot changes as Server-Sent Events. Each event
//! is named after what happened (`created`, `updated`, `deleted`) and carries its resume token as its
//! `id`, so that a client (`EventSource` among them) reconnecting with `Last-Event-ID` resumes exactly
//! after it. A token the log no longer reaches back to gets one `resync` event, then the stream ends:
//! re-list, then watch from now. Comments keep an idle stream alive through proxies; the stream ends
//! when the service drains.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future as _;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Extension;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use chatbot_core::{ChatbotEvent, Error, Registry, ResumeToken};
use futures_util::future::{self, BoxFuture, FutureExt as _};
use futures_util::stream::{self, BoxStream, Stream, StreamExt};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::error::ApiError;
use crate::extract::Caller;
use crate::layers::StreamingPeer;

/// About how many bytes of events may wait in the kernel for a client: a client that stops reading
/// fills it (and its own receive buffer) soon, and is then found out by the connection's write timeout.
const STREAM_SEND_BUFFER: usize = 16 * 1024;

/// What every event stream is held to, and what they share.
#[derive(Debug, Clone)]
pub struct Watching {
    /// How often an idle stream gets a heartbeat comment.
    pub heartbeat: Duration,
    /// Cancelled when the service drains: every stream ends.
    pub stopping: CancellationToken,
    /// The events streams were sent lately, as sent.
    pub rendered: Arc<RenderedEvents>,
}

impl Watching {
    /// Streams that get a heartbeat every `heartbeat` when idle and end when `stopping` is cancelled.
    pub fn new(heartbeat: Duration, stopping: CancellationToken) -> Self {
        Watching { heartbeat, stopping, rendered: Arc::default() }
    }
}

impl Default for Watching {
    fn default() -> Self {
        Watching::new(chatbot_core::DEFAULT_HEARTBEAT, CancellationToken::new())
    }
}

/// How many rendered events [`RenderedEvents`] keeps.
const RENDERED_KEPT: usize = 1024;

/// The SSE form of the events streams were sent lately, by log position (unique in the log): every
/// watcher of an organisation is sent the same events, and each is rendered once, not once per watcher.
#[derive(Debug, Default)]
pub struct RenderedEvents(Mutex<VecDeque<(u64, Bytes)>>);

impl RenderedEvents {
    /// `event` as SSE, rendered now or earlier for another stream.
    fn get(&self, event: &ChatbotEvent) -> Bytes {
        let position = event.position;
        {
            let kept = self.kept();
            if let Ok(at) = kept.binary_search_by_key(&position, |(kept, _)| *kept) {
                return kept[at].1.clone();
            }
        }
        let rendered = sse_event(Ok(event));
        let mut kept = self.kept();
        // Kept in position order: an event older than the newest kept (a watcher catching up) is
        // rendered for its stream alone.
        if kept.back().is_none_or(|(newest, _)| *newest < position) {
            kept.push_back((position, rendered.clone()));
            if kept.len() > RENDERED_KEPT {
                kept.pop_front();
            }
        }
        rendered
    }

    fn kept(&self) -> std::sync::MutexGuard<'_, VecDeque<(u64, Bytes)>> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
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
fn sse_event(item: Result<&ChatbotEvent, Error>) -> Bytes {
    match item {
        Ok(event) => {
            let data = serde_json::to_string(&ChangeJson::from(event)).unwrap_or_default();
            sse_frame(event.kind.as_str(), Some(&event.resume_token().encode()), &data)
        }
        Err(err) => {
            let name = if matches!(err, Error::ResyncRequired) { "resync" } else { "error" };
            sse_frame(name, None, &crate::error::error_body(ApiError::Core(err)))
        }
    }
}

/// One SSE event: its name, its id if it has one, and its data, one line each (compact JSON has no
/// line breaks), ended by a blank line.
fn sse_frame(name: &str, id: Option<&str>, data: &str) -> Bytes {
    let mut frame = String::with_capacity(name.len() + id.map_or(0, str::len) + data.len() + 24);
    frame.push_str("event: ");
    frame.push_str(name);
    if let Some(id) = id {
        frame.push_str("\nid: ");
        frame.push_str(id);
    }
    frame.push_str("\ndata: ");
    frame.push_str(data);
    frame.push_str("\n\n");
    Bytes::from(frame)
}

/// What an idle stream is sent every heartbeat: an SSE comment, which clients ignore.
const HEARTBEAT: &[u8] = b": heartbeat\n\n";

/// The most bytes of events one chunk of a stream gathers.
const CHUNK_BYTES: usize = 16 * 1024;

/// An event stream's body: the events ready when it is polled go out together, one chunk and one
/// write for many (a watcher woken by a batch of writes is sent the batch at once), and an idle stream
/// gets a heartbeat comment every `heartbeat`.
struct Chunks {
    events: BoxStream<'static, Bytes>,
    heartbeat: Duration,
    idle: Pin<Box<tokio::time::Sleep>>,
    ended: bool,
}

impl Chunks {
    fn new(events: BoxStream<'static, Bytes>, heartbeat: Duration) -> Self {
        Chunks { events, heartbeat, idle: Box::pin(tokio::time::sleep(heartbeat)), ended: false }
    }
}

impl Stream for Chunks {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        // The first event ready goes out as it is; with a second, they are copied into one chunk.
        let mut chunk: Option<Bytes> = None;
        let mut joined: Vec<u8> = Vec::new();
        while !this.ended && joined.len().max(chunk.as_ref().map_or(0, Bytes::len)) < CHUNK_BYTES {
            match this.events.poll_next_unpin(cx) {
                Poll::Ready(Some(event)) => match &chunk {
                    None => chunk = Some(event),
                    Some(first) => {
                        if joined.is_empty() {
                            joined.extend_from_slice(first);
                        }
                        joined.extend_from_slice(&event);
                    }
                },
                Poll::Ready(None) => this.ended = true,
                Poll::Pending => break,
            }
        }
        if let Some(first) = chunk {
            let heartbeat = this.heartbeat;
            this.idle.as_mut().reset(tokio::time::Instant::now() + heartbeat);
            if joined.is_empty() {
                return Poll::Ready(Some(Ok(first)));
            }
            return Poll::Ready(Some(Ok(Bytes::from(joined))));
        }
        if this.ended {
            return Poll::Ready(None);
        }
        if this.idle.as_mut().poll(cx).is_ready() {
            let heartbeat = this.heartbeat;
            this.idle.as_mut().reset(tokio::time::Instant::now() + heartbeat);
            return Poll::Ready(Some(Ok(Bytes::from_static(HEARTBEAT))));
        }
        Poll::Pending
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
    let items: BoxStream<'static, Result<Arc<ChatbotEvent>, Error>> = match registry.watching().watch(org, resume).await
    {
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
    let rendered = Arc::clone(&watching.rendered);
    let events = items
        .map(move |item| match item {
            Ok(event) => rendered.get(&event),
            Err(err) => sse_event(Err(err)),
        })
        .take_until(end)
        .boxed();
    let body = Body::from_stream(Chunks::new(events, watching.heartbeat));
    Ok(([(CONTENT_TYPE, "text/event-stream"), (CACHE_CONTROL, "no-cache")], body).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_events_ready_together_go_out_in_one_chunk_and_an_idle_stream_gets_heartbeats() {
        let frames = ["event: created\nid: c1\ndata: {}\n\n", "event: updated\nid: c2\ndata: {}\n\n"];
        let (sender, receiver) = tokio::sync::mpsc::unbounded_channel::<Bytes>();
        for frame in frames {
            sender.send(Bytes::from_static(frame.as_bytes())).expect("open");
        }
        let receiver = tokio_stream::wrappers::UnboundedReceiverStream::new(receiver);
        let mut chunks = Chunks::new(receiver.boxed(), Duration::from_millis(50));
        let first = chunks.next().await.expect("a chunk").expect("infallible");
        assert_eq!(first, frames.concat(), "both ready events, in order, in one chunk");

        let idle = tokio::time::Instant::now();
        let heartbeat = chunks.next().await.expect("a chunk").expect("infallible");
        assert_eq!(heartbeat, HEARTBEAT);
        assert!(idle.elapsed() >= Duration::from_millis(50), "not before the stream has been idle a heartbeat");

        sender.send(Bytes::from_static(frames[0].as_bytes())).expect("open");
        drop(sender);
        assert_eq!(chunks.next().await.expect("a chunk").expect("infallible"), frames[0]);
        assert!(chunks.next().await.is_none(), "the body ends with its events");
    }

    #[test]
    fn an_event_is_one_line_per_field_and_a_blank_line() {
        assert_eq!(
            sse_frame("created", Some("c1f"), r#"{"a":"b\nc"}"#),
            "event: created\nid: c1f\ndata: {\"a\":\"b\\nc\"}\n\n"
        );
        assert_eq!(sse_frame("resync", None, "{}"), "event: resync\ndata: {}\n\n");
    }
}
