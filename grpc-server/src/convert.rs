//! Conversions between protobuf messages and core types: the only place that knows both.

use chatbot_core::{Chatbot, ChatbotDraft, PersonalityDraft, SettingsDraft, SnippetDraft, Timestamp};

use crate::pb;

/// The draft a client sent; output-only fields are ignored.
pub fn draft(chatbot: pb::Chatbot) -> ChatbotDraft {
    let personality = chatbot.personality_config.unwrap_or_default();
    let settings = chatbot.settings.unwrap_or_default();
    let snippet = settings.snippet.unwrap_or_default();
    ChatbotDraft {
        name: chatbot.name,
        slug: chatbot.slug,
        description: chatbot.description,
        is_public: chatbot.is_public,
        active: chatbot.active,
        openai_api_key: chatbot.openai_api_key,
        personality: PersonalityDraft { style: personality.style, tone: personality.tone },
        settings: SettingsDraft {
            greeting: settings.greeting,
            is_request_user_info_enabled: settings.is_request_user_info_enabled,
            is_tool_enabled: settings.is_tool_enabled,
            model: settings.model,
            prompt: settings.prompt,
            snippet: SnippetDraft {
                header: snippet.header,
                logo: snippet.logo,
                name: snippet.name,
                primary_color: snippet.primary_color,
                secondary_color: snippet.secondary_color,
                slogan: snippet.slogan,
            },
        },
    }
}

/// The message for a stored chatbot; the OpenAI key only in its masked form.
pub(crate) fn chatbot(chatbot: &Chatbot) -> pb::Chatbot {
    let config = &chatbot.config;
    let (personality, settings, snippet) = (&config.personality, &config.settings, &config.settings.snippet);
    let text = |s: &str| Some(s.to_owned());
    pb::Chatbot {
        id: chatbot.id.to_string(),
        organization_id: chatbot.organization_id.to_string(),
        name: text(config.name.as_str()),
        slug: text(config.slug.as_str()),
        description: text(config.description.as_str()),
        is_public: Some(config.is_public),
        active: Some(config.active),
        openai_api_key: config.openai_api_key.as_ref().map(|key| key.masked()),
        personality_config: Some(pb::PersonalityConfig {
            style: text(personality.style.as_str()),
            tone: text(personality.tone.as_str()),
        }),
        settings: Some(pb::Settings {
            greeting: text(settings.greeting.as_str()),
            is_request_user_info_enabled: Some(settings.is_request_user_info_enabled),
            is_tool_enabled: Some(settings.is_tool_enabled),
            model: text(settings.model.as_str()),
            prompt: text(settings.prompt.as_str()),
            snippet: Some(pb::Snippet {
                header: text(snippet.header.as_str()),
                logo: snippet.logo.as_ref().map(|logo| logo.to_string()),
                name: text(snippet.name.as_str()),
                primary_color: text(snippet.primary_color.as_str()),
                secondary_color: text(snippet.secondary_color.as_str()),
                slogan: text(snippet.slogan.as_str()),
            }),
        }),
        create_time: Some(timestamp(chatbot.created_at)),
        update_time: Some(timestamp(chatbot.updated_at)),
        etag: chatbot.etag(),
    }
}

fn timestamp(at: Timestamp) -> prost_types::Timestamp {
    let micros = at.as_micros();
    prost_types::Timestamp {
        seconds: micros.div_euclid(1_000_000),
        nanos: (micros.rem_euclid(1_000_000) * 1000) as i32,
    }
}
