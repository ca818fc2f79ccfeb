//! The field catalog: every field a client can set, described once. Its JSON path (the REST contract's
//! spelling, used in every violation), its protobuf path (the gRPC spelling, used in update masks), its
//! kind and its limit by name. The REST reader, the gRPC converter, field masks and violation order
//! all derive from this table; [`ChatbotDraft::slot`] is the one place that says where each field's
//! value goes in a draft.

use crate::chatbot::ChatbotDraft;
use crate::domain::Rejection;
use crate::domain::limits::{
    DESCRIPTION_MAX_CHARS, GREETING_MAX_CHARS, LOGO_MAX_BYTES, MODEL_MAX_CHARS, NAME_MAX_CHARS, OPENAI_KEY_MAX_CHARS,
    PERSONALITY_MAX_CHARS, PROMPT_MAX_CHARS, SLUG_MAX_CHARS, SNIPPET_TEXT_MAX_CHARS,
};
use crate::error::{Error, Result, Violation, ViolationCode};

/// Every field a client can set, in the contract's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[allow(missing_docs)] // each variant is described by its `Spec`
pub enum Field {
    Name,
    Slug,
    Description,
    IsPublic,
    Active,
    OpenaiApiKey,
    PersonalityStyle,
    PersonalityTone,
    Greeting,
    IsRequestUserInfoEnabled,
    IsToolEnabled,
    Model,
    Prompt,
    SnippetHeader,
    SnippetLogo,
    SnippetName,
    SnippetPrimaryColor,
    SnippetSecondaryColor,
    SnippetSlogan,
}

/// What kind of value a field holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A string.
    Text,
    /// A boolean.
    Flag,
}

impl Kind {
    /// How a message names the kind: "a string".
    pub fn described(self) -> &'static str {
        match self {
            Kind::Text => "a string",
            Kind::Flag => "a boolean",
        }
    }
}

/// How long a field's value may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// No length limit (booleans), or one set by another rule (the model's allow-list).
    None,
    /// At most this many characters (Unicode scalar values).
    Chars(usize),
    /// At most this many bytes.
    Bytes(usize),
}

/// One row of the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    /// All fields, in the contract's order (the order violations are reported in).
    pub const ALL: [Field; 19] = [
        Field::Name,
        Field::Slug,
        Field::Description,
        Field::IsPublic,
        Field::Active,
        Field::OpenaiApiKey,
        Field::PersonalityStyle,
        Field::PersonalityTone,
        Field::Greeting,
        Field::IsRequestUserInfoEnabled,
        Field::IsToolEnabled,
        Field::Model,
        Field::Prompt,
        Field::SnippetHeader,
        Field::SnippetLogo,
        Field::SnippetName,
        Field::SnippetPrimaryColor,
        Field::SnippetSecondaryColor,
        Field::SnippetSlogan,
    ];

    /// The field's row of the catalog.
    pub const fn spec(self) -> Spec {
        use Kind::{Flag, Text};
        let (json_path, proto_path, kind, limit) = match self {
            Field::Name => ("name", "name", Text, Limit::Chars(NAME_MAX_CHARS)),
            Field::Slug => ("slug", "slug", Text, Limit::Chars(SLUG_MAX_CHARS)),
            Field::Description => ("description", "description", Text, Limit::Chars(DESCRIPTION_MAX_CHARS)),
            Field::IsPublic => ("is_public", "is_public", Flag, Limit::None),
            Field::Active => ("active", "active", Flag, Limit::None),
            Field::OpenaiApiKey => ("openai_api_key", "openai_api_key", Text, Limit::Chars(OPENAI_KEY_MAX_CHARS)),
            Field::PersonalityStyle => {
                ("personality_config.style", "personality_config.style", Text, Limit::Chars(PERSONALITY_MAX_CHARS))
            }
            Field::PersonalityTone => {
                ("personality_config.tone", "personality_config.tone", Text, Limit::Chars(PERSONALITY_MAX_CHARS))
            }
            Field::Greeting => ("settings.greeting", "settings.greeting", Text, Limit::Chars(GREETING_MAX_CHARS)),
            Field::IsRequestUserInfoEnabled => {
                ("settings.isRequestUserInfoEnabled", "settings.is_request_user_info_enabled", Flag, Limit::None)
            }
            Field::IsToolEnabled => ("settings.isToolEnabled", "settings.is_tool_enabled", Flag, Limit::None),
            Field::Model => ("settings.model", "settings.model", Text, Limit::Chars(MODEL_MAX_CHARS)),
            Field::Prompt => ("settings.prompt", "settings.prompt", Text, Limit::Chars(PROMPT_MAX_CHARS)),
            Field::SnippetHeader => {
                ("settings.snippet.header", "settings.snippet.header", Text, Limit::Chars(SNIPPET_TEXT_MAX_CHARS))
            }
            Field::SnippetLogo => {
                ("settings.snippet.logo", "settings.snippet.logo", Text, Limit::Bytes(LOGO_MAX_BYTES))
            }
            Field::SnippetName => {
                ("settings.snippet.name", "settings.snippet.name", Text, Limit::Chars(SNIPPET_TEXT_MAX_CHARS))
            }
            Field::SnippetPrimaryColor => {
                ("settings.snippet.primaryColor", "settings.snippet.primary_color", Text, Limit::None)
            }
            Field::SnippetSecondaryColor => {
                ("settings.snippet.secondaryColor", "settings.snippet.secondary_color", Text, Limit::None)
            }
            Field::SnippetSlogan => {
                ("settings.snippet.slogan", "settings.snippet.slogan", Text, Limit::Chars(SNIPPET_TEXT_MAX_CHARS))
            }
        };
        Spec { json_path, proto_path, kind, limit }
    }

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

    /// The fields inside the object at JSON path `path` (`settings.snippet` has six); empty when
    /// `path` names no object.
    pub fn under_json_path(path: &str) -> impl Iterator<Item = Field> + '_ {
        Field::ALL.into_iter().filter(move |f| is_under(f.json_path(), path))
    }

    /// A violation of this field.
    pub fn violation(self, code: ViolationCode, message: impl Into<String>) -> Violation {
        Violation::new(self.json_path(), code, message)
    }

    fn bit(self) -> u32 {
        1 << (self as u32)
    }
}

/// Whether `full` lies inside the object at `parent` (`settings.snippet.logo` inside `settings`).
fn is_under(full: &str, parent: &str) -> bool {
    full.strip_prefix(parent).is_some_and(|rest| rest.starts_with('.'))
}

/// A set of [`Field`]s: the ones an update changes (AIP-134's `update_mask`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FieldMask(u32);

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

    /// Reads mask paths. A path names a field in its protobuf or JSON spelling, or a parent object
    /// (`settings.snippet` selects all six snippet fields); `*` selects everything. Unknown paths are
    /// violations of `update_mask`.
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// For [`Kind::Text`] fields.
    Text(String),
    /// For [`Kind::Flag`] fields.
    Flag(bool),
}

/// Where one field's value lives in a draft (or in any message of the same shape, such as the gRPC
/// one): the means by which faces move values without naming each field.
#[derive(Debug)]
pub enum Slot<'a> {
    /// A text field.
    Text(&'a mut Option<String>),
    /// A boolean field.
    Flag(&'a mut Option<bool>),
}

impl Slot<'_> {
    /// The kind of value the slot holds.
    pub fn kind(&self) -> Kind {
        match self {
            Slot::Text(_) => Kind::Text,
            Slot::Flag(_) => Kind::Flag,
        }
    }

    /// Takes the value out, leaving the slot empty.
    pub fn take(self) -> Option<Value> {
        match self {
            Slot::Text(slot) => slot.take().map(Value::Text),
            Slot::Flag(slot) => slot.take().map(Value::Flag),
        }
    }

    /// Puts `value` in (`None` empties the slot). A value of another kind is refused with a
    /// `wrong_type` rejection and leaves the slot as it was.
    pub fn put(self, value: Option<Value>) -> Result<(), Rejection> {
        let kind = self.kind();
        match (self, value) {
            (Slot::Text(slot), Some(Value::Text(text))) => *slot = Some(text),
            (Slot::Flag(slot), Some(Value::Flag(flag))) => *slot = Some(flag),
            (Slot::Text(slot), None) => *slot = None,
            (Slot::Flag(slot), None) => *slot = None,
            (Slot::Text(_) | Slot::Flag(_), Some(other)) => {
                let found = match other {
                    Value::Text(_) => Kind::Text,
                    Value::Flag(_) => Kind::Flag,
                };
                let message = format!("must be {}, not {}", kind.described(), found.described());
                return Err(Rejection::new(ViolationCode::WrongType, message));
            }
        }
        Ok(())
    }
}

impl ChatbotDraft {
    /// Where `field`'s value lives in this draft.
    pub fn slot(&mut self, field: Field) -> Slot<'_> {
        let (p, s) = (&mut self.personality, &mut self.settings);
        match field {
            Field::Name => Slot::Text(&mut self.name),
            Field::Slug => Slot::Text(&mut self.slug),
            Field::Description => Slot::Text(&mut self.description),
            Field::IsPublic => Slot::Flag(&mut self.is_public),
            Field::Active => Slot::Flag(&mut self.active),
            Field::OpenaiApiKey => Slot::Text(&mut self.openai_api_key),
            Field::PersonalityStyle => Slot::Text(&mut p.style),
            Field::PersonalityTone => Slot::Text(&mut p.tone),
            Field::Greeting => Slot::Text(&mut s.greeting),
            Field::IsRequestUserInfoEnabled => Slot::Flag(&mut s.is_request_user_info_enabled),
            Field::IsToolEnabled => Slot::Flag(&mut s.is_tool_enabled),
            Field::Model => Slot::Text(&mut s.model),
            Field::Prompt => Slot::Text(&mut s.prompt),
            Field::SnippetHeader => Slot::Text(&mut s.snippet.header),
            Field::SnippetLogo => Slot::Text(&mut s.snippet.logo),
            Field::SnippetName => Slot::Text(&mut s.snippet.name),
            Field::SnippetPrimaryColor => Slot::Text(&mut s.snippet.primary_color),
            Field::SnippetSecondaryColor => Slot::Text(&mut s.snippet.secondary_color),
            Field::SnippetSlogan => Slot::Text(&mut s.snippet.slogan),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_has_its_own_paths_and_a_slot_of_its_kind() {
        let mut json: Vec<&str> = Field::ALL.iter().map(|f| f.json_path()).collect();
        let mut proto: Vec<&str> = Field::ALL.iter().map(|f| f.proto_path()).collect();
        json.dedup();
        proto.dedup();
        assert_eq!((json.len(), proto.len()), (Field::ALL.len(), Field::ALL.len()));
        let mut draft = ChatbotDraft::default();
        for (i, field) in Field::ALL.into_iter().enumerate() {
            assert_eq!(field as usize, i, "ALL is in declaration order");
            assert_eq!(draft.slot(field).kind(), field.spec().kind, "{field:?}");
            assert_eq!(Field::at_json_path(field.json_path()), Some(field));
        }
    }

    #[test]
    fn a_value_put_in_a_slot_is_given_and_comes_back_out() {
        let mut draft = ChatbotDraft::default();
        draft.slot(Field::SnippetPrimaryColor).put(Some(Value::Text("#000".into()))).unwrap();
        draft.slot(Field::IsToolEnabled).put(Some(Value::Flag(true))).unwrap();
        assert_eq!(draft.settings.snippet.primary_color.as_deref(), Some("#000"));
        assert_eq!(draft.slot(Field::IsToolEnabled).take(), Some(Value::Flag(true)));
        assert_eq!(draft.settings.is_tool_enabled, None);
    }

    #[test]
    fn a_value_of_the_wrong_kind_is_refused() {
        let mut draft = ChatbotDraft::default();
        let refused = draft.slot(Field::Name).put(Some(Value::Flag(true))).unwrap_err();
        assert_eq!(refused.code, ViolationCode::WrongType);
        assert_eq!(refused.message, "must be a string, not a boolean");
        assert_eq!(draft.name, None);
    }

    #[test]
    fn objects_are_found_by_their_json_paths() {
        assert_eq!(Field::under_json_path("settings.snippet").count(), 6);
        assert_eq!(Field::under_json_path("personality_config").count(), 2);
        assert_eq!(Field::under_json_path("settings.snip").count(), 0);
        assert_eq!(Field::under_json_path("name").count(), 0);
    }

    #[test]
    fn mask_paths_accept_both_spellings_and_parents() {
        let both = FieldMask::parse(["settings.snippet.primary_color", "settings.snippet.secondaryColor"]).unwrap();
        assert!(both.contains(Field::SnippetPrimaryColor) && both.contains(Field::SnippetSecondaryColor));
        let parent = FieldMask::parse(["settings.snippet"]).unwrap();
        assert!(parent.contains(Field::SnippetLogo) && !parent.contains(Field::Model));
        assert_eq!(FieldMask::parse(["*"]).unwrap(), FieldMask::all());
        assert!(FieldMask::parse(["settings.snip"]).is_err());
    }
}
