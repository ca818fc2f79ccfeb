//! `grpc-server`: the chatbotd gRPC service. It authenticates the `x-api-key` metadata, converts
//! protobuf messages to core types (field by field through the core's catalog), calls
//! [`chatbot_core::Registry`] and converts the result back; errors become gRPC statuses with
//! `google.rpc` details, in one mapping (`status.rs`). No rule lives here.
//!
//! [`serve`] runs it with gRPC health and reflection, so stock tools (`grpcurl`, `grpc_health_probe`)
//! can list and call it.

mod convert;
mod service;
mod status;

use std::future::Future;

use tokio::net::TcpListener;
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::TcpListenerStream;

pub use convert::message as message_from_draft;
pub use service::{API_KEY_METADATA, ChatbotApi};
pub use status::ERROR_DOMAIN;

/// The generated protobuf types, service and client of `proto/chatbot/v1/chatbot.proto`.
#[allow(missing_docs, clippy::all, clippy::pedantic, clippy::wildcard_enum_match_arm)]
pub mod pb {
    tonic::include_proto!("chatbot.v1");

    /// The encoded descriptor set of the API, served by gRPC reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("chatbot_descriptor");
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

/// Serves `api`, health and reflection on `listener` until `shutdown` completes, then finishes the
/// calls in flight.
pub async fn serve(
    listener: TcpListener,
    api: ChatbotApi,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
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
        .max_decoding_message_size(chatbot_core::domain::limits::MAX_REQUEST_BYTES);

    tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(chatbots)
        .serve_with_incoming_shutdown(accept_nodelay(listener), shutdown)
        .await
}
