//! The stored form of a chatbot: one schema-version byte, then JSON. Reading dispatches on the
//! version, so a later schema can migrate old records as they are read.

use crate::chatbot::Chatbot;
use crate::error::{Error, Result};

/// The schema written today.
const SCHEMA_V1: u8 = 1;

/// The bytes stored for `chatbot`.
pub(super) fn encode(chatbot: &Chatbot) -> Result<Vec<u8>> {
    let mut bytes = vec![SCHEMA_V1];
    serde_json::to_writer(&mut bytes, chatbot).map_err(Error::storage)?;
    Ok(bytes)
}

/// The chatbot stored as `bytes`, re-checked by the types' own parsers.
pub(super) fn decode(bytes: &[u8]) -> Result<Chatbot> {
    match bytes.split_first() {
        Some((&SCHEMA_V1, json)) => serde_json::from_slice(json).map_err(Error::storage),
        Some((version, _)) => Err(Error::storage(format!("unknown chatbot schema version {version}"))),
        None => Err(Error::storage("empty chatbot record")),
    }
}
