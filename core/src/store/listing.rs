//! Listing order: for each chatbot, one key per filter combination, so that every filtered page is
//! a range scan that reads only the page.
//!
//! Key: `l` | organisation (16 bytes) | filter (1 to 3 bytes) | `u64::MAX - created_at` (8, big endian) |
//! chatbot id (16). Keys sort newest first, ties broken by id; neither part ever changes, so a
//! cursor (the last key's position) neither skips nor repeats chatbots that exist throughout.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::chatbot::Chatbot;
use crate::domain::{ChatbotId, OrgId, Rejection, Timestamp};
use crate::error::ViolationCode;

/// Which chatbots a listing returns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only public (`true`) or only private (`false`) chatbots.
    pub is_public: Option<bool>,
    /// Only active or only inactive chatbots.
    pub active: Option<bool>,
}

impl Filter {
    /// The filter's bytes in a key: a tag naming which fields are fixed, then their values.
    fn bytes(self) -> Vec<u8> {
        match (self.is_public, self.active) {
            (None, None) => vec![0],
            (Some(p), None) => vec![1, p as u8],
            (None, Some(a)) => vec![2, a as u8],
            (Some(p), Some(a)) => vec![3, p as u8, a as u8],
        }
    }
}

/// The key prefix of one organisation's listing under `filter`.
pub(crate) fn prefix(org: OrgId, filter: Filter) -> Vec<u8> {
    let mut key = Vec::with_capacity(20);
    key.push(b'l');
    key.extend_from_slice(org.as_bytes());
    key.extend(filter.bytes());
    key
}

/// One listing key.
pub(crate) struct ListingKey(Vec<u8>);

impl ListingKey {
    /// The four keys of `chatbot`: unfiltered, by visibility, by activity, by both.
    pub fn all_for(chatbot: &Chatbot) -> [ListingKey; 4] {
        let (p, a) = (Some(chatbot.config.is_public), Some(chatbot.config.active));
        let position = Position { created_at: chatbot.created_at, id: chatbot.id };
        let filters = [
            Filter::default(),
            Filter { is_public: p, active: None },
            Filter { is_public: None, active: a },
            Filter { is_public: p, active: a },
        ];
        filters.map(|filter| ListingKey(position.key(&prefix(chatbot.organization_id, filter))))
    }

    /// The key's bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }

    /// The chatbot a key under `prefix` lists, or `None` once the scan has left the prefix.
    pub fn chatbot_in(key: &[u8], prefix: &[u8]) -> Option<ChatbotId> {
        let rest = key.strip_prefix(prefix)?;
        let id: [u8; 16] = rest.get(8..24)?.try_into().ok()?;
        Some(ChatbotId::from_bytes(id))
    }
}

/// Where a chatbot stands in the order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Position {
    created_at: Timestamp,
    id: ChatbotId,
}

impl Position {
    fn key(&self, prefix: &[u8]) -> Vec<u8> {
        let mut key = Vec::with_capacity(prefix.len() + 24);
        key.extend_from_slice(prefix);
        key.extend_from_slice(&(u64::MAX - self.created_at.as_micros() as u64).to_be_bytes());
        key.extend_from_slice(self.id.as_bytes());
        key
    }
}

/// An opaque page token: the position of the last chatbot of the previous page. It is valid with any
/// filter, since every filter lists in the same order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageCursor(Position);

impl PageCursor {
    const VERSION: u8 = 1;

    /// The cursor that continues after `chatbot`.
    pub fn after(chatbot: &Chatbot) -> Self {
        PageCursor(Position { created_at: chatbot.created_at, id: chatbot.id })
    }

    /// The token clients send back.
    pub fn encode(&self) -> String {
        let mut bytes = vec![Self::VERSION];
        bytes.extend_from_slice(&self.0.created_at.as_micros().to_be_bytes());
        bytes.extend_from_slice(self.0.id.as_bytes());
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Reads a token made by [`PageCursor::encode`].
    pub fn parse(token: &str) -> Result<Self, Rejection> {
        let invalid = || Rejection::new(ViolationCode::InvalidFormat, "is not a page token this service issued");
        let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
        let [Self::VERSION, rest @ ..] = bytes.as_slice() else {
            return Err(invalid());
        };
        let (micros, id) = rest.split_at_checked(8).ok_or_else(invalid)?;
        let micros: [u8; 8] = micros.try_into().map_err(|_| invalid())?;
        let id: [u8; 16] = id.try_into().map_err(|_| invalid())?;
        Ok(PageCursor(Position {
            created_at: Timestamp::from_micros(i64::from_be_bytes(micros)),
            id: ChatbotId::from_bytes(id),
        }))
    }

    /// The listing key this cursor stands at, under `prefix`.
    pub(crate) fn key(&self, prefix: &[u8]) -> Vec<u8> {
        self.0.key(prefix)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn page_tokens_round_trip(micros in 0i64..i64::MAX, id in any::<[u8; 16]>()) {
            let cursor = PageCursor(Position { created_at: Timestamp::from_micros(micros), id: ChatbotId::from_bytes(id) });
            prop_assert_eq!(PageCursor::parse(&cursor.encode()), Ok(cursor));
        }

        #[test]
        fn any_other_token_is_rejected_without_panic(token in any::<String>()) {
            let _ = PageCursor::parse(&token);
        }
    }

    #[test]
    fn newer_chatbots_sort_first() {
        let org = OrgId::new_random();
        let pos = |micros| Position { created_at: Timestamp::from_micros(micros), id: ChatbotId::new_random() };
        let p = prefix(org, Filter::default());
        assert!(pos(2).key(&p) < pos(1).key(&p));
    }
}
