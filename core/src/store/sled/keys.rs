//! Organisations and the hashes of their API keys, in trees of their own (`orgs`, `org_names`,
//! `api_keys`), changed in sled transactions.

use super::SledStore;
use crate::auth::{ApiKeyInfo, KeyHash, Principal};
use crate::domain::{KeyId, OrgId, Timestamp};
use crate::error::{Error, Result};
use crate::store::{KeyStore, Organisation, StoreFuture};

/// A key's record as stored: JSON, or (written before keys had records) just its organisation's 16
/// bytes, which still reads, with an id taken from its hash.
pub(super) fn decode_key(hash: &[u8], record: &[u8]) -> Result<ApiKeyInfo> {
    let hash: [u8; 32] = hash.try_into().map_err(|_| Error::storage("a key hash is not 32 bytes"))?;
    if record.len() == 16 {
        let mut id = [0u8; 16];
        id.copy_from_slice(&hash[..16]);
        return Ok(ApiKeyInfo {
            id: KeyId::from_bytes(id),
            organisation_id: org_from_bytes(record)?,
            hash: KeyHash::from_bytes(hash),
            prefix: String::new(),
            created_at: Timestamp::from_micros(0),
            last_used_at: None,
        });
    }
    serde_json::from_slice(record).map_err(Error::storage)
}

impl KeyStore for SledStore {
    fn ensure_org(&self, name: &str) -> StoreFuture<'_, OrgId> {
        let name = name.to_owned();
        Box::pin(async move { self.ensure_org_now(&name, OrgId::new_random()) })
    }

    fn organisations(&self) -> StoreFuture<'_, Vec<Organisation>> {
        Box::pin(async move {
            let mut all = Vec::new();
            for entry in &self.orgs {
                let (id, name) = entry?;
                let name = String::from_utf8(name.to_vec()).map_err(Error::storage)?;
                all.push(Organisation { id: org_from_bytes(&id)?, name });
            }
            Ok(all)
        })
    }

    fn add_api_key(&self, key: ApiKeyInfo) -> StoreFuture<'_, ()> {
        Box::pin(async move { self.add_api_key_now(&key) })
    }

    fn key_owner(&self, key: KeyHash) -> StoreFuture<'_, Principal> {
        Box::pin(async move {
            let info = self.key_now(key)?;
            Ok(Principal { org: info.organisation_id, key: info.id })
        })
    }

    fn add_first_api_key(&self, key: ApiKeyInfo) -> StoreFuture<'_, bool> {
        // One process owns a sled store, and it bootstraps before it serves: nothing can race this.
        Box::pin(async move {
            if !self.api_keys.is_empty() {
                return Ok(false);
            }
            self.add_api_key_now(&key)?;
            Ok(true)
        })
    }

    fn api_keys(&self, org: Option<OrgId>) -> StoreFuture<'_, Vec<ApiKeyInfo>> {
        Box::pin(async move {
            let mut keys = self.all_keys()?;
            keys.retain(|key| org.is_none_or(|org| key.organisation_id == org));
            Ok(keys)
        })
    }

    fn revoke_api_key(&self, id: KeyId) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let key = self.all_keys()?.into_iter().find(|key| key.id == id).ok_or(Error::NotFound)?;
            self.api_keys.remove(key.hash.as_bytes())?;
            self.db.flush()?;
            Ok(())
        })
    }

    fn touch_api_key(&self, key: KeyHash, at: Timestamp) -> StoreFuture<'_, ()> {
        // Advisory, so not flushed: a crash may forget the last minute of use.
        Box::pin(async move {
            self.api_keys.fetch_and_update(key.as_bytes(), |record| {
                let mut info = decode_key(key.as_bytes(), record?).ok()?;
                info.last_used_at = Some(at);
                serde_json::to_vec(&info).ok()
            })?;
            Ok(())
        })
    }
}

/// An organisation id as stored: 16 bytes. Anything else is a corrupt store, not a reason to panic.
pub(super) fn org_from_bytes(bytes: &[u8]) -> Result<OrgId> {
    let id: [u8; 16] = bytes.try_into().map_err(|_| Error::storage("a stored organisation id is not 16 bytes"))?;
    Ok(OrgId::from_bytes(id))
}
