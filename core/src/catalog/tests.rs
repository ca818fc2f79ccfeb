//! The catalog: paths, slots, forms and masks.

use super::*;

#[test]
fn every_field_has_its_own_paths_and_a_slot_of_its_kind() {
    let mut json: Vec<&str> = Field::ALL.iter().map(|f| f.json_path()).collect();
    let mut proto: Vec<&str> = Field::ALL.iter().map(|f| f.proto_path()).collect();
    json.sort_unstable();
    proto.sort_unstable();
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
    assert_eq!(Field::under_json_path("settings.snippet").count(), 7);
    assert_eq!(Field::under_json_path("personality_config").count(), 2);
    assert_eq!(Field::under_json_path("settings.snip").count(), 0);
    assert_eq!(Field::under_json_path("name").count(), 0);
}

#[test]
fn forms_split_the_catalog_and_speak_relative_paths() {
    let (chatbot, widget, voice) = (Form::Chatbot.mask(), Form::ChatWidget.mask(), Form::VoiceAgent.mask());
    assert_eq!(chatbot.union(widget).union(voice), FieldMask::all());
    assert!(chatbot.intersection(voice).is_empty() && widget.intersection(voice).is_empty());
    assert!(!chatbot.contains(Field::SnippetLanguage) && widget.contains(Field::SnippetLanguage));
    assert_eq!(Form::ChatWidget.fields().count(), 7);
    assert_eq!(Form::VoiceAgent.fields().count(), 21);
    assert_eq!(Form::ChatWidget.path(Field::SnippetPrimaryColor), "primaryColor");
    assert_eq!(Form::VoiceAgent.field_at("appearance.buttonRadius"), Some(Field::VoiceButtonRadius));
    assert_eq!(Form::VoiceAgent.field_at("buttonRadius"), None);
    assert!(Form::VoiceAgent.is_object("vad") && !Form::VoiceAgent.is_object("voice"));
    assert_eq!(Form::Chatbot.path(Field::SnippetLogo), "settings.snippet.logo");
    let vad: Vec<Field> = Form::VoiceAgent.fields_under("vad").collect();
    assert_eq!(vad, [Field::VoicePrefixPaddingMs, Field::VoiceSilenceDurationMs, Field::VoiceThreshold]);
    assert_eq!(Form::VoiceAgent.fields_under("voice").count(), 0, "a field is not an object");
}

#[test]
fn a_forms_errors_name_paths_inside_its_body_and_keep_everything_else() {
    let violation =
        |field: &str| Violation { field: field.to_owned(), code: ViolationCode::OutOfRange, message: "too big".into() };
    let error = Error::Invalid {
        violations: vec![violation("voice_widget_config.appearance.cardRadius"), violation("description")],
    };
    let Error::Invalid { violations } = Form::VoiceAgent.localize(error) else { panic!("still invalid") };
    let fields: Vec<&str> = violations.iter().map(|v| v.field.as_str()).collect();
    assert_eq!(fields, ["appearance.cardRadius", "description"], "relative inside the body, whole outside it");
    assert!(violations.iter().all(|v| v.code == ViolationCode::OutOfRange && v.message == "too big"));
    assert!(matches!(Form::ChatWidget.localize(Error::NotFound), Error::NotFound), "other errors pass through");
}

#[test]
fn a_whole_number_fits_a_number_slot_but_not_the_other_way() {
    let mut draft = ChatbotDraft::default();
    draft.slot(Field::VoiceTemperature).put(Some(Value::Integer(1))).unwrap();
    assert_eq!(draft.voice.temperature, Some(1.0));
    let refused = draft.slot(Field::VoiceButtonRadius).put(Some(Value::Number(1.5))).unwrap_err();
    assert_eq!(refused.message, "must be a whole number, not a number");
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
