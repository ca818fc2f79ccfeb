//! Connections, for both faces: each accepted under a cap and closed after a silence; REST served by
//! hyper with limits and timeouts, with every rejection hyper makes on its own (a bad request line, a
//! too-long URL, too many headers, a header it cannot parse) rewritten into the one error shape, since
//! hyper answers those with an empty body before any of our code runs.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::time::{Instant, Sleep};
use tower::ServiceExt as _;

use rest_gateway::error::error_json;

/// The limits every connection of a face is held to (each has a flag; see `chatbotd help serve`).
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// Most connections open at once; past it new ones are answered 503 and closed.
    pub max_connections: usize,
    /// How long a client may take to send a request's head, and (HTTP/1) how long an idle keep-alive
    /// connection waits for the next one.
    pub header_timeout: Duration,
    /// How long a connection may stay silent (nothing read or written) before it is closed.
    pub idle_timeout: Duration,
    /// Most header lines in a request.
    pub max_headers: usize,
    /// Most concurrent streams on one HTTP/2 connection.
    pub max_streams: u32,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_connections: 4_096,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_headers: 64,
            max_streams: 128,
        }
    }
}

/// Serves `app` on `listener` within `limits` until `stop` completes, then lets the requests in flight
/// finish (for at most `grace`).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    stop: impl Future<Output = ()>,
    grace: Duration,
) -> io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        // A client may close its side once it has sent the request; the answer still goes back.
        .half_close(true)
        .max_headers(limits.max_headers)
        .max_buf_size(64 * 1024);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.max_streams)
        .max_header_list_size(64 * 1024)
        .keep_alive_interval(limits.idle_timeout / 2)
        .keep_alive_timeout(limits.header_timeout);
    tokio::pin!(stop);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors, or a connection reset before it was accepted: wait a
                    // moment instead of spinning, and carry on.
                    tracing::warn!(error = %err, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let _ = stream.set_nodelay(true);
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            tokio::spawn(refuse(stream));
            continue;
        };
        let app = app.clone().map_request(move |mut request: axum::extract::Request<hyper::body::Incoming>| {
            request.extensions_mut().insert(rest_gateway::ClientAddr(peer));
            request
        });
        let io = TokioIo::new(ShapedRejections::new(IdleTimeout::new(stream, limits.idle_timeout)));
        let connection = builder.serve_connection_with_upgrades(io, TowerToHyperService::new(app)).into_owned();
        let connection = graceful.watch(connection);
        let open = metrics::gauge!("chatbotd_open_connections", "face" => "rest");
        open.increment(1);
        tokio::spawn(async move {
            let _ = connection.await;
            open.decrement(1);
            drop(slot);
        });
    }
    drop(listener);
    if tokio::time::timeout(grace, graceful.shutdown()).await.is_err() {
        tracing::warn!("requests still in flight after the grace period were cut off");
    }
    Ok(())
}

/// Answers a connection over the cap with a 503 in the error shape, and closes it.
async fn refuse(mut stream: tokio::net::TcpStream) {
    let response = shaped_response(StatusCode::SERVICE_UNAVAILABLE);
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = stream.write_all(&response).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

/// A whole HTTP/1.1 response in the error shape for `status`, closing the connection. Its request id
/// is made up: the request was not read far enough to have one.
fn shaped_response(status: StatusCode) -> Vec<u8> {
    let request_id = uuid::Uuid::new_v4().to_string();
    let body = error_json(status, Some(&request_id));
    let head = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nx-request-id: {request_id}\r\nconnection: close\r\n\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        body.len()
    );
    [head.into_bytes(), body].concat()
}

/// The status of a response head hyper wrote on its own: a 4xx with no content type and no body. Every
/// error this service writes itself has a JSON body, so nothing else matches.
fn hyper_rejection(bytes: &[u8]) -> Option<StatusCode> {
    let head = bytes.strip_prefix(b"HTTP/1.1 ").or_else(|| bytes.strip_prefix(b"HTTP/1.0 "))?;
    let status = StatusCode::from_bytes(head.get(..3)?).ok().filter(StatusCode::is_client_error)?;
    let head_end = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&bytes[..head_end]).to_ascii_lowercase();
    let bare = !head.contains("\r\ncontent-type:") && head.contains("\r\ncontent-length: 0");
    bare.then_some(status)
}

/// Rewrites hyper's own bare rejections into responses in the error shape, as they are written.
struct ShapedRejections<IO> {
    inner: IO,
    /// A rewritten response not yet fully written, and how much of it is.
    pending: Option<(Vec<u8>, usize)>,
}

impl<IO> ShapedRejections<IO> {
    fn new(inner: IO) -> Self {
        ShapedRejections { inner, pending: None }
    }
}

impl<IO: AsyncWrite + Unpin> ShapedRejections<IO> {
    /// Writes what is pending, if anything.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some((bytes, written)) = &mut self.pending {
            if *written == bytes.len() {
                self.pending = None;
                break;
            }
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &bytes[*written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *written += n;
        }
        Poll::Ready(Ok(()))
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for ShapedRejections<IO> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for ShapedRejections<IO> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        ready!(self.poll_pending(cx))?;
        if let Some(status) = hyper_rejection(buf) {
            self.pending = Some((shaped_response(status), 0));
            ready!(self.poll_pending(cx))?;
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Closes a connection on which nothing has been read or written for a while.
pub struct IdleTimeout<IO> {
    inner: IO,
    timeout: Duration,
    deadline: Pin<Box<Sleep>>,
}

impl<IO> IdleTimeout<IO> {
    /// `inner`, closed after `timeout` of silence.
    pub fn new(inner: IO, timeout: Duration) -> Self {
        IdleTimeout { inner, timeout, deadline: Box::pin(tokio::time::sleep(timeout)) }
    }

    fn active(&mut self) {
        self.deadline.as_mut().reset(Instant::now() + self.timeout);
    }

    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        self.deadline.as_mut().poll(cx).is_ready()
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for IdleTimeout<IO> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(result) => {
                self.active();
                Poll::Ready(result)
            }
            Poll::Pending if self.expired(cx) => Poll::Ready(Err(io::ErrorKind::TimedOut.into())),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for IdleTimeout<IO> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let written = ready!(Pin::new(&mut self.inner).poll_write(cx, buf));
        self.active();
        Poll::Ready(written)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<IO: tonic::transport::server::Connected> tonic::transport::server::Connected for IdleTimeout<IO> {
    type ConnectInfo = IO::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

/// A gRPC connection holding one of the face's connection slots until it closes.
pub struct Slotted<IO> {
    inner: IO,
    _slot: tokio::sync::OwnedSemaphorePermit,
    open: metrics::Gauge,
}

impl<IO> Drop for Slotted<IO> {
    fn drop(&mut self) {
        self.open.decrement(1);
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Slotted<IO> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Slotted<IO> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<IO: tonic::transport::server::Connected> tonic::transport::server::Connected for Slotted<IO> {
    type ConnectInfo = IO::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

/// The gRPC face's connections: accepted with `TCP_NODELAY` (tonic sets it only on listeners it binds
/// itself, and without it every small unary reply waits 40 ms), under the cap (a connection over it is
/// closed at once), each closed after `limits.idle_timeout` of silence.
pub fn grpc_incoming(
    listener: TcpListener,
    limits: &ConnectionLimits,
) -> impl tokio_stream::Stream<Item = io::Result<Slotted<IdleTimeout<tokio::net::TcpStream>>>> + use<> {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let idle = limits.idle_timeout;
    let accepted = tokio_stream::wrappers::TcpListenerStream::new(listener);
    tokio_stream::StreamExt::filter_map(accepted, move |stream| {
        let stream = match stream {
            Ok(stream) => stream,
            Err(err) => {
                tracing::warn!(error = %err, "cannot accept a gRPC connection");
                return None;
            }
        };
        let _ = stream.set_nodelay(true);
        // Over the cap, the connection is dropped, which closes it.
        let slot = Arc::clone(&slots).try_acquire_owned().ok()?;
        let open = metrics::gauge!("chatbotd_open_connections", "face" => "grpc");
        open.increment(1);
        Some(Ok(Slotted { inner: IdleTimeout::new(stream, idle), _slot: slot, open }))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hypers_bare_4xx_heads_are_rejections() {
        let bare = b"HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        assert_eq!(hyper_rejection(bare), Some(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE));
        let ours = b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: 70\r\n\r\n{}";
        assert_eq!(hyper_rejection(ours), None);
        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(hyper_rejection(ok), None);
        assert_eq!(hyper_rejection(b"{\"chatbot\""), None);
    }

    #[test]
    fn a_shaped_response_is_a_whole_json_error() {
        let response = String::from_utf8(shaped_response(StatusCode::URI_TOO_LONG)).expect("UTF-8");
        let (head, body) = response.split_once("\r\n\r\n").expect("a head and a body");
        assert!(head.starts_with("HTTP/1.1 414 URI Too Long\r\n"));
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let body: serde_json::Value = serde_json::from_str(body).expect("JSON");
        assert_eq!(body["error"]["code"], "uri_too_long");
    }
}
