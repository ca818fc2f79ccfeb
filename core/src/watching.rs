//! Watches of an organisation's changes, read from the engine's change log at each watcher's own pace,
//! and the limits on how many may be open (in all, per organisation) and how fast an organisation may
//! open them. The watchers of one organisation share what the last of them read from the log (its
//! [`Tail`]), so that a hundred watchers of one organisation cost one store read per advance of its
//! log, not a hundred.

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

/// A stream of an organisation's changes, in log order; it ends after an error. The watchers of one
/// organisation are handed the same events, shared rather than copied.
pub type Watch = std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<Arc<ChatbotEvent>>> + Send>>;

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
        let tail = Arc::clone(&guard.tail);
        // Subscribed before the head is read, so that no advance after it goes unnoticed.
        let signal = self.store.change_signal().subscribe(org);
        // The head brought up to date (on an engine shared by replicas, with what others published), so
        // that a watch that finds itself at the head can wait for it to move.
        self.store.publish_changes().await?;
        let after = match resume {
            Some(token) => {
                // Refuses at once a token the log no longer reaches back to.
                self.store.changes(org, token.position(), 0).await?;
                token.position()
            }
            None => self.store.change_signal().head(),
        };
        let state = WatchState { org, signal, after, ready: VecDeque::new(), ended: false, _guard: guard };
        let store = Arc::clone(&self.store);
        let stream = futures_util::stream::unfold(state, move |mut state| {
            let (store, tail) = (Arc::clone(&store), Arc::clone(&tail));
            async move {
                if state.ended {
                    return None;
                }
                loop {
                    if let Some(event) = state.ready.pop_front() {
                        return Some((Ok(event), state));
                    }
                    // Listen before reading, so that an advance between the two is not missed; a watcher
                    // at the head has nothing to read until it moves.
                    let advanced = state.signal.listen();
                    if state.after >= store.change_signal().head() {
                        advanced.await;
                        continue;
                    }
                    match Tail::read(&tail, store.as_ref(), state.org, state.after).await {
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

/// The watches open now, per organisation and in all, against their limits, and each watched
/// organisation's shared [`Tail`].
struct Watchers {
    max_total: usize,
    max_per_org: usize,
    open: Mutex<(usize, HashMap<OrgId, Watched>)>,
}

/// One organisation's open watches: how many, and what they share.
#[derive(Default)]
struct Watched {
    count: usize,
    tail: Arc<SharedTail>,
}

/// A [`Tail`] behind the lock its readers take in turn: the first reads the store, those behind it
/// find what it read.
type SharedTail = futures_util::lock::Mutex<Tail>;

/// Events of an organisation's log kept for its watchers, at most: enough for watchers a read apart
/// (one further behind reads the store alone), and a bound on the memory every watched organisation
/// takes (at most [`DEFAULT_MAX_WATCHERS`] organisations times this many events).
const TAIL_KEPT: usize = READ_AHEAD;

/// The last stretch of one organisation's log that its watchers read: every event of the organisation
/// at positions in `(from, to]`, in log order. A stretch read from the store is final (positions are
/// given in commit order and never reused), so a watcher anywhere inside it reads on from memory.
#[derive(Default)]
struct Tail {
    from: u64,
    to: u64,
    events: VecDeque<Arc<ChatbotEvent>>,
}

impl Tail {
    /// Up to [`READ_AHEAD`] of `org`'s events after `after`, from the shared tail when it reaches
    /// them and from the store otherwise; a read that carries on from the tail (or that leaves it behind)
    /// becomes the tail.
    async fn read(shared: &SharedTail, store: &dyn Store, org: OrgId, after: u64) -> Result<Vec<Arc<ChatbotEvent>>> {
        let mut tail = shared.lock().await;
        if let Some(events) = tail.after(after) {
            return Ok(events);
        }
        if after < tail.from {
            // Behind the tail (a watcher catching up from a token): it reads alone, not holding up
            // the others, and the tail stays where the others are.
            drop(tail);
            return Ok(store.changes(org, after, READ_AHEAD).await?.into_iter().map(Arc::new).collect());
        }
        let events: Vec<Arc<ChatbotEvent>> =
            store.changes(org, after, READ_AHEAD).await?.into_iter().map(Arc::new).collect();
        tail.carry_on(after, &events);
        Ok(events)
    }

    /// Up to [`READ_AHEAD`] events after `after`, if the tail reaches from `after` to at least one more.
    fn after(&self, after: u64) -> Option<Vec<Arc<ChatbotEvent>>> {
        if !(self.from <= after && after < self.to) {
            return None;
        }
        let start = self.events.partition_point(|event| event.position <= after);
        Some(self.events.range(start..).take(READ_AHEAD).cloned().collect())
    }

    /// Takes in `events`, all of the organisation's events after `after` up to the last of them.
    fn carry_on(&mut self, after: u64, events: &[Arc<ChatbotEvent>]) {
        let Some(last) = events.last() else { return };
        if after > self.to {
            // Not joined to what it holds: the new stretch replaces it.
            self.events.clear();
            (self.from, self.to) = (after, after);
        }
        self.events.extend(events.iter().filter(|event| event.position > self.to).cloned());
        self.to = self.to.max(last.position);
        while self.events.len() > TAIL_KEPT {
            if let Some(dropped) = self.events.pop_front() {
                self.from = dropped.position;
            }
        }
    }
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
        if of_org.count >= watchers.max_per_org {
            return Err(crate::changes::too_many_watchers(watchers.max_per_org));
        }
        if *total >= watchers.max_total {
            return Err(crate::changes::too_many_watchers(watchers.max_total));
        }
        of_org.count += 1;
        *total += 1;
        metrics::gauge!(crate::metric::WATCHERS).set(*total as f64);
        Ok(WatcherGuard { watchers: Arc::clone(watchers), org, tail: Arc::clone(&of_org.tail) })
    }
}

/// One watch's place among those allowed, and its organisation's shared tail.
struct WatcherGuard {
    watchers: Arc<Watchers>,
    org: OrgId,
    tail: Arc<SharedTail>,
}

impl Drop for WatcherGuard {
    fn drop(&mut self) {
        let mut open = self.watchers.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (total, per_org) = &mut *open;
        *total = total.saturating_sub(1);
        if let Some(watched) = per_org.get_mut(&self.org) {
            watched.count -= 1;
            if watched.count == 0 {
                per_org.remove(&self.org);
            }
        }
        metrics::gauge!(crate::metric::WATCHERS).set(*total as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::changes::ChangeKind;
    use crate::domain::{ChatbotId, Timestamp};

    fn events(positions: impl IntoIterator<Item = u64>) -> Vec<Arc<ChatbotEvent>> {
        let (org, chatbot) = (OrgId::new_random(), ChatbotId::new_random());
        let event = |position| ChatbotEvent {
            position,
            organization_id: org,
            chatbot_id: chatbot,
            kind: ChangeKind::Updated,
            revision: position,
            etag: None,
            at: Timestamp::now(),
            version_id: None,
            changed: Vec::new(),
        };
        positions.into_iter().map(|position| Arc::new(event(position))).collect()
    }

    fn positions(read: Option<Vec<Arc<ChatbotEvent>>>) -> Option<Vec<u64>> {
        read.map(|events| events.iter().map(|event| event.position).collect())
    }

    #[test]
    fn a_tail_answers_only_inside_the_stretch_it_holds() {
        let mut tail = Tail::default();
        assert_eq!(positions(tail.after(0)), None, "an empty tail knows nothing");
        // Positions are of the whole log: an organisation's own need not follow one another.
        tail.carry_on(4, &events([5, 7, 9]));
        assert_eq!(positions(tail.after(4)), Some(vec![5, 7, 9]));
        assert_eq!(positions(tail.after(6)), Some(vec![7, 9]), "nothing of this organisation lies between 5 and 7");
        assert_eq!(positions(tail.after(9)), None, "at its end it cannot say what comes next");
        assert_eq!(positions(tail.after(3)), None, "before its start it cannot say what lies between");

        tail.carry_on(9, &events([12]));
        assert_eq!(positions(tail.after(4)), Some(vec![5, 7, 9, 12]), "a read from its end carries it on");
        tail.carry_on(7, &events([9, 12, 13]));
        assert_eq!(
            positions(tail.after(4)),
            Some(vec![5, 7, 9, 12, 13]),
            "a read from inside it adds only what is new"
        );
        tail.carry_on(5, &events([7]));
        assert_eq!(positions(tail.after(4)), Some(vec![5, 7, 9, 12, 13]), "a shorter read does not shorten it");
        assert_eq!(positions(tail.after(12)), Some(vec![13]));

        tail.carry_on(20, &events([21]));
        assert_eq!(positions(tail.after(13)), None, "a read past a gap starts a new stretch");
        assert_eq!(positions(tail.after(20)), Some(vec![21]));
        tail.carry_on(21, &[]);
        assert_eq!(positions(tail.after(20)), Some(vec![21]), "an empty read tells it nothing");
    }

    #[test]
    fn a_tail_keeps_its_newest_events_and_hands_out_a_read_ahead_at_a_time() {
        let mut tail = Tail::default();
        let count = u64::try_from(TAIL_KEPT + 10).expect("small");
        tail.carry_on(0, &events(1..=count));
        assert_eq!(tail.events.len(), TAIL_KEPT);
        assert_eq!(positions(tail.after(5)), None, "the oldest are forgotten");
        let oldest_kept = count - u64::try_from(TAIL_KEPT).expect("small");
        let read = positions(tail.after(oldest_kept)).expect("from where it starts now");
        assert_eq!(read.len(), READ_AHEAD.min(TAIL_KEPT));
        assert_eq!(read.first(), Some(&(oldest_kept + 1)));
        assert_eq!(positions(tail.after(count - 3)), Some(vec![count - 2, count - 1, count]));
    }
}
