//! The server under test: an external URL, the bundled reference server in-process, or the
//! bundled server as a child process (`serve --addr 127.0.0.1:0`), which is what lets the
//! harness notice that the server process died and start it again. A bundled server can speak
//! TLS with a certificate generated at start (PEM files in a temporary folder for a child),
//! which the checking client trusts.
//!
//! It owns the server's lifetime and nothing else; checking is the callers' job.

use std::path::PathBuf;
use std::time::Duration;

use super::target::{Target, TargetError};
use crate::server::child::{ChildError, ServeChild, ServeCommand};
use crate::server::{self, Faults, ServerConfig, ServerHandle};
use crate::tls::{ClientTls, ClientTlsOptions, GeneratedPki};

/// Handshake deadline the harness gives the bundled server it starts, so the slowloris case
/// finishes in seconds.
pub const EMBEDDED_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a killed child server may take to be reaped.
const CHILD_STOP_GRACE: Duration = Duration::from_secs(5);

/// What to test.
#[derive(Debug, Clone)]
pub enum SutSpec {
    External(Target),
    /// The bundled server with these `--fault` specs; as a child process of `exe` when given.
    Bundled {
        faults: Vec<String>,
        secret: Vec<u8>,
        child_exe: Option<PathBuf>,
        tls: BundledTls,
    },
}

/// Whether a bundled server speaks TLS, and whether its client checks the certificate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BundledTls {
    #[default]
    Off,
    /// TLS with a generated certificate that the client verifies against the generated CA.
    On,
    /// TLS, and the client skips verification (`--insecure`).
    Insecure,
}

#[derive(Debug, thiserror::Error)]
pub enum SutError {
    #[error(transparent)]
    Faults(#[from] crate::server::faults::FaultSpecError),
    #[error(transparent)]
    Server(#[from] crate::server::ServerError),
    #[error(transparent)]
    Child(#[from] ChildError),
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error("TLS for the bundled server")]
    Tls(#[from] crate::tls::TlsError),
}

/// Why a checking command (`conform`, `fuzz`) could not begin: the server under test did not
/// start, or the target failed the preflight (one connection, TLS included, before anything else).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Server(#[from] SutError),
    #[error("target {url} is unreachable: {cause}")]
    Unreachable { url: String, cause: crate::wire::WireError },
    #[error("target {url}")]
    Tls { url: String, source: crate::tls::TlsError },
}

/// A running server under test.
pub struct Sut {
    pub target: Target,
    /// `embedded`, `child` or the URL, for reports.
    pub label: String,
    kind: Kind,
    spec: SutSpec,
}

enum Kind {
    External,
    Embedded(ServerHandle),
    Child(Box<ServeChild>),
}

impl Sut {
    /// Starts the server under test, then runs the preflight against it (waiting up to `wait`);
    /// a server that fails it is stopped again.
    pub async fn start_checked(spec: SutSpec, wait: Duration) -> Result<Sut, StartError> {
        let sut = Sut::start(spec).await?;
        match super::conn::preflight(&sut.target, wait).await {
            Ok(()) => Ok(sut),
            Err(error) => {
                let url = sut.target.url.clone();
                sut.stop().await;
                Err(match error {
                    super::conn::PreflightError::Unreachable(source) => {
                        StartError::Unreachable { url, cause: source }
                    }
                    super::conn::PreflightError::Tls(source) => StartError::Tls { url, source },
                })
            }
        }
    }

    pub async fn start(spec: SutSpec) -> Result<Sut, SutError> {
        match &spec {
            SutSpec::External(target) => {
                Ok(Sut { target: target.clone(), label: target.url.clone(), kind: Kind::External, spec })
            }
            SutSpec::Bundled { faults, secret, child_exe: None, tls } => {
                let pki = generate(*tls)?;
                let config = ServerConfig {
                    jwt_secret: secret.clone(),
                    handshake_timeout: EMBEDDED_HANDSHAKE_TIMEOUT,
                    faults: Faults::parse_all(faults)?,
                    tls: pki.as_ref().map(GeneratedPki::server_tls).transpose()?,
                    ..ServerConfig::default()
                };
                let handle = server::start(([127, 0, 0, 1], 0).into(), config).await?;
                let target = Target::parse(&handle.ws_url(), client_tls(*tls, pki.as_ref())?)?;
                let label = format!("embedded{}", tls.label());
                Ok(Sut { target, label, kind: Kind::Embedded(handle), spec })
            }
            SutSpec::Bundled { faults, secret, child_exe: Some(exe), tls } => {
                Faults::parse_all(faults)?;
                let pki = generate(*tls)?;
                let mut command = ServeCommand::new(exe, secret).args([
                    "--addr",
                    "127.0.0.1:0",
                    "--handshake-timeout",
                    "2s",
                ]);
                for fault in faults {
                    command = command.args(["--fault", fault.as_str()]);
                }
                let child = ServeChild::spawn(command, pki.as_ref()).await?;
                let target = Target::parse(child.ws_url(), client_tls(*tls, pki.as_ref())?)?;
                let label = format!("embedded (child process){}", tls.label());
                Ok(Sut { target, label, kind: Kind::Child(Box::new(child)), spec })
            }
        }
    }

    /// Whether the harness started this server (so it may restart it and watch its process).
    pub fn is_bundled(&self) -> bool {
        !matches!(self.kind, Kind::External)
    }

    /// For a child process that has exited: how it ended and its last words.
    pub fn death(&mut self) -> Option<String> {
        let Kind::Child(child) = &mut self.kind else { return None };
        child.death()
    }

    /// Resident memory of the server process, when the harness can read it.
    pub fn rss_bytes(&self) -> Option<u64> {
        match &self.kind {
            Kind::Child(child) => {
                let pid = child.pid()?;
                let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
                let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
                Some(pages * 4096)
            }
            _ => None,
        }
    }

    /// Starts a dead (or live) bundled server again, on a new port.
    pub async fn restart(&mut self) -> Result<(), SutError> {
        if !self.is_bundled() {
            return Ok(());
        }
        let old = std::mem::replace(&mut self.kind, Kind::External);
        stop_kind(old).await;
        let fresh = Sut::start(self.spec.clone()).await?;
        self.target = fresh.target;
        self.kind = fresh.kind;
        Ok(())
    }

    pub async fn stop(self) {
        stop_kind(self.kind).await;
    }
}

async fn stop_kind(kind: Kind) {
    match kind {
        Kind::External => {}
        Kind::Embedded(handle) => handle.shutdown().await,
        Kind::Child(child) => child.kill(CHILD_STOP_GRACE).await,
    }
}

impl BundledTls {
    fn label(self) -> &'static str {
        match self {
            BundledTls::Off => "",
            BundledTls::On => " over TLS",
            BundledTls::Insecure => " over TLS (certificate not verified: --insecure)",
        }
    }
}

fn generate(tls: BundledTls) -> Result<Option<GeneratedPki>, SutError> {
    Ok(if tls == BundledTls::Off { None } else { Some(GeneratedPki::new()?) })
}

/// The checking client's TLS: trusts the generated CA, or nothing is verified.
fn client_tls(tls: BundledTls, pki: Option<&GeneratedPki>) -> Result<Option<ClientTls>, SutError> {
    let Some(pki) = pki else { return Ok(None) };
    let options = ClientTlsOptions { trust: pki.trust(), insecure: tls == BundledTls::Insecure };
    Ok(Some(ClientTls::new(&options)?))
}
