//! The router without a socket (`tower::ServiceExt::oneshot`): every rejection made before a handler
//! runs is answered in the contract's one error shape.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use chatbot_core::{ApiKey, Registry, Rules};
use http_body_util::BodyExt as _;
use serde_json::Value;
use tower::ServiceExt as _;

const KEY: &str = "router-test-key";

struct Router {
    app: axum::Router,
    _dir: tempfile::TempDir,
}

async fn router() -> Router {
    let dir = tempfile::tempdir().expect("a temp dir");
    let registry = Registry::open(dir.path(), Rules::default()).expect("the store opens");
    registry.admission().add_api_key("default", &ApiKey::from_secret(KEY)).await.expect("the key is added");
    Router { app: rest_gateway::app(Arc::new(registry)), _dir: dir }
}

/// Sends `request` and returns the status and the error body's `(code, message, violations)`.
async fn send(router: &Router, request: Request<Body>) -> (StatusCode, String, String, Vec<Value>) {
    let response = router.app.clone().oneshot(request).await.expect("the router answers");
    let status = response.status();
    let content_type = response.headers().get(header::CONTENT_TYPE).cloned();
    let bytes = response.into_body().collect().await.expect("a body").to_bytes();
    assert_eq!(content_type.as_ref().and_then(|v| v.to_str().ok()), Some("application/json"), "{status}");
    let body: Value = serde_json::from_slice(&bytes).expect("a JSON body");
    let error = &body["error"];
    let text = |v: &Value| v.as_str().expect("a string").to_owned();
    (status, text(&error["code"]), text(&error["message"]), error["violations"].as_array().expect("a list").clone())
}

fn post(body: &'static str, content_type: Option<&str>) -> Request<Body> {
    let mut request = Request::post("/api/external/chatbots").header("x-api-key", KEY);
    if let Some(content_type) = content_type {
        request = request.header(header::CONTENT_TYPE, content_type);
    }
    request.body(Body::from(body)).expect("a request")
}

#[tokio::test]
async fn a_missing_or_unknown_key_is_a_401_before_the_body_is_read() {
    let router = router().await;
    for key in [None, Some("nobody"), Some("")] {
        let mut request = Request::post("/api/external/chatbots").header(header::CONTENT_TYPE, "text/plain");
        if let Some(key) = key {
            request = request.header("x-api-key", key);
        }
        let (status, code, _, _) = send(&router, request.body(Body::from("not json")).expect("a request")).await;
        assert_eq!((status, code.as_str()), (StatusCode::UNAUTHORIZED, "unauthenticated"), "{key:?}");
    }
}

#[tokio::test]
async fn a_body_not_sent_as_json_is_a_415() {
    let router = router().await;
    for content_type in [None, Some("text/plain"), Some("application/jsonx")] {
        let (status, code, _, _) = send(&router, post("{}", content_type)).await;
        assert_eq!((status, code.as_str()), (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"));
    }
    let json_suffix = post(r#"{"name": "x"}"#, Some("application/merge-patch+json"));
    let created = router.app.clone().oneshot(json_suffix).await.expect("the router answers");
    assert_eq!(created.status(), StatusCode::CREATED, "any application/*+json is JSON");
}

#[tokio::test]
async fn a_body_over_the_limit_is_a_413() {
    let router = router().await;
    let big: &'static str = Box::leak(format!(r#"{{"name": "{}"}}"#, "x".repeat(300 * 1024)).into_boxed_str());
    let (status, code, message, _) = send(&router, post(big, Some("application/json"))).await;
    assert_eq!((status, code.as_str()), (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"));
    assert!(message.contains("262144"), "{message}");
}

#[tokio::test]
async fn malformed_json_says_where_and_a_non_object_says_what_it_is() {
    let router = router().await;
    let (status, code, message, _) = send(&router, post("{\n\"name\": ,\n}", Some("application/json"))).await;
    assert_eq!((status, code.as_str()), (StatusCode::BAD_REQUEST, "malformed_json"));
    assert!(message.contains("line 2"), "{message}");

    let (status, code, message, violations) = send(&router, post("[1, 2]", Some("application/json"))).await;
    assert_eq!((status, code.as_str()), (StatusCode::BAD_REQUEST, "invalid_argument"));
    assert_eq!(message, "the body must be a JSON object, not an array");
    assert!(violations.is_empty(), "no violation with an empty field: {violations:?}");
}

#[tokio::test]
async fn unknown_routes_and_methods_and_bad_conditional_headers_answer_in_the_error_shape() {
    let router = router().await;
    let request = |method: &str, uri: &str| {
        Request::builder().method(method).uri(uri).header("x-api-key", KEY).body(Body::empty()).expect("a request")
    };
    let (status, code, ..) = send(&router, request("GET", "/api/external/nothing")).await;
    assert_eq!((status, code.as_str()), (StatusCode::NOT_FOUND, "not_found"));
    let (status, code, ..) = send(&router, request("PUT", "/api/external/chatbots")).await;
    assert_eq!((status, code.as_str()), (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"));

    let created =
        router.app.clone().oneshot(post(r#"{"name": "Tagged"}"#, Some("application/json"))).await.expect("created");
    let body: Value =
        serde_json::from_slice(&created.into_body().collect().await.expect("a body").to_bytes()).expect("JSON");
    let uri = format!("/api/external/chatbot/{}", body["chatbot"]["id"].as_str().expect("an id"));
    let conditional = Request::get(uri).header("x-api-key", KEY).header(header::IF_NONE_MATCH, "no-quotes");
    let (status, code, ..) = send(&router, conditional.body(Body::empty()).expect("a request")).await;
    assert_eq!((status, code.as_str()), (StatusCode::BAD_REQUEST, "invalid_argument"));
}
