//! Value types that can only hold valid values: each has a private field and a `parse` constructor
//! that says precisely what is wrong with a rejected input.

mod color;
mod ids;
mod language;
pub mod limits;
mod logo;
mod model;
mod name;
mod number;
mod secret;
mod slug;
mod text;
mod time;

pub use color::HexColor;
pub use ids::{ChatbotId, InvalidId, KeyId, OrgId, VersionId};
pub use language::Language;
pub use logo::LogoUrl;
pub use model::{Model, Voice};
pub use name::ChatbotName;
pub use number::{Fraction, WholeNumber};
pub use secret::{OpenAiKey, SealedSecret, Secret};
pub use slug::Slug;
pub use text::{AgentId, BoundedText, Description, Greeting, PersonalityText, Prompt, SnippetText, VoiceLabel};
pub use time::Timestamp;

use crate::error::{Violation, ViolationCode};

/// Why a single value was rejected, before it is tied to a field path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Stable reason code.
    pub code: ViolationCode,
    /// Human-readable explanation.
    pub message: String,
}

impl Rejection {
    /// A rejection for `code` explained by `message`.
    pub fn new(code: ViolationCode, message: impl Into<String>) -> Self {
        Rejection { code, message: message.into() }
    }

    /// Ties the rejection to the field at `path`.
    pub fn at(self, path: &str) -> Violation {
        Violation::new(path, self.code, self.message)
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

/// Checks a length in characters (Unicode scalar values) against inclusive bounds.
fn check_chars(value: &str, min: usize, max: usize) -> Result<(), Rejection> {
    let count = value.chars().count();
    if count < min {
        let message = if min == 1 {
            "must not be empty".to_owned()
        } else {
            format!("must be at least {min} characters (got {count})")
        };
        return Err(Rejection::new(ViolationCode::TooShort, message));
    }
    if count > max {
        return Err(Rejection::new(ViolationCode::TooLong, format!("must be at most {max} characters (got {count})")));
    }
    Ok(())
}

/// Whether text may hold line breaks and tabs (a prompt, a description) or is one line (a label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lines {
    /// Tab, line feed and carriage return are allowed; other control characters are not.
    Many,
    /// No control character at all.
    One,
}

/// Refuses the C0 control characters (U+0000 to U+001F), except tab, line feed and carriage return
/// where `lines` allows them. NUL is among them: PostgreSQL cannot store it, so no engine may hold it,
/// and the others have no place in configuration text either.
pub fn check_storable(value: &str, lines: Lines) -> Result<(), Rejection> {
    let allowed = |c: char| lines == Lines::Many && matches!(c, '\t' | '\n' | '\r');
    match value.chars().find(|&c| c <= '\u{1f}' && !allowed(c)) {
        None => Ok(()),
        Some(c) => Err(Rejection::new(
            ViolationCode::InvalidFormat,
            format!("must not contain the control character U+{:04X}", u32::from(c)),
        )),
    }
}

/// Implements `Display`, `AsRef<str>`, `From<T> for String` and `TryFrom<String>` (via `parse`) for a
/// string newtype, so that serde can store it and re-check it when it is read back.
macro_rules! string_newtype {
    ($ty:ident) => {
        impl $ty {
            /// The value as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
        impl From<$ty> for String {
            fn from(value: $ty) -> String {
                value.0
            }
        }
        impl TryFrom<String> for $ty {
            type Error = $crate::domain::Rejection;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                $ty::parse(&value)
            }
        }
    };
}
pub(crate) use string_newtype;
