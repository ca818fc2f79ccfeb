//! The one mapping from core errors to gRPC statuses with `google.rpc` details.

use std::collections::HashMap;

use chatbot_core::Error;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};

/// The `ErrorInfo.domain` of every error this service returns.
pub const ERROR_DOMAIN: &str = "chatbotd";

/// The status for `err`: a code, the stable reason in `ErrorInfo`, and for invalid input every
/// violation in `BadRequest` (field = the contract's JSON path, reason = the violation code).
pub(crate) fn to_status(err: Error) -> Status {
    let (code, reason) = match &err {
        Error::Invalid { .. } => (Code::InvalidArgument, "invalid_argument"),
        Error::Unauthenticated => (Code::Unauthenticated, "unauthenticated"),
        Error::NotFound => (Code::NotFound, "not_found"),
        Error::SlugTaken { .. } => (Code::AlreadyExists, "slug_taken"),
        Error::EtagMismatch => (Code::Aborted, "etag_mismatch"),
        Error::Storage(source) => {
            // The cause stays in the log; the client learns only that it was not its fault.
            tracing::error!(error = %source, "storage failure");
            let message = "the service could not complete the request; the cause has been logged";
            return Status::with_error_details(
                Code::Internal,
                message,
                ErrorDetails::with_error_info("internal", ERROR_DOMAIN, HashMap::new()),
            );
        }
    };
    let mut metadata = HashMap::new();
    if let Error::SlugTaken { slug } = &err {
        metadata.insert("slug".to_owned(), slug.clone());
    }
    let mut details = ErrorDetails::with_error_info(reason, ERROR_DOMAIN, metadata);
    if let Error::Invalid { violations } = &err {
        details.set_bad_request(
            violations
                .iter()
                .map(|v| FieldViolation {
                    field: v.field.clone(),
                    description: v.message.clone(),
                    reason: v.code.as_str().to_owned(),
                    localized_message: None,
                })
                .collect::<Vec<_>>(),
        );
    }
    Status::with_error_details(code, err.to_string(), details)
}
