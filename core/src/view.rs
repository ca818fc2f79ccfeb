//! The contract's response shapes: the chatbot object (all 20 documented fields, the always-null ones
//! included), its list projection, and the widgets' own answers.

use crate::chatbot::{Chatbot, Snippet, VoiceWidget};
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
    voice_widget_config: Option<VoiceWidgetJson<'a>>,
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
    /// The avatar image's URL, present once one is uploaded (the contract's create answer has none).
    #[serde(skip_serializing_if = "Option::is_none")]
    avatar: Option<String>,
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

impl<'a> From<&'a Snippet> for SnippetJson<'a> {
    fn from(snippet: &'a Snippet) -> Self {
        SnippetJson {
            header: snippet.header.as_str(),
            logo: snippet.logo.as_ref().map(|logo| logo.as_str()),
            name: snippet.name.as_str(),
            primary_color: snippet.primary_color.as_str(),
            secondary_color: snippet.secondary_color.as_str(),
            slogan: snippet.slogan.as_str(),
        }
    }
}

/// The Chat Widget endpoint's `chat_widget_config`: the chatbot's `settings.snippet` and its language.
#[derive(Debug, Serialize)]
pub struct ChatWidgetJson<'a> {
    #[serde(flatten)]
    snippet: SnippetJson<'a>,
    language: &'a str,
}

impl<'a> From<&'a Snippet> for ChatWidgetJson<'a> {
    fn from(snippet: &'a Snippet) -> Self {
        ChatWidgetJson { snippet: snippet.into(), language: snippet.language.as_str() }
    }
}

/// The voice agent's widget: the Voice Agent endpoint's `voice_widget_config`, and the chatbot's once
/// set. Objects speak camelCase except `model` and `vad`, as the contract does.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VoiceWidgetJson<'a> {
    agent_id: Option<&'a str>,
    appearance: VoiceAppearanceJson<'a>,
    avatar: VoiceAvatarJson<'a>,
    model: VoiceModelJson,
    text: VoiceTextJson<'a>,
    vad: VadJson,
    voice: &'a str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct VoiceAppearanceJson<'a> {
    background_color: &'a str,
    border_color: &'a str,
    button_color: &'a str,
    button_radius: i64,
    button_text_color: &'a str,
    card_radius: i64,
    focus_outline_color: &'a str,
    text_color: &'a str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct VoiceAvatarJson<'a> {
    image_url: Option<&'a str>,
}

#[derive(Debug, Serialize)]
struct VoiceModelJson {
    max_output_tokens: i64,
    temperature: f64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct VoiceTextJson<'a> {
    call_to_action: &'a str,
    end_call: &'a str,
    listening_status: &'a str,
    speaking_status: &'a str,
    start_call: &'a str,
}

#[derive(Debug, Serialize)]
struct VadJson {
    prefix_padding_ms: i64,
    silence_duration_ms: i64,
    threshold: f64,
}

/// What a browser widget needs of a public chatbot to draw itself and greet, and nothing more: no
/// prompt, model, key, organisation or id.
#[derive(Debug, Serialize)]
pub struct PublicChatbotJson<'a> {
    name: &'a str,
    slug: &'a str,
    greeting: &'a str,
    avatar: Option<String>,
    chat_widget: ChatWidgetJson<'a>,
    voice_widget: Option<PublicVoiceJson<'a>>,
}

/// The voice widget's look, for the public widget.
#[derive(Debug, Serialize)]
struct PublicVoiceJson<'a> {
    appearance: VoiceAppearanceJson<'a>,
    text: VoiceTextJson<'a>,
}

impl<'a> PublicChatbotJson<'a> {
    /// The public projection of `chatbot`, its public URLs under `public_url`.
    pub fn new(chatbot: &'a Chatbot, public_url: &str) -> Self {
        let config = &chatbot.config;
        PublicChatbotJson {
            name: config.name.as_str(),
            slug: config.slug.as_str(),
            greeting: config.settings.greeting.as_str(),
            avatar: config.settings.avatar.map(|avatar| avatar.url(public_url)),
            chat_widget: (&config.settings.snippet).into(),
            voice_widget: config.voice.as_ref().map(|voice| {
                let VoiceWidgetJson { appearance, text, .. } = voice.into();
                PublicVoiceJson { appearance, text }
            }),
        }
    }
}

/// `{"chatbot": ...}` of the public widget route.
#[derive(Debug, Serialize)]
pub struct PublicChatbotEnvelope<'a> {
    /// The public projection.
    pub chatbot: PublicChatbotJson<'a>,
}

impl<'a> From<&'a VoiceWidget> for VoiceWidgetJson<'a> {
    fn from(voice: &'a VoiceWidget) -> Self {
        let (appearance, model, text, vad) = (&voice.appearance, &voice.model, &voice.text, &voice.vad);
        VoiceWidgetJson {
            agent_id: voice.agent_id.as_ref().map(|id| id.as_str()),
            appearance: VoiceAppearanceJson {
                background_color: appearance.background_color.as_str(),
                border_color: appearance.border_color.as_str(),
                button_color: appearance.button_color.as_str(),
                button_radius: appearance.button_radius.get(),
                button_text_color: appearance.button_text_color.as_str(),
                card_radius: appearance.card_radius.get(),
                focus_outline_color: appearance.focus_outline_color.as_str(),
                text_color: appearance.text_color.as_str(),
            },
            avatar: VoiceAvatarJson { image_url: voice.avatar_image_url.as_ref().map(|url| url.as_str()) },
            model: VoiceModelJson {
                max_output_tokens: model.max_output_tokens.get(),
                temperature: model.temperature.get(),
            },
            text: VoiceTextJson {
                call_to_action: text.call_to_action.as_str(),
                end_call: text.end_call.as_str(),
                listening_status: text.listening_status.as_str(),
                speaking_status: text.speaking_status.as_str(),
                start_call: text.start_call.as_str(),
            },
            vad: VadJson {
                prefix_padding_ms: vad.prefix_padding_ms.get(),
                silence_duration_ms: vad.silence_duration_ms.get(),
                threshold: vad.threshold.get(),
            },
            voice: voice.voice.as_str(),
        }
    }
}

impl<'a> ChatbotJson<'a> {
    /// The chatbot object of `chatbot`, its public URLs under `public_url`.
    pub fn new(chatbot: &'a Chatbot, public_url: &str) -> Self {
        ChatbotJson {
            listed: ChatbotListItem::new(chatbot, public_url),
            docs_metadata: None,
            managers: None,
            migrated_data: false,
            openai_api_key: chatbot.config.openai_api_key.as_ref().map(|key| key.masked()),
            v1_chatbot_id: None,
        }
    }
}

impl<'a> ChatbotListItem<'a> {
    /// The list item of `chatbot`, its public URLs under `public_url`.
    pub fn new(chatbot: &'a Chatbot, public_url: &str) -> Self {
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
                avatar: settings.avatar.map(|avatar| avatar.url(public_url)),
                greeting: settings.greeting.as_str(),
                is_request_user_info_enabled: settings.is_request_user_info_enabled,
                is_tool_enabled: settings.is_tool_enabled,
                model: settings.model.as_str(),
                prompt: settings.prompt.as_str(),
                snippet: snippet.into(),
            },
            slug: config.slug.as_str(),
            suggestions: None,
            updated_at: chatbot.updated_at.to_contract_string(),
            version_id: chatbot.published.map(|published| Value::String(published.version_id.to_string())),
            voice_widget_config: config.voice.as_ref().map(Into::into),
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

/// `{"chat_widget_config": ..., "message": ...}` (Chat Widget).
#[derive(Debug, Serialize)]
pub struct ChatWidgetEnvelope<'a> {
    /// The chat widget as it now is.
    pub chat_widget_config: ChatWidgetJson<'a>,
    /// "Chat widget config updated successfully".
    pub message: &'static str,
}

/// `{"voice_widget_config": ..., "message": ...}` (Voice Agent).
#[derive(Debug, Serialize)]
pub struct VoiceWidgetEnvelope<'a> {
    /// The voice agent's widget as it now is.
    pub voice_widget_config: Option<VoiceWidgetJson<'a>>,
    /// "Voice widget config updated successfully".
    pub message: &'static str,
}

/// A list item, marked when it is a deleted chatbot (listed only with `show_deleted=true`): the 15
/// fields of the list projection, then `deleted: true`, `delete_time` and `purge_time`.
#[derive(Debug, Serialize)]
pub struct ListedChatbot<'a> {
    #[serde(flatten)]
    item: ChatbotListItem<'a>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    deletion: Option<DeletionJson>,
}

#[derive(Debug, Serialize)]
struct DeletionJson {
    deleted: bool,
    delete_time: String,
    purge_time: String,
}

impl<'a> ListedChatbot<'a> {
    /// The list item of `chatbot`, marked with `deletion` when it is deleted.
    pub fn new(chatbot: &'a Chatbot, deletion: Option<&crate::registry::Deletion>, public_url: &str) -> Self {
        ListedChatbot {
            item: ChatbotListItem::new(chatbot, public_url),
            deletion: deletion.map(|deletion| DeletionJson {
                deleted: true,
                delete_time: deletion.delete_time.to_contract_string(),
                purge_time: deletion.purge_time.to_contract_string(),
            }),
        }
    }
}

/// `{"chatbots": [...], "next_cursor": ...}`.
#[derive(Debug, Serialize)]
pub struct ChatbotPage<'a> {
    /// The page, newest first.
    pub chatbots: Vec<ListedChatbot<'a>>,
    /// The cursor of the next page; null on the last.
    pub next_cursor: Option<String>,
}

/// `{"message": ...}`.
#[derive(Debug, Serialize)]
pub struct MessageOnly {
    /// The success message.
    pub message: &'static str,
}

/// A revision as the history endpoints show it; with its content (`chatbot`, the Details object as it
/// was then) when one revision is read.
#[derive(Debug, Serialize)]
pub struct RevisionJson<'a> {
    revision: u64,
    version_id: String,
    kind: &'static str,
    create_time: String,
    actor: &'a crate::history::Actor,
    request_id: Option<&'a str>,
    note: Option<&'a str>,
    changed: &'a [String],
    restored_from: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    chatbot: Option<ChatbotJson<'a>>,
}

impl<'a> RevisionJson<'a> {
    /// The revision `revision`, without its content.
    pub fn new(revision: &'a crate::history::Revision) -> Self {
        RevisionJson {
            revision: revision.revision,
            version_id: revision.version_id.to_string(),
            kind: revision.kind.as_str(),
            create_time: revision.create_time.to_contract_string(),
            actor: &revision.provenance.actor,
            request_id: revision.provenance.request_id.as_deref(),
            note: revision.provenance.note.as_ref().map(|note| note.as_str()),
            changed: &revision.changed,
            restored_from: revision.restored_from,
            chatbot: None,
        }
    }

    /// The revision with its content, public URLs under `public_url`.
    pub fn with_content(snapshot: &'a crate::history::RevisionSnapshot, public_url: &str) -> Self {
        RevisionJson {
            chatbot: Some(ChatbotJson::new(&snapshot.chatbot, public_url)),
            ..RevisionJson::new(&snapshot.revision)
        }
    }
}

/// `{"revisions": [...], "next_cursor": ...}`.
#[derive(Debug, Serialize)]
pub struct RevisionPageJson<'a> {
    /// Newest first.
    pub revisions: Vec<RevisionJson<'a>>,
    /// The cursor of the next page; null on the last.
    pub next_cursor: Option<String>,
}

/// `{"revision": ...}`.
#[derive(Debug, Serialize)]
pub struct RevisionEnvelope<'a> {
    /// The revision, with its content.
    pub revision: RevisionJson<'a>,
}

/// `{"from": ..., "to": ..., "patch": [...]}`.
#[derive(Debug, Serialize)]
pub struct RevisionDiffJson<'a> {
    /// The revision the patch applies to.
    pub from: RevisionJson<'a>,
    /// The revision it makes.
    pub to: RevisionJson<'a>,
    /// RFC 6902 operations from `from`'s Details object to `to`'s.
    pub patch: &'a json_patch::Patch,
}
