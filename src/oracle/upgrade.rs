//! What a WebSocket upgrade must earn for the tokens it presents (§2), and the judgement of
//! what came back: `connection_established` first for an accepted token; exactly one
//! `AUTH_ERROR`, nothing else, and close 1008 for a refused one.

use super::judge::{Mismatch, Oracle};
use crate::probe::conn::is_established;
use crate::probe::{End, Received};

/// A token as presented in one place (the `Authorization` header or `?access_token=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Token {
    Absent,
    Valid,
    /// Invalid for any reason §2 lists (also an `Authorization` header that is not `Bearer`).
    Invalid,
}

/// What the upgrade must earn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpgradeAnswer {
    /// `connection_established` as the first message (§2).
    Established,
    /// Exactly one `AUTH_ERROR` "Invalid token", then close 1008 (§2).
    AuthError,
}

impl UpgradeAnswer {
    pub const RULE: &'static str = "§2";

    pub fn describe(self) -> &'static str {
        match self {
            UpgradeAnswer::Established => "connection_established as the first message (§2)",
            UpgradeAnswer::AuthError => {
                "one AUTH_ERROR \"Invalid token\" with a timestamp, then close 1008 (§2)"
            }
        }
    }
}

/// §2: the header is the way to present a token; `?access_token=` is an extension; "When both
/// are present the header wins" (so a bad header is refused whatever the query holds).
pub fn expect_upgrade(header: Token, query: Token) -> UpgradeAnswer {
    match (header, query) {
        (Token::Valid, _) | (Token::Absent, Token::Valid) => UpgradeAnswer::Established,
        _ => UpgradeAnswer::AuthError,
    }
}

/// Judges the first message after an upgrade that must be accepted.
pub fn judge_accepted(first: &Result<Received, End>) -> Result<(), Mismatch> {
    match first {
        Ok(m) if is_established(m) => Ok(()),
        Ok(m) => Err(Mismatch::new(Oracle::WrongAnswer, format!("a valid token got {}", m.text))),
        Err(end) => Err(Mismatch::new(Oracle::WrongAnswer, format!("a valid token: {}", end.describe()))),
    }
}

/// Judges everything read (until the close) after an upgrade that must be refused.
pub fn judge_refused(seen: &[Received], end: End) -> Result<(), Mismatch> {
    if let Some(m) = seen.iter().find(|m| is_established(m) || m.is_event()) {
        return Err(Mismatch::new(Oracle::WrongAnswer, format!("an invalid token was accepted: {}", m.text)));
    }
    if let Some(bad) = seen.iter().find(|m| m.violation.is_some()) {
        return Err(Mismatch::new(
            Oracle::InvalidServerMessage,
            format!("{}: {}", bad.violation.as_deref().unwrap_or_default(), bad.text),
        ));
    }
    match end {
        End::Closed(Some(1008)) => {}
        End::Closed(got) => {
            return Err(Mismatch::new(Oracle::WrongCloseCode, format!("closed with {got:?}, expected 1008")));
        }
        End::Open => return Err(Mismatch::new(Oracle::NotClosed, "still open, expected close 1008")),
        End::Silent => return Err(Mismatch::new(Oracle::Hang, "neither closed with 1008 nor answered")),
    }
    match seen {
        [m] if m.is_error("AUTH_ERROR") => Ok(()),
        _ => Err(Mismatch::new(
            Oracle::WrongAnswer,
            format!(
                "expected exactly one AUTH_ERROR before 1008, got {:?}",
                seen.iter().map(|m| &m.text).collect::<Vec<_>>()
            ),
        )),
    }
}
