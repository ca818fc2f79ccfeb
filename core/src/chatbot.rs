//! The chatbot: its stored record, its configuration, and the unparsed draft that faces fill in.

use serde::{Deserialize, Serialize};

use crate::domain::{BoundedText, ChatbotId, ChatbotName, HexColor, LogoUrl, Model, OpenAiKey, OrgId, Slug, Timestamp};

/// A stored chatbot: identity, ownership, configuration and history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chatbot {
    /// Globally unique id, assigned at creation.
    pub id: ChatbotId,
    /// The owning organisation, taken from the API key that created it.
    pub organization_id: OrgId,
    /// Everything a client can set.
    pub config: ChatbotConfig,
    /// When it was created; never changes.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
    /// Counts changes, starting at 1: the basis of the entity tag.
    pub revision: u64,
}

impl Chatbot {
    /// A strong validator that changes on every update (an HTTP entity tag without its quotes).
    pub fn etag(&self) -> String {
        format!("{}-{:x}", self.revision, self.updated_at.as_micros())
    }
}

/// Everything a client can set on a chatbot, already checked against the rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatbotConfig {
    /// Display name.
    pub name: ChatbotName,
    /// Globally unique public address.
    pub slug: Slug,
    /// Free description, up to 500 characters.
    pub description: BoundedText<500>,
    /// Whether anyone may chat with it through its slug.
    pub is_public: bool,
    /// Inactive chatbots keep their data and slug but do not answer.
    pub active: bool,
    /// The customer's own OpenAI key, if they gave one.
    pub openai_api_key: Option<OpenAiKey>,
    /// How it talks.
    pub personality: Personality,
    /// Model, prompt and widget settings.
    pub settings: Settings,
}

/// How a chatbot talks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Personality {
    /// e.g. `Friendly`.
    pub style: BoundedText<100>,
    /// e.g. `Professional`.
    pub tone: BoundedText<100>,
}

/// What a chatbot says and runs on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    /// First message shown to a user.
    pub greeting: BoundedText<1000>,
    /// Whether it asks users for their contact details.
    pub is_request_user_info_enabled: bool,
    /// Whether it may call tools.
    pub is_tool_enabled: bool,
    /// The language model.
    pub model: Model,
    /// The system prompt.
    pub prompt: BoundedText<20000>,
    /// The chat widget's look.
    pub snippet: Snippet,
}

/// The chat widget's look.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snippet {
    /// Widget header text.
    pub header: BoundedText<100>,
    /// Logo image, if any.
    pub logo: Option<LogoUrl>,
    /// Name shown in the widget.
    pub name: BoundedText<100>,
    /// Main color.
    pub primary_color: HexColor,
    /// Accent color.
    pub secondary_color: HexColor,
    /// Tagline under the header.
    pub slogan: BoundedText<100>,
}

/// A chatbot as a client sent it, nothing checked yet: what a face fills in from its wire format
/// before handing it to [`Rules`](crate::Rules). `None` means "not given".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[allow(missing_docs)] // the fields mirror ChatbotConfig one to one
pub struct ChatbotDraft {
    pub name: Option<String>,
    pub slug: Option<String>,
    pub description: Option<String>,
    pub is_public: Option<bool>,
    pub active: Option<bool>,
    pub openai_api_key: Option<String>,
    pub personality: PersonalityDraft,
    pub settings: SettingsDraft,
}

/// The unchecked form of [`Personality`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct PersonalityDraft {
    pub style: Option<String>,
    pub tone: Option<String>,
}

/// The unchecked form of [`Settings`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct SettingsDraft {
    pub greeting: Option<String>,
    pub is_request_user_info_enabled: Option<bool>,
    pub is_tool_enabled: Option<bool>,
    pub model: Option<String>,
    pub prompt: Option<String>,
    pub snippet: SnippetDraft,
}

/// The unchecked form of [`Snippet`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct SnippetDraft {
    pub header: Option<String>,
    pub logo: Option<String>,
    pub name: Option<String>,
    pub primary_color: Option<String>,
    pub secondary_color: Option<String>,
    pub slogan: Option<String>,
}
