//! The rules, field by field: each accepted at its limit and refused one past it, defaults, masks.

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
    assert_eq!(config.settings.model.as_str(), "gpt-4o-mini", "the documented default model");
    assert_eq!(config.settings.snippet.primary_color.as_str(), "#4F46E5", "the contract's default colour");
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
    assert_eq!(proposal.config.description.as_str(), "", "null resets to the documented empty description");
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
            assert_eq!(found, vec![(field.json_path().to_owned(), ViolationCode::OutOfRange)], "{field:?} at {past}");
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
    let untouched = rules.check(Some(&stored), &ChatbotDraft::default(), FieldMask::parse(["description"]).unwrap());
    assert_eq!(untouched.unwrap().config.voice, None);

    let mut patch = ChatbotDraft::default();
    patch.voice.button_radius = Some(10);
    let mask = FieldMask::parse(["voice_widget_config.appearance.buttonRadius"]).unwrap();
    let voice = rules.check(Some(&stored), &patch, mask).unwrap().config.voice.expect("configured");
    assert_eq!(voice.appearance.button_radius.get(), 10);
    assert_eq!(voice.appearance.card_radius.get(), 20, "the documented card radius");
    assert_eq!(voice.voice.as_str(), "shimmer", "the documented voice");
    assert_eq!(voice.vad.threshold.get(), 0.8, "the documented VAD threshold");
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

#[test]
fn an_allow_list_keeps_the_given_names_trimmed_in_order_or_else_the_builtin_ones() {
    let given = AllowList::new([" house-1", "", "gpt-4o-mini ", "  "], &["builtin"], "gpt-4o-mini");
    assert_eq!(given.entries(), ["house-1", "gpt-4o-mini"]);
    assert_eq!(given.default_entry(), "gpt-4o-mini", "the preferred entry when it is allowed");
    let without_preferred = AllowList::new(["house-1", "house-2"], &["builtin"], "gpt-4o-mini");
    assert_eq!(without_preferred.default_entry(), "house-1", "else the first");
    let empty = AllowList::new(Vec::<String>::new(), &["a", "b"], "b");
    assert_eq!(empty.entries(), ["a", "b"]);
    assert!(empty.check("a").is_ok() && empty.check("c").is_err());
}
