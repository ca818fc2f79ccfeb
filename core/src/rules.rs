//! The creation and update rules: which fields exist, their defaults, and how a [`ChatbotDraft`]
//! becomes a checked [`ChatbotConfig`] with every violation reported at once.

use crate::catalog::{Field, FieldMask};
use crate::chatbot::{ChatbotConfig, ChatbotDraft, Personality, Settings, Snippet};
use crate::domain::{BoundedText, ChatbotName, HexColor, LogoUrl, Model, OpenAiKey, Rejection, Slug};
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
}

/// The models a deployment lets chatbots use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelAllowList(Vec<String>);

impl ModelAllowList {
    /// An allow-list of exactly these models (blank entries are ignored; an empty list means the
    /// built-in default list).
    pub fn new<S: AsRef<str>>(models: impl IntoIterator<Item = S>) -> Self {
        let models: Vec<String> =
            models.into_iter().map(|m| m.as_ref().trim().to_owned()).filter(|m| !m.is_empty()).collect();
        if models.is_empty() { ModelAllowList::default() } else { ModelAllowList(models) }
    }

    /// The model a chatbot gets when it names none: `gpt-4o-mini` if allowed, else the first allowed.
    pub fn default_model(&self) -> Model {
        let name = self.0.iter().find(|m| *m == defaults::MODEL).or(self.0.first());
        name.and_then(|m| Model::parse(m).ok())
            .unwrap_or_else(|| Model::parse(defaults::MODEL).expect("the default model name is valid"))
    }

    /// Accepts a model only if it is on the list.
    pub fn parse(&self, value: &str) -> Result<Model, Rejection> {
        if self.0.iter().any(|m| m == value) {
            Model::parse(value)
        } else {
            Err(Rejection::new(ViolationCode::NotAllowed, format!("must be one of: {}", self.0.join(", "))))
        }
    }

    /// The allowed models, in configured order.
    pub fn models(&self) -> &[String] {
        &self.0
    }
}

impl Default for ModelAllowList {
    fn default() -> Self {
        ModelAllowList(defaults::MODELS.iter().map(|m| (*m).to_owned()).collect())
    }
}

/// The deployment's rules for chatbot configurations.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    /// Models chatbots may use.
    pub models: ModelAllowList,
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
                    |v| self.models.parse(v),
                    || self.models.default_model(),
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
                },
            },
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

/// The default of a text field (defaults are short constants, always within bounds).
fn text<const MAX: usize>(default: &'static str) -> impl FnOnce() -> BoundedText<MAX> {
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
        let value_of_len = |field: Field, len: usize| {
            if field == Field::SnippetLogo {
                format!("https://e.com/{}", "a".repeat(len - 14))
            } else {
                "a".repeat(len)
            }
        };
        let draft_with = |field: Field, len: usize| {
            let mut draft = named("Limits");
            draft.slot(field).put(Some(Value::Text(value_of_len(field, len)))).unwrap();
            draft
        };
        let mut checked = 0;
        for field in Field::ALL.into_iter().filter(|f| *f != Field::Model) {
            let (Limit::Chars(max) | Limit::Bytes(max)) = field.spec().limit else { continue };
            let at_limit = Rules::default().check(None, &draft_with(field, max), FieldMask::all());
            assert!(at_limit.is_ok(), "{field:?} at {max}: {at_limit:?}");
            let past = violations(Rules::default().check(None, &draft_with(field, max + 1), FieldMask::all()));
            assert_eq!(past, vec![(field.json_path().to_owned(), ViolationCode::TooLong)], "{field:?}");
            checked += 1;
        }
        assert_eq!(checked, 12);
    }

    #[test]
    fn the_model_allow_list_is_configurable() {
        let rules = Rules { models: ModelAllowList::new(["my-model"]) };
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
