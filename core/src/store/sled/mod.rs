//! The embedded engine, on sled 0.34.
//!
//! Chatbots live in one tree, under three key prefixes, so that every change is one atomic batch:
//! - `c` + chatbot id -> record ([`codec`]);
//! - `d` + avatar id -> the avatar image (type, digest, bytes), stored and removed with its chatbot's
//!   change;
//! - `s` + slug -> chatbot id (global uniqueness);
//! - `l` + listing key -> empty (per-organisation order and filters, see [`listing`]);
//! - `h` + chatbot id + revision, `v` + version id: revisions (see `history.rs`);
//! - `x`, `r`, `y`, `k`, `w`: deleted chatbots kept for undelete (see `bin.rs`);
//! - `i` + organisation + idempotency key -> the claim's record (fingerprint, time, outcome);
//! - `t` + claim time + organisation + idempotency key -> empty (claims in time order, for pruning).
//!
//! Every change goes through the [`BatchWriter`]: concurrent writers share one batch and one fsync,
//! and their futures complete, from the writer thread, only once it is on disk. Reads go straight to
//! sled: they may see a change a moment before it is acknowledged, never half of one. Organisations and
//! API keys live in their own trees (`orgs`, `org_names`, `api_keys`); they change rarely and are
//! flushed on each change.

mod bin;
mod changes;
mod chatbots;
mod claims;
mod codec;
mod history;
mod keys;
mod listing;
mod resealing;
mod snapshot;
mod upkeep;
mod writer;

use std::path::Path;

use futures_channel::oneshot;
use sled::transaction::{TransactionError, Transactional};

use crate::auth::{ApiKeyInfo, KeyHash};
use crate::avatar::StoredAvatar;
use crate::changes::{ChangeSignal, ChatbotEvent};
use crate::chatbot::Chatbot;
use crate::domain::{ChatbotId, OrgId, Timestamp};
use crate::error::{Error, Result, Violation, ViolationCode};
use crate::rules::SlugChoice;
use crate::store::{Archive, ChangeLog, Filter, Lifecycle, Listing, Organisation, PageCursor, Retention, StoreFuture};
use chatbots::{avatar_key, claim_slug, put, record_key};
use keys::{decode_key, org_from_bytes};
use writer::{BatchWriter, Tx};

impl From<sled::Error> for Error {
    fn from(err: sled::Error) -> Self {
        Error::storage(err)
    }
}

/// sled's page cache unless told otherwise: enough to keep the hot part of a large store in memory,
/// small enough for a container.
pub const DEFAULT_CACHE_BYTES: u64 = 128 * 1024 * 1024;

/// Whether a key of the chatbots tree holds a record an export carries (a chatbot, an avatar image or a
/// revision):
/// the keys that snapshots keep.
fn is_exported(key: &[u8]) -> bool {
    matches!(key.first(), Some(b'c' | b'd' | b'h' | b'x'))
}

/// The sled engine: a database in one directory, used by one process at a time.
pub struct SledStore {
    db: sled::Db,
    chatbots: sled::Tree,
    orgs: sled::Tree,
    org_names: sled::Tree,
    api_keys: sled::Tree,
    writer: BatchWriter,
    /// The change log's head on disk, advanced by the writer.
    signal: std::sync::Arc<ChangeSignal>,
    /// How long the writer keeps change-log events and idempotency keys.
    retention: Retention,
}

/// How the sled engine runs.
#[derive(Debug, Clone, Copy)]
pub struct SledOptions {
    /// The most memory sled's page cache may take, in bytes: what bounds the memory the store uses
    /// however much it holds (sled's own default is a gigabyte).
    pub cache_bytes: u64,
    /// How long the writer keeps what it prunes between batches.
    pub retention: Retention,
}

impl Default for SledOptions {
    fn default() -> Self {
        SledOptions { cache_bytes: DEFAULT_CACHE_BYTES, retention: Retention::default() }
    }
}

impl SledStore {
    /// Opens (or creates) the store in `dir`, with sled's page cache at [`DEFAULT_CACHE_BYTES`]. Fails if
    /// another process has it open.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        SledStore::open_with(dir, SledOptions::default())
    }

    /// [`SledStore::open`], with `options`. Its writer thread also forgets, between batches, the
    /// change-log events and idempotency keys past their [`Retention`].
    pub fn open_with(dir: impl AsRef<Path>, options: SledOptions) -> Result<Self> {
        let db = sled::Config::new()
            .path(dir.as_ref())
            .mode(sled::Mode::HighThroughput)
            .cache_capacity(options.cache_bytes)
            .open()?;
        let chatbots = db.open_tree("chatbots")?;
        let signal = std::sync::Arc::new(ChangeSignal::default());
        let upkeep = upkeep::Upkeep::new(options.retention);
        Ok(SledStore {
            writer: BatchWriter::new(db.clone(), chatbots.clone(), std::sync::Arc::clone(&signal), upkeep)?,
            signal,
            retention: options.retention,
            chatbots,
            orgs: db.open_tree("orgs")?,
            org_names: db.open_tree("org_names")?,
            api_keys: db.open_tree("api_keys")?,
            db,
        })
    }

    /// Runs `change` on the writer thread; the future completes once its batch is on disk (or the
    /// change is refused, writing nothing).
    fn write<T: Send + 'static>(
        &self,
        change: impl FnOnce(&mut Tx<'_>) -> Result<T> + Send + 'static,
    ) -> StoreFuture<'_, T> {
        Box::pin(async move {
            let (reply, answer) = oneshot::channel();
            self.writer.submit(change, move |outcome| {
                let _ = reply.send(outcome);
            });
            // A reply dropped unanswered means the writer stopped, or the change panicked.
            answer.await.unwrap_or_else(|_| {
                Err(Error::storage("the store could not complete the change (it is closing, or the change failed)"))
            })
        })
    }

    fn read_chatbot(&self, org: OrgId, id: ChatbotId) -> Result<Chatbot> {
        let record = self.chatbots.get(record_key(id))?.ok_or(Error::NotFound)?;
        let chatbot = codec::decode(&record)?;
        if chatbot.organization_id == org { Ok(chatbot) } else { Err(Error::NotFound) }
    }

    fn read_page(&self, org: OrgId, filter: Filter, after: Option<PageCursor>, limit: usize) -> Result<Listing> {
        let (ids, more) = listing::page(&self.chatbots, listing::Shelf::Live, org, filter, after.as_ref(), limit)?;
        let mut items = Vec::with_capacity(ids.len());
        for id in ids {
            // A chatbot deleted between the two reads is simply not listed.
            if let Some(record) = self.chatbots.get(record_key(id))? {
                items.push(codec::decode(&record)?);
            }
        }
        Ok(Listing { items, more })
    }

    /// The organisation called `name`, created with id `new_id` if there is none.
    fn ensure_org_now(&self, name: &str, new_id: OrgId) -> Result<OrgId> {
        let result = (&self.orgs, &self.org_names).transaction(|(orgs, names)| {
            if let Some(id) = names.get(name.as_bytes())? {
                return Ok(org_from_bytes(&id));
            }
            names.insert(name.as_bytes(), new_id.as_bytes())?;
            orgs.insert(new_id.as_bytes(), name.as_bytes())?;
            Ok(Ok(new_id))
        });
        let org = result.map_err(|err: TransactionError<Error>| match err {
            TransactionError::Abort(err) => err,
            TransactionError::Storage(err) => Error::from(err),
        })??;
        self.db.flush()?;
        Ok(org)
    }

    fn add_api_key_now(&self, key: &ApiKeyInfo) -> Result<()> {
        let record = serde_json::to_vec(key).map_err(Error::storage)?;
        let previous = self.api_keys.compare_and_swap(key.hash.as_bytes(), None::<&[u8]>, Some(record))?;
        if let Err(conflict) = previous
            && let Some(current) = conflict.current
            && decode_key(key.hash.as_bytes(), &current)?.organisation_id != key.organisation_id
        {
            return Err(Error::invalid(Violation::new(
                "api_key",
                ViolationCode::NotAllowed,
                "this key already belongs to another organisation",
            )));
        }
        self.db.flush()?;
        Ok(())
    }

    fn key_now(&self, key: KeyHash) -> Result<ApiKeyInfo> {
        let record = self.api_keys.get(key.as_bytes())?.ok_or(Error::Unauthenticated)?;
        decode_key(key.as_bytes(), &record)
    }

    fn all_keys(&self) -> Result<Vec<ApiKeyInfo>> {
        let mut all = Vec::new();
        for entry in &self.api_keys {
            let (hash, record) = entry?;
            all.push(decode_key(&hash, &record)?);
        }
        all.sort_by_key(|key| key.created_at);
        Ok(all)
    }
}

impl ChangeLog for SledStore {
    fn change_signal(&self) -> &ChangeSignal {
        &self.signal
    }

    fn changes(&self, org: OrgId, after: u64, limit: usize) -> StoreFuture<'_, Vec<ChatbotEvent>> {
        Box::pin(async move { changes::read(&self.chatbots, org, after, self.signal.head(), limit) })
    }

    fn all_changes(&self, after: u64, limit: usize) -> StoreFuture<'_, Vec<ChatbotEvent>> {
        Box::pin(async move { changes::read_all(&self.chatbots, after, self.signal.head(), limit) })
    }

    fn publish_changes(&self) -> StoreFuture<'_, ()> {
        Box::pin(async { Ok(()) })
    }

    fn prune_changes(&self, before: Timestamp, limit: usize) -> StoreFuture<'_, usize> {
        Box::pin(async move {
            match upkeep::prune_changes(&self.chatbots, before, self.signal.head(), limit)? {
                Some((_, prune)) => self.write(prune).await,
                None => Ok(0),
            }
        })
    }
}

impl Archive for SledStore {
    fn snapshot(&self) -> StoreFuture<'_, Box<dyn crate::store::Snapshot + '_>> {
        Box::pin(async move {
            let snapshot: Box<dyn crate::store::Snapshot + '_> = Box::new(snapshot::SledSnapshot::take(self).await?);
            Ok(snapshot)
        })
    }

    fn import_organisation(&self, organisation: Organisation) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            if self.ensure_org_now(&organisation.name, organisation.id)? == organisation.id {
                Ok(())
            } else {
                Err(Error::storage(format!("another organisation is already called '{}'", organisation.name)))
            }
        })
    }

    // An import logs no event, and may bring values sealed under any key: each removes the sealing mark.
    fn import_chatbot(&self, chatbot: Chatbot) -> StoreFuture<'_, ()> {
        self.write(move |tx| {
            tx.remove(resealing::SEALING_MARK_KEY);
            claim_slug(tx, chatbot.organization_id, chatbot.id, &chatbot.config.slug, SlugChoice::Exact)?;
            put(tx, &chatbot)
        })
    }

    fn import_avatar(&self, avatar: StoredAvatar) -> StoreFuture<'_, ()> {
        self.write(move |tx| {
            tx.insert(avatar_key(avatar.reference.id), codec::encode_avatar(&avatar)?);
            Ok(())
        })
    }

    fn import_revision(&self, revision: crate::history::StoredRevision) -> StoreFuture<'_, ()> {
        self.write(move |tx| {
            tx.remove(resealing::SEALING_MARK_KEY);
            history::put(tx, &revision)
        })
    }

    fn import_deleted(&self, deleted: crate::history::DeletedChatbot) -> StoreFuture<'_, ()> {
        self.write(move |tx| {
            tx.remove(resealing::SEALING_MARK_KEY);
            let images = bin::images(tx, &deleted.chatbot)?;
            bin::withhold(tx, &images, true);
            bin::put_deleted(tx, &deleted)
        })
    }
}

impl Lifecycle for SledStore {
    fn ready(&self) -> StoreFuture<'_, ()> {
        Box::pin(std::future::ready(Ok(())))
    }

    fn retention(&self) -> Retention {
        self.retention
    }

    fn close(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            self.db.flush()?;
            Ok(())
        })
    }
}

impl std::fmt::Debug for SledStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledStore").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures_executor::block_on;

    use super::*;
    use crate::chatbot::ChatbotDraft;
    use crate::history::Provenance;
    use crate::idempotency::IdempotencyKey;
    use crate::registry::Registry;
    use crate::rules::Rules;

    fn named(name: &str) -> ChatbotDraft {
        ChatbotDraft { name: Some(name.into()), ..Default::default() }
    }

    #[test]
    fn the_writer_forgets_expired_idempotency_keys_by_itself_and_they_may_be_used_again() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let key = || Some(IdempotencyKey::parse("k").expect("a key"));
        let open = |claims: Duration| {
            let retention = Retention { claims, ..Retention::default() };
            let store = SledStore::open_with(dir.path(), SledOptions { retention, ..SledOptions::default() });
            Registry::new(store.expect("opens"), Rules::default())
        };

        let kept = open(Duration::from_secs(3600));
        let org = block_on(kept.admission().create_api_key("acme")).expect("a key").0;
        let first = block_on(kept.create_with(org, named("First"), key(), Provenance::embedded())).expect("created");
        assert!(!first.replayed);
        let reused = block_on(kept.create_with(org, named("Second"), key(), Provenance::embedded()));
        assert!(matches!(reused, Err(Error::IdempotencyKeyReused)), "an hour is not over");
        drop(kept);

        // Kept for no time at all: the writer's upkeep (due every quarter of a second) forgets it.
        let expiring = open(Duration::ZERO);
        let claimed = || block_on(expiring.store.claimed(org, &IdempotencyKey::parse("k").expect("a key")));
        let started = std::time::Instant::now();
        while claimed().expect("readable").is_some() {
            assert!(started.elapsed() < Duration::from_secs(10), "the expired key is still stored");
            std::thread::sleep(Duration::from_millis(50));
        }
        let again = block_on(expiring.create_with(org, named("Second"), key(), Provenance::embedded()))
            .expect("the key is free again");
        assert!(!again.replayed);
        assert_eq!(again.value.config.name.as_str(), "Second");
    }

    #[test]
    fn the_sled_engine_conforms() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let store = SledStore::open(dir.path()).expect("opens");
        block_on(crate::store::conformance::run(&store));
    }

    #[test]
    fn a_corrupt_organisation_id_is_a_storage_error_not_a_panic() {
        assert!(matches!(org_from_bytes(b"short"), Err(Error::Storage(_))));
        assert!(org_from_bytes(&[7u8; 16]).is_ok());
    }
}
