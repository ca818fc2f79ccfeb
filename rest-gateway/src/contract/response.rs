//! The contract's response shapes, which live in the core ([`chatbot_core::view`]) so that revisions
//! and their diffs show a chatbot exactly as the Details endpoint does, on every face.

pub use chatbot_core::view::*;
