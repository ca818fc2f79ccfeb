//! The single writer: every change to the chatbot tree goes through one thread that takes all the
//! changes waiting, applies them as one atomic sled batch, flushes once, and only then answers each
//! writer. A crash leaves each change wholly applied or wholly absent, concurrent writers share one
//! fsync, and since only this thread writes, changes are serializable without locks or retries.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;

use super::changes;
use super::upkeep::Upkeep;
use crate::changes::{ChangeSignal, ChatbotEvent};
use crate::domain::OrgId;
use crate::error::{Error, Result};

/// Most changes applied in one batch.
const MAX_BATCH: usize = 1024;

/// The view of the tree one change works on: the tree, the changes before it in the same batch, and
/// its own writes. Its writes count only if the change succeeds.
pub(super) struct Tx<'a> {
    tree: &'a sled::Tree,
    earlier: &'a HashMap<Vec<u8>, Option<Vec<u8>>>,
    writes: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    events: Vec<ChatbotEvent>,
}

impl Tx<'_> {
    /// The value of `key` as this change sees it.
    pub(super) fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if let Some((_, value)) = self.writes.iter().rev().find(|(k, _)| k.as_slice() == key) {
            return Ok(value.clone());
        }
        if let Some(value) = self.earlier.get(key) {
            return Ok(value.clone());
        }
        Ok(self.tree.get(key)?.map(|v| v.to_vec()))
    }

    /// Every key starting with `prefix` and its value, as this change sees them, in key order.
    pub(super) fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut seen: std::collections::BTreeMap<Vec<u8>, Option<Vec<u8>>> = std::collections::BTreeMap::new();
        for entry in self.tree.scan_prefix(prefix) {
            let (key, value) = entry?;
            seen.insert(key.to_vec(), Some(value.to_vec()));
        }
        let later = self.earlier.iter().chain(self.writes.iter().map(|(k, v)| (k, v)));
        for (key, value) in later.filter(|(key, _)| key.starts_with(prefix)) {
            seen.insert(key.clone(), value.clone());
        }
        Ok(seen.into_iter().filter_map(|(key, value)| value.map(|value| (key, value))).collect())
    }

    /// Sets `key` to `value` when the change commits.
    pub(super) fn insert(&mut self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.writes.push((key.into(), Some(value.into())));
    }

    /// Removes `key` when the change commits.
    pub(super) fn remove(&mut self, key: impl Into<Vec<u8>>) {
        self.writes.push((key.into(), None));
    }

    /// Adds `event` to the change log when the change commits, at the next position.
    pub(super) fn log(&mut self, event: ChatbotEvent) {
        self.events.push(event);
    }
}

/// What the writer thread does with one change once the batch is on disk.
type Done = Box<dyn FnOnce(Result<()>) + Send>;
/// One change: it runs on the writer thread and says whether it commits.
pub(super) type Job = Box<dyn FnOnce(&mut Tx<'_>) -> Option<Done> + Send>;

/// `change` as a job: if it returns `Ok`, its writes are applied atomically with the rest of their
/// batch and flushed before `done` receives the outcome; if it returns `Err`, nothing it wrote is
/// applied. `done` runs on the writer thread, so it must be quick (e.g. complete a channel).
pub(super) fn job<T: Send + 'static>(
    change: impl FnOnce(&mut Tx<'_>) -> Result<T> + Send + 'static,
    done: impl FnOnce(Result<T>) + Send + 'static,
) -> Job {
    Box::new(move |tx| match change(tx) {
        Ok(value) => Some(Box::new(move |flushed: Result<()>| done(flushed.map(|()| value)))),
        Err(err) => {
            done(Err(err));
            None
        }
    })
}

/// Serializes and batches every write to one sled tree; see the module documentation.
pub(super) struct BatchWriter {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
    /// Changes queued and not yet taken into a batch (the `chatbotd_store_queue_depth` gauge).
    waiting: Arc<AtomicUsize>,
    /// While a snapshot is being read: the value each record key had when it was taken, kept just
    /// before a batch first changes it.
    undo: Undo,
}

/// The undo log of the snapshot being read, if one is.
pub(super) type Undo = Arc<Mutex<Option<UndoLog>>>;

/// What a snapshot reads instead of the tree: for each record key changed since the snapshot was taken
/// and not yet read by it, the value (or absence) it had then. Keys the reader has passed need no
/// keeping: it has read them as they were.
#[derive(Debug, Default)]
pub(super) struct UndoLog {
    /// Record key -> its value when the snapshot was taken.
    pub(super) kept: HashMap<Vec<u8>, Option<Vec<u8>>>,
    /// The reader has read every record key up to this one.
    pub(super) read_upto: Vec<u8>,
}

impl BatchWriter {
    /// Starts the writer thread for `tree` of `db`; it advances `signal` as logged changes reach disk,
    /// and runs `upkeep` between batches whenever it is due.
    pub(super) fn new(db: sled::Db, tree: sled::Tree, signal: Arc<ChangeSignal>, upkeep: Upkeep) -> Result<Self> {
        let head = changes::counter(&tree, changes::HEAD_KEY)?;
        signal.advance_all(head);
        let (jobs, queue) = mpsc::channel::<Job>();
        let waiting = Arc::new(AtomicUsize::new(0));
        let undo = Undo::default();
        let (taken, kept) = (Arc::clone(&waiting), Arc::clone(&undo));
        let log = Log { head, signal };
        let thread = std::thread::Builder::new()
            .name("chatbotd-writer".into())
            .spawn(move || run(&db, &tree, &queue, &taken, &kept, log, upkeep))
            .expect("the writer thread starts");
        Ok(BatchWriter { jobs: Some(jobs), thread: Some(thread), waiting, undo })
    }

    /// Queues `change` to run on the writer thread, as a [`job`].
    pub(super) fn submit<T: Send + 'static>(
        &self,
        change: impl FnOnce(&mut Tx<'_>) -> Result<T> + Send + 'static,
        done: impl FnOnce(Result<T>) + Send + 'static,
    ) {
        let job = job(change, done);
        // If the writer is gone (only while the store is being dropped), the job and its `done` are
        // dropped unanswered: the caller sees a closed channel.
        if let Some(jobs) = &self.jobs {
            self.waiting.fetch_add(1, Ordering::Relaxed);
            let _ = jobs.send(job);
        }
    }
}

impl BatchWriter {
    /// The undo log snapshots read through; see [`Undo`].
    pub(super) fn undo(&self) -> &Undo {
        &self.undo
    }
}

impl Drop for BatchWriter {
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The change log's state on the writer thread: the last position given, and the signal watchers
/// wait on (advanced only once a position is on disk).
struct Log {
    head: u64,
    signal: Arc<ChangeSignal>,
}

/// The writer thread: batch, apply, flush, answer; until every sender is gone. Between batches, the
/// upkeep's changes when it is due, batched like any other.
fn run(
    db: &sled::Db,
    tree: &sled::Tree,
    queue: &mpsc::Receiver<Job>,
    waiting: &AtomicUsize,
    undo: &Undo,
    mut log: Log,
    mut upkeep: Upkeep,
) {
    let mut own: VecDeque<Job> = VecDeque::new();
    loop {
        // Jobs taken from the queue (not the upkeep's own), for the queue's depth.
        let mut queued = 0;
        let first = match own.pop_front() {
            Some(job) => job,
            None => match queue.recv_timeout(upkeep.due_in()) {
                Ok(job) => {
                    queued += 1;
                    job
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    own.extend(upkeep.jobs(tree, log.head));
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            },
        };
        let mut earlier: HashMap<Vec<u8>, Option<Vec<u8>>> = HashMap::new();
        let mut batch = sled::Batch::default();
        let mut done: Vec<Done> = Vec::new();
        let mut next = Some(first);
        let mut taken = 0;
        let logged_from = log.head;
        let mut logged_orgs: HashSet<OrgId> = HashSet::new();
        let mut unloggable = None;
        while let Some(job) = next.take() {
            taken += 1;
            let mut tx = Tx { tree, earlier: &earlier, writes: Vec::new(), events: Vec::new() };
            // A change that panics is refused like one that fails (its caller's channel closes); the
            // writer, and every other change, carries on.
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&mut tx)));
            if let Ok(Some(finish)) = outcome {
                let Tx { writes, events, .. } = tx;
                for (key, value) in writes {
                    match &value {
                        Some(value) => batch.insert(key.as_slice(), value.as_slice()),
                        None => batch.remove(key.as_slice()),
                    }
                    earlier.insert(key, value);
                }
                // Positions only for changes that commit, in the order they run: no gaps.
                for mut event in events {
                    log.head += 1;
                    event.position = log.head;
                    logged_orgs.insert(event.organization_id);
                    match changes::writes(&event) {
                        Ok(writes) => {
                            writes.iter().for_each(|(key, value)| batch.insert(key.as_slice(), value.as_slice()))
                        }
                        Err(err) => unloggable = Some(err),
                    }
                }
                done.push(finish);
            }
            if taken < MAX_BATCH {
                next = own.pop_front().or_else(|| queue.try_recv().ok().inspect(|_| queued += 1));
            }
        }
        let depth = waiting.fetch_sub(queued, Ordering::Relaxed).saturating_sub(queued);
        metrics::gauge!(crate::metric::STORE_QUEUE_DEPTH).set(depth as f64);
        if done.is_empty() {
            continue;
        }
        metrics::histogram!(crate::metric::STORE_BATCH_SIZE).record(done.len() as f64);
        if log.head != logged_from {
            batch.insert(changes::HEAD_KEY, &log.head.to_be_bytes());
        }
        let kept = keep_for_snapshot(tree, undo, earlier.keys());
        let flushing = std::time::Instant::now();
        let outcome = match unloggable {
            // An event that cannot be written fails its whole batch: a change never commits unlogged.
            Some(err) => Err(err),
            None => kept
                .and_then(|()| tree.apply_batch(batch))
                .and_then(|()| db.flush().map(drop))
                .map_err(|err| Error::storage(err.to_string())),
        };
        metrics::histogram!(crate::metric::STORE_FLUSH).record(flushing.elapsed().as_secs_f64());
        match &outcome {
            Ok(()) => log.signal.advance(log.head, logged_orgs),
            // Back to what the tree holds: positions given to a batch that did not commit are given again.
            Err(_) => log.head = changes::counter(tree, changes::HEAD_KEY).unwrap_or(logged_from),
        }
        for finish in done {
            finish(outcome.as_ref().map(|_| ()).map_err(|err| Error::storage(err.to_string())));
        }
    }
}

/// While a snapshot is being read, keeps the value each record key about to change had when the
/// snapshot was taken (the first change since wins), unless the reader has passed it already.
fn keep_for_snapshot<'k>(tree: &sled::Tree, undo: &Undo, keys: impl Iterator<Item = &'k Vec<u8>>) -> sled::Result<()> {
    let mut undo = undo.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let Some(log) = undo.as_mut() else { return Ok(()) };
    for key in keys.filter(|key| super::is_exported(key) && **key > log.read_upto) {
        if !log.kept.contains_key(key) {
            log.kept.insert(key.clone(), tree.get(key)?.map(|value| value.to_vec()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::error::Violation;
    use crate::error::ViolationCode;

    impl BatchWriter {
        /// Submits `change` and waits for its outcome.
        fn write<T: Send + 'static>(
            &self,
            change: impl FnOnce(&mut Tx<'_>) -> Result<T> + Send + 'static,
        ) -> Result<T> {
            let (reply, answer) = mpsc::sync_channel(1);
            self.submit(change, move |outcome| {
                let _ = reply.send(outcome);
            });
            answer.recv().unwrap_or_else(|_| Err(Error::storage("the writer dropped the change")))
        }
    }

    fn writer() -> (tempfile::TempDir, sled::Tree, BatchWriter) {
        let dir = tempfile::tempdir().expect("a temp dir");
        let db = sled::Config::new().path(dir.path()).open().expect("sled opens");
        let tree = db.open_tree("t").expect("a tree");
        (
            dir,
            tree.clone(),
            BatchWriter::new(db, tree, Arc::default(), Upkeep::new(crate::store::Retention::default()))
                .expect("the writer starts"),
        )
    }

    #[test]
    fn a_refused_change_writes_nothing() {
        let (_dir, tree, writer) = writer();
        let refused = writer.write(|tx| {
            tx.insert(b"a".as_slice(), b"1".as_slice());
            Err::<(), _>(Error::invalid(Violation::new("x", ViolationCode::Required, "no")))
        });
        assert!(refused.is_err());
        assert_eq!(tree.get(b"a").expect("readable"), None);
    }

    #[test]
    fn a_change_sees_its_own_writes_and_then_the_tree() {
        let (_dir, tree, writer) = writer();
        writer
            .write(|tx| {
                tx.insert(b"a".as_slice(), b"1".as_slice());
                Ok(())
            })
            .expect("written");
        let seen = writer
            .write(|tx| {
                let before = tx.get(b"a")?;
                tx.insert(b"a".as_slice(), b"2".as_slice());
                Ok((before, tx.get(b"a")?))
            })
            .expect("written");
        assert_eq!(seen, (Some(b"1".to_vec()), Some(b"2".to_vec())));
        assert_eq!(tree.get(b"a").expect("readable").as_deref(), Some(b"2".as_slice()));
    }

    #[test]
    fn a_change_that_panics_is_refused_and_the_writer_carries_on() {
        let (_dir, tree, writer) = writer();
        let panicked = writer.write(|tx| -> Result<()> {
            tx.insert(b"a".as_slice(), b"1".as_slice());
            panic!("a bug in a change")
        });
        assert!(panicked.is_err());
        writer
            .write(|tx| {
                tx.insert(b"b".as_slice(), b"2".as_slice());
                Ok(())
            })
            .expect("the writer still works");
        assert_eq!(tree.get(b"a").expect("readable"), None);
        assert!(tree.get(b"b").expect("readable").is_some());
    }

    #[test]
    fn concurrent_claims_of_one_key_have_one_winner() {
        let (_dir, _tree, writer) = writer();
        let writer = Arc::new(writer);
        let winners: usize = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..32u8)
                .map(|i| {
                    let writer = Arc::clone(&writer);
                    scope.spawn(move || {
                        writer.write(move |tx| match tx.get(b"slug")? {
                            Some(_) => Err(Error::SlugTaken { slug: "slug".into() }),
                            None => {
                                tx.insert(b"slug".as_slice(), [i].as_slice());
                                Ok(())
                            }
                        })
                    })
                })
                .collect();
            handles.into_iter().map(|h| usize::from(h.join().expect("joined").is_ok())).sum()
        });
        assert_eq!(winners, 1);
    }
}
