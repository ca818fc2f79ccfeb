//! The display name of a chatbot.

use serde::{Deserialize, Serialize};

use super::limits::NAME_MAX_CHARS;
use super::{Rejection, check_chars, string_newtype};
use crate::error::ViolationCode;

/// A chatbot's name: trimmed, 1 to 100 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ChatbotName(String);

impl ChatbotName {
    /// Trims `value` and accepts it if 1 to 100 characters without control characters remain.
    pub fn parse(value: &str) -> Result<Self, Rejection> {
        let trimmed = value.trim();
        check_chars(trimmed, 1, NAME_MAX_CHARS)?;
        if trimmed.chars().any(char::is_control) {
            return Err(Rejection::new(ViolationCode::InvalidFormat, "must not contain control characters"));
        }
        Ok(ChatbotName(trimmed.to_owned()))
    }
}

string_newtype!(ChatbotName);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_trimmed() {
        assert_eq!(ChatbotName::parse("  Support  ").unwrap().as_str(), "Support");
    }

    #[test]
    fn a_blank_name_is_too_short() {
        assert_eq!(ChatbotName::parse("   ").unwrap_err().code, ViolationCode::TooShort);
    }

    #[test]
    fn a_name_of_101_characters_is_too_long() {
        assert!(ChatbotName::parse(&"é".repeat(100)).is_ok());
        assert_eq!(ChatbotName::parse(&"é".repeat(101)).unwrap_err().code, ViolationCode::TooLong);
    }

    proptest::proptest! {
        #[test]
        fn an_accepted_name_is_trimmed_and_within_bounds(input in "\\PC{0,120}") {
            if let Ok(name) = ChatbotName::parse(&input) {
                proptest::prop_assert_eq!(name.as_str(), input.trim());
                proptest::prop_assert!((1..=100).contains(&name.as_str().chars().count()));
            }
        }
    }

    #[test]
    fn control_characters_are_rejected() {
        assert_eq!(ChatbotName::parse("a\u{0}b").unwrap_err().code, ViolationCode::InvalidFormat);
    }
}
