//! Slugs: the globally unique, URL-safe address of a public chatbot.

use serde::{Deserialize, Serialize};

use super::limits::{SLUG_MAX_CHARS, SLUG_MIN_CHARS};
use super::{Rejection, check_chars, string_newtype};
use crate::error::ViolationCode;

/// Lowercase ASCII letters and digits in words joined by single hyphens, 3 to 64 characters:
/// `api-docs-demo-chatbot`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Slug(String);

impl Slug {
    /// Accepts a well-formed slug as is (no case folding: `API` is rejected, not lowered).
    pub fn parse(value: &str) -> Result<Self, Rejection> {
        check_chars(value, SLUG_MIN_CHARS, SLUG_MAX_CHARS)?;
        let well_formed = value
            .split('-')
            .all(|word| !word.is_empty() && word.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
        if !well_formed {
            return Err(Rejection::new(
                ViolationCode::InvalidFormat,
                "must be lowercase letters and digits in words joined by single hyphens, e.g. my-chatbot-2",
            ));
        }
        Ok(Slug(value.to_owned()))
    }

    /// The slug a chatbot called `name` gets when none is given: letters folded to ASCII
    /// (`Café` gives `cafe`), everything else turned into single hyphens, cut to 64 characters,
    /// and padded with `-bot` (or replaced by `chatbot`) when too short.
    pub fn derive_from_name(name: &str) -> Slug {
        let folded = deunicode::deunicode(name).to_ascii_lowercase();
        let mut slug = String::with_capacity(folded.len());
        for word in folded.split(|c: char| !c.is_ascii_alphanumeric()).filter(|w| !w.is_empty()) {
            if !slug.is_empty() {
                slug.push('-');
            }
            slug.push_str(word);
        }
        let mut slug = cut(&slug, SLUG_MAX_CHARS).to_owned();
        if slug.is_empty() {
            slug.push_str("chatbot");
        } else if slug.len() < SLUG_MIN_CHARS {
            slug.push_str("-bot");
        }
        Slug(slug)
    }

    /// This slug with `-n` appended, shortened first if needed to stay within 64 characters:
    /// the `n`-th alternative tried when the slug is taken.
    pub fn with_suffix(&self, n: u32) -> Slug {
        let suffix = format!("-{n}");
        let base = cut(&self.0, SLUG_MAX_CHARS - suffix.len());
        Slug(format!("{base}{suffix}"))
    }
}

/// The longest prefix of an ASCII slug of at most `max` bytes that does not end with a hyphen.
fn cut(slug: &str, max: usize) -> &str {
    slug[..slug.len().min(max)].trim_end_matches('-')
}

string_newtype!(Slug);

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn the_contract_example_name_gives_its_slug() {
        assert_eq!(Slug::derive_from_name("API Docs Demo Chatbot").as_str(), "api-docs-demo-chatbot");
    }

    #[test]
    fn accents_are_folded_and_symbols_become_single_hyphens() {
        assert_eq!(Slug::derive_from_name("  Café -- Crème!! ").as_str(), "cafe-creme");
    }

    #[test]
    fn short_or_empty_results_are_padded() {
        assert_eq!(Slug::derive_from_name("A").as_str(), "a-bot");
        assert_eq!(Slug::derive_from_name("!!!").as_str(), "chatbot");
    }

    #[test]
    fn suffixes_keep_the_slug_within_64_characters() {
        let long = Slug::derive_from_name(&"word ".repeat(40));
        assert_eq!(long.as_str().len(), 64);
        let next = long.with_suffix(12);
        assert!(next.as_str().len() <= 64 && next.as_str().ends_with("-12"));
        assert!(Slug::parse(next.as_str()).is_ok());
        assert_eq!(Slug::derive_from_name("Test").with_suffix(1).as_str(), "test-1");
    }

    #[test]
    fn malformed_slugs_are_rejected() {
        for bad in ["ab", "-abc", "abc-", "a--b", "ABC", "a_b", "a b", "ça-va", &"a".repeat(65)] {
            assert!(Slug::parse(bad).is_err(), "{bad}");
        }
        for ok in ["abc", "a-b-c", "customer-support-bot-97", &"a".repeat(64)] {
            assert!(Slug::parse(ok).is_ok(), "{ok}");
        }
    }

    proptest! {
        #[test]
        fn any_name_derives_a_valid_slug(name in any::<String>()) {
            let slug = Slug::derive_from_name(&name);
            prop_assert_eq!(Slug::parse(slug.as_str()), Ok(slug.clone()));
        }

        #[test]
        fn any_suffix_of_a_derived_slug_is_valid(name in "\\PC{0,120}", n in 1u32..u32::MAX) {
            let slug = Slug::derive_from_name(&name).with_suffix(n);
            prop_assert!(Slug::parse(slug.as_str()).is_ok(), "{}", slug);
        }

        #[test]
        fn parsing_never_panics(input in any::<String>()) {
            let _ = Slug::parse(&input);
        }

        /// Inputs near a slug (its alphabet alone half the time, else with capitals, spaces and
        /// underscores mixed in; hyphens anywhere; 0 to 70 characters), so that many parse: what parses is exactly 3 to 64 of
        /// lowercase letters and digits in words joined by single hyphens.
        #[test]
        fn it_accepts_exactly_words_of_the_alphabet_joined_by_single_hyphens(
            input in prop_oneof!["[a-z0-9-]{0,70}", "[a-z0-9A-Z _-]{0,70}"],
        ) {
            let words = input.split('-').all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
            let valid = (3..=64).contains(&input.chars().count()) && words;
            prop_assert_eq!(Slug::parse(&input).is_ok(), valid, "{:?}", input);
        }

        #[test]
        fn a_derived_slug_is_a_fixed_point(name in "[a-z0-9]{1,20}( [a-z0-9]{1,20}){0,3}") {
            let slug = Slug::derive_from_name(&name);
            prop_assert_eq!(Slug::derive_from_name(slug.as_str()), slug);
        }
    }
}
