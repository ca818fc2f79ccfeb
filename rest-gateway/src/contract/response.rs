//! The contract's response shapes: the chatbot object (all 20 documented fields, the always-null ones
//! included) and its list projection.

use chatbot_core::Chatbot;
use serde::Serialize;
use serde_json::Value;

/// A chatbot in the list projection: the full object without `docs_metadata`, `managers`,
/// `migrated_data`, `openai_api_key` and `v1_chatbot_id`.
#[derive(Debug, Serialize)]
pub struct ChatbotListItem<'a> {
    active: bool,
    created_at: String,
    description: &'a str,
    enabled_plugins: Option<Value>,
    id: String,
    is_public: bool,
    name: &'a str,
    organization_id: String,
    personality_config: PersonalityJson<'a>,
    settings: SettingsJson<'a>,
    slug: &'a str,
    suggestions: Option<Value>,
    updated_at: String,
    version_id: Option<Value>,
    voice_widget_config: Option<Value>,
}

/// The full chatbot object of create, get and update.
#[derive(Debug, Serialize)]
pub struct ChatbotJson<'a> {
    #[serde(flatten)]
    listed: ChatbotListItem<'a>,
    docs_metadata: Option<Value>,
    managers: Option<Value>,
    migrated_data: bool,
    /// Masked (`sk-...1234`), or null: a stored secret is never shown in clear.
    openai_api_key: Option<String>,
    v1_chatbot_id: Option<Value>,
}

#[derive(Debug, Serialize)]
struct PersonalityJson<'a> {
    style: &'a str,
    tone: &'a str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct SettingsJson<'a> {
    greeting: &'a str,
    is_request_user_info_enabled: bool,
    is_tool_enabled: bool,
    model: &'a str,
    prompt: &'a str,
    snippet: SnippetJson<'a>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct SnippetJson<'a> {
    header: &'a str,
    logo: Option<&'a str>,
    name: &'a str,
    primary_color: &'a str,
    secondary_color: &'a str,
    slogan: &'a str,
}

impl<'a> From<&'a Chatbot> for ChatbotJson<'a> {
    fn from(chatbot: &'a Chatbot) -> Self {
        ChatbotJson {
            listed: ChatbotListItem::from(chatbot),
            docs_metadata: None,
            managers: None,
            migrated_data: false,
            openai_api_key: chatbot.config.openai_api_key.as_ref().map(|key| key.masked()),
            v1_chatbot_id: None,
        }
    }
}

impl<'a> From<&'a Chatbot> for ChatbotListItem<'a> {
    fn from(chatbot: &'a Chatbot) -> Self {
        let config = &chatbot.config;
        let (personality, settings, snippet) = (&config.personality, &config.settings, &config.settings.snippet);
        ChatbotListItem {
            active: config.active,
            created_at: chatbot.created_at.to_contract_string(),
            description: config.description.as_str(),
            enabled_plugins: None,
            id: chatbot.id.to_string(),
            is_public: config.is_public,
            name: config.name.as_str(),
            organization_id: chatbot.organization_id.to_string(),
            personality_config: PersonalityJson { style: personality.style.as_str(), tone: personality.tone.as_str() },
            settings: SettingsJson {
                greeting: settings.greeting.as_str(),
                is_request_user_info_enabled: settings.is_request_user_info_enabled,
                is_tool_enabled: settings.is_tool_enabled,
                model: settings.model.as_str(),
                prompt: settings.prompt.as_str(),
                snippet: SnippetJson {
                    header: snippet.header.as_str(),
                    logo: snippet.logo.as_ref().map(|logo| logo.as_str()),
                    name: snippet.name.as_str(),
                    primary_color: snippet.primary_color.as_str(),
                    secondary_color: snippet.secondary_color.as_str(),
                    slogan: snippet.slogan.as_str(),
                },
            },
            slug: config.slug.as_str(),
            suggestions: None,
            updated_at: chatbot.updated_at.to_contract_string(),
            version_id: None,
            voice_widget_config: None,
        }
    }
}

/// `{"chatbot": ..., "message": ...}` (create, update) or `{"chatbot": ...}` (get).
#[derive(Debug, Serialize)]
pub struct ChatbotEnvelope<'a> {
    /// The chatbot.
    pub chatbot: ChatbotJson<'a>,
    /// The success message, where the contract has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<&'static str>,
}

/// `{"chatbots": [...], "next_cursor": ...}`.
#[derive(Debug, Serialize)]
pub struct ChatbotPage<'a> {
    /// The page, newest first.
    pub chatbots: Vec<ChatbotListItem<'a>>,
    /// The cursor of the next page; null on the last.
    pub next_cursor: Option<String>,
}

/// `{"message": ...}`.
#[derive(Debug, Serialize)]
pub struct MessageOnly {
    /// The success message.
    pub message: &'static str,
}
