//! The client side of TLS: which certificates are trusted, what the ClientHello carries, and
//! the handshake.
//!
//! As a browser: SNI is the URL's host name (none for an IP address; rustls sends none for
//! those), ALPN offers `http/1.1`, TLS 1.3 and 1.2 are offered, and sessions are resumed on
//! reconnect when the server offers tickets. A browser's session cache belongs to that browser,
//! so each simulated client gets its own ([`ClientTls::with_own_sessions`]): sharing one cache
//! across thousands of clients would let a client's *first* connection resume another client's
//! session and understate what a storm of new clients costs the server.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ClientSessionMemoryCache, Resumption};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, HandshakeKind, RootCertStore, SignatureScheme};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::ca_file::CaFileVerifier;
use super::failure::{TlsFailure, TrustKind, classify};
use super::stamped::StampedTcp;
use super::{ALPN_HTTP1, TlsError, provider};

/// Sessions a shared cache keeps (one per server name).
const SHARED_SESSIONS: usize = 64;

/// Which server certificates are trusted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Trust {
    /// The platform's root certificates, as a browser trusts them.
    #[default]
    Platform,
    /// Only the certificates in this PEM file (`--ca-cert`): a private CA, or the server's
    /// self-signed certificate itself ([`super::ca_file`]).
    CaFile(PathBuf),
    /// Only these certificates: the CA the bundled server's certificate was generated with.
    Generated(Vec<CertificateDer<'static>>),
}

/// What the command line or the scenario says about the client's TLS.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientTlsOptions {
    pub trust: Trust,
    /// Skip certificate verification altogether (`--insecure`); loudly reported.
    pub insecure: bool,
}

/// A finished client handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handshake {
    /// The session was resumed from an earlier one (abbreviated handshake).
    pub resumed: bool,
    pub elapsed: Duration,
}

/// A client TLS configuration, cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct ClientTls {
    config: Arc<ClientConfig>,
    verification: Arc<str>,
    /// What certificates are checked against, for the hint of a failed handshake.
    trust: TrustKind,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls").field("verification", &self.verification).finish_non_exhaustive()
    }
}

impl PartialEq for ClientTls {
    fn eq(&self, other: &ClientTls) -> bool {
        Arc::ptr_eq(&self.config, &other.config)
    }
}

impl Eq for ClientTls {}

impl ClientTls {
    /// Builds the configuration: reads the trusted certificates now, so a bad `--ca-cert` is
    /// reported before anything connects.
    pub fn new(options: &ClientTlsOptions) -> Result<ClientTls, TlsError> {
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Config)?;
        let (builder, verification, trust) = match &options.trust {
            _ if options.insecure => {
                let verifier = Arc::new(NoVerification(provider()));
                let builder = builder.dangerous().with_custom_certificate_verifier(verifier);
                (builder, "NONE: certificates are not verified (--insecure)".to_owned(), TrustKind::Insecure)
            }
            Trust::CaFile(path) => {
                let verifier = Arc::new(CaFileVerifier::from_file(path, provider())?);
                let builder = builder.dangerous().with_custom_certificate_verifier(verifier);
                (builder, format!("CA file {}", path.display()), TrustKind::CaFile)
            }
            Trust::Platform => {
                let (roots, verification) = platform_roots()?;
                (builder.with_root_certificates(roots), verification, TrustKind::Platform)
            }
            Trust::Generated(certs) => {
                let mut roots = RootCertStore::empty();
                for cert in certs {
                    roots.add(cert.clone()).map_err(TlsError::Config)?;
                }
                let verification = "the CA generated for the bundled server".to_owned();
                (builder.with_root_certificates(roots), verification, TrustKind::Generated)
            }
        };
        let mut config = builder.with_no_client_auth();
        config.alpn_protocols = vec![ALPN_HTTP1.to_vec()];
        config.resumption = Resumption::store(Arc::new(ClientSessionMemoryCache::new(SHARED_SESSIONS)));
        Ok(ClientTls { config: Arc::new(config), verification: verification.into(), trust })
    }

    /// The same configuration with a session cache of its own: one simulated client, which
    /// resumes its own sessions and nobody else's.
    pub fn with_own_sessions(&self) -> ClientTls {
        let mut config = (*self.config).clone();
        config.resumption = Resumption::store(Arc::new(ClientSessionMemoryCache::new(1)));
        ClientTls {
            config: Arc::new(config),
            verification: Arc::clone(&self.verification),
            trust: self.trust,
        }
    }

    /// How server certificates are checked, for reports.
    pub fn verification(&self) -> &str {
        &self.verification
    }

    pub fn insecure(&self) -> bool {
        self.trust == TrustKind::Insecure
    }

    /// Runs the handshake on a connected socket, within `timeout`.
    pub async fn handshake(
        &self,
        tcp: StampedTcp,
        name: &ServerName<'static>,
        timeout: Duration,
    ) -> Result<(TlsStream<StampedTcp>, Handshake), TlsError> {
        let started = Instant::now();
        let connector = TlsConnector::from(Arc::clone(&self.config));
        let host = || name.to_str().into_owned();
        let stream = match tokio::time::timeout(timeout, connector.connect(name.clone(), tcp)).await {
            Err(_) => {
                return Err(TlsError::Handshake {
                    host: host(),
                    failure: TlsFailure::Timeout,
                    trust: self.trust,
                    detail: format!("no handshake within {timeout:?}"),
                });
            }
            Ok(Err(error)) => {
                let (failure, detail) = classify(&error);
                return Err(TlsError::Handshake { host: host(), failure, trust: self.trust, detail });
            }
            Ok(Ok(stream)) => stream,
        };
        let resumed = stream.get_ref().1.handshake_kind() == Some(HandshakeKind::Resumed);
        Ok((stream, Handshake { resumed, elapsed: started.elapsed() }))
    }
}

/// The name the ClientHello carries and the certificate must be valid for: a DNS name, or an IP
/// address (then no SNI is sent, as browsers do).
pub fn server_name(host: &str) -> Result<ServerName<'static>, TlsError> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_owned()).map_err(|_| TlsError::ServerName(host.to_owned()))
}

/// The platform's root certificates, at least one.
fn platform_roots() -> Result<(RootCertStore, String), TlsError> {
    let mut roots = RootCertStore::empty();
    let loaded = rustls_native_certs::load_native_certs();
    let (added, _) = roots.add_parsable_certificates(loaded.certs);
    if added == 0 {
        let why = loaded.errors.first().map_or("none found".to_owned(), ToString::to_string);
        return Err(TlsError::NoRoots(why));
    }
    Ok((roots, format!("platform root certificates ({added})")))
}

/// `--insecure`: any certificate is accepted. Handshake signatures are still checked (they only
/// prove the server holds the key of the certificate it sent), so the handshake is a real one.
#[derive(Debug)]
struct NoVerification(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use tokio::net::TcpStream;

    use super::*;

    #[test]
    fn sni_is_the_host_name_and_never_an_address() {
        assert!(matches!(server_name("api.openframe.io"), Ok(ServerName::DnsName(_))));
        assert!(matches!(server_name("127.0.0.1"), Ok(ServerName::IpAddress(_))));
        assert!(matches!(server_name("[::1]"), Ok(ServerName::IpAddress(_))));
        assert!(server_name("bad host").is_err());
    }

    #[test]
    fn a_missing_or_empty_ca_file_is_reported_with_its_path() {
        let missing = Trust::CaFile("/nonexistent/ca.pem".into());
        let error = ClientTls::new(&ClientTlsOptions { trust: missing, insecure: false }).unwrap_err();
        assert!(matches!(error, TlsError::Read { .. }) && error.to_string().contains("/nonexistent/ca.pem"));
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "no pem here").unwrap();
        let error =
            ClientTls::new(&ClientTlsOptions { trust: Trust::CaFile(empty), insecure: false }).unwrap_err();
        assert!(error.to_string().contains("no CERTIFICATE"), "{error}");
    }

    /// One handshake against `server` as `host`; the server sends a byte so the client reads the
    /// session tickets that follow the handshake. The server's view and the client's.
    async fn handshake_once(
        listener: &tokio::net::TcpListener,
        server: &crate::tls::ServerTls,
        client: &ClientTls,
        host: &str,
    ) -> (Option<String>, Option<Vec<u8>>, Handshake) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let addr = listener.local_addr().unwrap();
        let accept = async {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut stream = server.acceptor().accept(tcp).await.unwrap();
            stream.write_all(b"x").await.unwrap();
            stream.flush().await.unwrap();
            let conn = stream.get_ref().1;
            (conn.server_name().map(str::to_owned), conn.alpn_protocol().map(<[u8]>::to_vec), stream)
        };
        let connect = async {
            let tcp = StampedTcp::with_kernel_stamps(TcpStream::connect(addr).await.unwrap()).unwrap();
            let (mut stream, handshake) =
                client.handshake(tcp, &server_name(host).unwrap(), Duration::from_secs(5)).await.unwrap();
            let mut byte = [0u8; 1];
            stream.read_exact(&mut byte).await.unwrap();
            handshake
        };
        let ((sni, alpn, _stream), handshake) = tokio::join!(accept, connect);
        (sni, alpn, handshake)
    }

    #[tokio::test]
    async fn the_client_hello_is_a_browsers_and_clients_resume_only_their_own_sessions() {
        let pki = super::super::GeneratedPki::new().unwrap();
        let server = pki.server_tls().unwrap();
        let base = ClientTls::new(&ClientTlsOptions { trust: pki.trust(), insecure: false }).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (first, second) = (base.with_own_sessions(), base.with_own_sessions());
        let (sni, alpn, handshake) = handshake_once(&listener, &server, &first, "localhost").await;
        assert_eq!((sni.as_deref(), alpn.as_deref()), (Some("localhost"), Some(&b"http/1.1"[..])));
        assert!(!handshake.resumed);
        let (sni, _, handshake) = handshake_once(&listener, &server, &first, "localhost").await;
        assert_eq!(sni.as_deref(), Some("localhost"));
        assert!(handshake.resumed, "a reconnect resumes the client's own session");
        let (_, _, handshake) = handshake_once(&listener, &server, &second, "localhost").await;
        assert!(!handshake.resumed, "another client's session is not this client's");
        let (sni, _, _) = handshake_once(&listener, &server, &second, "127.0.0.1").await;
        assert_eq!(sni, None, "no SNI for an IP address");
    }

    #[test]
    fn each_client_gets_its_own_session_cache_and_offers_http1() {
        let pki = super::super::GeneratedPki::new().unwrap();
        let shared = ClientTls::new(&ClientTlsOptions { trust: pki.trust(), insecure: false }).unwrap();
        let own = shared.with_own_sessions();
        assert_ne!(shared, own);
        assert_eq!(own.config.alpn_protocols, vec![b"http/1.1".to_vec()]);
        assert_eq!(own.verification(), shared.verification());
    }
}
