//! Storage at the domain level: the [`Store`] trait that every engine fills, each operation atomic in
//! the engine's own way, and the types its operations speak.
//!
//! - [`sled`](crate::store::sled): the embedded default; one writer thread applies every waiting change
//!   as one atomic batch and one fsync.
//! - `postgres` (cargo feature `postgres`): PostgreSQL for replicas over one database; each operation
//!   one transaction, retried on serialization failures.
//!
//! Futures are `Send` and completed by the engine itself, so the core needs no async runtime: an
//! embedded engine answers from its own thread, a networked one from its driver.

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
mod page;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod sled;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::auth::{ApiKeyInfo, KeyHash, Principal};
use crate::avatar::{AvatarRef, StoredAvatar};
use crate::changes::{ChangeKind, ChangeSignal, ChatbotEvent};
use crate::chatbot::{Chatbot, Published};
use crate::domain::{ChatbotId, KeyId, OrgId, Slug, Timestamp};
use crate::error::Result;
use crate::history::{
    DeletedChatbot, HistoryRetention, Provenance, Revision, RevisionRef, RevisionSnapshot, StoredRevision,
};
use crate::idempotency::{Claim, IdempotencyKey, Record as ClaimRecord, Written};
use crate::rules::Proposal;

pub use page::{Filter, PageCursor};

/// What every [`Store`] operation returns: a boxed future, so that `dyn Store` can be shared by both
/// faces without making them generic (the allocation is noise beside a durable write).
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;

/// An update's change: computes the next configuration from the stored chatbot. An engine may run it
/// more than once (a networked engine retries a transaction after a serialization failure), so it must
/// depend on nothing but its argument.
pub type Change = Box<dyn Fn(&Chatbot) -> Result<Proposal> + Send + Sync>;

/// A new chatbot to store.
pub struct NewChatbot {
    /// The record, with its id and creation time; its slug is the one wanted.
    pub chatbot: Chatbot,
    /// How the slug must be resolved (taken as is, or the first free `-n` variant).
    pub slug: crate::rules::SlugChoice,
    /// The idempotency key to claim with the write, if the client sent one.
    pub claim: Option<Claim>,
    /// Who creates it, and why: its first revision records it.
    pub provenance: Provenance,
}

impl NewChatbot {
    /// The first revision of the chatbot (`created`), as it records its provenance.
    pub fn revision(&self) -> Revision {
        Revision::of(ChangeKind::Created, None, &self.chatbot, self.provenance.clone(), None)
    }
}

/// A change to one stored chatbot.
pub struct ChatbotUpdate {
    /// The owner: another organisation's chatbot is [`NotFound`](crate::Error::NotFound).
    pub org: OrgId,
    /// Which chatbot.
    pub id: ChatbotId,
    /// When given, the stored chatbot's entity tag must still be this, else
    /// [`EtagMismatch`](crate::Error::EtagMismatch).
    pub expected_etag: Option<String>,
    /// The new configuration, from the stored one.
    pub change: Change,
    /// The idempotency key to claim with the write, if the client sent one.
    pub claim: Option<Claim>,
    /// An avatar image to store with the change (which makes the chatbot point at it). Whatever image
    /// the chatbot pointed at before is kept while a revision points at it.
    pub avatar: Option<StoredAvatar>,
    /// Who makes the change, and why: its revision records it.
    pub provenance: Provenance,
    /// For a restore: the revision whose content the change brings back.
    pub restored_from: Option<u64>,
    /// Publishes a revision (`Some(Some(..))`), withdraws the published one (`Some(None)`), or leaves
    /// the publication as it is (`None`). The engine checks, in its write, that a revision to publish
    /// is kept.
    pub publish: Option<Option<Published>>,
}

impl ChatbotUpdate {
    /// The change `change` of `org`'s chatbot `id` by `provenance`, claiming `claim`, requiring
    /// `expected_etag` when given: with no image, no restore and no publication (set those after).
    pub fn new(
        org: OrgId,
        id: ChatbotId,
        expected_etag: Option<&str>,
        change: Change,
        claim: Option<Claim>,
        provenance: Provenance,
    ) -> Self {
        let expected_etag = expected_etag.map(str::to_owned);
        ChatbotUpdate {
            org,
            id,
            expected_etag,
            change,
            claim,
            avatar: None,
            provenance,
            restored_from: None,
            publish: None,
        }
    }

    /// The chatbot this update makes of `current` (the stored chatbot, which the engine has found that
    /// `org` owns: 404 comes first), and how its slug must be resolved; `None` when it changes nothing
    /// (then nothing is written: no revision, no event, the same entity tag). An invalid change is
    /// refused before a stale tag (400, then 412); the next revision and etag follow from `current`.
    /// The one update algorithm every engine runs, inside its own atomic write.
    pub fn apply(&self, current: &Chatbot) -> Result<Option<(Chatbot, crate::rules::SlugChoice)>> {
        let proposal = (self.change)(current)?;
        current.check_etag(self.expected_etag.as_deref())?;
        let published = self.publish.unwrap_or(current.published);
        if proposal.config == current.config && self.avatar.is_none() && published == current.published {
            return Ok(None);
        }
        let mut next = current.next(proposal.config);
        next.published = published;
        Ok(Some((next, proposal.slug)))
    }

    /// The revision this update records, turning `current` into `next` (its slug resolved).
    pub fn revision(&self, current: &Chatbot, next: &Chatbot) -> Revision {
        let kind = match (self.restored_from, self.publish) {
            (Some(_), _) => ChangeKind::Restored,
            (None, Some(Some(_))) => ChangeKind::Published,
            (None, Some(None)) => ChangeKind::Unpublished,
            (None, None) => ChangeKind::Updated,
        };
        Revision::of(kind, Some(current), next, self.provenance.clone(), self.restored_from)
    }
}

/// The slugs a chatbot may take when it wants `wanted`, in the order to try them: `wanted` alone when
/// kept or exact, else `wanted`, `wanted-1`, `wanted-2`, ... up to
/// [`MAX_SLUG_SUFFIX`](crate::domain::limits::MAX_SLUG_SUFFIX).
pub fn slug_candidates(wanted: &Slug, choice: crate::rules::SlugChoice) -> impl Iterator<Item = Slug> + '_ {
    let last = match choice {
        crate::rules::SlugChoice::Kept | crate::rules::SlugChoice::Exact => 0,
        crate::rules::SlugChoice::Derived => crate::domain::limits::MAX_SLUG_SUFFIX,
    };
    (0..=last).map(move |n| if n == 0 { wanted.clone() } else { wanted.with_suffix(n) })
}

/// The removal of one chatbot.
pub struct ChatbotDeletion {
    /// The owner.
    pub org: OrgId,
    /// Which chatbot.
    pub id: ChatbotId,
    /// As for [`ChatbotUpdate::expected_etag`].
    pub expected_etag: Option<String>,
    /// The idempotency key to claim with the write, if the client sent one.
    pub claim: Option<Claim>,
    /// How long the chatbot is kept for undelete (with its history, its slug reserved against other
    /// organisations); zero removes it and its history at once.
    pub keep_for: std::time::Duration,
    /// Who deletes it, and why: its `deleted` revision records it.
    pub provenance: Provenance,
}

/// The return of a deleted chatbot.
pub struct Undeletion {
    /// The owner.
    pub org: OrgId,
    /// Which chatbot.
    pub id: ChatbotId,
    /// A new slug, for when its own has been taken since.
    pub slug: Option<Slug>,
    /// The idempotency key to claim with the write, if the client sent one.
    pub claim: Option<Claim>,
    /// Who brings it back, and why: its `undeleted` revision records it.
    pub provenance: Provenance,
}

/// An organisation: the owner of API keys and chatbots.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Organisation {
    /// Its id.
    pub id: OrgId,
    /// Its unique name.
    pub name: String,
}

/// One line of an export: everything a store holds, one record at a time. Organisations come first,
/// then API key hashes, then chatbots and their avatar images, so that an import meets each owner
/// before what it owns.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Record {
    /// An organisation.
    Organisation(Organisation),
    /// An API key's record: its hash, never the key.
    ApiKey(ApiKeyInfo),
    /// A chatbot, exactly as stored.
    Chatbot(Box<Chatbot>),
    /// An avatar image, exactly as stored (its bytes in base64).
    Avatar(StoredAvatar),
    /// A deleted chatbot, kept for undelete (after the chatbots).
    Deleted {
        /// The deleted chatbot, its last content and its times.
        deleted: Box<DeletedChatbot>,
    },
    /// A revision of a chatbot, exactly as stored (after its chatbot).
    Revision {
        /// The revision, with its content unless it is the head.
        revision: Box<StoredRevision>,
    },
}

/// Everything a store holds as it was at one moment, read a batch at a time while writes go on:
/// organisations first, then key records, then chatbots.
pub trait Snapshot: Send {
    /// The next records; `None` once everything has been read.
    fn next_batch(&mut self) -> StoreFuture<'_, Option<Vec<Record>>>;
}

impl Record {
    /// The record as one line of an export (JSON, no newline).
    pub fn to_line(&self) -> crate::error::Result<String> {
        serde_json::to_string(self).map_err(crate::error::Error::storage)
    }

    /// The record written on one line of an export.
    pub fn from_line(line: &str) -> std::result::Result<Record, String> {
        serde_json::from_str(line).map_err(|err| err.to_string())
    }
}

/// How long an engine keeps what it forgets by itself. An engine prunes in the background, from the
/// moment it is opened until it is dropped, so that an embedder gets the same store as the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Change-log events: a watcher resuming from an older token is told to resync.
    pub changes: std::time::Duration,
    /// Idempotency keys, and the answers they replay.
    pub claims: std::time::Duration,
    /// Chatbots' revisions.
    pub history: HistoryRetention,
}

impl Default for Retention {
    /// A day each: long enough for a watcher to be down over a weekend night, and as Stripe keeps
    /// idempotency keys.
    fn default() -> Self {
        let day = std::time::Duration::from_secs(24 * 60 * 60);
        Retention { changes: day, claims: day, history: HistoryRetention::default() }
    }
}

impl Retention {
    /// Most records an engine forgets in one go, so that writers never wait long behind it.
    pub const BATCH: usize = 500;

    /// How often an engine prunes: four times per the shorter retention, so that nothing is kept much
    /// past it, between a quarter of a second and a minute.
    pub fn upkeep_every(&self) -> std::time::Duration {
        (self.changes.min(self.claims) / 4)
            .clamp(std::time::Duration::from_millis(250), std::time::Duration::from_secs(60))
    }

    /// Claims made before this, seen at `now`, have expired.
    pub fn claims_before(&self, now: Timestamp) -> Timestamp {
        before(now, self.claims)
    }

    /// Events written before this, seen at `now`, are past retention.
    pub fn changes_before(&self, now: Timestamp) -> Timestamp {
        before(now, self.changes)
    }
}

fn before(now: Timestamp, kept: std::time::Duration) -> Timestamp {
    let kept = i64::try_from(kept.as_micros()).unwrap_or(i64::MAX);
    Timestamp::from_micros(now.as_micros().saturating_sub(kept))
}

/// What the public route serves for a slug.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    /// The content: the published revision's, or the current one.
    pub chatbot: Chatbot,
    /// The chatbot's current revision, by which a cache of it knows how fresh it is.
    pub revision: u64,
}

/// One page of a listing, as an engine reads it.
#[derive(Debug, Clone)]
pub struct Listing {
    /// At most the page size, newest first, ties broken by ascending id.
    pub items: Vec<Chatbot>,
    /// Whether more chatbots follow the last one.
    pub more: bool,
}

/// Where chatbots, organisations and API key hashes are kept: every concern's trait, in one engine. Each
/// write is atomic with everything it implies and durable before its future completes.
///
/// A write with a [`Claim`] first looks for an unexpired record of its key: with the same fingerprint,
/// it changes nothing and returns the recorded outcome as a replay; with another, it fails with
/// [`IdempotencyKeyReused`](crate::Error::IdempotencyKeyReused). Otherwise it writes, and records its
/// outcome under the key in the same atomic write; a write that fails records nothing.
pub trait Store:
    ChatbotStore + History + RecycleBin + KeyStore + ClaimStore + ChangeLog + Archive + Resealing + Lifecycle
{
}

impl<T> Store for T where
    T: ChatbotStore + History + RecycleBin + KeyStore + ClaimStore + ChangeLog + Archive + Resealing + Lifecycle
{
}

/// Chatbots and their avatar images. Each write is atomic with everything it implies (the slug
/// index, the listing order, its change-log event, the claim of its idempotency key) and durable
/// before its future completes.
pub trait ChatbotStore: Send + Sync {
    /// Stores a new chatbot, resolving its slug; [`SlugTaken`](crate::Error::SlugTaken) when an exact
    /// slug, or every variant of a derived one, is taken. Returns the chatbot as stored.
    fn create(&self, new: NewChatbot) -> StoreFuture<'_, Written<Chatbot>>;

    /// The chatbot `id` if `org` owns it, else [`NotFound`](crate::Error::NotFound).
    fn get(&self, org: OrgId, id: ChatbotId) -> StoreFuture<'_, Chatbot>;

    /// The public and active chatbot whose slug is `slug`, whoever owns it (for the public widget). A
    /// private, inactive or unknown slug is `None` after the same lookups, so that the time it takes
    /// does not tell them apart.
    /// What is served is the published revision's content while one is published.
    fn public_by_slug(&self, slug: &Slug) -> StoreFuture<'_, Option<Served>>;

    /// Up to `limit` chatbots of `org` that pass `filter`, after `after`.
    fn list(&self, org: OrgId, filter: Filter, after: Option<PageCursor>, limit: usize) -> StoreFuture<'_, Listing>;

    /// Applies an update atomically: the etag check, the change, the slug and listing moves. Returns the
    /// chatbot as stored.
    fn update(&self, update: ChatbotUpdate) -> StoreFuture<'_, Written<Chatbot>>;

    /// Deletes a chatbot, atomically: it leaves every read here and frees its slug for its own
    /// organisation; kept in the [`RecycleBin`] for the deletion's `keep_for` (none: removed with its
    /// history and images at once).
    fn delete(&self, deletion: ChatbotDeletion) -> StoreFuture<'_, Written<()>>;

    /// The stored avatar image `reference` names, if it is stored.
    fn avatar(&self, reference: AvatarRef) -> StoreFuture<'_, Option<StoredAvatar>>;
}

/// Chatbots' revisions, which [`ChatbotStore`]'s writes record: the head revision's content is the
/// current record, an older one's is kept beside it (see [`crate::history`]).
pub trait History: Send + Sync {
    /// Up to `limit` revisions of the chatbot `id`, newest first, below revision `below` when given;
    /// [`NotFound`](crate::Error::NotFound) unless `org` owns the chatbot.
    fn revisions(&self, org: OrgId, id: ChatbotId, below: Option<u64>, limit: usize) -> StoreFuture<'_, Vec<Revision>>;

    /// One revision of the chatbot `id`, with its content; [`NotFound`](crate::Error::NotFound)
    /// unless `org` owns the chatbot and the revision is kept.
    fn revision(&self, org: OrgId, id: ChatbotId, which: RevisionRef) -> StoreFuture<'_, RevisionSnapshot>;

    /// Forgets, as [`Retention::history`] says at `now`, the old revisions of up to `limit` chatbots
    /// (and the avatar images only they pointed at); returns how many revisions.
    fn prune_history(&self, now: Timestamp, limit: usize) -> StoreFuture<'_, usize>;
}

/// Deleted chatbots, kept for undelete until their purge time ([`ChatbotStore::delete`] puts them
/// here). While kept, a deleted chatbot is absent from every read of [`ChatbotStore`], its history
/// stays readable through [`History`], its avatar images are not served, and its slug is reserved
/// against other organisations (its own may take it at once).
pub trait RecycleBin: Send + Sync {
    /// Up to `limit` deleted chatbots of `org` that pass `filter`, after `after`, in listing order.
    fn deleted(
        &self,
        org: OrgId,
        filter: Filter,
        after: Option<PageCursor>,
        limit: usize,
    ) -> StoreFuture<'_, Vec<DeletedChatbot>>;

    /// Brings a deleted chatbot back as a new revision (`undeleted`), with its own slug or the one
    /// given; [`NotDeleted`](crate::Error::NotDeleted) if it is not deleted, [`NotFound`](crate::Error::NotFound)
    /// if `org` has no such chatbot (or it was purged), [`SlugTaken`](crate::Error::SlugTaken) if the
    /// slug is another's now.
    fn undelete(&self, undeletion: Undeletion) -> StoreFuture<'_, Written<Chatbot>>;

    /// Removes a deleted chatbot, its history and its images at once; errors as for
    /// [`RecycleBin::undelete`].
    fn purge(&self, org: OrgId, id: ChatbotId) -> StoreFuture<'_, ()>;

    /// Purges up to `limit` deleted chatbots whose purge time is before `now`; returns how many.
    fn purge_expired(&self, now: Timestamp, limit: usize) -> StoreFuture<'_, usize>;
}

/// Organisations and the hashes of their API keys (never a key).
pub trait KeyStore: Send + Sync {
    /// The organisation called `name`, created if needed.
    fn ensure_org(&self, name: &str) -> StoreFuture<'_, OrgId>;

    /// Every organisation.
    fn organisations(&self) -> StoreFuture<'_, Vec<Organisation>>;

    /// Makes the key valid for its organisation. Adding a key its organisation already has is harmless;
    /// a key of another organisation is refused.
    fn add_api_key(&self, key: ApiKeyInfo) -> StoreFuture<'_, ()>;

    /// The organisation and id of the key with this hash, else
    /// [`Unauthenticated`](crate::Error::Unauthenticated).
    fn key_owner(&self, key: KeyHash) -> StoreFuture<'_, Principal>;

    /// Makes the key valid only if no key exists at all, and says whether it did: of several replicas
    /// starting at once on an empty store, exactly one creates the first key.
    fn add_first_api_key(&self, key: ApiKeyInfo) -> StoreFuture<'_, bool>;

    /// Every key of `org` (of every organisation when `None`), oldest first.
    fn api_keys(&self, org: Option<OrgId>) -> StoreFuture<'_, Vec<ApiKeyInfo>>;

    /// Revokes the key `id`: it lets nothing in from then on. [`NotFound`](crate::Error::NotFound) if
    /// there is no such key.
    fn revoke_api_key(&self, id: KeyId) -> StoreFuture<'_, ()>;

    /// Notes that the key with this hash let a request in at `at`.
    fn touch_api_key(&self, key: KeyHash, at: Timestamp) -> StoreFuture<'_, ()>;
}

/// The records of claimed idempotency keys, which [`ChatbotStore`]'s writes make; see [`Store`].
pub trait ClaimStore: Send + Sync {
    /// The record of `org`'s idempotency key `key`, if one is stored (expired or not).
    fn claimed(&self, org: OrgId, key: &IdempotencyKey) -> StoreFuture<'_, Option<ClaimRecord>>;

    /// Removes up to `limit` records of idempotency keys claimed before `before`; returns how many.
    fn prune_claims(&self, before: Timestamp, limit: usize) -> StoreFuture<'_, usize>;
}

/// The change log: one event per committed create, update and delete, written in the change's own
/// atomic write, read by watchers from a position.
pub trait ChangeLog: Send + Sync {
    /// The signal of the change log: the last position watchers may read, and a wake-up when it
    /// advances. Every create, update and delete adds one event to the log in its own atomic write.
    fn change_signal(&self) -> &ChangeSignal;

    /// Up to `limit` events of `org` after position `after`, in log order;
    /// [`ResyncRequired`](crate::Error::ResyncRequired) when the log no longer keeps every event
    /// after `after` (or never had them: `after` beyond its head).
    fn changes(&self, org: OrgId, after: u64, limit: usize) -> StoreFuture<'_, Vec<ChatbotEvent>>;

    /// Up to `limit` events of every organisation after position `after`, in log order; errors as
    /// [`ChangeLog::changes`]. For what the service keeps of all chatbots (the public cache).
    fn all_changes(&self, after: u64, limit: usize) -> StoreFuture<'_, Vec<ChatbotEvent>>;

    /// Gives log positions to committed events that have none yet, and brings the signal's head up to
    /// the log's (other replicas' changes): what a new watcher starts from. The engine also does it by
    /// itself, in the background; one that positions events as it writes them has nothing to do.
    fn publish_changes(&self) -> StoreFuture<'_, ()>;

    /// Forgets up to `limit` of the oldest events written before `before`; returns how many.
    fn prune_changes(&self, before: Timestamp, limit: usize) -> StoreFuture<'_, usize>;
}

/// Everything a store holds, out (a snapshot while writes go on) and in (records stored as given).
pub trait Archive: Send + Sync {
    /// A snapshot of everything, to export while the service keeps taking writes.
    fn snapshot(&self) -> StoreFuture<'_, Box<dyn Snapshot + '_>>;

    /// Stores an organisation with its id as given (for imports); one of the same name is refused.
    fn import_organisation(&self, organisation: Organisation) -> StoreFuture<'_, ()>;

    /// Stores a chatbot exactly as given, id, slug, times and revision included (for imports); a taken
    /// slug is [`SlugTaken`](crate::Error::SlugTaken).
    fn import_chatbot(&self, chatbot: Chatbot) -> StoreFuture<'_, ()>;

    /// Stores an avatar image exactly as given (for imports).
    fn import_avatar(&self, avatar: StoredAvatar) -> StoreFuture<'_, ()>;

    /// Stores a revision exactly as given (for imports), after its chatbot.
    fn import_revision(&self, revision: StoredRevision) -> StoreFuture<'_, ()>;

    /// Stores a deleted chatbot exactly as given (for imports), its images withheld.
    fn import_deleted(&self, deleted: DeletedChatbot) -> StoreFuture<'_, ()>;
}

/// Every stored content of a chatbot, rewritten in place a batch at a time: how sealed secrets move to
/// the keyring's current key (see [`crate::secrets`]). A content is the live record, each revision kept
/// with its content, and a deleted chatbot's last content; revision numbers, times and events do not
/// change, since what a client sees does not.
pub trait Resealing: Send + Sync {
    /// Passes every stored content of up to `limit` chatbots from `from` on (the live ones in id order,
    /// then the deleted ones) to `reseal`, and writes back, in one atomic write, each content it
    /// changed (one a concurrent write replaced meanwhile is left as that write made it). In a batch
    /// that changes nothing `reseal` sees each content once; in one that changes something an engine
    /// may pass a content again (sled looks before it queues a write), so it must depend on nothing
    /// but its argument.
    fn reseal(&self, from: ResealCursor, limit: usize, reseal: Arc<Reseal>) -> StoreFuture<'_, ResealBatch>;

    /// The mark [`Resealing::mark_sealed`] left, if nothing was written since: no chatbot content
    /// (every such write moves the change log's head), no import, no reseal that rewrote anything. An
    /// engine may keep no mark and always answer `None` (PostgreSQL, whose replicas never reseal at
    /// start).
    fn sealing_mark(&self) -> StoreFuture<'_, Option<SealingMark>>;

    /// Records that every stored secret is sealed under `mark`'s key, as counted by its census, at
    /// this point of the writes (serialized with them).
    fn mark_sealed(&self, mark: SealingMark) -> StoreFuture<'_, ()>;
}

/// A store's record that every secret it holds is sealed under one key: what lets a start of the
/// embedded engine skip reading every stored content when nothing changed since a clean shutdown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealingMark {
    /// The key every stored secret is sealed under.
    pub key_id: String,
    /// The census that found it so (its count of values under the key is as of then).
    pub census: crate::secrets::Census,
    /// When that census was taken.
    pub counted_at: Timestamp,
}

/// Changes a stored content in place; `true` if it changed anything.
pub type Reseal = dyn Fn(&mut Chatbot) -> bool + Send + Sync;

/// Where a pass of [`Resealing::reseal`] is: among the live chatbots or the deleted ones, after which id.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResealCursor {
    /// Among the deleted chatbots (they come after the live ones).
    pub deleted: bool,
    /// After this chatbot; from the first when `None`.
    pub after: Option<ChatbotId>,
}

/// What one batch of [`Resealing::reseal`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResealBatch {
    /// Where the next batch starts; `None` once the pass is done.
    pub next: Option<ResealCursor>,
    /// Contents passed to the closure.
    pub contents: usize,
    /// Contents written back.
    pub rewritten: usize,
}

impl ResealCursor {
    /// The cursor after a batch of the chatbots `ids` read from `self` with `limit`: on past the last,
    /// or on to the deleted chatbots (or done) when the batch was not full.
    pub fn after_batch(self, ids: &[ChatbotId], limit: usize) -> Option<ResealCursor> {
        match ids.last() {
            Some(last) if ids.len() >= limit => Some(ResealCursor { after: Some(*last), ..self }),
            _ if !self.deleted => Some(ResealCursor { deleted: true, after: None }),
            _ => None,
        }
    }
}

/// Whether the engine can serve, and its orderly end.
pub trait Lifecycle: Send + Sync {
    /// How long the engine keeps what it prunes by itself.
    fn retention(&self) -> Retention;

    /// Whether the store can serve requests now (`Unavailable` if its database cannot be reached).
    fn ready(&self) -> StoreFuture<'_, ()>;

    /// Makes everything written durable and lets go of the store's resources (files, connections):
    /// the last call before a process exits.
    fn close(&self) -> StoreFuture<'_, ()>;
}
