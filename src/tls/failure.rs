//! What a failed TLS handshake means, read from the error rustls gives (wrapped in the
//! `std::io::Error` tokio-rustls returns): an untrusted certificate, a certificate for another
//! host name, no protocol version in common, a peer that does not speak TLS at all, …
//!
//! A TLS failure is a fact about the deployment, not a protocol finding: callers report it as
//! what it is (and `run`, `conform`, `fuzz` stop with exit code 3).

use std::fmt;

use rustls::{AlertDescription, CertificateError, Error as RustlsError};

/// The kind of a handshake failure; `Copy`, the key for counters and samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TlsFailure {
    /// The certificate chain does not lead to a trusted root, is expired, revoked or malformed.
    BadCertificate,
    /// The certificate is valid, but not for the host name (or IP address) connected to.
    WrongHostName,
    /// No TLS protocol version (or cipher suite, group, signature scheme) in common.
    ProtocolVersion,
    /// The peer answered with something that is not TLS (a plain `ws://` server, say).
    NotTls,
    /// No ALPN protocol in common (the server does not offer `http/1.1`).
    Alpn,
    /// The server aborted the handshake with an alert.
    RefusedByPeer,
    /// The connection closed (or was reset) in the middle of the handshake.
    Closed,
    /// The handshake did not finish in time.
    Timeout,
    Other,
}

/// What the client checked the server's certificate against: the hint of a failure depends on
/// it (a user who passed `--ca-cert` is not told to pass it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrustKind {
    /// The platform's root certificates.
    Platform,
    /// The certificates of a `--ca-cert` file: CAs, or the server's own certificate.
    CaFile,
    /// The CA generated for the bundled server.
    Generated,
    /// Nothing: `--insecure`.
    Insecure,
}

impl TlsFailure {
    /// A hint of what to do, appended to the message.
    pub fn hint(self, trust: TrustKind) -> &'static str {
        match (self, trust) {
            (TlsFailure::BadCertificate, TrustKind::Platform) => {
                " (pass --ca-cert FILE with the private CA that signed it, or with the server's \
                 self-signed certificate itself, or --insecure to skip verification)"
            }
            (TlsFailure::BadCertificate, TrustKind::CaFile) => {
                " by the --ca-cert file (it is neither signed by a CA in the file nor one of its \
                 certificates, or it is not valid now; --insecure skips verification)"
            }
            (TlsFailure::WrongHostName, _) => {
                " (connect with a name the certificate lists, or give the server a certificate \
                 for this one)"
            }
            (TlsFailure::NotTls, _) => " (is it a plain ws:// server?)",
            _ => "",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            TlsFailure::BadCertificate => "bad_certificate",
            TlsFailure::WrongHostName => "wrong_host_name",
            TlsFailure::ProtocolVersion => "protocol_version",
            TlsFailure::NotTls => "not_tls",
            TlsFailure::Alpn => "alpn",
            TlsFailure::RefusedByPeer => "refused_by_peer",
            TlsFailure::Closed => "closed",
            TlsFailure::Timeout => "timeout",
            TlsFailure::Other => "other",
        }
    }
}

impl fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TlsFailure::BadCertificate => "the server's certificate is not trusted",
            TlsFailure::WrongHostName => "the server's certificate is not valid for this host name",
            TlsFailure::ProtocolVersion => "no TLS protocol version or cipher suite in common",
            TlsFailure::NotTls => "the server did not answer in TLS",
            TlsFailure::Alpn => "no ALPN protocol in common (http/1.1 offered)",
            TlsFailure::RefusedByPeer => "the server refused the handshake",
            TlsFailure::Closed => "the connection closed during the handshake",
            TlsFailure::Timeout => "the handshake timed out",
            TlsFailure::Other => "the handshake failed",
        })
    }
}

/// The kind of a handshake error and its detail.
pub fn classify(error: &std::io::Error) -> (TlsFailure, String) {
    let inner = error.get_ref().and_then(|e| e.downcast_ref::<RustlsError>());
    match inner {
        Some(rustls) => (classify_rustls(rustls), format!("{rustls}")),
        None => {
            let failure = match error.kind() {
                std::io::ErrorKind::UnexpectedEof
                | std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::ConnectionAborted
                | std::io::ErrorKind::BrokenPipe => TlsFailure::Closed,
                std::io::ErrorKind::TimedOut => TlsFailure::Timeout,
                _ => TlsFailure::Other,
            };
            (failure, error.to_string())
        }
    }
}

/// The kind of a rustls error seen by a client during its handshake.
pub fn classify_rustls(error: &RustlsError) -> TlsFailure {
    match error {
        RustlsError::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => TlsFailure::WrongHostName,
        RustlsError::InvalidCertificate(_) | RustlsError::InvalidCertRevocationList(_) => {
            TlsFailure::BadCertificate
        }
        RustlsError::PeerIncompatible(_) => TlsFailure::ProtocolVersion,
        RustlsError::NoApplicationProtocol => TlsFailure::Alpn,
        RustlsError::AlertReceived(alert) => match *alert {
            AlertDescription::ProtocolVersion
            | AlertDescription::InsufficientSecurity
            | AlertDescription::HandshakeFailure => TlsFailure::ProtocolVersion,
            AlertDescription::NoApplicationProtocol => TlsFailure::Alpn,
            AlertDescription::BadCertificate
            | AlertDescription::UnknownCA
            | AlertDescription::CertificateExpired
            | AlertDescription::CertificateUnknown => TlsFailure::BadCertificate,
            _ => TlsFailure::RefusedByPeer,
        },
        RustlsError::InvalidMessage(_) | RustlsError::InappropriateHandshakeMessage { .. } => {
            TlsFailure::NotTls
        }
        _ => TlsFailure::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wrapped(error: RustlsError) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::InvalidData, error)
    }

    #[test]
    fn certificate_errors_tell_trust_from_host_name() {
        let (kind, detail) =
            classify(&wrapped(RustlsError::InvalidCertificate(CertificateError::UnknownIssuer)));
        assert_eq!(kind, TlsFailure::BadCertificate);
        assert!(detail.contains("UnknownIssuer"), "{detail}");
        let (kind, _) =
            classify(&wrapped(RustlsError::InvalidCertificate(CertificateError::NotValidForName)));
        assert_eq!(kind, TlsFailure::WrongHostName);
        let (kind, _) = classify(&wrapped(RustlsError::InvalidCertificate(CertificateError::Expired)));
        assert_eq!(kind, TlsFailure::BadCertificate);
    }

    #[test]
    fn the_hint_never_asks_for_a_ca_file_that_was_given() {
        let platform = TlsFailure::BadCertificate.hint(TrustKind::Platform);
        assert!(platform.contains("pass --ca-cert") && platform.contains("self-signed"), "{platform}");
        let given = TlsFailure::BadCertificate.hint(TrustKind::CaFile);
        assert!(given.contains("by the --ca-cert file") && !given.contains("pass --ca-cert"), "{given}");
        for trust in [TrustKind::Platform, TrustKind::CaFile, TrustKind::Generated] {
            let name = TlsFailure::WrongHostName.hint(trust);
            assert!(name.contains("a name the certificate lists") && !name.contains("--ca-cert"), "{name}");
        }
    }

    #[test]
    fn version_mismatches_and_non_tls_peers_are_named() {
        let incompatible =
            RustlsError::PeerIncompatible(rustls::PeerIncompatible::ServerDoesNotSupportTls12Or13);
        assert_eq!(classify(&wrapped(incompatible)).0, TlsFailure::ProtocolVersion);
        let alert = RustlsError::AlertReceived(AlertDescription::ProtocolVersion);
        assert_eq!(classify(&wrapped(alert)).0, TlsFailure::ProtocolVersion);
        let garbage = RustlsError::InvalidMessage(rustls::InvalidMessage::InvalidContentType);
        assert_eq!(classify(&wrapped(garbage)).0, TlsFailure::NotTls);
        let eof = std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "eof");
        assert_eq!(classify(&eof).0, TlsFailure::Closed);
    }
}
