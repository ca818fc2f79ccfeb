//! The gRPC face's connections: accepted within their fair share (see [`crate::connections`]) and held
//! to the same silences as REST's, over TLS when it is on (see [`crate::tls`]), then handed to tonic.

use std::io;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::ReceiverStream;

use crate::connections::{self, ConnectionLimits, ConnectionTable, Tracked};
use crate::tls::{self, MaybeTls};

/// A gRPC connection as tonic gets it.
pub type Connection = MaybeTls<Tracked<TcpStream>>;

/// The gRPC face's connections: accepted with `TCP_NODELAY` and keepalive, each within its client
/// address's share and the face's cap (a connection over either is closed at once), each closed after
/// its silences; with `tls`, each handshake done in a task of its own within the header timeout, so
/// that a slow one holds up no other. Accepting stops once tonic drops the stream.
pub fn incoming(
    listener: TcpListener,
    limits: &ConnectionLimits,
    tls: Option<TlsAcceptor>,
) -> ReceiverStream<io::Result<Connection>> {
    let table = ConnectionTable::new("grpc", limits.max_connections, limits.max_connections_per_client);
    let (silences, handshake) = (limits.silences(), limits.header_timeout);
    let (ready, incoming) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(err) => {
                        tracing::warn!(error = %err, "cannot accept a gRPC connection");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = ready.closed() => return,
            };
            connections::tune(&stream);
            // Refused, the connection is dropped, which closes it.
            let Ok(place) = table.admit(peer.ip()) else { continue };
            let tracked = Tracked::new(stream, place, silences);
            let (ready, tls) = (ready.clone(), tls.clone());
            tokio::spawn(async move {
                if let Some(connection) = tls::accept(tracked, tls.as_ref(), handshake).await {
                    let _ = ready.send(Ok(connection)).await;
                }
            });
        }
    });
    ReceiverStream::new(incoming)
}
