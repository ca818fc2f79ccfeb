//! CSS hex colors for the chat widget.

use serde::{Deserialize, Serialize};

use super::{Rejection, string_newtype};
use crate::error::ViolationCode;

/// A color written `#RGB` or `#RRGGBB` (hex digits in either case), kept as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct HexColor(String);

impl HexColor {
    /// Accepts `#RGB` or `#RRGGBB`.
    pub fn parse(value: &str) -> Result<Self, Rejection> {
        let valid = value
            .strip_prefix('#')
            .is_some_and(|hex| matches!(hex.len(), 3 | 6) && hex.bytes().all(|b| b.is_ascii_hexdigit()));
        if valid {
            Ok(HexColor(value.to_owned()))
        } else {
            Err(Rejection::new(ViolationCode::InvalidFormat, "must be a hex color such as #RGB or #RRGGBB"))
        }
    }
}

string_newtype!(HexColor);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_long_hex_colors_are_accepted() {
        for ok in ["#fff", "#4F46E5", "#10b981"] {
            assert!(HexColor::parse(ok).is_ok(), "{ok}");
        }
    }

    proptest::proptest! {
        #[test]
        fn every_hex_spelling_is_accepted_and_kept(hex in "[0-9a-fA-F]{3}|[0-9a-fA-F]{6}") {
            let color = format!("#{hex}");
            proptest::prop_assert_eq!(HexColor::parse(&color).map(String::from), Ok(color));
        }

        /// Inputs near a color (an optional `#`, then hex digits and a few letters and spaces that are
        /// not, of any length up to 8), so that many parse: what parses is exactly `#` and 3 or 6
        /// hex digits.
        #[test]
        fn anything_else_is_rejected_without_panic(input in "#?[0-9a-fA-Fg-zG-Z ]{0,8}") {
            let hex = input.strip_prefix('#').filter(|rest| rest.bytes().all(|b| b.is_ascii_hexdigit()));
            let valid = hex.is_some_and(|hex| hex.len() == 3 || hex.len() == 6);
            proptest::prop_assert_eq!(HexColor::parse(&input).is_ok(), valid, "{:?}", input);
        }

        #[test]
        fn no_input_at_all_makes_it_panic(input in "\\PC*") {
            let _ = HexColor::parse(&input);
        }
    }

    #[test]
    fn other_spellings_are_rejected() {
        for bad in ["", "#", "fff", "#ffff", "#GGGGGG", "#4F46E5 ", "red", "#ééé"] {
            assert!(HexColor::parse(bad).is_err(), "{bad:?}");
        }
    }
}
