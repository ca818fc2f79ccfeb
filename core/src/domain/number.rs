//! Numbers with bounds: the voice agent's radii, durations, token counts, temperature and threshold.

use serde::{Deserialize, Serialize};

use super::Rejection;
use crate::error::ViolationCode;

/// A whole number from `MIN` to `MAX` inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub struct WholeNumber<const MIN: i64, const MAX: i64>(i64);

impl<const MIN: i64, const MAX: i64> WholeNumber<MIN, MAX> {
    /// Accepts `value` if it lies within the bounds.
    pub fn parse(value: i64) -> Result<Self, Rejection> {
        if (MIN..=MAX).contains(&value) { Ok(WholeNumber(value)) } else { Err(out_of_range(MIN as f64, MAX as f64)) }
    }

    /// The number.
    pub fn get(self) -> i64 {
        self.0
    }
}

impl<const MIN: i64, const MAX: i64> TryFrom<i64> for WholeNumber<MIN, MAX> {
    type Error = Rejection;
    fn try_from(value: i64) -> Result<Self, Rejection> {
        Self::parse(value)
    }
}

impl<const MIN: i64, const MAX: i64> From<WholeNumber<MIN, MAX>> for i64 {
    fn from(value: WholeNumber<MIN, MAX>) -> i64 {
        value.0
    }
}

/// A finite number from `MIN_THOUSANDTHS / 1000` to `MAX_THOUSANDTHS / 1000` inclusive (bounds are
/// given in thousandths because a const parameter cannot be a float).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "f64", into = "f64")]
pub struct Fraction<const MIN_THOUSANDTHS: i64, const MAX_THOUSANDTHS: i64>(f64);

// Sound: `parse` admits no NaN, so equality is reflexive.
impl<const MIN: i64, const MAX: i64> Eq for Fraction<MIN, MAX> {}

impl<const MIN_THOUSANDTHS: i64, const MAX_THOUSANDTHS: i64> Fraction<MIN_THOUSANDTHS, MAX_THOUSANDTHS> {
    /// The smallest value accepted.
    pub const MIN: f64 = MIN_THOUSANDTHS as f64 / 1000.0;
    /// The largest value accepted.
    pub const MAX: f64 = MAX_THOUSANDTHS as f64 / 1000.0;

    /// Accepts `value` if it is finite and lies within the bounds.
    pub fn parse(value: f64) -> Result<Self, Rejection> {
        if value.is_finite() && (Self::MIN..=Self::MAX).contains(&value) {
            // -0.0 and 0.0 are the same value; keep one spelling.
            Ok(Fraction(value + 0.0))
        } else {
            Err(out_of_range(Self::MIN, Self::MAX))
        }
    }

    /// The number.
    pub fn get(self) -> f64 {
        self.0
    }
}

impl<const MIN: i64, const MAX: i64> TryFrom<f64> for Fraction<MIN, MAX> {
    type Error = Rejection;
    fn try_from(value: f64) -> Result<Self, Rejection> {
        Self::parse(value)
    }
}

impl<const MIN: i64, const MAX: i64> From<Fraction<MIN, MAX>> for f64 {
    fn from(value: Fraction<MIN, MAX>) -> f64 {
        value.0
    }
}

fn out_of_range(min: f64, max: f64) -> Rejection {
    Rejection::new(ViolationCode::OutOfRange, format!("must be from {min} to {max}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_numbers_at_their_bounds_are_accepted_and_one_past_is_not() {
        type Radius = WholeNumber<0, 64>;
        assert!(Radius::parse(0).is_ok() && Radius::parse(64).is_ok());
        for bad in [-1, 65, i64::MIN, i64::MAX] {
            assert_eq!(Radius::parse(bad).unwrap_err().code, ViolationCode::OutOfRange, "{bad}");
        }
    }

    #[test]
    fn fractions_at_their_bounds_are_accepted_and_beyond_or_not_finite_are_not() {
        type Temperature = Fraction<0, 2000>;
        assert!(Temperature::parse(0.0).is_ok() && Temperature::parse(2.0).is_ok());
        assert_eq!(Temperature::parse(-0.0).unwrap().get().to_bits(), 0.0f64.to_bits());
        for bad in [-0.001, 2.0001, f64::NAN, f64::INFINITY] {
            assert!(Temperature::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Temperature::parse(3.0).unwrap_err().message, "must be from 0 to 2");
    }
}
