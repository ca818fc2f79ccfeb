//! The public face of the core: every operation of the service, by organisation.

use std::path::Path;
use std::sync::Arc;

use crate::auth::ApiKey;
use crate::chatbot::{Chatbot, ChatbotDraft};
use crate::domain::{ChatbotId, OrgId};
use crate::error::{Error, Result};
use crate::rules::{FieldMask, Rules};
use crate::store::listing::Filter;
use crate::store::{Store, wait_for as wait};

pub use crate::store::listing::PageCursor;

/// Largest page a listing returns (and the default size).
pub const MAX_PAGE_SIZE: usize = 100;

/// The chatbots of every organisation, their rules and their store. Cheap to share behind an `Arc`;
/// every method is safe to call from many threads. Writes block until they are durable.
pub struct Registry {
    rules: Arc<Rules>,
    store: Store,
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
    /// Opens the registry stored in `dir`, creating it if needed. Fails if another process has it open.
    pub fn open(dir: impl AsRef<Path>, rules: Rules) -> Result<Self> {
        Ok(Registry { rules: Arc::new(rules), store: Store::open(dir.as_ref())? })
    }

    /// The rules this registry enforces.
    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// The organisation an API key belongs to; [`Error::Unauthenticated`] for an unknown key.
    pub fn authenticate(&self, api_key: &str) -> Result<OrgId> {
        self.store.org_of_key(api_key)
    }

    /// Creates a new API key for organisation `org_name` (created if needed). The key is returned
    /// in clear this once; only its hash is stored.
    pub fn create_api_key(&self, org_name: &str) -> Result<(OrgId, ApiKey)> {
        let org = self.store.ensure_org(org_name)?;
        let key = ApiKey::generate();
        self.store.add_api_key(org, &key)?;
        Ok((org, key))
    }

    /// Makes an operator-chosen key valid for organisation `org_name` (created if needed). Calling
    /// it again with the same key is harmless.
    pub fn add_api_key(&self, org_name: &str, key: &ApiKey) -> Result<OrgId> {
        let org = self.store.ensure_org(org_name)?;
        self.store.add_api_key(org, key)?;
        Ok(org)
    }

    /// Whether any API key exists, i.e. whether anyone can use the service yet.
    pub fn has_api_keys(&self) -> bool {
        self.store.has_api_keys()
    }

    /// Checks `draft` against the rules without storing anything (AIP-163 `validate_only`).
    pub fn validate(&self, draft: &ChatbotDraft) -> Result<()> {
        self.rules.check(None, draft, FieldMask::all()).map(drop)
    }

    /// Creates a chatbot for `org`: the draft's fields over the defaults, a slug derived from the name
    /// when none is given. Blocks until it is durable.
    pub fn create(&self, org: OrgId, draft: ChatbotDraft) -> Result<Chatbot> {
        wait(|done| self.submit_create(org, draft, done))
    }

    /// [`Registry::create`] without blocking: the rules are checked on the calling thread, then `done`
    /// receives the outcome on the store's writer thread once it is durable, so it must be quick
    /// (e.g. complete a channel an async task awaits).
    pub fn submit_create(&self, org: OrgId, draft: ChatbotDraft, done: impl FnOnce(Result<Chatbot>) + Send + 'static) {
        match self.rules.check(None, &draft, FieldMask::all()) {
            Ok(proposal) => self.store.create(org, proposal, done),
            Err(err) => done(Err(err)),
        }
    }

    /// The chatbot `id`, if `org` owns it ([`Error::NotFound`] otherwise, whoever owns it).
    pub fn get(&self, org: OrgId, id: ChatbotId) -> Result<Chatbot> {
        self.store.get(org, id)
    }

    /// One page of `org`'s chatbots.
    pub fn list(&self, org: OrgId, query: &ListQuery) -> Result<Page> {
        let limit = query.limit.unwrap_or(MAX_PAGE_SIZE).clamp(1, MAX_PAGE_SIZE);
        let filter = Filter { is_public: query.is_public, active: query.active };
        let (items, more) = self.store.list(org, filter, query.after.as_ref(), limit)?;
        let next = if more { items.last().map(PageCursor::after) } else { None };
        Ok(Page { items, next })
    }

    /// Changes the fields of `mask` to the draft's values (a masked field the draft leaves out is
    /// reset to its default). With `expected_etag`, fails with [`Error::EtagMismatch`] unless the
    /// stored chatbot still has that tag. Blocks until it is durable.
    pub fn update(
        &self,
        org: OrgId,
        id: ChatbotId,
        draft: ChatbotDraft,
        mask: FieldMask,
        expected_etag: Option<&str>,
    ) -> Result<Chatbot> {
        wait(|done| self.submit_update(org, id, draft, mask, expected_etag, done))
    }

    /// [`Registry::update`] without blocking; `done` as for [`Registry::submit_create`].
    pub fn submit_update(
        &self,
        org: OrgId,
        id: ChatbotId,
        draft: ChatbotDraft,
        mask: FieldMask,
        expected_etag: Option<&str>,
        done: impl FnOnce(Result<Chatbot>) + Send + 'static,
    ) {
        let rules = Arc::clone(&self.rules);
        let change = move |current: &Chatbot| rules.check(Some(&current.config), &draft, mask);
        self.store.update(org, id, expected_etag.map(str::to_owned), change, done);
    }

    /// Checks an update of the chatbot `id` without changing anything (AIP-163 `validate_only`).
    pub fn validate_update(&self, org: OrgId, id: ChatbotId, draft: &ChatbotDraft, mask: FieldMask) -> Result<()> {
        let current = self.store.get(org, id)?;
        self.rules.check(Some(&current.config), draft, mask).map(drop)
    }

    /// Deletes the chatbot and frees its slug. Blocks until it is durable.
    pub fn delete(&self, org: OrgId, id: ChatbotId, expected_etag: Option<&str>) -> Result<()> {
        wait(|done| self.submit_delete(org, id, expected_etag, done))
    }

    /// [`Registry::delete`] without blocking; `done` as for [`Registry::submit_create`].
    pub fn submit_delete(
        &self,
        org: OrgId,
        id: ChatbotId,
        expected_etag: Option<&str>,
        done: impl FnOnce(Result<()>) + Send + 'static,
    ) {
        self.store.delete(org, id, expected_etag.map(str::to_owned), done);
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
