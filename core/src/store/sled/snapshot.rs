//! Reading the whole store as it was at one moment while writes go on. From that moment, the writer
//! keeps, for every record it is about to change that the reader has not read yet, the value it had
//! then (its undo log); the reader, in key order, takes a kept value instead of the tree's. Both hold
//! the log's lock while they look, so a record is either read before it changes or kept before it
//! does. What is left in the log at the end are records deleted before the reader reached them.

use std::ops::Bound;

use super::keys::{decode_key, org_from_bytes};
use super::writer::UndoLog;
use super::{SledStore, codec, is_exported};
use crate::avatar::AvatarId;
use crate::error::{Error, Result};
use crate::store::{Organisation, Record, Snapshot, StoreFuture};

/// Records read per batch.
const BATCH: usize = 500;

/// Bytes read per batch, at most (give or take one record): avatar images are up to a megabyte each.
const BATCH_BYTES: usize = 8 * 1024 * 1024;

/// A snapshot of a sled store being read; the undo log goes with it.
pub(super) struct SledSnapshot<'a> {
    store: &'a SledStore,
    /// Organisations and key records, read when the snapshot was taken (they change rarely, and not
    /// through the writer); handed out first.
    head: Option<Vec<Record>>,
    /// Whether every record of the tree has been read.
    read_all: bool,
    finished: bool,
}

impl<'a> SledSnapshot<'a> {
    /// Takes the snapshot: from the next batch on, the writer keeps the values that change.
    pub(super) async fn take(store: &'a SledStore) -> Result<SledSnapshot<'a>> {
        let undo = std::sync::Arc::clone(store.writer.undo());
        store
            .write(move |_| {
                let mut undo = undo.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                if undo.is_some() {
                    return Err(Error::unavailable("another export is being read; try again when it is done"));
                }
                *undo = Some(UndoLog { kept: Default::default(), read_upto: vec![b'c'] });
                Ok(())
            })
            .await?;
        let mut head = Vec::new();
        for entry in &store.orgs {
            let (id, name) = entry?;
            let name = String::from_utf8(name.to_vec()).map_err(Error::storage)?;
            head.push(Record::Organisation(Organisation { id: org_from_bytes(&id)?, name }));
        }
        for entry in &store.api_keys {
            let (hash, record) = entry?;
            head.push(Record::ApiKey(decode_key(&hash, &record)?));
        }
        Ok(SledSnapshot { store, head: Some(head), read_all: false, finished: false })
    }

    fn next_now(&mut self) -> Result<Option<Vec<Record>>> {
        if let Some(head) = self.head.take() {
            return Ok(Some(head));
        }
        let mut undo = self.store.writer.undo().lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let log = undo.as_mut().ok_or_else(|| Error::storage("the snapshot's undo log is gone"))?;
        let mut batch = Vec::new();
        if !self.read_all {
            let from = log.read_upto.clone();
            let (mut read, mut bytes) = (0, 0);
            for entry in self.store.chatbots.range::<Vec<u8>, _>((Bound::Excluded(from), Bound::Unbounded)) {
                let (key, now) = entry?;
                if !is_exported(&key) {
                    // Between the exported prefixes: on to the next one (in the next batch), past every
                    // key of this one.
                    if let Some(next) = EXPORTED.iter().find(|prefix| **prefix > key[0]) {
                        log.read_upto = [&[next - 1][..], &[0xff; 64]].concat();
                        return Ok(Some(batch));
                    }
                    self.read_all = true;
                    break;
                }
                let then = match log.kept.remove(key.as_ref()) {
                    Some(then) => then,
                    None => Some(now.to_vec()),
                };
                if let Some(value) = then {
                    batch.push(record(&key, &value)?);
                }
                log.read_upto = key.to_vec();
                read += 1;
                bytes += now.len();
                if read == BATCH || bytes >= BATCH_BYTES {
                    return Ok(Some(batch));
                }
            }
            self.read_all = true;
        }
        if self.finished {
            return Ok(None);
        }
        self.finished = true;
        // Records deleted before the reader reached them (kept with a value); records created since
        // the snapshot were kept as absent and are skipped.
        for (key, value) in std::mem::take(&mut log.kept) {
            if let Some(value) = value {
                batch.push(record(&key, &value)?);
            }
        }
        Ok(Some(batch))
    }
}

/// The key prefixes an export reads, in order: chatbots, avatar images, revisions, deleted chatbots.
const EXPORTED: [u8; 4] = [b'c', b'd', b'h', b'x'];

/// The export record of an exported key's value: a chatbot (`c`), an avatar image (`d`), a revision
/// (`h`) or a deleted chatbot (`x`).
fn record(key: &[u8], value: &[u8]) -> Result<Record> {
    match key.split_first() {
        Some((b'c', _)) => Ok(Record::Chatbot(Box::new(codec::decode(value)?))),
        Some((b'd', id)) => {
            let id = <[u8; 16]>::try_from(id).map_err(|_| Error::storage("an avatar key is not an id"))?;
            Ok(Record::Avatar(codec::decode_avatar(AvatarId::from_uuid(uuid::Uuid::from_bytes(id)), value)?))
        }
        Some((b'x', _)) => Ok(Record::Deleted { deleted: Box::new(super::bin::decode(value)?) }),
        Some((b'h', _)) => Ok(Record::Revision { revision: Box::new(codec::decode_revision(value)?) }),
        _ => Err(Error::storage("not an exported record")),
    }
}

impl Snapshot for SledSnapshot<'_> {
    fn next_batch(&mut self) -> StoreFuture<'_, Option<Vec<Record>>> {
        Box::pin(async move { self.next_now() })
    }
}

impl Drop for SledSnapshot<'_> {
    fn drop(&mut self) {
        *self.store.writer.undo().lock().unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    }
}
