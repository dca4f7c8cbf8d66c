//! A throwaway PKI made at start (`rcgen`): a CA and a server certificate it signs, valid for
//! `localhost`, `127.0.0.1` and `::1`. The bundled server presents the certificate; the run's
//! own clients trust the CA and nothing else, so verification is real (chain, name, signature)
//! without anything installed on the machine.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use super::{ServerTls, TlsError, Trust};

/// The names the generated server certificate is valid for.
pub const LOCAL_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// A generated CA and the server certificate it signed, with the server's key.
pub struct GeneratedPki {
    pub ca_der: CertificateDer<'static>,
    pub ca_pem: String,
    pub cert_der: CertificateDer<'static>,
    pub cert_pem: String,
    key_der: Vec<u8>,
    pub key_pem: String,
}

impl std::fmt::Debug for GeneratedPki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeneratedPki").finish_non_exhaustive()
    }
}

/// The PEM files of a generated PKI written to a folder.
#[derive(Debug, Clone)]
pub struct PemFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
}

impl GeneratedPki {
    /// A CA and a server certificate for [`LOCAL_NAMES`].
    pub fn new() -> Result<GeneratedPki, TlsError> {
        GeneratedPki::for_names(&LOCAL_NAMES)
    }

    /// A CA and a server certificate for `names` (DNS names or IP addresses).
    pub fn for_names(names: &[&str]) -> Result<GeneratedPki, TlsError> {
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        // A name of its own, so another run's CA is told apart by name (UnknownIssuer), not only
        // by signature.
        let tag: u32 = rand::random();
        ca_params
            .distinguished_name
            .push(DnType::CommonName, format!("openframe-harness generated CA {tag:08x}"));
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;

        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names)?;
        params.distinguished_name.push(DnType::CommonName, "openframe reference server");
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &ca)?;
        Ok(GeneratedPki {
            ca_der: ca.der().clone(),
            ca_pem: ca.pem(),
            cert_der: cert.der().clone(),
            cert_pem: cert.pem(),
            key_der: key.serialize_der(),
            key_pem: key.serialize_pem(),
        })
    }

    /// What a client must trust to accept the server certificate: the CA.
    pub fn trust(&self) -> Trust {
        Trust::Generated(vec![self.ca_der.clone()])
    }

    /// The server configuration presenting the generated certificate.
    pub fn server_tls(&self) -> Result<ServerTls, TlsError> {
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()));
        ServerTls::new(vec![self.cert_der.clone()], key)
    }

    /// Writes `cert.pem`, `key.pem` and `ca.pem` into `dir` (for `serve --tls-cert --tls-key` and
    /// `--ca-cert`).
    pub fn write_pem_files(&self, dir: &Path) -> std::io::Result<PemFiles> {
        std::fs::create_dir_all(dir)?;
        let files = PemFiles { cert: dir.join("cert.pem"), key: dir.join("key.pem"), ca: dir.join("ca.pem") };
        std::fs::write(&files.cert, &self.cert_pem)?;
        std::fs::write(&files.key, &self.key_pem)?;
        std::fs::write(&files.ca, &self.ca_pem)?;
        Ok(files)
    }
}
