//! Reading a contract request body into a core draft, field by field through the core's catalog.
//! Every problem of shape is collected with its JSON path, all at once: a field the contract does not
//! know (so a typo never vanishes), a field the service sets itself, and a value of the wrong JSON type.

use chatbot_core::{ChatbotDraft, Field, FieldMask, Form, Kind, Value as FieldValue, Violation, ViolationCode};
use serde_json::{Map, Number, Value};

/// Which request the body belongs to: each accepts a slightly different set of fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// `POST /api/external/chatbots`: the documented create fields plus `openai_api_key`; not `active`.
    Create,
    /// `PATCH /api/external/chatbot/{id}` and `PATCH /api/external/chatbots`: every chatbot field.
    Update,
    /// `PATCH /api/external/chatbot/{id}/chat-widget`.
    ChatWidget,
    /// `PATCH /api/external/chatbot/{id}/voice-agent`.
    VoiceAgent,
}

impl Target {
    /// The catalog's view of the body.
    pub fn form(self) -> Form {
        match self {
            Target::Create | Target::Update => Form::Chatbot,
            Target::ChatWidget => Form::ChatWidget,
            Target::VoiceAgent => Form::VoiceAgent,
        }
    }

    fn accepts(self, field: Field) -> bool {
        self.form().sets(field) && (self != Target::Create || field != Field::Active)
    }
}

/// Fields of the contract's read model that the service sets itself.
const READ_ONLY: &[&str] = &[
    "id",
    "organization_id",
    "created_at",
    "updated_at",
    "migrated_data",
    "docs_metadata",
    "enabled_plugins",
    "managers",
    "suggestions",
    "v1_chatbot_id",
    "version_id",
    "voice_widget_config",
];

/// A body read as far as its shape allows.
#[derive(Debug, Default)]
pub struct ChatbotBody {
    /// The values given (a `null` leaves a field unset).
    pub draft: ChatbotDraft,
    /// Every field present, `null` included (a `null` object counts for all of its fields): the
    /// update mask of a PATCH.
    pub present: FieldMask,
    /// Problems of shape, each with its JSON path.
    pub violations: Vec<Violation>,
}

/// Reads a body for `target`: the chatbot's, or one of its widgets'.
pub fn read_chatbot(map: &Map<String, Value>, target: Target) -> ChatbotBody {
    let mut body = ChatbotBody::default();
    body.read_object(map, "", target);
    body
}

impl ChatbotBody {
    fn read_object(&mut self, map: &Map<String, Value>, at: &str, target: Target) {
        let form = target.form();
        for (key, value) in map {
            let path = if at.is_empty() { key.clone() } else { format!("{at}.{key}") };
            if let Some(field) = form.field_at(&path).filter(|f| target.accepts(*f)) {
                self.read_field(field, &path, value);
            } else if form.is_object(&path) {
                if let Value::Object(inner) = value {
                    self.read_object(inner, &path, target);
                } else if value.is_null() {
                    form.fields_under(&path).filter(|f| target.accepts(*f)).for_each(|f| self.present.insert(f));
                } else {
                    self.wrong_type(path, "an object", value);
                }
            } else if at.is_empty() && form == Form::Chatbot && READ_ONLY.contains(&key.as_str()) {
                self.violations.push(Violation::new(path, ViolationCode::ReadOnly, "is set by the service"));
            } else {
                self.violations.push(Violation::new(
                    path,
                    ViolationCode::UnknownField,
                    "is not a field of this request",
                ));
            }
        }
    }

    /// A field's value at `path`; `null` marks it present but unset (reset to its default on update).
    #[allow(clippy::wildcard_enum_match_arm, reason = "any other JSON type is the wrong one")]
    fn read_field(&mut self, field: Field, path: &str, value: &Value) {
        let value = match (field.spec().kind, value) {
            (_, Value::Null) => None,
            (Kind::Text, Value::String(text)) => Some(FieldValue::Text(text.clone())),
            (Kind::Flag, Value::Bool(flag)) => Some(FieldValue::Flag(*flag)),
            (Kind::Integer, Value::Number(number)) if whole(number).is_some() => whole(number).map(FieldValue::Integer),
            (Kind::Number, Value::Number(number)) => number.as_f64().map(FieldValue::Number),
            (kind, other) => return self.wrong_type(path.to_owned(), kind.described(), other),
        };
        self.present.insert(field);
        if let Err(rejection) = self.draft.slot(field).put(value) {
            self.violations.push(rejection.at(path));
        }
    }

    fn wrong_type(&mut self, path: String, expected: &str, found: &Value) {
        let message = format!("must be {expected}, not {}", json_type(found));
        self.violations.push(Violation::new(path, ViolationCode::WrongType, message));
    }
}

/// A JSON number as a whole number: beyond `i64` it saturates, so that the rules call it out of range
/// rather than of the wrong type; `1.5` is none.
#[allow(clippy::cast_possible_truncation, reason = "saturating on purpose, and only for whole numbers")]
fn whole(number: &Number) -> Option<i64> {
    number.as_i64().or_else(|| number.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
}

/// The JSON type of a value, for messages.
pub fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn read(body: Value, target: Target) -> ChatbotBody {
        read_chatbot(body.as_object().expect("an object"), target)
    }

    fn codes(body: &ChatbotBody) -> Vec<(&str, &str)> {
        body.violations.iter().map(|v| (v.field.as_str(), v.code.as_str())).collect()
    }

    #[test]
    fn nested_fields_are_read_into_their_catalog_fields() {
        let body = read(json!({"name": "Bot", "settings": {"snippet": {"primaryColor": "#000"}}}), Target::Update);
        assert!(body.violations.is_empty());
        assert_eq!(body.present, [Field::Name, Field::SnippetPrimaryColor].into_iter().collect());
        assert_eq!(body.draft.settings.snippet.primary_color.as_deref(), Some("#000"));
    }

    #[test]
    fn unknown_read_only_and_mistyped_fields_are_all_reported() {
        let body = read(
            json!({"nmae": "x", "organization_id": "y", "is_public": "yes", "settings": {"snippet": {"logo": 3, "colour": "#fff"}}}),
            Target::Create,
        );
        let mut found = codes(&body);
        found.sort();
        assert_eq!(
            found,
            [
                ("is_public", "wrong_type"),
                ("nmae", "unknown_field"),
                ("organization_id", "read_only"),
                ("settings.snippet.colour", "unknown_field"),
                ("settings.snippet.logo", "wrong_type"),
            ]
        );
    }

    #[test]
    fn null_marks_a_field_present_but_unset_and_a_null_object_all_of_its_fields() {
        let body = read(json!({"description": null, "personality_config": null}), Target::Update);
        let expected = [Field::Description, Field::PersonalityStyle, Field::PersonalityTone].into_iter().collect();
        assert_eq!(body.present, expected);
        assert_eq!(body.draft.description, None);
    }

    #[test]
    fn every_catalog_field_is_read_at_its_path_in_its_form() {
        let mut read_fields = FieldMask::EMPTY;
        for target in [Target::Update, Target::ChatWidget, Target::VoiceAgent] {
            for field in target.form().fields() {
                let mut body = json!({});
                let parts: Vec<&str> = target.form().path(field).split('.').collect();
                let mut at = &mut body;
                for part in &parts[..parts.len() - 1] {
                    at = at.as_object_mut().expect("an object").entry(*part).or_insert_with(|| json!({}));
                }
                at[parts[parts.len() - 1]] = match field.spec().kind {
                    Kind::Text => json!("text"),
                    Kind::Flag => json!(true),
                    Kind::Integer => json!(7),
                    Kind::Number => json!(0.5),
                };
                let read = read(body, target);
                assert!(read.violations.is_empty(), "{field:?}: {:?}", read.violations);
                assert_eq!(read.present, [field].into_iter().collect(), "{field:?}");
                read_fields.insert(field);
            }
        }
        assert_eq!(read_fields, FieldMask::all(), "every field is read by some body");
    }

    #[test]
    fn widget_bodies_speak_paths_relative_to_themselves() {
        let body = read(
            json!({"appearance": {"buttonRadius": 1.5, "cardRadius": 1e30}, "vad": {"threshold": "high"}, "name": "x"}),
            Target::VoiceAgent,
        );
        let mut found = codes(&body);
        found.sort();
        assert_eq!(
            found,
            [("appearance.buttonRadius", "wrong_type"), ("name", "unknown_field"), ("vad.threshold", "wrong_type")]
        );
        assert_eq!(body.draft.voice.card_radius, Some(i64::MAX), "a huge whole number saturates");
        let widget = read(json!({"primaryColor": "#000", "language": "pt-BR", "settings": {}}), Target::ChatWidget);
        assert_eq!(codes(&widget), [("settings", "unknown_field")]);
        assert_eq!(widget.present, [Field::SnippetPrimaryColor, Field::SnippetLanguage].into_iter().collect());
    }

    #[test]
    fn the_chatbot_body_does_not_take_the_widgets_own_fields() {
        let body =
            read(json!({"settings": {"snippet": {"language": "en"}}, "voice_widget_config": {}}), Target::Update);
        assert_eq!(
            codes(&body),
            [("settings.snippet.language", "unknown_field"), ("voice_widget_config", "read_only")]
        );
        let reset = read(json!({"settings": {"snippet": null}}), Target::Update);
        assert!(!reset.present.contains(Field::SnippetLanguage) && reset.present.contains(Field::SnippetSlogan));
    }

    /// Any JSON value, nested up to a few levels, with keys drawn partly from the contract's names.
    fn any_json() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let key = prop_oneof![
            Just("name".to_owned()),
            Just("settings".to_owned()),
            Just("snippet".to_owned()),
            Just("primaryColor".to_owned()),
            Just("personality_config".to_owned()),
            "[a-zA-Z_]{1,12}",
        ];
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            "\\PC{0,20}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 64, 8, move |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::btree_map(key.clone(), inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        #[test]
        fn any_body_is_read_without_panic_and_every_problem_names_a_path(body in any_json()) {
            if let Value::Object(map) = body {
                for target in [Target::Create, Target::Update, Target::ChatWidget, Target::VoiceAgent] {
                    let read = read_chatbot(&map, target);
                    proptest::prop_assert!(read.violations.iter().all(|v| !v.field.is_empty()));
                }
            }
        }
    }

    #[test]
    fn active_is_accepted_only_on_update_and_id_never() {
        assert_eq!(codes(&read(json!({"active": false}), Target::Create)), [("active", "unknown_field")]);
        assert!(read(json!({"active": false}), Target::Update).violations.is_empty());
        assert_eq!(codes(&read(json!({"id": "x"}), Target::Update)), [("id", "read_only")]);
    }
}
