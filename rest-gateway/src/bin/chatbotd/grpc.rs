//! The gRPC face's connections: accepted within their fair share (see [`crate::connections`]) and held
//! to the same silences as REST's, then handed to tonic.

use std::io;

use tokio::net::TcpListener;

use crate::connections::{self, ConnectionLimits, ConnectionTable, Tracked};

/// The gRPC face's connections: accepted with `TCP_NODELAY` and keepalive, each within its client
/// address's share and the face's cap (a connection over either is closed at once), each closed after
/// its silences.
pub fn incoming(
    listener: TcpListener,
    limits: &ConnectionLimits,
) -> impl tokio_stream::Stream<Item = io::Result<Tracked<tokio::net::TcpStream>>> + use<> {
    let table = ConnectionTable::new("grpc", limits.max_connections, limits.max_connections_per_client);
    let silences = limits.silences();
    let accepted = tokio_stream::wrappers::TcpListenerStream::new(listener);
    tokio_stream::StreamExt::filter_map(accepted, move |stream| {
        let stream = match stream {
            Ok(stream) => stream,
            Err(err) => {
                tracing::warn!(error = %err, "cannot accept a gRPC connection");
                return None;
            }
        };
        connections::tune(&stream);
        // Refused, the connection is dropped, which closes it.
        let place = table.admit(stream.peer_addr().ok()?.ip()).ok()?;
        Some(Ok(Tracked::new(stream, place, silences)))
    })
}
