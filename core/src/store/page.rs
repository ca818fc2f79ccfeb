//! Listing order and page tokens, the same for every engine: newest first, ties broken by ascending
//! id. Neither the creation time nor the id ever changes, so a cursor (the position of the last chatbot
//! returned) neither skips nor repeats chatbots that exist throughout, whatever is created or deleted.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::chatbot::Chatbot;
use crate::domain::{ChatbotId, Rejection, Timestamp};
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
    /// The (is_public, active) combinations this filter lets through: one to four. Engines keep one
    /// ordered range per combination and merge the ones a listing needs.
    pub fn flag_combinations(self) -> Vec<(bool, bool)> {
        let values = |fixed: Option<bool>| fixed.map_or(vec![false, true], |v| vec![v]);
        let mut combinations = Vec::with_capacity(4);
        for is_public in values(self.is_public) {
            for active in values(self.active) {
                combinations.push((is_public, active));
            }
        }
        combinations
    }
}

/// An opaque page token: the position of the last chatbot of the previous page. It is valid with any
/// filter, since every filter lists in the same order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageCursor {
    created_at: Timestamp,
    id: ChatbotId,
}

impl PageCursor {
    const VERSION: u8 = 1;

    /// The cursor that continues after `chatbot`.
    pub fn after(chatbot: &Chatbot) -> Self {
        PageCursor { created_at: chatbot.created_at, id: chatbot.id }
    }

    /// The creation time of the last chatbot seen.
    pub fn created_at(&self) -> Timestamp {
        self.created_at
    }

    /// The id of the last chatbot seen.
    pub fn id(&self) -> ChatbotId {
        self.id
    }

    /// The token clients send back.
    pub fn encode(&self) -> String {
        let mut bytes = vec![Self::VERSION];
        bytes.extend_from_slice(&self.created_at.as_micros().to_be_bytes());
        bytes.extend_from_slice(self.id.as_bytes());
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
        Ok(PageCursor { created_at: Timestamp::from_micros(i64::from_be_bytes(micros)), id: ChatbotId::from_bytes(id) })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn page_tokens_round_trip(micros in 0i64..i64::MAX, id in any::<[u8; 16]>()) {
            let cursor = PageCursor { created_at: Timestamp::from_micros(micros), id: ChatbotId::from_bytes(id) };
            prop_assert_eq!(PageCursor::parse(&cursor.encode()), Ok(cursor));
        }

        /// A token one character off one that was issued (another character of the token's own
        /// alphabet half the time, so that many still decode), or cut short: it is refused, or it is
        /// exactly the token of the cursor it names (no second spelling of a position is accepted).
        #[test]
        fn only_tokens_this_service_issued_are_accepted(
            micros in 0i64..i64::MAX,
            id in any::<[u8; 16]>(),
            at in any::<prop::sample::Index>(),
            with in prop_oneof![
                any::<char>(),
                prop::sample::select("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".chars().collect::<Vec<_>>()),
            ],
            cut in any::<bool>(),
        ) {
            let issued = PageCursor { created_at: Timestamp::from_micros(micros), id: ChatbotId::from_bytes(id) };
            let mut chars: Vec<char> = issued.encode().chars().collect();
            let i = at.index(chars.len());
            if cut { chars.truncate(i) } else { chars[i] = with }
            let token: String = chars.into_iter().collect();
            if let Ok(cursor) = PageCursor::parse(&token) {
                prop_assert_eq!(cursor.encode(), token);
            }
        }
    }

    #[test]
    fn a_filter_lets_through_the_flag_combinations_it_allows() {
        assert_eq!(Filter::default().flag_combinations().len(), 4);
        assert_eq!(Filter { is_public: Some(true), active: None }.flag_combinations(), [(true, false), (true, true)]);
        assert_eq!(Filter { is_public: Some(true), active: Some(false) }.flag_combinations(), [(true, false)]);
    }
}
