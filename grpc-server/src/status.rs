//! The one mapping from core errors to gRPC statuses with `google.rpc` details.

use std::collections::HashMap;

use chatbot_core::{Error, Violation, ViolationCode};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};

/// The status for a call to the admin service without the right token (`UNAUTHENTICATED`), or while
/// it is off (`PERMISSION_DENIED`).
pub(crate) fn admin_refused(code: Code, message: &str) -> Status {
    let reason = if code == Code::Unauthenticated { "unauthenticated" } else { "admin_disabled" };
    Status::with_error_details(code, message, ErrorDetails::with_error_info(reason, ERROR_DOMAIN, HashMap::new()))
}

/// The `ErrorInfo.domain` of every error this service returns.
pub const ERROR_DOMAIN: &str = "chatbotd";

/// The status of a message over the `limit` of its method (in bytes).
pub(crate) fn too_large(limit: usize) -> Status {
    let details = ErrorDetails::with_error_info("payload_too_large", ERROR_DOMAIN, HashMap::new());
    Status::with_error_details(Code::ResourceExhausted, format!("the message is over {limit} bytes"), details)
}

/// The status for `err`: a code, the stable reason in `ErrorInfo`, and for invalid input every
/// violation in `BadRequest` (field = the contract's JSON path, reason = the violation code).
pub(crate) fn to_status(err: Error) -> Status {
    let mut metadata = HashMap::new();
    let mut violations = Vec::new();
    let mut retry = None;
    let mut message = err.to_string();
    let reason = err.reason();
    let code = match err {
        Error::Invalid { violations: found } => {
            violations = found;
            Code::InvalidArgument
        }
        Error::NothingToUpdate => {
            violations.push(Violation::new("update_mask", ViolationCode::Required, "names no field to change"));
            Code::InvalidArgument
        }
        Error::Unauthenticated => Code::Unauthenticated,
        Error::NotFound => Code::NotFound,
        Error::SlugTaken { slug } => {
            metadata.insert("slug".to_owned(), slug);
            Code::AlreadyExists
        }
        Error::EtagMismatch => Code::Aborted,
        Error::NotDeleted => Code::FailedPrecondition,
        Error::ResyncRequired => Code::FailedPrecondition,
        Error::TooManyWatchers { .. } | Error::ImageTooLarge { .. } => Code::ResourceExhausted,
        Error::UnsupportedImage => Code::InvalidArgument,
        Error::IdempotencyKeyReused => Code::FailedPrecondition,
        Error::RateLimited { retry_after, .. } => {
            retry = Some(retry_after);
            Code::ResourceExhausted
        }
        Error::OutcomeUnknown => Code::Unavailable,
        Error::Unavailable(source) => {
            tracing::warn!(error = %source, "the store is unavailable");
            message = "the store is unavailable right now; retry later".to_owned();
            Code::Unavailable
        }
        Error::Storage(_) | Error::Keyring(_) => {
            // The cause stays in the log; the client learns only that it was not its fault.
            tracing::error!(error = %message, "storage failure");
            message = "the service could not complete the request; the cause has been logged".to_owned();
            Code::Internal
        }
    };
    let mut details = ErrorDetails::with_error_info(reason, ERROR_DOMAIN, metadata);
    if let Some(retry_after) = retry {
        details.set_retry_info(Some(retry_after));
    }
    if !violations.is_empty() {
        details.set_bad_request(
            violations
                .into_iter()
                .map(|v| FieldViolation {
                    field: v.field,
                    description: v.message,
                    reason: v.code.as_str().to_owned(),
                    localized_message: None,
                })
                .collect::<Vec<_>>(),
        );
    }
    Status::with_error_details(code, message, details)
}
