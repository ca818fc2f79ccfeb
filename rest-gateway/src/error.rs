//! The one error body of the REST face, and the one mapping from gRPC statuses to it.
//!
//! Every error on every endpoint is answered as
//! `{"error": {"code": "...", "message": "...", "violations": [{"field", "code", "message"}]}}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tonic::Code;
use tonic_types::StatusExt;

/// An error answered in the contract's error shape.
#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    code: String,
    message: String,
    violations: Vec<FieldViolation>,
}

/// One broken rule of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldViolation {
    /// JSON path of the field, e.g. `settings.snippet.primaryColor`.
    pub field: String,
    /// Stable machine-readable reason, e.g. `too_long`.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
}

impl FieldViolation {
    /// A violation of `field` for `code`.
    pub fn new(field: impl Into<String>, code: &str, message: impl Into<String>) -> Self {
        FieldViolation { field: field.into(), code: code.to_owned(), message: message.into() }
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorJson<'a>,
}

#[derive(Serialize)]
struct ErrorJson<'a> {
    code: &'a str,
    message: &'a str,
    violations: &'a [FieldViolation],
}

impl ApiError {
    /// An error with a status, a stable code and a message.
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        ApiError { status, code: code.to_owned(), message: message.into(), violations: Vec::new() }
    }

    /// A 400 `invalid_argument` listing `violations`.
    pub fn invalid(violations: Vec<FieldViolation>) -> Self {
        let fields: Vec<&str> = violations.iter().map(|v| v.field.as_str()).collect();
        let message = format!("the request is invalid: check {}", fields.join(", "));
        ApiError { violations, ..ApiError::new(StatusCode::BAD_REQUEST, "invalid_argument", message) }
    }

    /// The 404 for a route or resource that does not exist.
    pub fn not_found() -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such resource")
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The field violations, if any.
    pub fn violations(&self) -> &[FieldViolation] {
        &self.violations
    }

    /// Adds violations found by the gateway itself (JSON shape) to those of the service, keeping one
    /// per field: a field the gateway could not read is not also "missing" for the service.
    pub fn with_shape_violations(self, mut shape: Vec<FieldViolation>) -> Self {
        if shape.is_empty() || self.status != StatusCode::BAD_REQUEST {
            return self;
        }
        let service = self.violations;
        let extra: Vec<FieldViolation> =
            service.into_iter().filter(|v| !shape.iter().any(|s| s.field == v.field)).collect();
        shape.extend(extra);
        ApiError::invalid(shape)
    }

    /// Renames violation fields (a gRPC parameter name to its REST spelling, e.g. `page_token` to
    /// `cursor`).
    pub fn rename_fields(mut self, renames: &[(&str, &str)]) -> Self {
        for violation in &mut self.violations {
            if let Some((_, to)) = renames.iter().find(|(from, _)| *from == violation.field) {
                violation.field = (*to).to_owned();
            }
        }
        self
    }
}

impl From<tonic::Status> for ApiError {
    /// The HTTP status for each gRPC code, the stable code from `ErrorInfo.reason`, and the
    /// `BadRequest` violations.
    fn from(status: tonic::Status) -> Self {
        let http = match status.code() {
            Code::InvalidArgument | Code::OutOfRange | Code::FailedPrecondition => StatusCode::BAD_REQUEST,
            Code::Unauthenticated => StatusCode::UNAUTHORIZED,
            Code::PermissionDenied => StatusCode::FORBIDDEN,
            Code::NotFound => StatusCode::NOT_FOUND,
            Code::AlreadyExists => StatusCode::CONFLICT,
            Code::Aborted => StatusCode::PRECONDITION_FAILED,
            Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
            Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
            Code::Unavailable | Code::Cancelled => StatusCode::SERVICE_UNAVAILABLE,
            Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
            Code::Ok | Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let details = status.get_error_details();
        let code = match details.error_info() {
            Some(info) if !info.reason.is_empty() => info.reason.clone(),
            _ => format!("{:?}", status.code()).to_lowercase(),
        };
        let violations = details
            .bad_request()
            .map(|bad| {
                bad.field_violations
                    .iter()
                    .map(|v| FieldViolation::new(v.field.clone(), &v.reason, v.description.clone()))
                    .collect()
            })
            .unwrap_or_default();
        ApiError { status: http, code, message: status.message().to_owned(), violations }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(code = %self.code, message = %self.message, "answered with a server error");
        }
        let body =
            ErrorBody { error: ErrorJson { code: &self.code, message: &self.message, violations: &self.violations } };
        (self.status, axum::Json(body)).into_response()
    }
}
