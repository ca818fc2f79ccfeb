//! Deleted chatbots in the tree, kept for undelete until their purge time:
//! - `x` + chatbot id -> the deleted chatbot (its last content and its times);
//! - `r` + slug + `/` + chatbot id -> organisation + purge time: the slug's reservation against other
//!   organisations (`/` is not a slug character, so one slug's reservations share a prefix);
//! - `y` + purge time + chatbot id -> empty: deleted chatbots in purge order, for the upkeep;
//! - `k` + listing key -> empty: deleted chatbots in listing order (see `listing.rs`);
//! - `w` + avatar id -> empty: an image withheld from the public route while its chatbot is deleted.

use super::chatbots::{avatar_key, claim_slug, owned, put};
use super::claims::{check_claim, record_claim};
use super::listing::{self, Shelf};
use super::writer::Tx;
use super::{SledStore, history};
use crate::avatar::{AvatarId, AvatarRef};
use crate::changes::{ChangeKind, ChatbotEvent};
use crate::chatbot::Chatbot;
use crate::domain::{ChatbotId, OrgId, Slug, Timestamp};
use crate::error::{Error, Result};
use crate::history::DeletedChatbot;
use crate::idempotency::{Outcome, Written};
use crate::rules::SlugChoice;
use crate::store::{Filter, PageCursor, RecycleBin, StoreFuture, Undeletion};

/// Key of a deleted chatbot.
pub(super) fn deleted_key(id: ChatbotId) -> Vec<u8> {
    [b"x".as_slice(), id.as_bytes()].concat()
}

fn reservation_prefix(slug: &Slug) -> Vec<u8> {
    [b"r".as_slice(), slug.as_str().as_bytes(), b"/"].concat()
}

fn reservation_key(slug: &Slug, id: ChatbotId) -> Vec<u8> {
    [reservation_prefix(slug).as_slice(), id.as_bytes()].concat()
}

fn expiry_key(at: Timestamp, id: ChatbotId) -> Vec<u8> {
    [b"y".as_slice(), &(at.as_micros().max(0) as u64).to_be_bytes(), id.as_bytes()].concat()
}

/// Key of the mark that withholds an avatar image from the public route.
pub(super) fn withheld_key(id: AvatarId) -> Vec<u8> {
    [b"w".as_slice(), id.as_bytes()].concat()
}

pub(super) fn encode(deleted: &DeletedChatbot) -> Result<Vec<u8>> {
    let mut bytes = vec![1];
    serde_json::to_writer(&mut bytes, deleted).map_err(Error::storage)?;
    Ok(bytes)
}

/// The deleted chatbot stored as `bytes`.
pub(super) fn decode(bytes: &[u8]) -> Result<DeletedChatbot> {
    match bytes.split_first() {
        Some((1, json)) => serde_json::from_slice(json).map_err(Error::storage),
        _ => Err(Error::storage("a malformed deleted chatbot")),
    }
}

/// Whether another organisation's deleted chatbot reserves `slug` from `org` at `now`.
pub(super) fn reserved(tx: &Tx<'_>, slug: &Slug, org: OrgId, now: Timestamp) -> Result<bool> {
    for (_, value) in tx.scan_prefix(&reservation_prefix(slug))? {
        let (owner, until) = value.split_at(16.min(value.len()));
        let owner = OrgId::from_bytes(owner.try_into().map_err(Error::storage)?);
        let until = Timestamp::from_micros(i64::from_be_bytes(until.try_into().map_err(Error::storage)?));
        if owner != org && now < until {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Puts `deleted` in the bin: its record, its slug's reservation, its purge-order and listing keys.
pub(super) fn put_deleted(tx: &mut Tx<'_>, deleted: &DeletedChatbot) -> Result<()> {
    let chatbot = &deleted.chatbot;
    tx.insert(deleted_key(chatbot.id), encode(deleted)?);
    let reservation = [chatbot.organization_id.as_bytes().as_slice(), &deleted.purge_time.as_micros().to_be_bytes()];
    tx.insert(reservation_key(&chatbot.config.slug, chatbot.id), reservation.concat());
    tx.insert(expiry_key(deleted.purge_time, chatbot.id), Vec::new());
    tx.insert(listing::key_on(Shelf::Deleted, chatbot), Vec::new());
    Ok(())
}

/// Takes `deleted` out of the bin (undelete or purge).
fn take_out(tx: &mut Tx<'_>, deleted: &DeletedChatbot) {
    let chatbot = &deleted.chatbot;
    tx.remove(deleted_key(chatbot.id));
    tx.remove(reservation_key(&chatbot.config.slug, chatbot.id));
    tx.remove(expiry_key(deleted.purge_time, chatbot.id));
    tx.remove(listing::key_on(Shelf::Deleted, chatbot));
}

/// Every avatar image `chatbot` or a revision of it points at.
pub(super) fn images(tx: &Tx<'_>, chatbot: &Chatbot) -> Result<Vec<AvatarRef>> {
    let mut images: Vec<AvatarRef> = history::all(tx, chatbot.id)?.iter().filter_map(|r| r.avatar).collect();
    images.extend(chatbot.config.settings.avatar);
    images.sort_by_key(|image| *image.id.as_uuid());
    images.dedup();
    Ok(images)
}

/// Withholds (or serves again) the public route's images.
pub(super) fn withhold(tx: &mut Tx<'_>, images: &[AvatarRef], withheld: bool) {
    for image in images {
        match withheld {
            true => tx.insert(withheld_key(image.id), Vec::new()),
            false => tx.remove(withheld_key(image.id)),
        }
    }
}

/// The deleted chatbot `id` if `org` owns it; [`Error::NotDeleted`] if it is a live chatbot of
/// `org`, [`Error::NotFound`] otherwise.
fn deleted_of(tx: &Tx<'_>, org: OrgId, id: ChatbotId) -> Result<DeletedChatbot> {
    match tx.get(&deleted_key(id))? {
        Some(bytes) => {
            let deleted = decode(&bytes)?;
            if deleted.chatbot.organization_id == org { Ok(deleted) } else { Err(Error::NotFound) }
        }
        None => match owned(tx, org, id, None) {
            Ok(_) => Err(Error::NotDeleted),
            Err(err) => Err(err),
        },
    }
}

/// Removes `deleted`, its history and its images; logs `purged`.
fn purge_now(tx: &mut Tx<'_>, deleted: &DeletedChatbot) -> Result<()> {
    let images = images(tx, &deleted.chatbot)?;
    take_out(tx, deleted);
    history::forget_all(tx, deleted.chatbot.id)?;
    for image in &images {
        tx.remove(avatar_key(image.id));
        tx.remove(withheld_key(image.id));
    }
    tx.log(ChatbotEvent::removed(ChangeKind::Purged, &deleted.chatbot));
    Ok(())
}

impl RecycleBin for SledStore {
    fn deleted(
        &self,
        org: OrgId,
        filter: Filter,
        after: Option<PageCursor>,
        limit: usize,
    ) -> StoreFuture<'_, Vec<DeletedChatbot>> {
        Box::pin(async move {
            let (ids, _) = listing::page(&self.chatbots, Shelf::Deleted, org, filter, after.as_ref(), limit)?;
            let mut deleted = Vec::with_capacity(ids.len());
            for id in ids {
                // One purged between the two reads is simply not listed.
                if let Some(bytes) = self.chatbots.get(deleted_key(id))? {
                    deleted.push(decode(&bytes)?);
                }
            }
            Ok(deleted)
        })
    }

    fn undelete(&self, undeletion: Undeletion) -> StoreFuture<'_, Written<Chatbot>> {
        self.write(move |tx| {
            let Undeletion { org, id, slug, claim, provenance } = undeletion;
            if let Some(claim) = &claim
                && let Some(outcome) = check_claim(tx, org, claim)?
            {
                return outcome.replayed_chatbot();
            }
            let deleted = deleted_of(tx, org, id)?;
            let (chatbot, revision) = deleted.undeleted(slug, provenance);
            if reserved(tx, &chatbot.config.slug, org, Timestamp::now())? {
                return Err(Error::SlugTaken { slug: chatbot.config.slug.to_string() });
            }
            claim_slug(tx, org, id, &chatbot.config.slug, SlugChoice::Exact)?;
            take_out(tx, &deleted);
            let images = images(tx, &chatbot)?;
            withhold(tx, &images, false);
            put(tx, &chatbot)?;
            tx.log(ChatbotEvent::of_revision(&revision, Some(chatbot.etag())));
            history::record(tx, revision)?;
            if let Some(claim) = &claim {
                record_claim(tx, org, claim, Outcome::Chatbot(Box::new(chatbot.clone())))?;
            }
            Ok(Written::fresh(chatbot))
        })
    }

    fn purge(&self, org: OrgId, id: ChatbotId) -> StoreFuture<'_, ()> {
        self.write(move |tx| {
            let deleted = deleted_of(tx, org, id)?;
            purge_now(tx, &deleted)
        })
    }

    fn purge_expired(&self, now: Timestamp, limit: usize) -> StoreFuture<'_, usize> {
        Box::pin(async move {
            let Some((_, purge)) = expired(&self.chatbots, now, limit)? else { return Ok(0) };
            self.write(purge).await
        })
    }
}

/// The change that purges up to `limit` deleted chatbots whose purge time is before `now`, if any.
pub(super) fn expired(
    tree: &sled::Tree,
    now: Timestamp,
    limit: usize,
) -> Result<super::upkeep::Prune<impl FnOnce(&mut Tx<'_>) -> Result<usize> + Send + 'static>> {
    let due: Vec<sled::IVec> = tree
        .range(
            expiry_key(Timestamp::from_micros(0), ChatbotId::from_bytes([0; 16]))
                ..expiry_key(now, ChatbotId::from_bytes([0; 16])),
        )
        .keys()
        .take(limit)
        .collect::<sled::Result<_>>()?;
    if due.is_empty() {
        return Ok(None);
    }
    Ok(Some((due.len(), move |tx: &mut Tx<'_>| {
        let mut purged = 0;
        for key in due {
            let id = ChatbotId::from_bytes(key[9..].try_into().map_err(Error::storage)?);
            // Undeleted since the read: nothing to do.
            if let Some(bytes) = tx.get(&deleted_key(id))? {
                purge_now(tx, &decode(&bytes)?)?;
                purged += 1;
            }
        }
        Ok(purged)
    })))
}

/// The deleted chatbot `id`, whoever owns it (for reads of its history).
pub(super) fn read_deleted(tree: &sled::Tree, id: ChatbotId) -> Result<Option<DeletedChatbot>> {
    tree.get(deleted_key(id))?.map(|bytes| decode(&bytes)).transpose()
}

/// Whether the image `id` is withheld from the public route.
pub(super) fn is_withheld(tree: &sled::Tree, id: AvatarId) -> Result<bool> {
    Ok(tree.contains_key(withheld_key(id))?)
}
