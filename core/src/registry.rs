//! The public face of the core: every operation of the service, by organisation, over any [`Store`].

use std::future::Future;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::auth::{ApiKey, ApiKeyInfo, KeyHash};
use crate::avatar::{AvatarImage, AvatarRef, StoredAvatar};
use crate::catalog::FieldMask;
use crate::changes::{ChatbotEvent, READ_AHEAD, ResumeToken, WatchState};
use crate::chatbot::{Chatbot, ChatbotDraft};
use crate::domain::limits::MAX_PAGE_SIZE;
use crate::domain::{ChatbotId, KeyId, OrgId, Slug, Timestamp};
use crate::error::{Error, Result};
use crate::fair_use::{Allowance, RateLimits};
use crate::idempotency::{Claim, Fingerprint, IdempotencyKey, Operation, Outcome, Verdict, Written};
use crate::rules::{Proposal, Rules, SlugChoice};
use crate::store::sled::SledStore;
use crate::store::{Change, ChatbotDeletion, ChatbotUpdate, Filter, NewChatbot, PageCursor, Record, Snapshot, Store};
use std::collections::VecDeque;

/// The chatbots of every organisation, their rules and their store: what both faces call. Share it
/// behind an `Arc`; every method may be called from many tasks at once. Write futures complete once the
/// write is durable. (Embedders without an async runtime use [`blocking::Registry`](crate::blocking::Registry).)
pub struct Registry {
    rules: Arc<Rules>,
    pub(crate) store: Box<dyn Store>,
    limits: RateLimits,
    /// What the service's public URLs start with (`https://bots.example.com`); empty for relative URLs.
    public_url: String,
    /// The watches open now.
    watchers: Arc<Watchers>,
    /// When each key's use was last noted in the store.
    last_use_noted: std::sync::Mutex<std::collections::HashMap<KeyHash, std::time::Instant>>,
}

/// Most watches open at once by default, in all.
pub const DEFAULT_MAX_WATCHERS: usize = 1024;

/// Most watches open at once per organisation by default: a few services watch a configuration
/// service, not hundreds; the limit keeps one organisation from taking every place.
pub const DEFAULT_MAX_WATCHERS_PER_ORG: usize = 64;

/// A stream of an organisation's changes, in log order; it ends after an error.
pub type Watch = std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<ChatbotEvent>> + Send>>;

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
}

/// One page of a listing.
#[derive(Debug, Clone)]
pub struct Page {
    /// Newest first, ties broken by id.
    pub items: Vec<Chatbot>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<PageCursor>,
}

impl Registry {
    /// A registry enforcing `rules` over `store`.
    pub fn new(store: impl Store + 'static, rules: Rules) -> Self {
        Registry {
            rules: Arc::new(rules),
            store: Box::new(store),
            limits: RateLimits::off(),
            public_url: String::new(),
            watchers: Arc::new(Watchers::new(DEFAULT_MAX_WATCHERS, DEFAULT_MAX_WATCHERS_PER_ORG)),
            last_use_noted: std::sync::Mutex::default(),
        }
    }

    /// This registry, giving public URLs (of avatar images) under `base` (`https://bots.example.com`);
    /// by default they are relative (`/api/public/avatars/...`).
    pub fn with_public_url(mut self, base: &str) -> Self {
        self.public_url = base.trim_end_matches('/').to_owned();
        self
    }

    /// What the service's public URLs start with; empty when they are relative.
    pub fn public_url(&self) -> &str {
        &self.public_url
    }

    /// This registry, admitting requests within `limits` (none by default).
    pub fn with_rate_limits(mut self, limits: RateLimits) -> Self {
        self.limits = limits;
        self
    }

    /// This registry, allowing `max_watchers` watches at once in all, `max_per_org` of them per
    /// organisation.
    pub fn with_watchers(mut self, max_watchers: usize, max_per_org: usize) -> Self {
        self.watchers = Arc::new(Watchers::new(max_watchers, max_per_org));
        self
    }

    /// The rate limits, e.g. to forget idle buckets now and then.
    pub fn rate_limits(&self) -> &RateLimits {
        &self.limits
    }

    /// A registry over the embedded sled store in `dir`, created if needed. Fails if another process
    /// has it open.
    pub fn open(dir: impl AsRef<Path>, rules: Rules) -> Result<Self> {
        Ok(Registry::new(SledStore::open(dir)?, rules))
    }

    /// The rules this registry enforces.
    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// The organisation an API key belongs to; [`Error::Unauthenticated`] for an unknown key: what
    /// [`Registry::admit`] lets in, for an embedder that has no client address.
    pub async fn authenticate(&self, api_key: &str) -> Result<OrgId> {
        self.admit(Some(api_key), None).await.0
    }

    /// Lets a request in, or not: the organisation of its API key, within that key's rate limit; or,
    /// without a valid key, [`Error::Unauthenticated`] within the limit of its client address. Either
    /// way [`Error::RateLimited`] once the bucket is empty. Also returns what is left of the bucket.
    pub async fn admit(&self, api_key: Option<&str>, client: Option<IpAddr>) -> (Result<OrgId>, Option<Allowance>) {
        let key = api_key.map(str::trim).filter(|key| !key.is_empty()).map(KeyHash::of);
        let org = match key {
            Some(key) => self.store.org_of_key(key).await,
            None => Err(Error::Unauthenticated),
        };
        if let (Ok(_), Some(key)) = (&org, key) {
            self.note_use(key).await;
        }
        let taken = match (&org, key, client) {
            (Ok(_), Some(key), _) => self.limits.take_for_key(key),
            (Err(Error::Unauthenticated), _, Some(client)) => self.limits.take_for_client(client),
            _ => Ok(None),
        };
        match taken {
            Ok(allowance) => (org, allowance),
            Err(exhausted) => {
                let scope = if key.is_some() && org.is_ok() { "key" } else { "client" };
                metrics::counter!("chatbotd_rate_limited_total", "scope" => scope).increment(1);
                (Err(Error::RateLimited { limit: exhausted.limit, retry_after: exhausted.retry_after }), None)
            }
        }
    }

    /// Notes a key's use in the store, at most once a minute per key (and per replica), so that a
    /// listing can say when each key was last used without a write per request.
    async fn note_use(&self, key: KeyHash) {
        let now = std::time::Instant::now();
        let due = {
            let mut noted = self.last_use_noted.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            match noted.get(&key) {
                Some(at) if now.duration_since(*at) < Duration::from_secs(60) => false,
                Some(_) | None => {
                    noted.insert(key, now);
                    true
                }
            }
        };
        if due {
            // Advisory: a failure to note it must not fail the request it lets in.
            let _ = self.store.touch_api_key(key, Timestamp::now()).await;
        }
    }

    /// Creates a new API key for organisation `org_name` (created if needed). The key is returned
    /// in clear this once; only its hash is stored.
    pub async fn create_api_key(&self, org_name: &str) -> Result<(OrgId, ApiKey)> {
        let (info, key) = self.issue_api_key(org_name).await?;
        Ok((info.organisation_id, key))
    }

    /// [`Registry::create_api_key`], returning the key's record too.
    pub async fn issue_api_key(&self, org_name: &str) -> Result<(ApiKeyInfo, ApiKey)> {
        let key = ApiKey::generate();
        let org = self.store.ensure_org(org_name).await?;
        let info = key.info(org);
        self.store.add_api_key(info.clone()).await?;
        Ok((info, key))
    }

    /// Makes an operator-chosen key valid for organisation `org_name` (created if needed). Calling
    /// it again with the same key is harmless.
    pub async fn add_api_key(&self, org_name: &str, key: &ApiKey) -> Result<OrgId> {
        let org = self.store.ensure_org(org_name).await?;
        self.store.add_api_key(key.info(org)).await?;
        Ok(org)
    }

    /// Makes sure someone can use the service: when no key exists at all, creates one for organisation
    /// `org_name` and returns it (in clear, this once). Safe when several replicas start at once over
    /// an empty store: exactly one of them creates the key.
    pub async fn create_first_api_key(&self, org_name: &str) -> Result<Option<ApiKey>> {
        let org = self.store.ensure_org(org_name).await?;
        let key = ApiKey::generate();
        Ok(self.store.add_first_api_key(key.info(org)).await?.then_some(key))
    }

    /// The organisation called `name`, created if needed.
    pub async fn create_organisation(&self, name: &str) -> Result<OrgId> {
        self.store.ensure_org(name).await
    }

    /// The keys of organisation `org_name` (of every organisation when `None`), oldest first, each
    /// with its organisation's name. Never a secret: at most a key's first characters.
    pub async fn list_api_keys(&self, org_name: Option<&str>) -> Result<Vec<(ApiKeyInfo, String)>> {
        let organisations = self.store.organisations().await?;
        let org = match org_name {
            Some(name) => Some(organisations.iter().find(|o| o.name == name).ok_or(Error::NotFound)?.id),
            None => None,
        };
        let name_of = |id: OrgId| organisations.iter().find(|o| o.id == id).map(|o| o.name.clone()).unwrap_or_default();
        Ok(self
            .store
            .api_keys(org)
            .await?
            .into_iter()
            .map(|key| {
                let name = name_of(key.organisation_id);
                (key, name)
            })
            .collect())
    }

    /// Revokes the key `id`: it lets nothing in from the next request on, on every replica.
    pub async fn revoke_api_key(&self, id: KeyId) -> Result<()> {
        self.store.revoke_api_key(id).await
    }

    /// Whether the store can serve requests now.
    pub async fn ready(&self) -> Result<()> {
        self.store.ready().await
    }

    /// Makes everything written durable and lets go of the store: the last call before exiting.
    pub async fn close(&self) -> Result<()> {
        self.store.close().await
    }

    /// Checks `draft` against the rules without storing anything (AIP-163 `validate_only`).
    pub fn validate(&self, draft: &ChatbotDraft) -> Result<()> {
        self.rules.check(None, draft, Rules::create_mask(draft)).map(drop)
    }

    /// Creates a chatbot for `org`: the draft's fields over the defaults, a slug derived from the name
    /// when none is given.
    pub async fn create(&self, org: OrgId, draft: ChatbotDraft) -> Result<Chatbot> {
        Ok(self.create_with(org, draft, None).await?.value)
    }

    /// [`Registry::create`], at most once per idempotency key: a retry with the same key and the same
    /// draft gets the first outcome again (`replayed`), with another draft
    /// [`Error::IdempotencyKeyReused`].
    pub async fn create_with(
        &self,
        org: OrgId,
        draft: ChatbotDraft,
        key: Option<IdempotencyKey>,
    ) -> Result<Written<Chatbot>> {
        let mask = Rules::create_mask(&draft);
        let claim = key.map(|key| self.claim(key, Fingerprint::of(Operation::Create, None, Some(&draft), mask, None)));
        self.at_most_once(org, claim, Outcome::replayed_chatbot, |claim| async move {
            let proposal = self.rules.check(None, &draft, mask)?;
            let chatbot = Chatbot::new(org, proposal.config);
            self.store.create(NewChatbot { chatbot, slug: proposal.slug, claim }).await
        })
        .await
    }

    /// The chatbot `id`, if `org` owns it ([`Error::NotFound`] otherwise, whoever owns it).
    pub async fn get(&self, org: OrgId, id: ChatbotId) -> Result<Chatbot> {
        self.store.get(org, id).await
    }

    /// The chatbot a public widget draws, by its slug: only a chatbot that is public and active. A
    /// private, inactive or unknown slug (or no slug at all) is the same [`Error::NotFound`].
    pub async fn public_chatbot(&self, slug: &str) -> Result<Chatbot> {
        let slug = Slug::parse(slug).map_err(|_| Error::NotFound)?;
        self.store.public_by_slug(&slug).await?.ok_or(Error::NotFound)
    }

    /// Lets a request that matches no route (or no method of one) on to its 404 or 405, or not: within
    /// the limit of its client address, as for any request without a valid key.
    pub fn admit_unrouted(&self, client: Option<IpAddr>) -> Result<()> {
        match client.map(|client| self.limits.take_for_client(client)) {
            None | Some(Ok(_)) => Ok(()),
            Some(Err(exhausted)) => {
                metrics::counter!("chatbotd_rate_limited_total", "scope" => "client").increment(1);
                Err(Error::RateLimited { limit: exhausted.limit, retry_after: exhausted.retry_after })
            }
        }
    }

    /// Lets a request of a public route (no key) in, or not: within the limit of its client address,
    /// else [`Error::RateLimited`]. Also returns what is left of the bucket.
    pub fn admit_public(&self, client: Option<IpAddr>) -> (Result<()>, Option<Allowance>) {
        match client.map(|client| self.limits.take_for_public_client(client)) {
            None => (Ok(()), None),
            Some(Ok(allowance)) => (Ok(()), allowance),
            Some(Err(exhausted)) => {
                metrics::counter!("chatbotd_rate_limited_total", "scope" => "public").increment(1);
                (Err(Error::RateLimited { limit: exhausted.limit, retry_after: exhausted.retry_after }), None)
            }
        }
    }

    /// One page of `org`'s chatbots.
    pub async fn list(&self, org: OrgId, query: &ListQuery) -> Result<Page> {
        let limit = query.limit.unwrap_or(MAX_PAGE_SIZE).clamp(1, MAX_PAGE_SIZE);
        let filter = Filter { is_public: query.is_public, active: query.active };
        let listing = self.store.list(org, filter, query.after, limit).await?;
        let next = if listing.more { listing.items.last().map(PageCursor::after) } else { None };
        Ok(Page { items: listing.items, next })
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
        Ok(self.update_with(org, id, draft, mask, expected_etag, None).await?.value)
    }

    /// [`Registry::update`], at most once per idempotency key (as [`Registry::create_with`]).
    pub async fn update_with(
        &self,
        org: OrgId,
        id: ChatbotId,
        draft: ChatbotDraft,
        mask: FieldMask,
        expected_etag: Option<&str>,
        key: Option<IdempotencyKey>,
    ) -> Result<Written<Chatbot>> {
        if mask.is_empty() {
            return Err(Error::NothingToUpdate);
        }
        let fingerprint = || Fingerprint::of(Operation::Update, Some(id), Some(&draft), mask, expected_etag);
        let claim = key.map(|key| self.claim(key, fingerprint()));
        self.at_most_once(org, claim, Outcome::replayed_chatbot, |claim| async move {
            let rules = Arc::clone(&self.rules);
            let change = Box::new(move |current: &Chatbot| rules.check(Some(&current.config), &draft, mask));
            let expected_etag = expected_etag.map(str::to_owned);
            self.store.update(ChatbotUpdate { org, id, expected_etag, change, claim, avatar: None }).await
        })
        .await
    }

    /// Replaces the chatbot's avatar with `image`, stored in the same atomic write as the chatbot's
    /// change; the image it replaces is removed with it. At most once per idempotency key (as
    /// [`Registry::create_with`]); with `expected_etag`, as [`Registry::update`].
    pub async fn update_avatar_with(
        &self,
        org: OrgId,
        id: ChatbotId,
        image: AvatarImage,
        expected_etag: Option<&str>,
        key: Option<IdempotencyKey>,
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
            let expected_etag = expected_etag.map(str::to_owned);
            let update = ChatbotUpdate { org, id, expected_etag, change, claim, avatar: Some(stored) };
            self.store.update(update).await
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

    /// Watches `org`'s chatbots: every create, update and delete committed after `resume` (or, without
    /// one, after this call), in commit order, each with the token that resumes right after it. Fails
    /// with [`Error::ResyncRequired`] when the log no longer reaches back to `resume`, and with
    /// [`Error::TooManyWatchers`] past the limits. The stream never ends by itself unless the log
    /// fails it (the caller ends it by dropping it); it reads at its consumer's pace.
    pub async fn watch(self: &Arc<Self>, org: OrgId, resume: Option<ResumeToken>) -> Result<Watch> {
        if let Err(exhausted) = self.limits.take_for_watch(org) {
            metrics::counter!("chatbotd_rate_limited_total", "scope" => "watch").increment(1);
            return Err(Error::RateLimited { limit: exhausted.limit, retry_after: exhausted.retry_after });
        }
        let guard = Watchers::admit(&self.watchers, org)?;
        // Subscribed before the head is read, so that no advance after it goes unnoticed.
        let signal = self.store.change_signal().subscribe(org);
        let after = match resume {
            Some(token) => {
                // Refuses at once a token the log no longer reaches back to.
                self.store.changes(org, token.position(), 0).await?;
                token.position()
            }
            None => {
                self.store.publish_changes().await?;
                self.store.change_signal().head()
            }
        };
        let state = WatchState { org, signal, after, ready: VecDeque::new(), ended: false, _guard: guard };
        let registry = Arc::clone(self);
        let stream = futures_util::stream::unfold(state, move |mut state| {
            let registry = Arc::clone(&registry);
            async move {
                if state.ended {
                    return None;
                }
                loop {
                    if let Some(event) = state.ready.pop_front() {
                        return Some((Ok(event), state));
                    }
                    // Listen before reading, so that an advance between the two is not missed.
                    let advanced = state.signal.listen();
                    match registry.store.changes(state.org, state.after, READ_AHEAD).await {
                        Ok(events) if !events.is_empty() => {
                            state.after = events.last().map_or(state.after, |e| e.position);
                            state.ready.extend(events);
                        }
                        Ok(_) => advanced.await,
                        Err(err) => {
                            state.ended = true;
                            return Some((Err(err), state));
                        }
                    }
                }
            }
        });
        Ok(Box::pin(stream))
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

    /// Deletes the chatbot and frees its slug.
    pub async fn delete(&self, org: OrgId, id: ChatbotId, expected_etag: Option<&str>) -> Result<()> {
        self.delete_with(org, id, expected_etag, None).await.map(drop)
    }

    /// [`Registry::delete`], at most once per idempotency key (as [`Registry::create_with`]): a
    /// replayed delete succeeds again, though the chatbot is gone.
    pub async fn delete_with(
        &self,
        org: OrgId,
        id: ChatbotId,
        expected_etag: Option<&str>,
        key: Option<IdempotencyKey>,
    ) -> Result<Written<()>> {
        let fingerprint = || Fingerprint::of(Operation::Delete, Some(id), None, FieldMask::EMPTY, expected_etag);
        let claim = key.map(|key| self.claim(key, fingerprint()));
        self.at_most_once(org, claim, Outcome::replayed_deletion, |claim| async move {
            let expected_etag = expected_etag.map(str::to_owned);
            self.store.delete(ChatbotDeletion { org, id, expected_etag, claim }).await
        })
        .await
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
}

impl Registry {
    /// Everything the store holds as it was at this moment, to read a batch of [`Record`]s at a time
    /// (organisations, then key records, then chatbots) while the service goes on taking writes.
    pub async fn snapshot(&self) -> Result<Box<dyn Snapshot + '_>> {
        self.store.snapshot().await
    }

    /// Stores one exported record as it is. A chatbot's configuration is re-checked by its types as it
    /// is read, and its model and voice against these rules' allow-lists.
    pub async fn import(&self, record: Record) -> Result<()> {
        match record {
            Record::Organisation(organisation) => self.store.import_organisation(organisation).await,
            Record::ApiKey(key) => self.store.add_api_key(key).await,
            Record::Avatar(avatar) => self.store.import_avatar(avatar).await,
            Record::Chatbot(chatbot) => {
                let config = &chatbot.config;
                let allowed = |list: &crate::AllowList, value: &str, field: crate::Field| {
                    list.check(value).map_err(|rejection| Error::invalid(rejection.at(field.json_path())))
                };
                storable_text(config)?;
                allowed(&self.rules.models, config.settings.model.as_str(), crate::Field::Model)?;
                if let Some(voice) = &config.voice {
                    allowed(&self.rules.voices, voice.voice.as_str(), crate::Field::VoiceName)?;
                }
                self.store.import_chatbot(*chatbot).await
            }
        }
    }

    /// Whether the store holds nothing at all yet (no organisation), as an import target should.
    pub async fn is_empty(&self) -> Result<bool> {
        Ok(self.store.organisations().await?.is_empty())
    }
}

/// Refuses an imported configuration holding text that no engine may store (see
/// [`check_storable`](crate::domain::check_storable)), naming every field that does: stores written
/// before the rule may hold such text, and PostgreSQL cannot take it.
fn storable_text(config: &crate::ChatbotConfig) -> Result<()> {
    fn walk(value: &serde_json::Value, path: &mut Vec<String>, violations: &mut Vec<crate::Violation>) {
        match value {
            serde_json::Value::String(text) => {
                if let Err(rejection) = crate::domain::check_storable(text, crate::domain::Lines::Many) {
                    violations.push(rejection.at(&path.join(".")));
                }
            }
            serde_json::Value::Object(fields) => {
                for (name, value) in fields {
                    path.push(name.clone());
                    walk(value, path, violations);
                    path.pop();
                }
            }
            serde_json::Value::Array(_)
            | serde_json::Value::Null
            | serde_json::Value::Bool(_)
            | serde_json::Value::Number(_) => {}
        }
    }
    let value = serde_json::to_value(config).map_err(Error::storage)?;
    let mut violations = Vec::new();
    walk(&value, &mut Vec::new(), &mut violations);
    if violations.is_empty() { Ok(()) } else { Err(Error::Invalid { violations }) }
}

impl Registry {
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
            metrics::counter!("chatbotd_idempotency_total", "outcome" => outcome).increment(1);
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

/// The watches open now, per organisation and in all, against their limits.
struct Watchers {
    max_total: usize,
    max_per_org: usize,
    open: std::sync::Mutex<(usize, std::collections::HashMap<OrgId, usize>)>,
}

impl Watchers {
    fn new(max_total: usize, max_per_org: usize) -> Self {
        Watchers { max_total, max_per_org, open: std::sync::Mutex::default() }
    }

    /// A place for one more watch of `org`, held until the guard drops.
    fn admit(watchers: &Arc<Watchers>, org: OrgId) -> Result<WatcherGuard> {
        let mut open = watchers.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (total, per_org) = &mut *open;
        let of_org = per_org.entry(org).or_default();
        if *of_org >= watchers.max_per_org {
            return Err(crate::changes::too_many_watchers(watchers.max_per_org));
        }
        if *total >= watchers.max_total {
            return Err(crate::changes::too_many_watchers(watchers.max_total));
        }
        *of_org += 1;
        *total += 1;
        metrics::gauge!("chatbotd_watchers").set(*total as f64);
        Ok(WatcherGuard { watchers: Arc::clone(watchers), org })
    }
}

/// One watch's place among those allowed.
struct WatcherGuard {
    watchers: Arc<Watchers>,
    org: OrgId,
}

impl Drop for WatcherGuard {
    fn drop(&mut self) {
        let mut open = self.watchers.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (total, per_org) = &mut *open;
        *total = total.saturating_sub(1);
        if let Some(count) = per_org.get_mut(&self.org) {
            *count -= 1;
            if *count == 0 {
                per_org.remove(&self.org);
            }
        }
        metrics::gauge!("chatbotd_watchers").set(*total as f64);
    }
}
