//! Entity tags and the conditional headers `If-Match` (PATCH, DELETE) and `If-None-Match` (GET).

use axum::http::{HeaderMap, HeaderValue, header};

use crate::error::ApiError;

/// What an `If-Match` header asks for.
pub(crate) enum IfMatch {
    /// No header, or `*`: no condition beyond the chatbot existing.
    Anything,
    /// Exactly this strong tag: checked atomically by the store.
    Tag(String),
    /// Any of several tags (or only weak ones, which never match): checked against a fresh read,
    /// then atomically by the store with the tag read.
    OneOf(Vec<String>),
}

/// The entity tags of a header value: `"a", W/"b"` gives `[(false, a), (true, b)]`.
fn tags(value: &HeaderValue) -> Result<Option<Vec<(bool, String)>>, ApiError> {
    let value = value.to_str().map_err(|_| ApiError::MalformedConditional)?.trim();
    if value == "*" {
        return Ok(None);
    }
    let mut tags = Vec::new();
    for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (weak, quoted) = match part.strip_prefix("W/") {
            Some(rest) => (true, rest),
            None => (false, part),
        };
        let tag = quoted.strip_prefix('"').and_then(|t| t.strip_suffix('"')).ok_or(ApiError::MalformedConditional)?;
        tags.push((weak, tag.to_owned()));
    }
    if tags.is_empty() {
        return Err(ApiError::MalformedConditional);
    }
    Ok(Some(tags))
}

/// Reads `If-Match`.
pub(crate) fn if_match(headers: &HeaderMap) -> Result<IfMatch, ApiError> {
    let Some(value) = headers.get(header::IF_MATCH) else { return Ok(IfMatch::Anything) };
    Ok(match tags(value)? {
        None => IfMatch::Anything,
        Some(tags) => match tags.as_slice() {
            [(false, tag)] => IfMatch::Tag(tag.clone()),
            // Strong comparison: weak tags never match.
            _ => IfMatch::OneOf(tags.into_iter().filter(|(weak, _)| !weak).map(|(_, tag)| tag).collect()),
        },
    })
}

/// Whether `If-None-Match` matches `etag` (weak comparison), i.e. whether a GET may answer 304.
pub(crate) fn if_none_match(headers: &HeaderMap, etag: &str) -> Result<bool, ApiError> {
    let Some(value) = headers.get(header::IF_NONE_MATCH) else { return Ok(false) };
    Ok(match tags(value)? {
        None => true,
        Some(tags) => tags.iter().any(|(_, tag)| tag == etag),
    })
}

/// The `ETag` header value for a chatbot's entity tag.
pub(crate) fn etag_header(etag: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{etag}\"")).unwrap_or_else(|_| HeaderValue::from_static("\"\""))
}
