//! TLS for every part that talks over the network: the reference server's `wss://` and
//! `https://`, the load runner's clients and publishers, and the `conform`/`fuzz` probe.
//!
//! - [`client`]: the client configuration (platform roots, a `--ca-cert` file, or `--insecure`),
//!   SNI and ALPN as a browser sends them, session resumption, and the handshake itself;
//! - [`ca_file`]: what trusting a `--ca-cert` file means, as `curl --cacert`: its CAs, or the
//!   server's self-signed certificate itself;
//! - [`server`]: the server configuration from PEM files or a generated certificate;
//! - [`generate`]: a throwaway CA and server certificate made at start (`rcgen`);
//! - [`stream`]: [`ClientStream`], plain TCP or TLS behind one concrete type, so a plain run pays
//!   no dynamic dispatch;
//! - [`failure`]: what a failed handshake means ([`TlsFailure`]), told apart from protocol findings.
//!
//! It must not know about the protocol, scenarios or reports: callers decide what a handshake
//! failure does to a run (CLI.md: exit code 3, never a protocol finding).

pub mod ca_file;
pub mod client;
pub mod failure;
pub mod generate;
pub mod server;
pub mod stamped;
pub mod stream;

use std::path::PathBuf;

pub use client::{ClientTls, ClientTlsOptions, Handshake, Trust};
pub use failure::{TlsFailure, TrustKind};
pub use generate::GeneratedPki;
pub use server::ServerTls;
pub use stamped::StampedTcp;
pub use stream::ClientStream;

/// The one ALPN protocol offered and accepted: WebSocket over HTTP/1.1, as a browser offers it
/// for `new WebSocket("wss://…")`.
pub const ALPN_HTTP1: &[u8] = b"http/1.1";

/// The crypto provider of every configuration made here (`ring`: no cmake or nasm needed).
pub fn provider() -> std::sync::Arc<rustls::crypto::CryptoProvider> {
    std::sync::Arc::new(rustls::crypto::ring::default_provider())
}

/// Why TLS could not be set up or a handshake failed.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {what} {}: {cause}", path.display())]
    Read { what: &'static str, path: PathBuf, cause: std::io::Error },
    #[error("{}: {detail}", path.display())]
    Pem { path: PathBuf, detail: String },
    #[error("cannot load the platform's root certificates ({0}); pass --ca-cert FILE")]
    NoRoots(String),
    #[error("the TLS configuration is not usable: {0}")]
    Config(#[source] rustls::Error),
    #[error("cannot generate a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("{0:?} is not a valid TLS server name")]
    ServerName(String),
    #[error("TLS handshake with {host} failed: {failure}{hint}: {detail}", hint = failure.hint(*trust))]
    Handshake { host: String, failure: TlsFailure, trust: TrustKind, detail: String },
}

impl TlsError {
    /// CLI.md's exit code: 2 for a file or name the user gave that cannot be used, 3 for a
    /// handshake that failed (the run could not be carried out).
    pub fn exit_code(&self) -> u8 {
        match self {
            TlsError::Read { .. } | TlsError::Pem { .. } | TlsError::ServerName(_) | TlsError::Config(_) => 2,
            TlsError::NoRoots(_) | TlsError::Generate(_) | TlsError::Handshake { .. } => 3,
        }
    }

    /// The kind of a handshake failure, for counters and samples.
    pub fn failure(&self) -> Option<TlsFailure> {
        match self {
            TlsError::Handshake { failure, .. } => Some(*failure),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_problems_are_bad_input_and_handshakes_could_not_run() {
        let read =
            TlsError::Read { what: "CA file", path: "x.pem".into(), cause: std::io::Error::other("gone") };
        assert_eq!(read.exit_code(), 2);
        let handshake = TlsError::Handshake {
            host: "h".into(),
            failure: TlsFailure::BadCertificate,
            trust: TrustKind::Platform,
            detail: "UnknownIssuer".into(),
        };
        assert_eq!(handshake.exit_code(), 3);
        let text = handshake.to_string();
        assert!(text.contains("not trusted") && text.contains("--ca-cert"), "{text}");
    }
}
