//! Names picked from a deployment's allow-list: the language model a chatbot answers with, and the
//! voice its voice agent speaks with.

use serde::{Deserialize, Serialize};

use super::limits::{MODEL_MAX_CHARS, VOICE_MAX_CHARS};
use super::{Rejection, string_newtype};
use crate::error::ViolationCode;

/// A model name. New values are checked against the deployment's allow-list by
/// [`AllowList::check`](crate::rules::AllowList::check); a stored value stays readable even if the
/// allow-list later shrinks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Model(String);

impl Model {
    /// Accepts any non-empty name of at most `MODEL_MAX_CHARS` characters. Use the allow-list for new input.
    pub fn parse(value: &str) -> Result<Self, Rejection> {
        check_name(value, MODEL_MAX_CHARS).map(Model)
    }
}

/// The voice of a chatbot's voice agent (`shimmer`), from the deployment's allow-list like [`Model`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Voice(String);

impl Voice {
    /// Accepts any non-empty name of at most `VOICE_MAX_CHARS` characters. Use the allow-list for new input.
    pub fn parse(value: &str) -> Result<Self, Rejection> {
        check_name(value, VOICE_MAX_CHARS).map(Voice)
    }
}

/// A name: 1 to `max` characters, no spaces or control characters.
fn check_name(value: &str, max: usize) -> Result<String, Rejection> {
    super::check_chars(value, 1, max)?;
    if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Rejection::new(ViolationCode::InvalidFormat, "must not contain spaces or control characters"));
    }
    Ok(value.to_owned())
}

string_newtype!(Model);
string_newtype!(Voice);
