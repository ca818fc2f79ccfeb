//! The public face of the core: the use cases on chatbots, by organisation, over any [`Store`]; with
//! the services beside them ([`Admission`], [`Watching`], [`Transfer`]) sharing its store.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::admission::Admission;
use crate::avatar::{AvatarImage, AvatarRef, StoredAvatar};
use crate::catalog::FieldMask;
use crate::chatbot::{Chatbot, ChatbotDraft, Published};
use crate::domain::limits::MAX_PAGE_SIZE;
use crate::domain::{ChatbotId, OrgId, Slug, Timestamp};
use crate::error::{Error, Result};
use crate::fair_use::RateLimits;
use crate::history::{self, Provenance, RevisionDiff, RevisionPage, RevisionRef, RevisionSnapshot};
use crate::idempotency::{Claim, Fingerprint, IdempotencyKey, Operation, Outcome, Verdict, Written};
use crate::public::{PublicCache, PublicWidget};
use crate::rules::{Proposal, Rules, SlugChoice};
use crate::secrets::{Keyring, Secrets};
use crate::store::sled::SledStore;
use crate::store::{Change, ChatbotDeletion, ChatbotUpdate, Filter, NewChatbot, PageCursor, Store, Undeletion};
use crate::transfer::Transfer;
use crate::watching::{DEFAULT_MAX_WATCHERS, DEFAULT_MAX_WATCHERS_PER_ORG, Watching};

/// The chatbots of every organisation, their rules and their store: what both faces call. Share it
/// behind an `Arc`; every method may be called from many tasks at once. Write futures complete once the
/// write is durable. (Embedders without an async runtime use [`blocking::Registry`](crate::blocking::Registry).)
pub struct Registry {
    rules: Arc<Rules>,
    pub(crate) store: Arc<dyn Store>,
    /// What the service's public URLs start with (`https://bots.example.com`); empty for relative URLs.
    public_url: String,
    /// How long a deleted chatbot is kept for undelete.
    undelete_window: Duration,
    admission: Arc<Admission>,
    /// The public widget's configurations in memory.
    public: PublicCache,
    watching: Arc<Watching>,
    transfer: Arc<Transfer>,
    secrets: Arc<Secrets>,
}

/// How a registry runs, beyond its store and its rules.
#[derive(Debug)]
pub struct RegistryOptions {
    /// The rate limits (none by default: an embedder is its own only caller).
    pub rate_limits: RateLimits,
    /// What public URLs (of avatar images) start with (`https://bots.example.com`); empty (the
    /// default) for relative URLs (`/api/public/avatars/...`).
    pub public_url: String,
    /// Most watches open at once, in all.
    pub max_watchers: usize,
    /// Most watches open at once per organisation.
    pub max_watchers_per_org: usize,
    /// How long a deleted chatbot is kept for undelete (zero deletes at once, history and all).
    pub undelete_window: Duration,
    /// Public widget configurations held in memory (0: every public read goes to the store).
    pub public_cache_entries: usize,
    /// The keys that seal stored secrets; `None` stores them in clear (see [`crate::secrets`]).
    pub keyring: Option<Keyring>,
}

/// How long a deleted chatbot is kept for undelete by default: 30 days.
pub const DEFAULT_UNDELETE_WINDOW: Duration = Duration::from_secs(30 * 24 * 60 * 60);

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            rate_limits: RateLimits::off(),
            public_url: String::new(),
            max_watchers: DEFAULT_MAX_WATCHERS,
            max_watchers_per_org: DEFAULT_MAX_WATCHERS_PER_ORG,
            undelete_window: DEFAULT_UNDELETE_WINDOW,
            public_cache_entries: crate::public::DEFAULT_PUBLIC_CACHE_ENTRIES,
            keyring: None,
        }
    }
}

/// What to list.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    /// How many chatbots at most; clamped to 1..=[`MAX_PAGE_SIZE`], `None` means the maximum.
    pub limit: Option<usize>,
    /// Continue after this position (from the previous page's `next`).
    pub after: Option<PageCursor>,
    /// Only public or only private chatbots.
    pub is_public: Option<bool>,
    /// Only active or only inactive chatbots.
    pub active: Option<bool>,
    /// Deleted chatbots kept for undelete too (their last content), each named in [`Page::deleted`].
    pub show_deleted: bool,
}

/// One page of a listing.
#[derive(Debug, Clone)]
pub struct Page {
    /// Newest first, ties broken by id.
    pub items: Vec<Chatbot>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<PageCursor>,
    /// Which of the items are deleted, and when (only with [`ListQuery::show_deleted`]).
    pub deleted: Vec<Deletion>,
}

/// When a listed chatbot was deleted, and when it will be purged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deletion {
    /// Which chatbot.
    pub id: ChatbotId,
    /// When it was deleted.
    pub delete_time: Timestamp,
    /// When it is purged, unless undeleted first.
    pub purge_time: Timestamp,
}

impl Page {
    /// When `id`, an item of this page, was deleted; `None` if it is live.
    pub fn deletion(&self, id: ChatbotId) -> Option<&Deletion> {
        self.deleted.iter().find(|deletion| deletion.id == id)
    }
}

impl Registry {
    /// A registry enforcing `rules` over `store`, with the default options.
    pub fn new(store: impl Store + 'static, rules: Rules) -> Self {
        Registry::with_options(store, rules, RegistryOptions::default())
    }

    /// A registry enforcing `rules` over `store`, running as `options` say.
    pub fn with_options(store: impl Store + 'static, rules: Rules, options: RegistryOptions) -> Self {
        let store: Arc<dyn Store> = Arc::new(store);
        let rules = Arc::new(rules);
        let limits = Arc::new(options.rate_limits);
        let watching =
            Watching::new(Arc::clone(&store), Arc::clone(&limits), options.max_watchers, options.max_watchers_per_org);
        let secrets = Arc::new(Secrets::new(Arc::clone(&store), options.keyring));
        Registry {
            admission: Arc::new(Admission::new(Arc::clone(&store), limits)),
            watching: Arc::new(watching),
            transfer: Arc::new(Transfer::new(Arc::clone(&store), Arc::clone(&rules), Arc::clone(&secrets))),
            secrets,
            public_url: options.public_url.trim_end_matches('/').to_owned(),
            undelete_window: options.undelete_window,
            public: PublicCache::new(
                Arc::clone(&store),
                options.public_cache_entries,
                options.public_url.trim_end_matches('/').to_owned(),
            ),
            rules,
            store,
        }
    }

    /// Who may come in, and the keys that let them: what both faces ask before anything else.
    pub fn admission(&self) -> &Arc<Admission> {
        &self.admission
    }

    /// The change streams.
    pub fn watching(&self) -> &Arc<Watching> {
        &self.watching
    }

    /// Export and import.
    pub fn transfer(&self) -> &Arc<Transfer> {
        &self.transfer
    }

    /// Sealing, opening and rotating stored secrets.
    pub fn secrets(&self) -> &Arc<Secrets> {
        &self.secrets
    }

    /// A registry over the embedded sled store in `dir`, created if needed, its secrets sealed with
    /// the keyring in `dir` (made on first use, see [`crate::secrets::KEYRING_FILE`]). Fails if another
    /// process has it open.
    pub fn open(dir: impl AsRef<Path>, rules: Rules) -> Result<Self> {
        let store = SledStore::open(dir.as_ref())?;
        let (keyring, _) = Keyring::read_or_create(&dir.as_ref().join(crate::secrets::KEYRING_FILE))?;
        Ok(Registry::with_options(store, rules, RegistryOptions { keyring: Some(keyring), ..Default::default() }))
    }

    /// The rules this registry enforces.
    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// What the service's public URLs start with; empty when they are relative.
    pub fn public_url(&self) -> &str {
        &self.public_url
    }

    /// Whether the store can serve requests now.
    pub async fn ready(&self) -> Result<()> {
        self.store.ready().await
    }

    /// Makes everything written durable and lets go of the store: the last call before exiting.
    pub async fn close(&self) -> Result<()> {
        // What lets the next start of an embedded store skip its pass over stored secrets.
        if let Err(err) = self.secrets.mark_if_sealed().await {
            tracing::warn!(error = %err, "cannot mark the stored secrets as sealed; the next start looks at them all");
        }
        self.store.close().await
    }

    /// Checks `draft` against the rules without storing anything (AIP-163 `validate_only`).
    pub fn validate(&self, draft: &ChatbotDraft) -> Result<()> {
        self.rules.check(None, draft, Rules::create_mask(draft)).map(drop)
    }

    /// Creates a chatbot for `org`: the draft's fields over the defaults, a slug derived from the name
    /// when none is given.
    pub async fn create(&self, org: OrgId, draft: ChatbotDraft) -> Result<Chatbot> {
        Ok(self.create_with(org, draft, None, Provenance::embedded()).await?.value)
    }

    /// [`Registry::create`], at most once per idempotency key: a retry with the same key and the same
    /// draft gets the first outcome again (`replayed`), with another draft
    /// [`Error::IdempotencyKeyReused`]. Its first revision records `provenance`.
    pub async fn create_with(
        &self,
        org: OrgId,
        draft: ChatbotDraft,
        key: Option<IdempotencyKey>,
        provenance: Provenance,
    ) -> Result<Written<Chatbot>> {
        let mask = Rules::create_mask(&draft);
        let claim = key.map(|key| self.claim(key, Fingerprint::of(Operation::Create, None, Some(&draft), mask, None)));
        self.at_most_once(org, claim, Outcome::replayed_chatbot, |claim| async move {
            let proposal = self.rules.check(None, &draft, mask)?;
            let mut chatbot = Chatbot::new(org, proposal.config);
            self.secrets.seal(org, chatbot.id, &mut chatbot.config, None);
            self.refreshed(self.store.create(NewChatbot { chatbot, slug: proposal.slug, claim, provenance }).await)
        })
        .await
    }

    /// The customer's own OpenAI key of chatbot `id`, in clear, if it has one and `org` owns it: for
    /// the code that calls OpenAI on the customer's behalf. The only way a stored secret is opened;
    /// the faces never call it.
    pub async fn reveal_openai_api_key(&self, org: OrgId, id: ChatbotId) -> Result<Option<crate::domain::OpenAiKey>> {
        let chatbot = self.store.get(org, id).await?;
        self.secrets.open_openai_api_key(&chatbot)
    }

    /// The chatbot `id`, if `org` owns it ([`Error::NotFound`] otherwise, whoever owns it).
    pub async fn get(&self, org: OrgId, id: ChatbotId) -> Result<Chatbot> {
        self.store.get(org, id).await
    }

    /// The chatbot a public widget draws, by its slug: only a chatbot that is public and active. A
    /// private, inactive or unknown slug (or no slug at all) is the same [`Error::NotFound`].
    /// From memory when it can (see [`crate::public`]), rendered as the public route answers it.
    pub async fn public_chatbot(&self, slug: &str) -> Result<Arc<PublicWidget>> {
        let slug = Slug::parse(slug).map_err(|_| Error::NotFound)?;
        self.public.get(&slug).await?.ok_or(Error::NotFound)
    }

    /// `written`, after telling the public cache that its chatbot changed (and may hold a new slug).
    fn refreshed(&self, written: Result<Written<Chatbot>>) -> Result<Written<Chatbot>> {
        if let Ok(written) = &written {
            let chatbot = &written.value;
            self.public.changed(chatbot.id, Some(&chatbot.config.slug), Some(chatbot.revision));
        }
        written
    }

    /// One page of `org`'s chatbots.
    pub async fn list(&self, org: OrgId, query: &ListQuery) -> Result<Page> {
        let limit = query.limit.unwrap_or(MAX_PAGE_SIZE).clamp(1, MAX_PAGE_SIZE);
        let filter = Filter { is_public: query.is_public, active: query.active };
        let listing = self.store.list(org, filter, query.after, limit).await?;
        if !query.show_deleted {
            let next = if listing.more { listing.items.last().map(PageCursor::after) } else { None };
            return Ok(Page { items: listing.items, next, deleted: Vec::new() });
        }
        // The live page and the deleted ones after the same cursor, merged in listing order.
        let deleted = self.store.deleted(org, filter, query.after, limit + 1).await?;
        let deletions: Vec<Deletion> = deleted
            .iter()
            .map(|d| Deletion { id: d.chatbot.id, delete_time: d.delete_time, purge_time: d.purge_time })
            .collect();
        let more = listing.more || deleted.len() > limit;
        let mut items: Vec<Chatbot> = listing.items.into_iter().chain(deleted.into_iter().map(|d| d.chatbot)).collect();
        items.sort_by_key(|chatbot| (std::cmp::Reverse(chatbot.created_at), chatbot.id));
        let more = more || items.len() > limit;
        items.truncate(limit);
        let next = if more { items.last().map(PageCursor::after) } else { None };
        let deleted = deletions.into_iter().filter(|d| items.iter().any(|c| c.id == d.id)).collect();
        Ok(Page { items, next, deleted })
    }

    /// Changes the fields of `mask` to the draft's values (a masked field the draft leaves out is
    /// reset to its default); [`Error::NothingToUpdate`] for an empty mask. With `expected_etag`, fails
    /// with [`Error::EtagMismatch`] unless the stored chatbot still has that tag.
    pub async fn update(
        &self,
        org: OrgId,
        id: ChatbotId,
        draft: ChatbotDraft,
        mask: FieldMask,
        expected_etag: Option<&str>,
    ) -> Result<Chatbot> {
        Ok(self.update_with(org, id, draft, mask, expected_etag, None, Provenance::embedded()).await?.value)
    }

    /// [`Registry::update`], at most once per idempotency key (as [`Registry::create_with`]); its
    /// revision records `provenance`. An update that changes nothing writes nothing.
    #[allow(clippy::too_many_arguments)] // each is one thing the caller decides
    pub async fn update_with(
        &self,
        org: OrgId,
        id: ChatbotId,
        draft: ChatbotDraft,
        mask: FieldMask,
        expected_etag: Option<&str>,
        key: Option<IdempotencyKey>,
        provenance: Provenance,
    ) -> Result<Written<Chatbot>> {
        if mask.is_empty() {
            return Err(Error::NothingToUpdate);
        }
        let fingerprint = || Fingerprint::of(Operation::Update, Some(id), Some(&draft), mask, expected_etag);
        let claim = key.map(|key| self.claim(key, fingerprint()));
        self.at_most_once(org, claim, Outcome::replayed_chatbot, |claim| async move {
            let rules = Arc::clone(&self.rules);
            let change = self
                .secrets
                .sealing(Box::new(move |current: &Chatbot| rules.check(Some(&current.config), &draft, mask)));
            let update = ChatbotUpdate::new(org, id, expected_etag, change, claim, provenance);
            self.refreshed(self.store.update(update).await)
        })
        .await
    }

    /// Replaces the chatbot's avatar with `image`, stored in the same atomic write as the chatbot's
    /// change; the image it replaces is removed with it. At most once per idempotency key (as
    /// [`Registry::create_with`]); with `expected_etag`, as [`Registry::update`]. The image it replaces
    /// is kept while a revision points at it.
    pub async fn update_avatar_with(
        &self,
        org: OrgId,
        id: ChatbotId,
        image: AvatarImage,
        expected_etag: Option<&str>,
        key: Option<IdempotencyKey>,
        provenance: Provenance,
    ) -> Result<Written<Chatbot>> {
        let claim = key.map(|key| self.claim(key, Fingerprint::of_avatar(id, image.digest(), expected_etag)));
        self.at_most_once(org, claim, Outcome::replayed_chatbot, |claim| async move {
            let stored = image.into_stored();
            let reference = stored.reference;
            let change: Change = Box::new(move |current: &Chatbot| {
                let mut config = current.config.clone();
                config.settings.avatar = Some(reference);
                Ok(Proposal { config, slug: SlugChoice::Kept })
            });
            let update = ChatbotUpdate {
                avatar: Some(stored),
                ..ChatbotUpdate::new(org, id, expected_etag, change, claim, provenance)
            };
            self.refreshed(self.store.update(update).await)
        })
        .await
    }

    /// The avatar image at `file_name` (`<id>.<extension>`, as in its public URL), whoever owns it:
    /// its URL is the capability. [`Error::NotFound`] for any other name.
    pub async fn avatar(&self, file_name: &str) -> Result<StoredAvatar> {
        let reference = AvatarRef::from_file_name(file_name).ok_or(Error::NotFound)?;
        match self.store.avatar(reference).await? {
            Some(avatar) if avatar.reference == reference => Ok(avatar),
            Some(_) | None => Err(Error::NotFound),
        }
    }

    /// Checks an update of the chatbot `id` without changing anything (AIP-163 `validate_only`).
    pub async fn validate_update(
        &self,
        org: OrgId,
        id: ChatbotId,
        draft: &ChatbotDraft,
        mask: FieldMask,
    ) -> Result<()> {
        if mask.is_empty() {
            return Err(Error::NothingToUpdate);
        }
        let current = self.store.get(org, id).await?;
        self.rules.check(Some(&current.config), draft, mask).map(drop)
    }

    /// Up to `limit` (clamped to 1..=[`MAX_PAGE_SIZE`], the maximum when `None`) revisions of the
    /// chatbot `id`, newest first, below revision `below` when given (a page's `next`).
    pub async fn revisions(
        &self,
        org: OrgId,
        id: ChatbotId,
        limit: Option<usize>,
        below: Option<u64>,
    ) -> Result<RevisionPage> {
        let limit = limit.unwrap_or(MAX_PAGE_SIZE).clamp(1, MAX_PAGE_SIZE);
        // One more than the page, to know whether more follow.
        let mut revisions = self.store.revisions(org, id, below, limit + 1).await?;
        let more = revisions.len() > limit;
        revisions.truncate(limit);
        let next = if more { revisions.last().map(|last| last.revision) } else { None };
        Ok(RevisionPage { revisions, next })
    }

    /// One revision of the chatbot `id` with its content, by its number or its `version_id`;
    /// [`Error::NotFound`] if it is not kept (or not `org`'s).
    pub async fn revision(&self, org: OrgId, id: ChatbotId, which: RevisionRef) -> Result<RevisionSnapshot> {
        self.store.revision(org, id, which).await
    }

    /// The RFC 6902 patch from revision `from` (by default the one before `to`) to revision `to`, over
    /// the chatbot as the Details endpoint shows it.
    pub async fn diff(
        &self,
        org: OrgId,
        id: ChatbotId,
        to: RevisionRef,
        from: Option<RevisionRef>,
    ) -> Result<RevisionDiff> {
        let to = self.store.revision(org, id, to).await?;
        let from = match from {
            Some(from) => self.store.revision(org, id, from).await?,
            // The one before it: the newest kept below it (or itself, for the first kept).
            None => match self.store.revisions(org, id, Some(to.revision.revision), 1).await?.pop() {
                Some(previous) => self.store.revision(org, id, RevisionRef::Number(previous.revision)).await?,
                None => to.clone(),
            },
        };
        let patch = history::diff(&from.chatbot, &to.chatbot, &self.public_url);
        Ok(RevisionDiff { from: from.revision, to: to.revision, patch })
    }

    /// Brings back the content of revision `which` as a new revision (`restored`): every field but the
    /// id, owner and creation time, the slug included ([`Error::SlugTaken`] if it is now another's).
    /// Content equal to the head's makes no revision. At most once per idempotency key; with
    /// `expected_etag`, as [`Registry::update`].
    pub async fn restore_with(
        &self,
        org: OrgId,
        id: ChatbotId,
        which: RevisionRef,
        expected_etag: Option<&str>,
        key: Option<IdempotencyKey>,
        provenance: Provenance,
    ) -> Result<Written<Chatbot>> {
        let claim = key.map(|key| self.claim(key, Fingerprint::of_restore(id, which, expected_etag)));
        self.at_most_once(org, claim, Outcome::replayed_chatbot, |claim| async move {
            let restored = self.store.revision(org, id, which).await?;
            let (number, config) = (restored.revision.revision, restored.chatbot.config);
            // The avatar image and the secret are the revision's too: they are part of its content.
            let change = self.secrets.sealing(Box::new(move |_current: &Chatbot| {
                Ok(Proposal { config: config.clone(), slug: SlugChoice::Exact })
            }));
            let update = ChatbotUpdate {
                restored_from: Some(number),
                ..ChatbotUpdate::new(org, id, expected_etag, change, claim, provenance)
            };
            self.refreshed(self.store.update(update).await)
        })
        .await
    }

    /// Publishes revision `which` (`Some`), or withdraws the published one (`None`): while a revision
    /// is published, the public routes serve its content, and changes of the chatbot wait for the
    /// next publish. A change of its own (`published` or `unpublished`), so it makes a revision; one
    /// that changes nothing makes none. At most once per idempotency key; with `expected_etag`, as
    /// [`Registry::update`].
    pub async fn publish_with(
        &self,
        org: OrgId,
        id: ChatbotId,
        which: Option<RevisionRef>,
        expected_etag: Option<&str>,
        key: Option<IdempotencyKey>,
        provenance: Provenance,
    ) -> Result<Written<Chatbot>> {
        let claim = key.map(|key| self.claim(key, Fingerprint::of_publish(id, which, expected_etag)));
        self.at_most_once(org, claim, Outcome::replayed_chatbot, |claim| async move {
            let published = match which {
                Some(which) => {
                    let revision = self.store.revision(org, id, which).await?.revision;
                    Some(Published { revision: revision.revision, version_id: revision.version_id })
                }
                None => None,
            };
            let change: Change =
                Box::new(|current: &Chatbot| Ok(Proposal { config: current.config.clone(), slug: SlugChoice::Kept }));
            let update = ChatbotUpdate {
                publish: Some(published),
                ..ChatbotUpdate::new(org, id, expected_etag, change, claim, provenance)
            };
            self.refreshed(self.store.update(update).await)
        })
        .await
    }

    /// Deletes the chatbot: it is gone from every read and its slug free for `org` at once; it is kept
    /// for undelete (its slug reserved against other organisations) for the undelete window.
    pub async fn delete(&self, org: OrgId, id: ChatbotId, expected_etag: Option<&str>) -> Result<()> {
        self.delete_with(org, id, expected_etag, None, Provenance::embedded()).await.map(drop)
    }

    /// [`Registry::delete`], at most once per idempotency key (as [`Registry::create_with`]): a
    /// replayed delete succeeds again, though the chatbot is gone.
    pub async fn delete_with(
        &self,
        org: OrgId,
        id: ChatbotId,
        expected_etag: Option<&str>,
        key: Option<IdempotencyKey>,
        provenance: Provenance,
    ) -> Result<Written<()>> {
        let fingerprint = || Fingerprint::of(Operation::Delete, Some(id), None, FieldMask::EMPTY, expected_etag);
        let claim = key.map(|key| self.claim(key, fingerprint()));
        self.at_most_once(org, claim, Outcome::replayed_deletion, |claim| async move {
            let expected_etag = expected_etag.map(str::to_owned);
            let keep_for = self.undelete_window;
            let deleted =
                self.store.delete(ChatbotDeletion { org, id, expected_etag, claim, keep_for, provenance }).await;
            self.public.changed(id, None, None);
            deleted
        })
        .await
    }

    /// Brings a deleted chatbot back as a new revision (`undeleted`), with its own slug or `slug`;
    /// [`Error::NotDeleted`] for a live chatbot, [`Error::NotFound`] once purged,
    /// [`Error::SlugTaken`] if its slug is another's now (give a new one). At most once per
    /// idempotency key.
    pub async fn undelete_with(
        &self,
        org: OrgId,
        id: ChatbotId,
        slug: Option<Slug>,
        key: Option<IdempotencyKey>,
        provenance: Provenance,
    ) -> Result<Written<Chatbot>> {
        let claim = key.map(|key| self.claim(key, Fingerprint::of_undelete(id, slug.as_ref())));
        self.at_most_once(org, claim, Outcome::replayed_chatbot, |claim| async move {
            self.refreshed(self.store.undelete(Undeletion { org, id, slug, claim, provenance }).await)
        })
        .await
    }

    /// Removes a deleted chatbot, its history and its images at once; [`Error::NotDeleted`] for a
    /// live chatbot.
    pub async fn purge(&self, org: OrgId, id: ChatbotId) -> Result<()> {
        self.store.purge(org, id).await
    }

    /// The claim of `key` for a request with `fingerprint`, made now.
    fn claim(&self, key: IdempotencyKey, fingerprint: Fingerprint) -> Claim {
        let at = Timestamp::now();
        Claim { key, fingerprint, at, expired_before: self.store.retention().claims_before(at) }
    }

    /// The outcome to replay for `claim`, if its key was already claimed by the same request; a quick
    /// check before any work (the store checks again, atomically, as it writes).
    async fn earlier_outcome(&self, org: OrgId, claim: Option<&Claim>) -> Result<Option<Outcome>> {
        let Some(claim) = claim else { return Ok(None) };
        match claim.verdict(self.store.claimed(org, &claim.key).await?)? {
            Verdict::Replay(outcome) => Ok(Some(outcome)),
            Verdict::Unclaimed | Verdict::Expired { .. } => Ok(None),
        }
    }

    /// Runs `write` (which stores `claim` with its change), unless `claim`'s key already holds the
    /// outcome of the same request: then that outcome is given again through `replay`. Then counts what
    /// became of the key (`chatbotd_idempotency_total`).
    async fn at_most_once<T, W>(
        &self,
        org: OrgId,
        claim: Option<Claim>,
        replay: fn(Outcome) -> Result<Written<T>>,
        write: impl FnOnce(Option<Claim>) -> W,
    ) -> Result<Written<T>>
    where
        W: Future<Output = Result<Written<T>>>,
    {
        let keyed = claim.is_some();
        let written = match self.earlier_outcome(org, claim.as_ref()).await {
            Ok(Some(outcome)) => replay(outcome),
            Ok(None) => write(claim).await,
            Err(err) => Err(err),
        };
        if keyed {
            let outcome = match &written {
                Ok(written) if written.replayed => "replayed",
                Ok(_) => "fresh",
                Err(Error::IdempotencyKeyReused) => "reused",
                Err(_) => "refused",
            };
            metrics::counter!(crate::metric::IDEMPOTENCY, "outcome" => outcome).increment(1);
        }
        written
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").field("rules", &self.rules).finish_non_exhaustive()
    }
}

#[allow(dead_code)]
fn _assert_send_sync() {
    fn is<T: Send + Sync>() {}
    is::<Registry>();
    is::<Error>();
}
