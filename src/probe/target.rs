//! What `conform` and `fuzz` talk to: a `ws://` URL split into what the raw client needs, and
//! the credentials for it (a secret to mint any token, or a file of ready-made tokens).
//!
//! It must not open connections; [`super::conn`] does.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::protocol::jwt::{self, Claims};

/// A WebSocket endpoint, as the raw client needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `ws://host:port/path?query`, as given.
    pub url: String,
    /// `host:port` to connect to and to send as `Host`.
    pub authority: String,
    /// The request path, `/v1/ws` unless the URL says otherwise.
    pub path: String,
    /// The URL's query string, without `?`.
    pub query: Option<String>,
}

/// A `--target` that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("invalid target {0:?}: expected ws://HOST:PORT/PATH")]
    Invalid(String),
    #[error(
        "target {0:?}: wss:// is not supported by conform and fuzz yet (they write raw frames on plain TCP)"
    )]
    TlsUnsupported(String),
}

impl Target {
    pub fn parse(url: &str) -> Result<Target, TargetError> {
        let rest = if let Some(rest) = url.strip_prefix("ws://") {
            rest
        } else if url.starts_with("wss://") {
            return Err(TargetError::TlsUnsupported(url.to_owned()));
        } else {
            return Err(TargetError::Invalid(url.to_owned()));
        };
        let (authority, path_query) = match rest.find('/') {
            Some(at) => (&rest[..at], &rest[at..]),
            None => (rest, "/v1/ws"),
        };
        if authority.is_empty() || authority.contains(char::is_whitespace) {
            return Err(TargetError::Invalid(url.to_owned()));
        }
        let authority = if authority.contains(':') && !authority.ends_with(']') {
            authority.to_owned()
        } else {
            format!("{authority}:80")
        };
        let (path, query) = match path_query.split_once('?') {
            Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
            None => (path_query.to_owned(), None),
        };
        Ok(Target { url: url.to_owned(), authority, path, query })
    }

    /// The request target for the upgrade, with `extra_query` (already encoded) appended.
    pub fn request_path(&self, extra_query: Option<&str>) -> String {
        match (&self.query, extra_query) {
            (None, None) => self.path.clone(),
            (Some(q), None) => format!("{}?{q}", self.path),
            (None, Some(e)) => format!("{}?{e}", self.path),
            (Some(q), Some(e)) => format!("{}?{q}&{e}", self.path),
        }
    }
}

/// How the harness gets tokens for a target.
#[derive(Debug, Clone)]
pub enum Credentials {
    /// The target's HS256 secret: any token, valid or deliberately broken, can be minted.
    Secret(Vec<u8>),
    /// Ready-made tokens (`--token-file`); cases that need special tokens are skipped.
    Tokens(Vec<FileToken>),
}

/// A token from a token file, with what its (unverified) claims say.
#[derive(Debug, Clone)]
pub struct FileToken {
    pub token: String,
    pub may_publish: bool,
}

/// A token file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    #[error("reading token file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("token file {0} holds no token")]
    Empty(String),
}

impl Credentials {
    /// Reads a token file: one token per line; blank lines and `#` comments are skipped.
    pub fn from_token_file(path: &Path) -> Result<Credentials, TokenFileError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| TokenFileError::Read { path: path.display().to_string(), source })?;
        let tokens: Vec<FileToken> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|token| FileToken { token: token.to_owned(), may_publish: claims_allow_publish(token) })
            .collect();
        if tokens.is_empty() {
            return Err(TokenFileError::Empty(path.display().to_string()));
        }
        Ok(Credentials::Tokens(tokens))
    }

    pub fn secret(&self) -> Option<&[u8]> {
        match self {
            Credentials::Secret(secret) => Some(secret),
            Credentials::Tokens(_) => None,
        }
    }

    /// A valid token, with the `publish` scope when asked; `None` when the file has none such.
    pub fn token(&self, subject: &str, publish: bool) -> Option<String> {
        match self {
            Credentials::Secret(secret) => {
                Some(jwt::mint(secret, &Claims::for_subject(subject, 3600, publish)))
            }
            Credentials::Tokens(tokens) => tokens
                .iter()
                .find(|t| t.may_publish == publish)
                .or_else(|| if publish { None } else { tokens.first() })
                .map(|t| t.token.clone()),
        }
    }

    /// Mints a token from literal header and claims JSON with the secret; `None` without one.
    pub fn mint_raw(&self, header_json: &str, claims_json: &str) -> Option<String> {
        self.secret().map(|secret| jwt::mint_raw(header_json, claims_json, Some(secret)))
    }

    /// Mints a token from claims with the secret; `None` without one.
    pub fn mint(&self, claims: &Claims) -> Option<String> {
        self.secret().map(|secret| jwt::mint(secret, claims))
    }
}

/// Whether a token's claims (read without verifying) carry the `publish` scope.
fn claims_allow_publish(token: &str) -> bool {
    let Some(claims) = token.split('.').nth(1) else { return false };
    let Ok(bytes) = URL_SAFE_NO_PAD.decode(claims) else { return false };
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(&bytes) else { return false };
    value["scope"].as_str().is_some_and(|s| s.split(' ').any(|s| s == "publish"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ws_urls_with_and_without_path() {
        let t = Target::parse("ws://127.0.0.1:9000/v1/ws?x=1").unwrap();
        assert_eq!(
            (t.authority.as_str(), t.path.as_str(), t.query.as_deref()),
            ("127.0.0.1:9000", "/v1/ws", Some("x=1"))
        );
        assert_eq!(t.request_path(Some("access_token=a")), "/v1/ws?x=1&access_token=a");
        let t = Target::parse("ws://localhost").unwrap();
        assert_eq!((t.authority.as_str(), t.path.as_str()), ("localhost:80", "/v1/ws"));
        assert!(matches!(Target::parse("wss://h/v1/ws"), Err(TargetError::TlsUnsupported(_))));
        assert!(matches!(Target::parse("http://h"), Err(TargetError::Invalid(_))));
    }

    #[test]
    fn token_files_pick_tokens_by_scope() {
        let with = jwt::mint(b"s", &Claims::for_subject("a", 60, true));
        let without = jwt::mint(b"s", &Claims::for_subject("b", 60, false));
        let creds = Credentials::Tokens(vec![
            FileToken { token: without.clone(), may_publish: claims_allow_publish(&without) },
            FileToken { token: with.clone(), may_publish: claims_allow_publish(&with) },
        ]);
        assert_eq!(creds.token("x", true), Some(with));
        assert_eq!(creds.token("x", false), Some(without));
        assert!(creds.mint_raw("{}", "{}").is_none());
    }
}
