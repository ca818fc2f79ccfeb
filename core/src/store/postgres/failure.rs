//! Why one attempt of an operation failed, worth another attempt or final, in the database's own words;
//! and how long to wait before the next.

use std::time::Duration;

use deadpool_postgres::PoolError;
use tokio_postgres::error::SqlState;

use crate::error::Error;

/// Why one attempt of an operation failed: worth another attempt, or final.
pub(super) enum Failure {
    /// A serialization failure, a deadlock, or a race lost to a concurrent transaction: this one was
    /// rolled back and may run again. Says why.
    Retry(String),
    /// Anything else.
    Fail(Error),
}

impl Failure {
    pub(super) fn into_error(self) -> Error {
        match self {
            Failure::Retry(why) => Error::unavailable(format!("the database kept refusing the transaction: {why}")),
            Failure::Fail(err) => err,
        }
    }

    /// A retry after `err`, described by its SQLSTATE and message.
    pub(super) fn retry(err: &tokio_postgres::Error) -> Self {
        Failure::Retry(described(err))
    }
}

/// `err` as the database said it: `SQLSTATE 22P05: unsupported Unicode escape sequence (detail)`.
pub(super) fn described(err: &tokio_postgres::Error) -> String {
    match err.as_db_error() {
        None => err.to_string(),
        Some(db) => {
            let detail = db.detail().map(|d| format!(" ({d})")).unwrap_or_default();
            format!("SQLSTATE {}: {}{detail}", db.code().code(), db.message())
        }
    }
}

impl From<Error> for Failure {
    fn from(err: Error) -> Self {
        Failure::Fail(err)
    }
}

impl From<tokio_postgres::Error> for Failure {
    fn from(err: tokio_postgres::Error) -> Self {
        match err.code() {
            Some(code) if *code == SqlState::T_R_SERIALIZATION_FAILURE || *code == SqlState::T_R_DEADLOCK_DETECTED => {
                Failure::retry(&err)
            }
            Some(code) if is_unavailability(code) => Failure::Fail(Error::unavailable(err)),
            // The database's own words (SQLSTATE and message), not tokio-postgres' bare "db error".
            Some(_) => Failure::Fail(Error::storage(described(&err))),
            // No SQLSTATE: the connection broke or timed out on the way.
            None => Failure::Fail(Error::unavailable(err)),
        }
    }
}

impl From<PoolError> for Failure {
    fn from(err: PoolError) -> Self {
        // A TLS handshake the server or its certificate refused will not succeed by waiting: say so,
        // in the words of every error in the chain (rustls' own says which check failed).
        let mut chain = Vec::new();
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&err);
        while let Some(err) = cause {
            chain.push(err.to_string());
            cause = err.source();
        }
        if chain.iter().any(|said| said.contains("TLS") || said.contains("certificate")) {
            chain.dedup();
            return Failure::Fail(Error::storage(format!(
                "cannot secure the connection to the database (check sslmode and sslrootcert): {}",
                chain.join(": ")
            )));
        }
        Failure::Fail(Error::unavailable(err))
    }
}

/// Whether an error of the server means "not now" rather than "never": the server is shutting down or
/// starting, has no connection to spare, or cancelled a statement that ran past its timeout.
pub(super) fn is_unavailability(code: &SqlState) -> bool {
    code.code().starts_with("08") // connection exceptions
        || *code == SqlState::ADMIN_SHUTDOWN
        || *code == SqlState::CRASH_SHUTDOWN
        || *code == SqlState::CANNOT_CONNECT_NOW
        || *code == SqlState::TOO_MANY_CONNECTIONS
        || *code == SqlState::QUERY_CANCELED
}

/// The wait before attempt `number + 1`: 5 ms doubled each time, up to 320 ms, jittered by up to half
/// again so that replicas that collided do not collide again.
pub(super) fn backoff(number: u32) -> Duration {
    let base = 5u64 << number.min(6);
    let mut random = [0u8; 8];
    let jitter = match getrandom::fill(&mut random) {
        Ok(()) => u64::from_le_bytes(random) % (base / 2 + 1),
        Err(_) => 0,
    };
    Duration::from_millis(base + jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_stays_bounded() {
        assert!(backoff(0) >= Duration::from_millis(5) && backoff(0) <= Duration::from_millis(8));
        assert!(backoff(20) <= Duration::from_millis(480));
    }
}
