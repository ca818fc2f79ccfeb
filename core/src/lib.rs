//! `chatbot-core`: the domain of chatbotd, free of any wire protocol and of any async runtime.
//!
//! It holds the rules a chatbot configuration must obey (as types that cannot hold an invalid value),
//! the catalog of the fields a client can set, organisations and their API keys, and the [`Store`]
//! trait with its embedded engine on [sled]. The gRPC server and the REST gateway are thin faces over
//! the async [`Registry`]; a Rust program can embed it directly, blocking or async:
//!
//! ```
//! use chatbot_core::blocking::Registry;
//! use chatbot_core::{ChatbotDraft, Rules};
//!
//! let dir = tempfile::tempdir().expect("a temp dir");
//! let registry = Registry::open(dir.path(), Rules::default())?;
//! let (org, _key) = registry.create_api_key("acme")?;
//! let bot = registry.create(org, ChatbotDraft { name: Some("Support".into()), ..Default::default() })?;
//! assert_eq!(bot.config.slug.as_str(), "support");
//! # Ok::<(), chatbot_core::Error>(())
//! ```

pub mod admission;
mod auth;
pub mod avatar;
pub mod blocking;
mod catalog;
pub mod changes;
mod chatbot;
pub mod domain;
mod error;
pub mod fair_use;
pub mod history;
pub mod idempotency;
pub mod metric;
pub mod public;
mod registry;
mod rules;
pub mod secrets;
pub mod store;
pub mod transfer;
pub mod view;
pub mod watching;

pub use admission::Admission;
pub use auth::{ApiKey, ApiKeyInfo, KeyHash, Principal};
pub use avatar::{AvatarImage, AvatarRef, StoredAvatar};
pub use catalog::{Field, FieldMask, Form, Kind, Limit, Slot, Spec, Value};
pub use changes::{ChangeKind, ChatbotEvent, ResumeToken};
pub use chatbot::{
    Chatbot, ChatbotConfig, ChatbotDraft, Personality, PersonalityDraft, Published, Settings, SettingsDraft, Snippet,
    SnippetDraft, Vad, VoiceAppearance, VoiceDraft, VoiceModel, VoiceText, VoiceWidget,
};
pub use domain::{ChatbotId, KeyId, OrgId, Rejection, Timestamp, VersionId};
pub use error::{Error, Result, Violation, ViolationCode};
pub use history::{Actor, Provenance, Revision, RevisionRef};
pub use idempotency::{IdempotencyKey, Written};
pub use registry::{DEFAULT_UNDELETE_WINDOW, Deletion, ListQuery, Page, Registry, RegistryOptions};
pub use rules::{AllowList, Proposal, Rules, SlugChoice, defaults};
pub use store::{Organisation, PageCursor, Record, Snapshot, Store};
pub use transfer::Transfer;
pub use watching::{DEFAULT_HEARTBEAT, DEFAULT_MAX_WATCHERS, DEFAULT_MAX_WATCHERS_PER_ORG, Watch, Watching};

/// Whether a client's request id (REST `x-request-id`, gRPC metadata of the same name) is one to keep:
/// 1 to 128 printable ASCII characters. Another is replaced by one the service makes up.
pub fn request_id_is_valid(id: &str) -> bool {
    (1..=128).contains(&id.len()) && id.bytes().all(|b| (0x21..0x7f).contains(&b))
}

/// The README's Rust examples, compiled as doctests so that they stay true.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
mod readme_examples {}
