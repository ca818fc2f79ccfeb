//! API keys: random secrets shown once, stored only as SHA-256 hashes, each with an id, its first
//! characters, its organisation, when it was made and when it was last used.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::domain::{KeyId, OrgId, Timestamp};

/// How many of a key's first characters are kept, to tell keys apart in a listing: 6 hex characters,
/// 24 of its 192 bits, too few to help anyone guess the rest.
pub const PREFIX_CHARS: usize = 6;

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

    /// What the store keeps of this key.
    pub fn hash(&self) -> KeyHash {
        KeyHash::of(&self.0)
    }

    /// The record of this key, new, for `org`.
    pub fn info(&self, org: OrgId) -> ApiKeyInfo {
        ApiKeyInfo {
            id: KeyId::new_random(),
            organisation_id: org,
            hash: self.hash(),
            prefix: self.0.chars().take(PREFIX_CHARS).collect(),
            created_at: Timestamp::now(),
            last_used_at: None,
        }
    }
}

/// Who a request is from, as its API key says: the key's organisation and the key's id (which
/// revisions record as their actor).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Principal {
    /// The organisation the key lets in.
    pub org: OrgId,
    /// The key's id.
    pub key: KeyId,
}

/// Everything kept of an API key: never the key itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyInfo {
    /// Its id, to list and revoke it.
    pub id: KeyId,
    /// The organisation it lets in.
    pub organisation_id: OrgId,
    /// The SHA-256 of the key, which the store looks it up by.
    pub hash: KeyHash,
    /// Its first [`PREFIX_CHARS`] characters.
    pub prefix: String,
    /// When it was made.
    pub created_at: Timestamp,
    /// When it last let a request in (kept to the minute).
    pub last_used_at: Option<Timestamp>,
}

/// What the store keeps of an API key: its SHA-256. A fast hash is enough because keys are long random
/// secrets, not passwords: there is nothing to guess from a dictionary. Written as hex in JSON.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyHash([u8; 32]);

impl Serialize for KeyHash {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hex::encode(self.0))
    }
}

impl<'de> Deserialize<'de> for KeyHash {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let bytes = hex::decode(text).map_err(serde::de::Error::custom)?;
        Ok(KeyHash(bytes.try_into().map_err(|_| serde::de::Error::custom("a key hash is 32 bytes"))?))
    }
}

impl KeyHash {
    /// The hash of a key as presented by a caller.
    pub fn of(secret: &str) -> Self {
        KeyHash(Sha256::digest(secret.as_bytes()).into())
    }

    /// A hash as stored (export files, the store's own tables).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        KeyHash(bytes)
    }

    /// The 32 bytes to store and look up.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyHash({}..)", hex::encode(&self.0[..4]))
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
        assert_ne!(a.hash(), b.hash());
        assert_eq!(a.hash(), KeyHash::of(a.expose()));
    }
}
