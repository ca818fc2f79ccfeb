//! Watches of an organisation's changes, read from the engine's change log at each watcher's own pace,
//! and the limits on how many may be open (in all, per organisation) and how fast an organisation may
//! open them.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use crate::changes::{ChatbotEvent, READ_AHEAD, ResumeToken, WatchState};
use crate::domain::OrgId;
use crate::error::{Error, Result};
use crate::fair_use::RateLimits;
use crate::store::Store;

/// Most watches open at once by default, in all.
pub const DEFAULT_MAX_WATCHERS: usize = 1024;

/// Most watches open at once per organisation by default: a few services watch a configuration
/// service, not hundreds; the limit keeps one organisation from taking every place.
pub const DEFAULT_MAX_WATCHERS_PER_ORG: usize = 64;

/// A stream of an organisation's changes, in log order; it ends after an error.
pub type Watch = std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<ChatbotEvent>> + Send>>;

/// How often an idle change stream gets a heartbeat by default, on both faces: often enough to keep it
/// open through proxies that close silent connections after 30 s or more.
pub const DEFAULT_HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(15);

/// The change streams of a store; see the module documentation.
pub struct Watching {
    store: Arc<dyn Store>,
    limits: Arc<RateLimits>,
    watchers: Arc<Watchers>,
}

impl Watching {
    /// Watches of `store`, at most `max_total` at once and `max_per_org` per organisation, opened
    /// within `limits`.
    pub(crate) fn new(store: Arc<dyn Store>, limits: Arc<RateLimits>, max_total: usize, max_per_org: usize) -> Self {
        Watching { store, limits, watchers: Arc::new(Watchers::new(max_total, max_per_org)) }
    }

    /// Watches `org`'s chatbots: every create, update and delete committed after `resume` (or, without
    /// one, after this call), in commit order, each with the token that resumes right after it. Fails
    /// with [`Error::ResyncRequired`] when the log no longer reaches back to `resume`, and with
    /// [`Error::TooManyWatchers`] past the limits. The stream never ends by itself unless the log
    /// fails it (the caller ends it by dropping it); it reads at its consumer's pace.
    pub async fn watch(&self, org: OrgId, resume: Option<ResumeToken>) -> Result<Watch> {
        if let Err(exhausted) = self.limits.take_for_watch(org) {
            metrics::counter!(crate::metric::RATE_LIMITED, "scope" => "watch").increment(1);
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
        let store = Arc::clone(&self.store);
        let stream = futures_util::stream::unfold(state, move |mut state| {
            let store = Arc::clone(&store);
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
                    match store.changes(state.org, state.after, READ_AHEAD).await {
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
}

impl std::fmt::Debug for Watching {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watching").finish_non_exhaustive()
    }
}

/// The watches open now, per organisation and in all, against their limits.
struct Watchers {
    max_total: usize,
    max_per_org: usize,
    open: Mutex<(usize, HashMap<OrgId, usize>)>,
}

impl Watchers {
    fn new(max_total: usize, max_per_org: usize) -> Self {
        Watchers { max_total, max_per_org, open: Mutex::default() }
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
        metrics::gauge!(crate::metric::WATCHERS).set(*total as f64);
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
        metrics::gauge!(crate::metric::WATCHERS).set(*total as f64);
    }
}
