//! The chatbot: its stored record, its configuration, and the unparsed draft that faces fill in.

use serde::{Deserialize, Serialize};

use crate::avatar::AvatarRef;

use crate::domain::limits::{
    MAX_OUTPUT_TOKENS, MAX_TEMPERATURE_THOUSANDTHS, MAX_THRESHOLD_THOUSANDTHS, MAX_VAD_DURATION_MS, MIN_OUTPUT_TOKENS,
    RADIUS_MAX_PX,
};
use crate::domain::{
    AgentId, ChatbotId, ChatbotName, Description, Fraction, Greeting, HexColor, Language, LogoUrl, Model, OrgId,
    PersonalityText, Prompt, Secret, Slug, SnippetText, Timestamp, Voice, VoiceLabel, WholeNumber,
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
    /// The revision the public routes serve, once one is published; `None`: the current one (the
    /// contract's `version_id` is then null).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published: Option<Published>,
}

/// A published revision: the public routes serve its content while the chatbot's own changes go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Published {
    /// Its number.
    pub revision: u64,
    /// Its id: the contract's `version_id`.
    pub version_id: crate::domain::VersionId,
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
            published: None,
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
    pub fn check_etag(&self, expected_etag: Option<&str>) -> crate::error::Result<()> {
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
    /// The customer's own OpenAI key, if they gave one: sealed once the registry has it.
    pub openai_api_key: Option<Secret>,
    /// How it talks.
    pub personality: Personality,
    /// Model, prompt and widget settings.
    pub settings: Settings,
    /// The voice agent's widget: `None` until it is first configured.
    #[serde(default)]
    pub voice: Option<VoiceWidget>,
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
    /// The avatar image, once one is uploaded (shown as its public URL).
    #[serde(default)]
    pub avatar: Option<AvatarRef>,
}

/// The chat widget's look: the contract's `settings.snippet`, which is also the Chat Widget endpoint's
/// `chat_widget_config` (with `language`, which only that endpoint shows). One source of truth: the
/// chat widget endpoint edits these very fields.
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
    /// The widget's language: `auto` or a BCP 47 tag.
    #[serde(default)]
    pub language: Language,
}

/// A corner radius of the voice widget, in pixels.
pub type Radius = WholeNumber<0, RADIUS_MAX_PX>;
/// How many tokens the voice model may answer with.
pub type OutputTokens = WholeNumber<MIN_OUTPUT_TOKENS, MAX_OUTPUT_TOKENS>;
/// The voice model's sampling temperature, 0 to 2.
pub type Temperature = Fraction<0, MAX_TEMPERATURE_THOUSANDTHS>;
/// A voice activity detection duration, in milliseconds.
pub type VadMillis = WholeNumber<0, MAX_VAD_DURATION_MS>;
/// Voice activity detection's sensitivity, 0 to 1.
pub type VadThreshold = Fraction<0, MAX_THRESHOLD_THOUSANDTHS>;

/// The voice agent's widget, as the Voice Agent endpoint sets it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoiceWidget {
    /// The voice agent's id with the voice provider, if any.
    pub agent_id: Option<AgentId>,
    /// Colors and radii.
    pub appearance: VoiceAppearance,
    /// The image shown for the agent, if any.
    pub avatar_image_url: Option<LogoUrl>,
    /// The realtime model's limits.
    pub model: VoiceModel,
    /// The widget's labels.
    pub text: VoiceText,
    /// Voice activity detection: when the visitor has finished speaking.
    pub vad: Vad,
    /// The voice it speaks with.
    pub voice: Voice,
}

/// The voice widget's colors and radii.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)] // named as the contract names them
pub struct VoiceAppearance {
    pub background_color: HexColor,
    pub border_color: HexColor,
    pub button_color: HexColor,
    pub button_radius: Radius,
    pub button_text_color: HexColor,
    pub card_radius: Radius,
    pub focus_outline_color: HexColor,
    pub text_color: HexColor,
}

/// The voice model's limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct VoiceModel {
    pub max_output_tokens: OutputTokens,
    pub temperature: Temperature,
}

/// The voice widget's labels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct VoiceText {
    pub call_to_action: VoiceLabel,
    pub end_call: VoiceLabel,
    pub listening_status: VoiceLabel,
    pub speaking_status: VoiceLabel,
    pub start_call: VoiceLabel,
}

/// Voice activity detection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct Vad {
    pub prefix_padding_ms: VadMillis,
    pub silence_duration_ms: VadMillis,
    pub threshold: VadThreshold,
}

/// A chatbot as a client sent it, nothing checked yet: what a face fills in from its wire format
/// before handing it to the [`Registry`](crate::Registry). `None` means "not given". Faces fill it field
/// by field through the catalog ([`ChatbotDraft::slot`](crate::chatbot::ChatbotDraft::slot)).
#[derive(Debug, Clone, Default, PartialEq)]
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
    pub voice: VoiceDraft,
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
    pub language: Option<String>,
}

/// The unchecked form of [`VoiceWidget`].
#[derive(Debug, Clone, Default, PartialEq)]
#[allow(missing_docs)]
pub struct VoiceDraft {
    pub agent_id: Option<String>,
    pub background_color: Option<String>,
    pub border_color: Option<String>,
    pub button_color: Option<String>,
    pub button_radius: Option<i64>,
    pub button_text_color: Option<String>,
    pub card_radius: Option<i64>,
    pub focus_outline_color: Option<String>,
    pub text_color: Option<String>,
    pub avatar_image_url: Option<String>,
    pub max_output_tokens: Option<i64>,
    pub temperature: Option<f64>,
    pub call_to_action: Option<String>,
    pub end_call: Option<String>,
    pub listening_status: Option<String>,
    pub speaking_status: Option<String>,
    pub start_call: Option<String>,
    pub prefix_padding_ms: Option<i64>,
    pub silence_duration_ms: Option<i64>,
    pub threshold: Option<f64>,
    pub voice: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A configuration as the PostgreSQL engine stored it (its `config` column) before this version.
    const CONFIG_V1: &str = include_str!("../tests/fixtures/postgres-config-v1.json");

    #[test]
    fn a_configuration_stored_by_an_earlier_version_reads_back_whole() {
        let config: ChatbotConfig = serde_json::from_str(CONFIG_V1).expect("the stored configuration decodes");
        assert_eq!(config.name.as_str(), "Fixture Bot");
        let key = match &config.openai_api_key {
            Some(Secret::Clear(key)) => key.expose(),
            other => panic!("a key in clear, as stores before sealing held it: {other:?}"),
        };
        assert_eq!(key, "sk-proj-fixture1234567890");
        assert_eq!(config.settings.snippet.primary_color.as_str(), "#4F46E5");
        assert!(config.settings.is_request_user_info_enabled && !config.settings.is_tool_enabled);
        let again = serde_json::to_value(&config).expect("encodes");
        assert_eq!(again, serde_json::from_str::<serde_json::Value>(CONFIG_V1).expect("JSON"));
    }
}
