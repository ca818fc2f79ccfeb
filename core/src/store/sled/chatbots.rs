//! Chatbots in the tree: records (`c`), the global slug index (`s`), the listing index (`l`, see
//! `listing.rs`) and avatar images (`d`), each change applied by the writer with its revision (see
//! `history.rs`), its event and its claim.

use super::claims::{check_claim, record_claim};
use super::writer::Tx;
use super::{SledStore, bin, codec, history, listing};
use crate::avatar::{AvatarId, AvatarRef, StoredAvatar};
use crate::changes::{ChangeKind, ChatbotEvent};
use crate::chatbot::Chatbot;
use crate::domain::{ChatbotId, OrgId, Slug};
use crate::error::{Error, Result};
use crate::history::DeletedChatbot;
use crate::idempotency::{Outcome, Written};
use crate::rules::SlugChoice;
use crate::store::{
    ChatbotDeletion, ChatbotStore, ChatbotUpdate, Filter, Listing, NewChatbot, PageCursor, Served, StoreFuture,
    slug_candidates,
};

/// Key of a chatbot's record.
pub(super) fn record_key(id: ChatbotId) -> Vec<u8> {
    let mut key = Vec::with_capacity(17);
    key.push(b'c');
    key.extend_from_slice(id.as_bytes());
    key
}

/// Key of an avatar image.
pub(super) fn avatar_key(id: AvatarId) -> Vec<u8> {
    [b"d".as_slice(), id.as_bytes()].concat()
}

/// Key of a slug's owner.
pub(super) fn slug_key(slug: &Slug) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + slug.as_str().len());
    key.push(b's');
    key.extend_from_slice(slug.as_str().as_bytes());
    key
}

impl ChatbotStore for SledStore {
    fn create(&self, new: NewChatbot) -> StoreFuture<'_, Written<Chatbot>> {
        self.write(move |tx| {
            let revision = new.revision();
            let NewChatbot { mut chatbot, slug, claim, .. } = new;
            let org = chatbot.organization_id;
            if let Some(claim) = &claim
                && let Some(outcome) = check_claim(tx, org, claim)?
            {
                return outcome.replayed_chatbot();
            }
            chatbot.config.slug = claim_slug(tx, org, chatbot.id, &chatbot.config.slug, slug)?;
            put(tx, &chatbot)?;
            tx.log(ChatbotEvent::of_revision(&revision, Some(chatbot.etag())));
            history::record(tx, revision)?;
            if let Some(claim) = &claim {
                record_claim(tx, org, claim, Outcome::Chatbot(Box::new(chatbot.clone())))?;
            }
            Ok(Written::fresh(chatbot))
        })
    }

    fn get(&self, org: OrgId, id: ChatbotId) -> StoreFuture<'_, Chatbot> {
        Box::pin(async move { self.read_chatbot(org, id) })
    }

    fn public_by_slug(&self, slug: &Slug) -> StoreFuture<'_, Option<Served>> {
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
            let chatbot: Option<Chatbot> = match self.chatbots.get(record_key(ChatbotId::from_bytes(id)))? {
                Some(record) => Some(codec::decode(&record)?),
                None => {
                    std::hint::black_box(codec::decode(&codec::STAND_IN)?);
                    None
                }
            };
            // While a revision is published, its content is what the public sees.
            let served = match chatbot {
                Some(head) => {
                    let revision = head.revision;
                    let content = match head.published.filter(|published| published.revision != head.revision) {
                        Some(published) => history::content(&self.chatbots, head.id, published.revision)?,
                        None => Some(head),
                    };
                    content.map(|chatbot| Served { chatbot, revision })
                }
                None => None,
            };
            Ok(served.filter(|served| served.chatbot.config.is_public && served.chatbot.config.active))
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
            if let Some(Some(published)) = update.publish {
                history::check_kept(tx, &current, published)?;
            }
            let Some((mut next, slug)) = update.apply(&current)? else {
                // Nothing changes: no revision, no event; the claim still records the answer.
                if let Some(claim) = &update.claim {
                    record_claim(tx, update.org, claim, Outcome::Chatbot(Box::new(current.clone())))?;
                }
                return Ok(Written::fresh(current));
            };
            next.config.slug = claim_slug(tx, update.org, next.id, &next.config.slug, slug)?;
            if next.config.slug != current.config.slug {
                tx.remove(slug_key(&current.config.slug));
            }
            tx.remove(listing::key(&current));
            put(tx, &next)?;
            if let Some(image) = &update.avatar {
                tx.insert(avatar_key(image.reference.id), codec::encode_avatar(image)?);
            }
            let revision = update.revision(&current, &next);
            tx.log(ChatbotEvent::of_revision(&revision, Some(next.etag())));
            history::keep_snapshot(tx, &current)?;
            history::record(tx, revision)?;
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
            let images = bin::images(tx, &current)?;
            if deletion.keep_for.is_zero() {
                // No window: the chatbot, its history and its images go at once.
                history::forget_all(tx, current.id)?;
                images.iter().for_each(|image| tx.remove(avatar_key(image.id)));
                tx.log(ChatbotEvent::removed(ChangeKind::Deleted, &current));
            } else {
                history::keep_snapshot(tx, &current)?;
                let (deleted, revision) = DeletedChatbot::of(current, deletion.keep_for, deletion.provenance.clone());
                bin::withhold(tx, &images, true);
                bin::put_deleted(tx, &deleted)?;
                tx.log(ChatbotEvent::of_revision(&revision.revision, None));
                history::put(tx, &revision)?;
            }
            if let Some(claim) = &deletion.claim {
                record_claim(tx, deletion.org, claim, Outcome::Deleted)?;
            }
            Ok(Written::fresh(()))
        })
    }

    fn avatar(&self, reference: AvatarRef) -> StoreFuture<'_, Option<StoredAvatar>> {
        Box::pin(async move {
            if bin::is_withheld(&self.chatbots, reference.id)? {
                return Ok(None);
            }
            let stored = self.chatbots.get(avatar_key(reference.id))?;
            stored.map(|bytes| codec::decode_avatar(reference.id, &bytes)).transpose()
        })
    }
}

/// The stored chatbot if `org` owns it and it matches `expected_etag` (when given).
pub(super) fn owned(tx: &Tx<'_>, org: OrgId, id: ChatbotId, expected_etag: Option<&str>) -> Result<Chatbot> {
    let record = tx.get(&record_key(id))?.ok_or(Error::NotFound)?;
    let chatbot = codec::decode(&record)?;
    if chatbot.organization_id != org {
        return Err(Error::NotFound);
    }
    chatbot.check_etag(expected_etag)?;
    Ok(chatbot)
}

/// Points the slug index at `id` (of `org`) and returns the slug used: `wanted` itself if kept or exact
/// (it must be free or already `id`'s, and not reserved by another organisation's deleted chatbot),
/// or its first such `-n` variant if derived.
pub(super) fn claim_slug(
    tx: &mut Tx<'_>,
    org: OrgId,
    id: ChatbotId,
    wanted: &Slug,
    choice: SlugChoice,
) -> Result<Slug> {
    let now = crate::domain::Timestamp::now();
    for candidate in slug_candidates(wanted, choice) {
        let key = slug_key(&candidate);
        // Another organisation's deleted chatbot keeps its slug until it is purged.
        if bin::reserved(tx, &candidate, org, now)? {
            continue;
        }
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
pub(super) fn put(tx: &mut Tx<'_>, chatbot: &Chatbot) -> Result<()> {
    tx.insert(record_key(chatbot.id), codec::encode(chatbot)?);
    tx.insert(listing::key(chatbot), Vec::new());
    Ok(())
}
