//! `chatbot-core`: the domain of chatbotd, free of any wire protocol.
//!
//! It holds the rules a chatbot configuration must obey (as types that cannot hold an invalid value),
//! organisations and their API keys, and the embedded [sled] store that keeps them durable. The gRPC
//! server and the REST gateway are thin faces over [`Registry`]; a Rust program can embed it directly:
//!
//! ```no_run
//! use chatbot_core::{ChatbotDraft, Registry, Rules};
//!
//! let registry = Registry::open("./data", Rules::default())?;
//! let (org, _key) = registry.create_api_key("acme")?;
//! let bot = registry.create(org, ChatbotDraft { name: Some("Support".into()), ..Default::default() })?;
//! assert_eq!(bot.config.slug.as_str(), "support");
//! # Ok::<(), chatbot_core::Error>(())
//! ```

mod auth;
mod chatbot;
pub mod domain;
mod error;
mod registry;
mod rules;
mod store;

pub use auth::ApiKey;
pub use chatbot::{
    Chatbot, ChatbotConfig, ChatbotDraft, Personality, PersonalityDraft, Settings, SettingsDraft, Snippet, SnippetDraft,
};
pub use domain::{ChatbotId, OrgId, Rejection, Timestamp};
pub use error::{Error, Result, Violation, ViolationCode};
pub use registry::{ListQuery, MAX_PAGE_SIZE, Page, PageCursor, Registry};
pub use rules::{Field, FieldMask, ModelAllowList, Rules, defaults};
pub use store::{BatchWriter, Tx};
