//! The change stream: every committed create, update and delete of a chatbot, in commit order, at a
//! gap-free position of a log the engine writes in the same atomic write as the change itself. A
//! watcher reads the log at its own pace from a position (its resume token), so a slow one never
//! slows a writer, and one that reconnects with its token resumes exactly after it, across restarts.
//! The log keeps changes for a retention period; a token older than that is answered with
//! [`Error::ResyncRequired`], and the watcher re-lists.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use event_listener::{Event, EventListener};
use serde::{Deserialize, Serialize};

use crate::chatbot::Chatbot;
use crate::domain::{ChatbotId, OrgId, Rejection, Timestamp, VersionId};
use crate::error::{Error, ViolationCode};
use crate::history::Revision;

/// What a change did to a chatbot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// It was created.
    Created,
    /// It was changed (its configuration, a widget, its avatar).
    Updated,
    /// An earlier revision's content was brought back.
    Restored,
    /// A revision was published: the public routes serve it.
    Published,
    /// The published revision was withdrawn: the public routes serve the current one again.
    Unpublished,
    /// It was deleted: kept for undelete until its purge time (or removed at once, with no window).
    Deleted,
    /// A deleted chatbot was brought back.
    Undeleted,
    /// A deleted chatbot was removed for good, with its history.
    Purged,
}

impl ChangeKind {
    /// Every kind, in the order of the enum. Never reorder, only append: the embedded engine's change
    /// log stores a kind as its place here.
    pub const ALL: [ChangeKind; 8] = [
        ChangeKind::Created,
        ChangeKind::Updated,
        ChangeKind::Restored,
        ChangeKind::Published,
        ChangeKind::Unpublished,
        ChangeKind::Deleted,
        ChangeKind::Undeleted,
        ChangeKind::Purged,
    ];

    /// The kind whose wire name is `name`.
    pub fn parse(name: &str) -> Option<ChangeKind> {
        ChangeKind::ALL.into_iter().find(|kind| kind.as_str() == name)
    }

    /// The wire name: `created`, `updated`, `restored`, `published`, `unpublished`, `deleted`,
    /// `undeleted`, `purged`.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Created => "created",
            ChangeKind::Updated => "updated",
            ChangeKind::Restored => "restored",
            ChangeKind::Published => "published",
            ChangeKind::Unpublished => "unpublished",
            ChangeKind::Deleted => "deleted",
            ChangeKind::Undeleted => "undeleted",
            ChangeKind::Purged => "purged",
        }
    }
}

/// One committed change of a chatbot, as the log keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatbotEvent {
    /// Its place in the log: gap-free and in commit order. 0 until the engine gives it one.
    pub position: u64,
    /// The chatbot's organisation: only its watchers see the event.
    pub organization_id: OrgId,
    /// Which chatbot.
    pub chatbot_id: ChatbotId,
    /// What happened.
    pub kind: ChangeKind,
    /// The revision the change made (a delete is one too); a purge, or a delete without an undelete
    /// window, names the last one.
    pub revision: u64,
    /// The chatbot's new entity tag; none for a delete.
    pub etag: Option<String>,
    /// When it was written.
    pub at: Timestamp,
    /// The revision's own id; none for a purge or a delete without an undelete window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<VersionId>,
    /// The paths whose values it changed (never the values), as the revision records them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changed: Vec<String>,
}

impl ChatbotEvent {
    /// The event of the change `revision` made, which left the chatbot with entity tag `etag`, without
    /// a position yet.
    pub fn of_revision(revision: &Revision, etag: Option<String>) -> Self {
        ChatbotEvent {
            position: 0,
            organization_id: revision.organization_id,
            chatbot_id: revision.chatbot_id,
            kind: revision.kind,
            revision: revision.revision,
            etag,
            at: revision.create_time,
            version_id: Some(revision.version_id),
            changed: revision.changed.clone(),
        }
    }

    /// The event of `chatbot`'s removal (`Deleted` at once, or `Purged`) as it was, without a position
    /// yet.
    pub fn removed(kind: ChangeKind, chatbot: &Chatbot) -> Self {
        ChatbotEvent {
            position: 0,
            organization_id: chatbot.organization_id,
            chatbot_id: chatbot.id,
            kind,
            revision: chatbot.revision,
            etag: None,
            at: Timestamp::now(),
            version_id: None,
            changed: Vec::new(),
        }
    }

    /// The token that resumes a watch right after this event.
    pub fn resume_token(&self) -> ResumeToken {
        ResumeToken(self.position)
    }
}

/// Where a watch resumes: right after the change at this position. Opaque to clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResumeToken(u64);

impl ResumeToken {
    /// The position it resumes after.
    pub fn position(self) -> u64 {
        self.0
    }

    /// The token as clients see it (SSE `id`, gRPC `resume_token`).
    pub fn encode(self) -> String {
        format!("c{:x}", self.0)
    }

    /// A token as [`encode`](ResumeToken::encode) wrote it.
    pub fn parse(token: &str) -> Result<Self, Rejection> {
        let invalid = || Rejection::new(ViolationCode::InvalidFormat, "is not a resume token this service gave");
        let hex = token.strip_prefix('c').filter(|h| !h.is_empty() && h.len() <= 16).ok_or_else(invalid)?;
        if !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err(invalid());
        }
        u64::from_str_radix(hex, 16).map(ResumeToken).map_err(|_| invalid())
    }
}

/// How an engine tells watchers that its log has grown: the last position readable, and one event
/// per organisation watched, notified when the head advances over changes of that organisation (or of
/// organisations the engine cannot name, which wakes every watcher). So a write wakes only its own
/// organisation's watchers. Watchers read, and wait only when they have read everything.
#[derive(Debug, Default)]
pub struct ChangeSignal {
    head: AtomicU64,
    /// The organisations someone listens to. An entry outlives its last listener until the next
    /// advance that names everyone, or until the map doubles: it never holds much more than twice the
    /// organisations watched at once.
    orgs: Mutex<HashMap<OrgId, Weak<Event>>>,
}

impl ChangeSignal {
    /// The last position watchers may read.
    pub fn head(&self) -> u64 {
        self.head.load(Ordering::Acquire)
    }

    /// Moves the head to `head` if that is further, waking the watchers of `orgs`: the organisations
    /// of the changes it moves over.
    pub fn advance(&self, head: u64, orgs: impl IntoIterator<Item = OrgId>) {
        if self.head.fetch_max(head, Ordering::AcqRel) < head {
            let events: Vec<Arc<Event>> = {
                let watched = self.watched();
                orgs.into_iter().filter_map(|org| watched.get(&org).and_then(Weak::upgrade)).collect()
            };
            wake(&events);
        }
    }

    /// Moves the head to `head` if that is further, waking every watcher: for when the engine does not
    /// know whose changes it moves over.
    pub fn advance_all(&self, head: u64) {
        if self.head.fetch_max(head, Ordering::AcqRel) < head {
            let events: Vec<Arc<Event>> = {
                let mut watched = self.watched();
                watched.retain(|_, event| event.strong_count() > 0);
                watched.values().filter_map(Weak::upgrade).collect()
            };
            wake(&events);
        }
    }

    /// `org`'s event, which its watchers listen to.
    pub fn subscribe(&self, org: OrgId) -> OrgSignal {
        let mut watched = self.watched();
        if let Some(event) = watched.get(&org).and_then(Weak::upgrade) {
            return OrgSignal(event);
        }
        if watched.len() >= TIDY_FROM && watched.len().is_power_of_two() {
            watched.retain(|_, event| event.strong_count() > 0);
        }
        let event = Arc::new(Event::new());
        watched.insert(org, Arc::downgrade(&event));
        OrgSignal(event)
    }

    fn watched(&self) -> std::sync::MutexGuard<'_, HashMap<OrgId, Weak<Event>>> {
        self.orgs.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// How many organisations a [`ChangeSignal`] may know before it forgets those nobody watches any more.
const TIDY_FROM: usize = 64;

/// Wakes every listener of `events` (outside the lock that found them).
fn wake(events: &[Arc<Event>]) {
    for event in events {
        event.notify(usize::MAX);
    }
}

/// What one organisation's watchers wait on; see [`ChangeSignal::subscribe`].
#[derive(Debug, Clone)]
pub struct OrgSignal(Arc<Event>);

impl OrgSignal {
    /// Resolves once the head advances over a change of this organisation after this call.
    pub fn listen(&self) -> EventListener {
        self.0.listen()
    }
}

/// Events read ahead of a watcher, at most.
pub(crate) const READ_AHEAD: usize = 256;

/// What a watch keeps between polls: where it is, and what it has read but not yet handed out.
pub(crate) struct WatchState<G> {
    pub(crate) org: OrgId,
    /// What wakes it when its organisation's changes are readable.
    pub(crate) signal: OrgSignal,
    pub(crate) after: u64,
    pub(crate) ready: VecDeque<Arc<ChatbotEvent>>,
    /// Set once the watch has failed: it ends after handing out the error.
    pub(crate) ended: bool,
    /// Held for as long as the watch lives (its place among the watchers allowed).
    pub(crate) _guard: G,
}

/// Why a watch could not start.
pub(crate) fn too_many_watchers(limit: usize) -> Error {
    Error::TooManyWatchers { limit }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_kind_reads_back_from_its_wire_name() {
        for kind in super::ChangeKind::ALL {
            assert_eq!(super::ChangeKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(super::ChangeKind::parse("renamed"), None);
    }

    use super::*;

    #[test]
    fn tokens_round_trip_and_anything_else_is_refused() {
        for position in [0, 1, 255, u64::MAX] {
            assert_eq!(ResumeToken::parse(&ResumeToken(position).encode()), Ok(ResumeToken(position)));
        }
        for bad in ["", "c", "cG", "C1", "1", "c-1", "c00000000000000001", "c 1"] {
            assert!(ResumeToken::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_signal_only_moves_forward_and_wakes_the_organisations_it_names() {
        let (ours, theirs) = (OrgId::new_random(), OrgId::new_random());
        let signal = ChangeSignal::default();
        let (ours_signal, theirs_signal) = (signal.subscribe(ours), signal.subscribe(theirs));
        let (mut ours_listener, mut theirs_listener) = (ours_signal.listen(), theirs_signal.listen());
        signal.advance(3, [ours]);
        signal.advance(2, [theirs]);
        assert_eq!(signal.head(), 3);
        assert!(futures_executor::block_on(futures_util::future::poll_immediate(&mut ours_listener)).is_some());
        assert!(
            futures_executor::block_on(futures_util::future::poll_immediate(&mut theirs_listener)).is_none(),
            "neither a change of another organisation nor a head that went back wakes a watcher"
        );
        signal.advance_all(4);
        futures_executor::block_on(theirs_listener);
    }

    #[test]
    fn an_organisation_nobody_watches_any_more_is_forgotten() {
        let signal = ChangeSignal::default();
        drop(signal.subscribe(OrgId::new_random()));
        signal.advance_all(1);
        assert!(signal.watched().is_empty());

        // Without such an advance, subscribing tidies up as the map grows.
        let kept: Vec<OrgSignal> = (0..10).map(|_| signal.subscribe(OrgId::new_random())).collect();
        for _ in 0..1000 {
            drop(signal.subscribe(OrgId::new_random()));
        }
        assert!(signal.watched().len() <= 2 * TIDY_FROM, "{} entries", signal.watched().len());
        assert_eq!(signal.watched().values().filter(|event| event.strong_count() > 0).count(), kept.len());
    }
}
