//! Revisions in the tree, written by the writer in the same batch as the change they record:
//! - `h` + chatbot id + revision (8 bytes, big-endian) -> the stored revision (its snapshot once it is
//!   no longer the head);
//! - `v` + version id -> chatbot id + revision (to find a revision by its `version_id`).

use super::chatbots::{avatar_key, record_key};
use super::writer::Tx;
use super::{SledStore, codec};
use crate::chatbot::{Chatbot, Published};
use crate::domain::{ChatbotId, OrgId, Timestamp, VersionId};
use crate::error::{Error, Result};
use crate::history::{HistoryRetention, Revision, RevisionRef, RevisionSnapshot, StoredRevision};
use crate::store::{History, StoreFuture};

/// Key of revision `number` of chatbot `id`.
pub(super) fn revision_key(id: ChatbotId, number: u64) -> Vec<u8> {
    [b"h".as_slice(), id.as_bytes(), &number.to_be_bytes()].concat()
}

/// Prefix of every revision key of chatbot `id`.
pub(super) fn revisions_prefix(id: ChatbotId) -> Vec<u8> {
    [b"h".as_slice(), id.as_bytes()].concat()
}

/// Key of the index entry of a revision's version id.
fn version_key(version: VersionId) -> Vec<u8> {
    [b"v".as_slice(), version.as_bytes()].concat()
}

/// Stores `revision` (the new head: its content is the record) and its version index entry.
pub(super) fn record(tx: &mut Tx<'_>, revision: Revision) -> Result<()> {
    put(tx, &StoredRevision { revision, snapshot: None })
}

/// Stores a revision as given, with its version index entry.
pub(super) fn put(tx: &mut Tx<'_>, stored: &StoredRevision) -> Result<()> {
    let revision = &stored.revision;
    let located = [revision.chatbot_id.as_bytes().as_slice(), &revision.revision.to_be_bytes()].concat();
    tx.insert(version_key(revision.version_id), located);
    tx.insert(revision_key(revision.chatbot_id, revision.revision), codec::encode_revision(stored)?);
    Ok(())
}

/// Keeps `current` (the head about to be replaced) as its revision's snapshot. A head stored before
/// history was kept gets its revision now, marked unrecorded.
pub(super) fn keep_snapshot(tx: &mut Tx<'_>, current: &Chatbot) -> Result<()> {
    let key = revision_key(current.id, current.revision);
    let snapshot = Some(Box::new(current.clone()));
    match tx.get(&key)? {
        // Its version index entry is there already: only the revision itself changes.
        Some(bytes) => {
            let stored = StoredRevision { snapshot, ..codec::decode_revision(&bytes)? };
            tx.insert(key, codec::encode_revision(&stored)?);
            Ok(())
        }
        None => put(tx, &StoredRevision { revision: Revision::unrecorded(current), snapshot }),
    }
}

/// Every revision of chatbot `id`, as the change sees them, oldest first.
pub(super) fn all(tx: &Tx<'_>, id: ChatbotId) -> Result<Vec<Revision>> {
    tx.scan_prefix(&revisions_prefix(id))?
        .iter()
        .map(|(_, bytes)| Ok(codec::decode_revision(bytes)?.revision))
        .collect()
}

/// Removes every revision of chatbot `id` and their index entries; returns them.
pub(super) fn forget_all(tx: &mut Tx<'_>, id: ChatbotId) -> Result<Vec<Revision>> {
    let mut forgotten = Vec::new();
    for (key, bytes) in tx.scan_prefix(&revisions_prefix(id))? {
        let stored = codec::decode_revision(&bytes)?;
        tx.remove(version_key(stored.revision.version_id));
        tx.remove(key);
        forgotten.push(stored.revision);
    }
    Ok(forgotten)
}

/// The content of a revision that is no longer the head, if it is kept.
pub(super) fn content(tree: &sled::Tree, id: ChatbotId, number: u64) -> Result<Option<Chatbot>> {
    match tree.get(revision_key(id, number))? {
        Some(bytes) => Ok(codec::decode_revision(&bytes)?.snapshot.map(|snapshot| *snapshot)),
        None => Ok(None),
    }
}

/// [`NotFound`](Error::NotFound) unless `published` names a kept revision of `current` (the head
/// itself, or one stored with that version id).
pub(super) fn check_kept(tx: &Tx<'_>, current: &Chatbot, published: Published) -> Result<()> {
    if published.revision == current.revision {
        return Ok(());
    }
    match tx.get(&revision_key(current.id, published.revision))? {
        Some(bytes) if codec::decode_revision(&bytes)?.revision.version_id == published.version_id => Ok(()),
        _ => Err(Error::NotFound),
    }
}

impl SledStore {
    /// The chatbot `id` if `org` owns it, live (`Some`) or deleted and kept (`None`: every revision of
    /// a deleted chatbot has its content).
    fn owned_now(&self, org: OrgId, id: ChatbotId) -> Result<Option<Chatbot>> {
        let owner = match self.chatbots.get(record_key(id))? {
            Some(record) => {
                let chatbot = codec::decode(&record)?;
                (chatbot.organization_id == org).then_some(Some(chatbot))
            }
            None => super::bin::read_deleted(&self.chatbots, id)?
                .filter(|deleted| deleted.chatbot.organization_id == org)
                .map(|_| None),
        };
        owner.ok_or(Error::NotFound)
    }

    fn revisions_now(&self, org: OrgId, id: ChatbotId, below: Option<u64>, limit: usize) -> Result<Vec<Revision>> {
        let head = self.owned_now(org, id)?;
        let upper = revision_key(id, below.unwrap_or(u64::MAX));
        let mut revisions = Vec::with_capacity(limit);
        for entry in self.chatbots.range(revisions_prefix(id)..upper).rev().take(limit) {
            let (_, bytes) = entry?;
            revisions.push(codec::decode_revision(&bytes)?.revision);
        }
        // A head stored before history was kept shows as its unrecorded revision.
        if let Some(head) = head
            && revisions.first().is_none_or(|newest| newest.revision < head.revision)
            && below.is_none_or(|below| head.revision < below)
        {
            revisions.insert(0, Revision::unrecorded(&head));
            revisions.truncate(limit);
        }
        Ok(revisions)
    }

    fn revision_now(&self, org: OrgId, id: ChatbotId, which: RevisionRef) -> Result<RevisionSnapshot> {
        let number = match which {
            RevisionRef::Number(number) => number,
            RevisionRef::Version(version) => {
                let Some(located) = self.chatbots.get(version_key(version))? else {
                    // A head stored before history was kept is named by its derived version id.
                    return match self.owned_now(org, id)? {
                        Some(head) if Revision::unrecorded(&head).version_id == version => {
                            Ok(RevisionSnapshot { revision: Revision::unrecorded(&head), chatbot: head })
                        }
                        _ => Err(Error::NotFound),
                    };
                };
                let (owner, number) = located.split_at(16);
                if owner != id.as_bytes() {
                    return Err(Error::NotFound);
                }
                u64::from_be_bytes(number.try_into().map_err(Error::storage)?)
            }
        };
        // Read the head, then the revision: if the head moved on in between, the revision has its
        // snapshot by then (the writer stores both in one batch).
        let head = self.owned_now(org, id)?;
        match self.chatbots.get(revision_key(id, number))? {
            Some(bytes) => {
                let stored = codec::decode_revision(&bytes)?;
                let chatbot = match (stored.snapshot, head) {
                    (Some(snapshot), _) => *snapshot,
                    (None, Some(head)) if head.revision == number => head,
                    (None, _) => return self.revision_now(org, id, RevisionRef::Number(number)),
                };
                Ok(RevisionSnapshot { revision: stored.revision, chatbot })
            }
            None => match head {
                Some(head) if head.revision == number => {
                    Ok(RevisionSnapshot { revision: Revision::unrecorded(&head), chatbot: head })
                }
                _ => Err(Error::NotFound),
            },
        }
    }
}

impl History for SledStore {
    fn revisions(&self, org: OrgId, id: ChatbotId, below: Option<u64>, limit: usize) -> StoreFuture<'_, Vec<Revision>> {
        Box::pin(async move { self.revisions_now(org, id, below, limit) })
    }

    fn revision(&self, org: OrgId, id: ChatbotId, which: RevisionRef) -> StoreFuture<'_, RevisionSnapshot> {
        Box::pin(async move { self.revision_now(org, id, which) })
    }

    fn prune_history(&self, now: Timestamp, limit: usize) -> StoreFuture<'_, usize> {
        Box::pin(async move {
            let (found, _) = prunable(&self.chatbots, self.retention.history, now, &[], limit)?;
            if found.is_empty() {
                return Ok(0);
            }
            self.write(move |tx| forget(tx, found)).await
        })
    }
}

/// What one pass of history pruning forgets: per chatbot, the revisions and the images.
pub(super) type Found = Vec<(ChatbotId, crate::history::Pruning)>;

/// Reads the revisions of up to `limit` chatbots from `from` on (a revision key, or the start) and
/// says what retention forgets of them; also where the next pass starts (`None`: back at the start).
pub(super) fn prunable(
    tree: &sled::Tree,
    retention: HistoryRetention,
    now: Timestamp,
    from: &[u8],
    limit: usize,
) -> Result<(Found, Option<Vec<u8>>)> {
    let start = if from.is_empty() { b"h".to_vec() } else { from.to_vec() };
    let mut found = Found::new();
    let mut chatbots = 0;
    let mut current: Option<(ChatbotId, Vec<Revision>)> = None;
    let finish = |id: ChatbotId, mut revisions: Vec<Revision>, found: &mut Found| -> Result<()> {
        revisions.reverse();
        if retention.prune(&revisions, None, now).revisions.is_empty() {
            return Ok(());
        }
        // Something to forget: never the published revision.
        let head = tree.get(record_key(id))?.map(|bytes| codec::decode(&bytes)).transpose()?;
        let published = head.and_then(|head| head.published).map(|published| published.revision);
        let pruning = retention.prune(&revisions, published, now);
        if !pruning.revisions.is_empty() {
            found.push((id, pruning));
        }
        Ok(())
    };
    for entry in tree.range(start..b"i".to_vec()) {
        let (key, bytes) = entry?;
        let id = ChatbotId::from_bytes(
            key.get(1..17).and_then(|id| id.try_into().ok()).ok_or_else(|| Error::storage("a short revision key"))?,
        );
        match &mut current {
            Some((of, revisions)) if *of == id => revisions.push(codec::decode_revision(&bytes)?.revision),
            _ => {
                if let Some((of, revisions)) = current.take() {
                    finish(of, revisions, &mut found)?;
                    chatbots += 1;
                    if chatbots >= limit {
                        return Ok((found, Some(key.to_vec())));
                    }
                }
                current = Some((id, vec![codec::decode_revision(&bytes)?.revision]));
            }
        }
    }
    if let Some((of, revisions)) = current.take() {
        finish(of, revisions, &mut found)?;
    }
    Ok((found, None))
}

/// The change that forgets what [`prunable`] found; returns how many revisions. An image is kept if
/// the head points at it by now (a restore since the read).
pub(super) fn forget(tx: &mut Tx<'_>, found: Found) -> Result<usize> {
    let mut forgotten = 0;
    for (id, pruning) in found {
        // Published since the read: it stays (its images were counted as kept or not then; keeping
        // them all is the safe side).
        let head = tx.get(&record_key(id))?.map(|bytes| codec::decode(&bytes)).transpose()?;
        let published = head.as_ref().and_then(|head| head.published).map(|published| published.revision);
        if pruning.revisions.iter().any(|number| Some(*number) == published) {
            continue;
        }
        for number in pruning.revisions {
            let key = revision_key(id, number);
            if let Some(bytes) = tx.get(&key)? {
                let stored = codec::decode_revision(&bytes)?;
                if stored.snapshot.is_none() {
                    continue; // the head: never forgotten
                }
                tx.remove(version_key(stored.revision.version_id));
                tx.remove(key);
                forgotten += 1;
            }
        }
        let head_image = head.as_ref().and_then(|head| head.config.settings.avatar);
        for image in pruning.images.into_iter().filter(|image| Some(*image) != head_image) {
            tx.remove(avatar_key(image.id));
        }
    }
    Ok(forgotten)
}
