//! The field catalog: every field a client can set, described once. Its JSON path (the REST contract's
//! spelling, used in every violation), its protobuf path (the gRPC spelling, used in update masks), its
//! kind and its limit by name. The REST reader, the gRPC converter, field masks and violation order
//! all derive from this table; [`ChatbotDraft::slot`] is the one place that says where each field's
//! value goes in a draft. A [`Form`] is one REST request body's view of the catalog (the chatbot, the
//! chat widget, the voice agent).

use crate::chatbot::ChatbotDraft;
use crate::domain::Rejection;
use crate::domain::limits::{
    AGENT_ID_MAX_CHARS, DESCRIPTION_MAX_CHARS, GREETING_MAX_CHARS, LANGUAGE_MAX_CHARS, LOGO_MAX_BYTES,
    MAX_OUTPUT_TOKENS, MAX_TEMPERATURE_THOUSANDTHS, MAX_THRESHOLD_THOUSANDTHS, MAX_VAD_DURATION_MS, MIN_OUTPUT_TOKENS,
    MODEL_MAX_CHARS, NAME_MAX_CHARS, OPENAI_KEY_MAX_CHARS, PERSONALITY_MAX_CHARS, PROMPT_MAX_CHARS, RADIUS_MAX_PX,
    SLUG_MAX_CHARS, SNIPPET_TEXT_MAX_CHARS, VOICE_LABEL_MAX_CHARS, VOICE_MAX_CHARS,
};
use crate::error::{Error, Result, Violation, ViolationCode};

catalog! {
    // field                  JSON path (the contract)                          protobuf path (gRPC masks)                              kind and draft slot                         limit
    Name:                     "name",                                           "name",                                                 Text(name),                                 Limit::Chars(NAME_MAX_CHARS);
    Slug:                     "slug",                                           "slug",                                                 Text(slug),                                 Limit::Chars(SLUG_MAX_CHARS);
    Description:              "description",                                    "description",                                          Text(description),                          Limit::Chars(DESCRIPTION_MAX_CHARS);
    IsPublic:                 "is_public",                                      "is_public",                                            Flag(is_public),                            Limit::None;
    Active:                   "active",                                         "active",                                               Flag(active),                               Limit::None;
    OpenaiApiKey:             "openai_api_key",                                 "openai_api_key",                                       Text(openai_api_key),                       Limit::Chars(OPENAI_KEY_MAX_CHARS);
    PersonalityStyle:         "personality_config.style",                       "personality_config.style",                             Text(personality.style),                    Limit::Chars(PERSONALITY_MAX_CHARS);
    PersonalityTone:          "personality_config.tone",                        "personality_config.tone",                              Text(personality.tone),                     Limit::Chars(PERSONALITY_MAX_CHARS);
    Greeting:                 "settings.greeting",                              "settings.greeting",                                    Text(settings.greeting),                    Limit::Chars(GREETING_MAX_CHARS);
    IsRequestUserInfoEnabled: "settings.isRequestUserInfoEnabled",              "settings.is_request_user_info_enabled",                Flag(settings.is_request_user_info_enabled), Limit::None;
    IsToolEnabled:            "settings.isToolEnabled",                         "settings.is_tool_enabled",                             Flag(settings.is_tool_enabled),             Limit::None;
    Model:                    "settings.model",                                 "settings.model",                                       Text(settings.model),                       Limit::Chars(MODEL_MAX_CHARS);
    Prompt:                   "settings.prompt",                                "settings.prompt",                                      Text(settings.prompt),                      Limit::Chars(PROMPT_MAX_CHARS);
    SnippetHeader:            "settings.snippet.header",                        "settings.snippet.header",                              Text(settings.snippet.header),              Limit::Chars(SNIPPET_TEXT_MAX_CHARS);
    SnippetLogo:              "settings.snippet.logo",                          "settings.snippet.logo",                                Text(settings.snippet.logo),                Limit::Bytes(LOGO_MAX_BYTES);
    SnippetName:              "settings.snippet.name",                          "settings.snippet.name",                                Text(settings.snippet.name),                Limit::Chars(SNIPPET_TEXT_MAX_CHARS);
    SnippetPrimaryColor:      "settings.snippet.primaryColor",                  "settings.snippet.primary_color",                       Text(settings.snippet.primary_color),       Limit::None;
    SnippetSecondaryColor:    "settings.snippet.secondaryColor",                "settings.snippet.secondary_color",                     Text(settings.snippet.secondary_color),     Limit::None;
    SnippetSlogan:            "settings.snippet.slogan",                        "settings.snippet.slogan",                              Text(settings.snippet.slogan),              Limit::Chars(SNIPPET_TEXT_MAX_CHARS);
    SnippetLanguage:          "settings.snippet.language",                      "settings.snippet.language",                            Text(settings.snippet.language),            Limit::Chars(LANGUAGE_MAX_CHARS);
    VoiceAgentId:             "voice_widget_config.agentId",                    "voice_widget_config.agent_id",                         Text(voice.agent_id),                       Limit::Chars(AGENT_ID_MAX_CHARS);
    VoiceBackgroundColor:     "voice_widget_config.appearance.backgroundColor", "voice_widget_config.appearance.background_color",      Text(voice.background_color),               Limit::None;
    VoiceBorderColor:         "voice_widget_config.appearance.borderColor",     "voice_widget_config.appearance.border_color",          Text(voice.border_color),                   Limit::None;
    VoiceButtonColor:         "voice_widget_config.appearance.buttonColor",     "voice_widget_config.appearance.button_color",          Text(voice.button_color),                   Limit::None;
    VoiceButtonRadius:        "voice_widget_config.appearance.buttonRadius",    "voice_widget_config.appearance.button_radius",         Integer(voice.button_radius),               RADIUS;
    VoiceButtonTextColor:     "voice_widget_config.appearance.buttonTextColor", "voice_widget_config.appearance.button_text_color",     Text(voice.button_text_color),              Limit::None;
    VoiceCardRadius:          "voice_widget_config.appearance.cardRadius",      "voice_widget_config.appearance.card_radius",           Integer(voice.card_radius),                 RADIUS;
    VoiceFocusOutlineColor:   "voice_widget_config.appearance.focusOutlineColor", "voice_widget_config.appearance.focus_outline_color", Text(voice.focus_outline_color),            Limit::None;
    VoiceTextColor:           "voice_widget_config.appearance.textColor",       "voice_widget_config.appearance.text_color",            Text(voice.text_color),                     Limit::None;
    VoiceAvatarImageUrl:      "voice_widget_config.avatar.imageUrl",            "voice_widget_config.avatar.image_url",                 Text(voice.avatar_image_url),               Limit::Bytes(LOGO_MAX_BYTES);
    VoiceMaxOutputTokens:     "voice_widget_config.model.max_output_tokens",    "voice_widget_config.model.max_output_tokens",          Integer(voice.max_output_tokens),           range(MIN_OUTPUT_TOKENS, MAX_OUTPUT_TOKENS);
    VoiceTemperature:         "voice_widget_config.model.temperature",          "voice_widget_config.model.temperature",                Number(voice.temperature),                  thousandths(MAX_TEMPERATURE_THOUSANDTHS);
    VoiceCallToAction:        "voice_widget_config.text.callToAction",          "voice_widget_config.text.call_to_action",              Text(voice.call_to_action),                 LABEL;
    VoiceEndCall:             "voice_widget_config.text.endCall",               "voice_widget_config.text.end_call",                    Text(voice.end_call),                       LABEL;
    VoiceListeningStatus:     "voice_widget_config.text.listeningStatus",       "voice_widget_config.text.listening_status",            Text(voice.listening_status),               LABEL;
    VoiceSpeakingStatus:      "voice_widget_config.text.speakingStatus",        "voice_widget_config.text.speaking_status",             Text(voice.speaking_status),                LABEL;
    VoiceStartCall:           "voice_widget_config.text.startCall",             "voice_widget_config.text.start_call",                  Text(voice.start_call),                     LABEL;
    VoicePrefixPaddingMs:     "voice_widget_config.vad.prefix_padding_ms",      "voice_widget_config.vad.prefix_padding_ms",            Integer(voice.prefix_padding_ms),           MILLIS;
    VoiceSilenceDurationMs:   "voice_widget_config.vad.silence_duration_ms",    "voice_widget_config.vad.silence_duration_ms",          Integer(voice.silence_duration_ms),         MILLIS;
    VoiceThreshold:           "voice_widget_config.vad.threshold",              "voice_widget_config.vad.threshold",                    Number(voice.threshold),                    thousandths(MAX_THRESHOLD_THOUSANDTHS);
    VoiceName:                "voice_widget_config.voice",                      "voice_widget_config.voice",                            Text(voice.voice),                          Limit::Chars(VOICE_MAX_CHARS);
}

/// The catalog, from its one table: the [`Field`] enum, [`Field::ALL`] in the table's order,
/// [`Field::spec`], and [`ChatbotDraft::slot`]. A field is added by adding a row; nothing else lists
/// the fields. (A mask is 64 bits: a 65th field fails to compile.)
macro_rules! catalog {
    ($( $field:ident : $json:literal, $proto:literal, $kind:ident ( $($slot:ident).+ ), $limit:expr; )*) => {
        /// Every field a client can set, in the contract's order.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[allow(missing_docs)] // each variant is described by its `Spec`
        pub enum Field {
            $($field,)*
        }

        impl Field {
            /// All fields, in the contract's order (the order violations are reported in).
            pub const ALL: [Field; count!($($field)*)] = [$(Field::$field,)*];

            /// The field's row of the catalog.
            pub const fn spec(self) -> Spec {
                const fn range(min: i64, max: i64) -> Limit {
                    Limit::Range { min: min as f64, max: max as f64 }
                }
                const fn thousandths(max: i64) -> Limit {
                    Limit::Range { min: 0.0, max: max as f64 / 1000.0 }
                }
                const LABEL: Limit = Limit::Chars(VOICE_LABEL_MAX_CHARS);
                const RADIUS: Limit = range(0, RADIUS_MAX_PX);
                const MILLIS: Limit = range(0, MAX_VAD_DURATION_MS);
                match self {
                    $(Field::$field => Spec { json_path: $json, proto_path: $proto, kind: Kind::$kind, limit: $limit },)*
                }
            }
        }

        impl ChatbotDraft {
            /// Where `field`'s value lives in this draft.
            pub fn slot(&mut self, field: Field) -> Slot<'_> {
                match field {
                    $(Field::$field => Slot::$kind(&mut self.$($slot).+),)*
                }
            }
        }

        const _: () = assert!(Field::ALL.len() <= u64::BITS as usize, "a FieldMask holds at most 64 fields");
    };
}
use catalog;

/// The secret fields: stored sealed (see [`crate::secrets`]) and shown masked. A new secret field is
/// a row of the table above and a line here.
impl crate::chatbot::ChatbotConfig {
    /// Each secret field of this configuration, with its catalog field.
    pub(crate) fn secrets_mut(&mut self) -> [(Field, &mut Option<crate::domain::Secret>); 1] {
        [(Field::OpenaiApiKey, &mut self.openai_api_key)]
    }

    /// Each secret field of this configuration, with its catalog field.
    pub(crate) fn secrets(&self) -> [(Field, &Option<crate::domain::Secret>); 1] {
        [(Field::OpenaiApiKey, &self.openai_api_key)]
    }
}

/// How many identifiers it is given.
macro_rules! count {
    () => { 0 };
    ($head:ident $($tail:ident)*) => { 1 + count!($($tail)*) };
}
use count;

/// What kind of value a field holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A string.
    Text,
    /// A boolean.
    Flag,
    /// A whole number.
    Integer,
    /// Any finite number.
    Number,
}

impl Kind {
    /// How a message names the kind: "a string".
    pub fn described(self) -> &'static str {
        match self {
            Kind::Text => "a string",
            Kind::Flag => "a boolean",
            Kind::Integer => "a whole number",
            Kind::Number => "a number",
        }
    }
}

/// How long or how large a field's value may be.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Limit {
    /// No limit of its own (booleans, colors), or one set by another rule (an allow-list).
    None,
    /// At most this many characters (Unicode scalar values).
    Chars(usize),
    /// At most this many bytes.
    Bytes(usize),
    /// A number from `min` to `max` inclusive.
    Range {
        /// The smallest value accepted.
        min: f64,
        /// The largest value accepted.
        max: f64,
    },
}

/// One row of the catalog.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spec {
    /// The path in the contract's JSON body: `settings.snippet.primaryColor`.
    pub json_path: &'static str,
    /// The path in the protobuf message: `settings.snippet.primary_color`.
    pub proto_path: &'static str,
    /// The kind of value.
    pub kind: Kind,
    /// The length limit, from [`limits`](crate::domain::limits).
    pub limit: Limit,
}

impl Field {
    /// The path in the contract's JSON body, used in every violation: `settings.snippet.primaryColor`.
    pub const fn json_path(self) -> &'static str {
        self.spec().json_path
    }

    /// The path in the protobuf message, as used in a gRPC `update_mask`: `settings.snippet.primary_color`.
    pub const fn proto_path(self) -> &'static str {
        self.spec().proto_path
    }

    /// The field at JSON path `path`, if any.
    pub fn at_json_path(path: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.json_path() == path)
    }

    /// The fields inside the object at JSON path `path` (`settings.snippet` has seven); empty when
    /// `path` names no object.
    pub fn under_json_path(path: &str) -> impl Iterator<Item = Field> + '_ {
        Field::ALL.into_iter().filter(move |f| is_under(f.json_path(), path))
    }

    /// A violation of this field.
    pub fn violation(self, code: ViolationCode, message: impl Into<String>) -> Violation {
        Violation::new(self.json_path(), code, message)
    }

    fn bit(self) -> u64 {
        1 << (self as u32)
    }
}

/// One REST request body's view of the catalog: which fields it sets, and the object they live in.
/// Violations of a form name a field by its path inside the form's body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// The chatbot itself (Create Chatbot, Update Chatbot): every field outside the widgets' own, with
    /// their contract paths.
    Chatbot,
    /// The Chat Widget endpoint's body: `settings.snippet` with its `language`, paths relative to it
    /// (`primaryColor`).
    ChatWidget,
    /// The Voice Agent endpoint's body: `voice_widget_config`, paths relative to it
    /// (`appearance.buttonRadius`).
    VoiceAgent,
}

impl Form {
    /// The object of the chatbot that the form's body stands for (`""` for the chatbot itself).
    pub const fn root(self) -> &'static str {
        match self {
            Form::Chatbot => "",
            Form::ChatWidget => "settings.snippet",
            Form::VoiceAgent => "voice_widget_config",
        }
    }

    /// Whether the form sets `field`.
    pub fn sets(self, field: Field) -> bool {
        let voice = is_under(field.json_path(), Form::VoiceAgent.root());
        match self {
            Form::Chatbot => !voice && field != Field::SnippetLanguage,
            Form::ChatWidget | Form::VoiceAgent => is_under(field.json_path(), self.root()),
        }
    }

    /// Every field the form sets.
    pub fn fields(self) -> impl Iterator<Item = Field> {
        Field::ALL.into_iter().filter(move |f| self.sets(*f))
    }

    /// Every field the form sets, as a mask.
    pub fn mask(self) -> FieldMask {
        self.fields().collect()
    }

    /// `field`'s path inside the form's body (`primaryColor` for the chat widget).
    pub fn path(self, field: Field) -> &'static str {
        self.relative(field.json_path())
    }

    /// A path of the chatbot as seen inside the form's body; a path outside the form is kept whole.
    pub fn relative(self, path: &str) -> &str {
        match self {
            Form::Chatbot => path,
            Form::ChatWidget | Form::VoiceAgent => {
                path.strip_prefix(self.root()).and_then(|rest| rest.strip_prefix('.')).unwrap_or(path)
            }
        }
    }

    /// The field at `path` inside the form's body, if the form sets one there.
    pub fn field_at(self, path: &str) -> Option<Field> {
        self.fields().find(|f| self.path(*f) == path)
    }

    /// Whether `path` names an object of the form's body that holds fields (`appearance`).
    pub fn is_object(self, path: &str) -> bool {
        self.fields().any(|f| is_under(self.path(f), path))
    }

    /// The fields inside the object at `path` of the form's body.
    pub fn fields_under(self, path: &str) -> impl Iterator<Item = Field> + '_ {
        self.fields().filter(move |f| is_under(self.path(*f), path))
    }

    /// `error` with every violation's path made relative to the form's body.
    #[allow(clippy::wildcard_enum_match_arm, reason = "only violations name paths")]
    pub fn localize(self, error: Error) -> Error {
        match error {
            Error::Invalid { violations } => Error::Invalid {
                violations: violations
                    .into_iter()
                    .map(|v| Violation { field: self.relative(&v.field).to_owned(), ..v })
                    .collect(),
            },
            other => other,
        }
    }
}

/// Whether `full` lies inside the object at `parent` (`settings.snippet.logo` inside `settings`).
fn is_under(full: &str, parent: &str) -> bool {
    full.strip_prefix(parent).is_some_and(|rest| rest.starts_with('.'))
}

/// A set of [`Field`]s: the ones an update changes (AIP-134's `update_mask`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FieldMask(u64);

impl FieldMask {
    /// No field.
    pub const EMPTY: FieldMask = FieldMask(0);

    /// Every field (`*`).
    pub fn all() -> Self {
        Field::ALL.into_iter().collect()
    }

    /// Whether `field` is in the set.
    pub fn contains(self, field: Field) -> bool {
        self.0 & field.bit() != 0
    }

    /// Adds `field`.
    pub fn insert(&mut self, field: Field) {
        self.0 |= field.bit();
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The fields in both sets.
    pub fn intersection(self, other: FieldMask) -> FieldMask {
        FieldMask(self.0 & other.0)
    }

    /// The fields in either set.
    pub fn union(self, other: FieldMask) -> FieldMask {
        FieldMask(self.0 | other.0)
    }

    /// Reads mask paths. A path names a field in its protobuf or JSON spelling, or a parent object
    /// (`settings.snippet` selects all seven snippet fields, `language` included); `*` selects
    /// everything. Unknown paths are violations of `update_mask`.
    pub fn parse<'a>(paths: impl IntoIterator<Item = &'a str>) -> Result<Self> {
        let mut mask = FieldMask::EMPTY;
        let mut violations = Vec::new();
        for path in paths {
            let selects = |f: &Field| {
                let spec = f.spec();
                path == "*"
                    || [spec.json_path, spec.proto_path].into_iter().any(|full| full == path || is_under(full, path))
            };
            let selected: FieldMask = Field::ALL.into_iter().filter(selects).collect();
            if selected.is_empty() {
                violations.push(Violation::new(
                    "update_mask",
                    ViolationCode::InvalidFormat,
                    format!("unknown field path '{path}'"),
                ));
            }
            mask.0 |= selected.0;
        }
        if violations.is_empty() { Ok(mask) } else { Err(Error::Invalid { violations }) }
    }
}

impl FromIterator<Field> for FieldMask {
    fn from_iter<I: IntoIterator<Item = Field>>(iter: I) -> Self {
        let mut mask = FieldMask::EMPTY;
        iter.into_iter().for_each(|f| mask.insert(f));
        mask
    }
}

/// A value a client gave for a field, before the rules have seen it.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// For [`Kind::Text`] fields.
    Text(String),
    /// For [`Kind::Flag`] fields.
    Flag(bool),
    /// For [`Kind::Integer`] fields.
    Integer(i64),
    /// For [`Kind::Number`] fields.
    Number(f64),
}

impl Value {
    /// The kind of field the value fits.
    pub fn kind(&self) -> Kind {
        match self {
            Value::Text(_) => Kind::Text,
            Value::Flag(_) => Kind::Flag,
            Value::Integer(_) => Kind::Integer,
            Value::Number(_) => Kind::Number,
        }
    }
}

/// Where one field's value lives in a draft (or in any message of the same shape, such as the gRPC
/// one): the means by which faces move values without naming each field.
#[derive(Debug)]
pub enum Slot<'a> {
    /// A text field.
    Text(&'a mut Option<String>),
    /// A boolean field.
    Flag(&'a mut Option<bool>),
    /// A whole-number field.
    Integer(&'a mut Option<i64>),
    /// A number field.
    Number(&'a mut Option<f64>),
}

impl Slot<'_> {
    /// The kind of value the slot holds.
    pub fn kind(&self) -> Kind {
        match self {
            Slot::Text(_) => Kind::Text,
            Slot::Flag(_) => Kind::Flag,
            Slot::Integer(_) => Kind::Integer,
            Slot::Number(_) => Kind::Number,
        }
    }

    /// Takes the value out, leaving the slot empty.
    pub fn take(self) -> Option<Value> {
        match self {
            Slot::Text(slot) => slot.take().map(Value::Text),
            Slot::Flag(slot) => slot.take().map(Value::Flag),
            Slot::Integer(slot) => slot.take().map(Value::Integer),
            Slot::Number(slot) => slot.take().map(Value::Number),
        }
    }

    /// Puts `value` in (`None` empties the slot). A value of another kind is refused with a
    /// `wrong_type` rejection and leaves the slot as it was; a whole number fits a number slot.
    pub fn put(self, value: Option<Value>) -> Result<(), Rejection> {
        let kind = self.kind();
        match (self, value) {
            (Slot::Text(slot), Some(Value::Text(text))) => *slot = Some(text),
            (Slot::Flag(slot), Some(Value::Flag(flag))) => *slot = Some(flag),
            (Slot::Integer(slot), Some(Value::Integer(number))) => *slot = Some(number),
            (Slot::Number(slot), Some(Value::Number(number))) => *slot = Some(number),
            #[allow(clippy::cast_precision_loss, reason = "a whole number given where any number fits")]
            (Slot::Number(slot), Some(Value::Integer(number))) => *slot = Some(number as f64),
            (Slot::Text(slot), None) => *slot = None,
            (Slot::Flag(slot), None) => *slot = None,
            (Slot::Integer(slot), None) => *slot = None,
            (Slot::Number(slot), None) => *slot = None,
            (Slot::Text(_) | Slot::Flag(_) | Slot::Integer(_) | Slot::Number(_), Some(other)) => {
                let message = format!("must be {}, not {}", kind.described(), other.kind().described());
                return Err(Rejection::new(ViolationCode::WrongType, message));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
