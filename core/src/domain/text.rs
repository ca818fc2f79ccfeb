//! Free text with an upper bound on its length.

use serde::{Deserialize, Serialize};

use super::limits::{
    AGENT_ID_MAX_CHARS, DESCRIPTION_MAX_CHARS, GREETING_MAX_CHARS, PERSONALITY_MAX_CHARS, PROMPT_MAX_CHARS,
    SNIPPET_TEXT_MAX_CHARS, VOICE_LABEL_MAX_CHARS,
};
use super::{Lines, Rejection, check_chars, check_storable};

/// Text of at most `MAX` characters (Unicode scalar values), on one line or on `MULTILINE` many.
/// Empty text is allowed; control characters are not (see [`check_storable`]).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BoundedText<const MAX: usize, const MULTILINE: bool = false>(String);

/// `description`.
pub type Description = BoundedText<DESCRIPTION_MAX_CHARS, true>;
/// `personality_config.style` and `.tone`.
pub type PersonalityText = BoundedText<PERSONALITY_MAX_CHARS>;
/// `settings.greeting`.
pub type Greeting = BoundedText<GREETING_MAX_CHARS, true>;
/// `settings.prompt`.
pub type Prompt = BoundedText<PROMPT_MAX_CHARS, true>;
/// `settings.snippet.header`, `.name` and `.slogan`.
pub type SnippetText = BoundedText<SNIPPET_TEXT_MAX_CHARS>;
/// The voice agent's `agentId`.
pub type AgentId = BoundedText<AGENT_ID_MAX_CHARS>;
/// The voice agent's `text` labels.
pub type VoiceLabel = BoundedText<VOICE_LABEL_MAX_CHARS>;

impl<const MAX: usize, const MULTILINE: bool> BoundedText<MAX, MULTILINE> {
    /// Accepts `value` unchanged if it has at most `MAX` characters and no control character but, on
    /// many lines, tab, line feed and carriage return.
    pub fn parse(value: &str) -> Result<Self, Rejection> {
        check_chars(value, 0, MAX)?;
        check_storable(value, if MULTILINE { Lines::Many } else { Lines::One })?;
        Ok(BoundedText(value.to_owned()))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<const MAX: usize, const MULTILINE: bool> From<BoundedText<MAX, MULTILINE>> for String {
    fn from(value: BoundedText<MAX, MULTILINE>) -> String {
        value.0
    }
}

/// How stored text is read back: its length is checked again, but not its characters, so that a
/// record stored before control characters were refused stays readable.
impl<const MAX: usize, const MULTILINE: bool> TryFrom<String> for BoundedText<MAX, MULTILINE> {
    type Error = Rejection;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        check_chars(&value, 0, MAX)?;
        Ok(BoundedText(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ViolationCode;

    #[test]
    fn text_at_the_limit_is_accepted_and_one_more_character_is_not() {
        assert!(BoundedText::<3>::parse("héé").is_ok());
        let err = BoundedText::<3>::parse("héél").unwrap_err();
        assert_eq!(err.code, ViolationCode::TooLong);
    }

    #[test]
    fn nul_and_other_control_characters_are_refused_and_line_breaks_only_on_many_lines() {
        for text in ["a\u{0}b", "\u{1}", "bell\u{7}", "esc\u{1b}[0m", "\u{1f}"] {
            assert_eq!(BoundedText::<9, true>::parse(text).unwrap_err().code, ViolationCode::InvalidFormat, "{text:?}");
            assert_eq!(BoundedText::<9>::parse(text).unwrap_err().code, ViolationCode::InvalidFormat, "{text:?}");
        }
        assert!(BoundedText::<9, true>::parse("a\tb\r\nc").is_ok());
        assert_eq!(BoundedText::<9>::parse("a\nb").unwrap_err().code, ViolationCode::InvalidFormat);
        assert!(BoundedText::<9>::parse("a b \u{7f} \u{85}").is_ok(), "only C0 is refused");
    }

    #[test]
    fn stored_text_with_a_control_character_is_still_read() {
        let stored: Result<BoundedText<9>, _> = serde_json::from_str("\"a\\u0001b\"");
        assert_eq!(stored.expect("readable").as_str(), "a\u{1}b");
    }
}
