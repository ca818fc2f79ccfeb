//! `rest-gateway`: the okchat external API's chatbot endpoints as JSON over HTTP (axum), translated
//! to calls of the chatbotd gRPC service ([`backend`]). It parses the contract's JSON
//! ([`contract::request`]), calls the service, and shapes the contract's JSON
//! ([`contract::response`]); errors take one shape ([`error`]). No rule lives here.
//!
//! The `chatbotd` binary (src/main.rs) runs this gateway and the gRPC service over one store.

pub mod backend;
pub mod contract;
pub mod error;
pub mod extract;
mod preconditions;
mod query;
mod routes;

pub use backend::Backend;
pub use routes::app;
