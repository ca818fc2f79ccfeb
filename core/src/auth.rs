//! API keys: random secrets shown once, stored only as SHA-256 hashes.

use sha2::{Digest, Sha256};

/// An API key in clear: 48 lowercase hex characters (192 random bits), the form the contract shows.
/// It exists only between its creation and the moment it is printed to its owner.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// A fresh key from the operating system's random source.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 24];
        getrandom::fill(&mut bytes).expect("the operating system's random source is available");
        ApiKey(hex::encode(bytes))
    }

    /// Wraps a key given by an operator (e.g. `CHATBOTD_API_KEY`).
    pub fn from_secret(secret: impl Into<String>) -> Self {
        ApiKey(secret.into())
    }

    /// The key in clear, to show its owner once.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// What the store keeps: the SHA-256 of the key. A fast hash is enough because keys are long
    /// random secrets, not passwords: there is nothing to guess from a dictionary.
    pub(crate) fn hash(secret: &str) -> [u8; 32] {
        Sha256::digest(secret.as_bytes()).into()
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_48_hex_characters_and_differ() {
        let (a, b) = (ApiKey::generate(), ApiKey::generate());
        assert_eq!(a.expose().len(), 48);
        assert!(a.expose().bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
        assert_ne!(ApiKey::hash(a.expose()), ApiKey::hash(b.expose()));
    }
}
