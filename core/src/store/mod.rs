//! The embedded store on sled.
//!
//! Chatbots live in one tree, under three key prefixes, so that every change is one atomic batch:
//! - `c` + chatbot id -> record ([`codec`]);
//! - `s` + slug -> chatbot id (global uniqueness);
//! - `l` + listing key -> empty (per-organisation order and filters, see [`listing`]).
//!
//! Every change goes through the [`BatchWriter`]: concurrent writers share one batch and one fsync,
//! and are answered only once it is on disk. Reads go straight to sled: they may see a change a moment
//! before it is acknowledged, never half of one. Organisations and API keys live in their own trees
//! (`orgs`, `org_names`, `api_keys`); they change rarely and are flushed on each change.

mod codec;
pub(crate) mod listing;
mod writer;

use std::path::Path;

use sled::transaction::{TransactionError, Transactional};

use crate::auth::ApiKey;
use crate::chatbot::Chatbot;
use crate::domain::{ChatbotId, OrgId, Slug, Timestamp};
use crate::error::{Error, Result, Violation, ViolationCode};
use crate::rules::{Proposal, SlugChoice};
use listing::PageCursor;
pub(crate) use writer::wait_for;
pub use writer::{BatchWriter, Tx};

/// How many `-n` alternatives a derived slug tries before giving up with `slug_taken`.
const MAX_SLUG_SUFFIX: u32 = 10_000;

/// Key of a chatbot's record.
fn record_key(id: ChatbotId) -> Vec<u8> {
    let mut key = Vec::with_capacity(17);
    key.push(b'c');
    key.extend_from_slice(id.as_bytes());
    key
}

/// Key of a slug's owner.
fn slug_key(slug: &Slug) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + slug.as_str().len());
    key.push(b's');
    key.extend_from_slice(slug.as_str().as_bytes());
    key
}

/// The sled database and its trees.
pub(crate) struct Store {
    db: sled::Db,
    chatbots: sled::Tree,
    orgs: sled::Tree,
    org_names: sled::Tree,
    api_keys: sled::Tree,
    writer: BatchWriter,
}

impl Store {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Self> {
        let db = sled::Config::new().path(dir).mode(sled::Mode::HighThroughput).open()?;
        let chatbots = db.open_tree("chatbots")?;
        Ok(Store {
            writer: BatchWriter::new(db.clone(), chatbots.clone()),
            chatbots,
            orgs: db.open_tree("orgs")?,
            org_names: db.open_tree("org_names")?,
            api_keys: db.open_tree("api_keys")?,
            db,
        })
    }

    /// Stores a new chatbot for `org`, choosing its slug as the proposal says; `done` gets the outcome
    /// once it is durable.
    pub fn create(&self, org: OrgId, proposal: Proposal, done: impl FnOnce(Result<Chatbot>) + Send + 'static) {
        let now = Timestamp::now();
        let id = ChatbotId::new_random();
        let change = move |tx: &mut Tx<'_>| {
            let slug = claim_slug(tx, id, &proposal.config.slug, proposal.slug)?;
            let mut chatbot = Chatbot {
                id,
                organization_id: org,
                config: proposal.config,
                created_at: now,
                updated_at: now,
                revision: 1,
            };
            chatbot.config.slug = slug;
            put(tx, &chatbot)?;
            Ok(chatbot)
        };
        self.writer.submit(change, done);
    }

    /// The chatbot `id` if `org` owns it.
    pub fn get(&self, org: OrgId, id: ChatbotId) -> Result<Chatbot> {
        let record = self.chatbots.get(record_key(id))?.ok_or(Error::NotFound)?;
        let chatbot = codec::decode(&record)?;
        if chatbot.organization_id == org { Ok(chatbot) } else { Err(Error::NotFound) }
    }

    /// Applies `change` to the stored chatbot atomically. `expected_etag`, when given, must match the
    /// stored chatbot's. `done` gets the outcome once it is durable.
    pub fn update(
        &self,
        org: OrgId,
        id: ChatbotId,
        expected_etag: Option<String>,
        change: impl FnOnce(&Chatbot) -> Result<Proposal> + Send + 'static,
        done: impl FnOnce(Result<Chatbot>) + Send + 'static,
    ) {
        let change = move |tx: &mut Tx<'_>| {
            let current = owned(tx, org, id, expected_etag.as_deref())?;
            let proposal = change(&current)?;
            let slug = claim_slug(tx, id, &proposal.config.slug, proposal.slug)?;
            if slug != current.config.slug {
                tx.remove(slug_key(&current.config.slug));
            }
            let mut next = Chatbot {
                config: proposal.config,
                // Strictly later than before, so the entity tag changes even within one microsecond.
                updated_at: Timestamp::now().max(Timestamp::from_micros(current.updated_at.as_micros() + 1)),
                revision: current.revision + 1,
                ..current.clone()
            };
            next.config.slug = slug;
            unlist(tx, &current);
            put(tx, &next)?;
            Ok(next)
        };
        self.writer.submit(change, done);
    }

    /// Removes the chatbot and frees its slug, atomically; `done` gets the outcome once it is durable.
    pub fn delete(
        &self,
        org: OrgId,
        id: ChatbotId,
        expected_etag: Option<String>,
        done: impl FnOnce(Result<()>) + Send + 'static,
    ) {
        let change = move |tx: &mut Tx<'_>| {
            let current = owned(tx, org, id, expected_etag.as_deref())?;
            tx.remove(record_key(id));
            tx.remove(slug_key(&current.config.slug));
            unlist(tx, &current);
            Ok(())
        };
        self.writer.submit(change, done);
    }

    /// Up to `limit` chatbots of `org` after `after`, newest first, and whether more follow.
    pub fn list(
        &self,
        org: OrgId,
        filter: listing::Filter,
        after: Option<&PageCursor>,
        limit: usize,
    ) -> Result<(Vec<Chatbot>, bool)> {
        let (ids, more) = listing::page(&self.chatbots, org, filter, after, limit)?;
        let mut items = Vec::with_capacity(ids.len());
        for id in ids {
            // A chatbot deleted between the two reads is simply not listed.
            if let Some(record) = self.chatbots.get(record_key(id))? {
                items.push(codec::decode(&record)?);
            }
        }
        Ok((items, more))
    }

    /// Creates organisation `name` unless it exists, and returns its id.
    pub fn ensure_org(&self, name: &str) -> Result<OrgId> {
        let result = (&self.orgs, &self.org_names).transaction(|(orgs, names)| {
            if let Some(id) = names.get(name.as_bytes())? {
                return Ok(org_from_bytes(&id));
            }
            let id = OrgId::new_random();
            names.insert(name.as_bytes(), id.as_bytes())?;
            orgs.insert(id.as_bytes(), name.as_bytes())?;
            Ok(id)
        });
        let org = result.map_err(|err: TransactionError<Error>| match err {
            TransactionError::Abort(err) => err,
            TransactionError::Storage(err) => Error::from(err),
        })?;
        self.db.flush()?;
        Ok(org)
    }

    /// Makes `key` valid for `org`. A key already valid for `org` is fine; one that belongs to
    /// another organisation is refused.
    pub fn add_api_key(&self, org: OrgId, key: &ApiKey) -> Result<()> {
        let hash = ApiKey::hash(key.expose());
        let previous = self.api_keys.compare_and_swap(hash, None::<&[u8]>, Some(&org.as_bytes()[..]))?;
        if let Err(conflict) = previous
            && conflict.current.as_deref().map(org_from_bytes) != Some(org)
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

    /// Whether any API key exists yet.
    pub fn has_api_keys(&self) -> bool {
        !self.api_keys.is_empty()
    }

    /// The organisation a key belongs to.
    pub fn org_of_key(&self, secret: &str) -> Result<OrgId> {
        let org = self.api_keys.get(ApiKey::hash(secret))?.ok_or(Error::Unauthenticated)?;
        Ok(org_from_bytes(&org))
    }
}

/// The stored chatbot if `org` owns it and it matches `expected_etag` (when given).
fn owned(tx: &Tx<'_>, org: OrgId, id: ChatbotId, expected_etag: Option<&str>) -> Result<Chatbot> {
    let record = tx.get(&record_key(id))?.ok_or(Error::NotFound)?;
    let chatbot = codec::decode(&record)?;
    if chatbot.organization_id != org {
        return Err(Error::NotFound);
    }
    match expected_etag {
        Some(tag) if tag != chatbot.etag() => Err(Error::EtagMismatch),
        _ => Ok(chatbot),
    }
}

/// Points the slug index at `id` and returns the slug used: `wanted` itself if kept or exact (it must
/// be free or already `id`'s), or its first free `-n` variant if derived.
fn claim_slug(tx: &mut Tx<'_>, id: ChatbotId, wanted: &Slug, choice: SlugChoice) -> Result<Slug> {
    let attempts = match choice {
        SlugChoice::Kept | SlugChoice::Exact => 0,
        SlugChoice::Derived => MAX_SLUG_SUFFIX,
    };
    for n in 0..=attempts {
        let candidate = if n == 0 { wanted.clone() } else { wanted.with_suffix(n) };
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

/// Removes the listing key of the chatbot as it was.
fn unlist(tx: &mut Tx<'_>, chatbot: &Chatbot) {
    tx.remove(listing::key(chatbot));
}

fn org_from_bytes(bytes: &[u8]) -> OrgId {
    let mut id = [0u8; 16];
    id.copy_from_slice(&bytes[..16]);
    OrgId::from_bytes(id)
}
