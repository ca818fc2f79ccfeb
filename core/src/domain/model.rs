//! The language model a chatbot answers with.

use serde::{Deserialize, Serialize};

use super::limits::MODEL_MAX_CHARS;
use super::{Rejection, string_newtype};
use crate::ViolationCode;

/// A model name. New values are checked against the deployment's allow-list by
/// [`ModelAllowList::parse`](crate::ModelAllowList::parse); a stored value stays readable even if the
/// allow-list later shrinks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Model(String);

impl Model {
    /// Accepts any non-empty name of at most `MODEL_MAX_CHARS` characters. Use the allow-list for new input.
    pub fn parse(value: &str) -> Result<Self, Rejection> {
        super::check_chars(value, 1, MODEL_MAX_CHARS)?;
        if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(Rejection::new(ViolationCode::InvalidFormat, "must not contain spaces or control characters"));
        }
        Ok(Model(value.to_owned()))
    }
}

string_newtype!(Model);
