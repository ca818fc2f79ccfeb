//! The embedded store: sled trees, each write one serializable transaction across every tree it
//! touches, made durable by a shared flush before it is acknowledged.
//!
//! Trees:
//! - `chatbots`: chatbot id -> record ([`codec`]);
//! - `slugs`: slug -> chatbot id (global uniqueness);
//! - `listing`: per-organisation order keys ([`listing`]) -> empty;
//! - `orgs`: organisation id -> name; `org_names`: name -> organisation id;
//! - `api_keys`: SHA-256 of a key -> organisation id.

mod codec;
mod durability;
pub(crate) mod listing;

use std::path::Path;

use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional, TransactionalTree};

use crate::auth::ApiKey;
use crate::chatbot::Chatbot;
use crate::domain::{ChatbotId, OrgId, Slug, Timestamp};
use crate::error::{Error, Result, Violation, ViolationCode};
use crate::rules::{Proposal, SlugChoice};
use durability::GroupCommit;
use listing::{ListingKey, PageCursor};

/// How many `-n` alternatives a derived slug tries before giving up with `slug_taken`.
const MAX_SLUG_SUFFIX: u32 = 10_000;

/// The sled database and its trees.
pub(crate) struct Store {
    db: sled::Db,
    chatbots: sled::Tree,
    slugs: sled::Tree,
    listing: sled::Tree,
    orgs: sled::Tree,
    org_names: sled::Tree,
    api_keys: sled::Tree,
    commit: GroupCommit,
}

/// The chatbot trees as seen inside one transaction.
struct Tx<'a> {
    chatbots: &'a TransactionalTree,
    slugs: &'a TransactionalTree,
    listing: &'a TransactionalTree,
}

type TxResult<T> = Result<T, ConflictableTransactionError<Error>>;

impl Store {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Self> {
        let db = sled::Config::new().path(dir).mode(sled::Mode::HighThroughput).open()?;
        Ok(Store {
            chatbots: db.open_tree("chatbots")?,
            slugs: db.open_tree("slugs")?,
            listing: db.open_tree("listing")?,
            orgs: db.open_tree("orgs")?,
            org_names: db.open_tree("org_names")?,
            api_keys: db.open_tree("api_keys")?,
            commit: GroupCommit::default(),
            db,
        })
    }

    /// Runs `body` as one serializable transaction over the chatbot trees, then waits for a flush
    /// that covers it: when this returns `Ok`, the change survives a crash.
    fn write<T>(&self, body: impl Fn(&Tx<'_>) -> TxResult<T>) -> Result<T> {
        let result = (&self.chatbots, &self.slugs, &self.listing)
            .transaction(|(chatbots, slugs, listing)| body(&Tx { chatbots, slugs, listing }));
        let value = unwrap_tx(result)?;
        self.commit.flush(&self.db)?;
        Ok(value)
    }

    /// Stores a new chatbot for `org`, choosing its slug as the proposal says.
    pub fn create(&self, org: OrgId, proposal: &Proposal) -> Result<Chatbot> {
        let now = Timestamp::now();
        let id = ChatbotId::new_random();
        self.write(|tx| {
            let mut chatbot = Chatbot {
                id,
                organization_id: org,
                config: proposal.config.clone(),
                created_at: now,
                updated_at: now,
                revision: 1,
            };
            chatbot.config.slug = tx.claim_slug(id, &proposal.config.slug, proposal.slug)?;
            tx.put(&chatbot)?;
            Ok(chatbot)
        })
    }

    /// The chatbot `id` if `org` owns it.
    pub fn get(&self, org: OrgId, id: ChatbotId) -> Result<Chatbot> {
        let record = self.chatbots.get(id.as_bytes())?.ok_or(Error::NotFound)?;
        let chatbot = codec::decode(&record)?;
        if chatbot.organization_id == org { Ok(chatbot) } else { Err(Error::NotFound) }
    }

    /// Applies `change` to the stored chatbot atomically. `expected_etag`, when given, must match the
    /// stored chatbot's. `change` may run more than once if the transaction is retried.
    pub fn update(
        &self,
        org: OrgId,
        id: ChatbotId,
        expected_etag: Option<&str>,
        change: impl Fn(&Chatbot) -> Result<Proposal>,
    ) -> Result<Chatbot> {
        self.write(|tx| {
            let current = tx.owned(org, id, expected_etag)?;
            let proposal = change(&current).map_err(ConflictableTransactionError::Abort)?;
            let mut next = Chatbot {
                config: proposal.config,
                // Strictly later than before, so the entity tag changes even within one microsecond.
                updated_at: Timestamp::now().max(Timestamp::from_micros(current.updated_at.as_micros() + 1)),
                revision: current.revision + 1,
                ..current.clone()
            };
            next.config.slug = tx.claim_slug(id, &next.config.slug, proposal.slug)?;
            if next.config.slug != current.config.slug {
                tx.slugs.remove(current.config.slug.as_str().as_bytes())?;
            }
            tx.unlist(&current)?;
            tx.put(&next)?;
            Ok(next)
        })
    }

    /// Removes the chatbot and frees its slug, atomically.
    pub fn delete(&self, org: OrgId, id: ChatbotId, expected_etag: Option<&str>) -> Result<()> {
        self.write(|tx| {
            let current = tx.owned(org, id, expected_etag)?;
            tx.chatbots.remove(id.as_bytes())?;
            tx.slugs.remove(current.config.slug.as_str().as_bytes())?;
            tx.unlist(&current)?;
            Ok(())
        })
    }

    /// Up to `limit` chatbots of `org` after `after`, newest first, and whether more follow.
    pub fn list(
        &self,
        org: OrgId,
        filter: listing::Filter,
        after: Option<&PageCursor>,
        limit: usize,
    ) -> Result<(Vec<Chatbot>, bool)> {
        let prefix = listing::prefix(org, filter);
        let start = match after {
            Some(cursor) => std::ops::Bound::Excluded(cursor.key(&prefix)),
            None => std::ops::Bound::Included(prefix.clone()),
        };
        let mut items = Vec::with_capacity(limit);
        let mut more = false;
        for entry in self.listing.range::<Vec<u8>, _>((start, std::ops::Bound::Unbounded)) {
            let (key, _) = entry?;
            let Some(id) = ListingKey::chatbot_in(&key, &prefix) else {
                break;
            };
            if items.len() == limit {
                more = true;
                break;
            }
            // A chatbot deleted between the two reads is simply not listed.
            if let Some(record) = self.chatbots.get(id.as_bytes())? {
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
        let org = unwrap_tx(result)?;
        self.commit.flush(&self.db)?;
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
        self.commit.flush(&self.db)?;
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

    /// The organisation's name, if it exists.
    pub fn org_name(&self, org: OrgId) -> Result<Option<String>> {
        let name = self.orgs.get(org.as_bytes())?;
        Ok(name.map(|n| String::from_utf8_lossy(&n).into_owned()))
    }

    /// Number of chatbots stored, across organisations.
    pub fn chatbot_count(&self) -> usize {
        self.chatbots.len()
    }

    /// Bytes the store occupies on disk.
    pub fn size_on_disk(&self) -> Result<u64> {
        Ok(self.db.size_on_disk()?)
    }
}

impl Tx<'_> {
    /// The stored chatbot if `org` owns it and it matches `expected_etag` (when given).
    fn owned(&self, org: OrgId, id: ChatbotId, expected_etag: Option<&str>) -> TxResult<Chatbot> {
        let record = self.chatbots.get(id.as_bytes())?;
        let chatbot = record.map(|r| codec::decode(&r)).transpose().map_err(ConflictableTransactionError::Abort)?;
        let chatbot =
            chatbot.filter(|c| c.organization_id == org).ok_or(ConflictableTransactionError::Abort(Error::NotFound))?;
        match expected_etag {
            Some(tag) if tag != chatbot.etag() => Err(ConflictableTransactionError::Abort(Error::EtagMismatch)),
            _ => Ok(chatbot),
        }
    }

    /// Points the slug index at `id` and returns the slug used: `wanted` itself if kept or exact (it
    /// must be free or already `id`'s), or its first free `-n` variant if derived.
    fn claim_slug(&self, id: ChatbotId, wanted: &Slug, choice: SlugChoice) -> TxResult<Slug> {
        let attempts = match choice {
            SlugChoice::Kept | SlugChoice::Exact => 0,
            SlugChoice::Derived => MAX_SLUG_SUFFIX,
        };
        for n in 0..=attempts {
            let candidate = if n == 0 { wanted.clone() } else { wanted.with_suffix(n) };
            match self.slugs.get(candidate.as_str().as_bytes())? {
                Some(owner) if owner.as_ref() != id.as_bytes() => continue,
                Some(_) => return Ok(candidate),
                None => {
                    self.slugs.insert(candidate.as_str().as_bytes(), id.as_bytes())?;
                    return Ok(candidate);
                }
            }
        }
        Err(ConflictableTransactionError::Abort(Error::SlugTaken { slug: wanted.to_string() }))
    }

    /// Writes the record and its listing keys.
    fn put(&self, chatbot: &Chatbot) -> TxResult<()> {
        let record = codec::encode(chatbot).map_err(ConflictableTransactionError::Abort)?;
        self.chatbots.insert(chatbot.id.as_bytes(), record)?;
        for key in ListingKey::all_for(chatbot) {
            self.listing.insert(key.as_bytes(), &[][..])?;
        }
        Ok(())
    }

    /// Removes the listing keys of the chatbot as it was.
    fn unlist(&self, chatbot: &Chatbot) -> TxResult<()> {
        for key in ListingKey::all_for(chatbot) {
            self.listing.remove(key.as_bytes())?;
        }
        Ok(())
    }
}

fn unwrap_tx<T>(result: Result<T, TransactionError<Error>>) -> Result<T> {
    result.map_err(|err| match err {
        TransactionError::Abort(err) => err,
        TransactionError::Storage(err) => Error::from(err),
    })
}

fn org_from_bytes(bytes: &[u8]) -> OrgId {
    let mut id = [0u8; 16];
    id.copy_from_slice(&bytes[..16]);
    OrgId::from_bytes(id)
}
