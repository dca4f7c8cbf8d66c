//! What `conform` and `fuzz` share on the command line: the server under test, the
//! credentials, the corpus, Ctrl-C handling and the report folder.

use std::path::PathBuf;

use tokio_util::sync::CancellationToken;

use crate::cli::CheckTargetArgs;
use crate::error::BadInput;
use crate::probe::{Credentials, SutSpec, Target};
use crate::protocol::jwt::DEFAULT_DEV_SECRET;

/// The server under test and the credentials for it, from the flags.
pub fn sut_and_credentials(args: &CheckTargetArgs) -> anyhow::Result<(SutSpec, Credentials)> {
    let secret = args.secret.jwt_secret.clone().unwrap_or_else(|| DEFAULT_DEV_SECRET.to_owned()).into_bytes();
    let creds = match &args.token_file {
        Some(path) => Credentials::from_token_file(path).map_err(|e| BadInput(e.to_string()))?,
        None => Credentials::Secret(secret.clone()),
    };
    let sut = match &args.target {
        Some(url) => {
            if !args.faults.is_empty() {
                return Err(
                    BadInput("--fault applies to the bundled server only, not to --target".into()).into()
                );
            }
            SutSpec::External(Target::parse(url).map_err(|e| BadInput(e.to_string()))?)
        }
        None => {
            crate::server::Faults::parse_all(&args.faults)?;
            let crash = args.faults.iter().any(|f| f.trim() == "crash-on-deep-nesting");
            let child_exe = if args.child_server || crash { Some(std::env::current_exe()?) } else { None };
            SutSpec::Bundled { faults: args.faults.clone(), secret, child_exe }
        }
    };
    Ok((sut, creds))
}

/// The corpus folder, or why there is none (an explicit `--corpus` that is wrong is bad input).
pub fn corpus(args: &CheckTargetArgs) -> anyhow::Result<Result<PathBuf, String>> {
    let found = crate::fuzz::corpus::locate(args.corpus.as_deref());
    if args.corpus.is_some()
        && let Err(reason) = found
    {
        return Err(BadInput(reason).into());
    }
    Ok(found)
}

/// A token cancelled by the first Ctrl-C; a second one exits at once.
pub fn cancel_on_ctrl_c() -> CancellationToken {
    let cancel = CancellationToken::new();
    let token = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("interrupted: finishing the report (Ctrl-C again to abort)");
            token.cancel();
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130);
            }
        }
    });
    cancel
}
