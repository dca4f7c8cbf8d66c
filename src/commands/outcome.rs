//! The exit codes of CLI.md, in one place, and how an error maps to one. Library modules
//! return their own verdicts and typed errors; only `commands/` turns them into these.
//!
//! Library code returns typed errors; a command returns an [`Outcome`] when it finished, or an
//! error when it could not. [`exit_code_for`] walks the error's chain for a typed error that
//! names its code; anything unrecognised could not be carried out (3).

use std::process::ExitCode;

/// How a command that ran to its end came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every gate, case or oracle held (0).
    Passed,
    /// Something the command checks failed (1).
    Failed,
    /// The measurements cannot be trusted: the harness was the bottleneck (4).
    Untrustworthy,
    /// Stopped by SIGINT after writing what it had (130).
    Interrupted,
}

impl Outcome {
    pub fn code(self) -> u8 {
        match self {
            Outcome::Passed => 0,
            Outcome::Failed => 1,
            Outcome::Untrustworthy => 4,
            Outcome::Interrupted => 130,
        }
    }
}

impl From<Outcome> for ExitCode {
    fn from(outcome: Outcome) -> ExitCode {
        ExitCode::from(outcome.code())
    }
}

/// Bad input from the user: a flag value, a file, a scenario (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);

/// The exit code for an error that stopped a command.
pub fn exit_code_for(error: &anyhow::Error) -> u8 {
    for cause in error.chain() {
        if let Some(tls) = cause.downcast_ref::<crate::tls::TlsError>() {
            return tls.exit_code();
        }
        if let Some(live) = cause.downcast_ref::<crate::live::LiveError>() {
            return live.exit_code();
        }
        if cause.is::<BadInput>()
            || cause.is::<crate::server::faults::FaultSpecError>()
            || cause.is::<crate::scenario::ScenarioError>()
            || cause.is::<crate::report::read::ReadError>()
        {
            return 2;
        }
    }
    3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_input_is_2_and_anything_else_is_3() {
        let bad = anyhow::Error::new(BadInput("x".into())).context("reading flags");
        assert_eq!(exit_code_for(&bad), 2);
        let io = anyhow::Error::new(std::io::Error::other("refused")).context("connecting");
        assert_eq!(exit_code_for(&io), 3);
        assert_eq!(Outcome::Interrupted.code(), 130);
    }

    #[test]
    fn tls_errors_name_their_own_code_through_the_chain() {
        use crate::tls::{TlsError, TlsFailure};
        let handshake = TlsError::Handshake {
            host: "h".into(),
            failure: TlsFailure::WrongHostName,
            trust: crate::tls::TrustKind::CaFile,
            detail: "NotValidForName".into(),
        };
        let wrapped = anyhow::Error::new(handshake).context("the run could not be carried out");
        assert_eq!(exit_code_for(&wrapped), 3);
        let unreadable =
            TlsError::Read { what: "CA file", path: "ca.pem".into(), cause: std::io::Error::other("gone") };
        assert_eq!(exit_code_for(&anyhow::Error::new(unreadable).context("starting")), 2);
    }
}
