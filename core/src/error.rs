//! The one error type of the core, with the stable kinds every face maps to its wire.

use std::fmt;

/// A result whose error is the core's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the core. Each kind is stable: faces map it exhaustively.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The input broke one or more rules; every violation is listed, each with its field's JSON path.
    #[error("the request is invalid: {}", summarize(.violations))]
    Invalid {
        /// Every violated rule of the request, in field order.
        violations: Vec<Violation>,
    },
    /// The API key is missing or unknown.
    #[error("a valid API key is required")]
    Unauthenticated,
    /// No such chatbot in the caller's organisation (another organisation's chatbot looks the same).
    #[error("chatbot not found")]
    NotFound,
    /// The slug is already used by another chatbot.
    #[error("the slug '{slug}' is already taken")]
    SlugTaken {
        /// The slug that was asked for.
        slug: String,
    },
    /// An undelete or a purge of a chatbot that is not deleted.
    #[error("the chatbot is not deleted")]
    NotDeleted,
    /// The caller's entity tag no longer matches the chatbot: it changed since the caller read it.
    #[error("the chatbot has changed since it was read (etag mismatch)")]
    EtagMismatch,
    /// An avatar image over the size limit.
    #[error("the image is larger than {max_bytes} bytes")]
    ImageTooLarge {
        /// The limit.
        max_bytes: usize,
    },
    /// An avatar that is not a PNG, JPEG, WebP or GIF image, whatever it was declared as.
    #[error("the avatar must be a PNG, JPEG, WebP or GIF image")]
    UnsupportedImage,
    /// A watch asked to resume after changes the log no longer keeps: re-list, then watch from now.
    #[error("the change log no longer reaches back to this resume token; re-list and watch from now")]
    ResyncRequired,
    /// A watch over the number of watchers allowed (per organisation, or in all).
    #[error("too many watchers: at most {limit}")]
    TooManyWatchers {
        /// The limit that was reached.
        limit: usize,
    },
    /// An update that names no field to change.
    #[error("the update names no field to change")]
    NothingToUpdate,
    /// The idempotency key was already used for a different request.
    #[error("this idempotency key was already used for a different request")]
    IdempotencyKeyReused,
    /// Too many requests: the caller's bucket is empty for now.
    #[error("too many requests: at most {limit} a second; retry in {retry_after:?}")]
    RateLimited {
        /// Requests per second (and burst) allowed.
        limit: u32,
        /// When the next request will be let through.
        retry_after: std::time::Duration,
    },
    /// The store cannot be reached right now (its database is down, or too busy to answer in time).
    /// Nothing was changed; the caller may retry.
    #[error("the store is unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The connection to the store broke after the write was sent to commit and before the store said
    /// whether it did: the write may or may not have happened. A retry with the same idempotency key
    /// does it exactly once either way.
    #[error(
        "the write may or may not have been committed (the database connection broke at the commit); retry it with the same idempotency key"
    )]
    OutcomeUnknown,
    /// The store failed (disk full, I/O error, corrupt record). Not the caller's fault.
    #[error("storage failure: {0}")]
    Storage(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The keyring that seals stored secrets cannot be read or used (a start-up error: see
    /// [`crate::secrets`]). Not the caller's fault.
    #[error("keyring: {0}")]
    Keyring(String),
}

impl Error {
    /// The stable, machine-readable code of this kind of error, as both faces send it (REST's
    /// `error.code`, gRPC's `ErrorInfo.reason`): one spelling for both.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Invalid { .. } | Error::NothingToUpdate => "invalid_argument",
            Error::Unauthenticated => "unauthenticated",
            Error::NotFound => "not_found",
            Error::SlugTaken { .. } => "slug_taken",
            Error::NotDeleted => "not_deleted",
            Error::EtagMismatch => "etag_mismatch",
            Error::ImageTooLarge { .. } => "payload_too_large",
            Error::UnsupportedImage => "unsupported_media_type",
            Error::ResyncRequired => "resync_required",
            Error::TooManyWatchers { .. } => "too_many_watchers",
            Error::IdempotencyKeyReused => "idempotency_key_reused",
            Error::RateLimited { .. } => "rate_limited",
            Error::Unavailable(_) => "unavailable",
            Error::OutcomeUnknown => "outcome_unknown",
            Error::Storage(_) | Error::Keyring(_) => "internal",
        }
    }

    /// An [`Error::Invalid`] with a single violation.
    pub fn invalid(violation: Violation) -> Self {
        Error::Invalid { violations: vec![violation] }
    }

    /// Wraps the failure to reach the store.
    pub fn unavailable(err: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Error::Unavailable(err.into())
    }

    /// Wraps a storage-level failure.
    pub fn storage(err: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Error::Storage(err.into())
    }

    /// The answer to a request in which a face found `unreadable` fields (unknown, read-only, of the
    /// wrong type) before the rules could run, `checked` being what the rules said of the rest: one
    /// [`Error::Invalid`] with every violation, one per field (a field that could not be read is not
    /// also "missing"). An error other than invalid input (the chatbot does not exist...) wins.
    pub fn invalid_with(unreadable: Vec<Violation>, checked: Result<()>) -> Self {
        let mut violations = unreadable;
        match checked {
            // With fields that could not be read, an empty update says nothing more.
            Ok(()) | Err(Error::NothingToUpdate) => {}
            Err(Error::Invalid { violations: found }) => {
                let fresh: Vec<Violation> =
                    found.into_iter().filter(|v| !violations.iter().any(|u| u.field == v.field)).collect();
                violations.extend(fresh);
            }
            Err(other) => return other,
        }
        Error::Invalid { violations }
    }
}

fn summarize(violations: &[Violation]) -> String {
    violations.iter().map(|v| format!("{}: {}", v.field, v.message)).collect::<Vec<_>>().join("; ")
}

/// One broken rule: which field (as a JSON path such as `settings.snippet.primaryColor`), why, and a
/// stable machine-readable code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// JSON path of the field in the contract's request body.
    pub field: String,
    /// Stable machine-readable reason.
    pub code: ViolationCode,
    /// Human-readable explanation.
    pub message: String,
}

impl Violation {
    /// A violation of `field` (a JSON path) for `code`, explained by `message`.
    pub fn new(field: impl Into<String>, code: ViolationCode, message: impl Into<String>) -> Self {
        Violation { field: field.into(), code, message: message.into() }
    }
}

/// Why a field was rejected. The string forms are part of the API and never change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ViolationCode {
    /// The field is required and was missing or null.
    Required,
    /// The value is shorter than allowed.
    TooShort,
    /// The value is longer than allowed.
    TooLong,
    /// The value does not have the required form (slug, color, URL...).
    InvalidFormat,
    /// The value is not one of the allowed values (e.g. a model outside the allow-list).
    NotAllowed,
    /// The value has the wrong type (a number where a string belongs...).
    WrongType,
    /// The request names a field that does not exist (a typo never vanishes silently).
    UnknownField,
    /// The request sets a field that only the service sets (`id`, `created_at`...).
    ReadOnly,
    /// The request gives the same field twice (a JSON object with a repeated key).
    DuplicateField,
    /// A number outside its allowed range.
    OutOfRange,
}

impl ViolationCode {
    /// The stable wire form, e.g. `too_long`.
    pub fn as_str(self) -> &'static str {
        match self {
            ViolationCode::Required => "required",
            ViolationCode::TooShort => "too_short",
            ViolationCode::TooLong => "too_long",
            ViolationCode::InvalidFormat => "invalid_format",
            ViolationCode::NotAllowed => "not_allowed",
            ViolationCode::WrongType => "wrong_type",
            ViolationCode::UnknownField => "unknown_field",
            ViolationCode::ReadOnly => "read_only",
            ViolationCode::DuplicateField => "duplicate_field",
            ViolationCode::OutOfRange => "out_of_range",
        }
    }
}

impl fmt::Display for ViolationCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
