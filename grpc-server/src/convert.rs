//! Conversions between protobuf messages and core types: the only place that knows both. Input moves
//! field by field through the catalog ([`slot`] says where each catalog field lives in the message);
//! output is written out in the message's shape.

use chatbot_core::{
    Actor, ChangeKind, Chatbot, ChatbotDraft, ChatbotEvent, Error, Field, FieldMask, Result, Revision, Slot, Timestamp,
    VoiceWidget,
};

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
        Field::SnippetLanguage => Slot::Text(&mut snippet(message).language),
        Field::VoiceAgentId => Slot::Text(&mut voice(message).agent_id),
        Field::VoiceBackgroundColor => Slot::Text(&mut appearance(message).background_color),
        Field::VoiceBorderColor => Slot::Text(&mut appearance(message).border_color),
        Field::VoiceButtonColor => Slot::Text(&mut appearance(message).button_color),
        Field::VoiceButtonRadius => Slot::Integer(&mut appearance(message).button_radius),
        Field::VoiceButtonTextColor => Slot::Text(&mut appearance(message).button_text_color),
        Field::VoiceCardRadius => Slot::Integer(&mut appearance(message).card_radius),
        Field::VoiceFocusOutlineColor => Slot::Text(&mut appearance(message).focus_outline_color),
        Field::VoiceTextColor => Slot::Text(&mut appearance(message).text_color),
        Field::VoiceAvatarImageUrl => Slot::Text(&mut voice(message).avatar.get_or_insert_default().image_url),
        Field::VoiceMaxOutputTokens => {
            Slot::Integer(&mut voice(message).model.get_or_insert_default().max_output_tokens)
        }
        Field::VoiceTemperature => Slot::Number(&mut voice(message).model.get_or_insert_default().temperature),
        Field::VoiceCallToAction => Slot::Text(&mut voice_text(message).call_to_action),
        Field::VoiceEndCall => Slot::Text(&mut voice_text(message).end_call),
        Field::VoiceListeningStatus => Slot::Text(&mut voice_text(message).listening_status),
        Field::VoiceSpeakingStatus => Slot::Text(&mut voice_text(message).speaking_status),
        Field::VoiceStartCall => Slot::Text(&mut voice_text(message).start_call),
        Field::VoicePrefixPaddingMs => Slot::Integer(&mut vad(message).prefix_padding_ms),
        Field::VoiceSilenceDurationMs => Slot::Integer(&mut vad(message).silence_duration_ms),
        Field::VoiceThreshold => Slot::Number(&mut vad(message).threshold),
        Field::VoiceName => Slot::Text(&mut voice(message).voice),
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

fn voice(message: &mut pb::Chatbot) -> &mut pb::VoiceWidgetConfig {
    message.voice_widget_config.get_or_insert_default()
}

fn appearance(message: &mut pb::Chatbot) -> &mut pb::VoiceAppearance {
    voice(message).appearance.get_or_insert_default()
}

fn voice_text(message: &mut pb::Chatbot) -> &mut pb::VoiceText {
    voice(message).text.get_or_insert_default()
}

fn vad(message: &mut pb::Chatbot) -> &mut pb::VoiceActivityDetection {
    voice(message).vad.get_or_insert_default()
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

/// The message for a stored chatbot, its public URLs under `public_url`; the OpenAI key only in its
/// masked form.
pub(crate) fn chatbot(chatbot: &Chatbot, public_url: &str) -> pb::Chatbot {
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
                language: text(snippet.language.as_str()),
            }),
            avatar: settings.avatar.map(|avatar| avatar.url(public_url)),
        }),
        create_time: Some(timestamp(chatbot.created_at)),
        update_time: Some(timestamp(chatbot.updated_at)),
        etag: chatbot.etag(),
        voice_widget_config: config.voice.as_ref().map(voice_widget),
        version_id: chatbot.published.map(|published| published.version_id.to_string()).unwrap_or_default(),
        delete_time: None,
        purge_time: None,
    }
}

/// The message for a configured voice agent.
fn voice_widget(voice: &VoiceWidget) -> pb::VoiceWidgetConfig {
    let text = |s: &str| Some(s.to_owned());
    let (appearance, model, labels, vad) = (&voice.appearance, &voice.model, &voice.text, &voice.vad);
    pb::VoiceWidgetConfig {
        agent_id: voice.agent_id.as_ref().map(|id| id.as_str().to_owned()),
        appearance: Some(pb::VoiceAppearance {
            background_color: text(appearance.background_color.as_str()),
            border_color: text(appearance.border_color.as_str()),
            button_color: text(appearance.button_color.as_str()),
            button_radius: Some(appearance.button_radius.get()),
            button_text_color: text(appearance.button_text_color.as_str()),
            card_radius: Some(appearance.card_radius.get()),
            focus_outline_color: text(appearance.focus_outline_color.as_str()),
            text_color: text(appearance.text_color.as_str()),
        }),
        avatar: Some(pb::VoiceAvatar { image_url: voice.avatar_image_url.as_ref().map(|url| url.to_string()) }),
        model: Some(pb::VoiceModel {
            max_output_tokens: Some(model.max_output_tokens.get()),
            temperature: Some(model.temperature.get()),
        }),
        text: Some(pb::VoiceText {
            call_to_action: text(labels.call_to_action.as_str()),
            end_call: text(labels.end_call.as_str()),
            listening_status: text(labels.listening_status.as_str()),
            speaking_status: text(labels.speaking_status.as_str()),
            start_call: text(labels.start_call.as_str()),
        }),
        vad: Some(pb::VoiceActivityDetection {
            prefix_padding_ms: Some(vad.prefix_padding_ms.get()),
            silence_duration_ms: Some(vad.silence_duration_ms.get()),
            threshold: Some(vad.threshold.get()),
        }),
        voice: text(voice.voice.as_str()),
    }
}

/// The message for a change of the log.
pub(crate) fn change(event: &ChatbotEvent) -> pb::WatchChatbotsResponse {
    let change = pb::ChatbotChange {
        resume_token: event.resume_token().encode(),
        r#type: change_type(event.kind).into(),
        chatbot_id: event.chatbot_id.to_string(),
        etag: event.etag.clone().unwrap_or_default(),
        revision: i64::try_from(event.revision).unwrap_or(i64::MAX),
        change_time: Some(timestamp(event.at)),
        version_id: event.version_id.map(|version| version.to_string()).unwrap_or_default(),
        changed_paths: event.changed.clone(),
    };
    pb::WatchChatbotsResponse { event: Some(pb::watch_chatbots_response::Event::Change(change)) }
}

/// The protobuf form of what a change did.
fn change_type(kind: ChangeKind) -> pb::ChangeType {
    match kind {
        ChangeKind::Created => pb::ChangeType::Created,
        ChangeKind::Updated => pb::ChangeType::Updated,
        ChangeKind::Restored => pb::ChangeType::Restored,
        ChangeKind::Published => pb::ChangeType::Published,
        ChangeKind::Unpublished => pb::ChangeType::Unpublished,
        ChangeKind::Deleted => pb::ChangeType::Deleted,
        ChangeKind::Undeleted => pb::ChangeType::Undeleted,
        ChangeKind::Purged => pb::ChangeType::Purged,
    }
}

/// The message of a revision, without its content.
pub(crate) fn revision(revision: &Revision) -> pb::ChatbotRevision {
    let (kind, api_key_id) = match revision.provenance.actor {
        Actor::ApiKey { id } => ("api_key", id.to_string()),
        Actor::Admin => ("admin", String::new()),
        Actor::Embedded => ("embedded", String::new()),
        Actor::Unrecorded => ("unrecorded", String::new()),
    };
    pb::ChatbotRevision {
        revision: i64::try_from(revision.revision).unwrap_or(i64::MAX),
        version_id: revision.version_id.to_string(),
        kind: change_type(revision.kind).into(),
        create_time: Some(timestamp(revision.create_time)),
        actor: Some(pb::RevisionActor { r#type: kind.into(), api_key_id }),
        request_id: revision.provenance.request_id.clone().unwrap_or_default(),
        note: revision.provenance.note.as_ref().map(|note| note.as_str().to_owned()).unwrap_or_default(),
        changed_paths: revision.changed.clone(),
        restored_from: revision.restored_from.map_or(0, |from| i64::try_from(from).unwrap_or(i64::MAX)),
        chatbot: None,
    }
}

/// A heartbeat message of a watch.
pub(crate) fn heartbeat() -> pb::WatchChatbotsResponse {
    pb::WatchChatbotsResponse { event: Some(pb::watch_chatbots_response::Event::Heartbeat(pb::Heartbeat {})) }
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
                chatbot_core::Kind::Integer => Value::Integer(i as i64),
                chatbot_core::Kind::Number => Value::Number(i as f64 / 10.0),
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
