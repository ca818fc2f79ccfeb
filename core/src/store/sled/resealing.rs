//! Resealing on sled: a batch of chatbot ids read from the tree, then one writer job that rewrites
//! what the closure changed, so that it is serialized with every other write (no concurrent write can
//! be lost to it) and lands in one atomic batch.
//!
//! The sealing mark is `m` + `secrets.sealed` -> the change log's head when it was made, the census's
//! four counts and its time in microseconds (8 bytes each), then the key id. It holds while the head
//! has not moved: every write of a chatbot's content logs an event; the writes that do not (a reseal
//! that rewrites, an import) remove it.

use std::ops::Bound;
use std::sync::Arc;

use super::{SledStore, bin, changes, codec, history};
use crate::domain::{ChatbotId, Timestamp};
use crate::error::{Error, Result};
use crate::secrets::Census;
use crate::store::{Reseal, ResealBatch, ResealCursor, Resealing, SealingMark, StoreFuture};

/// The key of the sealing mark.
pub(super) const SEALING_MARK_KEY: &[u8] = b"msecrets.sealed";

/// The mark's stored form, made at change-log head `head`.
fn encode_mark(head: u64, mark: &SealingMark) -> Vec<u8> {
    let Census { current, older, unknown_key, clear } = mark.census;
    let counts = [current, older, unknown_key, clear].map(|n| (n as u64).to_be_bytes());
    let at = mark.counted_at.as_micros().to_be_bytes();
    [head.to_be_bytes().as_slice(), &counts.concat(), &at, mark.key_id.as_bytes()].concat()
}

/// The mark stored as `bytes`, and the head it was made at.
fn decode_mark(bytes: &[u8]) -> Result<(u64, SealingMark)> {
    let malformed = || Error::storage("a malformed sealing mark");
    let (numbers, key_id) = bytes.split_at_checked(48).ok_or_else(malformed)?;
    let numbers: Vec<u64> = numbers
        .chunks_exact(8)
        .map(|n| n.try_into().map(u64::from_be_bytes).map_err(|_| malformed()))
        .collect::<Result<_>>()?;
    let count = |n: u64| usize::try_from(n).map_err(|_| malformed());
    let [head, current, older, unknown_key, clear, at] = numbers[..] else { return Err(malformed()) };
    let census = Census {
        current: count(current)?,
        older: count(older)?,
        unknown_key: count(unknown_key)?,
        clear: count(clear)?,
    };
    let key_id = String::from_utf8(key_id.to_vec()).map_err(|_| malformed())?;
    let counted_at = Timestamp::from_micros(i64::from_be_bytes(at.to_be_bytes()));
    Ok((head, SealingMark { key_id, census, counted_at }))
}

/// The key prefix of the records a cursor walks: live chatbots (`c`) or deleted ones (`x`).
fn prefix(cursor: ResealCursor) -> u8 {
    if cursor.deleted { b'x' } else { b'c' }
}

impl SledStore {
    /// The ids of up to `limit` chatbots from `cursor` on.
    fn reseal_ids(&self, cursor: ResealCursor, limit: usize) -> Result<Vec<ChatbotId>> {
        let prefix = prefix(cursor);
        let start = match cursor.after {
            Some(after) => Bound::Excluded([&[prefix], after.as_bytes().as_slice()].concat()),
            None => Bound::Included(vec![prefix]),
        };
        let mut ids = Vec::with_capacity(limit);
        for entry in self.chatbots.range((start, Bound::Excluded(vec![prefix + 1]))).keys().take(limit) {
            let key = entry?;
            let bytes: [u8; 16] = key[1..].try_into().map_err(|_| crate::Error::storage("a malformed record key"))?;
            ids.push(ChatbotId::from_bytes(bytes));
        }
        Ok(ids)
    }
}

impl Resealing for SledStore {
    fn reseal(&self, from: ResealCursor, limit: usize, reseal: Arc<Reseal>) -> StoreFuture<'_, ResealBatch> {
        Box::pin(async move {
            let ids = self.reseal_ids(from, limit.max(1))?;
            let next = from.after_batch(&ids, limit.max(1));
            let key_of = move |id| if from.deleted { bin::deleted_key(id) } else { super::record_key(id) };
            // A batch with nothing to change (a census, or a store already sealed under the first key)
            // is read here and never queued behind the writes: a start over a large store costs reads.
            let mut contents = 0;
            let mut any = false;
            for &id in &ids {
                let mut stored: Vec<crate::chatbot::Chatbot> = Vec::new();
                if let Some(bytes) = self.chatbots.get(key_of(id))? {
                    stored.push(if from.deleted { bin::decode(&bytes)?.chatbot } else { codec::decode(&bytes)? });
                }
                for entry in self.chatbots.scan_prefix(history::revisions_prefix(id)) {
                    let (_, bytes) = entry?;
                    stored.extend(codec::decode_revision(&bytes)?.snapshot.map(|content| *content));
                }
                contents += stored.len();
                any |= stored.iter_mut().any(|content| reseal(content));
            }
            if !any {
                return Ok(ResealBatch { next, contents, rewritten: 0 });
            }
            let (contents, rewritten) = self
                .write(move |tx| {
                    let (mut contents, mut rewritten) = (0, 0);
                    for id in ids {
                        let key = key_of(id);
                        // Purged, undeleted or deleted since the ids were read: its new place has it.
                        if let Some(bytes) = tx.get(&key)? {
                            contents += 1;
                            let resealed = if from.deleted {
                                let mut deleted = bin::decode(&bytes)?;
                                reseal(&mut deleted.chatbot).then(|| bin::encode(&deleted)).transpose()?
                            } else {
                                let mut chatbot = codec::decode(&bytes)?;
                                reseal(&mut chatbot).then(|| codec::encode(&chatbot)).transpose()?
                            };
                            if let Some(bytes) = resealed {
                                tx.insert(key, bytes);
                                rewritten += 1;
                            }
                        }
                        for (key, bytes) in tx.scan_prefix(&history::revisions_prefix(id))? {
                            let mut stored = codec::decode_revision(&bytes)?;
                            let Some(content) = stored.snapshot.as_deref_mut() else { continue };
                            contents += 1;
                            if reseal(content) {
                                tx.insert(key, codec::encode_revision(&stored)?);
                                rewritten += 1;
                            }
                        }
                    }
                    if rewritten > 0 {
                        tx.remove(SEALING_MARK_KEY);
                    }
                    Ok((contents, rewritten))
                })
                .await?;
            Ok(ResealBatch { next, contents, rewritten })
        })
    }

    fn sealing_mark(&self) -> StoreFuture<'_, Option<SealingMark>> {
        Box::pin(async move {
            let Some(bytes) = self.chatbots.get(SEALING_MARK_KEY)? else { return Ok(None) };
            let (head, mark) = decode_mark(&bytes)?;
            Ok((head == changes::counter(&self.chatbots, changes::HEAD_KEY)?).then_some(mark))
        })
    }

    fn mark_sealed(&self, mark: SealingMark) -> StoreFuture<'_, ()> {
        self.write(move |tx| {
            let head = tx.get(changes::HEAD_KEY)?.map_or(Ok(0), |bytes| changes::counter_value(&bytes))?;
            tx.insert(SEALING_MARK_KEY, encode_mark(head, &mark));
            Ok(())
        })
    }
}
