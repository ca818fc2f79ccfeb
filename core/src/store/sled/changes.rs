//! The change log on sled, in the chatbots tree, written by the writer thread in the same batch as the
//! changes themselves (see [`super::writer`]):
//! - `E` + organisation + position -> the event ([`encode`]: about 70 bytes, where its JSON took 250):
//!   what an organisation's watchers read, in order;
//! - `e` + position -> organisation + time written: the whole log in order, for pruning;
//! - `m` + name -> a counter: the last position given (`changes.head`), and the first position still
//!   kept (`changes.kept_from`).
//!
//! Positions are given only to changes that commit, one after another, so the log has no gaps; the
//! writer lets watchers read a position only once its batch is on disk.

use crate::changes::{ChangeKind, ChatbotEvent};
use crate::domain::{ChatbotId, OrgId, Timestamp, VersionId};
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
    Ok([(org_key(org, event.position), encode(event)?), (log_key(event.position), entry)])
}

/// The first byte of an event in the compact form (an event written as JSON, before, starts with `{`).
const COMPACT_V1: u8 = 1;

/// The stored form of `event`, without what its key says (organisation, position): the version byte,
/// the chatbot id, the kind's place in [`ChangeKind::ALL`], the revision, the time in microseconds, the version id (a
/// presence byte, then 16 bytes), the entity tag (its length, 255 for none, then its bytes), then the
/// changed paths (a count, then each path's length and bytes; lengths as 2 bytes).
fn encode(event: &ChatbotEvent) -> Result<Vec<u8>> {
    let too_long = || Error::storage("an event's entity tag or changed paths are too long to store");
    let kind = ChangeKind::ALL
        .iter()
        .position(|k| *k == event.kind)
        .ok_or_else(|| Error::storage("an unknown change kind"))?;
    let mut bytes = Vec::with_capacity(72);
    bytes.push(COMPACT_V1);
    bytes.extend_from_slice(event.chatbot_id.as_bytes());
    bytes.push(u8::try_from(kind).map_err(|_| too_long())?);
    bytes.extend_from_slice(&event.revision.to_be_bytes());
    bytes.extend_from_slice(&event.at.as_micros().to_be_bytes());
    match event.version_id {
        Some(version) => {
            bytes.push(1);
            bytes.extend_from_slice(version.as_bytes());
        }
        None => bytes.push(0),
    }
    match &event.etag {
        Some(etag) => {
            bytes.push(u8::try_from(etag.len()).ok().filter(|&n| n < u8::MAX).ok_or_else(too_long)?);
            bytes.extend_from_slice(etag.as_bytes());
        }
        None => bytes.push(u8::MAX),
    }
    bytes.extend_from_slice(&u16::try_from(event.changed.len()).map_err(|_| too_long())?.to_be_bytes());
    for path in &event.changed {
        bytes.extend_from_slice(&u16::try_from(path.len()).map_err(|_| too_long())?.to_be_bytes());
        bytes.extend_from_slice(path.as_bytes());
    }
    Ok(bytes)
}

/// The event `org`'s key at `position` holds as `bytes`: compact, or JSON as written before.
fn decode(org: OrgId, position: u64, bytes: &[u8]) -> Result<ChatbotEvent> {
    let Some(rest) = bytes.strip_prefix(&[COMPACT_V1]) else {
        return serde_json::from_slice(bytes).map_err(Error::storage);
    };
    let mut reader = Reader(rest);
    let chatbot_id = ChatbotId::from_bytes(reader.array()?);
    let [kind] = reader.array()?;
    let kind = *ChangeKind::ALL.get(usize::from(kind)).ok_or_else(|| Error::storage("an unknown change kind"))?;
    let revision = u64::from_be_bytes(reader.array()?);
    let at = Timestamp::from_micros(i64::from_be_bytes(reader.array()?));
    let version_id = match reader.array()? {
        [0] => None,
        _ => Some(VersionId::from_bytes(reader.array()?)),
    };
    let etag = match reader.array()? {
        [u8::MAX] => None,
        [length] => Some(reader.text(usize::from(length))?),
    };
    let count = u16::from_be_bytes(reader.array()?);
    let changed = (0..count)
        .map(|_| {
            let length = u16::from_be_bytes(reader.array()?);
            reader.text(usize::from(length))
        })
        .collect::<Result<_>>()?;
    Ok(ChatbotEvent { position, organization_id: org, chatbot_id, kind, revision, etag, at, version_id, changed })
}

/// Reads a compact event from the front.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8]> {
        let (taken, rest) = self.0.split_at_checked(n).ok_or_else(|| Error::storage("a truncated change event"))?;
        self.0 = rest;
        Ok(taken)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        self.take(N)?.try_into().map_err(|_| Error::storage("a truncated change event"))
    }

    fn text(&mut self, n: usize) -> Result<String> {
        String::from_utf8(self.take(n)?.to_vec()).map_err(Error::storage)
    }
}

/// A counter stored at `key` (0 when absent).
pub(super) fn counter(tree: &sled::Tree, key: &[u8]) -> Result<u64> {
    tree.get(key)?.map_or(Ok(0), |bytes| counter_value(&bytes))
}

/// The counter stored as `bytes`.
pub(super) fn counter_value(bytes: &[u8]) -> Result<u64> {
    Ok(u64::from_be_bytes(bytes.try_into().map_err(|_| Error::storage("a change log counter is not 8 bytes"))?))
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
            let (key, bytes) = entry?;
            let position = key.get(17..).and_then(|p| p.try_into().ok()).map(u64::from_be_bytes);
            let position = position.ok_or_else(|| Error::storage("a malformed event key"))?;
            events.push(decode(org, position, &bytes)?);
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
            if let Some(bytes) = tree.get(org_key(org, position))? {
                events.push(decode(org, position, &bytes)?);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: ChangeKind, etag: Option<&str>, version: bool, changed: &[&str]) -> ChatbotEvent {
        ChatbotEvent {
            position: 42,
            organization_id: OrgId::new_random(),
            chatbot_id: ChatbotId::new_random(),
            kind,
            revision: 7,
            etag: etag.map(str::to_owned),
            at: Timestamp::from_micros(1_796_057_711_866_442),
            version_id: version.then(VersionId::new_random),
            changed: changed.iter().map(|p| (*p).to_owned()).collect(),
        }
    }

    #[test]
    fn every_event_reads_back_as_written_and_a_create_takes_under_a_third_of_its_json() {
        let events = [
            event(ChangeKind::Created, Some("1-6618145e9724a"), true, &[]),
            event(ChangeKind::Updated, Some("2-6618145e9724b"), true, &["settings.greeting", "name", "é"]),
            event(ChangeKind::Deleted, None, false, &[]),
            event(ChangeKind::Purged, None, true, &[]),
            event(ChangeKind::Restored, Some(""), true, &[""]),
        ];
        for written in events {
            let bytes = encode(&written).expect("encoded");
            assert_eq!(decode(written.organization_id, written.position, &bytes).expect("decoded"), written);
            // Cut anywhere, it is refused, never misread.
            for end in 0..bytes.len() {
                assert!(decode(written.organization_id, written.position, &bytes[..end]).is_err(), "cut at {end}");
            }
        }
        let create = event(ChangeKind::Created, Some("1-6618145e9724a"), true, &[]);
        let compact = encode(&create).expect("encoded").len();
        let json = serde_json::to_vec(&create).expect("JSON").len();
        assert!(compact * 3 < json, "{compact} bytes against {json} as JSON");
    }

    #[test]
    fn an_event_written_as_json_before_reads_back() {
        let written = event(ChangeKind::Updated, Some("2-6618145e9724b"), true, &["description"]);
        let json = serde_json::to_vec(&written).expect("JSON");
        assert_eq!(decode(written.organization_id, written.position, &json).expect("decoded"), written);
    }
}
