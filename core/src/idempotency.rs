//! Safe retries: a write sent with an idempotency key happens at most once. The key is claimed in the
//! same atomic write as the change (the same sled batch, the same PostgreSQL transaction), with the
//! write's outcome, so that a crash can never keep one without the other; a retry with the same key
//! and the same request gets that outcome again, and the same key with another request is refused.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::catalog::{Field, FieldMask, Value};
use crate::chatbot::{Chatbot, ChatbotDraft};
use crate::domain::{ChatbotId, Rejection, Timestamp};
use crate::error::ViolationCode;

/// Longest idempotency key accepted, in characters.
pub const MAX_KEY_CHARS: usize = 255;

/// A client's idempotency key (REST `Idempotency-Key`, gRPC `request_id`): 1 to 255 printable ASCII
/// characters. Keys are scoped to the organisation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Accepts 1 to 255 printable ASCII characters (space included, other controls not).
    pub fn parse(value: &str) -> Result<Self, Rejection> {
        if value.is_empty() {
            return Err(Rejection::new(ViolationCode::TooShort, "must not be empty"));
        }
        if value.len() > MAX_KEY_CHARS {
            let message = format!("must be at most {MAX_KEY_CHARS} characters (got {})", value.len());
            return Err(Rejection::new(ViolationCode::TooLong, message));
        }
        if !value.bytes().all(|b| (0x20..0x7f).contains(&b)) {
            return Err(Rejection::new(ViolationCode::InvalidFormat, "must be printable ASCII"));
        }
        Ok(IdempotencyKey(value.to_owned()))
    }

    /// The key as sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What makes two requests "the same": a digest of the operation, its target and everything it asks
/// for, whichever face it came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint(#[serde(with = "hex_bytes")] [u8; 32]);

impl Fingerprint {
    /// A fingerprint as stored.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Fingerprint(bytes)
    }

    /// The 32 bytes to store.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// The kinds of write a key can be claimed by.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Operation {
    Create,
    Update,
    Delete,
    Avatar,
    Restore,
    Publish,
    Undelete,
}

impl Fingerprint {
    /// The fingerprint of a write: its kind, its target, the draft's values (field by field, through the
    /// catalog), the fields it changes, and the entity tag it requires.
    pub(crate) fn of(
        operation: Operation,
        target: Option<ChatbotId>,
        draft: Option<&ChatbotDraft>,
        mask: FieldMask,
        expected_etag: Option<&str>,
    ) -> Self {
        let mut digest = Sha256::new();
        digest.update([operation as u8]);
        digest.update(target.map_or([0u8; 16], |id| *id.as_bytes()));
        let mut draft = draft.cloned().unwrap_or_default();
        for field in Field::ALL {
            let value = draft.slot(field).take();
            digest.update([u8::from(mask.contains(field))]);
            match value {
                None => digest.update([0]),
                Some(Value::Flag(flag)) => digest.update([1, u8::from(flag)]),
                Some(Value::Text(text)) => {
                    digest.update([2]);
                    digest.update((text.len() as u64).to_be_bytes());
                    digest.update(text.as_bytes());
                }
                Some(Value::Integer(number)) => {
                    digest.update([3]);
                    digest.update(number.to_be_bytes());
                }
                Some(Value::Number(number)) => {
                    digest.update([4]);
                    digest.update(number.to_bits().to_be_bytes());
                }
            }
        }
        hash_etag(&mut digest, expected_etag);
        Fingerprint(digest.finalize().into())
    }
}

impl Fingerprint {
    /// The fingerprint of an avatar upload: its target, the image's digest, and the entity tag it
    /// requires.
    pub(crate) fn of_avatar(target: ChatbotId, image_digest: &[u8; 32], expected_etag: Option<&str>) -> Self {
        let mut digest = Sha256::new();
        digest.update([Operation::Avatar as u8]);
        digest.update(target.as_bytes());
        digest.update(image_digest);
        hash_etag(&mut digest, expected_etag);
        Fingerprint(digest.finalize().into())
    }
}

impl Fingerprint {
    /// The fingerprint of a restore: its target, the revision it brings back, and the entity tag it
    /// requires.
    pub(crate) fn of_restore(
        target: ChatbotId,
        which: crate::history::RevisionRef,
        expected_etag: Option<&str>,
    ) -> Self {
        let mut digest = Sha256::new();
        digest.update([Operation::Restore as u8]);
        digest.update(target.as_bytes());
        hash_revision(&mut digest, Some(which));
        hash_etag(&mut digest, expected_etag);
        Fingerprint(digest.finalize().into())
    }
}

impl Fingerprint {
    /// The fingerprint of a publish (or, without a revision, an unpublish): its target, the revision,
    /// and the entity tag it requires.
    pub(crate) fn of_publish(
        target: ChatbotId,
        which: Option<crate::history::RevisionRef>,
        expected_etag: Option<&str>,
    ) -> Self {
        let mut digest = Sha256::new();
        digest.update([Operation::Publish as u8]);
        digest.update(target.as_bytes());
        hash_revision(&mut digest, which);
        hash_etag(&mut digest, expected_etag);
        Fingerprint(digest.finalize().into())
    }
}

impl Fingerprint {
    /// The fingerprint of an undelete: its target and the slug it asks for.
    pub(crate) fn of_undelete(target: ChatbotId, slug: Option<&crate::domain::Slug>) -> Self {
        let mut digest = Sha256::new();
        digest.update([Operation::Undelete as u8]);
        digest.update(target.as_bytes());
        hash_text(&mut digest, slug.map(|slug| slug.as_str()));
        Fingerprint(digest.finalize().into())
    }
}

/// Adds the revision a write names (or that it names none) to a fingerprint.
fn hash_revision(digest: &mut Sha256, which: Option<crate::history::RevisionRef>) {
    match which {
        None => digest.update([0]),
        Some(crate::history::RevisionRef::Number(number)) => {
            digest.update([1]);
            digest.update(number.to_be_bytes());
        }
        Some(crate::history::RevisionRef::Version(version)) => {
            digest.update([2]);
            digest.update(version.as_bytes());
        }
    }
}

/// Adds the entity tag a write requires (or that it requires none) to a fingerprint.
fn hash_etag(digest: &mut Sha256, expected_etag: Option<&str>) {
    hash_text(digest, expected_etag);
}

/// Adds an optional text of a request (or that it has none) to a fingerprint.
fn hash_text(digest: &mut Sha256, text: Option<&str>) {
    match text {
        None => digest.update([0]),
        Some(text) => {
            digest.update([1]);
            digest.update(text.as_bytes());
        }
    }
}

/// A write's claim of an idempotency key, handed to the store with the write.
#[derive(Debug, Clone)]
pub struct Claim {
    /// The key.
    pub key: IdempotencyKey,
    /// The request it is claimed for.
    pub fingerprint: Fingerprint,
    /// When it is claimed.
    pub at: Timestamp,
    /// A record of this key made before this instant has expired: it no longer counts, and may be
    /// replaced.
    pub expired_before: Timestamp,
}

/// What the stored record of a claimed key means for a new write claiming it.
#[derive(Debug)]
pub enum Verdict {
    /// No record: nothing stops the write.
    Unclaimed,
    /// A record made before the claim's horizon: it no longer counts, and the write replaces it (an
    /// engine that indexes records by time drops the old entry, made `at`).
    Expired {
        /// When the expired record was made.
        at: Timestamp,
    },
    /// The same request claimed the key: its outcome is given again, and nothing is written.
    Replay(Outcome),
}

impl Claim {
    /// What `stored`, the record of this claim's key if there is one, means for this claim; another
    /// request's unexpired record is [`IdempotencyKeyReused`](crate::Error::IdempotencyKeyReused). The
    /// one rule every engine (and the registry's quick look before a write) follows.
    pub fn verdict(&self, stored: Option<Record>) -> crate::error::Result<Verdict> {
        match stored {
            None => Ok(Verdict::Unclaimed),
            Some(record) if record.at < self.expired_before => Ok(Verdict::Expired { at: record.at }),
            Some(record) if record.fingerprint == self.fingerprint => Ok(Verdict::Replay(record.outcome)),
            Some(_) => Err(crate::Error::IdempotencyKeyReused),
        }
    }
}

/// What was written with a key, kept so that a retry gets it again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Outcome {
    /// A create or an update: the chatbot as it was written.
    Chatbot(Box<Chatbot>),
    /// A delete.
    Deleted,
}

impl Outcome {
    /// A recorded create or update, given again. (A fingerprint names its operation, so a record of a
    /// delete never matches a create or an update; if it did, the key was used for another request.)
    pub fn replayed_chatbot(self) -> crate::error::Result<Written<Chatbot>> {
        match self {
            Outcome::Chatbot(chatbot) => Ok(Written { value: *chatbot, replayed: true }),
            Outcome::Deleted => Err(crate::Error::IdempotencyKeyReused),
        }
    }

    /// A recorded delete, given again.
    pub fn replayed_deletion(self) -> crate::error::Result<Written<()>> {
        match self {
            Outcome::Deleted => Ok(Written { value: (), replayed: true }),
            Outcome::Chatbot(_) => Err(crate::Error::IdempotencyKeyReused),
        }
    }
}

/// A claimed key, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The request it was claimed for.
    pub fingerprint: Fingerprint,
    /// When it was claimed.
    pub at: Timestamp,
    /// What the request did.
    pub outcome: Outcome,
}

/// The result of a write that may be a replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written<T> {
    /// What was written (or, for a replay, what was written the first time).
    pub value: T,
    /// Whether this is the first request's outcome given again.
    pub replayed: bool,
}

impl<T> Written<T> {
    /// A write that just happened.
    pub fn fresh(value: T) -> Self {
        Written { value, replayed: false }
    }
}

/// Hex in JSON for the 32 bytes of a fingerprint.
mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8; 32], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hex::encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<[u8; 32], D::Error> {
        let text = String::deserialize(deserializer)?;
        let bytes = hex::decode(text).map_err(serde::de::Error::custom)?;
        bytes.try_into().map_err(|_| serde::de::Error::custom("a fingerprint is 32 bytes"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_1_to_255_printable_ascii_characters() {
        assert!(IdempotencyKey::parse("a").is_ok());
        assert!(IdempotencyKey::parse(&"k".repeat(255)).is_ok());
        assert!(IdempotencyKey::parse("with spaces and !@#").is_ok());
        assert_eq!(IdempotencyKey::parse("").unwrap_err().code, ViolationCode::TooShort);
        assert_eq!(IdempotencyKey::parse(&"k".repeat(256)).unwrap_err().code, ViolationCode::TooLong);
        for bad in ["tab\there", "é", "nul\0"] {
            assert_eq!(IdempotencyKey::parse(bad).unwrap_err().code, ViolationCode::InvalidFormat, "{bad:?}");
        }
    }

    #[test]
    fn the_same_request_has_the_same_fingerprint_and_any_difference_changes_it() {
        let draft = |name: &str| ChatbotDraft { name: Some(name.into()), ..Default::default() };
        let create = |d: &ChatbotDraft| Fingerprint::of(Operation::Create, None, Some(d), FieldMask::all(), None);
        assert_eq!(create(&draft("A")), create(&draft("A")));
        assert_ne!(create(&draft("A")), create(&draft("B")));
        let id = ChatbotId::new_random();
        let update = Fingerprint::of(Operation::Update, Some(id), Some(&draft("A")), FieldMask::all(), None);
        assert_ne!(update, create(&draft("A")));
        let guarded = Fingerprint::of(Operation::Update, Some(id), Some(&draft("A")), FieldMask::all(), Some("1-a"));
        assert_ne!(update, guarded);
    }
}
