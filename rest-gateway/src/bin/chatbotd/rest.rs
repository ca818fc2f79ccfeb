//! The REST face's connections: each accepted within its fair share (see [`crate::connections`]) and
//! served by hyper with limits and timeouts, with every rejection hyper makes on its own (a bad request
//! line, a too-long URL, too many headers, a header it cannot parse) rewritten into the one error shape,
//! since hyper answers those with an empty body before any of our code runs.

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
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt as _;

use crate::connections::{self, ConnectionLimits, ConnectionTable, Shared, Tracked};

use rest_gateway::error::error_json;

/// Serves `app` on `listener` within `limits` (over TLS with `tls`) until `stop` completes, then lets
/// the requests in flight finish (for at most `grace`).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    stop: impl Future<Output = ()>,
    grace: Duration,
    tls: Option<TlsAcceptor>,
) -> io::Result<()> {
    let limits_header_timeout = limits.header_timeout;
    let table = ConnectionTable::new("rest", limits.max_connections, limits.max_connections_per_client);
    let silences = limits.silences();
    let graceful = GracefulShutdown::new();
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        // A client may close its side once it has sent the request; the answer still goes back.
        .half_close(true)
        .max_headers(limits.max_headers)
        .max_buf_size(MAX_HEAD_BYTES);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.max_streams)
        .max_header_list_size(u32::try_from(MAX_HEAD_BYTES).unwrap_or(u32::MAX))
        .keep_alive_interval(limits.idle_timeout / 2)
        .keep_alive_timeout(limits.header_timeout);
    let builder = Arc::new(builder);
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
        connections::tune(&stream);
        let place = match table.admit(peer.ip()) {
            Ok(place) => place,
            // Over the cap: a 503 in the error shape (in plaintext only: a TLS client could not read it).
            Err(_) => {
                if tls.is_none() {
                    tokio::spawn(refuse(stream));
                }
                continue;
            }
        };
        let stream = Arc::new(stream);
        let streaming = rest_gateway::StreamingPeer(Arc::clone(&stream));
        let app = app.clone().map_request(move |mut request: axum::extract::Request<hyper::body::Incoming>| {
            request.extensions_mut().insert(rest_gateway::ClientAddr(peer));
            request.extensions_mut().insert(streaming.clone());
            request
        });
        let tracked = Tracked::new(Shared(stream), place, silences);
        let (builder, watcher, tls) = (Arc::clone(&builder), graceful.watcher(), tls.clone());
        tokio::spawn(async move {
            // Over TLS, the handshake first (held to the header timeout), in this connection's task.
            let Some(io) = crate::tls::accept(tracked, tls.as_ref(), limits_header_timeout).await else { return };
            let io = TokioIo::new(ShapedRejections::new(io));
            let connection = builder.serve_connection_with_upgrades(io, TowerToHyperService::new(app));
            let _ = watcher.watch(connection.into_owned()).await;
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

/// The most bytes of a request's head (its request line and headers) hyper buffers; a head over it is
/// refused (431, or 414 when its request line alone never ended).
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Rewrites hyper's own bare rejections into responses in the error shape, as they are written.
struct ShapedRejections<IO> {
    inner: IO,
    /// A rewritten response not yet fully written, and how much of it is.
    pending: Option<(Vec<u8>, usize)>,
    /// Whether the first line of the request being read has ended: hyper calls a head over its buffer
    /// 431 even when the URL alone made it so, which is a 414.
    request_line_ended: bool,
}

impl<IO> ShapedRejections<IO> {
    fn new(inner: IO) -> Self {
        ShapedRejections { inner, pending: None, request_line_ended: false }
    }

    /// The response for hyper's bare rejection `status`.
    fn shaped(&self, status: StatusCode) -> Vec<u8> {
        match status {
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE if !self.request_line_ended => {
                shaped_response(StatusCode::URI_TOO_LONG)
            }
            status => shaped_response(status),
        }
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
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.inner).poll_read(cx, buf))?;
        if !self.request_line_ended && buf.filled()[before..].contains(&b'\n') {
            self.request_line_ended = true;
        }
        Poll::Ready(Ok(()))
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for ShapedRejections<IO> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        ready!(self.poll_pending(cx))?;
        if let Some(status) = hyper_rejection(buf) {
            let shaped = self.shaped(status);
            self.pending = Some((shaped, 0));
            ready!(self.poll_pending(cx))?;
            return Poll::Ready(Ok(buf.len()));
        }
        // An answer: the next request (HTTP/1 answers in order) starts with a new request line.
        self.request_line_ended = false;
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
