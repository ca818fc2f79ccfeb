//! The name of every metric the service exports, each in one place, so that no two files spell one
//! differently and the list below is the whole of `/metrics`.

/// The version running (a gauge of 1, labelled `version`).
pub const BUILD_INFO: &str = "chatbotd_build_info";

/// Connections closed to make room at a face's cap, by face.
pub const CONNECTIONS_EVICTED: &str = "chatbotd_connections_evicted_total";

/// Connections refused, by face and reason (`per_client`, `full`).
pub const CONNECTIONS_REFUSED: &str = "chatbotd_connections_refused_total";

/// Writes with an idempotency key, by outcome (`fresh`, `replayed`, `reused`, `refused`).
pub const IDEMPOTENCY: &str = "chatbotd_idempotency_total";

/// Public widget reads, by what the memory cache did (`hit`, `miss`).
pub const PUBLIC_CACHE: &str = "chatbotd_public_cache_total";

/// Public widget configurations (and unknown slugs) held in memory now.
pub const PUBLIC_CACHE_SIZE: &str = "chatbotd_public_cache_entries";

/// Entries the public cache let go to stay within its size.
pub const PUBLIC_CACHE_EVICTIONS: &str = "chatbotd_public_cache_evictions_total";

/// Connections open now, by face.
pub const OPEN_CONNECTIONS: &str = "chatbotd_open_connections";

/// Requests refused over a rate limit, by scope (`key`, `client`, `public`, `watch`, `admin`).
pub const RATE_LIMITED: &str = "chatbotd_rate_limited_total";

/// How long requests take, by face, route and method.
pub const REQUEST_DURATION: &str = "chatbotd_request_duration_seconds";

/// Requests being answered now, by face.
pub const REQUESTS_IN_FLIGHT: &str = "chatbotd_requests_in_flight";

/// Stored secret values not sealed under the keyring's first key (older keys, unknown keys, clear),
/// as of the last census: what a rotation is for.
pub const SECRETS_STALE: &str = "chatbotd_secrets_stale";

/// Requests answered, by face, route, method and status.
pub const REQUESTS: &str = "chatbotd_requests_total";

/// Writes per sled batch (one flush each).
pub const STORE_BATCH_SIZE: &str = "chatbotd_store_batch_size";

/// How long a sled batch takes to reach disk.
pub const STORE_FLUSH: &str = "chatbotd_store_flush_seconds";

/// PostgreSQL connections of this replica, by state (`in_use`, `idle`).
pub const STORE_POOL_CONNECTIONS: &str = "chatbotd_store_pool_connections";

/// Requests waiting for a PostgreSQL connection.
pub const STORE_POOL_WAITING: &str = "chatbotd_store_pool_waiting";

/// Writes waiting for the sled writer.
pub const STORE_QUEUE_DEPTH: &str = "chatbotd_store_queue_depth";

/// PostgreSQL transactions run again after a serialization failure or a deadlock.
pub const STORE_RETRIES: &str = "chatbotd_store_transaction_retries_total";

/// Change streams open now.
pub const WATCHERS: &str = "chatbotd_watchers";
