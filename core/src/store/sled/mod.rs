//! The embedded engine, on sled 0.34.
//!
//! Chatbots live in one tree, under three key prefixes, so that every change is one atomic batch:
//! - `c` + chatbot id -> record ([`codec`]);
//! - `d` + avatar id -> the avatar image (type, digest, bytes), stored and removed with its chatbot's
//!   change;
//! - `s` + slug -> chatbot id (global uniqueness);
//! - `l` + listing key -> empty (per-organisation order and filters, see [`listing`]);
//! - `i` + organisation + idempotency key -> the claim's record (fingerprint, time, outcome);
//! - `t` + claim time + organisation + idempotency key -> empty (claims in time order, for pruning).
//!
//! Every change goes through the [`BatchWriter`]: concurrent writers share one batch and one fsync,
//! and their futures complete, from the writer thread, only once it is on disk. Reads go straight to
//! sled: they may see a change a moment before it is acknowledged, never half of one. Organisations and
//! API keys live in their own trees (`orgs`, `org_names`, `api_keys`); they change rarely and are
//! flushed on each change.

mod changes;
mod codec;
mod listing;
mod snapshot;
mod upkeep;
mod writer;

use std::path::Path;

use futures_channel::oneshot;
use sled::transaction::{TransactionError, Transactional};

use crate::auth::{ApiKeyInfo, KeyHash};
use crate::avatar::{AvatarId, AvatarRef, StoredAvatar};
use crate::changes::{ChangeKind, ChangeSignal, ChatbotEvent};
use crate::chatbot::Chatbot;
use crate::domain::{ChatbotId, KeyId, OrgId, Slug, Timestamp};
use crate::error::{Error, Result, Violation, ViolationCode};
use crate::idempotency::{Claim, IdempotencyKey, Outcome, Record as ClaimRecord, Verdict, Written};
use crate::rules::SlugChoice;
use crate::store::{
    Archive, ChangeLog, ChatbotDeletion, ChatbotStore, ChatbotUpdate, ClaimStore, Filter, KeyStore, Lifecycle, Listing,
    NewChatbot, Organisation, PageCursor, Retention, StoreFuture, slug_candidates,
};
use writer::{BatchWriter, Tx};

impl From<sled::Error> for Error {
    fn from(err: sled::Error) -> Self {
        Error::storage(err)
    }
}

/// sled's page cache unless told otherwise: enough to keep the hot part of a large store in memory,
/// small enough for a container.
pub const DEFAULT_CACHE_BYTES: u64 = 128 * 1024 * 1024;

/// Key of a chatbot's record.
fn record_key(id: ChatbotId) -> Vec<u8> {
    let mut key = Vec::with_capacity(17);
    key.push(b'c');
    key.extend_from_slice(id.as_bytes());
    key
}

/// Key of an avatar image.
fn avatar_key(id: AvatarId) -> Vec<u8> {
    [b"d".as_slice(), id.as_bytes()].concat()
}

/// Whether a key of the chatbots tree holds a record an export carries (a chatbot or an avatar image):
/// the keys that snapshots keep.
fn is_exported(key: &[u8]) -> bool {
    matches!(key.first(), Some(b'c' | b'd'))
}

/// Points the store from the avatar image `before` to `after`: the image no longer pointed at is
/// removed, the new one (if any) stored, in the same batch as the chatbot's change.
fn replace_avatar(
    tx: &mut Tx<'_>,
    before: Option<AvatarRef>,
    after: Option<AvatarRef>,
    new: Option<&StoredAvatar>,
) -> Result<()> {
    if let Some(old) = before.filter(|old| Some(*old) != after) {
        tx.remove(avatar_key(old.id));
    }
    if let Some(new) = new {
        tx.insert(avatar_key(new.reference.id), codec::encode_avatar(new)?);
    }
    Ok(())
}

/// Key of a slug's owner.
fn slug_key(slug: &Slug) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + slug.as_str().len());
    key.push(b's');
    key.extend_from_slice(slug.as_str().as_bytes());
    key
}

/// Key of the record of `org`'s idempotency key `key`.
fn claim_key(org: OrgId, key: &IdempotencyKey) -> Vec<u8> {
    [b"i".as_slice(), org.as_bytes(), key.as_str().as_bytes()].concat()
}

/// The start of the time index's keys for claims made at `at`: they sort in time order.
fn claim_time_prefix(at: Timestamp) -> Vec<u8> {
    [b"t".as_slice(), &(at.as_micros().max(0) as u64).to_be_bytes()].concat()
}

/// Key of a claim in the time index.
fn claim_time_key(at: Timestamp, org: OrgId, key: &IdempotencyKey) -> Vec<u8> {
    [claim_time_prefix(at).as_slice(), org.as_bytes(), key.as_str().as_bytes()].concat()
}

fn decode_claim(bytes: &[u8]) -> Result<ClaimRecord> {
    serde_json::from_slice(bytes).map_err(Error::storage)
}

/// What a write finds of its key: `None` when nothing stops it (no record, or an expired one, whose
/// index entry is dropped since the write replaces the record), the outcome to replay when the same
/// request claimed it, [`Error::IdempotencyKeyReused`] when another did.
fn check_claim(tx: &mut Tx<'_>, org: OrgId, claim: &Claim) -> Result<Option<Outcome>> {
    let stored = tx.get(&claim_key(org, &claim.key))?.map(|bytes| decode_claim(&bytes)).transpose()?;
    match claim.verdict(stored)? {
        Verdict::Unclaimed => Ok(None),
        Verdict::Expired { at } => {
            tx.remove(claim_time_key(at, org, &claim.key));
            Ok(None)
        }
        Verdict::Replay(outcome) => Ok(Some(outcome)),
    }
}

/// Records `outcome` under the claimed key, in the same batch as the write.
fn record_claim(tx: &mut Tx<'_>, org: OrgId, claim: &Claim, outcome: Outcome) -> Result<()> {
    let record = ClaimRecord { fingerprint: claim.fingerprint, at: claim.at, outcome };
    tx.insert(claim_key(org, &claim.key), serde_json::to_vec(&record).map_err(Error::storage)?);
    tx.insert(claim_time_key(claim.at, org, &claim.key), Vec::new());
    Ok(())
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
        let (ids, more) = listing::page(&self.chatbots, org, filter, after.as_ref(), limit)?;
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

/// A key's record as stored: JSON, or (written before keys had records) just its organisation's 16
/// bytes, which still reads, with an id taken from its hash.
fn decode_key(hash: &[u8], record: &[u8]) -> Result<ApiKeyInfo> {
    let hash: [u8; 32] = hash.try_into().map_err(|_| Error::storage("a key hash is not 32 bytes"))?;
    if record.len() == 16 {
        let mut id = [0u8; 16];
        id.copy_from_slice(&hash[..16]);
        return Ok(ApiKeyInfo {
            id: KeyId::from_bytes(id),
            organisation_id: org_from_bytes(record)?,
            hash: KeyHash::from_bytes(hash),
            prefix: String::new(),
            created_at: Timestamp::from_micros(0),
            last_used_at: None,
        });
    }
    serde_json::from_slice(record).map_err(Error::storage)
}

impl ChatbotStore for SledStore {
    fn create(&self, new: NewChatbot) -> StoreFuture<'_, Written<Chatbot>> {
        self.write(move |tx| {
            let NewChatbot { mut chatbot, slug, claim } = new;
            let org = chatbot.organization_id;
            if let Some(claim) = &claim
                && let Some(outcome) = check_claim(tx, org, claim)?
            {
                return outcome.replayed_chatbot();
            }
            chatbot.config.slug = claim_slug(tx, chatbot.id, &chatbot.config.slug, slug)?;
            put(tx, &chatbot)?;
            tx.log(ChatbotEvent::of(ChangeKind::Created, &chatbot));
            if let Some(claim) = &claim {
                record_claim(tx, org, claim, Outcome::Chatbot(Box::new(chatbot.clone())))?;
            }
            Ok(Written::fresh(chatbot))
        })
    }

    fn get(&self, org: OrgId, id: ChatbotId) -> StoreFuture<'_, Chatbot> {
        Box::pin(async move { self.read_chatbot(org, id) })
    }

    fn public_by_slug(&self, slug: &Slug) -> StoreFuture<'_, Option<Chatbot>> {
        let key = slug_key(slug);
        Box::pin(async move {
            // An unknown slug reads a record that is not there, and decodes a stand-in, as a private
            // one reads and decodes its own.
            let id = match self.chatbots.get(key)? {
                Some(owner) => {
                    <[u8; 16]>::try_from(owner.as_ref()).map_err(|_| Error::storage("a slug owner is not an id"))?
                }
                None => [0; 16],
            };
            // A chatbot deleted between the two reads is simply not found.
            let chatbot = match self.chatbots.get(record_key(ChatbotId::from_bytes(id)))? {
                Some(record) => Some(codec::decode(&record)?),
                None => {
                    std::hint::black_box(codec::decode(&codec::STAND_IN)?);
                    None
                }
            };
            Ok(chatbot.filter(|chatbot| chatbot.config.is_public && chatbot.config.active))
        })
    }

    fn list(&self, org: OrgId, filter: Filter, after: Option<PageCursor>, limit: usize) -> StoreFuture<'_, Listing> {
        Box::pin(async move { self.read_page(org, filter, after, limit) })
    }

    fn update(&self, update: ChatbotUpdate) -> StoreFuture<'_, Written<Chatbot>> {
        self.write(move |tx| {
            if let Some(claim) = &update.claim
                && let Some(outcome) = check_claim(tx, update.org, claim)?
            {
                return outcome.replayed_chatbot();
            }
            let current = owned(tx, update.org, update.id, None)?;
            let (mut next, slug) = update.apply(&current)?;
            next.config.slug = claim_slug(tx, next.id, &next.config.slug, slug)?;
            if next.config.slug != current.config.slug {
                tx.remove(slug_key(&current.config.slug));
            }
            tx.remove(listing::key(&current));
            put(tx, &next)?;
            let (before, after) = (current.config.settings.avatar, next.config.settings.avatar);
            replace_avatar(tx, before, after, update.avatar.as_ref())?;
            tx.log(ChatbotEvent::of(ChangeKind::Updated, &next));
            if let Some(claim) = &update.claim {
                record_claim(tx, update.org, claim, Outcome::Chatbot(Box::new(next.clone())))?;
            }
            Ok(Written::fresh(next))
        })
    }

    fn delete(&self, deletion: ChatbotDeletion) -> StoreFuture<'_, Written<()>> {
        self.write(move |tx| {
            if let Some(claim) = &deletion.claim
                && let Some(outcome) = check_claim(tx, deletion.org, claim)?
            {
                return outcome.replayed_deletion();
            }
            let current = owned(tx, deletion.org, deletion.id, deletion.expected_etag.as_deref())?;
            tx.remove(record_key(current.id));
            tx.remove(slug_key(&current.config.slug));
            tx.remove(listing::key(&current));
            replace_avatar(tx, current.config.settings.avatar, None, None)?;
            tx.log(ChatbotEvent::of(ChangeKind::Deleted, &current));
            if let Some(claim) = &deletion.claim {
                record_claim(tx, deletion.org, claim, Outcome::Deleted)?;
            }
            Ok(Written::fresh(()))
        })
    }

    fn avatar(&self, reference: AvatarRef) -> StoreFuture<'_, Option<StoredAvatar>> {
        Box::pin(async move {
            let stored = self.chatbots.get(avatar_key(reference.id))?;
            stored.map(|bytes| codec::decode_avatar(reference.id, &bytes)).transpose()
        })
    }
}

impl KeyStore for SledStore {
    fn ensure_org(&self, name: &str) -> StoreFuture<'_, OrgId> {
        let name = name.to_owned();
        Box::pin(async move { self.ensure_org_now(&name, OrgId::new_random()) })
    }

    fn organisations(&self) -> StoreFuture<'_, Vec<Organisation>> {
        Box::pin(async move {
            let mut all = Vec::new();
            for entry in &self.orgs {
                let (id, name) = entry?;
                let name = String::from_utf8(name.to_vec()).map_err(Error::storage)?;
                all.push(Organisation { id: org_from_bytes(&id)?, name });
            }
            Ok(all)
        })
    }

    fn add_api_key(&self, key: ApiKeyInfo) -> StoreFuture<'_, ()> {
        Box::pin(async move { self.add_api_key_now(&key) })
    }

    fn org_of_key(&self, key: KeyHash) -> StoreFuture<'_, OrgId> {
        Box::pin(async move { Ok(self.key_now(key)?.organisation_id) })
    }

    fn add_first_api_key(&self, key: ApiKeyInfo) -> StoreFuture<'_, bool> {
        // One process owns a sled store, and it bootstraps before it serves: nothing can race this.
        Box::pin(async move {
            if !self.api_keys.is_empty() {
                return Ok(false);
            }
            self.add_api_key_now(&key)?;
            Ok(true)
        })
    }

    fn api_keys(&self, org: Option<OrgId>) -> StoreFuture<'_, Vec<ApiKeyInfo>> {
        Box::pin(async move {
            let mut keys = self.all_keys()?;
            keys.retain(|key| org.is_none_or(|org| key.organisation_id == org));
            Ok(keys)
        })
    }

    fn revoke_api_key(&self, id: KeyId) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let key = self.all_keys()?.into_iter().find(|key| key.id == id).ok_or(Error::NotFound)?;
            self.api_keys.remove(key.hash.as_bytes())?;
            self.db.flush()?;
            Ok(())
        })
    }

    fn touch_api_key(&self, key: KeyHash, at: Timestamp) -> StoreFuture<'_, ()> {
        // Advisory, so not flushed: a crash may forget the last minute of use.
        Box::pin(async move {
            self.api_keys.fetch_and_update(key.as_bytes(), |record| {
                let mut info = decode_key(key.as_bytes(), record?).ok()?;
                info.last_used_at = Some(at);
                serde_json::to_vec(&info).ok()
            })?;
            Ok(())
        })
    }
}

impl ClaimStore for SledStore {
    fn claimed(&self, org: OrgId, key: &IdempotencyKey) -> StoreFuture<'_, Option<ClaimRecord>> {
        let key = claim_key(org, key);
        Box::pin(async move { self.chatbots.get(key)?.map(|bytes| decode_claim(&bytes)).transpose() })
    }

    fn prune_claims(&self, before: Timestamp, limit: usize) -> StoreFuture<'_, usize> {
        Box::pin(async move {
            match upkeep::prune_claims(&self.chatbots, before, limit)? {
                Some((_, prune)) => self.write(prune).await,
                None => Ok(0),
            }
        })
    }
}

impl ChangeLog for SledStore {
    fn change_signal(&self) -> &ChangeSignal {
        &self.signal
    }

    fn changes(&self, org: OrgId, after: u64, limit: usize) -> StoreFuture<'_, Vec<ChatbotEvent>> {
        Box::pin(async move { changes::read(&self.chatbots, org, after, self.signal.head(), limit) })
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

    fn import_chatbot(&self, chatbot: Chatbot) -> StoreFuture<'_, ()> {
        self.write(move |tx| {
            claim_slug(tx, chatbot.id, &chatbot.config.slug, SlugChoice::Exact)?;
            put(tx, &chatbot)
        })
    }

    fn import_avatar(&self, avatar: StoredAvatar) -> StoreFuture<'_, ()> {
        self.write(move |tx| {
            tx.insert(avatar_key(avatar.reference.id), codec::encode_avatar(&avatar)?);
            Ok(())
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

/// The stored chatbot if `org` owns it and it matches `expected_etag` (when given).
fn owned(tx: &Tx<'_>, org: OrgId, id: ChatbotId, expected_etag: Option<&str>) -> Result<Chatbot> {
    let record = tx.get(&record_key(id))?.ok_or(Error::NotFound)?;
    let chatbot = codec::decode(&record)?;
    if chatbot.organization_id != org {
        return Err(Error::NotFound);
    }
    chatbot.check_etag(expected_etag)?;
    Ok(chatbot)
}

/// Points the slug index at `id` and returns the slug used: `wanted` itself if kept or exact (it must
/// be free or already `id`'s), or its first free `-n` variant if derived.
fn claim_slug(tx: &mut Tx<'_>, id: ChatbotId, wanted: &Slug, choice: SlugChoice) -> Result<Slug> {
    for candidate in slug_candidates(wanted, choice) {
        let key = slug_key(&candidate);
        match tx.get(&key)? {
            Some(owner) if owner.as_slice() != id.as_bytes() => continue,
            Some(_) => return Ok(candidate),
            None => {
                tx.insert(key, id.as_bytes().as_slice());
                return Ok(candidate);
            }
        }
    }
    Err(Error::SlugTaken { slug: wanted.to_string() })
}

/// Writes the record and its listing key.
fn put(tx: &mut Tx<'_>, chatbot: &Chatbot) -> Result<()> {
    tx.insert(record_key(chatbot.id), codec::encode(chatbot)?);
    tx.insert(listing::key(chatbot), Vec::new());
    Ok(())
}

/// An organisation id as stored: 16 bytes. Anything else is a corrupt store, not a reason to panic.
fn org_from_bytes(bytes: &[u8]) -> Result<OrgId> {
    let id: [u8; 16] = bytes.try_into().map_err(|_| Error::storage("a stored organisation id is not 16 bytes"))?;
    Ok(OrgId::from_bytes(id))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures_executor::block_on;

    use super::*;
    use crate::chatbot::ChatbotDraft;
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
        let first = block_on(kept.create_with(org, named("First"), key())).expect("created");
        assert!(!first.replayed);
        let reused = block_on(kept.create_with(org, named("Second"), key()));
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
        let again = block_on(expiring.create_with(org, named("Second"), key())).expect("the key is free again");
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
