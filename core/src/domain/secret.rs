//! A customer's own OpenAI API key, stored for later use and never shown again in clear; and how a
//! chatbot holds such a secret: [`Secret`], sealed by the registry's keyring before it is stored.

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

/// A secret as a chatbot holds it. A request gives it in clear; the registry seals it (see
/// [`crate::secrets`]) before any store sees it, so every store written with a keyring holds it
/// [`Secret::Sealed`]. [`Secret::Clear`] stays only in a store written without a keyring (before
/// sealing existed, or with `--allow-plaintext-secrets`); the next rotation seals it.
///
/// Stored as JSON, a clear secret is a string (as stores written before sealing hold it) and a sealed
/// one an object, so both read back. Its `Debug` form is masked in either case.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Secret {
    /// Sealed under a key of the keyring.
    Sealed(SealedSecret),
    /// In clear.
    Clear(OpenAiKey),
}

impl Secret {
    /// The form safe to show (see [`OpenAiKey::masked`]), without opening a sealed value.
    pub fn masked(&self) -> String {
        match self {
            Secret::Sealed(sealed) => sealed.masked.clone(),
            Secret::Clear(key) => key.masked(),
        }
    }

    /// The keyring's key it is sealed under; `None` in clear.
    pub fn key_id(&self) -> Option<&str> {
        match self {
            Secret::Sealed(sealed) => Some(&sealed.key_id),
            Secret::Clear(_) => None,
        }
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Secret::Sealed(sealed) => write!(f, "Sealed({}, {})", sealed.key_id, sealed.masked),
            Secret::Clear(key) => write!(f, "Clear({})", key.masked()),
        }
    }
}

/// A secret sealed with AES-256-GCM under one key of the keyring: the key's id, the nonce and the
/// ciphertext with its tag, and the masked form (what the faces show, which is never enough to use the
/// secret). Only a keyring holding `key_id` opens it, and only for the chatbot and field it was sealed
/// for: those are its associated data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedSecret {
    /// The keyring's key it is sealed under.
    pub key_id: String,
    /// The 96-bit nonce followed by the ciphertext and its 128-bit tag, in base64.
    pub sealed: String,
    /// The masked form of the clear value.
    pub masked: String,
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
    fn a_secret_reads_back_from_a_string_in_clear_and_from_an_object_sealed() {
        let clear: Secret = serde_json::from_str("\"sk-proj-abcdefghijklmnop1234\"").unwrap();
        assert_eq!(clear, Secret::Clear(OpenAiKey::parse("sk-proj-abcdefghijklmnop1234").unwrap()));
        let sealed: Secret = serde_json::from_str(r#"{"key_id":"k1","sealed":"AAAA","masked":"sk-...1234"}"#).unwrap();
        assert_eq!(sealed.key_id(), Some("k1"));
        assert_eq!(sealed.masked(), "sk-...1234");
        assert_eq!(serde_json::to_value(&clear).unwrap(), serde_json::json!("sk-proj-abcdefghijklmnop1234"));
        assert!(!format!("{clear:?}").contains("abcdef"));
    }

    #[test]
    fn keys_with_spaces_are_rejected() {
        assert!(OpenAiKey::parse("sk- 1234").is_err());
        assert!(OpenAiKey::parse("").is_err());
    }
}
