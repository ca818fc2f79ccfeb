//! The change log on sled, in the chatbots tree, written by the writer thread in the same batch as the
//! changes themselves (see [`super::writer`]):
//! - `E` + organisation + position -> the event (JSON): what an organisation's watchers read, in order;
//! - `e` + position -> organisation + time written: the whole log in order, for pruning;
//! - `m` + name -> a counter: the last position given (`changes.head`), and the first position still
//!   kept (`changes.kept_from`).
//!
//! Positions are given only to changes that commit, one after another, so the log has no gaps; the
//! writer lets watchers read a position only once its batch is on disk.

use crate::changes::ChatbotEvent;
use crate::domain::{OrgId, Timestamp};
use crate::error::{Error, Result};

/// The key of the last position given.
pub(super) const HEAD_KEY: &[u8] = b"mchanges.head";
/// The key of the first position still kept (positions before it are pruned).
pub(super) const KEPT_FROM_KEY: &[u8] = b"mchanges.kept_from";

/// The key of `org`'s event at `position`.
fn org_key(org: OrgId, position: u64) -> Vec<u8> {
    [b"E".as_slice(), org.as_bytes(), &position.to_be_bytes()].concat()
}

/// The key of the whole log's entry at `position`.
fn log_key(position: u64) -> Vec<u8> {
    [b"e".as_slice(), &position.to_be_bytes()].concat()
}

/// The writes that put `event` (already positioned) in the log.
pub(super) fn writes(event: &ChatbotEvent) -> Result<[(Vec<u8>, Vec<u8>); 2]> {
    let org = event.organization_id;
    let entry = [org.as_bytes().as_slice(), &event.at.as_micros().to_be_bytes()].concat();
    let json = serde_json::to_vec(event).map_err(Error::storage)?;
    Ok([(org_key(org, event.position), json), (log_key(event.position), entry)])
}

/// A counter stored at `key` (0 when absent).
pub(super) fn counter(tree: &sled::Tree, key: &[u8]) -> Result<u64> {
    match tree.get(key)? {
        None => Ok(0),
        Some(bytes) => Ok(u64::from_be_bytes(
            bytes.as_ref().try_into().map_err(|_| Error::storage("a change log counter is not 8 bytes"))?,
        )),
    }
}

/// Up to `limit` events of `org` after `after`, up to `head` (the last position on disk).
pub(super) fn read(tree: &sled::Tree, org: OrgId, after: u64, head: u64, limit: usize) -> Result<Vec<ChatbotEvent>> {
    let kept_from = counter(tree, KEPT_FROM_KEY)?.max(1);
    if after > head || after + 1 < kept_from {
        return Err(Error::ResyncRequired);
    }
    let mut events = Vec::new();
    if after < head {
        for entry in tree.range(org_key(org, after + 1)..=org_key(org, head)).take(limit) {
            let (_, json) = entry?;
            events.push(serde_json::from_slice(&json).map_err(Error::storage)?);
        }
    }
    // Pruned while it was read: what it read may have had gaps.
    if after + 1 < counter(tree, KEPT_FROM_KEY)? {
        return Err(Error::ResyncRequired);
    }
    Ok(events)
}

/// Up to `limit` events of every organisation after `after`, up to `head`: the whole log's entries name
/// the organisation whose key holds each event.
pub(super) fn read_all(tree: &sled::Tree, after: u64, head: u64, limit: usize) -> Result<Vec<ChatbotEvent>> {
    let kept_from = counter(tree, KEPT_FROM_KEY)?.max(1);
    if after > head || after + 1 < kept_from {
        return Err(Error::ResyncRequired);
    }
    let mut events = Vec::new();
    if after < head {
        for entry in tree.range(log_key(after + 1)..=log_key(head)).take(limit) {
            let (key, value) = entry?;
            let position = position_of(&key).ok_or_else(|| Error::storage("a malformed log key"))?;
            let org = value.get(..16).and_then(|org| org.try_into().ok()).map(OrgId::from_bytes);
            let org = org.ok_or_else(|| Error::storage("a malformed log entry"))?;
            // Pruned since the range was read: the check below reports it.
            if let Some(json) = tree.get(org_key(org, position))? {
                events.push(serde_json::from_slice(&json).map_err(Error::storage)?);
            }
        }
    }
    if after + 1 < counter(tree, KEPT_FROM_KEY)? {
        return Err(Error::ResyncRequired);
    }
    Ok(events)
}

/// The oldest positions written before `before`, at most `limit` and none past `head`, with the keys to
/// remove for each.
pub(super) fn prunable(tree: &sled::Tree, before: Timestamp, head: u64, limit: usize) -> Result<Vec<Vec<u8>>> {
    let mut keys = Vec::new();
    for entry in tree.range(log_key(0)..=log_key(head)).take(limit) {
        let (key, value) = entry?;
        let (org, at) = value.split_at_checked(16).ok_or_else(|| Error::storage("a malformed log entry"))?;
        let at = i64::from_be_bytes(at.try_into().map_err(|_| Error::storage("a malformed log entry"))?);
        if at >= before.as_micros() {
            break;
        }
        let position = u64::from_be_bytes(key[1..].try_into().map_err(|_| Error::storage("a malformed log key"))?);
        let org = OrgId::from_bytes(org.try_into().map_err(|_| Error::storage("a malformed log entry"))?);
        keys.push(log_key(position));
        keys.push(org_key(org, position));
    }
    Ok(keys)
}

/// The position of a whole-log key.
pub(super) fn position_of(log_key: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(log_key.strip_prefix(b"e")?.try_into().ok()?))
}
