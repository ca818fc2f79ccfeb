//! The `idempotency_keys` table: each claimed key with the outcome it replays, written in the same
//! transaction as its write.

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;
use tokio_postgres::types::Json;

use crate::domain::{OrgId, Timestamp};
use crate::error::{Error, Result};
use crate::idempotency::{Claim, Fingerprint, IdempotencyKey, Outcome, Record as ClaimRecord, Verdict};
use crate::store::{ClaimStore, StoreFuture};

use super::failure::Failure;
use super::{PostgresStore, column};

impl PostgresStore {
    async fn claimed_now(&self, org: OrgId, key: &IdempotencyKey) -> Result<Option<ClaimRecord>, Failure> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "SELECT {CLAIM_COLUMNS} FROM idempotency_keys WHERE organisation_id = $1 AND key = $2"
            ))
            .await?;
        let row = client.query_opt(&statement, &[org.as_uuid(), &key.as_str()]).await?;
        Ok(row.as_ref().map(claim_from_row).transpose()?)
    }

    async fn prune_claims_now(&self, before: Timestamp, limit: usize) -> Result<usize, Failure> {
        let client = self.client().await?;
        let limit = i64::try_from(limit).map_err(Error::storage)?;
        let pruned = client
            .execute(
                "DELETE FROM idempotency_keys WHERE (organisation_id, key) IN \
                 (SELECT organisation_id, key FROM idempotency_keys WHERE created_at < $1 LIMIT $2)",
                &[&before.to_datetime(), &limit],
            )
            .await?;
        Ok(usize::try_from(pruned).map_err(Error::storage)?)
    }
}

impl ClaimStore for PostgresStore {
    fn claimed(&self, org: OrgId, key: &IdempotencyKey) -> StoreFuture<'_, Option<ClaimRecord>> {
        let key = key.clone();
        Box::pin(async move { self.with_retries(|_| self.claimed_now(org, &key)).await })
    }

    fn prune_claims(&self, before: Timestamp, limit: usize) -> StoreFuture<'_, usize> {
        Box::pin(async move { self.with_retries(|_| self.prune_claims_now(before, limit)).await })
    }
}

/// The columns a claim record is read from, in [`claim_from_row`]'s order.
const CLAIM_COLUMNS: &str = "fingerprint, created_at, outcome";

/// A claim record from a row of [`CLAIM_COLUMNS`].
pub(super) fn claim_from_row(row: &Row) -> Result<ClaimRecord> {
    let fingerprint: [u8; 32] =
        column::<&[u8]>(row, 0)?.try_into().map_err(|_| Error::storage("a fingerprint is not 32 bytes"))?;
    let Json(outcome): Json<Outcome> = column(row, 2)?;
    Ok(ClaimRecord {
        fingerprint: Fingerprint::from_bytes(fingerprint),
        at: Timestamp::from_datetime(column(row, 1)?),
        outcome,
    })
}

/// Within a write's transaction: what it finds of its key, as the sled engine's `check_claim`. An
/// existing record is locked; an expired one is removed, since the write replaces it.
pub(super) async fn check_claim(
    tx: &deadpool_postgres::Transaction<'_>,
    org: OrgId,
    claim: &Claim,
) -> Result<Option<Outcome>, Failure> {
    let statement = tx
        .prepare_cached(&format!(
            "SELECT {CLAIM_COLUMNS} FROM idempotency_keys WHERE organisation_id = $1 AND key = $2 FOR UPDATE"
        ))
        .await?;
    let row = tx.query_opt(&statement, &[org.as_uuid(), &claim.key.as_str()]).await?;
    match claim.verdict(row.as_ref().map(claim_from_row).transpose()?)? {
        Verdict::Unclaimed => Ok(None),
        Verdict::Expired { .. } => {
            tx.execute(
                "DELETE FROM idempotency_keys WHERE organisation_id = $1 AND key = $2",
                &[org.as_uuid(), &claim.key.as_str()],
            )
            .await?;
            Ok(None)
        }
        Verdict::Replay(outcome) => Ok(Some(outcome)),
    }
}

/// Commits a write's transaction. When the connection breaks with the COMMIT sent, whether it committed
/// is found on another connection by the write's claim: there under this claim, it did (and the write
/// is done); absent, it did not (and the write runs again). A write without a claim, or a database
/// that cannot be asked, is [`Error::OutcomeUnknown`].
pub(super) async fn commit(
    store: &PostgresStore,
    tx: deadpool_postgres::Transaction<'_>,
    org: OrgId,
    claim: Option<&Claim>,
) -> Result<(), Failure> {
    let err = match tx.commit().await {
        Ok(()) => return Ok(()),
        Err(err) if err.code().is_some() => return Err(err.into()),
        Err(err) => err,
    };
    tracing::warn!(error = %err, "the database connection broke at a commit; finding out whether it committed");
    let Some(claim) = claim else { return Err(Failure::Fail(Error::OutcomeUnknown)) };
    match store.claimed_now(org, &claim.key).await {
        Ok(Some(record)) if record.fingerprint == claim.fingerprint && record.at == claim.at => Ok(()),
        Ok(_) => Err(Failure::Retry(format!("the commit did not happen: {err}"))),
        Err(_) => Err(Failure::Fail(Error::OutcomeUnknown)),
    }
}

/// Within a write's transaction: records its outcome under its key. A concurrent transaction that
/// claimed the same key first makes this one wait, then fail the insert: it runs again, and replays.
pub(super) async fn record_claim(
    tx: &deadpool_postgres::Transaction<'_>,
    org: OrgId,
    claim: &Claim,
    outcome: Outcome,
) -> Result<(), Failure> {
    let statement = tx
        .prepare_cached(
            "INSERT INTO idempotency_keys (organisation_id, key, fingerprint, created_at, outcome)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (organisation_id, key) DO NOTHING",
        )
        .await?;
    let fingerprint = claim.fingerprint.as_bytes().as_slice();
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 5] =
        [org.as_uuid(), &claim.key.as_str(), &fingerprint, &claim.at.to_datetime(), &Json(&outcome)];
    match tx.execute(&statement, &params).await? {
        1 => Ok(()),
        _ => Err(Failure::Retry("a concurrent request claimed the same idempotency key".into())),
    }
}
