//! Reading a contract request body into the gRPC `Chatbot` message. Every problem of shape is
//! collected with its JSON path, all at once: a field the contract does not know (so a typo never
//! vanishes), a field the service sets itself, and a value of the wrong JSON type.

use grpc_server::pb;
use serde_json::{Map, Value};

use crate::error::FieldViolation;
use crate::extract::json_type;

/// Which request the body belongs to: each accepts a slightly different set of top-level fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// `POST /api/external/chatbots`: the documented create fields plus `openai_api_key`.
    Create,
    /// `PATCH /api/external/chatbot/{id}`: the create fields plus `active`.
    Update,
    /// `PATCH /api/external/chatbots`: as `Update`, plus the target's `id`.
    UpdateById,
}

/// Fields of the read model that the service sets itself.
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
    pub chatbot: pb::Chatbot,
    /// The protobuf paths of every field present, `null` included: the update mask of a PATCH.
    pub present: Vec<String>,
    /// Problems of shape, each with its JSON path.
    pub violations: Vec<FieldViolation>,
}

/// Reads a chatbot body for `target`.
pub fn read_chatbot(map: &Map<String, Value>, target: Target) -> ChatbotBody {
    let mut body = ChatbotBody::default();
    let mut chatbot = pb::Chatbot::default();
    for (key, value) in map {
        let field = Leaf { json: key.clone(), proto: key.clone(), value };
        match key.as_str() {
            "name" => chatbot.name = body.text(field),
            "slug" => chatbot.slug = body.text(field),
            "description" => chatbot.description = body.text(field),
            "openai_api_key" => chatbot.openai_api_key = body.text(field),
            "is_public" => chatbot.is_public = body.flag(field),
            "active" if target != Target::Create => chatbot.active = body.flag(field),
            "id" if target == Target::UpdateById => chatbot.id = body.text(field).unwrap_or_default(),
            "personality_config" => {
                chatbot.personality_config = body.object(field).map(|(map, at)| body.personality(map, &at));
            }
            "settings" => chatbot.settings = body.object(field).map(|(map, at)| body.settings(map, &at)),
            other if READ_ONLY.contains(&other) => body.refuse(other, "read_only", "is set by the service"),
            other => body.refuse(other, "unknown_field", "is not a field of this request"),
        }
    }
    body.chatbot = chatbot;
    body
}

/// One field of the body: where it is, in both spellings, and its value.
struct Leaf<'v> {
    json: String,
    proto: String,
    value: &'v Value,
}

/// The JSON and protobuf paths of a nested object, to prefix its fields with.
struct At {
    json: String,
    proto: String,
}

impl At {
    fn leaf<'v>(&self, json: &str, proto: &str, value: &'v Value) -> Leaf<'v> {
        Leaf { json: format!("{}.{json}", self.json), proto: format!("{}.{proto}", self.proto), value }
    }
}

impl ChatbotBody {
    fn personality(&mut self, map: &Map<String, Value>, at: &At) -> pb::PersonalityConfig {
        let mut personality = pb::PersonalityConfig::default();
        for (key, value) in map {
            match key.as_str() {
                "style" => personality.style = self.text(at.leaf(key, key, value)),
                "tone" => personality.tone = self.text(at.leaf(key, key, value)),
                other => {
                    self.refuse(&format!("{}.{other}", at.json), "unknown_field", "is not a field of this request")
                }
            }
        }
        personality
    }

    fn settings(&mut self, map: &Map<String, Value>, at: &At) -> pb::Settings {
        let mut settings = pb::Settings::default();
        for (key, value) in map {
            match key.as_str() {
                "greeting" => settings.greeting = self.text(at.leaf(key, key, value)),
                "isRequestUserInfoEnabled" => {
                    settings.is_request_user_info_enabled =
                        self.flag(at.leaf(key, "is_request_user_info_enabled", value));
                }
                "isToolEnabled" => settings.is_tool_enabled = self.flag(at.leaf(key, "is_tool_enabled", value)),
                "model" => settings.model = self.text(at.leaf(key, key, value)),
                "prompt" => settings.prompt = self.text(at.leaf(key, key, value)),
                "snippet" => {
                    settings.snippet = self.object(at.leaf(key, key, value)).map(|(map, at)| self.snippet(map, &at));
                }
                other => {
                    self.refuse(&format!("{}.{other}", at.json), "unknown_field", "is not a field of this request")
                }
            }
        }
        settings
    }

    fn snippet(&mut self, map: &Map<String, Value>, at: &At) -> pb::Snippet {
        let mut snippet = pb::Snippet::default();
        for (key, value) in map {
            match key.as_str() {
                "header" => snippet.header = self.text(at.leaf(key, key, value)),
                "logo" => snippet.logo = self.text(at.leaf(key, key, value)),
                "name" => snippet.name = self.text(at.leaf(key, key, value)),
                "primaryColor" => snippet.primary_color = self.text(at.leaf(key, "primary_color", value)),
                "secondaryColor" => snippet.secondary_color = self.text(at.leaf(key, "secondary_color", value)),
                "slogan" => snippet.slogan = self.text(at.leaf(key, key, value)),
                other => {
                    self.refuse(&format!("{}.{other}", at.json), "unknown_field", "is not a field of this request")
                }
            }
        }
        snippet
    }

    /// A string field; `null` leaves it unset.
    #[allow(clippy::wildcard_enum_match_arm, reason = "any other JSON type is the wrong one")]
    fn text(&mut self, leaf: Leaf<'_>) -> Option<String> {
        match leaf.value {
            Value::String(text) => self.accept(leaf.proto, Some(text.clone())),
            Value::Null => self.accept(leaf.proto, None),
            other => self.wrong_type(&leaf.json, "a string", other),
        }
    }

    /// A boolean field; `null` leaves it unset.
    #[allow(clippy::wildcard_enum_match_arm, reason = "any other JSON type is the wrong one")]
    fn flag(&mut self, leaf: Leaf<'_>) -> Option<bool> {
        match leaf.value {
            Value::Bool(flag) => self.accept(leaf.proto, Some(*flag)),
            Value::Null => self.accept(leaf.proto, None),
            other => self.wrong_type(&leaf.json, "a boolean", other),
        }
    }

    /// A nested object, with the paths to read its fields at; `null` resets all of its fields.
    #[allow(clippy::wildcard_enum_match_arm, reason = "any other JSON type is the wrong one")]
    fn object<'v>(&mut self, leaf: Leaf<'v>) -> Option<(&'v Map<String, Value>, At)> {
        match leaf.value {
            Value::Object(map) => Some((map, At { json: leaf.json, proto: leaf.proto })),
            Value::Null => self.accept(leaf.proto, None),
            other => self.wrong_type(&leaf.json, "an object", other),
        }
    }

    fn accept<T>(&mut self, proto_path: String, value: Option<T>) -> Option<T> {
        self.present.push(proto_path);
        value
    }

    fn wrong_type<T>(&mut self, path: &str, expected: &str, found: &Value) -> Option<T> {
        let message = format!("must be {expected}, not {}", json_type(found));
        self.violations.push(FieldViolation::new(path, "wrong_type", message));
        None
    }

    fn refuse(&mut self, path: &str, code: &str, message: &str) {
        self.violations.push(FieldViolation::new(path, code, message));
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
    fn nested_fields_are_read_with_their_protobuf_paths() {
        let body = read(json!({"name": "Bot", "settings": {"snippet": {"primaryColor": "#000"}}}), Target::Update);
        assert!(body.violations.is_empty());
        assert_eq!(body.present, ["name", "settings.snippet.primary_color"]);
        let snippet = body.chatbot.settings.and_then(|s| s.snippet).expect("a snippet");
        assert_eq!(snippet.primary_color.as_deref(), Some("#000"));
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
    fn null_marks_a_field_present_but_unset() {
        let body = read(json!({"description": null, "settings": null}), Target::Update);
        assert_eq!(body.present, ["description", "settings"]);
        assert_eq!(body.chatbot.description, None);
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
                for target in [Target::Create, Target::Update, Target::UpdateById] {
                    let read = read_chatbot(&map, target);
                    proptest::prop_assert!(read.violations.iter().all(|v| !v.field.is_empty() && !v.code.is_empty()));
                }
            }
        }
    }

    #[test]
    fn active_and_id_are_accepted_only_where_they_belong() {
        assert_eq!(codes(&read(json!({"active": false}), Target::Create)), [("active", "unknown_field")]);
        assert!(read(json!({"active": false}), Target::Update).violations.is_empty());
        assert_eq!(codes(&read(json!({"id": "x"}), Target::Update)), [("id", "read_only")]);
        assert_eq!(read(json!({"id": "x"}), Target::UpdateById).chatbot.id, "x");
    }
}
