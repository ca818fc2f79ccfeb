//! Configuration history: every committed change of a chatbot is a [`Revision`], written in the same
//! atomic write as the change itself, its change-log event and its idempotency claim. The current
//! record is the head revision's content, so a create stores no second copy; an update keeps the
//! content it replaces as the previous revision's snapshot. Revisions can be listed, read, diffed
//! (RFC 6902) and restored; the engines prune old ones by [`HistoryRetention`].

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::avatar::AvatarRef;
use crate::changes::ChangeKind;
use crate::chatbot::Chatbot;
use crate::domain::{BoundedText, ChatbotId, KeyId, OrgId, Rejection, Timestamp, VersionId};
use crate::error::ViolationCode;

/// Most characters of a change note.
pub const MAX_NOTE_CHARS: usize = 500;

/// Why a change was made, as its author says it (`X-Change-Note`): one line, up to
/// [`MAX_NOTE_CHARS`] characters.
pub type ChangeNote = BoundedText<MAX_NOTE_CHARS>;

/// Who made a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Actor {
    /// A caller of either face, let in by the API key `id`.
    ApiKey {
        /// The key's id (as the admin API lists it), never the key.
        id: KeyId,
    },
    /// The admin API (an import, a restore by an operator).
    Admin,
    /// A program embedding the core, calling the [`Registry`](crate::Registry) directly.
    Embedded,
    /// Not recorded: the change was made before the store kept history.
    Unrecorded,
}

/// Who made a change, on which request, and why: what a revision records beside its content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    /// Who.
    pub actor: Actor,
    /// The request it came in (REST `x-request-id`, gRPC metadata of the same name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Why, if the author said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<ChangeNote>,
}

impl Provenance {
    /// A change by a program embedding the core, with no request and no note.
    pub fn embedded() -> Self {
        Provenance { actor: Actor::Embedded, request_id: None, note: None }
    }

    /// A change let in by the API key `key`, on request `request_id` (kept only if it is one a face
    /// would keep, see [`request_id_is_valid`](crate::request_id_is_valid)), with `note`.
    pub fn api_key(key: KeyId, request_id: Option<&str>, note: Option<ChangeNote>) -> Self {
        let request_id = request_id.filter(|id| crate::request_id_is_valid(id)).map(str::to_owned);
        Provenance { actor: Actor::ApiKey { id: key }, request_id, note }
    }
}

/// Parses a change note as a face received it: one line of printable text, up to [`MAX_NOTE_CHARS`].
pub fn parse_note(note: &str) -> Result<ChangeNote, Rejection> {
    if note.trim().is_empty() {
        return Err(Rejection::new(ViolationCode::InvalidFormat, "must not be blank"));
    }
    ChangeNote::parse(note)
}

/// One committed change of a chatbot: what it was, who made it and why. Its content is a
/// [`RevisionSnapshot`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revision {
    /// Which chatbot.
    pub chatbot_id: ChatbotId,
    /// Its organisation.
    pub organization_id: OrgId,
    /// The chatbot's revision number after the change: 1 for its create, then one more per change
    /// (the number its entity tag carries).
    pub revision: u64,
    /// This revision's own id.
    pub version_id: VersionId,
    /// What the change did.
    pub kind: ChangeKind,
    /// When it was committed.
    pub create_time: Timestamp,
    /// Who made it, on which request, and why.
    #[serde(flatten)]
    pub provenance: Provenance,
    /// The paths (as the Details endpoint names them, dot-separated) whose values it changed; empty
    /// for a create.
    pub changed: Vec<String>,
    /// For a restore: the revision whose content it brought back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored_from: Option<u64>,
    /// The avatar image its content points at, so that pruning knows which images it still needs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar: Option<AvatarRef>,
}

impl Revision {
    /// The revision that turns `before` (none for a create) into `after`, made by `provenance`.
    pub fn of(
        kind: ChangeKind,
        before: Option<&Chatbot>,
        after: &Chatbot,
        provenance: Provenance,
        restored_from: Option<u64>,
    ) -> Self {
        Revision {
            chatbot_id: after.id,
            organization_id: after.organization_id,
            revision: after.revision,
            version_id: VersionId::new_random(),
            kind,
            create_time: after.updated_at,
            provenance,
            changed: before.map(|before| changed_paths(before, after)).unwrap_or_default(),
            restored_from,
            avatar: after.config.settings.avatar,
        }
    }

    /// The revision of `chatbot` as it is, made before the store kept history: what an engine records
    /// for a head it finds without one.
    /// Its version id is derived from the chatbot and the revision, so that it is the same however
    /// often it is made.
    pub fn unrecorded(chatbot: &Chatbot) -> Self {
        let name = [chatbot.id.as_bytes().as_slice(), &chatbot.revision.to_be_bytes()].concat();
        Revision {
            chatbot_id: chatbot.id,
            organization_id: chatbot.organization_id,
            revision: chatbot.revision,
            version_id: VersionId::derived(&name),
            kind: if chatbot.revision == 1 { ChangeKind::Created } else { ChangeKind::Updated },
            create_time: chatbot.updated_at,
            provenance: Provenance { actor: Actor::Unrecorded, request_id: None, note: None },
            changed: Vec::new(),
            restored_from: None,
            avatar: chatbot.config.settings.avatar,
        }
    }
}

/// A revision with its content: the chatbot as the Details endpoint showed it right after the change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevisionSnapshot {
    /// The revision.
    pub revision: Revision,
    /// Its content.
    pub chatbot: Chatbot,
}

/// A revision as an engine stores it: the head revision's content is the current record (`None`
/// here), an older one's is kept beside it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredRevision {
    /// The revision.
    #[serde(flatten)]
    pub revision: Revision,
    /// Its content, once it is no longer the head.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<Box<Chatbot>>,
}

/// A deleted chatbot, kept (with its history, its slug reserved against other organisations) for
/// undelete until its purge time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletedChatbot {
    /// Its last content, as it was before the delete.
    pub chatbot: Chatbot,
    /// When it was deleted.
    pub delete_time: Timestamp,
    /// When it is purged, unless it is undeleted first.
    pub purge_time: Timestamp,
}

impl DeletedChatbot {
    /// `chatbot` deleted now, to be purged after `keep_for`, and the revision (`deleted`, with its
    /// content) that records the delete.
    pub fn of(chatbot: Chatbot, keep_for: Duration, provenance: Provenance) -> (DeletedChatbot, StoredRevision) {
        let gone = chatbot.next(chatbot.config.clone());
        let revision = Revision::of(ChangeKind::Deleted, Some(&chatbot), &gone, provenance, None);
        let delete_time = gone.updated_at;
        let keep_for = i64::try_from(keep_for.as_micros()).unwrap_or(i64::MAX);
        let purge_time = Timestamp::from_micros(delete_time.as_micros().saturating_add(keep_for));
        let stored = StoredRevision { revision, snapshot: Some(Box::new(gone)) };
        (DeletedChatbot { chatbot, delete_time, purge_time }, stored)
    }

    /// The chatbot brought back with `slug` (its own when `None`), and the revision (`undeleted`)
    /// that records it: two revisions after its last content (the delete was one).
    pub fn undeleted(&self, slug: Option<crate::domain::Slug>, provenance: Provenance) -> (Chatbot, Revision) {
        let gone = self.chatbot.next(self.chatbot.config.clone());
        let mut config = self.chatbot.config.clone();
        if let Some(slug) = slug {
            config.slug = slug;
        }
        let back = gone.next(config);
        let revision = Revision::of(ChangeKind::Undeleted, Some(&gone), &back, provenance, None);
        (back, revision)
    }

    /// Whether it keeps `slug` from a chatbot of `org` at `now`: only another organisation's, and only
    /// until its purge time.
    pub fn reserves(&self, org: OrgId, now: Timestamp) -> bool {
        self.chatbot.organization_id != org && now < self.purge_time
    }
}

/// Which revision a caller names: its number, or its `version_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevisionRef {
    /// The revision number (1 is the create).
    Number(u64),
    /// The revision's `version_id`.
    Version(VersionId),
}

impl RevisionRef {
    /// A revision as a path names it: a number from 1, or a `version_id`; anything else names none.
    pub fn parse(text: &str) -> Option<RevisionRef> {
        match text.parse::<u64>() {
            Ok(0) => None,
            Ok(number) if text.bytes().all(|b| b.is_ascii_digit()) && !text.starts_with('0') => {
                Some(RevisionRef::Number(number))
            }
            Ok(_) => None,
            Err(_) => text.parse().ok().map(RevisionRef::Version),
        }
    }
}

/// One page of a chatbot's revisions.
#[derive(Debug, Clone)]
pub struct RevisionPage {
    /// Newest first.
    pub revisions: Vec<Revision>,
    /// The revision number the next page starts below; `None` on the last page.
    pub next: Option<u64>,
}

/// What a diff between two revisions says.
#[derive(Debug, Clone, PartialEq)]
pub struct RevisionDiff {
    /// The revision the patch applies to.
    pub from: Revision,
    /// The revision the patch makes of it.
    pub to: Revision,
    /// The RFC 6902 JSON Patch from `from`'s Details object to `to`'s.
    pub patch: json_patch::Patch,
}

/// How long history is kept: the newest [`keep`](HistoryRetention::keep) revisions of each chatbot
/// and every revision younger than [`max_age`](HistoryRetention::max_age), whichever keeps more;
/// the head always.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryRetention {
    /// Revisions kept per chatbot, whatever their age.
    pub keep: usize,
    /// Revisions younger than this are kept, however many.
    pub max_age: Duration,
}

/// Revisions kept per chatbot by default.
pub const DEFAULT_HISTORY_KEEP: usize = 50;
/// How long revisions are kept by default: 90 days.
pub const DEFAULT_HISTORY_MAX_AGE: Duration = Duration::from_secs(90 * 24 * 60 * 60);

impl Default for HistoryRetention {
    fn default() -> Self {
        HistoryRetention { keep: DEFAULT_HISTORY_KEEP, max_age: DEFAULT_HISTORY_MAX_AGE }
    }
}

/// What pruning one chatbot's history forgets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pruning {
    /// The revision numbers to forget.
    pub revisions: Vec<u64>,
    /// The avatar images only those revisions pointed at.
    pub images: Vec<AvatarRef>,
}

impl HistoryRetention {
    /// What to forget of a chatbot's `revisions` (newest first, the head among them), seen at `now`;
    /// never the `published` one.
    pub fn prune(&self, revisions: &[Revision], published: Option<u64>, now: Timestamp) -> Pruning {
        let max_age = i64::try_from(self.max_age.as_micros()).unwrap_or(i64::MAX);
        let young_from = now.as_micros().saturating_sub(max_age);
        let keep = self.keep.max(1);
        let mut kept = Vec::new();
        let mut dropped = Vec::new();
        for (index, revision) in revisions.iter().enumerate() {
            if index < keep || revision.create_time.as_micros() >= young_from || published == Some(revision.revision) {
                kept.push(revision);
            } else {
                dropped.push(revision);
            }
        }
        let mut images: Vec<AvatarRef> = dropped
            .iter()
            .filter_map(|revision| revision.avatar)
            .filter(|image| !kept.iter().any(|kept| kept.avatar == Some(*image)))
            .collect();
        images.sort_by_key(|image| *image.id.as_uuid());
        images.dedup();
        Pruning { revisions: dropped.iter().map(|revision| revision.revision).collect(), images }
    }
}

/// The chatbot as the Details endpoint shows it, as JSON, its public URLs under `public_url`.
pub fn details(chatbot: &Chatbot, public_url: &str) -> serde_json::Value {
    serde_json::to_value(crate::view::ChatbotJson::new(chatbot, public_url)).unwrap_or_default()
}

/// The RFC 6902 patch from `from`'s Details object to `to`'s.
pub fn diff(from: &Chatbot, to: &Chatbot, public_url: &str) -> json_patch::Patch {
    json_patch::diff(&details(from, public_url), &details(to, public_url))
}

/// The paths whose values differ between `before` and `after`, as the Details endpoint names them
/// (dot-separated, sorted), its `updated_at` aside. A secret counts as changed even when its mask
/// does not.
pub fn changed_paths(before: &Chatbot, after: &Chatbot) -> Vec<String> {
    let patch = diff(before, after, "");
    let mut paths: Vec<String> = patch
        .0
        .iter()
        .map(|operation| {
            let pointer = operation.path().to_string();
            pointer.trim_start_matches('/').split('/').map(unescape_pointer).collect::<Vec<_>>().join(".")
        })
        .filter(|path| path != "updated_at")
        .collect();
    if before.config.openai_api_key != after.config.openai_api_key {
        paths.push("openai_api_key".into());
    }
    paths.sort();
    paths.dedup();
    paths
}

/// One JSON Pointer reference token, unescaped (RFC 6901).
fn unescape_pointer(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn revision(number: u64, age_days: i64, avatar: Option<AvatarRef>, now: Timestamp) -> Revision {
        let draft = crate::chatbot::ChatbotDraft { name: Some("Support".into()), ..Default::default() };
        let rules = crate::rules::Rules::default();
        let config = rules.check(None, &draft, crate::rules::Rules::create_mask(&draft)).expect("valid").config;
        let chatbot = Chatbot::new(OrgId::new_random(), config);
        let mut revision = Revision::unrecorded(&chatbot);
        revision.revision = number;
        revision.create_time = Timestamp::from_micros(now.as_micros() - age_days * 86_400_000_000);
        revision.avatar = avatar;
        revision
    }

    #[test]
    fn retention_keeps_the_newest_and_the_young_whichever_keeps_more() {
        let now = Timestamp::now();
        let retention = HistoryRetention { keep: 2, max_age: Duration::from_secs(10 * 86_400) };
        // Newest first: 6 and 5 are the newest two; of the rest, only 3 is young.
        let revisions: Vec<Revision> = [(6, 1), (5, 2), (4, 30), (3, 5), (2, 40), (1, 50)]
            .into_iter()
            .map(|(number, age)| revision(number, age, None, now))
            .collect();
        assert_eq!(retention.prune(&revisions, None, now).revisions, vec![4, 2, 1]);
        let generous = HistoryRetention { keep: 5, max_age: Duration::from_secs(86_400) };
        assert_eq!(generous.prune(&revisions, None, now).revisions, vec![1]);
    }

    #[test]
    fn pruning_frees_only_images_no_kept_revision_points_at() {
        let now = Timestamp::now();
        let image = |id| AvatarRef {
            id: crate::avatar::AvatarId::from_uuid(uuid::Uuid::from_u128(id)),
            kind: crate::avatar::ImageType::Png,
        };
        let (a, b) = (image(1), image(2));
        let retention = HistoryRetention { keep: 1, max_age: Duration::ZERO };
        let revisions = vec![revision(3, 9, Some(a), now), revision(2, 9, Some(a), now), revision(1, 9, Some(b), now)];
        let pruning = retention.prune(&revisions, None, now);
        assert_eq!(pruning.revisions, vec![2, 1]);
        assert_eq!(pruning.images, vec![b]);
        let published = retention.prune(&revisions, Some(1), now);
        assert_eq!(
            (published.revisions, published.images),
            (vec![2], vec![]),
            "the published one stays, and its image"
        );
    }

    #[test]
    fn a_revision_is_named_by_its_number_or_its_version_id() {
        let version = VersionId::new_random();
        assert_eq!(RevisionRef::parse("7"), Some(RevisionRef::Number(7)));
        assert_eq!(RevisionRef::parse(&version.to_string()), Some(RevisionRef::Version(version)));
        for nothing in ["0", "07", "-1", "+1", "1.0", "", "x", "18446744073709551616"] {
            assert_eq!(RevisionRef::parse(nothing), None, "{nothing:?}");
        }
    }

    /// A chatbot made of arbitrary values that the rules accept (the field set varies too).
    fn arbitrary_chatbot() -> impl proptest::strategy::Strategy<Value = Chatbot> {
        use proptest::prelude::*;
        let text = "[a-zA-Z0-9 ~/.-]{0,40}";
        (
            "[A-Za-z][a-zA-Z0-9 ]{0,30}",
            text,
            any::<bool>(),
            any::<bool>(),
            proptest::option::of("#[0-9a-f]{6}"),
            proptest::option::of(text),
            proptest::option::of(0.0f64..=2.0),
        )
            .prop_map(|(name, description, is_public, active, color, greeting, temperature)| {
                let draft = crate::chatbot::ChatbotDraft {
                    name: Some(name),
                    description: Some(description),
                    is_public: Some(is_public),
                    active: Some(active),
                    settings: crate::chatbot::SettingsDraft {
                        greeting,
                        snippet: crate::chatbot::SnippetDraft { primary_color: color, ..Default::default() },
                        ..Default::default()
                    },
                    voice: crate::chatbot::VoiceDraft { temperature, ..Default::default() },
                    ..Default::default()
                };
                let rules = crate::rules::Rules::default();
                let config = rules.check(None, &draft, crate::rules::Rules::create_mask(&draft)).expect("valid").config;
                Chatbot::new(OrgId::new_random(), config)
            })
    }

    proptest::proptest! {
        #[test]
        fn a_diff_applied_to_its_from_gives_its_to(from in arbitrary_chatbot(), to in arbitrary_chatbot()) {
            let patch = diff(&from, &to, "https://bots.example.com");
            let mut document = details(&from, "https://bots.example.com");
            json_patch::patch(&mut document, &patch).expect("the patch applies");
            proptest::prop_assert_eq!(document, details(&to, "https://bots.example.com"));
            proptest::prop_assert!(changed_paths(&from, &from).is_empty(), "nothing changed: no path");
            proptest::prop_assert!(changed_paths(&from, &to).contains(&"name".to_owned()) == (from.config.name != to.config.name));
        }
    }
}
