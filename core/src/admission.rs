//! Who may come in: organisations and their API keys (stored only as hashes), and every caller's fair
//! share of the service (rate limits per key, per client address without a key, on the public
//! routes). Both faces ask it first; the admin API manages keys through it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::auth::{ApiKey, ApiKeyInfo, KeyHash, Principal};
use crate::domain::{KeyId, OrgId, Timestamp};
use crate::error::{Error, Result};
use crate::fair_use::{Allowance, RateLimits};
use crate::store::Store;

/// How long a key the store has let in is trusted without asking the store again: what bounds how late
/// a key revoked through another replica is refused here (one revoked through this one is refused at
/// once). A second saves a store read on nearly every request of a busy key.
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(1);

/// Admission and key management over a store; see the module documentation.
pub struct Admission {
    store: Arc<dyn Store>,
    limits: Arc<RateLimits>,
    /// When each key's use was last noted in the store.
    last_use_noted: Mutex<HashMap<KeyHash, Instant>>,
    /// Keys the store let in lately, with their organisation and when the store said so. Only keys that
    /// exist are kept, so its size is bounded by the keys of the store, not by what callers send.
    known: Mutex<HashMap<KeyHash, (Principal, Instant)>>,
}

impl Admission {
    /// Admission over `store`, within `limits`.
    pub(crate) fn new(store: Arc<dyn Store>, limits: Arc<RateLimits>) -> Self {
        Admission { store, limits, last_use_noted: Mutex::default(), known: Mutex::default() }
    }

    /// The organisation an API key belongs to; [`Error::Unauthenticated`] for an unknown key: what
    /// [`Admission::admit`] lets in, for an embedder that has no client address.
    pub async fn authenticate(&self, api_key: &str) -> Result<OrgId> {
        Ok(self.admit(Some(api_key), None).await.0?.org)
    }

    /// Lets a request in, or not: its API key's organisation and id, within that key's rate limit; or,
    /// without a valid key, [`Error::Unauthenticated`] within the limit of its client address. Either
    /// way [`Error::RateLimited`] once the bucket is empty. Also returns what is left of the bucket.
    pub async fn admit(&self, api_key: Option<&str>, client: Option<IpAddr>) -> (Result<Principal>, Option<Allowance>) {
        let key = api_key.map(str::trim).filter(|key| !key.is_empty()).map(KeyHash::of);
        let org = match key {
            Some(key) => self.key_owner(key).await,
            None => Err(Error::Unauthenticated),
        };
        if let (Ok(_), Some(key)) = (&org, key) {
            self.note_use(key).await;
        }
        let taken = match (&org, key, client) {
            (Ok(_), Some(key), _) => self.limits.take_for_key(key),
            (Err(Error::Unauthenticated), _, Some(client)) => self.limits.take_for_client(client),
            _ => Ok(None),
        };
        match taken {
            Ok(allowance) => (org, allowance),
            Err(exhausted) => {
                let scope = if key.is_some() && org.is_ok() { "key" } else { "client" };
                metrics::counter!(crate::metric::RATE_LIMITED, "scope" => scope).increment(1);
                (Err(Error::RateLimited { limit: exhausted.limit, retry_after: exhausted.retry_after }), None)
            }
        }
    }

    /// The organisation and id of the key with this hash: from what the store said less than
    /// [`KEY_CACHE_TTL`] ago, else from the store.
    async fn key_owner(&self, key: KeyHash) -> Result<Principal> {
        let now = Instant::now();
        let known = self.known.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(&key).copied();
        if let Some((org, at)) = known
            && now.duration_since(at) < KEY_CACHE_TTL
        {
            return Ok(org);
        }
        let org = self.store.key_owner(key).await?;
        let mut known = self.known.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if known.len() >= 4096 {
            known.retain(|_, (_, at)| now.duration_since(*at) < KEY_CACHE_TTL);
        }
        known.insert(key, (org, now));
        Ok(org)
    }

    /// Notes a key's use in the store, at most once a minute per key (and per replica), so that a
    /// listing can say when each key was last used without a write per request.
    async fn note_use(&self, key: KeyHash) {
        let now = std::time::Instant::now();
        let due = {
            let mut noted = self.last_use_noted.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            match noted.get(&key) {
                Some(at) if now.duration_since(*at) < Duration::from_secs(60) => false,
                Some(_) | None => {
                    noted.insert(key, now);
                    true
                }
            }
        };
        if due {
            // Advisory: a failure to note it must not fail the request it lets in.
            let _ = self.store.touch_api_key(key, Timestamp::now()).await;
        }
    }

    /// Lets a request of a public route (no key) in, or not: within the limit of its client address,
    /// else [`Error::RateLimited`]. Also returns what is left of the bucket.
    pub fn admit_public(&self, client: Option<IpAddr>) -> (Result<()>, Option<Allowance>) {
        match client.map(|client| self.limits.take_for_public_client(client)) {
            None => (Ok(()), None),
            Some(Ok(allowance)) => (Ok(()), allowance),
            Some(Err(exhausted)) => {
                metrics::counter!(crate::metric::RATE_LIMITED, "scope" => "public").increment(1);
                (Err(Error::RateLimited { limit: exhausted.limit, retry_after: exhausted.retry_after }), None)
            }
        }
    }

    /// Lets a request that matches no route (or no method of one) on to its 404 or 405, or not: within
    /// the limit of its client address, as for any request without a valid key.
    pub fn admit_unrouted(&self, client: Option<IpAddr>) -> Result<()> {
        match client.map(|client| self.limits.take_for_client(client)) {
            None | Some(Ok(_)) => Ok(()),
            Some(Err(exhausted)) => {
                metrics::counter!(crate::metric::RATE_LIMITED, "scope" => "client").increment(1);
                Err(Error::RateLimited { limit: exhausted.limit, retry_after: exhausted.retry_after })
            }
        }
    }

    /// Creates a new API key for organisation `org_name` (created if needed). The key is returned
    /// in clear this once; only its hash is stored.
    pub async fn create_api_key(&self, org_name: &str) -> Result<(OrgId, ApiKey)> {
        let (info, key) = self.issue_api_key(org_name).await?;
        Ok((info.organisation_id, key))
    }

    /// [`Admission::create_api_key`], returning the key's record too.
    pub async fn issue_api_key(&self, org_name: &str) -> Result<(ApiKeyInfo, ApiKey)> {
        let key = ApiKey::generate();
        let org = self.store.ensure_org(org_name).await?;
        let info = key.info(org);
        self.store.add_api_key(info.clone()).await?;
        Ok((info, key))
    }

    /// Makes an operator-chosen key valid for organisation `org_name` (created if needed). Calling
    /// it again with the same key is harmless.
    pub async fn add_api_key(&self, org_name: &str, key: &ApiKey) -> Result<OrgId> {
        let org = self.store.ensure_org(org_name).await?;
        self.store.add_api_key(key.info(org)).await?;
        Ok(org)
    }

    /// Makes sure someone can use the service: when no key exists at all, creates one for organisation
    /// `org_name` and returns it (in clear, this once). Safe when several replicas start at once over
    /// an empty store: exactly one of them creates the key.
    pub async fn create_first_api_key(&self, org_name: &str) -> Result<Option<ApiKey>> {
        let org = self.store.ensure_org(org_name).await?;
        let key = ApiKey::generate();
        Ok(self.store.add_first_api_key(key.info(org)).await?.then_some(key))
    }

    /// The organisation called `name`, created if needed.
    pub async fn create_organisation(&self, name: &str) -> Result<OrgId> {
        self.store.ensure_org(name).await
    }

    /// The keys of organisation `org_name` (of every organisation when `None`), oldest first, each
    /// with its organisation's name. Never a secret: at most a key's first characters.
    pub async fn list_api_keys(&self, org_name: Option<&str>) -> Result<Vec<(ApiKeyInfo, String)>> {
        let organisations = self.store.organisations().await?;
        let org = match org_name {
            Some(name) => Some(organisations.iter().find(|o| o.name == name).ok_or(Error::NotFound)?.id),
            None => None,
        };
        let name_of = |id: OrgId| organisations.iter().find(|o| o.id == id).map(|o| o.name.clone()).unwrap_or_default();
        Ok(self
            .store
            .api_keys(org)
            .await?
            .into_iter()
            .map(|key| {
                let name = name_of(key.organisation_id);
                (key, name)
            })
            .collect())
    }

    /// Revokes the key `id`: it lets nothing in from the next request on through this replica, and
    /// within [`KEY_CACHE_TTL`] through every other.
    pub async fn revoke_api_key(&self, id: KeyId) -> Result<()> {
        self.store.revoke_api_key(id).await?;
        // The key is known here by its hash, not its id: forget every key, so that this one is refused
        // from the next request on (revocations are rare; the others are read again once).
        self.known.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clear();
        Ok(())
    }

    /// The rate limits, e.g. to forget idle buckets now and then.
    pub fn rate_limits(&self) -> &RateLimits {
        &self.limits
    }
}

impl std::fmt::Debug for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admission").field("limits", &self.limits).finish_non_exhaustive()
    }
}
