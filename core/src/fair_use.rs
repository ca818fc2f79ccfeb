//! Fair use: a token bucket per API key, so that one key's flood does not take the service from the
//! others, and one per client address for requests without a valid key, so that guessing keys is slow.
//! Buckets are kept by `governor` (GCRA); both faces ask [`Admission::admit`](crate::admission::Admission::admit).

use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

use crate::auth::KeyHash;
use crate::domain::OrgId;

/// Requests per second allowed per API key by default (with a burst of as many). A configuration
/// service is called when configurations change and when a runtime (re)loads them; a thousand calls
/// a second from one organisation is far beyond either, so an honest client never meets the limit,
/// while one key alone cannot take more than a small share of what a replica serves.
pub const DEFAULT_PER_KEY: u32 = 1_000;

/// Requests per second allowed per client address without a valid key by default (with a burst of as
/// many): enough for a person fixing a typo in a key, far too few to guess one.
pub const DEFAULT_PER_CLIENT: u32 = 20;

/// Requests per second allowed per client address on the public routes by default (with a burst of as
/// many): a page view loads a widget's configuration and its avatar once, so even an office behind one
/// address stays far below it, while no one address can make the public routes its own.
pub const DEFAULT_PER_PUBLIC_CLIENT: u32 = 100;

/// Change streams an organisation may open a second by default, with a burst of ten times as many: a
/// client that reconnects in a loop is slowed to this, while one that opens its streams at start-up,
/// or resumes after a restart, never meets it.
pub const DEFAULT_WATCH_OPENS_PER_ORG: u32 = 2;

/// Wrong admin tokens one client address may present a second (with a burst of as many) before every
/// admin call from it is refused for a while: a mistyped token is retried by hand; a guesser is held
/// to a handful of guesses a second.
pub const ADMIN_GUESSES_PER_CLIENT: u32 = 5;

/// How much of its bucket a caller has left: what the `RateLimit-*` headers say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allowance {
    /// Requests per second (and burst).
    pub limit: u32,
    /// Requests that may still be made at once.
    pub remaining: u32,
    /// Time until the bucket is full again.
    pub reset: Duration,
}

/// A request refused for going over its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exhausted {
    /// Requests per second (and burst) of the bucket.
    pub limit: u32,
    /// When the next request will be let through.
    pub retry_after: Duration,
}

type Keyed<K> = RateLimiter<K, DefaultKeyedStateStore<K>, DefaultClock, StateInformationMiddleware>;

/// One bucket per key `K`, all with the same rate.
struct Buckets<K: Hash + Eq + Clone> {
    limiter: Keyed<K>,
    limit: u32,
}

impl<K: Hash + Eq + Clone> Buckets<K> {
    /// Buckets of `per_second` requests a second, or none when it is 0.
    fn new(per_second: u32) -> Option<Self> {
        Self::with_burst(per_second, 1)
    }

    /// Buckets of `per_second` requests a second with a burst of `burst_factor` times as many, or none
    /// when the rate is 0.
    fn with_burst(per_second: u32, burst_factor: u32) -> Option<Self> {
        let rate = NonZeroU32::new(per_second)?;
        let burst = rate.saturating_mul(NonZeroU32::new(burst_factor).unwrap_or(NonZeroU32::MIN));
        let quota = Quota::per_second(rate).allow_burst(burst);
        let limiter = RateLimiter::keyed(quota).with_middleware::<StateInformationMiddleware>();
        Some(Buckets { limiter, limit: per_second })
    }

    /// Takes one request from `key`'s bucket.
    fn take(&self, key: &K) -> Result<Allowance, Exhausted> {
        match self.limiter.check_key(key) {
            Ok(state) => {
                let remaining = state.remaining_burst_capacity();
                let used = self.limit.saturating_sub(remaining);
                let reset = Duration::from_secs_f64(f64::from(used) / f64::from(self.limit));
                Ok(Allowance { limit: self.limit, remaining, reset })
            }
            Err(not_until) => {
                let retry_after = not_until.wait_time_from(self.limiter.clock().now());
                Err(Exhausted { limit: self.limit, retry_after })
            }
        }
    }

    /// Forgets the buckets that are full again (their keys have been quiet), so that memory follows
    /// the callers of the last moments, not every caller ever seen.
    fn forget_idle(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

/// The deployment's limits: per API key, and per client address for requests without a valid key.
/// A rate of 0 turns a limit off.
pub struct RateLimits {
    per_key: Option<Buckets<KeyHash>>,
    per_client: Option<Buckets<IpAddr>>,
    per_public_client: Option<Buckets<IpAddr>>,
    watch_opens_per_org: Option<Buckets<OrgId>>,
}

impl RateLimits {
    /// Limits of `per_key` requests a second per API key and `per_client` per client address without
    /// a valid key, each with a burst of as many; 0 turns one off.
    pub fn new(per_key: u32, per_client: u32) -> Self {
        RateLimits {
            per_key: Buckets::new(per_key),
            per_client: Buckets::new(per_client),
            per_public_client: Buckets::new(DEFAULT_PER_PUBLIC_CLIENT),
            watch_opens_per_org: Buckets::with_burst(DEFAULT_WATCH_OPENS_PER_ORG, 10),
        }
    }

    /// These limits, with `per_second` change streams opened a second per organisation (and a burst of
    /// ten times as many); 0 turns it off.
    pub fn with_watch_opens(self, per_second: u32) -> Self {
        RateLimits { watch_opens_per_org: Buckets::with_burst(per_second, 10), ..self }
    }

    /// These limits, with `per_client` requests a second per client address on the public routes (the
    /// widget's configuration and avatars, which need no key); 0 turns it off.
    pub fn with_public(self, per_client: u32) -> Self {
        RateLimits { per_public_client: Buckets::new(per_client), ..self }
    }

    /// No limits at all (benchmarks, embedders).
    pub fn off() -> Self {
        RateLimits::new(0, 0).with_public(0).with_watch_opens(0)
    }

    /// Takes one change stream's opening from `org`'s bucket.
    pub fn take_for_watch(&self, org: OrgId) -> Result<Option<Allowance>, Exhausted> {
        self.watch_opens_per_org.as_ref().map(|b| b.take(&org)).transpose()
    }

    /// Takes one request from the bucket of the API key `key`.
    pub fn take_for_key(&self, key: KeyHash) -> Result<Option<Allowance>, Exhausted> {
        self.per_key.as_ref().map(|b| b.take(&key)).transpose()
    }

    /// Takes one request from the bucket of a client address (a request without a valid key).
    pub fn take_for_client(&self, client: IpAddr) -> Result<Option<Allowance>, Exhausted> {
        self.per_client.as_ref().map(|b| b.take(&client)).transpose()
    }

    /// Takes one request from the public-route bucket of a client address.
    pub fn take_for_public_client(&self, client: IpAddr) -> Result<Option<Allowance>, Exhausted> {
        self.per_public_client.as_ref().map(|b| b.take(&client)).transpose()
    }

    /// Forgets buckets that are full again; run it now and then.
    pub fn forget_idle(&self) {
        if let Some(buckets) = &self.per_key {
            buckets.forget_idle();
        }
        for buckets in [&self.per_client, &self.per_public_client].into_iter().flatten() {
            buckets.forget_idle();
        }
        if let Some(buckets) = &self.watch_opens_per_org {
            buckets.forget_idle();
        }
    }
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits::new(DEFAULT_PER_KEY, DEFAULT_PER_CLIENT)
    }
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits")
            .field("per_key", &self.per_key.as_ref().map(|b| b.limit))
            .field("per_client", &self.per_client.as_ref().map(|b| b.limit))
            .field("per_public_client", &self.per_public_client.as_ref().map(|b| b.limit))
            .field("watch_opens_per_org", &self.watch_opens_per_org.as_ref().map(|b| b.limit))
            .finish()
    }
}

/// The admin API's door: a client address that presents wrong tokens faster than
/// [`ADMIN_GUESSES_PER_CLIENT`] a second is refused every admin call, right token or not, until its
/// bucket has refilled, so that neither the refusals nor the answers tell a guesser anything sooner.
pub struct AdminDoor {
    guesses: Buckets<IpAddr>,
    /// Until when each address is shut out.
    shut: std::sync::Mutex<std::collections::HashMap<IpAddr, std::time::Instant>>,
}

impl AdminDoor {
    /// The door, with [`ADMIN_GUESSES_PER_CLIENT`].
    pub fn new() -> Self {
        let guesses = Buckets::new(ADMIN_GUESSES_PER_CLIENT).expect("a non-zero rate");
        AdminDoor { guesses, shut: std::sync::Mutex::default() }
    }

    fn shut(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<IpAddr, std::time::Instant>> {
        self.shut.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether `client` may try now: else how long until it may.
    pub fn open_to(&self, client: IpAddr) -> Result<(), Exhausted> {
        let mut shut = self.shut();
        match shut.get(&client).map(|until| until.saturating_duration_since(std::time::Instant::now())) {
            Some(wait) if !wait.is_zero() => Err(Exhausted { limit: self.guesses.limit, retry_after: wait }),
            Some(_) => {
                shut.remove(&client);
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Notes a wrong token from `client`; past its bucket, the client is shut out until it refills.
    pub fn wrong_token(&self, client: IpAddr) {
        if let Err(exhausted) = self.guesses.take(&client) {
            let wait = exhausted.retry_after.max(Duration::from_secs(1));
            self.shut().insert(client, std::time::Instant::now() + wait);
            metrics::counter!(crate::metric::RATE_LIMITED, "scope" => "admin").increment(1);
        }
    }
}

impl Default for AdminDoor {
    fn default() -> Self {
        AdminDoor::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_over_the_limit_is_refused_and_other_keys_are_unaffected() {
        let limits = RateLimits::new(3, 0);
        let (a, b) = (KeyHash::of("a"), KeyHash::of("b"));
        let remaining: Vec<u32> = (0..3).map(|_| limits.take_for_key(a).unwrap().unwrap().remaining).collect();
        assert_eq!(remaining, [2, 1, 0]);
        let refused = limits.take_for_key(a).unwrap_err();
        assert_eq!(refused.limit, 3);
        assert!(refused.retry_after > Duration::ZERO && refused.retry_after <= Duration::from_millis(334));
        assert!(limits.take_for_key(b).is_ok(), "another key has its own bucket");
    }

    #[test]
    fn a_guesser_is_shut_out_right_token_or_not_and_others_are_not() {
        let door = AdminDoor::new();
        let (guesser, other) = (IpAddr::from([127, 0, 0, 2]), IpAddr::from([127, 0, 0, 3]));
        for _ in 0..ADMIN_GUESSES_PER_CLIENT {
            door.wrong_token(guesser);
            assert!(door.open_to(guesser).is_ok());
        }
        door.wrong_token(guesser);
        let shut = door.open_to(guesser).unwrap_err();
        assert!(shut.retry_after >= Duration::from_millis(900), "{:?}", shut.retry_after);
        assert!(door.open_to(other).is_ok());
    }

    #[test]
    fn a_rate_of_zero_turns_the_limit_off() {
        let limits = RateLimits::off();
        for _ in 0..10_000 {
            assert_eq!(limits.take_for_key(KeyHash::of("a")), Ok(None));
        }
    }
}
