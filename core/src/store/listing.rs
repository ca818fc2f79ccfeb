//! Listing order: one key per chatbot, so that every page is a range scan that reads only the page.
//!
//! Key: `l` | organisation (16 bytes) | flags (1 byte: is_public, active) | `u64::MAX - created_at` (8,
//! big endian) | chatbot id (16). Within one flags value keys sort newest first, ties broken by id.
//! A listing merges the (at most four) flag ranges its filter allows, so a page costs the page plus at
//! most four extra reads, however many chatbots the organisation has and whatever the filter. Neither
//! the creation time nor the id ever changes, so a cursor (the last position returned) neither skips
//! nor repeats chatbots that exist throughout.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::chatbot::Chatbot;
use crate::domain::{ChatbotId, OrgId, Rejection, Timestamp};
use crate::error::{Result, ViolationCode};

/// Bytes of a position (inverted creation time and id) at the end of every listing key.
const POSITION_LEN: usize = 24;

/// Which chatbots a listing returns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only public (`true`) or only private (`false`) chatbots.
    pub is_public: Option<bool>,
    /// Only active or only inactive chatbots.
    pub active: Option<bool>,
}

impl Filter {
    /// The key prefixes of the flag ranges this filter lists, for organisation `org`.
    pub(crate) fn prefixes(self, org: OrgId) -> Vec<Vec<u8>> {
        let values = |fixed: Option<bool>| fixed.map_or(vec![false, true], |v| vec![v]);
        let mut prefixes = Vec::with_capacity(4);
        for is_public in values(self.is_public) {
            for active in values(self.active) {
                prefixes.push(prefix(org, is_public, active));
            }
        }
        prefixes
    }
}

fn prefix(org: OrgId, is_public: bool, active: bool) -> Vec<u8> {
    let mut key = Vec::with_capacity(18 + POSITION_LEN);
    key.push(b'l');
    key.extend_from_slice(org.as_bytes());
    key.push(u8::from(is_public) | (u8::from(active) << 1));
    key
}

/// The listing key of `chatbot`.
pub(crate) fn key(chatbot: &Chatbot) -> Vec<u8> {
    let mut key = prefix(chatbot.organization_id, chatbot.config.is_public, chatbot.config.active);
    key.extend_from_slice(&Position { created_at: chatbot.created_at, id: chatbot.id }.bytes());
    key
}

/// Where a chatbot stands in the order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Position {
    created_at: Timestamp,
    id: ChatbotId,
}

impl Position {
    fn bytes(&self) -> [u8; POSITION_LEN] {
        let mut bytes = [0u8; POSITION_LEN];
        bytes[..8].copy_from_slice(&(u64::MAX - self.created_at.as_micros() as u64).to_be_bytes());
        bytes[8..].copy_from_slice(self.id.as_bytes());
        bytes
    }
}

/// The position part of a listing key.
fn position_of(key: &[u8]) -> &[u8] {
    &key[key.len().saturating_sub(POSITION_LEN)..]
}

/// The chatbot a listing key lists.
pub(crate) fn chatbot_of(key: &[u8]) -> ChatbotId {
    let mut id = [0u8; 16];
    id.copy_from_slice(&position_of(key)[8..]);
    ChatbotId::from_bytes(id)
}

/// Up to `limit` chatbots of `org` under `filter` after `after`, in order, and whether more follow:
/// a merge of the filter's flag ranges.
pub(crate) fn page(
    tree: &sled::Tree,
    org: OrgId,
    filter: Filter,
    after: Option<&PageCursor>,
    limit: usize,
) -> Result<(Vec<ChatbotId>, bool)> {
    let mut ranges: Vec<Box<dyn Iterator<Item = sled::Result<sled::IVec>>>> = filter
        .prefixes(org)
        .into_iter()
        .map(|prefix| {
            let start = match after {
                Some(cursor) => std::ops::Bound::Excluded([prefix.as_slice(), &cursor.0.bytes()].concat()),
                None => std::ops::Bound::Included(prefix.clone()),
            };
            let keys = tree.range::<Vec<u8>, _>((start, std::ops::Bound::Unbounded)).keys();
            Box::new(keys.take_while(move |key| key.as_ref().map_or(true, |key| key.starts_with(&prefix))))
                as Box<dyn Iterator<Item = _>>
        })
        .collect();
    let mut heads: Vec<Option<sled::IVec>> =
        ranges.iter_mut().map(|range| range.next().transpose()).collect::<sled::Result<_>>()?;
    let mut ids = Vec::with_capacity(limit);
    loop {
        let first = heads.iter().enumerate().filter_map(|(i, head)| Some((position_of(head.as_ref()?), i))).min();
        let Some((_, i)) = first else { return Ok((ids, false)) };
        if ids.len() == limit {
            return Ok((ids, true));
        }
        if let Some(key) = heads[i].take() {
            ids.push(chatbot_of(&key));
        }
        heads[i] = ranges[i].next().transpose()?;
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
        let [Self::VERSION, rest @ ..] = bytes.as_slice() else { return Err(invalid()) };
        let (micros, id) = rest.split_at_checked(8).ok_or_else(invalid)?;
        let micros: [u8; 8] = micros.try_into().map_err(|_| invalid())?;
        let id: [u8; 16] = id.try_into().map_err(|_| invalid())?;
        Ok(PageCursor(Position {
            created_at: Timestamp::from_micros(i64::from_be_bytes(micros)),
            id: ChatbotId::from_bytes(id),
        }))
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
        let pos = |micros| Position { created_at: Timestamp::from_micros(micros), id: ChatbotId::new_random() };
        assert!(pos(2).bytes() < pos(1).bytes());
    }

    #[test]
    fn a_filter_lists_the_flag_ranges_it_allows() {
        let org = OrgId::new_random();
        assert_eq!(Filter::default().prefixes(org).len(), 4);
        assert_eq!(Filter { is_public: Some(true), active: None }.prefixes(org).len(), 2);
        assert_eq!(Filter { is_public: Some(true), active: Some(false) }.prefixes(org), vec![prefix(org, true, false)]);
    }
}
