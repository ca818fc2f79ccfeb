//! Free text with an upper bound on its length.

use serde::{Deserialize, Serialize};

use super::limits::{
    AGENT_ID_MAX_CHARS, DESCRIPTION_MAX_CHARS, GREETING_MAX_CHARS, PERSONALITY_MAX_CHARS, PROMPT_MAX_CHARS,
    SNIPPET_TEXT_MAX_CHARS, VOICE_LABEL_MAX_CHARS,
};
use super::{Rejection, check_chars};

/// Text of at most `MAX` characters (Unicode scalar values). Empty text is allowed.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BoundedText<const MAX: usize>(String);

/// `description`.
pub type Description = BoundedText<DESCRIPTION_MAX_CHARS>;
/// `personality_config.style` and `.tone`.
pub type PersonalityText = BoundedText<PERSONALITY_MAX_CHARS>;
/// `settings.greeting`.
pub type Greeting = BoundedText<GREETING_MAX_CHARS>;
/// `settings.prompt`.
pub type Prompt = BoundedText<PROMPT_MAX_CHARS>;
/// `settings.snippet.header`, `.name` and `.slogan`.
pub type SnippetText = BoundedText<SNIPPET_TEXT_MAX_CHARS>;
/// The voice agent's `agentId`.
pub type AgentId = BoundedText<AGENT_ID_MAX_CHARS>;
/// The voice agent's `text` labels.
pub type VoiceLabel = BoundedText<VOICE_LABEL_MAX_CHARS>;

impl<const MAX: usize> BoundedText<MAX> {
    /// Accepts `value` unchanged if it has at most `MAX` characters.
    pub fn parse(value: &str) -> Result<Self, Rejection> {
        check_chars(value, 0, MAX)?;
        Ok(BoundedText(value.to_owned()))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<const MAX: usize> From<BoundedText<MAX>> for String {
    fn from(value: BoundedText<MAX>) -> String {
        value.0
    }
}

impl<const MAX: usize> TryFrom<String> for BoundedText<MAX> {
    type Error = Rejection;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        check_chars(&value, 0, MAX)?;
        Ok(BoundedText(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ViolationCode;

    #[test]
    fn text_at_the_limit_is_accepted_and_one_more_character_is_not() {
        assert!(BoundedText::<3>::parse("héé").is_ok());
        let err = BoundedText::<3>::parse("héél").unwrap_err();
        assert_eq!(err.code, ViolationCode::TooLong);
    }
}
