//! What `conform` and `fuzz` talk to: a `ws://` or `wss://` URL split into what the raw client
//! needs (with the TLS settings for `wss://`), and the credentials for it (a secret to mint any
//! token, or a file of ready-made tokens).
//!
//! It must not open connections; [`super::conn`] does.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use rustls::pki_types::ServerName;

use crate::protocol::jwt::{self, Claims};
use crate::tls::client::server_name;
use crate::tls::{ClientTls, ClientTlsOptions, TlsError};

/// A WebSocket endpoint, as the raw client needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `ws://host:port/path?query` or `wss://…`, as given.
    pub url: String,
    /// `host:port` to connect to and to send as `Host`.
    pub authority: String,
    /// For `wss://`: the TLS settings and the name the certificate must be valid for (the SNI).
    pub tls: Option<(ClientTls, ServerName<'static>)>,
    /// The request path, `/v1/ws` unless the URL says otherwise.
    pub path: String,
    /// The URL's query string, without `?`.
    pub query: Option<String>,
}

/// How a `wss://` target was checked, for the `conform` and `fuzz` reports.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TlsSummary {
    /// How the server's certificate was checked.
    pub verification: String,
    /// Certificate verification was off (`--insecure`).
    pub insecure: bool,
    /// The SNI sent (empty for an IP address).
    pub server_name: String,
}

impl TlsSummary {
    /// A note for a summary line: loud when nothing was verified.
    pub fn note(summary: Option<&TlsSummary>) -> &'static str {
        match summary {
            Some(s) if s.insecure => " [TLS certificate NOT verified: --insecure]",
            Some(_) => " [TLS]",
            None => "",
        }
    }
}

/// A `--target` that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("invalid target {0:?}: expected ws://HOST:PORT/PATH or wss://HOST:PORT/PATH")]
    Invalid(String),
    #[error("the TLS settings for the target")]
    Tls(#[from] TlsError),
}

impl Target {
    /// Parses a `ws://` or `wss://` URL; a `wss://` one uses `tls` (the platform's roots when
    /// `None`), a `ws://` one ignores it.
    pub fn parse(url: &str, tls: Option<ClientTls>) -> Result<Target, TargetError> {
        let (rest, secure) = if let Some(rest) = url.strip_prefix("ws://") {
            (rest, false)
        } else if let Some(rest) = url.strip_prefix("wss://") {
            (rest, true)
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
        let has_port = authority.rsplit_once(':').is_some_and(|(_, port)| !port.ends_with(']'));
        let authority = if has_port {
            authority.to_owned()
        } else {
            format!("{authority}:{}", if secure { 443 } else { 80 })
        };
        let (path, query) = match path_query.split_once('?') {
            Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
            None => (path_query.to_owned(), None),
        };
        let tls = if secure {
            let host = authority.rsplit_once(':').map_or(authority.as_str(), |(host, _)| host);
            let client = match tls {
                Some(client) => client,
                None => ClientTls::new(&ClientTlsOptions::default())?,
            };
            Some((client, server_name(host)?))
        } else {
            None
        };
        Ok(Target { url: url.to_owned(), authority, tls, path, query })
    }

    /// What the reports say about the target's TLS (`None` for `ws://`).
    pub fn tls_summary(&self) -> Option<TlsSummary> {
        self.tls.as_ref().map(|(client, name)| TlsSummary {
            verification: client.verification().to_owned(),
            insecure: client.insecure(),
            server_name: match name {
                ServerName::DnsName(name) => name.as_ref().to_owned(),
                _ => String::new(),
            },
        })
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
    #[error("reading token file {path}: {cause}")]
    Read { path: String, cause: std::io::Error },
    #[error("token file {0} holds no token")]
    Empty(String),
}

impl Credentials {
    /// Reads a token file: one token per line; blank lines and `#` comments are skipped.
    pub fn from_token_file(path: &Path) -> Result<Credentials, TokenFileError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| TokenFileError::Read { path: path.display().to_string(), cause: source })?;
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
        let t = Target::parse("ws://127.0.0.1:9000/v1/ws?x=1", None).unwrap();
        assert_eq!(
            (t.authority.as_str(), t.path.as_str(), t.query.as_deref()),
            ("127.0.0.1:9000", "/v1/ws", Some("x=1"))
        );
        assert_eq!(t.request_path(Some("access_token=a")), "/v1/ws?x=1&access_token=a");
        let t = Target::parse("ws://localhost", None).unwrap();
        assert_eq!((t.authority.as_str(), t.path.as_str()), ("localhost:80", "/v1/ws"));
        assert!(t.tls.is_none());
        assert!(matches!(Target::parse("http://h", None), Err(TargetError::Invalid(_))));
    }

    #[test]
    fn wss_urls_carry_their_tls_settings_and_server_name() {
        let pki = crate::tls::GeneratedPki::new().unwrap();
        let tls = ClientTls::new(&ClientTlsOptions { trust: pki.trust(), insecure: false }).unwrap();
        let t = Target::parse("wss://api.openframe.io/v1/ws", Some(tls.clone())).unwrap();
        assert_eq!(t.authority, "api.openframe.io:443");
        let (client, name) = t.tls.unwrap();
        assert_eq!((client, name.to_str().as_ref()), (tls.clone(), "api.openframe.io"));
        let t = Target::parse("wss://[::1]:8443/v1/ws", Some(tls)).unwrap();
        assert_eq!(t.authority, "[::1]:8443");
        assert!(matches!(t.tls.unwrap().1, ServerName::IpAddress(_)));
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
