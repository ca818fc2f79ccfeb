//! The public widget's reads from memory. Every visitor of every website that embeds a chatbot asks
//! for its configuration, so each replica keeps what it served in a bounded cache, and the store is
//! read only on a miss (one read for many concurrent callers of one slug). The cache is kept fresh
//! by the change log: a change made through this replica leaves the cache in the same call, one made
//! elsewhere as soon as this replica's change signal shows it (PostgreSQL's publisher advances it at
//! least every 100 ms) and the next public read comes. An unknown slug is remembered as unknown for
//! [`NEGATIVE_TTL`]. While the store cannot be reached, what the cache holds is still served.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::changes::{ChangeKind, ChatbotEvent};
use crate::chatbot::Chatbot;
use crate::domain::{ChatbotId, Slug};
use crate::error::{Error, Result};
use crate::store::{Served, Store};

/// How long a slug found to be unknown (or private, or inactive) is answered as such from memory: the
/// bound on how late a chatbot made public on another replica is seen through an unknown slug here.
pub const NEGATIVE_TTL: Duration = Duration::from_secs(1);

/// Public configurations held in memory by default.
pub const DEFAULT_PUBLIC_CACHE_ENTRIES: usize = 10_000;

/// Events read per catch-up with the change log.
const CATCH_UP_BATCH: usize = 1000;

/// Invalidations remembered, to refuse keeping what a read returned after its chatbot changed.
const REMEMBERED_INVALIDATIONS: usize = 10_000;

/// The public route's answer for a chatbot, rendered once: its body (the public projection as JSON)
/// and its entity tag (a digest of the body, so that it changes exactly when the answer does).
#[derive(Debug)]
pub struct PublicWidget {
    /// The chatbot whose content is served.
    pub chatbot: Chatbot,
    /// `{"chatbot": ...}`: the public projection, as JSON.
    pub body: Vec<u8>,
    /// The strong entity tag of `body` (without quotes).
    pub etag: String,
}

impl PublicWidget {
    /// The answer for `chatbot`, its public URLs under `public_url`.
    pub fn render(chatbot: Chatbot, public_url: &str) -> Result<Self> {
        use sha2::Digest as _;
        let envelope =
            crate::view::PublicChatbotEnvelope { chatbot: crate::view::PublicChatbotJson::new(&chatbot, public_url) };
        let body = serde_json::to_vec(&envelope).map_err(Error::storage)?;
        let etag = hex::encode(&sha2::Sha256::digest(&body)[..16]);
        Ok(PublicWidget { chatbot, body, etag })
    }
}

/// What the cache holds for a slug.
#[derive(Clone)]
struct Entry {
    /// The answer the public route gives, or `None`: no public, active chatbot has the slug.
    served: Option<Arc<PublicWidget>>,
    /// When a `None` stops being believed.
    until: Option<Instant>,
}

/// Counts what the cache lets go to stay within its size.
#[derive(Clone)]
struct Evictions(metrics::Counter);

impl quick_cache::Lifecycle<Slug, Entry> for Evictions {
    type RequestState = ();

    fn begin_request(&self) -> Self::RequestState {}

    fn on_evict(&self, _state: &mut Self::RequestState, _key: Slug, _val: Entry) {
        self.0.increment(1);
    }
}

type Entries =
    quick_cache::sync::Cache<Slug, Entry, quick_cache::UnitWeighter, quick_cache::DefaultHashBuilder, Evictions>;

/// The public widget's configurations in memory; see the module documentation.
pub struct PublicCache {
    store: Arc<dyn Store>,
    /// What public URLs start with, for the answers rendered.
    public_url: String,
    /// `None` when the cache is off (a size of 0): every read goes to the store.
    entries: Option<Entries>,
    /// The slug each cached chatbot is held under, and the revision held, to find it by the chatbot an
    /// event names and to let an event it has seen already pass.
    slugs: Mutex<HashMap<ChatbotId, (Slug, u64)>>,
    /// The newest revision each recently changed chatbot is known to have (`u64::MAX`: removed): a
    /// read that returns an older one raced that change, and is served but not kept.
    invalidated: Mutex<HashMap<ChatbotId, u64>>,
    /// The change-log position whose changes the cache has applied.
    applied: AtomicU64,
    /// Held by the one read that catches up with the log; the others serve what is held meanwhile.
    catching_up: futures_util::lock::Mutex<()>,
    hits: metrics::Counter,
    misses: metrics::Counter,
    size: metrics::Gauge,
}

impl PublicCache {
    /// A cache of up to `entries` slugs over `store` (none at all for 0), applying its change log from
    /// the current head on.
    pub(crate) fn new(store: Arc<dyn Store>, entries: usize, public_url: String) -> Self {
        let evictions = Evictions(metrics::counter!(crate::metric::PUBLIC_CACHE_EVICTIONS));
        let cache = (entries > 0).then(|| {
            let options = quick_cache::OptionsBuilder::new()
                .estimated_items_capacity(entries)
                .weight_capacity(entries as u64)
                .build()
                .expect("valid cache options");
            Entries::with_options(options, quick_cache::UnitWeighter, Default::default(), evictions)
        });
        PublicCache {
            applied: AtomicU64::new(store.change_signal().head()),
            store,
            public_url,
            entries: cache,
            slugs: Mutex::default(),
            invalidated: Mutex::default(),
            catching_up: futures_util::lock::Mutex::new(()),
            hits: metrics::counter!(crate::metric::PUBLIC_CACHE, "result" => "hit"),
            misses: metrics::counter!(crate::metric::PUBLIC_CACHE, "result" => "miss"),
            size: metrics::gauge!(crate::metric::PUBLIC_CACHE_SIZE),
        }
    }

    /// The public route's answer for `slug`: from memory, or read once from the store.
    pub(crate) async fn get(&self, slug: &Slug) -> Result<Option<Arc<PublicWidget>>> {
        let Some(entries) = &self.entries else { return self.render(self.store.public_by_slug(slug).await?) };
        self.catch_up().await;
        loop {
            match entries.get_value_or_guard_async(slug).await {
                Ok(entry) if entry.until.is_none_or(|until| Instant::now() < until) => {
                    self.hits.increment(1);
                    return Ok(entry.served);
                }
                // An unknown slug remembered too long: forget it and read again.
                Ok(_) => {
                    entries.remove(slug);
                }
                Err(guard) => {
                    self.misses.increment(1);
                    let read = self.store.public_by_slug(slug).await?;
                    let held = read.as_ref().map(|read| (read.chatbot.id, read.revision));
                    // A read that raced a change of its chatbot is served, not kept.
                    let stale = held.is_some_and(|(id, revision)| {
                        self.lock_invalidated().get(&id).is_some_and(|known| *known > revision)
                    });
                    let served = self.render(read)?;
                    if !stale {
                        if let Some((id, revision)) = held {
                            self.lock_slugs().insert(id, (slug.clone(), revision));
                        }
                        let until = served.is_none().then(|| Instant::now() + NEGATIVE_TTL);
                        let _ = guard.insert(Entry { served: served.clone(), until });
                        self.size.set(entries.len() as f64);
                    }
                    return Ok(served);
                }
            }
        }
    }

    /// The public route's answer for what the store read, if anything.
    fn render(&self, read: Option<Served>) -> Result<Option<Arc<PublicWidget>>> {
        read.map(|read| PublicWidget::render(read.chatbot, &self.public_url).map(Arc::new)).transpose()
    }

    /// Forgets what the cache holds of `chatbot` (under the slug it was cached by) and of `slug` (a
    /// slug it may have just taken, remembered as unknown): after a change made through this replica,
    /// which left the chatbot at `revision` (`None`: removed).
    pub(crate) fn changed(&self, chatbot: ChatbotId, slug: Option<&Slug>, revision: Option<u64>) {
        self.invalidate(chatbot, revision.unwrap_or(u64::MAX), true);
        if let (Some(entries), Some(slug)) = (&self.entries, slug) {
            entries.remove(slug);
        }
    }

    /// Forgets what is held of `chatbot`, now at `revision`: as this replica made it (`exactly`), or
    /// as the log says (which may come after a newer change of this replica's).
    fn invalidate(&self, chatbot: ChatbotId, revision: u64, exactly: bool) {
        let Some(entries) = &self.entries else { return };
        {
            let mut invalidated = self.lock_invalidated();
            if invalidated.len() >= REMEMBERED_INVALIDATIONS && !invalidated.contains_key(&chatbot) {
                // Forget half of them, whichever: a read racing one of 5,000 changes ago has long
                // been answered.
                let keep = REMEMBERED_INVALIDATIONS / 2;
                let mut kept = 0;
                invalidated.retain(|_, _| {
                    kept += 1;
                    kept <= keep
                });
            }
            let known = invalidated.entry(chatbot).or_insert(revision);
            *known = if exactly { revision } else { (*known).max(revision) };
        }
        if let Some((slug, _)) = self.lock_slugs().remove(&chatbot) {
            entries.remove(&slug);
        }
    }

    /// Applies one event of the log: its chatbot is forgotten unless what is held is as new as the
    /// event (a change this replica made, already applied) and the event did not remove it.
    fn apply(&self, event: &ChatbotEvent) {
        let held = self.lock_slugs().get(&event.chatbot_id).map(|(_, revision)| *revision);
        let removed = matches!(event.kind, ChangeKind::Deleted | ChangeKind::Purged);
        if removed || held.is_none_or(|held| held < event.revision) {
            self.invalidate(event.chatbot_id, event.revision, false);
        }
    }

    /// Applies the changes the log holds beyond what the cache has applied: each changed chatbot is
    /// forgotten. One caller at a time reads the log; the others go on with what is held. A log that no
    /// longer reaches back empties the cache; a log that cannot be read is tried at the next read.
    async fn catch_up(&self) {
        let head = self.store.change_signal().head();
        if head <= self.applied.load(Ordering::Acquire) {
            return;
        }
        let Some(_only_one) = self.catching_up.try_lock() else { return };
        loop {
            let after = self.applied.load(Ordering::Acquire);
            match self.store.all_changes(after, CATCH_UP_BATCH).await {
                Ok(events) => {
                    let Some(last) = events.last().map(|event| event.position) else { return };
                    events.iter().for_each(|event| self.apply(event));
                    self.applied.store(last, Ordering::Release);
                    if events.len() < CATCH_UP_BATCH {
                        return;
                    }
                }
                Err(Error::ResyncRequired) => {
                    self.clear();
                    self.applied.store(self.store.change_signal().head(), Ordering::Release);
                    return;
                }
                Err(err) => {
                    tracing::debug!(error = %err, "the public cache cannot read the change log now");
                    return;
                }
            }
        }
    }

    fn clear(&self) {
        if let Some(entries) = &self.entries {
            entries.clear();
            self.lock_slugs().clear();
        }
    }

    fn lock_slugs(&self) -> std::sync::MutexGuard<'_, HashMap<ChatbotId, (Slug, u64)>> {
        self.slugs.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn lock_invalidated(&self) -> std::sync::MutexGuard<'_, HashMap<ChatbotId, u64>> {
        self.invalidated.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl std::fmt::Debug for PublicCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublicCache").field("applied", &self.applied).finish_non_exhaustive()
    }
}
