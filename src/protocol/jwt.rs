//! HS256 JSON Web Tokens as PROTOCOL.md §2 fixes them: verifying (the server) and minting
//! (the `token` command, the runner's clients, and the conformance suite, which also mints the
//! broken tokens §2 lists).
//!
//! Hand-written over `hmac`/`sha2` rather than a general JWT crate because §2 is narrower and
//! stricter than those crates' defaults (no leeway, `exp` ≤ now is expired, 8 KiB limit, the exact
//! list of invalid forms), and the suite must be able to produce every malformed variant.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use serde::Serialize;
use serde_json::Value;
use sha2::Sha256;

/// Longest token the server accepts, in bytes (§2).
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The reference server's development secret, used when none is configured.
pub const DEFAULT_DEV_SECRET: &str = "openframe-dev-secret";

/// Why a token is invalid (§2). `Copy` so it can key counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum TokenError {
    #[error("no token presented")]
    Missing,
    #[error("token longer than 8 KiB")]
    TooLong,
    #[error("token is not three base64url parts")]
    Malformed,
    #[error("token header is not HS256")]
    WrongAlgorithm,
    #[error("token signature does not verify")]
    BadSignature,
    #[error("token has no string `sub`")]
    MissingSubject,
    #[error("token has no numeric `exp`")]
    MissingExpiry,
    #[error("token has expired")]
    Expired,
    #[error("token is not yet valid (`nbf`)")]
    NotYetValid,
}

/// What a valid token grants.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedToken {
    pub subject: String,
    /// Seconds since the epoch after which the token is no longer valid.
    pub expires_at_s: f64,
    pub may_publish: bool,
}

/// The claims of a token to mint.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Claims {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

impl Claims {
    /// Claims for `subject`, valid from now for `ttl_s` seconds, with the `publish` scope if asked.
    pub fn for_subject(subject: &str, ttl_s: i64, publish: bool) -> Claims {
        let now = unix_now_s() as i64;
        Claims {
            sub: Some(subject.to_owned()),
            exp: Some(now + ttl_s),
            iat: Some(now),
            nbf: None,
            scope: publish.then(|| "publish".to_owned()),
        }
    }
}

pub fn unix_now_s() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs_f64()
}

/// Mints an HS256 token.
pub fn mint(secret: &[u8], claims: &Claims) -> String {
    let claims = serde_json::to_string(claims).unwrap_or_default();
    mint_raw(r#"{"alg":"HS256","typ":"JWT"}"#, &claims, Some(secret))
}

/// Mints a token from literal header and claims JSON, signed with `secret` (HS256) or with an
/// empty signature when `None`. The conformance suite builds its invalid tokens with this.
pub fn mint_raw(header_json: &str, claims_json: &str, secret: Option<&[u8]>) -> String {
    let signing_input =
        format!("{}.{}", URL_SAFE_NO_PAD.encode(header_json), URL_SAFE_NO_PAD.encode(claims_json));
    let signature =
        secret.map(|s| URL_SAFE_NO_PAD.encode(sign(s, signing_input.as_bytes()))).unwrap_or_default();
    format!("{signing_input}.{signature}")
}

fn sign(secret: &[u8], input: &[u8]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(input);
    mac.finalize().into_bytes().to_vec()
}

/// How strictly [`verify_with`] judges a token.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Validation {
    /// Seconds since the epoch.
    pub now_s: f64,
    /// Seconds a token stays valid past `exp` and before `nbf`. PROTOCOL.md: 0 for the reference server.
    pub leeway_s: f64,
    /// Accept `alg: none` without a signature. Only the server's `accept-alg-none` fault sets it.
    pub allow_unsigned: bool,
}

/// Verifies `token` against `secret` at time `now_s` (seconds since the epoch), with no leeway.
pub fn verify(token: &str, secret: &[u8], now_s: f64) -> Result<VerifiedToken, TokenError> {
    verify_with(token, secret, Validation { now_s, leeway_s: 0.0, allow_unsigned: false })
}

/// Verifies `token` under `rules`.
pub fn verify_with(token: &str, secret: &[u8], rules: Validation) -> Result<VerifiedToken, TokenError> {
    if token.is_empty() {
        return Err(TokenError::Missing);
    }
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::TooLong);
    }
    let mut parts = token.split('.');
    let (Some(header), Some(claims), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let header_fields = decode_object(header)?;
    match header_fields.get("alg").and_then(Value::as_str) {
        Some("HS256") => {
            let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| TokenError::Malformed)?;
            let signing_input = &token[..header.len() + claims.len() + 1];
            let mut mac =
                <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("HMAC accepts keys of any length");
            mac.update(signing_input.as_bytes());
            mac.verify_slice(&signature).map_err(|_| TokenError::BadSignature)?;
        }
        Some("none") if rules.allow_unsigned => {}
        _ => return Err(TokenError::WrongAlgorithm),
    }
    let now_s = rules.now_s;
    let claims = decode_object(claims)?;
    let subject = claims.get("sub").and_then(Value::as_str).ok_or(TokenError::MissingSubject)?;
    let expires_at_s = claims.get("exp").and_then(Value::as_f64).ok_or(TokenError::MissingExpiry)?;
    if expires_at_s + rules.leeway_s <= now_s {
        return Err(TokenError::Expired);
    }
    if let Some(nbf) = claims.get("nbf") {
        match nbf.as_f64() {
            Some(nbf) if nbf - rules.leeway_s <= now_s => {}
            _ => return Err(TokenError::NotYetValid),
        }
    }
    let may_publish = claims
        .get("scope")
        .and_then(Value::as_str)
        .is_some_and(|scope| scope.split(' ').any(|s| s == "publish"));
    Ok(VerifiedToken { subject: subject.to_owned(), expires_at_s, may_publish })
}

fn decode_object(part: &str) -> Result<serde_json::Map<String, Value>, TokenError> {
    let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|_| TokenError::Malformed)?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(TokenError::Malformed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"secret";

    fn now() -> f64 {
        unix_now_s()
    }

    #[test]
    fn a_minted_token_verifies_with_its_scope() {
        let token = mint(SECRET, &Claims::for_subject("u1", 60, true));
        let verified = verify(&token, SECRET, now()).unwrap();
        assert_eq!(verified.subject, "u1");
        assert!(verified.may_publish);
        let plain = mint(SECRET, &Claims::for_subject("u1", 60, false));
        assert!(!verify(&plain, SECRET, now()).unwrap().may_publish);
    }

    #[test]
    fn every_invalid_form_of_section_2_is_refused() {
        let t = now() as i64;
        let claims = |c: &str| c.replace("NOW", &t.to_string());
        let cases: Vec<(String, TokenError)> = vec![
            (String::new(), TokenError::Missing),
            ("a.b".into(), TokenError::Malformed),
            ("a.b.c.d".into(), TokenError::Malformed),
            ("!!.??.**".into(), TokenError::Malformed),
            (mint(b"other", &Claims::for_subject("u", 60, false)), TokenError::BadSignature),
            (
                mint_raw(r#"{"alg":"none"}"#, &claims(r#"{"sub":"u","exp":NOW0}"#), None),
                TokenError::WrongAlgorithm,
            ),
            (
                mint_raw(r#"{"alg":"none"}"#, &claims(r#"{"sub":"u","exp":NOW0}"#), Some(SECRET)),
                TokenError::WrongAlgorithm,
            ),
            (
                mint_raw(r#"{"alg":"HS256"}"#, &claims(r#"{"exp":NOW0}"#), Some(SECRET)),
                TokenError::MissingSubject,
            ),
            (mint_raw(r#"{"alg":"HS256"}"#, r#"{"sub":"u"}"#, Some(SECRET)), TokenError::MissingExpiry),
            (
                mint_raw(r#"{"alg":"HS256"}"#, &claims(r#"{"sub":"u","exp":NOW}"#), Some(SECRET)),
                TokenError::Expired,
            ),
            (
                mint_raw(
                    r#"{"alg":"HS256"}"#,
                    &claims(r#"{"sub":"u","exp":NOW00,"nbf":NOW0}"#),
                    Some(SECRET),
                ),
                TokenError::NotYetValid,
            ),
            ("x".repeat(MAX_TOKEN_BYTES + 1), TokenError::TooLong),
        ];
        for (token, expected) in cases {
            assert_eq!(verify(&token, SECRET, t as f64), Err(expected), "{token}");
        }
    }
}
