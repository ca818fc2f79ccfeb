//! `rest-gateway`: the okchat external API's chatbot endpoints as JSON over HTTP (axum), over
//! [`chatbot_core::Registry`]. Each handler reads the contract's JSON into core types
//! ([`contract::request`], field by field through the core's catalog), calls the registry and shapes
//! the contract's JSON ([`contract::response`]); every error takes one shape, mapped in one place
//! ([`error`]). No rule lives here.
//!
//! The `chatbotd` binary (`src/bin/chatbotd/`) serves this gateway and the gRPC service over one store;
//! none of its modules is part of this library.

pub mod contract;
pub mod error;
pub mod events;
pub mod extract;
mod history;
pub mod layers;
pub mod openapi;
mod preconditions;
mod public;
mod query;
mod routes;

pub use layers::{ClientAddr, StreamingPeer};
pub use routes::{AppOptions, DEFAULT_REQUEST_TIMEOUT, MetricsRenderer, app, app_with};
