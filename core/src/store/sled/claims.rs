//! Idempotency claims in the tree: each claimed key with the outcome it replays (under `i`), and a
//! time index of claims (under `t`) that pruning walks from the oldest.

use super::writer::Tx;
use super::{SledStore, upkeep};
use crate::domain::{OrgId, Timestamp};
use crate::error::{Error, Result};
use crate::idempotency::{Claim, IdempotencyKey, Outcome, Record as ClaimRecord, Verdict};
use crate::store::{ClaimStore, StoreFuture};

/// Key of the record of `org`'s idempotency key `key`.
pub(super) fn claim_key(org: OrgId, key: &IdempotencyKey) -> Vec<u8> {
    [b"i".as_slice(), org.as_bytes(), key.as_str().as_bytes()].concat()
}

/// The start of the time index's keys for claims made at `at`: they sort in time order.
pub(super) fn claim_time_prefix(at: Timestamp) -> Vec<u8> {
    [b"t".as_slice(), &(at.as_micros().max(0) as u64).to_be_bytes()].concat()
}

/// Key of a claim in the time index.
pub(super) fn claim_time_key(at: Timestamp, org: OrgId, key: &IdempotencyKey) -> Vec<u8> {
    [claim_time_prefix(at).as_slice(), org.as_bytes(), key.as_str().as_bytes()].concat()
}

pub(super) fn decode_claim(bytes: &[u8]) -> Result<ClaimRecord> {
    serde_json::from_slice(bytes).map_err(Error::storage)
}

/// What a write finds of its key: `None` when nothing stops it (no record, or an expired one, whose
/// index entry is dropped since the write replaces the record), the outcome to replay when the same
/// request claimed it, [`Error::IdempotencyKeyReused`] when another did.
pub(super) fn check_claim(tx: &mut Tx<'_>, org: OrgId, claim: &Claim) -> Result<Option<Outcome>> {
    let stored = tx.get(&claim_key(org, &claim.key))?.map(|bytes| decode_claim(&bytes)).transpose()?;
    match claim.verdict(stored)? {
        Verdict::Unclaimed => Ok(None),
        Verdict::Expired { at } => {
            tx.remove(claim_time_key(at, org, &claim.key));
            Ok(None)
        }
        Verdict::Replay(outcome) => Ok(Some(outcome)),
    }
}

/// Records `outcome` under the claimed key, in the same batch as the write.
pub(super) fn record_claim(tx: &mut Tx<'_>, org: OrgId, claim: &Claim, outcome: Outcome) -> Result<()> {
    let record = ClaimRecord { fingerprint: claim.fingerprint, at: claim.at, outcome };
    tx.insert(claim_key(org, &claim.key), serde_json::to_vec(&record).map_err(Error::storage)?);
    tx.insert(claim_time_key(claim.at, org, &claim.key), Vec::new());
    Ok(())
}

impl ClaimStore for SledStore {
    fn claimed(&self, org: OrgId, key: &IdempotencyKey) -> StoreFuture<'_, Option<ClaimRecord>> {
        let key = claim_key(org, key);
        Box::pin(async move { self.chatbots.get(key)?.map(|bytes| decode_claim(&bytes)).transpose() })
    }

    fn prune_claims(&self, before: Timestamp, limit: usize) -> StoreFuture<'_, usize> {
        Box::pin(async move {
            match upkeep::prune_claims(&self.chatbots, before, limit)? {
                Some((_, prune)) => self.write(prune).await,
                None => Ok(0),
            }
        })
    }
}
