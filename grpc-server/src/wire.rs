//! What every gRPC call goes through around its handler: a request id in the `x-request-id` metadata
//! (kept from the client when it is sane, else made up) echoed on the answer; its count, latency and
//! status in the metrics (by method, the gRPC form of a route template); and every error status
//! given the same `ErrorInfo` (the stable reason, plus the request id), including the failures tonic
//! reports before any handler runs, which it words in its own codes: a message that does not decode
//! (`INTERNAL`, made `INVALID_ARGUMENT`), one over the size limit (`OUT_OF_RANGE`, made
//! `RESOURCE_EXHAUSTED`), a call past its time (`CANCELLED`, made `DEADLINE_EXCEEDED`).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{HeaderValue, Request, Response};
use tonic::{Code, Status};
use tonic_types::StatusExt;

use crate::status::ERROR_DOMAIN;

/// The metadata entry that carries a call's id, both ways.
pub const REQUEST_ID_METADATA: &str = "x-request-id";

/// The layer; see the module documentation.
#[derive(Debug, Clone, Copy)]
pub struct WireErrorsLayer;

impl<S> tower::Layer<S> for WireErrorsLayer {
    type Service = WireErrors<S>;

    fn layer(&self, inner: S) -> Self::Service {
        WireErrors { inner }
    }
}

/// The service of [`WireErrorsLayer`].
#[derive(Debug, Clone)]
pub struct WireErrors<S> {
    inner: S,
}

impl<S, ReqBody, ResBody> tower::Service<Request<ReqBody>> for WireErrors<S>
where
    S: tower::Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Future: Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let given = request.headers().get(REQUEST_ID_METADATA).and_then(|v| v.to_str().ok());
        let id = match given.filter(|id| chatbot_core::request_id_is_valid(id)) {
            Some(id) => id.to_owned(),
            None => uuid::Uuid::new_v4().to_string(),
        };
        let id_value = HeaderValue::from_str(&id).unwrap_or_else(|_| HeaderValue::from_static("-"));
        request.headers_mut().insert(REQUEST_ID_METADATA, id_value.clone());
        let method = route_label(request.uri().path());
        let started = std::time::Instant::now();
        let in_flight = metrics::gauge!(chatbot_core::metric::REQUESTS_IN_FLIGHT, "face" => "grpc");
        in_flight.increment(1);
        let answer = self.inner.call(request);
        Box::pin(async move {
            let answered = answer.await;
            in_flight.decrement(1);
            let mut response = answered?;
            let headers = response.headers_mut();
            headers.insert(REQUEST_ID_METADATA, id_value);
            let mut code = Code::Ok;
            if let Some(status) = Status::from_header_map(headers).filter(|s| s.code() != Code::Ok) {
                let status = described(status, &id);
                code = status.code();
                for name in ["grpc-status", "grpc-message", "grpc-status-details-bin"] {
                    headers.remove(name);
                }
                let _ = status.add_header(headers);
            }
            let (duration, count) = call_metrics(method, code);
            duration.record(started.elapsed().as_secs_f64());
            count.increment(1);
            Ok(response)
        })
    }
}

/// The duration histogram and the call counter of a call of `route` that ended with `code`, resolved
/// once per route and code (both closed sets) rather than built from label strings on every call.
fn call_metrics(route: &'static str, code: Code) -> (metrics::Histogram, metrics::Counter) {
    type Handles = HashMap<&'static str, (metrics::Histogram, HashMap<Code, metrics::Counter>)>;
    static HANDLES: std::sync::LazyLock<std::sync::Mutex<Handles>> = std::sync::LazyLock::new(Default::default);
    let labels = || vec![("face", "grpc".to_owned()), ("route", route.to_owned()), ("method", "POST".to_owned())];
    let mut handles = HANDLES.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let (duration, counts) = handles
        .entry(route)
        .or_insert_with(|| (metrics::histogram!(chatbot_core::metric::REQUEST_DURATION, &labels()), HashMap::new()));
    let count = counts.entry(code).or_insert_with(|| {
        let mut labels = labels();
        labels.push(("status", format!("{code:?}")));
        metrics::counter!(chatbot_core::metric::REQUESTS, &labels)
    });
    (duration.clone(), count.clone())
}

/// A call's path as a metrics label: one of the methods served, or `unmatched` (a client may call any
/// number of paths that do not exist, and each would be a series of its own).
fn route_label(path: &str) -> &'static str {
    static SERVED: std::sync::LazyLock<Vec<&'static str>> = std::sync::LazyLock::new(served_methods);
    SERVED.iter().find(|served| **served == path).copied().unwrap_or("unmatched")
}

/// Every method path served (`/chatbot.v1.ChatbotService/CreateChatbot`...), read from the descriptor
/// sets that reflection serves, so that none is forgotten here.
fn served_methods() -> Vec<&'static str> {
    use prost::Message as _;
    let mut paths = vec![
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
    ];
    for set in [crate::pb::FILE_DESCRIPTOR_SET, tonic_health::pb::FILE_DESCRIPTOR_SET] {
        let Ok(set) = prost_types::FileDescriptorSet::decode(set) else { continue };
        for file in &set.file {
            for service in &file.service {
                for method in &service.method {
                    let path = format!("/{}.{}/{}", file.package(), service.name(), method.name());
                    paths.push(Box::leak(path.into_boxed_str()));
                }
            }
        }
    }
    paths
}

/// The span of one call, in which every log line of the call is written; the access log line ends it.
pub fn call_span<B>(request: &Request<B>) -> tracing::Span {
    let id = request.headers().get(REQUEST_ID_METADATA).and_then(|v| v.to_str().ok()).unwrap_or("-");
    tracing::info_span!(
        "request",
        face = "grpc",
        method = "POST",
        route = %request.uri().path(),
        request_id = %id,
        org = tracing::field::Empty,
    )
}

/// The access log: one line per call, with its gRPC status and duration (the span adds the rest).
pub fn access_log<B>(response: &Response<B>, latency: std::time::Duration, _span: &tracing::Span) {
    let status = response.headers().get("grpc-status").and_then(|v| v.to_str().ok()).unwrap_or("0");
    let duration_ms = latency.as_secs_f64() * 1000.0;
    tracing::info!(target: "access", grpc_status = status, duration_ms, "answered");
}

/// `status` in this service's terms: tonic's own failures in their right codes, and an `ErrorInfo`
/// with the stable reason and the call's id.
fn described(status: Status, request_id: &str) -> Status {
    let message = status.message().to_owned();
    let (code, reason) = match (status.code(), message.as_str()) {
        (Code::Internal, m) if m.contains("decode") => (Code::InvalidArgument, "malformed_message"),
        (Code::OutOfRange, m) if m.contains("too large") => (Code::ResourceExhausted, "payload_too_large"),
        (Code::Cancelled, m) if m.contains("Timeout") => (Code::DeadlineExceeded, "request_timeout"),
        (code, _) => (code, default_reason(code)),
    };
    let mut details = status.get_error_details();
    let (reason, mut metadata) = match details.error_info() {
        Some(info) if code == status.code() => (info.reason.clone(), info.metadata.clone()),
        Some(_) | None => (reason.to_owned(), HashMap::new()),
    };
    metadata.insert("request_id".to_owned(), request_id.to_owned());
    details.set_error_info(reason, ERROR_DOMAIN, metadata);
    Status::with_error_details(code, message, details)
}

/// The reason of a status that came without one.
fn default_reason(code: Code) -> &'static str {
    match code {
        Code::Ok => "ok",
        Code::Cancelled => "cancelled",
        Code::Unknown => "unknown",
        Code::InvalidArgument => "invalid_argument",
        Code::DeadlineExceeded => "request_timeout",
        Code::NotFound => "not_found",
        Code::AlreadyExists => "already_exists",
        Code::PermissionDenied => "permission_denied",
        Code::ResourceExhausted => "resource_exhausted",
        Code::FailedPrecondition => "failed_precondition",
        Code::Aborted => "aborted",
        Code::OutOfRange => "out_of_range",
        Code::Unimplemented => "unimplemented",
        Code::Internal => "internal",
        Code::Unavailable => "unavailable",
        Code::DataLoss => "data_loss",
        Code::Unauthenticated => "unauthenticated",
    }
}

#[cfg(test)]
mod tests {
    use tonic_types::ErrorDetails;

    use super::*;

    #[test]
    fn only_served_methods_are_route_labels() {
        assert_eq!(route_label("/chatbot.v1.ChatbotService/CreateChatbot"), "/chatbot.v1.ChatbotService/CreateChatbot");
        assert_eq!(
            route_label("/chatbot.admin.v1.AdminService/RevokeApiKey"),
            "/chatbot.admin.v1.AdminService/RevokeApiKey"
        );
        assert_eq!(route_label("/grpc.health.v1.Health/Check"), "/grpc.health.v1.Health/Check");
        assert_eq!(route_label("/chatbot.v1.ChatbotService/Invented123"), "unmatched");
    }

    #[test]
    fn tonics_own_failures_get_their_right_codes_and_an_error_info() {
        let decode = described(Status::internal("failed to decode Protobuf message: buffer underflow"), "r1");
        assert_eq!(decode.code(), Code::InvalidArgument);
        let info = decode.get_error_details().error_info().cloned().expect("an ErrorInfo");
        assert_eq!((info.reason.as_str(), info.domain.as_str()), ("malformed_message", ERROR_DOMAIN));
        assert_eq!(info.metadata.get("request_id").map(String::as_str), Some("r1"));
        let large =
            described(Status::out_of_range("Error, decoded message length too large: found 300000 bytes"), "r2");
        assert_eq!(large.code(), Code::ResourceExhausted);
    }

    #[test]
    fn an_existing_error_info_keeps_its_reason_and_gains_the_request_id() {
        let status = Status::with_error_details(
            Code::AlreadyExists,
            "taken",
            ErrorDetails::with_error_info("slug_taken", ERROR_DOMAIN, HashMap::from([("slug".into(), "x".into())])),
        );
        let info = described(status, "r3").get_error_details().error_info().cloned().expect("an ErrorInfo");
        assert_eq!(info.reason, "slug_taken");
        assert_eq!(info.metadata.get("slug").map(String::as_str), Some("x"));
        assert_eq!(info.metadata.get("request_id").map(String::as_str), Some("r3"));
    }
}
