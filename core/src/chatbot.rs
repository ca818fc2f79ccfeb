//! The chatbot: its stored record, its configuration, and the unparsed draft that faces fill in.

use serde::{Deserialize, Serialize};

use crate::domain::{
    ChatbotId, ChatbotName, Description, Greeting, HexColor, LogoUrl, Model, OpenAiKey, OrgId, PersonalityText, Prompt,
    Slug, SnippetText, Timestamp,
};

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
    /// A new chatbot of `org` with `config`: a fresh id, created now, revision 1.
    pub fn new(org: OrgId, config: ChatbotConfig) -> Self {
        let now = Timestamp::now();
        Chatbot {
            id: ChatbotId::new_random(),
            organization_id: org,
            config,
            created_at: now,
            updated_at: now,
            revision: 1,
        }
    }

    /// This chatbot with `config` instead: the next revision, updated strictly later than before so that
    /// the entity tag changes even within one microsecond. Id, owner and creation time never change.
    pub fn next(&self, config: ChatbotConfig) -> Self {
        let updated_at = Timestamp::now().max(Timestamp::from_micros(self.updated_at.as_micros() + 1));
        Chatbot { config, updated_at, revision: self.revision + 1, ..self.clone() }
    }

    /// A strong validator that changes on every update (an HTTP entity tag without its quotes).
    pub fn etag(&self) -> String {
        format!("{}-{:x}", self.revision, self.updated_at.as_micros())
    }

    /// [`Error::EtagMismatch`](crate::Error::EtagMismatch) unless this chatbot still has
    /// `expected_etag` (when one is given).
    pub fn check_etag(&self, expected_etag: Option<&str>) -> crate::Result<()> {
        match expected_etag {
            Some(tag) if tag != self.etag() => Err(crate::Error::EtagMismatch),
            _ => Ok(()),
        }
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
    pub description: Description,
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
    pub style: PersonalityText,
    /// e.g. `Professional`.
    pub tone: PersonalityText,
}

/// What a chatbot says and runs on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    /// First message shown to a user.
    pub greeting: Greeting,
    /// Whether it asks users for their contact details.
    pub is_request_user_info_enabled: bool,
    /// Whether it may call tools.
    pub is_tool_enabled: bool,
    /// The language model.
    pub model: Model,
    /// The system prompt.
    pub prompt: Prompt,
    /// The chat widget's look.
    pub snippet: Snippet,
}

/// The chat widget's look.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snippet {
    /// Widget header text.
    pub header: SnippetText,
    /// Logo image, if any.
    pub logo: Option<LogoUrl>,
    /// Name shown in the widget.
    pub name: SnippetText,
    /// Main color.
    pub primary_color: HexColor,
    /// Accent color.
    pub secondary_color: HexColor,
    /// Tagline under the header.
    pub slogan: SnippetText,
}

/// A chatbot as a client sent it, nothing checked yet: what a face fills in from its wire format
/// before handing it to the [`Registry`](crate::Registry). `None` means "not given". Faces fill it field
/// by field through the catalog ([`ChatbotDraft::slot`](crate::ChatbotDraft::slot)).
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
