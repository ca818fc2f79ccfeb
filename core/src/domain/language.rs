//! The chat widget's language.

use serde::{Deserialize, Serialize};

use super::limits::LANGUAGE_MAX_CHARS;
use super::{Rejection, string_newtype};
use crate::error::ViolationCode;

/// `auto` (the widget follows the visitor's browser) or a well-formed BCP 47 language tag such as
/// `en` or `pt-BR`, kept as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Language(String);

impl Language {
    /// The widget follows the visitor's browser.
    pub const AUTO: &'static str = "auto";

    /// Accepts `auto` or a well-formed BCP 47 tag of at most 35 characters.
    pub fn parse(value: &str) -> Result<Self, Rejection> {
        super::check_chars(value, 1, LANGUAGE_MAX_CHARS)?;
        if value == Self::AUTO || language_tags::LanguageTag::parse(value).is_ok() {
            Ok(Language(value.to_owned()))
        } else {
            Err(Rejection::new(
                ViolationCode::InvalidFormat,
                "must be \"auto\" or a BCP 47 language tag such as en or pt-BR",
            ))
        }
    }

    /// `auto`.
    pub fn auto() -> Self {
        Language(Self::AUTO.to_owned())
    }
}

impl Default for Language {
    fn default() -> Self {
        Language::auto()
    }
}

string_newtype!(Language);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_and_language_tags_are_accepted() {
        for ok in ["auto", "en", "pt-BR", "zh-Hant-TW", "es-419", "de-CH-1996"] {
            assert!(Language::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn other_text_is_rejected() {
        for bad in ["", "english please", "en_US", "-en", "auto ", "x", &"a".repeat(36)] {
            assert!(Language::parse(bad).is_err(), "{bad:?}");
        }
    }
}
