//! The oracle of one message: what PROTOCOL.md allows a server to answer to a client message,
//! and the judgement of an observed answer against it. `conform` and `fuzz` both use it, so
//! there is one rule book and one judge.
//!
//! - [`Expectation`]: every answer that is allowed, each with the section of PROTOCOL.md
//!   (`docs/PROTOCOL.md`, same numbering) that allows it. Usually one answer; more where two
//!   rules apply to one message and the protocol does not rank them, or where a sentence leaves
//!   room (the appendix of `docs/PROTOCOL.md` lists each case);
//! - [`message`]: the expectation for a message, from [`crate::protocol::parse_client_message`]
//!   (the one reading of §4) widened by the unranked rule pairs;
//! - [`ambiguous`]: inputs whose meaning RFC 8259 leaves to the implementation;
//! - [`judge`]: an observation against an expectation, as a typed [`Mismatch`];
//! - [`upgrade`]: what a token presented on the upgrade must earn (§2).
//!
//! It sits with `probe` (whose observations it judges) and may import `probe`, `protocol`,
//! `wire` and `util`; never `conform`, `fuzz` or `runner`, which import it.

pub mod ambiguous;
pub mod judge;
pub mod message;
#[cfg(test)]
mod pairs;
pub mod upgrade;

use crate::protocol::ErrorCode;

pub use ambiguous::is_ambiguous;
pub use judge::{Mismatch, Oracle, judge};
pub use message::{expect_message, expect_strict};

/// One answer a server may give.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Exactly one `error` with this code and `id` (an extension code: any `error` when
    /// extensions are off), connection left open.
    Error { code: ErrorCode, id: Option<String> },
    /// Exactly one confirmation of this type (`subscription_confirmed` or
    /// `unsubscription_confirmed`) with these topics and `id`, connection left open.
    Confirmed { kind: &'static str, topics: Vec<String>, id: Option<String> },
    /// Exactly one `publish_ack` with this `id` (and this `delivered`, when given).
    PublishAck { id: String, delivered: Option<u64> },
    /// No answer, connection left open (a publish without `id`).
    Nothing,
    /// At most one answer, any, in bounded time, connection left open (implementation-defined input).
    AnyAnswer,
    /// The connection closes with this code.
    Close { code: u16 },
}

impl Answer {
    /// The section of PROTOCOL.md this answer rests on when nothing more specific is known.
    pub fn default_rule(&self) -> &'static str {
        match self {
            Answer::Error { code: ErrorCode::InvalidMessage, .. } => "§1",
            Answer::Error { code: ErrorCode::AuthError, .. } => "§2",
            Answer::Error { code: ErrorCode::ConnectionError, .. } => "§6",
            Answer::Error { .. } | Answer::Confirmed { .. } | Answer::PublishAck { .. } | Answer::Nothing => {
                "§4"
            }
            Answer::AnyAnswer => "§6",
            Answer::Close { code: 1008 } => "§2",
            Answer::Close { code: 1013 } => "§5.5",
            Answer::Close { .. } => "§1",
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Answer::Error { code, id } => format!("one `error` {code}{}, connection open", id_text(id)),
            Answer::Confirmed { kind, topics, id } => {
                format!("one `{kind}` with topics {topics:?}{}, connection open", id_text(id))
            }
            Answer::PublishAck { id, delivered } => format!(
                "one `publish_ack` with id {id:?}{}, connection open",
                delivered.map(|d| format!(" and delivered {d}")).unwrap_or_default()
            ),
            Answer::Nothing => "no answer, connection open".into(),
            Answer::AnyAnswer => {
                "an answer in bounded time, connection open (implementation-defined input)".into()
            }
            Answer::Close { code } => format!("close with {code}"),
        }
    }

    pub fn is_close(&self) -> bool {
        matches!(self, Answer::Close { .. })
    }

    /// Whether this answer says the message was refused (an error, a close, or anything at all).
    pub fn is_refusal(&self) -> bool {
        matches!(self, Answer::Error { .. } | Answer::Close { .. } | Answer::AnyAnswer)
    }
}

fn id_text(id: &Option<String>) -> String {
    id.as_ref().map(|id| format!(" echoing id {id:?}")).unwrap_or_else(|| " without an id".into())
}

/// An allowed answer and the section of PROTOCOL.md that allows it (`"§4"`, `"§5.5"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowed {
    pub answer: Answer,
    pub rule: &'static str,
}

/// Every answer a server may give to one message; judged as passed when it gives any of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expectation {
    /// Never empty; the first is the reference server's answer.
    pub allowed: Vec<Allowed>,
}

impl From<Answer> for Expectation {
    fn from(answer: Answer) -> Expectation {
        Expectation::one(answer)
    }
}

impl Expectation {
    /// Only `answer`, resting on its default section.
    pub fn one(answer: Answer) -> Expectation {
        let rule = answer.default_rule();
        Expectation { allowed: vec![Allowed { answer, rule }] }
    }

    /// Only `answer`, resting on `rule`.
    pub fn by(answer: Answer, rule: &'static str) -> Expectation {
        Expectation { allowed: vec![Allowed { answer, rule }] }
    }

    pub fn error(code: ErrorCode, id: Option<&str>) -> Expectation {
        Expectation::one(Answer::Error { code, id: id.map(str::to_owned) })
    }

    pub fn confirmed(kind: &'static str, topics: &[&str], id: Option<&str>) -> Expectation {
        Expectation::one(Answer::Confirmed {
            kind,
            topics: topics.iter().map(|t| (*t).to_owned()).collect(),
            id: id.map(str::to_owned),
        })
    }

    pub fn publish_ack(id: &str, delivered: Option<u64>) -> Expectation {
        Expectation::one(Answer::PublishAck { id: id.to_owned(), delivered })
    }

    pub fn nothing() -> Expectation {
        Expectation::one(Answer::Nothing)
    }

    pub fn any_answer() -> Expectation {
        Expectation::one(Answer::AnyAnswer)
    }

    pub fn close(code: u16) -> Expectation {
        Expectation::one(Answer::Close { code })
    }

    /// The same answers, each resting on `rule`.
    pub fn under(mut self, rule: &'static str) -> Expectation {
        for allowed in &mut self.allowed {
            allowed.rule = rule;
        }
        self
    }

    /// This expectation, also allowing what `other` allows (each once, in order).
    pub fn or(mut self, other: Expectation) -> Expectation {
        for allowed in other.allowed {
            if !self.allowed.iter().any(|a| a.answer == allowed.answer) {
                self.allowed.push(allowed);
            }
        }
        self
    }

    /// The reference answer (the first allowed).
    pub fn primary(&self) -> &Answer {
        &self.allowed[0].answer
    }

    pub fn allows(&self, answer: &Answer) -> bool {
        self.allowed.iter().any(|a| a.answer == *answer)
    }

    /// Whether a close with `code` is among the allowed answers.
    pub fn allows_close(&self, code: u16) -> bool {
        self.allows(&Answer::Close { code })
    }

    /// Whether some allowed answer closes the connection.
    pub fn may_close(&self) -> bool {
        self.allowed.iter().any(|a| a.answer.is_close())
    }

    /// Whether every allowed answer refuses the message.
    pub fn refuses(&self) -> bool {
        self.allowed.iter().all(|a| a.answer.is_refusal())
    }

    pub fn describe(&self) -> String {
        self.allowed.iter().map(|a| a.answer.describe()).collect::<Vec<_>>().join(", or ")
    }

    /// The sections the allowed answers rest on, each once: `"§1, §4"`.
    pub fn rules(&self) -> String {
        let mut rules: Vec<&str> = Vec::new();
        for allowed in &self.allowed {
            if !rules.contains(&allowed.rule) {
                rules.push(allowed.rule);
            }
        }
        rules.join(", ")
    }

    /// What was expected, with its sections, for reports.
    pub fn explain(&self) -> String {
        format!("{} (PROTOCOL.md {})", self.describe(), self.rules())
    }
}
