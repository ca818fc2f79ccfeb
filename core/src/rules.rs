//! The creation and update rules: which fields exist, their defaults, and how a [`ChatbotDraft`]
//! becomes a checked [`ChatbotConfig`] with every violation reported at once.

use crate::catalog::{Field, FieldMask, Form};
use crate::chatbot::{
    ChatbotConfig, ChatbotDraft, Personality, Settings, Snippet, Vad, VoiceAppearance, VoiceDraft, VoiceModel,
    VoiceText, VoiceWidget,
};
use crate::domain::{
    BoundedText, ChatbotName, Fraction, HexColor, Language, LogoUrl, Model, OpenAiKey, Rejection, Slug, Voice,
    WholeNumber,
};
use crate::error::{Error, Result, Violation, ViolationCode};

/// Defaults for every optional field, applied when a field is absent on create or reset with `null`.
pub mod defaults {
    /// `description`.
    pub const DESCRIPTION: &str = "";
    /// `is_public`.
    pub const IS_PUBLIC: bool = false;
    /// `active`.
    pub const ACTIVE: bool = true;
    /// `personality_config.style`.
    pub const STYLE: &str = "Friendly";
    /// `personality_config.tone`.
    pub const TONE: &str = "Professional";
    /// `settings.greeting`.
    pub const GREETING: &str = "Hello! How can I assist you today?";
    /// `settings.isRequestUserInfoEnabled`.
    pub const IS_REQUEST_USER_INFO_ENABLED: bool = false;
    /// `settings.isToolEnabled`.
    pub const IS_TOOL_ENABLED: bool = false;
    /// `settings.model` (when the allow-list lacks it: the first allowed model).
    pub const MODEL: &str = "gpt-4o-mini";
    /// `settings.prompt`.
    pub const PROMPT: &str = "You are a helpful assistant.";
    /// `settings.snippet.header`, `.name` and `.slogan`.
    pub const SNIPPET_TEXT: &str = "";
    /// `settings.snippet.primaryColor`.
    pub const PRIMARY_COLOR: &str = "#4F46E5";
    /// `settings.snippet.secondaryColor`.
    pub const SECONDARY_COLOR: &str = "#10B981";
    /// Models allowed when the deployment configures none.
    pub const MODELS: &[&str] = &["gpt-4o-mini", "gpt-4o", "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano", "o3-mini"];
    /// `settings.snippet.language`, the chat widget's `language`.
    pub const LANGUAGE: &str = "auto";

    /// The voice agent's defaults, applied when it is first configured.
    pub mod voice {
        /// `agentId`: none.
        pub const AGENT_ID: Option<&str> = None;
        /// `appearance.backgroundColor`.
        pub const BACKGROUND_COLOR: &str = "#FFFFFF";
        /// `appearance.borderColor`.
        pub const BORDER_COLOR: &str = "#E5E7EB";
        /// `appearance.buttonColor`.
        pub const BUTTON_COLOR: &str = "#4F46E5";
        /// `appearance.buttonRadius`, in pixels.
        pub const BUTTON_RADIUS: i64 = 32;
        /// `appearance.buttonTextColor`.
        pub const BUTTON_TEXT_COLOR: &str = "#FFFFFF";
        /// `appearance.cardRadius`, in pixels.
        pub const CARD_RADIUS: i64 = 20;
        /// `appearance.focusOutlineColor`.
        pub const FOCUS_OUTLINE_COLOR: &str = "#818CF8";
        /// `appearance.textColor`.
        pub const TEXT_COLOR: &str = "#111827";
        /// `model.max_output_tokens`.
        pub const MAX_OUTPUT_TOKENS: i64 = 2048;
        /// `model.temperature`.
        pub const TEMPERATURE: f64 = 0.7;
        /// `text.callToAction`.
        pub const CALL_TO_ACTION: &str = "Talk to us";
        /// `text.endCall`.
        pub const END_CALL: &str = "End call";
        /// `text.listeningStatus`.
        pub const LISTENING_STATUS: &str = "Listening...";
        /// `text.speakingStatus`.
        pub const SPEAKING_STATUS: &str = "Speaking...";
        /// `text.startCall`.
        pub const START_CALL: &str = "Start call";
        /// `vad.prefix_padding_ms`.
        pub const PREFIX_PADDING_MS: i64 = 500;
        /// `vad.silence_duration_ms`.
        pub const SILENCE_DURATION_MS: i64 = 1000;
        /// `vad.threshold`.
        pub const THRESHOLD: f64 = 0.8;
        /// `voice` (when the allow-list lacks it: the first allowed voice).
        pub const VOICE: &str = "shimmer";
        /// Voices allowed when the deployment configures none.
        pub const VOICES: &[&str] = &["alloy", "ash", "ballad", "coral", "echo", "sage", "shimmer", "verse"];
    }
}

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
                |v| OpenAiKey::parse(v).map(Some),
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

/// The default of a text field (defaults are short constants, always within bounds).
fn text<const MAX: usize, const MULTILINE: bool>(
    default: &'static str,
) -> impl FnOnce() -> BoundedText<MAX, MULTILINE> {
    move || BoundedText::parse(default).unwrap_or_default()
}

/// The default of a color field.
fn color(default: &'static str) -> impl FnOnce() -> HexColor {
    move || HexColor::parse(default).expect("default colors are valid")
}

/// Collects the checked value of each field and the violations of all of them.
struct Checker {
    mask: FieldMask,
    violations: Vec<Violation>,
}

impl Checker {
    /// The value of `field`: the stored one when the mask leaves it alone, the parsed draft value
    /// when given, the default otherwise (also after a violation, which is recorded).
    fn field<R: ?Sized, T: Clone>(
        &mut self,
        field: Field,
        current: Option<&T>,
        given: Option<&R>,
        parse: impl FnOnce(&R) -> Result<T, Rejection>,
        default: impl FnOnce() -> T,
    ) -> T {
        if let (false, Some(current)) = (self.mask.contains(field), current) {
            return current.clone();
        }
        match given.map(parse) {
            Some(Ok(value)) => value,
            Some(Err(rejection)) => {
                self.violations.push(rejection.at(field.json_path()));
                default()
            }
            None => default(),
        }
    }

    /// A boolean field: nothing to parse.
    fn flag(&mut self, field: Field, current: Option<bool>, given: Option<bool>, default: bool) -> bool {
        self.field(field, current.as_ref(), given.as_ref(), |v| Ok(*v), || default)
    }

    /// A whole-number field.
    fn whole<const MIN: i64, const MAX: i64>(
        &mut self,
        field: Field,
        current: Option<&WholeNumber<MIN, MAX>>,
        given: Option<i64>,
        default: i64,
    ) -> WholeNumber<MIN, MAX> {
        let default = || WholeNumber::parse(default).expect("defaults are within bounds");
        self.field(field, current, given.as_ref(), |v| WholeNumber::parse(*v), default)
    }

    /// A number field.
    fn fraction<const MIN: i64, const MAX: i64>(
        &mut self,
        field: Field,
        current: Option<&Fraction<MIN, MAX>>,
        given: Option<f64>,
        default: f64,
    ) -> Fraction<MIN, MAX> {
        let default = || Fraction::parse(default).expect("defaults are within bounds");
        self.field(field, current, given.as_ref(), |v| Fraction::parse(*v), default)
    }

    /// A field without a default: leaving it out where it is selected is a violation.
    fn required<T: Clone>(
        &mut self,
        field: Field,
        current: Option<&T>,
        given: Option<&str>,
        parse: impl FnOnce(&str) -> Result<T, Rejection>,
    ) -> Option<T> {
        if let (false, Some(current)) = (self.mask.contains(field), current) {
            return Some(current.clone());
        }
        let Some(given) = given else {
            self.violations.push(Violation::new(field.json_path(), ViolationCode::Required, "is required"));
            return None;
        };
        parse(given).map_err(|rejection| self.violations.push(rejection.at(field.json_path()))).ok()
    }

    /// The slug, when it is kept or given; `None` means "derive it from the name".
    fn slug(&mut self, current: Option<&Slug>, given: Option<&str>) -> Option<(Slug, SlugChoice)> {
        if let (false, Some(current)) = (self.mask.contains(Field::Slug), current) {
            return Some((current.clone(), SlugChoice::Kept));
        }
        let parsed = Slug::parse(given?).map_err(|r| self.violations.push(r.at(Field::Slug.json_path())));
        parsed.ok().map(|slug| (slug, SlugChoice::Exact))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chatbot::SnippetDraft;

    fn named(name: &str) -> ChatbotDraft {
        ChatbotDraft { name: Some(name.into()), ..Default::default() }
    }

    fn violations(result: Result<Proposal>) -> Vec<(String, ViolationCode)> {
        match result {
            Err(Error::Invalid { violations }) => violations.into_iter().map(|v| (v.field, v.code)).collect(),
            other => panic!("expected violations, got {other:?}"),
        }
    }

    #[test]
    fn a_bare_name_gets_every_default_and_a_derived_slug() {
        let proposal = Rules::default().check(None, &named("API Docs Demo Chatbot"), FieldMask::all()).unwrap();
        let config = proposal.config;
        assert_eq!(proposal.slug, SlugChoice::Derived);
        assert_eq!(config.slug.as_str(), "api-docs-demo-chatbot");
        assert!(!config.is_public && config.active && config.openai_api_key.is_none());
        assert_eq!(config.settings.model.as_str(), defaults::MODEL);
        assert_eq!(config.settings.snippet.primary_color.as_str(), defaults::PRIMARY_COLOR);
        assert_eq!(config.settings.snippet.logo, None);
    }

    #[test]
    fn every_violation_is_reported_at_once_in_field_order() {
        let mut draft =
            ChatbotDraft { slug: Some("Bad Slug".into()), description: Some("x".repeat(501)), ..Default::default() };
        draft.settings.model = Some("gpt-2".into());
        draft.settings.snippet =
            SnippetDraft { primary_color: Some("blue".into()), logo: Some("/logo.png".into()), ..Default::default() };
        let found = violations(Rules::default().check(None, &draft, FieldMask::all()));
        assert_eq!(
            found,
            vec![
                ("name".into(), ViolationCode::Required),
                ("slug".into(), ViolationCode::InvalidFormat),
                ("description".into(), ViolationCode::TooLong),
                ("settings.model".into(), ViolationCode::NotAllowed),
                ("settings.snippet.logo".into(), ViolationCode::InvalidFormat),
                ("settings.snippet.primaryColor".into(), ViolationCode::InvalidFormat),
            ]
        );
    }

    #[test]
    fn an_update_changes_only_masked_fields_and_resets_absent_ones() {
        let rules = Rules::default();
        let mut draft = named("Support");
        draft.description = Some("old".into());
        draft.settings.greeting = Some("Hi".into());
        let stored = rules.check(None, &draft, FieldMask::all()).unwrap().config;

        let mut patch = ChatbotDraft::default();
        patch.settings.snippet.primary_color = Some("#000".into());
        let mask = FieldMask::parse(["settings.snippet.primaryColor", "description"]).unwrap();
        let proposal = rules.check(Some(&stored), &patch, mask).unwrap();
        assert_eq!(proposal.slug, SlugChoice::Kept);
        assert_eq!(proposal.config.settings.snippet.primary_color.as_str(), "#000");
        assert_eq!(proposal.config.description.as_str(), defaults::DESCRIPTION);
        assert_eq!(proposal.config.settings.greeting.as_str(), "Hi");
    }

    #[test]
    fn the_name_cannot_be_reset() {
        let stored = Rules::default().check(None, &named("Support"), FieldMask::all()).unwrap().config;
        let mask = FieldMask::parse(["name"]).unwrap();
        let found = violations(Rules::default().check(Some(&stored), &ChatbotDraft::default(), mask));
        assert_eq!(found, vec![("name".into(), ViolationCode::Required)]);
    }

    #[test]
    fn every_length_limit_of_the_catalog_is_the_one_the_rules_enforce() {
        use crate::catalog::{Limit, Value};
        #[allow(clippy::wildcard_enum_match_arm, reason = "every other field takes plain text")]
        let value_of_len = |field: Field, len: usize| match field {
            Field::SnippetLogo | Field::VoiceAvatarImageUrl => format!("https://e.com/{}", "a".repeat(len - 14)),
            // A private-use tag, subtags of at most 8 characters.
            Field::SnippetLanguage => {
                let mut tag = String::from("en-x");
                while len - tag.len() > 10 {
                    tag.push_str("-aaaaaaaa");
                }
                match len - tag.len() {
                    10 => tag.push_str("-aaaa-aaaa"),
                    rest => tag.push_str(&format!("-{}", "a".repeat(rest - 1))),
                }
                tag
            }
            _ => "a".repeat(len),
        };
        let draft_with = |field: Field, len: usize| {
            let mut draft = named("Limits");
            draft.slot(field).put(Some(Value::Text(value_of_len(field, len)))).unwrap();
            draft
        };
        let mut checked = 0;
        for field in Field::ALL.into_iter().filter(|f| ![Field::Model, Field::VoiceName].contains(f)) {
            let (Limit::Chars(max) | Limit::Bytes(max)) = field.spec().limit else { continue };
            let at_limit = Rules::default().check(None, &draft_with(field, max), FieldMask::all());
            assert!(at_limit.is_ok(), "{field:?} at {max}: {at_limit:?}");
            let past = violations(Rules::default().check(None, &draft_with(field, max + 1), FieldMask::all()));
            assert_eq!(past, vec![(field.json_path().to_owned(), ViolationCode::TooLong)], "{field:?}");
            checked += 1;
        }
        assert_eq!(checked, 20);
    }

    #[test]
    fn every_range_of_the_catalog_is_the_one_the_rules_enforce() {
        use crate::catalog::{Kind, Limit, Value};
        let draft_with = |field: Field, value: f64| {
            let mut draft = named("Ranges");
            #[allow(clippy::cast_possible_truncation, reason = "the bounds are whole numbers")]
            let value =
                if field.spec().kind == Kind::Integer { Value::Integer(value as i64) } else { Value::Number(value) };
            draft.slot(field).put(Some(value)).unwrap();
            draft
        };
        let mut checked = 0;
        for field in Field::ALL {
            let Limit::Range { min, max } = field.spec().limit else { continue };
            let step = if field.spec().kind == Kind::Integer { 1.0 } else { 0.001 };
            for at_limit in [min, max] {
                let checked = Rules::default().check(
                    None,
                    &draft_with(field, at_limit),
                    Rules::create_mask(&draft_with(field, at_limit)),
                );
                assert!(checked.is_ok(), "{field:?} at {at_limit}: {checked:?}");
            }
            for past in [min - step, max + step] {
                let draft = draft_with(field, past);
                let found = violations(Rules::default().check(None, &draft, Rules::create_mask(&draft)));
                assert_eq!(
                    found,
                    vec![(field.json_path().to_owned(), ViolationCode::OutOfRange)],
                    "{field:?} at {past}"
                );
            }
            checked += 1;
        }
        assert_eq!(checked, 7);
    }

    #[test]
    fn the_voice_agent_stays_unconfigured_until_a_voice_field_is_set() {
        let rules = Rules::default();
        let stored = rules.check(None, &named("Support"), Rules::create_mask(&named("Support"))).unwrap().config;
        assert_eq!(stored.voice, None);
        let untouched =
            rules.check(Some(&stored), &ChatbotDraft::default(), FieldMask::parse(["description"]).unwrap());
        assert_eq!(untouched.unwrap().config.voice, None);

        let mut patch = ChatbotDraft::default();
        patch.voice.button_radius = Some(10);
        let mask = FieldMask::parse(["voice_widget_config.appearance.buttonRadius"]).unwrap();
        let voice = rules.check(Some(&stored), &patch, mask).unwrap().config.voice.expect("configured");
        assert_eq!(voice.appearance.button_radius.get(), 10);
        assert_eq!(voice.appearance.card_radius.get(), defaults::voice::CARD_RADIUS);
        assert_eq!(voice.voice.as_str(), defaults::voice::VOICE);
        assert_eq!(voice.vad.threshold.get(), defaults::voice::THRESHOLD);
    }

    #[test]
    fn the_voice_comes_from_a_configurable_allow_list() {
        let rules = Rules { voices: AllowList::voices(["nova"]), ..Rules::default() };
        let mut draft = named("Support");
        draft.voice.voice = Some("shimmer".into());
        assert_eq!(
            violations(rules.check(None, &draft, Rules::create_mask(&draft))),
            vec![("voice_widget_config.voice".into(), ViolationCode::NotAllowed)]
        );
        draft.voice.voice = None;
        draft.voice.agent_id = Some("agent".into());
        let voice = rules.check(None, &draft, Rules::create_mask(&draft)).unwrap().config.voice.expect("configured");
        assert_eq!(voice.voice.as_str(), "nova");
    }

    #[test]
    fn the_model_allow_list_is_configurable() {
        let rules = Rules { models: AllowList::models(["my-model"]), ..Rules::default() };
        let mut draft = named("Support");
        draft.settings.model = Some("my-model".into());
        assert!(rules.check(None, &draft, FieldMask::all()).is_ok());
        draft.settings.model = Some("gpt-4o".into());
        assert_eq!(
            violations(rules.check(None, &draft, FieldMask::all())),
            vec![("settings.model".into(), ViolationCode::NotAllowed)]
        );
    }
}
