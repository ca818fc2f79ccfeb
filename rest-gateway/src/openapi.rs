//! The REST contract as an OpenAPI 3.1 document (`api/openapi.json`, kept by hand beside this crate),
//! served at `GET /openapi.json`, with a human page for it at `/docs` (Swagger UI, vendored in its
//! crate: nothing is downloaded at build or run time). Tests hold the document to the server: the
//! suite compares what is served with the file and checks real answers against its schemas, and CI
//! lets schemathesis loose on the running service.

use axum::Router;

/// The document, as committed.
pub const DOCUMENT: &str = include_str!("../api/openapi.json");

/// `GET /openapi.json` and the `/docs` page, open to anyone.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let document: serde_json::Value =
        serde_json::from_str(DOCUMENT).expect("api/openapi.json is JSON (a unit test checks it)");
    utoipa_swagger_ui::SwaggerUi::new("/docs").external_url_unchecked("/openapi.json", document).into()
}

#[cfg(test)]
mod tests {
    use chatbot_core::{Field, Form, Limit};

    use super::*;

    fn document() -> serde_json::Value {
        serde_json::from_str(DOCUMENT).expect("JSON")
    }

    /// The schema of the field at `path` in `schema` (a component name), following `$ref`s and the
    /// `anyOf` of nullable objects.
    fn field_schema<'a>(doc: &'a serde_json::Value, schema: &str, path: &str) -> &'a serde_json::Value {
        let mut at = &doc["components"]["schemas"][schema];
        for part in path.split('.') {
            at = &at["properties"][part];
            if let Some(any) = at["anyOf"].as_array() {
                at = any.iter().find(|s| s.get("$ref").is_some()).expect("an object choice");
            }
            if let Some(reference) = at["$ref"].as_str() {
                at = &doc["components"]["schemas"][reference.rsplit('/').next().expect("a name")];
            }
        }
        at
    }

    #[test]
    fn every_catalog_field_is_in_the_request_schemas_with_its_limit() {
        let doc = document();
        let forms = [
            ("ChatbotCreate", Form::Chatbot),
            ("ChatbotPatch", Form::Chatbot),
            ("ChatbotPatchById", Form::Chatbot),
            ("ChatWidgetPatch", Form::ChatWidget),
            ("VoiceAgentPatch", Form::VoiceAgent),
        ];
        let mut seen = chatbot_core::FieldMask::EMPTY;
        for (schema, form) in forms {
            for field in form.fields().filter(|f| schema != "ChatbotCreate" || *f != Field::Active) {
                seen.insert(field);
                let (spec, path) = (field.spec(), form.path(field));
                let at = field_schema(&doc, schema, path);
                assert!(at.is_object() && !at.as_object().is_some_and(|o| o.is_empty()), "{schema}: {path} is missing");
                match spec.limit {
                    Limit::Chars(max) | Limit::Bytes(max) if ![Field::Model, Field::VoiceName].contains(&field) => {
                        assert_eq!(at["maxLength"].as_u64(), Some(max as u64), "{schema}: {path} maxLength");
                    }
                    Limit::Range { min, max } => {
                        assert_eq!(at["minimum"].as_f64(), Some(min), "{schema}: {path} minimum");
                        assert_eq!(at["maximum"].as_f64(), Some(max), "{schema}: {path} maximum");
                    }
                    Limit::None | Limit::Chars(_) | Limit::Bytes(_) => {}
                }
            }
        }
        assert_eq!(seen, chatbot_core::FieldMask::all(), "every field is in some request schema");
    }

    /// Every `(path, method)` the gateway's router registers, read from the source that builds it (one
    /// `.route("path", method(handler)...)` a line), with its path parameters spelled as the document
    /// spells them. `OPTIONS` (CORS preflight) is left out: the document describes the methods a client
    /// calls.
    fn routed() -> std::collections::BTreeSet<(String, String)> {
        let sources = [
            include_str!("routes.rs"),
            include_str!("history.rs"),
            include_str!("public.rs"),
            include_str!("bin/chatbotd/startup.rs"),
        ];
        let mut routed = std::collections::BTreeSet::new();
        for line in sources.iter().flat_map(|source| source.lines()) {
            let Some((_, rest)) = line.split_once(".route(\"") else { continue };
            let Some((path, handlers)) = rest.split_once('"') else { continue };
            let path = path.replace("{chatbot_id}", "{chatbotId}");
            for method in ["get", "post", "patch", "put", "delete"] {
                let called = handlers
                    .match_indices(&format!("{method}("))
                    .any(|(at, _)| at == 0 || !handlers[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_'));
                if called {
                    routed.insert((path.clone(), method.to_owned()));
                }
            }
        }
        routed
    }

    #[test]
    fn the_document_describes_exactly_the_routes_the_router_serves() {
        let doc = document();
        assert_eq!(doc["openapi"], "3.1.0");
        let documented: std::collections::BTreeSet<(String, String)> = doc["paths"]
            .as_object()
            .expect("paths")
            .iter()
            .flat_map(|(path, item)| {
                item.as_object()
                    .expect("a path item")
                    .keys()
                    .filter(|method| ["get", "post", "patch", "put", "delete"].contains(&method.as_str()))
                    .map(move |method| (path.clone(), method.clone()))
            })
            .collect();
        let mut routed = routed();
        assert!(routed.len() >= 20, "the scan finds the router's routes: {routed:?}");
        // Served by the Swagger UI router this module builds, not by a `.route` line.
        routed.insert(("/openapi.json".to_owned(), "get".to_owned()));
        let undocumented: Vec<_> = routed.difference(&documented).collect();
        let unrouted: Vec<_> = documented.difference(&routed).collect();
        assert!(undocumented.is_empty(), "served but not in the document: {undocumented:?}");
        assert!(unrouted.is_empty(), "in the document but not served: {unrouted:?}");
        assert_eq!(doc["components"]["securitySchemes"]["apiKey"]["name"], "x-api-key");
    }
}
