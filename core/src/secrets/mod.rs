//! Secrets sealed at rest: a chatbot's `openai_api_key` (and every field the catalog marks secret) is
//! sealed with AES-256-GCM under the first key of a [`Keyring`] before any store sees it, with the
//! chatbot, its organisation and the field as associated data, so that a sealed value copied to
//! another chatbot does not open. The database, its backups and every export hold only sealed values
//! and the masked form the faces show; the keyring lives apart from them.
//!
//! [`Secrets`] is the service around it: sealing on every write (the registry's), opening on request
//! (only [`Registry::reveal_openai_api_key`](crate::Registry::reveal_openai_api_key): the faces never
//! open anything), rotation to the first key in bounded batches while the service serves, and a census
//! of what is sealed under which key.

mod keyring;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

pub use keyring::{Keyring, Place};

use crate::chatbot::{Chatbot, ChatbotConfig};
use crate::domain::{ChatbotId, OpenAiKey, OrgId, Secret, Timestamp};
use crate::error::{Error, Result};
use crate::store::{Change, Reseal, ResealCursor, SealingMark, Store};

/// Passes a rotation makes at most while writes keep leaving values behind it.
pub const MAX_ROTATION_PASSES: usize = 5;

/// The keyring's file in an embedded store's data directory, made on its first start.
pub const KEYRING_FILE: &str = "secret-keys";

/// Chatbots resealed in one batch by default: one atomic write each, short enough not to hold up the
/// writes around it.
pub const DEFAULT_ROTATION_BATCH: usize = 100;

/// Sealing, opening and rotating stored secrets; see the module documentation.
pub struct Secrets {
    store: Arc<dyn Store>,
    /// `None`: secrets are stored in clear (an embedder's choice, or `--allow-plaintext-secrets`).
    keyring: Option<Arc<Keyring>>,
    /// The last census taken (by [`Secrets::census`] or at the end of a rotation), and when.
    last_census: Mutex<Option<(Census, Timestamp)>>,
}

/// How the stored secrets stand: how many values are sealed under which key. A value is one secret
/// field of one stored content (the live record, each revision kept, a deleted chatbot).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Census {
    /// Sealed under the keyring's first key: nothing to do.
    pub current: usize,
    /// Sealed under another key the keyring holds: the next rotation reseals them.
    pub older: usize,
    /// Sealed under a key the keyring does not hold: they cannot be opened until it is given back.
    pub unknown_key: usize,
    /// In clear (written before sealing, or without a keyring): the next rotation seals them.
    pub clear: usize,
}

impl Census {
    /// Values not under the first key: what a rotation is for (and what keeps an old key needed).
    pub fn stale(&self) -> usize {
        self.older + self.unknown_key + self.clear
    }
}

/// A rotation's progress, after each batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rotation {
    /// Stored contents looked at so far.
    pub contents: usize,
    /// Contents rewritten with their secrets under the first key.
    pub resealed: usize,
    /// Whether the pass is through.
    pub done: bool,
}

impl Secrets {
    /// Sealing with `keyring` (none: in clear) over `store`.
    pub(crate) fn new(store: Arc<dyn Store>, keyring: Option<Keyring>) -> Self {
        Secrets { store, keyring: keyring.map(Arc::new), last_census: Mutex::new(None) }
    }

    /// The keyring, if secrets are sealed.
    pub fn keyring(&self) -> Option<&Keyring> {
        self.keyring.as_deref()
    }

    /// Seals each secret of `config` (of `org`'s chatbot `id`) still in clear. A value equal to what
    /// `current` holds keeps its sealed form, so that writing the same secret again changes nothing.
    pub(crate) fn seal(&self, org: OrgId, id: ChatbotId, config: &mut ChatbotConfig, current: Option<&ChatbotConfig>) {
        let Some(keyring) = &self.keyring else { return };
        for (field, secret) in config.secrets_mut() {
            let Some(Secret::Clear(clear)) = secret.as_ref() else { continue };
            let place = Place { org, chatbot: id, field: field.json_path() };
            let now = current.and_then(|current| current.secrets().into_iter().find(|(f, _)| *f == field)?.1.as_ref());
            let kept = match now {
                Some(Secret::Sealed(sealed)) if keyring.open(sealed, place).is_ok_and(|open| open == *clear) => {
                    Secret::Sealed(sealed.clone())
                }
                _ => Secret::Sealed(keyring.seal(clear, place)),
            };
            *secret = Some(kept);
        }
    }

    /// `change`, with the secrets of what it proposes sealed against the chatbot it changes.
    pub(crate) fn sealing(self: &Arc<Self>, change: Change) -> Change {
        let secrets = Arc::clone(self);
        Box::new(move |current: &Chatbot| {
            let mut proposal = change(current)?;
            secrets.seal(current.organization_id, current.id, &mut proposal.config, Some(&current.config));
            Ok(proposal)
        })
    }

    /// The clear value of `chatbot`'s `openai_api_key`, if it has one.
    pub fn open_openai_api_key(&self, chatbot: &Chatbot) -> Result<Option<OpenAiKey>> {
        match &chatbot.config.openai_api_key {
            None => Ok(None),
            Some(Secret::Clear(key)) => Ok(Some(key.clone())),
            Some(Secret::Sealed(sealed)) => {
                let keyring = self.keyring().ok_or_else(|| Error::Keyring("no keyring to open the secret".into()))?;
                let place = Place {
                    org: chatbot.organization_id,
                    chatbot: chatbot.id,
                    field: crate::catalog::Field::OpenaiApiKey.json_path(),
                };
                keyring.open(sealed, place).map(Some)
            }
        }
    }

    /// `chatbot` with its secrets in clear (for an export a person asked to decrypt); a value that
    /// does not open is an error, never dropped.
    pub fn opened(&self, mut chatbot: Chatbot) -> Result<Chatbot> {
        let (org, id) = (chatbot.organization_id, chatbot.id);
        for (field, secret) in chatbot.config.secrets_mut() {
            if let Some(Secret::Sealed(sealed)) = secret.as_ref() {
                let keyring = self.keyring().ok_or_else(|| Error::Keyring("no keyring to open the secrets".into()))?;
                let place = Place { org, chatbot: id, field: field.json_path() };
                *secret = Some(Secret::Clear(keyring.open(sealed, place)?));
            }
        }
        Ok(chatbot)
    }

    /// One batch of a rotation from `from`: reseals under the first key every value of up to `limit`
    /// chatbots that is in clear or under an older key. Returns where the next batch starts (`None`
    /// when the pass is through) and what it did.
    pub async fn rotate_batch(&self, from: ResealCursor, limit: usize) -> Result<(Option<ResealCursor>, Rotation)> {
        let keyring = self.keyring.clone().ok_or_else(no_keyring)?;
        let reseal: Arc<Reseal> = Arc::new(move |content: &mut Chatbot| reseal(&keyring, content));
        let batch = self.store.reseal(from, limit, reseal).await?;
        let progress = Rotation { contents: batch.contents, resealed: batch.rewritten, done: batch.next.is_none() };
        Ok((batch.next, progress))
    }

    /// A whole rotation, a batch of `limit` chatbots at a time, calling `progress` with the running
    /// totals after each; then a census. Writes go on meanwhile and seal under the first key
    /// themselves, but one that moves a content into a revision behind the pass (an update keeps the
    /// content it replaces) can leave a value under an older key: while the census finds such values,
    /// another pass runs (at most [`MAX_ROTATION_PASSES`]). Safe to interrupt and run again: a value
    /// already under the first key is left alone.
    pub async fn rotate(&self, limit: usize, mut progress: impl FnMut(&Rotation)) -> Result<(Rotation, Census)> {
        let mut total = Rotation::default();
        let mut passes = 0;
        loop {
            let mut from = Some(ResealCursor::default());
            while let Some(cursor) = from {
                let (next, batch) = self.rotate_batch(cursor, limit).await?;
                total.contents += batch.contents;
                total.resealed += batch.resealed;
                from = next;
                progress(&total);
            }
            passes += 1;
            let census = self.census().await?;
            if census.older + census.clear == 0 || passes == MAX_ROTATION_PASSES {
                total.done = true;
                progress(&total);
                return Ok((total, census));
            }
        }
    }

    /// Counts the stored values by the key they are sealed under (a pass over every stored content,
    /// a batch at a time, writing nothing), and keeps the result for [`Secrets::last_census`] and the
    /// `chatbotd_secrets_stale` gauge.
    pub async fn census(&self) -> Result<Census> {
        let counts: Arc<[AtomicUsize; 4]> = Arc::new(Default::default());
        let (keyring, seen) = (self.keyring.clone(), Arc::clone(&counts));
        let count: Arc<Reseal> = Arc::new(move |content: &mut Chatbot| {
            for (_, secret) in content.config.secrets() {
                let slot = match (secret, &keyring) {
                    (None, _) => continue,
                    (Some(Secret::Clear(_)), _) => 3,
                    (Some(Secret::Sealed(sealed)), Some(keyring)) if sealed.key_id == keyring.sealing_key_id() => 0,
                    (Some(Secret::Sealed(sealed)), Some(keyring))
                        if keyring.key_ids().any(|id| id == sealed.key_id) =>
                    {
                        1
                    }
                    (Some(Secret::Sealed(_)), _) => 2,
                };
                seen[slot].fetch_add(1, Ordering::Relaxed);
            }
            false
        });
        let mut from = Some(ResealCursor::default());
        while let Some(cursor) = from {
            from = self.store.reseal(cursor, DEFAULT_ROTATION_BATCH, Arc::clone(&count)).await?.next;
        }
        let [current, older, unknown_key, clear] = counts.as_ref().each_ref().map(|n| n.load(Ordering::Relaxed));
        let census = Census { current, older, unknown_key, clear };
        self.keep(census, Timestamp::now());
        Ok(census)
    }

    /// The last census taken, if any.
    pub fn last_census(&self) -> Option<Census> {
        self.last_counted().map(|(census, _)| census)
    }

    /// The last census taken and when: at this start, or, when this start found the store unchanged
    /// since a clean shutdown, the census that shutdown recorded (whose stale counts still hold, and
    /// whose count of values under the first key is as of then).
    pub fn last_counted(&self) -> Option<(Census, Timestamp)> {
        *self.last_census.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// At the start of the one process that writes an embedded store: reseals what is in clear or
    /// under an older key (a [`Secrets::rotate`]), unless the store is marked sealed under the first
    /// key with nothing written since (see [`Secrets::mark_if_sealed`]); the census is then the one
    /// recorded with the mark, and no stored content is read. A pass that leaves nothing stale marks
    /// the store.
    pub async fn seal_at_start(&self, limit: usize) -> Result<AtStart> {
        let key_id = self.sealing_key_id()?;
        if let Some(mark) = self.store.sealing_mark().await?
            && mark.key_id == key_id
        {
            self.keep(mark.census, mark.counted_at);
            return Ok(AtStart::Unchanged(mark.census));
        }
        let (rotation, census) = self.rotate(limit, |_| ()).await?;
        if census.stale() == 0 {
            let counted_at = self.last_counted().map_or_else(Timestamp::now, |(_, at)| at);
            self.store.mark_sealed(SealingMark { key_id, census, counted_at }).await?;
        }
        Ok(AtStart::Looked { rotation, census })
    }

    /// Marks the store sealed under the first key if the last census found nothing stale, so that the
    /// next [`Secrets::seal_at_start`] need not look if nothing is written meanwhile: every write of
    /// this process sealed under that key, and an import forgets the census. For a clean shutdown.
    pub async fn mark_if_sealed(&self) -> Result<()> {
        match self.last_counted() {
            Some((census, counted_at)) if self.keyring.is_some() && census.stale() == 0 => {
                self.store.mark_sealed(SealingMark { key_id: self.sealing_key_id()?, census, counted_at }).await
            }
            _ => Ok(()),
        }
    }

    /// Forgets the last census: what an import brings may be sealed under any key.
    pub(crate) fn forget_census(&self) {
        *self.last_census.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    }

    /// Keeps `census`, taken at `at`, as the last one, and shows it in the gauge.
    fn keep(&self, census: Census, at: Timestamp) {
        metrics::gauge!(crate::metric::SECRETS_STALE).set(census.stale() as f64);
        *self.last_census.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some((census, at));
    }

    /// The id of the key that seals, or why there is none.
    fn sealing_key_id(&self) -> Result<String> {
        let keyring = self.keyring().ok_or_else(no_keyring)?;
        Ok(keyring.sealing_key_id().to_owned())
    }
}

/// Why sealing cannot be asked of secrets kept in clear.
fn no_keyring() -> Error {
    Error::Keyring("secrets are stored in clear (no keyring): give a keyring to seal them".into())
}

/// What [`Secrets::seal_at_start`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AtStart {
    /// The store was marked sealed under the first key and nothing was written since: nothing read.
    Unchanged(Census),
    /// It looked at every stored content, resealed what it had to, and counted.
    Looked {
        /// What the pass did.
        rotation: Rotation,
        /// The census after it.
        census: Census,
    },
}

impl AtStart {
    /// The census, taken now or recorded with the mark.
    pub fn census(&self) -> Census {
        match self {
            AtStart::Unchanged(census) | AtStart::Looked { census, .. } => *census,
        }
    }
}

/// Reseals `content`'s values that are in clear or under an older key; `true` if any changed. A value
/// under a key the keyring lacks is left as it is (the census counts it).
fn reseal(keyring: &Keyring, content: &mut Chatbot) -> bool {
    let (org, id) = (content.organization_id, content.id);
    let mut changed = false;
    for (field, secret) in content.config.secrets_mut() {
        let place = Place { org, chatbot: id, field: field.json_path() };
        let clear = match secret.as_ref() {
            Some(Secret::Clear(clear)) => clear.clone(),
            Some(Secret::Sealed(sealed)) if sealed.key_id != keyring.sealing_key_id() => {
                match keyring.open(sealed, place) {
                    Ok(clear) => clear,
                    Err(_) => continue,
                }
            }
            _ => continue,
        };
        *secret = Some(Secret::Sealed(keyring.seal(&clear, place)));
        changed = true;
    }
    changed
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secrets").field("keyring", &self.keyring).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use futures_executor::block_on;

    use super::*;
    use crate::catalog::{Field, FieldMask};
    use crate::chatbot::ChatbotDraft;
    use crate::history::RevisionRef;
    use crate::store::Record;
    use crate::store::sled::SledStore;
    use crate::{Registry, RegistryOptions, Rules};

    const KEY: &str = "sk-proj-abcdefghijklmnop1234";
    const OLD: &str = "old=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    const NEW: &str = "new=AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";

    fn registry(dir: &std::path::Path, keyring: Option<&str>) -> Registry {
        // sled's own I/O threads may hold the directory's lock for a moment after the last handle of
        // the store before is dropped: wait for it rather than fail the reopen.
        let mut waited = 0;
        let store = loop {
            match SledStore::open(dir) {
                Err(err) if waited < 100 && format!("{err:?}").contains("could not acquire lock") => {
                    waited += 1;
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                opened => break opened.expect("a store"),
            }
        };
        let keyring = keyring.map(|text| Keyring::parse(text).expect("a keyring"));
        Registry::with_options(store, Rules::default(), RegistryOptions { keyring, ..Default::default() })
    }

    fn with_key(name: &str) -> ChatbotDraft {
        ChatbotDraft { name: Some(name.into()), openai_api_key: Some(KEY.into()), ..Default::default() }
    }

    #[test]
    fn a_secret_is_stored_sealed_shown_masked_and_opened_only_on_request() {
        let dir = tempfile::tempdir().unwrap();
        let registry = registry(dir.path(), Some(OLD));
        let (org, _) = block_on(registry.admission().create_api_key("acme")).unwrap();
        let bot = block_on(registry.create(org, with_key("Sealed"))).unwrap();
        let stored = block_on(registry.get(org, bot.id)).unwrap();
        assert!(
            matches!(&stored.config.openai_api_key, Some(Secret::Sealed(s)) if s.key_id == "old" && s.masked == "sk-...1234")
        );
        assert!(!serde_json::to_string(&stored).unwrap().contains("abcdef"), "nothing in clear in the record");
        assert_eq!(block_on(registry.reveal_openai_api_key(org, bot.id)).unwrap().unwrap().expose(), KEY);
        let (other, _) = block_on(registry.admission().create_api_key("other")).unwrap();
        assert!(matches!(block_on(registry.reveal_openai_api_key(other, bot.id)), Err(Error::NotFound)));

        // The same key again changes nothing; another one is a change.
        let mask: FieldMask = [Field::OpenaiApiKey].into_iter().collect();
        let same = ChatbotDraft { openai_api_key: Some(KEY.into()), ..Default::default() };
        let again = block_on(registry.update(org, bot.id, same, mask, None)).unwrap();
        assert_eq!(again.etag(), stored.etag(), "writing the same secret makes no revision");
        let other_key =
            ChatbotDraft { openai_api_key: Some("sk-proj-zzzzzzzzzzzzzzzz9999".into()), ..Default::default() };
        let changed = block_on(registry.update(org, bot.id, other_key, mask, None)).unwrap();
        assert_eq!(changed.revision, 2);
        let first = block_on(registry.revision(org, bot.id, RevisionRef::Number(1))).unwrap();
        assert!(matches!(first.chatbot.config.openai_api_key, Some(Secret::Sealed(_))), "revisions hold it sealed");
    }

    #[test]
    fn a_rotation_reseals_every_value_under_the_first_key_and_seals_what_was_in_clear() {
        let dir = tempfile::tempdir().unwrap();
        let (org, ids) = {
            // Written in clear (as before sealing existed), then sealed under the old key.
            let plain = registry(dir.path(), None);
            let (org, _) = block_on(plain.admission().create_api_key("acme")).unwrap();
            let clear = block_on(plain.create(org, with_key("Clear"))).unwrap();
            assert!(matches!(clear.config.openai_api_key, Some(Secret::Clear(_))));
            block_on(plain.close()).unwrap();
            drop(plain);
            let old = registry(dir.path(), Some(OLD));
            let sealed = block_on(old.create(org, with_key("Old"))).unwrap();
            let mask: FieldMask = [Field::Name].into_iter().collect();
            let rename = ChatbotDraft { name: Some("Old, renamed".into()), ..Default::default() };
            block_on(old.update(org, sealed.id, rename, mask, None)).unwrap();
            let census = block_on(old.secrets().census()).unwrap();
            assert_eq!(census, Census { current: 2, older: 0, unknown_key: 0, clear: 1 });
            block_on(old.close()).unwrap();
            (org, [clear.id, sealed.id])
        };
        let rotated = registry(dir.path(), Some(&format!("{NEW}\n{OLD}")));
        let before = block_on(rotated.secrets().census()).unwrap();
        assert_eq!(before, Census { current: 0, older: 2, unknown_key: 0, clear: 1 });
        let mut reported = Vec::new();
        let (rotation, after) = block_on(rotated.secrets().rotate(1, |p| reported.push(*p))).unwrap();
        assert_eq!(rotation.resealed, 3);
        assert!(reported.last().is_some_and(|p| p.done) && reported.len() >= 3, "{reported:?}");
        assert_eq!(after, Census { current: 3, older: 0, unknown_key: 0, clear: 0 });
        assert_eq!(rotated.secrets().last_census(), Some(after));
        // Closed, not just dropped: the store's lock is free before the next open.
        block_on(rotated.close()).unwrap();
        drop(rotated);

        // The old key can go: everything opens with the new one alone.
        let new_only = registry(dir.path(), Some(NEW));
        for id in ids {
            assert_eq!(block_on(new_only.reveal_openai_api_key(org, id)).unwrap().unwrap().expose(), KEY);
        }
        let old_revision = block_on(new_only.revision(org, ids[1], RevisionRef::Number(1))).unwrap();
        assert_eq!(new_only.secrets().open_openai_api_key(&old_revision.chatbot).unwrap().unwrap().expose(), KEY);
    }

    #[test]
    fn a_start_reads_no_stored_secret_when_a_clean_shutdown_under_its_key_left_the_store_unchanged() {
        const OTHER: &str = "other=AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=";
        let dir = tempfile::tempdir().unwrap();
        let start = |keyring: &str| {
            let registry = registry(dir.path(), Some(keyring));
            let found = block_on(registry.secrets().seal_at_start(DEFAULT_ROTATION_BATCH)).unwrap();
            (registry, found)
        };
        let stop = |registry: Registry| {
            block_on(registry.close()).unwrap();
            drop(registry);
        };

        // The first start looks, finds the one sealed value, and marks the store.
        let first = registry(dir.path(), Some(OLD));
        let (org, _) = block_on(first.admission().create_api_key("acme")).unwrap();
        block_on(first.create(org, with_key("One"))).unwrap();
        let found = block_on(first.secrets().seal_at_start(DEFAULT_ROTATION_BATCH)).unwrap();
        let counted = Census { current: 1, older: 0, unknown_key: 0, clear: 0 };
        assert_eq!(
            found,
            AtStart::Looked { rotation: Rotation { contents: 1, resealed: 0, done: true }, census: counted }
        );
        stop(first);

        // Unchanged since, same key: nothing read, the recorded census kept. A write, then a clean
        // shutdown, marks it again.
        let (second, found) = start(OLD);
        assert_eq!(found, AtStart::Unchanged(counted));
        assert_eq!(second.secrets().last_census(), Some(counted));
        block_on(second.create(org, with_key("Two"))).unwrap();
        stop(second);
        let (third, found) = start(OLD);
        assert_eq!(found, AtStart::Unchanged(counted));
        stop(third);

        // Written by a process that keeps secrets in clear: the next start looks, and seals it.
        let plain = registry(dir.path(), None);
        block_on(plain.create(org, with_key("Clear"))).unwrap();
        stop(plain);
        let (fourth, found) = start(OLD);
        let AtStart::Looked { rotation, census } = found else { panic!("looked: {found:?}") };
        assert_eq!((rotation.resealed, census), (1, Census { current: 3, older: 0, unknown_key: 0, clear: 0 }));
        stop(fourth);

        // A new first key: the mark is for another key, so the start looks and reseals everything.
        let rotated = format!("{OTHER}\n{OLD}");
        let (fifth, found) = start(&rotated);
        let AtStart::Looked { rotation, census } = found else { panic!("looked: {found:?}") };
        assert_eq!((rotation.resealed, census.current, census.stale()), (3, 3, 0));
        stop(fifth);

        // An import logs no event and may bring values under any key: it removes the mark (and a clean
        // shutdown after it does not put one back), so the next start looks.
        let elsewhere = tempfile::tempdir().unwrap();
        let exported: Vec<Record> = {
            let source = registry(elsewhere.path(), Some(OTHER));
            let (other_org, _) = block_on(source.admission().create_api_key("elsewhere")).unwrap();
            block_on(source.create(other_org, with_key("Elsewhere"))).unwrap();
            let mut snapshot = block_on(source.transfer().snapshot()).unwrap();
            let mut records = Vec::new();
            while let Some(batch) = block_on(snapshot.next_batch()).unwrap() {
                records.extend(batch);
            }
            drop(snapshot);
            stop(source);
            records
        };
        let (importer, found) = start(&rotated);
        assert!(matches!(found, AtStart::Unchanged(_)), "{found:?}");
        for record in exported.into_iter().filter(|r| matches!(r, Record::Organisation(_) | Record::Chatbot(_))) {
            block_on(importer.transfer().import(record)).unwrap();
        }
        stop(importer);
        let (sixth, found) = start(&rotated);
        let AtStart::Looked { census, .. } = found else { panic!("looked: {found:?}") };
        assert_eq!(census, Census { current: 4, older: 0, unknown_key: 0, clear: 0 });
        stop(sixth);
    }
}
