//! A customer's own OpenAI API key, stored for later use and never shown again in clear.

use serde::{Deserialize, Serialize};

use super::limits::OPENAI_KEY_MAX_CHARS;
use super::{Rejection, check_chars};
use crate::error::ViolationCode;

/// An OpenAI API key: 1 to 256 characters without spaces. Its `Debug` form is masked, and it has no
/// `Display`, so it cannot leak into logs or responses by accident: use [`OpenAiKey::masked`].
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct OpenAiKey(String);

impl OpenAiKey {
    /// Accepts 1 to 256 characters with no whitespace or control characters.
    pub fn parse(value: &str) -> Result<Self, Rejection> {
        check_chars(value, 1, OPENAI_KEY_MAX_CHARS)?;
        if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(Rejection::new(ViolationCode::InvalidFormat, "must not contain spaces or control characters"));
        }
        Ok(OpenAiKey(value.to_owned()))
    }

    /// The form safe to show: the first three and last four characters, e.g. `sk-...1234`. Keys
    /// shorter than 12 characters show only `...`, since their ends would reveal too much.
    pub fn masked(&self) -> String {
        let chars: Vec<char> = self.0.chars().collect();
        if chars.len() < 12 {
            return "...".to_owned();
        }
        let head: String = chars[..3].iter().collect();
        let tail: String = chars[chars.len() - 4..].iter().collect();
        format!("{head}...{tail}")
    }

    /// The key in clear, for the code that calls OpenAI on the customer's behalf.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for OpenAiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OpenAiKey({})", self.masked())
    }
}

impl From<OpenAiKey> for String {
    fn from(value: OpenAiKey) -> String {
        value.0
    }
}

impl TryFrom<String> for OpenAiKey {
    type Error = Rejection;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        OpenAiKey::parse(&value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_masked_to_its_ends() {
        let key = OpenAiKey::parse("sk-proj-abcdefghijklmnop1234").unwrap();
        assert_eq!(key.masked(), "sk-...1234");
        assert!(!format!("{key:?}").contains("abcdef"));
    }

    #[test]
    fn a_short_key_is_masked_entirely() {
        assert_eq!(OpenAiKey::parse("sk-12345").unwrap().masked(), "...");
    }

    #[test]
    fn keys_with_spaces_are_rejected() {
        assert!(OpenAiKey::parse("sk- 1234").is_err());
        assert!(OpenAiKey::parse("").is_err());
    }
}
