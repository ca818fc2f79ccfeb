//! The checker the rules fill field by field: the stored value when the mask leaves a field alone,
//! the parsed value when one is given, the default otherwise, and every violation on the way.

use crate::catalog::{Field, FieldMask};
use crate::domain::{BoundedText, Fraction, HexColor, Rejection, Slug, WholeNumber};
use crate::error::{Violation, ViolationCode};
use crate::rules::SlugChoice;

/// The default of a text field (defaults are short constants, always within bounds).
pub(super) fn text<const MAX: usize, const MULTILINE: bool>(
    default: &'static str,
) -> impl FnOnce() -> BoundedText<MAX, MULTILINE> {
    move || BoundedText::parse(default).unwrap_or_default()
}

/// The default of a color field.
pub(super) fn color(default: &'static str) -> impl FnOnce() -> HexColor {
    move || HexColor::parse(default).expect("default colors are valid")
}

/// Collects the checked value of each field and the violations of all of them.
pub(super) struct Checker {
    pub(super) mask: FieldMask,
    pub(super) violations: Vec<Violation>,
}

impl Checker {
    /// The value of `field`: the stored one when the mask leaves it alone, the parsed draft value
    /// when given, the default otherwise (also after a violation, which is recorded).
    pub(super) fn field<R: ?Sized, T: Clone>(
        &mut self,
        field: Field,
        current: Option<&T>,
        given: Option<&R>,
        parse: impl FnOnce(&R) -> Result<T, Rejection>,
        default: impl FnOnce() -> T,
    ) -> T {
        if let (false, Some(current)) = (self.mask.contains(field), current) {
            return current.clone();
        }
        match given.map(parse) {
            Some(Ok(value)) => value,
            Some(Err(rejection)) => {
                self.violations.push(rejection.at(field.json_path()));
                default()
            }
            None => default(),
        }
    }

    /// A boolean field: nothing to parse.
    pub(super) fn flag(&mut self, field: Field, current: Option<bool>, given: Option<bool>, default: bool) -> bool {
        self.field(field, current.as_ref(), given.as_ref(), |v| Ok(*v), || default)
    }

    /// A whole-number field.
    pub(super) fn whole<const MIN: i64, const MAX: i64>(
        &mut self,
        field: Field,
        current: Option<&WholeNumber<MIN, MAX>>,
        given: Option<i64>,
        default: i64,
    ) -> WholeNumber<MIN, MAX> {
        let default = || WholeNumber::parse(default).expect("defaults are within bounds");
        self.field(field, current, given.as_ref(), |v| WholeNumber::parse(*v), default)
    }

    /// A number field.
    pub(super) fn fraction<const MIN: i64, const MAX: i64>(
        &mut self,
        field: Field,
        current: Option<&Fraction<MIN, MAX>>,
        given: Option<f64>,
        default: f64,
    ) -> Fraction<MIN, MAX> {
        let default = || Fraction::parse(default).expect("defaults are within bounds");
        self.field(field, current, given.as_ref(), |v| Fraction::parse(*v), default)
    }

    /// A field without a default: leaving it out where it is selected is a violation.
    pub(super) fn required<T: Clone>(
        &mut self,
        field: Field,
        current: Option<&T>,
        given: Option<&str>,
        parse: impl FnOnce(&str) -> Result<T, Rejection>,
    ) -> Option<T> {
        if let (false, Some(current)) = (self.mask.contains(field), current) {
            return Some(current.clone());
        }
        let Some(given) = given else {
            self.violations.push(Violation::new(field.json_path(), ViolationCode::Required, "is required"));
            return None;
        };
        parse(given).map_err(|rejection| self.violations.push(rejection.at(field.json_path()))).ok()
    }

    /// The slug, when it is kept or given; `None` means "derive it from the name".
    pub(super) fn slug(&mut self, current: Option<&Slug>, given: Option<&str>) -> Option<(Slug, SlugChoice)> {
        if let (false, Some(current)) = (self.mask.contains(Field::Slug), current) {
            return Some((current.clone(), SlugChoice::Kept));
        }
        let parsed = Slug::parse(given?).map_err(|r| self.violations.push(r.at(Field::Slug.json_path())));
        parsed.ok().map(|slug| (slug, SlugChoice::Exact))
    }
}
