//! Trusting a `--ca-cert` file the way `curl --cacert` does: every certificate in it is a trust
//! anchor for rustls's own verification (`WebPkiServerVerifier`: chain, signatures, validity,
//! name), and a server whose certificate *is* one of them is trusted as well.
//!
//! Why a verifier of our own: the certificate most people make to try TLS locally,
//! `openssl req -x509 -newkey rsa:2048 -nodes … -subj /CN=localhost -addext subjectAltName=…`,
//! is self-signed with `CA:TRUE`. webpki refuses a CA certificate as the end entity
//! (`CaUsedAsEndEntity`) even when it is the trust anchor itself, where OpenSSL (so curl) accepts
//! a trusted certificate presented as itself. [`CaFileVerifier`] asks rustls first; only when
//! rustls refuses a presented end-entity certificate that is byte-equal to one in the file does
//! it decide itself, and then it still checks the server name against the certificate's
//! subjectAltNames (rustls's `verify_server_name`) and its validity period. Handshake signatures
//! are always verified by the crypto provider, so the server must hold that certificate's key.
//!
//! It must not weaken anything else: a chain none of the file's certificates signs, an expired
//! certificate, or a certificate for another name fails as rustls says; intermediates the server
//! sends are never trusted as themselves.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{WebPkiServerVerifier, verify_server_name};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};

use super::TlsError;

/// rustls's verifier over the file's certificates, and those certificates, each also accepted as
/// the server's own.
#[derive(Debug)]
pub struct CaFileVerifier {
    chains: Arc<WebPkiServerVerifier>,
    certificates: Vec<CertificateDer<'static>>,
    provider: Arc<CryptoProvider>,
}

impl CaFileVerifier {
    /// Reads the PEM file now, so a bad `--ca-cert` is reported before anything connects: at
    /// least one certificate, each usable as a trust anchor.
    pub fn from_file(path: &Path, provider: Arc<CryptoProvider>) -> Result<CaFileVerifier, TlsError> {
        let bytes = std::fs::read(path).map_err(|source| TlsError::Read {
            what: "CA certificate file",
            path: path.to_path_buf(),
            cause: source,
        })?;
        let pem = |detail: String| TlsError::Pem { path: PathBuf::from(path), detail };
        let mut roots = RootCertStore::empty();
        let mut certificates = Vec::new();
        for cert in CertificateDer::pem_slice_iter(&bytes) {
            let cert = cert.map_err(|e| pem(format!("not a PEM certificate file: {e}")))?;
            roots.add(cert.clone()).map_err(|e| pem(format!("not a usable CA certificate: {e}")))?;
            certificates.push(cert);
        }
        if certificates.is_empty() {
            return Err(pem("holds no CERTIFICATE block".into()));
        }
        let chains = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
            .build()
            .map_err(|e| pem(format!("not usable to verify servers: {e}")))?;
        Ok(CaFileVerifier { chains, certificates, provider })
    }

    fn is_given(&self, cert: &CertificateDer<'_>) -> bool {
        self.certificates.iter().any(|given| given.as_ref() == cert.as_ref())
    }
}

impl ServerCertVerifier for CaFileVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.chains.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Ok(verified) => Ok(verified),
            // The server presents one of the file's own certificates: rustls's chain rules
            // (`CaUsedAsEndEntity` for a self-signed CA:TRUE certificate) do not apply to a
            // certificate the user trusts as it is; its name and validity still do.
            Err(_) if self.is_given(end_entity) => verify_as_itself(end_entity, server_name, now),
            Err(error) => Err(error),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }

    fn root_hint_subjects(&self) -> Option<&[DistinguishedName]> {
        self.chains.root_hint_subjects()
    }
}

/// A certificate trusted as itself: valid now, and for `server_name` (its subjectAltNames, as
/// rustls matches them; the common name is not a name, for rustls as for browsers).
fn verify_as_itself(
    cert: &CertificateDer<'_>,
    server_name: &ServerName<'_>,
    now: UnixTime,
) -> Result<ServerCertVerified, rustls::Error> {
    let parsed = ParsedCertificate::try_from(cert)?;
    let (not_before, not_after) = validity(cert).ok_or(CertificateError::BadEncoding)?;
    if now.as_secs() < not_before.as_secs() {
        return Err(CertificateError::NotValidYetContext { time: now, not_before }.into());
    }
    if now.as_secs() > not_after.as_secs() {
        return Err(CertificateError::ExpiredContext { time: now, not_after }.into());
    }
    verify_server_name(&parsed, server_name)?;
    Ok(ServerCertVerified::assertion())
}

/// The validity period (RFC 5280 §4.1.2.5) of a DER certificate; `None` if it is not one.
/// rustls keeps its own reading of it private, so it is read here.
fn validity(cert: &[u8]) -> Option<(UnixTime, UnixTime)> {
    yasna::parse_der(cert, |certificate| {
        certificate.read_sequence(|certificate| {
            let validity = certificate.next().read_sequence(|tbs| {
                // version [0] EXPLICIT DEFAULT v1
                tbs.read_optional(|r| r.read_tagged(yasna::Tag::context(0), |r| r.read_der()))?;
                for _serial_signature_issuer in 0..3 {
                    tbs.next().read_der()?;
                }
                let validity = tbs.next().read_sequence(|r| Ok((time(r.next())?, time(r.next())?)))?;
                for _subject_key in 0..2 {
                    tbs.next().read_der()?;
                }
                // issuerUniqueID, subjectUniqueID, extensions: optional.
                while tbs.read_optional(|r| r.read_der())?.is_some() {}
                Ok(validity)
            })?;
            for _signature_algorithm_value in 0..2 {
                certificate.next().read_der()?;
            }
            Ok(validity)
        })
    })
    .ok()
}

/// A `Time` (UTCTime or GeneralizedTime); a time before 1970 reads as 1970.
fn time(reader: yasna::BERReader<'_, '_>) -> yasna::ASN1Result<UnixTime> {
    let unix = if reader.lookahead_tag()? == yasna::tags::TAG_UTCTIME {
        reader.read_utctime()?.datetime().unix_timestamp()
    } else {
        reader.read_generalized_time()?.datetime().unix_timestamp()
    };
    Ok(UnixTime::since_unix_epoch(Duration::from_secs(u64::try_from(unix).unwrap_or(0))))
}

#[cfg(test)]
mod tests {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, date_time_ymd};
    use rustls::Error;

    use super::*;
    use crate::tls::{GeneratedPki, provider};

    /// A self-signed certificate as `openssl req -x509 … -addext subjectAltName=DNS:localhost,
    /// IP:127.0.0.1` makes it (CA:TRUE), valid from January 1st of `years.0` to that of `years.1`.
    fn self_signed(years: (i32, i32)) -> (CertificateDer<'static>, String) {
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.not_before = date_time_ymd(years.0, 1, 1);
        params.not_after = date_time_ymd(years.1, 1, 1);
        let cert = params.self_signed(&KeyPair::generate().unwrap()).unwrap();
        (cert.der().clone(), cert.pem())
    }

    fn verifier(pem: &str) -> CaFileVerifier {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, pem).unwrap();
        CaFileVerifier::from_file(&path, provider()).unwrap()
    }

    fn verify(verifier: &CaFileVerifier, cert: &CertificateDer<'_>, name: &str) -> Result<(), Error> {
        let name = ServerName::try_from(name).unwrap();
        verifier.verify_server_cert(cert, &[], &name, &[], UnixTime::now()).map(|_| ())
    }

    #[test]
    fn a_self_signed_ca_certificate_given_is_trusted_as_itself_for_its_names_only() {
        let (cert, pem) = self_signed((2020, 2100));
        let verifier = verifier(&pem);
        assert_eq!(verify(&verifier, &cert, "localhost"), Ok(()));
        assert_eq!(verify(&verifier, &cert, "127.0.0.1"), Ok(()));
        let error = verify(&verifier, &cert, "example.com").unwrap_err();
        assert!(
            matches!(error, Error::InvalidCertificate(CertificateError::NotValidForNameContext { .. })),
            "{error:?}"
        );
        // Another self-signed certificate for the same names is not the one given: refused as
        // rustls refuses it (CaUsedAsEndEntity: webpki checks that before looking for an issuer).
        let (other, _) = self_signed((2020, 2100));
        let error = verify(&verifier, &other, "localhost").unwrap_err();
        assert!(matches!(error, Error::InvalidCertificate(_)), "{error:?}");
    }

    #[test]
    fn a_certificate_given_is_still_refused_outside_its_validity_period() {
        let (expired, pem) = self_signed((2000, 2001));
        let error = verify(&verifier(&pem), &expired, "localhost").unwrap_err();
        assert!(
            matches!(error, Error::InvalidCertificate(CertificateError::ExpiredContext { .. })),
            "{error:?}"
        );
        let (future, pem) = self_signed((3000, 3001));
        let error = verify(&verifier(&pem), &future, "localhost").unwrap_err();
        assert!(
            matches!(error, Error::InvalidCertificate(CertificateError::NotValidYetContext { .. })),
            "{error:?}"
        );
    }

    #[test]
    fn a_ca_file_still_verifies_chains_and_only_the_presented_certificate_is_taken_as_itself() {
        let pki = GeneratedPki::new().unwrap();
        let verifier = verifier(&pki.ca_pem);
        assert_eq!(verify(&verifier, &pki.cert_der, "localhost"), Ok(()));
        let error = verify(&verifier, &pki.cert_der, "example.com").unwrap_err();
        assert!(
            matches!(error, Error::InvalidCertificate(CertificateError::NotValidForNameContext { .. })),
            "{error:?}"
        );
        // A leaf of another CA, even sent along with the trusted CA as an "intermediate".
        let other = GeneratedPki::new().unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        let sent = [pki.ca_der.clone()];
        let result = verifier.verify_server_cert(&other.cert_der, &sent, &name, &[], UnixTime::now());
        assert!(result.is_err());
    }

    #[test]
    fn the_validity_period_is_read_in_both_time_encodings() {
        // rcgen writes UTCTime up to 2049 and GeneralizedTime from 2050 on (RFC 5280).
        let (cert, _) = self_signed((2000, 2100));
        let (not_before, not_after) = validity(&cert).unwrap();
        assert_eq!(not_before.as_secs(), 946_684_800);
        assert_eq!(not_after.as_secs() as i64, date_time_ymd(2100, 1, 1).unix_timestamp());
        assert_eq!(validity(b"\x30\x03\x02\x01\x01"), None);
        assert_eq!(validity(&cert[..cert.len() - 1]), None);
    }

    #[test]
    fn a_file_without_certificates_is_refused_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.pem");
        std::fs::write(&path, "no pem here").unwrap();
        let error = CaFileVerifier::from_file(&path, provider()).unwrap_err();
        assert!(
            error.to_string().contains("empty.pem") && error.to_string().contains("no CERTIFICATE"),
            "{error}"
        );
    }
}
