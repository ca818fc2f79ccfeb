//! Conversions between protobuf messages and core types: the only place that knows both. Input moves
//! field by field through the catalog ([`slot`] says where each catalog field lives in the message);
//! output is written out in the message's shape.

use chatbot_core::{Chatbot, ChatbotDraft, Error, Field, FieldMask, Result, Slot, Timestamp};

use crate::pb;

/// Where `field` lives in a `Chatbot` message (nested messages are created as needed).
fn slot(message: &mut pb::Chatbot, field: Field) -> Slot<'_> {
    match field {
        Field::Name => Slot::Text(&mut message.name),
        Field::Slug => Slot::Text(&mut message.slug),
        Field::Description => Slot::Text(&mut message.description),
        Field::IsPublic => Slot::Flag(&mut message.is_public),
        Field::Active => Slot::Flag(&mut message.active),
        Field::OpenaiApiKey => Slot::Text(&mut message.openai_api_key),
        Field::PersonalityStyle => Slot::Text(&mut personality(message).style),
        Field::PersonalityTone => Slot::Text(&mut personality(message).tone),
        Field::Greeting => Slot::Text(&mut settings(message).greeting),
        Field::IsRequestUserInfoEnabled => Slot::Flag(&mut settings(message).is_request_user_info_enabled),
        Field::IsToolEnabled => Slot::Flag(&mut settings(message).is_tool_enabled),
        Field::Model => Slot::Text(&mut settings(message).model),
        Field::Prompt => Slot::Text(&mut settings(message).prompt),
        Field::SnippetHeader => Slot::Text(&mut snippet(message).header),
        Field::SnippetLogo => Slot::Text(&mut snippet(message).logo),
        Field::SnippetName => Slot::Text(&mut snippet(message).name),
        Field::SnippetPrimaryColor => Slot::Text(&mut snippet(message).primary_color),
        Field::SnippetSecondaryColor => Slot::Text(&mut snippet(message).secondary_color),
        Field::SnippetSlogan => Slot::Text(&mut snippet(message).slogan),
    }
}

fn personality(message: &mut pb::Chatbot) -> &mut pb::PersonalityConfig {
    message.personality_config.get_or_insert_default()
}

fn settings(message: &mut pb::Chatbot) -> &mut pb::Settings {
    message.settings.get_or_insert_default()
}

fn snippet(message: &mut pb::Chatbot) -> &mut pb::Snippet {
    settings(message).snippet.get_or_insert_default()
}

/// The draft a client sent, and the fields it set (the implied mask of an update without one).
/// Output-only fields are ignored.
pub fn draft(mut message: pb::Chatbot) -> Result<(ChatbotDraft, FieldMask)> {
    let mut draft = ChatbotDraft::default();
    let mut given = FieldMask::EMPTY;
    let mut violations = Vec::new();
    for field in Field::ALL {
        let value = slot(&mut message, field).take();
        if value.is_some() {
            given.insert(field);
        }
        if let Err(rejection) = draft.slot(field).put(value) {
            violations.push(rejection.at(field.json_path()));
        }
    }
    if violations.is_empty() { Ok((draft, given)) } else { Err(Error::Invalid { violations }) }
}

/// The message that sets what `draft` gives (for clients of this API written in Rust: the benchmark,
/// the tests).
pub fn message(mut draft: ChatbotDraft) -> pb::Chatbot {
    let mut message = pb::Chatbot::default();
    for field in Field::ALL {
        // Both sides come from the same catalog, so the kinds always agree.
        let _ = slot(&mut message, field).put(draft.slot(field).take());
    }
    message
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

/// The protobuf form of an instant.
pub(crate) fn timestamp(at: Timestamp) -> prost_types::Timestamp {
    let micros = at.as_micros();
    prost_types::Timestamp {
        seconds: micros.div_euclid(1_000_000),
        nanos: (micros.rem_euclid(1_000_000) * 1000) as i32,
    }
}

#[cfg(test)]
mod tests {
    use chatbot_core::Value;

    use super::*;

    #[test]
    fn every_catalog_field_travels_through_a_message_and_back() {
        let mut sent = ChatbotDraft::default();
        for (i, field) in Field::ALL.into_iter().enumerate() {
            let value = match field.spec().kind {
                chatbot_core::Kind::Text => Value::Text(format!("value {i}")),
                chatbot_core::Kind::Flag => Value::Flag(i % 2 == 0),
            };
            sent.slot(field).put(Some(value)).expect("the catalog's kind");
        }
        let (received, given) = draft(message(sent.clone())).expect("a draft");
        assert_eq!(received, sent);
        assert_eq!(given, FieldMask::all());
    }

    #[test]
    fn an_empty_message_gives_nothing() {
        let (received, given) = draft(pb::Chatbot::default()).expect("a draft");
        assert_eq!(received, ChatbotDraft::default());
        assert!(given.is_empty());
    }
}
