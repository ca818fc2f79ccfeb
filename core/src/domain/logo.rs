//! The chat widget's logo address.

use serde::{Deserialize, Serialize};

use super::limits::LOGO_MAX_BYTES;
use super::{Lines, Rejection, check_storable, string_newtype};
use crate::error::ViolationCode;

/// An absolute `http` or `https` URL with a host, at most 2,048 bytes, kept exactly as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct LogoUrl(String);

impl LogoUrl {
    /// Accepts an absolute http(s) URL with a host.
    pub fn parse(value: &str) -> Result<Self, Rejection> {
        if value.len() > LOGO_MAX_BYTES {
            return Err(Rejection::new(
                ViolationCode::TooLong,
                format!("must be at most {} bytes (got {})", LOGO_MAX_BYTES, value.len()),
            ));
        }
        check_storable(value, Lines::One)?;
        let invalid = |why: &str| Rejection::new(ViolationCode::InvalidFormat, why);
        let url = url::Url::parse(value).map_err(|e| invalid(&format!("must be an absolute http(s) URL ({e})")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid("must use the http or https scheme"));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(invalid("must name a host"));
        }
        Ok(LogoUrl(value.to_owned()))
    }
}

string_newtype!(LogoUrl);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_http_urls_are_accepted_as_written() {
        let url = LogoUrl::parse("https://example.com/logo.png").unwrap();
        assert_eq!(url.as_str(), "https://example.com/logo.png");
        assert!(LogoUrl::parse("http://cdn.example.org:8080/a?b=c").is_ok());
    }

    #[test]
    fn relative_or_foreign_scheme_urls_are_rejected() {
        for bad in
            ["/logo.png", "logo.png", "ftp://example.com/a", "javascript:alert(1)", "data:image/png;base64,AA", ""]
        {
            assert_eq!(LogoUrl::parse(bad).unwrap_err().code, ViolationCode::InvalidFormat, "{bad}");
        }
    }

    proptest::proptest! {
        #[test]
        fn http_urls_with_a_host_are_accepted(host in "[a-z][a-z0-9]{0,20}(\\.[a-z]{2,6}){1,2}", path in "(/[a-zA-Z0-9._-]{0,12}){0,4}") {
            let url = format!("https://{host}{path}");
            proptest::prop_assert_eq!(LogoUrl::parse(&url).map(String::from), Ok(url));
        }

        #[test]
        fn parsing_any_text_never_panics(input in "\\PC{0,300}") {
            if let Ok(url) = LogoUrl::parse(&input) {
                proptest::prop_assert!(url.as_str().starts_with("http"));
            }
        }
    }

    #[test]
    fn urls_over_2048_bytes_are_too_long() {
        let long = format!("https://example.com/{}", "a".repeat(2048));
        assert_eq!(LogoUrl::parse(&long).unwrap_err().code, ViolationCode::TooLong);
    }
}
