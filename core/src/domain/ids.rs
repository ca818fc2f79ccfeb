//! Identifiers of chatbots and organisations.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $ty:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $ty(Uuid);

        impl $ty {
            /// A fresh random identifier.
            pub fn new_random() -> Self {
                $ty(Uuid::new_v4())
            }
            /// The 16 bytes of the identifier, as stored in index keys.
            pub fn as_bytes(&self) -> &[u8; 16] {
                self.0.as_bytes()
            }
            /// Rebuilds an identifier from its 16 stored bytes.
            pub fn from_bytes(bytes: [u8; 16]) -> Self {
                $ty(Uuid::from_bytes(bytes))
            }
        }

        impl fmt::Display for $ty {
            /// The lowercase hyphenated UUID form used on the wire.
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }

        impl FromStr for $ty {
            type Err = uuid::Error;
            /// Accepts any UUID spelling (upper or lower case, with or without hyphens).
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map($ty)
            }
        }
    };
}

uuid_id!(
    /// Identifies one chatbot, globally.
    ChatbotId
);
uuid_id!(
    /// Identifies one organisation: the owner of API keys and chatbots.
    OrgId
);
