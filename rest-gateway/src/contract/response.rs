//! The contract's response shapes: the chatbot object (all 20 documented fields, the always-null ones
//! included) and its list projection.

use grpc_server::pb;
use serde::Serialize;
use serde_json::Value;

/// A chatbot in the list projection: the full object without `docs_metadata`, `managers`,
/// `migrated_data`, `openai_api_key` and `v1_chatbot_id`.
#[derive(Debug, Serialize)]
pub struct ChatbotListItem {
    active: bool,
    created_at: String,
    description: String,
    enabled_plugins: Option<Value>,
    id: String,
    is_public: bool,
    name: String,
    organization_id: String,
    personality_config: PersonalityJson,
    settings: SettingsJson,
    slug: String,
    suggestions: Option<Value>,
    updated_at: String,
    version_id: Option<Value>,
    voice_widget_config: Option<Value>,
}

/// The full chatbot object of create, get and update.
#[derive(Debug, Serialize)]
pub struct ChatbotJson {
    #[serde(flatten)]
    listed: ChatbotListItem,
    docs_metadata: Option<Value>,
    managers: Option<Value>,
    migrated_data: bool,
    /// Masked by the service (`sk-...1234`), or null.
    openai_api_key: Option<String>,
    v1_chatbot_id: Option<Value>,
}

#[derive(Debug, Serialize)]
struct PersonalityJson {
    style: String,
    tone: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct SettingsJson {
    greeting: String,
    is_request_user_info_enabled: bool,
    is_tool_enabled: bool,
    model: String,
    prompt: String,
    snippet: SnippetJson,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct SnippetJson {
    header: String,
    logo: Option<String>,
    name: String,
    primary_color: String,
    secondary_color: String,
    slogan: String,
}

impl From<pb::Chatbot> for ChatbotJson {
    fn from(chatbot: pb::Chatbot) -> Self {
        let openai_api_key = chatbot.openai_api_key.clone();
        ChatbotJson {
            listed: ChatbotListItem::from(chatbot),
            docs_metadata: None,
            managers: None,
            migrated_data: false,
            openai_api_key,
            v1_chatbot_id: None,
        }
    }
}

impl From<pb::Chatbot> for ChatbotListItem {
    fn from(chatbot: pb::Chatbot) -> Self {
        let personality = chatbot.personality_config.unwrap_or_default();
        let settings = chatbot.settings.unwrap_or_default();
        let snippet = settings.snippet.unwrap_or_default();
        ChatbotListItem {
            active: chatbot.active.unwrap_or_default(),
            created_at: timestamp(chatbot.create_time),
            description: chatbot.description.unwrap_or_default(),
            enabled_plugins: None,
            id: chatbot.id,
            is_public: chatbot.is_public.unwrap_or_default(),
            name: chatbot.name.unwrap_or_default(),
            organization_id: chatbot.organization_id,
            personality_config: PersonalityJson {
                style: personality.style.unwrap_or_default(),
                tone: personality.tone.unwrap_or_default(),
            },
            settings: SettingsJson {
                greeting: settings.greeting.unwrap_or_default(),
                is_request_user_info_enabled: settings.is_request_user_info_enabled.unwrap_or_default(),
                is_tool_enabled: settings.is_tool_enabled.unwrap_or_default(),
                model: settings.model.unwrap_or_default(),
                prompt: settings.prompt.unwrap_or_default(),
                snippet: SnippetJson {
                    header: snippet.header.unwrap_or_default(),
                    logo: snippet.logo,
                    name: snippet.name.unwrap_or_default(),
                    primary_color: snippet.primary_color.unwrap_or_default(),
                    secondary_color: snippet.secondary_color.unwrap_or_default(),
                    slogan: snippet.slogan.unwrap_or_default(),
                },
            },
            slug: chatbot.slug.unwrap_or_default(),
            suggestions: None,
            updated_at: timestamp(chatbot.update_time),
            version_id: None,
            voice_widget_config: None,
        }
    }
}

/// `{"chatbot": ..., "message": ...}` (create, update) or `{"chatbot": ...}` (get).
#[derive(Debug, Serialize)]
pub struct ChatbotEnvelope {
    /// The chatbot.
    pub chatbot: ChatbotJson,
    /// The success message, where the contract has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<&'static str>,
}

/// `{"chatbots": [...], "next_cursor": ...}`.
#[derive(Debug, Serialize)]
pub struct ChatbotPage {
    /// The page, newest first.
    pub chatbots: Vec<ChatbotListItem>,
    /// The cursor of the next page; null on the last.
    pub next_cursor: Option<String>,
}

/// `{"message": ...}`.
#[derive(Debug, Serialize)]
pub struct MessageOnly {
    /// The success message.
    pub message: &'static str,
}

/// The contract's timestamp form, `2025-01-22T04:30:45.790337+00:00`.
fn timestamp(at: Option<prost_types::Timestamp>) -> String {
    let at = at.unwrap_or_default();
    let micros = at.seconds.saturating_mul(1_000_000).saturating_add(i64::from(at.nanos / 1000));
    chatbot_core::Timestamp::from_micros(micros).to_contract_string()
}
