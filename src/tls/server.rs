//! The server side of TLS: a certificate chain and key (PEM files, or generated), TLS 1.3 and
//! 1.2, ALPN `http/1.1`, and session resumption offered with stateless tickets, so a reconnecting
//! client can resume however many clients there are.

use std::path::Path;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::ServerSessionMemoryCache;
use tokio_rustls::TlsAcceptor;

use super::{ALPN_HTTP1, TlsError, provider};

/// TLS 1.2 session ids the server remembers (TLS 1.3 resumes with stateless tickets).
const SESSION_IDS: usize = 16 * 1024;

/// A server TLS configuration, cheap to clone.
#[derive(Clone)]
pub struct ServerTls {
    acceptor: TlsAcceptor,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls").finish_non_exhaustive()
    }
}

impl ServerTls {
    /// From a certificate chain (leaf first) and its private key.
    pub fn new(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<ServerTls, TlsError> {
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Config)?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(TlsError::Config)?;
        config.alpn_protocols = vec![ALPN_HTTP1.to_vec()];
        config.session_storage = ServerSessionMemoryCache::new(SESSION_IDS);
        config.ticketer = rustls::crypto::ring::Ticketer::new().map_err(TlsError::Config)?;
        Ok(ServerTls { acceptor: TlsAcceptor::from(Arc::new(config)) })
    }

    /// From PEM files: `serve --tls-cert FILE --tls-key FILE`.
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<ServerTls, TlsError> {
        let cert_bytes = read(cert, "TLS certificate file")?;
        let chain =
            CertificateDer::pem_slice_iter(&cert_bytes).collect::<Result<Vec<_>, _>>().map_err(|e| {
                TlsError::Pem { path: cert.into(), detail: format!("not a PEM certificate file: {e}") }
            })?;
        if chain.is_empty() {
            return Err(TlsError::Pem { path: cert.into(), detail: "holds no CERTIFICATE block".into() });
        }
        let key_bytes = read(key, "TLS key file")?;
        let key_der = PrivateKeyDer::from_pem_slice(&key_bytes).map_err(|e| TlsError::Pem {
            path: key.into(),
            detail: format!("holds no usable private key (PKCS#8, PKCS#1 or SEC1 PEM): {e}"),
        })?;
        ServerTls::new(chain, key_der)
    }

    pub fn acceptor(&self) -> &TlsAcceptor {
        &self.acceptor
    }
}

fn read(path: &Path, what: &'static str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read { what, path: path.into(), cause: source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::GeneratedPki;

    #[test]
    fn pem_files_load_and_a_mismatched_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let pki = GeneratedPki::new().unwrap();
        let files = pki.write_pem_files(dir.path()).unwrap();
        ServerTls::from_pem_files(&files.cert, &files.key).unwrap();
        let other = GeneratedPki::new().unwrap().write_pem_files(&dir.path().join("other")).unwrap();
        let error = ServerTls::from_pem_files(&files.cert, &other.key).unwrap_err();
        assert!(matches!(error, TlsError::Config(_)), "{error}");
        let error = ServerTls::from_pem_files(&files.key, &files.key).unwrap_err();
        assert!(error.to_string().contains("no CERTIFICATE"), "{error}");
        let error = ServerTls::from_pem_files(&files.cert, &files.cert).unwrap_err();
        assert!(error.to_string().contains("private key"), "{error}");
    }
}
