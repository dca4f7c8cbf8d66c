//! Where a request's token comes from and whether it is good (PROTOCOL.md §2).
//!
//! The `Authorization: Bearer` header, or the `access_token` query parameter (*extension*) when
//! there is no header; when both are present the header wins.

use http::HeaderMap;

use super::faults::ProtocolFaults;
use crate::protocol::jwt::{self, TokenError, Validation, VerifiedToken};

/// The token a request presents: from the header when there is one, else from the query.
pub fn presented_token<'a>(headers: &'a HeaderMap, query: Option<&'a str>) -> Option<String> {
    if let Some(value) = headers.get(http::header::AUTHORIZATION) {
        return Some(bearer(value.to_str().unwrap_or_default()).unwrap_or_default().to_owned());
    }
    let query = query?;
    form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == "access_token").map(|(_, v)| v.into_owned())
}

/// The token of a `Bearer` credential; the scheme is case-insensitive (RFC 7235).
pub fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Verifies a presented token under the server's secret and faults.
pub fn authenticate(
    token: Option<&str>,
    secret: &[u8],
    faults: &ProtocolFaults,
) -> Result<VerifiedToken, TokenError> {
    let rules = Validation {
        now_s: jwt::unix_now_s(),
        leeway_s: if faults.accept_expired_tokens { f64::INFINITY } else { 0.0 },
        allow_unsigned: faults.accept_alg_none,
    };
    jwt::verify_with(token.unwrap_or_default(), secret, rules)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn the_header_wins_over_the_query() {
        let mut headers = HeaderMap::new();
        assert_eq!(presented_token(&headers, Some("access_token=q")), Some("q".into()));
        headers.insert(http::header::AUTHORIZATION, HeaderValue::from_static("Bearer h"));
        assert_eq!(presented_token(&headers, Some("access_token=q")), Some("h".into()));
    }

    #[test]
    fn a_non_bearer_header_presents_no_usable_token() {
        let mut headers = HeaderMap::new();
        headers.insert(http::header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(presented_token(&headers, Some("access_token=q")), Some(String::new()));
        assert_eq!(bearer("bearer  t "), Some("t"));
    }

    #[test]
    fn query_tokens_are_percent_decoded() {
        let headers = HeaderMap::new();
        assert_eq!(presented_token(&headers, Some("x=1&access_token=a%2Eb")), Some("a.b".into()));
        assert_eq!(presented_token(&headers, Some("x=1")), None);
    }

    #[test]
    fn faults_loosen_verification() {
        let expired = jwt::mint_raw(r#"{"alg":"HS256"}"#, r#"{"sub":"u","exp":1}"#, Some(b"s"));
        let strict = ProtocolFaults::default();
        assert_eq!(authenticate(Some(&expired), b"s", &strict), Err(TokenError::Expired));
        let loose = ProtocolFaults { accept_expired_tokens: true, accept_alg_none: true, ..strict };
        assert!(authenticate(Some(&expired), b"s", &loose).is_ok());
        let unsigned = jwt::mint_raw(r#"{"alg":"none"}"#, r#"{"sub":"u","exp":99999999999}"#, None);
        assert!(authenticate(Some(&unsigned), b"s", &loose).is_ok());
        assert_eq!(authenticate(None, b"s", &strict), Err(TokenError::Missing));
    }
}
