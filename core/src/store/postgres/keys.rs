//! The `organisations` and `api_keys` tables: organisations and the hashes of their keys.

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use crate::auth::{ApiKeyInfo, KeyHash, Principal};
use crate::domain::{KeyId, OrgId, Timestamp};
use crate::error::{Error, Result, Violation, ViolationCode};
use crate::store::{KeyStore, Organisation, StoreFuture};

use super::failure::Failure;
use super::{PostgresStore, column};

impl PostgresStore {
    /// The organisation called `name`, created with id `new_id` if there is none.
    pub(super) async fn ensure_org_now(&self, name: &str, new_id: OrgId) -> Result<OrgId, Failure> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO organisations (id, name) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
                &[new_id.as_uuid(), &name],
            )
            .await?;
        let row = client.query_one("SELECT id FROM organisations WHERE name = $1", &[&name]).await?;
        Ok(OrgId::from_uuid(column(&row, 0)?))
    }

    async fn add_api_key_now(&self, key: &ApiKeyInfo) -> Result<(), Failure> {
        let client = self.client().await?;
        insert_key(&client, key).await?;
        let hash = key.hash.as_bytes().as_slice();
        let row = client.query_one("SELECT organisation_id FROM api_keys WHERE hash = $1", &[&hash]).await?;
        if OrgId::from_uuid(column(&row, 0)?) != key.organisation_id {
            return Err(Failure::Fail(Error::invalid(Violation::new(
                "api_key",
                ViolationCode::NotAllowed,
                "this key already belongs to another organisation",
            ))));
        }
        Ok(())
    }

    async fn add_first_api_key_attempt(&self, key: &ApiKeyInfo, attempt: u32) -> Result<bool, Failure> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // Locking the organisation's row makes concurrent bootstraps take turns.
        tx.query_one("SELECT id FROM organisations WHERE id = $1 FOR UPDATE", &[key.organisation_id.as_uuid()]).await?;
        let exists = tx.query_one("SELECT EXISTS (SELECT 1 FROM api_keys)", &[]).await?;
        if column::<bool>(&exists, 0)? {
            return Ok(false);
        }
        insert_key(&tx, key).await?;
        self.maybe_inject_failure(&tx, attempt).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn api_keys_now(&self, org: Option<OrgId>) -> Result<Vec<ApiKeyInfo>, Failure> {
        let client = self.client().await?;
        let sql = format!(
            "SELECT {KEY_COLUMNS} FROM api_keys \
                   WHERE $1::uuid IS NULL OR organisation_id = $1 ORDER BY created_at, id"
        );
        let rows = client.query(&sql, &[&org.map(|org| *org.as_uuid())]).await?;
        Ok(rows.iter().map(key_from_row).collect::<Result<_>>()?)
    }

    async fn revoke_now(&self, id: KeyId) -> Result<(), Failure> {
        let client = self.client().await?;
        match client.execute("DELETE FROM api_keys WHERE id = $1", &[id.as_uuid()]).await? {
            0 => Err(Failure::Fail(Error::NotFound)),
            _ => Ok(()),
        }
    }

    async fn touch_now(&self, key: KeyHash, at: Timestamp) -> Result<(), Failure> {
        let client = self.client().await?;
        let hash = key.as_bytes().as_slice();
        client.execute("UPDATE api_keys SET last_used_at = $2 WHERE hash = $1", &[&hash, &at.to_datetime()]).await?;
        Ok(())
    }

    async fn key_owner_now(&self, key: KeyHash) -> Result<Principal, Failure> {
        let client = self.client().await?;
        let statement = client.prepare_cached("SELECT organisation_id, id FROM api_keys WHERE hash = $1").await?;
        let row = client.query_opt(&statement, &[&key.as_bytes().as_slice()]).await?.ok_or(Error::Unauthenticated)?;
        Ok(Principal { org: OrgId::from_uuid(column(&row, 0)?), key: KeyId::from_uuid(column(&row, 1)?) })
    }
}

impl PostgresStore {
    pub(super) async fn organisations_now(&self) -> Result<Vec<Organisation>, Failure> {
        let rows = self.client().await?.query("SELECT id, name FROM organisations ORDER BY id", &[]).await?;
        let organisation =
            |row: &Row| Ok(Organisation { id: OrgId::from_uuid(column(row, 0)?), name: column(row, 1)? });
        Ok(rows.iter().map(organisation).collect::<Result<_>>()?)
    }
}

impl KeyStore for PostgresStore {
    fn ensure_org(&self, name: &str) -> StoreFuture<'_, OrgId> {
        let name = name.to_owned();
        Box::pin(async move { self.with_retries(|_| self.ensure_org_now(&name, OrgId::new_random())).await })
    }

    fn organisations(&self) -> StoreFuture<'_, Vec<Organisation>> {
        Box::pin(async move { self.with_retries(|_| self.organisations_now()).await })
    }

    fn add_api_key(&self, key: ApiKeyInfo) -> StoreFuture<'_, ()> {
        Box::pin(async move { self.with_retries(|_| self.add_api_key_now(&key)).await })
    }

    fn key_owner(&self, key: KeyHash) -> StoreFuture<'_, Principal> {
        Box::pin(async move { self.with_retries(|_| self.key_owner_now(key)).await })
    }

    fn add_first_api_key(&self, key: ApiKeyInfo) -> StoreFuture<'_, bool> {
        Box::pin(async move { self.with_retries(|attempt| self.add_first_api_key_attempt(&key, attempt)).await })
    }

    fn api_keys(&self, org: Option<OrgId>) -> StoreFuture<'_, Vec<ApiKeyInfo>> {
        Box::pin(async move { self.with_retries(|_| self.api_keys_now(org)).await })
    }

    fn revoke_api_key(&self, id: KeyId) -> StoreFuture<'_, ()> {
        Box::pin(async move { self.with_retries(|_| self.revoke_now(id)).await })
    }

    fn touch_api_key(&self, key: KeyHash, at: Timestamp) -> StoreFuture<'_, ()> {
        Box::pin(async move { self.with_retries(|_| self.touch_now(key, at)).await })
    }
}

/// Inserts a key's record unless its hash is there already.
pub(super) async fn insert_key(client: &impl GenericClient, key: &ApiKeyInfo) -> Result<(), Failure> {
    client
        .execute(
            &format!(
                "INSERT INTO api_keys ({KEY_COLUMNS})
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (hash) DO NOTHING"
            ),
            &[
                &key.hash.as_bytes().as_slice(),
                key.id.as_uuid(),
                key.organisation_id.as_uuid(),
                &key.prefix,
                &key.created_at.to_datetime(),
                &key.last_used_at.map(Timestamp::to_datetime),
            ],
        )
        .await?;
    Ok(())
}

/// The columns a key's record is stored in and read from, in [`key_from_row`]'s order.
pub(super) const KEY_COLUMNS: &str = "hash, id, organisation_id, prefix, created_at, last_used_at";

/// A key's record from a row of [`KEY_COLUMNS`].
pub(super) fn key_from_row(row: &Row) -> Result<ApiKeyInfo> {
    let hash: [u8; 32] =
        column::<&[u8]>(row, 0)?.try_into().map_err(|_| Error::storage("a key hash is not 32 bytes"))?;
    let last_used_at: Option<chrono::DateTime<chrono::Utc>> = column(row, 5)?;
    Ok(ApiKeyInfo {
        hash: KeyHash::from_bytes(hash),
        id: KeyId::from_uuid(column(row, 1)?),
        organisation_id: OrgId::from_uuid(column(row, 2)?),
        prefix: column(row, 3)?,
        created_at: Timestamp::from_datetime(column(row, 4)?),
        last_used_at: last_used_at.map(Timestamp::from_datetime),
    })
}
