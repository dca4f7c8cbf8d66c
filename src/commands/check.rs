//! What `conform` and `fuzz` share on the command line: the server under test, the
//! credentials, the corpus and the report folder.

use crate::cli::CheckTargetArgs;
use crate::commands::outcome::BadInput;
use crate::corpus::Corpus;
use crate::probe::sut::BundledTls;
use crate::probe::target::TargetError;
use crate::probe::{Credentials, SutSpec, Target};
use crate::protocol::jwt::DEFAULT_DEV_SECRET;
use crate::tls::{ClientTls, ClientTlsOptions, Trust};

/// Printed when certificate verification is off (`--insecure`).
pub const INSECURE_WARNING: &str = "WARNING: --insecure: the target's TLS certificate is NOT verified; \
     anything could be answering. Recorded in the report (tls.insecure = true).";

/// The server under test and the credentials for it, from the flags.
pub fn sut_and_credentials(args: &CheckTargetArgs) -> anyhow::Result<(SutSpec, Credentials)> {
    let secret = args.secret.jwt_secret.clone().unwrap_or_else(|| DEFAULT_DEV_SECRET.to_owned()).into_bytes();
    let creds = match &args.token_file {
        Some(path) => Credentials::from_token_file(path).map_err(|e| BadInput(e.to_string()))?,
        None => Credentials::Secret(secret.clone()),
    };
    if args.tls.insecure {
        eprintln!("{INSECURE_WARNING}");
    }
    let sut = match &args.target {
        Some(url) => {
            if !args.faults.is_empty() {
                return Err(
                    BadInput("--fault applies to the bundled server only, not to --target".into()).into()
                );
            }
            let tls = if url.starts_with("wss://") {
                let trust = args.tls.ca_cert.clone().map_or(Trust::Platform, Trust::CaFile);
                Some(ClientTls::new(&ClientTlsOptions { trust, insecure: args.tls.insecure })?)
            } else {
                None
            };
            let target = Target::parse(url, tls).map_err(|e| match e {
                TargetError::Invalid(_) => anyhow::Error::new(BadInput(e.to_string())),
                TargetError::Tls(tls) => anyhow::Error::new(tls),
            })?;
            SutSpec::External(target)
        }
        None => {
            crate::server::Faults::parse_all(&args.faults)?;
            let crash = args.faults.iter().any(|f| f.trim() == "crash-on-deep-nesting");
            let child_exe = if args.child_server || crash { Some(std::env::current_exe()?) } else { None };
            if args.tls.ca_cert.is_some() {
                return Err(BadInput(
                    "--ca-cert is for --target wss://…; the bundled server's generated certificate is trusted already"
                        .into(),
                )
                .into());
            }
            let tls = match (args.bundled_tls, args.tls.insecure) {
                (false, _) => BundledTls::Off,
                (true, false) => BundledTls::On,
                (true, true) => BundledTls::Insecure,
            };
            SutSpec::Bundled { faults: args.faults.clone(), secret, child_exe, tls }
        }
    };
    Ok((sut, creds))
}

/// The seed corpus: `--corpus DIR`, else the one built into the binary (a `--corpus` folder
/// that cannot be used is bad input).
pub fn corpus(args: &CheckTargetArgs) -> anyhow::Result<Corpus> {
    Corpus::load(args.corpus.as_deref()).map_err(|e| BadInput(e.to_string()).into())
}
