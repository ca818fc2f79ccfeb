//! The creation and update rules: which fields exist, their defaults, and how a [`ChatbotDraft`]
//! becomes a checked [`ChatbotConfig`] with every violation reported at once.

use crate::catalog::{Field, FieldMask, Form};
use crate::chatbot::{
    ChatbotConfig, ChatbotDraft, Personality, Settings, Snippet, Vad, VoiceAppearance, VoiceDraft, VoiceModel,
    VoiceText, VoiceWidget,
};
use crate::domain::{
    BoundedText, ChatbotName, HexColor, Language, LogoUrl, Model, OpenAiKey, Rejection, Secret, Slug, Voice,
};
use crate::error::{Error, Result, ViolationCode};

mod checker;
/// Defaults for every optional field, applied when a field is absent on create or reset with `null`.
pub mod defaults;

use checker::{Checker, color, text};

/// The names a deployment allows for a setting (the models chatbots use, the voices their voice agents
/// speak with), and the one given when a client names none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowList {
    entries: Vec<String>,
    preferred: &'static str,
}

impl AllowList {
    /// The models chatbots may use: exactly these (blank entries are ignored; none means the built-in
    /// [`defaults::MODELS`]). The default model is `gpt-4o-mini` if allowed, else the first.
    pub fn models<S: AsRef<str>>(models: impl IntoIterator<Item = S>) -> Self {
        AllowList::new(models, defaults::MODELS, defaults::MODEL)
    }

    /// The voices voice agents may speak with, as [`AllowList::models`] ([`defaults::voice::VOICES`],
    /// preferring `shimmer`).
    pub fn voices<S: AsRef<str>>(voices: impl IntoIterator<Item = S>) -> Self {
        AllowList::new(voices, defaults::voice::VOICES, defaults::voice::VOICE)
    }

    fn new<S: AsRef<str>>(entries: impl IntoIterator<Item = S>, builtin: &[&str], preferred: &'static str) -> Self {
        let mut entries: Vec<String> =
            entries.into_iter().map(|m| m.as_ref().trim().to_owned()).filter(|m| !m.is_empty()).collect();
        if entries.is_empty() {
            entries = builtin.iter().map(|m| (*m).to_owned()).collect();
        }
        AllowList { entries, preferred }
    }

    /// The entry given when a client names none: the preferred one if allowed, else the first.
    pub fn default_entry(&self) -> &str {
        self.entries.iter().find(|m| *m == self.preferred).or(self.entries.first()).map_or(self.preferred, |m| m)
    }

    /// Accepts a name only if it is on the list.
    pub fn check(&self, value: &str) -> Result<(), Rejection> {
        if self.entries.iter().any(|m| m == value) {
            Ok(())
        } else {
            Err(Rejection::new(ViolationCode::NotAllowed, format!("must be one of: {}", self.entries.join(", "))))
        }
    }

    /// The allowed names, in configured order.
    pub fn entries(&self) -> &[String] {
        &self.entries
    }
}

/// The deployment's rules for chatbot configurations.
#[derive(Debug, Clone)]
pub struct Rules {
    /// Models chatbots may use.
    pub models: AllowList,
    /// Voices voice agents may speak with.
    pub voices: AllowList,
}

impl Default for Rules {
    fn default() -> Self {
        let none: [&str; 0] = [];
        Rules { models: AllowList::models(none), voices: AllowList::voices(none) }
    }
}

/// How the slug of a checked configuration was chosen; the store resolves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlugChoice {
    /// Unchanged from the stored chatbot.
    Kept,
    /// Given by the client: must be free (or already this chatbot's).
    Exact,
    /// Derived from the name: the first free of `slug`, `slug-1`, `slug-2`...
    Derived,
}

/// A configuration checked against the rules, ready for the store: only [`Rules`] makes one.
#[derive(Debug, Clone)]
pub struct Proposal {
    /// The configuration; its slug is the one wanted, which the store may suffix when derived.
    pub config: ChatbotConfig,
    /// How the slug was chosen, i.e. how the store must resolve it.
    pub slug: SlugChoice,
}

impl Rules {
    /// The fields a create sets from `draft`: all of them, except that the voice agent stays
    /// unconfigured unless the draft gives one of its fields.
    pub fn create_mask(draft: &ChatbotDraft) -> FieldMask {
        let voice = if draft.voice == VoiceDraft::default() { FieldMask::EMPTY } else { Form::VoiceAgent.mask() };
        Form::Chatbot.mask().union(Form::ChatWidget.mask()).union(voice)
    }

    /// Checks the fields of `draft` selected by `mask` and lays them over `base` (the stored
    /// configuration on update; the defaults on create, when `base` is `None`). A selected field
    /// that the draft leaves out is reset to its default. Every violation is reported at once.
    pub fn check(&self, base: Option<&ChatbotConfig>, draft: &ChatbotDraft, mask: FieldMask) -> Result<Proposal> {
        let mut c = Checker { mask, violations: Vec::new() };
        let (p, s, n) = (&draft.personality, &draft.settings, &draft.settings.snippet);
        let (bp, bs, bn) = (base.map(|b| &b.personality), base.map(|b| &b.settings), base.map(|b| &b.settings.snippet));

        let name = c.required(Field::Name, base.map(|b| &b.name), draft.name.as_deref(), ChatbotName::parse);
        let config = ChatbotConfig {
            slug: Slug::derive_from_name(name.as_ref().map_or("", ChatbotName::as_str)),
            description: c.field(
                Field::Description,
                base.map(|b| &b.description),
                draft.description.as_deref(),
                BoundedText::parse,
                text(defaults::DESCRIPTION),
            ),
            is_public: c.flag(Field::IsPublic, base.map(|b| b.is_public), draft.is_public, defaults::IS_PUBLIC),
            active: c.flag(Field::Active, base.map(|b| b.active), draft.active, defaults::ACTIVE),
            openai_api_key: c.field(
                Field::OpenaiApiKey,
                base.map(|b| &b.openai_api_key),
                draft.openai_api_key.as_deref(),
                |v| OpenAiKey::parse(v).map(|key| Some(Secret::Clear(key))),
                || None,
            ),
            personality: Personality {
                style: c.field(
                    Field::PersonalityStyle,
                    bp.map(|b| &b.style),
                    p.style.as_deref(),
                    BoundedText::parse,
                    text(defaults::STYLE),
                ),
                tone: c.field(
                    Field::PersonalityTone,
                    bp.map(|b| &b.tone),
                    p.tone.as_deref(),
                    BoundedText::parse,
                    text(defaults::TONE),
                ),
            },
            settings: Settings {
                greeting: c.field(
                    Field::Greeting,
                    bs.map(|b| &b.greeting),
                    s.greeting.as_deref(),
                    BoundedText::parse,
                    text(defaults::GREETING),
                ),
                is_request_user_info_enabled: c.flag(
                    Field::IsRequestUserInfoEnabled,
                    bs.map(|b| b.is_request_user_info_enabled),
                    s.is_request_user_info_enabled,
                    defaults::IS_REQUEST_USER_INFO_ENABLED,
                ),
                is_tool_enabled: c.flag(
                    Field::IsToolEnabled,
                    bs.map(|b| b.is_tool_enabled),
                    s.is_tool_enabled,
                    defaults::IS_TOOL_ENABLED,
                ),
                model: c.field(
                    Field::Model,
                    bs.map(|b| &b.model),
                    s.model.as_deref(),
                    |v| self.models.check(v).and_then(|()| Model::parse(v)),
                    || Model::parse(self.models.default_entry()).expect("allow-listed names are valid"),
                ),
                prompt: c.field(
                    Field::Prompt,
                    bs.map(|b| &b.prompt),
                    s.prompt.as_deref(),
                    BoundedText::parse,
                    text(defaults::PROMPT),
                ),
                snippet: Snippet {
                    header: c.field(
                        Field::SnippetHeader,
                        bn.map(|b| &b.header),
                        n.header.as_deref(),
                        BoundedText::parse,
                        text(defaults::SNIPPET_TEXT),
                    ),
                    logo: c.field(
                        Field::SnippetLogo,
                        bn.map(|b| &b.logo),
                        n.logo.as_deref(),
                        |v| LogoUrl::parse(v).map(Some),
                        || None,
                    ),
                    name: c.field(
                        Field::SnippetName,
                        bn.map(|b| &b.name),
                        n.name.as_deref(),
                        BoundedText::parse,
                        text(defaults::SNIPPET_TEXT),
                    ),
                    primary_color: c.field(
                        Field::SnippetPrimaryColor,
                        bn.map(|b| &b.primary_color),
                        n.primary_color.as_deref(),
                        HexColor::parse,
                        color(defaults::PRIMARY_COLOR),
                    ),
                    secondary_color: c.field(
                        Field::SnippetSecondaryColor,
                        bn.map(|b| &b.secondary_color),
                        n.secondary_color.as_deref(),
                        HexColor::parse,
                        color(defaults::SECONDARY_COLOR),
                    ),
                    slogan: c.field(
                        Field::SnippetSlogan,
                        bn.map(|b| &b.slogan),
                        n.slogan.as_deref(),
                        BoundedText::parse,
                        text(defaults::SNIPPET_TEXT),
                    ),
                    language: c.field(
                        Field::SnippetLanguage,
                        bn.map(|b| &b.language),
                        n.language.as_deref(),
                        Language::parse,
                        Language::auto,
                    ),
                },
                // Not a field a client sets: only an upload changes it.
                avatar: bs.and_then(|b| b.avatar),
            },
            voice: self.check_voice(&mut c, base.and_then(|b| b.voice.as_ref()), &draft.voice),
            // Without a valid name the result is an error below; the placeholder is never stored.
            name: name.clone().unwrap_or_else(|| ChatbotName::parse("unnamed").expect("a valid placeholder")),
        };
        let slug = c.slug(base.map(|b| &b.slug), draft.slug.as_deref());
        if !c.violations.is_empty() {
            c.violations.sort_by_key(|v| Field::ALL.iter().position(|f| f.json_path() == v.field));
            return Err(Error::Invalid { violations: c.violations });
        }
        let (slug, choice) = slug.unwrap_or((config.slug.clone(), SlugChoice::Derived));
        Ok(Proposal { config: ChatbotConfig { slug, ..config }, slug: choice })
    }
}

impl Rules {
    /// The voice agent: unchanged (configured or not) unless the mask selects one of its fields; then
    /// the selected fields over the stored widget, or over the defaults the first time.
    fn check_voice(&self, c: &mut Checker, base: Option<&VoiceWidget>, d: &VoiceDraft) -> Option<VoiceWidget> {
        use defaults::voice as default;
        if c.mask.intersection(Form::VoiceAgent.mask()).is_empty() {
            return base.cloned();
        }
        let (ba, bm, bt, bv) =
            (base.map(|b| &b.appearance), base.map(|b| &b.model), base.map(|b| &b.text), base.map(|b| &b.vad));
        let label = |c: &mut Checker, field, current, given: &Option<String>, fallback| {
            c.field(field, current, given.as_deref(), BoundedText::parse, text(fallback))
        };
        let hex = |c: &mut Checker, field, current, given: &Option<String>, fallback| {
            c.field(field, current, given.as_deref(), HexColor::parse, color(fallback))
        };
        Some(VoiceWidget {
            agent_id: c.field(
                Field::VoiceAgentId,
                base.map(|b| &b.agent_id),
                d.agent_id.as_deref(),
                |v| BoundedText::parse(v).map(Some),
                || default::AGENT_ID.and_then(|id| BoundedText::parse(id).ok()),
            ),
            appearance: VoiceAppearance {
                background_color: hex(
                    c,
                    Field::VoiceBackgroundColor,
                    ba.map(|b| &b.background_color),
                    &d.background_color,
                    default::BACKGROUND_COLOR,
                ),
                border_color: hex(
                    c,
                    Field::VoiceBorderColor,
                    ba.map(|b| &b.border_color),
                    &d.border_color,
                    default::BORDER_COLOR,
                ),
                button_color: hex(
                    c,
                    Field::VoiceButtonColor,
                    ba.map(|b| &b.button_color),
                    &d.button_color,
                    default::BUTTON_COLOR,
                ),
                button_radius: c.whole(
                    Field::VoiceButtonRadius,
                    ba.map(|b| &b.button_radius),
                    d.button_radius,
                    default::BUTTON_RADIUS,
                ),
                button_text_color: hex(
                    c,
                    Field::VoiceButtonTextColor,
                    ba.map(|b| &b.button_text_color),
                    &d.button_text_color,
                    default::BUTTON_TEXT_COLOR,
                ),
                card_radius: c.whole(
                    Field::VoiceCardRadius,
                    ba.map(|b| &b.card_radius),
                    d.card_radius,
                    default::CARD_RADIUS,
                ),
                focus_outline_color: hex(
                    c,
                    Field::VoiceFocusOutlineColor,
                    ba.map(|b| &b.focus_outline_color),
                    &d.focus_outline_color,
                    default::FOCUS_OUTLINE_COLOR,
                ),
                text_color: hex(
                    c,
                    Field::VoiceTextColor,
                    ba.map(|b| &b.text_color),
                    &d.text_color,
                    default::TEXT_COLOR,
                ),
            },
            avatar_image_url: c.field(
                Field::VoiceAvatarImageUrl,
                base.map(|b| &b.avatar_image_url),
                d.avatar_image_url.as_deref(),
                |v| LogoUrl::parse(v).map(Some),
                || None,
            ),
            model: VoiceModel {
                max_output_tokens: c.whole(
                    Field::VoiceMaxOutputTokens,
                    bm.map(|b| &b.max_output_tokens),
                    d.max_output_tokens,
                    default::MAX_OUTPUT_TOKENS,
                ),
                temperature: c.fraction(
                    Field::VoiceTemperature,
                    bm.map(|b| &b.temperature),
                    d.temperature,
                    default::TEMPERATURE,
                ),
            },
            text: VoiceText {
                call_to_action: label(
                    c,
                    Field::VoiceCallToAction,
                    bt.map(|b| &b.call_to_action),
                    &d.call_to_action,
                    default::CALL_TO_ACTION,
                ),
                end_call: label(c, Field::VoiceEndCall, bt.map(|b| &b.end_call), &d.end_call, default::END_CALL),
                listening_status: label(
                    c,
                    Field::VoiceListeningStatus,
                    bt.map(|b| &b.listening_status),
                    &d.listening_status,
                    default::LISTENING_STATUS,
                ),
                speaking_status: label(
                    c,
                    Field::VoiceSpeakingStatus,
                    bt.map(|b| &b.speaking_status),
                    &d.speaking_status,
                    default::SPEAKING_STATUS,
                ),
                start_call: label(
                    c,
                    Field::VoiceStartCall,
                    bt.map(|b| &b.start_call),
                    &d.start_call,
                    default::START_CALL,
                ),
            },
            vad: Vad {
                prefix_padding_ms: c.whole(
                    Field::VoicePrefixPaddingMs,
                    bv.map(|b| &b.prefix_padding_ms),
                    d.prefix_padding_ms,
                    default::PREFIX_PADDING_MS,
                ),
                silence_duration_ms: c.whole(
                    Field::VoiceSilenceDurationMs,
                    bv.map(|b| &b.silence_duration_ms),
                    d.silence_duration_ms,
                    default::SILENCE_DURATION_MS,
                ),
                threshold: c.fraction(Field::VoiceThreshold, bv.map(|b| &b.threshold), d.threshold, default::THRESHOLD),
            },
            voice: c.field(
                Field::VoiceName,
                base.map(|b| &b.voice),
                d.voice.as_deref(),
                |v| self.voices.check(v).and_then(|()| Voice::parse(v)),
                || Voice::parse(self.voices.default_entry()).expect("allow-listed names are valid"),
            ),
        })
    }
}

#[cfg(test)]
mod tests;
