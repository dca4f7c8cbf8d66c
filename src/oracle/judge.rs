//! The judgement of one [`Observation`] against an [`Expectation`]: every server message valid
//! (as `protocol::parse_server_message` reads them), then one of the allowed answers given,
//! then the sentinel answered. A failed judgement is a typed [`Mismatch`] naming the [`Oracle`]
//! it broke; callers turn it into a conformance failure or a fuzz finding.

use serde::{Deserialize, Serialize};

use super::{Answer, Expectation};
use crate::probe::{End, Observation, Received};
use crate::protocol::{ErrorCode, ViolationKind};

/// Which oracle a judgement broke; with the expectation, the signature of a fuzz finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Oracle {
    WrongErrorCode,
    IdNotEchoed,
    WrongAnswer,
    MissingAnswer,
    ExtraAnswer,
    InvalidServerMessage,
    MissingTimestamp,
    UnexpectedClose,
    WrongCloseCode,
    NotClosed,
    Hang,
    SentinelBroken,
    ServerDied,
    LivenessLost,
    CanaryDamage,
    Growth,
    Delivery,
    Difference,
}

impl Oracle {
    /// The section of PROTOCOL.md the oracle enforces, for the oracles that judge the whole run.
    pub fn rule(self) -> &'static str {
        match self {
            Oracle::ServerDied | Oracle::LivenessLost | Oracle::Growth => "§6",
            Oracle::CanaryDamage | Oracle::Delivery => "§5",
            Oracle::Hang | Oracle::UnexpectedClose | Oracle::SentinelBroken => "§6",
            Oracle::InvalidServerMessage | Oracle::MissingTimestamp => "§6",
            Oracle::WrongCloseCode | Oracle::NotClosed => "§1",
            Oracle::Difference => "§4",
            Oracle::WrongErrorCode
            | Oracle::IdNotEchoed
            | Oracle::WrongAnswer
            | Oracle::MissingAnswer
            | Oracle::ExtraAnswer => "§4",
        }
    }
}

/// A broken oracle and what exactly was wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mismatch {
    pub oracle: Oracle,
    pub detail: String,
}

impl Mismatch {
    pub fn new(oracle: Oracle, detail: impl Into<String>) -> Mismatch {
        Mismatch { oracle, detail: detail.into() }
    }
}

/// Judges `obs` against `expected`: passes when it shows any allowed answer. `extensions`:
/// whether extension codes and answers are required.
pub fn judge(expected: &Expectation, obs: &Observation, extensions: bool) -> Result<(), Mismatch> {
    if let Some(bad) =
        obs.answers.iter().chain(&obs.events).chain(&obs.sentinel).find(|r| r.violation.is_some())
    {
        let oracle = match bad.violation_kind {
            Some(ViolationKind::MissingField) if bad.value.get("timestamp").is_none() => {
                Oracle::MissingTimestamp
            }
            _ => Oracle::InvalidServerMessage,
        };
        return Err(Mismatch::new(
            oracle,
            format!("{}: {}", bad.violation.as_deref().unwrap_or_default(), bad.text),
        ));
    }
    let mut first_miss: Option<Mismatch> = None;
    let mut fitting_miss: Option<Mismatch> = None;
    let closed = matches!(obs.end, End::Closed(_));
    for allowed in &expected.allowed {
        match judge_one(&allowed.answer, obs, extensions) {
            Ok(()) => return Ok(()),
            Err(miss) => {
                // Report the miss of an alternative of the observed kind (closed or not).
                if fitting_miss.is_none() && allowed.answer.is_close() == closed {
                    fitting_miss = Some(miss.clone());
                }
                first_miss.get_or_insert(miss);
            }
        }
    }
    Err(fitting_miss.or(first_miss).unwrap_or_else(|| Mismatch::new(Oracle::WrongAnswer, "nothing allowed")))
}

fn judge_one(answer: &Answer, obs: &Observation, extensions: bool) -> Result<(), Mismatch> {
    if let Answer::Close { code } = answer {
        return match obs.end {
            End::Closed(Some(got)) if got == *code => Ok(()),
            // Every caller appends what was expected.
            End::Closed(got) => Err(Mismatch::new(Oracle::WrongCloseCode, format!("closed with {got:?}"))),
            End::Open => Err(Mismatch::new(
                Oracle::NotClosed,
                format!("still open and answering, expected close {code}"),
            )),
            End::Silent => {
                Err(Mismatch::new(Oracle::Hang, format!("neither closed with {code} nor answered")))
            }
        };
    }
    match obs.end {
        End::Open => {}
        End::Silent => {
            return Err(Mismatch::new(Oracle::Hang, format!("no answer within {:?}", obs.elapsed)));
        }
        End::Closed(code) => {
            return Err(Mismatch::new(
                Oracle::UnexpectedClose,
                format!("connection closed ({code:?}) after {} answer(s)", obs.answers.len()),
            ));
        }
    }
    judge_answers(answer, &obs.answers, extensions)?;
    judge_sentinel(obs.sentinel.as_ref())
}

fn judge_answers(answer: &Answer, answers: &[Received], extensions: bool) -> Result<(), Mismatch> {
    match answer {
        Answer::Close { .. } => Ok(()),
        // Implementation-defined: at most one answer (a publish without id earns none).
        Answer::AnyAnswer if answers.len() > 1 => exactly_one(answers),
        Answer::AnyAnswer => Ok(()),
        Answer::Nothing => match answers.first() {
            Some(first) => {
                Err(Mismatch::new(Oracle::ExtraAnswer, format!("unexpected answer {}", first.text)))
            }
            None => Ok(()),
        },
        // The confirmation of an unsubscribe is an extension (§4).
        Answer::Confirmed { kind, .. }
            if *kind == "unsubscription_confirmed" && !extensions && answers.is_empty() =>
        {
            Ok(())
        }
        Answer::Error { code, id } => {
            exactly_one(answers)?;
            let a = &answers[0];
            if a.kind.as_deref() != Some("error") {
                return Err(Mismatch::new(
                    Oracle::WrongAnswer,
                    format!("expected an error {code}, got {}", a.text),
                ));
            }
            if a.code.as_deref() != Some(code.as_str()) && (extensions || !code.is_extension()) {
                return Err(Mismatch::new(
                    Oracle::WrongErrorCode,
                    format!("expected {code}, got {:?}", a.code),
                ));
            }
            check_id(id.as_deref(), a)
        }
        Answer::Confirmed { kind, topics, id } => {
            exactly_one(answers)?;
            let a = &answers[0];
            let got: Vec<&str> = a.value["topics"]
                .as_array()
                .map(|t| t.iter().filter_map(|x| x.as_str()).collect())
                .unwrap_or_default();
            if a.kind.as_deref() != Some(kind) || got != *topics {
                return Err(Mismatch::new(
                    Oracle::WrongAnswer,
                    format!("expected {kind} {topics:?}, got {}", a.text),
                ));
            }
            check_id(id.as_deref(), a)
        }
        Answer::PublishAck { id, delivered } => {
            exactly_one(answers)?;
            let a = &answers[0];
            if a.kind.as_deref() != Some("publish_ack") {
                return Err(Mismatch::new(
                    Oracle::WrongAnswer,
                    format!("expected publish_ack, got {}", a.text),
                ));
            }
            check_id(Some(id), a)?;
            match delivered {
                Some(n) if a.value["delivered"].as_u64() != Some(*n) => {
                    Err(Mismatch::new(Oracle::WrongAnswer, format!("expected delivered {n}, got {}", a.text)))
                }
                _ => Ok(()),
            }
        }
    }
}

fn exactly_one(answers: &[Received]) -> Result<(), Mismatch> {
    match answers.len() {
        0 => Err(Mismatch::new(Oracle::MissingAnswer, "no answer")),
        1 => Ok(()),
        n => Err(Mismatch::new(
            Oracle::ExtraAnswer,
            format!(
                "{n} answers: {}",
                answers.iter().map(|a| a.text.as_str()).collect::<Vec<_>>().join(" | ")
            ),
        )),
    }
}

/// The sentinel (a subscribe to an unknown topic with an id) must earn SUBSCRIPTION_ERROR with its id (§4, §6).
pub fn judge_sentinel(sentinel: Option<&Received>) -> Result<(), Mismatch> {
    match sentinel {
        Some(s) if s.violation.is_some() => Err(Mismatch::new(
            Oracle::InvalidServerMessage,
            format!("the follow-up unknown-topic subscribe got an invalid message: {}", s.text),
        )),
        Some(s) if s.is_error(ErrorCode::SubscriptionError.as_str()) && s.id.is_some() => Ok(()),
        Some(s) if s.id.is_none() => Err(Mismatch::new(
            Oracle::IdNotEchoed,
            format!("the follow-up unknown-topic subscribe's id was not echoed: {}", s.text),
        )),
        Some(s) => Err(Mismatch::new(
            Oracle::SentinelBroken,
            format!("the follow-up unknown-topic subscribe got {}", s.text),
        )),
        None => Ok(()),
    }
}

fn check_id(want: Option<&str>, answer: &Received) -> Result<(), Mismatch> {
    match (want, answer.id.as_deref()) {
        (a, b) if a == b => Ok(()),
        (Some(want), None) => {
            Err(Mismatch::new(Oracle::IdNotEchoed, format!("id {want:?} not echoed: {}", answer.text)))
        }
        (want, got) => Err(Mismatch::new(Oracle::WrongAnswer, format!("id {got:?} where {want:?} was due"))),
    }
}
