//! Timestamps with microsecond precision, as the contract prints them.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

/// A UTC instant in whole microseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The current time, truncated to microseconds.
    pub fn now() -> Self {
        Timestamp(Utc::now().timestamp_micros())
    }

    /// The instant `micros` microseconds after the Unix epoch.
    pub fn from_micros(micros: i64) -> Self {
        Timestamp(micros)
    }

    /// Microseconds since the Unix epoch.
    pub fn as_micros(self) -> i64 {
        self.0
    }

    /// The same instant as a `chrono` date-time (for engines that store it as such).
    pub fn to_datetime(self) -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp_micros(self.0).unwrap_or_default()
    }

    /// The instant of a `chrono` date-time, truncated to microseconds.
    pub fn from_datetime(at: DateTime<Utc>) -> Self {
        Timestamp(at.timestamp_micros())
    }

    /// The contract's form: `2025-01-22T04:30:45.790337+00:00`.
    pub fn to_contract_string(self) -> String {
        // `use_z = false` prints the `+00:00` offset the contract shows.
        self.to_datetime().to_rfc3339_opts(SecondsFormat::Micros, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_print_in_the_contract_form() {
        let at = Timestamp::from_micros(1_737_520_245_790_337);
        assert_eq!(at.to_contract_string(), "2025-01-22T04:30:45.790337+00:00");
    }

    #[test]
    fn whole_seconds_still_print_six_digits() {
        assert_eq!(Timestamp::from_micros(0).to_contract_string(), "1970-01-01T00:00:00.000000+00:00");
    }
}
