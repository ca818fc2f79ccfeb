//! `grpc-server`: the chatbotd gRPC service. It admits each call by its `x-api-key` metadata (and the
//! key's rate limit), converts protobuf messages to core types (field by field through the core's
//! catalog), calls [`chatbot_core::Registry`] and converts the result back; errors become gRPC
//! statuses with `google.rpc` details, in one mapping (`status.rs`), and the failures tonic reports
//! itself (a message that does not decode, or is too large) get the same details (`wire.rs`). No rule
//! lives here.
//!
//! [`serve`] runs it with gRPC health and reflection, so stock tools (`grpcurl`, `grpc_health_probe`)
//! can list and call it.

mod admin;
mod convert;
mod service;
mod status;
mod wire;

use std::future::Future;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::server::Connected;

pub use admin::{ADMIN_TOKEN_METADATA, AdminApi, MIN_ADMIN_TOKEN_CHARS};
pub use convert::message as message_from_draft;
pub use service::{API_KEY_METADATA, ChatbotApi, REPLAYED_METADATA};
pub use status::ERROR_DOMAIN;

/// The generated protobuf types, service and client of `proto/chatbot/v1/chatbot.proto`.
#[allow(missing_docs, clippy::all, clippy::pedantic, clippy::wildcard_enum_match_arm)]
pub mod pb {
    tonic::include_proto!("chatbot.v1");

    /// The encoded descriptor set of both APIs, served by gRPC reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("chatbot_descriptor");
}

/// The generated protobuf types, service and client of `proto/chatbot/admin/v1/admin.proto`.
#[allow(missing_docs, clippy::all, clippy::pedantic, clippy::wildcard_enum_match_arm)]
pub mod admin_pb {
    tonic::include_proto!("chatbot.admin.v1");
}

/// The limits every call and connection is held to.
#[derive(Debug, Clone)]
pub struct CallLimits {
    /// Most concurrent streams (calls) on one connection.
    pub max_streams: u32,
    /// How long one call may take.
    pub request_timeout: Duration,
    /// How often an idle connection is pinged; one that does not answer within as long is closed.
    pub keepalive: Duration,
}

/// The connections accepted on `listener`, with `TCP_NODELAY` set: tonic sets it only on listeners
/// it binds itself, and without it every small unary reply waits 40 ms for Nagle's algorithm.
pub fn accept_nodelay(
    listener: TcpListener,
) -> impl tokio_stream::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    TcpListenerStream::new(listener).map(|stream| {
        let stream = stream?;
        stream.set_nodelay(true)?;
        Ok(stream)
    })
}

/// Serves `api`, `admin`, health and reflection on the connections of `incoming` within `limits` until
/// `shutdown` completes, then finishes the calls in flight.
pub async fn serve<IO, E>(
    incoming: impl tokio_stream::Stream<Item = Result<IO, E>> + Send,
    api: ChatbotApi,
    admin: AdminApi,
    limits: CallLimits,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error>
where
    IO: AsyncRead + AsyncWrite + Connected + Unpin + Send + 'static,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<pb::chatbot_service_server::ChatbotServiceServer<ChatbotApi>>().await;
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection().build_v1().expect("the embedded descriptor sets are valid");
    let reflection_v1alpha = reflection().build_v1alpha().expect("the embedded descriptor sets are valid");
    let chatbots = pb::chatbot_service_server::ChatbotServiceServer::new(api)
        // The avatar upload's limit; every other method holds its message to the JSON body's limit.
        .max_decoding_message_size(chatbot_core::avatar::MAX_AVATAR_UPLOAD_BYTES);

    tonic::transport::Server::builder()
        .max_concurrent_streams(limits.max_streams)
        .timeout(limits.request_timeout)
        .http2_keepalive_interval(Some(limits.keepalive))
        .http2_keepalive_timeout(Some(limits.keepalive))
        .layer(wire::WireErrorsLayer)
        .layer(
            tower_http::trace::TraceLayer::new_for_grpc()
                .make_span_with(wire::call_span)
                .on_request(())
                .on_response(wire::access_log)
                .on_failure(()),
        )
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(chatbots)
        .add_service(admin_pb::admin_service_server::AdminServiceServer::new(admin))
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
}
