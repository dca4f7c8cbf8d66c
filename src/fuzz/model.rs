//! The oracle of one message: what PROTOCOL.md requires a server to answer to a given client
//! text (or binary) message on an open connection, and the judgement of an observation
//! against it.
//!
//! The answer comes from [`parse_client_message`], the one definition of §4's rules. Inputs
//! whose meaning RFC 8259 leaves to the implementation (duplicate keys, lone surrogate escapes,
//! numbers beyond double precision, very deep nesting, a byte-order mark) only have to get *an*
//! answer, in bounded time, on a connection left open.

use serde::{Deserialize, Serialize};

use crate::probe::{End, Observation, Received};
use crate::protocol::client::ClientMessage;
use crate::protocol::{ErrorCode, ViolationKind, parse_client_message};

/// Nesting deeper than this is implementation-defined (JSONTestSuite's `i_structure_500_nested_arrays`).
pub const AMBIGUOUS_DEPTH: usize = 100;

/// What a message must earn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "expect", rename_all = "snake_case")]
pub enum Expected {
    /// Exactly one `error` with this code (an extension code: any `error` without extensions).
    Error {
        code: ErrorCode,
        id: Option<String>,
    },
    /// Exactly one confirmation of this type.
    Confirmed {
        kind: String,
        topics: Vec<String>,
        id: Option<String>,
    },
    PublishAck {
        id: String,
    },
    /// No answer (a publish without `id`).
    Nothing,
    /// Some answer, any (implementation-defined input).
    AnyAnswer,
    /// The connection closes with this code (or with `or`, where two rules apply and
    /// PROTOCOL.md ranks neither).
    Close {
        code: u16,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        or: Option<u16>,
    },
}

impl Expected {
    /// A close with exactly `code`.
    pub fn close(code: u16) -> Expected {
        Expected::Close { code, or: None }
    }

    pub fn describe(&self) -> String {
        match self {
            Expected::Error { code, id } => format!("one `error` {code}{}, connection open", id_text(id)),
            Expected::Confirmed { kind, topics, id } => {
                format!("one `{kind}` {topics:?}{}, connection open", id_text(id))
            }
            Expected::PublishAck { id } => format!("one `publish_ack` with id {id:?}, connection open"),
            Expected::Nothing => "no answer, connection open".into(),
            Expected::AnyAnswer => {
                "an answer in bounded time, connection open (implementation-defined input)".into()
            }
            Expected::Close { code, or: None } => format!("close with {code}"),
            Expected::Close { code, or: Some(other) } => format!("close with {code} or {other}"),
        }
    }

    /// The PROTOCOL.md rule behind this expectation, quoted.
    pub fn rule(&self) -> &'static str {
        match self {
            Expected::Error { code: ErrorCode::SubscriptionError, .. } => {
                "`SUBSCRIPTION_ERROR` for a meaning error: `topics` empty, an unknown topic, … (§4); `id` is echoed when the request had one; every error carries `timestamp` (§6)"
            }
            Expected::Error { .. } => {
                "The server MUST answer every client text message that is not valid per §4 with an `error` message and keep the connection open (§1); `id` is echoed when the request had one; every error carries `timestamp` (§6)"
            }
            Expected::Confirmed { .. } => {
                "On success the answer is subscription_confirmed with the topics in the order first given, duplicates removed; `id` echoed (§4)"
            }
            Expected::PublishAck { .. } => "When `id` is present the server answers publish_ack … (§4)",
            Expected::Nothing => "without `id` it sends no answer (§4)",
            Expected::AnyAnswer => {
                "i_ inputs: a bounded-time answer, and the server keeps serving (corpus README; §6: never panics or stops serving)"
            }
            Expected::Close { code: 1007, .. } => "invalid UTF-8 in a text frame closes with 1007 (§1)",
            Expected::Close { code: 1009, or: Some(1007) } => {
                "Larger [than the size limit]: close code 1009 (§1); and invalid UTF-8 in a text frame closes with 1007 (§1): a message that breaks both may get either"
            }
            Expected::Close { code: 1009, .. } => "Larger [than the size limit]: close code 1009 (§1)",
            Expected::Close { .. } => "Framing errors of RFC 6455 … close with 1002 (§1)",
        }
    }
}

fn id_text(id: &Option<String>) -> String {
    id.as_ref().map(|id| format!(" echoing id {id:?}")).unwrap_or_else(|| " without an id".into())
}

/// The expectation for `bytes` sent as one text message (or binary when `binary`).
pub fn expect_message(bytes: &[u8], binary: bool, may_publish: bool, max_bytes: usize) -> Expected {
    if bytes.len() > max_bytes {
        // Also invalid UTF-8: a server may notice either first (one that validates each frame
        // as it arrives, RFC 6455 §8.1, can see the bad byte before the size crosses the limit).
        let invalid_text = !binary && std::str::from_utf8(bytes).is_err();
        return Expected::Close { code: 1009, or: invalid_text.then_some(1007) };
    }
    if binary {
        return Expected::Error { code: ErrorCode::InvalidMessage, id: None };
    }
    let Ok(text) = std::str::from_utf8(bytes) else { return Expected::close(1007) };
    if is_ambiguous(text) {
        return Expected::AnyAnswer;
    }
    expect_strict(text, may_publish)
}

/// The answer `parse_client_message` (the reference reading) gives, ambiguity aside.
pub fn expect_strict(text: &str, may_publish: bool) -> Expected {
    match parse_client_message(text, may_publish) {
        Ok(ClientMessage::Subscribe(s)) => Expected::Confirmed {
            kind: "subscription_confirmed".into(),
            topics: s.topics.iter().map(|t| t.name().to_owned()).collect(),
            id: s.id,
        },
        Ok(ClientMessage::Unsubscribe(u)) => Expected::Confirmed {
            kind: "unsubscription_confirmed".into(),
            topics: u.topics.iter().map(|t| t.name().to_owned()).collect(),
            id: u.id,
        },
        Ok(ClientMessage::Publish(p)) => match p.id {
            Some(id) => Expected::PublishAck { id },
            None => Expected::Nothing,
        },
        Err(rejection) => Expected::Error { code: rejection.code, id: rejection.id },
    }
}

/// Whether RFC 8259 leaves the meaning of `text` to the implementation.
pub fn is_ambiguous(text: &str) -> bool {
    if text.starts_with('\u{FEFF}') || crate::server::faults::json_depth(text) > AMBIGUOUS_DEPTH {
        return true;
    }
    let parsed: Result<serde_json::Value, _> = serde_json::from_str(text);
    match parsed {
        // serde_json refuses lone surrogates and numbers beyond f64; other parsers accept them.
        Err(_) => has_lone_surrogate_escape(text) || has_huge_number(text),
        Ok(_) => has_duplicate_keys(text) || has_huge_number(text),
    }
}

fn has_lone_surrogate_escape(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    ["\\ud8", "\\ud9", "\\uda", "\\udb", "\\udc", "\\udd", "\\ude", "\\udf"].iter().any(|p| lower.contains(p))
}

/// Numbers other parsers may read differently: more than 15 significant digits or a large exponent.
fn has_huge_number(text: &str) -> bool {
    let (mut in_string, mut escaped, mut digits, mut exponent) = (false, false, 0usize, false);
    let mut exponent_value = 0u32;
    for b in text.bytes() {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => {
                in_string = true;
                digits = 0;
            }
            b'0'..=b'9' if exponent => {
                exponent_value = exponent_value.saturating_mul(10).saturating_add(u32::from(b - b'0'));
                if exponent_value > 300 {
                    return true;
                }
            }
            b'0'..=b'9' => {
                digits += 1;
                if digits > 15 {
                    return true;
                }
            }
            b'e' | b'E' => {
                exponent = true;
                exponent_value = 0;
                digits = 0;
            }
            b'.' | b'-' | b'+' => {}
            _ => {
                digits = 0;
                exponent = false;
            }
        }
    }
    false
}

/// Whether any object in `text` (already known to be valid JSON) repeats a key.
fn has_duplicate_keys(text: &str) -> bool {
    use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
    struct Dupes;
    impl<'de> Visitor<'de> for Dupes {
        type Value = bool;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("any JSON")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
            let (mut keys, mut dupes) = (std::collections::HashSet::new(), false);
            while let Some(key) = map.next_key::<String>()? {
                dupes |= !keys.insert(key);
                dupes |= map.next_value::<Nested>()?.0;
            }
            Ok(dupes)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
            let mut dupes = false;
            while let Some(Nested(d)) = seq.next_element()? {
                dupes |= d;
            }
            Ok(dupes)
        }
        fn visit_bool<E>(self, _: bool) -> Result<bool, E> {
            Ok(false)
        }
        fn visit_i64<E>(self, _: i64) -> Result<bool, E> {
            Ok(false)
        }
        fn visit_u64<E>(self, _: u64) -> Result<bool, E> {
            Ok(false)
        }
        fn visit_f64<E>(self, _: f64) -> Result<bool, E> {
            Ok(false)
        }
        fn visit_str<E>(self, _: &str) -> Result<bool, E> {
            Ok(false)
        }
        fn visit_unit<E>(self) -> Result<bool, E> {
            Ok(false)
        }
    }
    struct Nested(bool);
    impl<'de> serde::Deserialize<'de> for Nested {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Nested, D::Error> {
            d.deserialize_any(Dupes).map(Nested)
        }
    }
    let _ = IgnoredAny;
    let mut de = serde_json::Deserializer::from_str(text);
    de.deserialize_any(Dupes).unwrap_or(false)
}

/// Which oracle a judgement broke; with the expectation, the signature of a finding.
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

/// Judges `obs` against `expected`. `extensions`: whether extension codes and answers are required.
pub fn judge(expected: &Expected, obs: &Observation, extensions: bool) -> Result<(), Mismatch> {
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
    if let Expected::Close { code, or } = expected {
        return match obs.end {
            End::Closed(Some(got)) if got == *code || Some(got) == *or => Ok(()),
            // Every caller appends what was expected (`with_expected`).
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
    let answers = &obs.answers;
    let one = |answers: &[Received]| -> Result<(), Mismatch> {
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
    };
    match expected {
        Expected::Close { .. } => {}
        Expected::AnyAnswer => {
            // Implementation-defined: at most one answer (a publish without id earns none).
            if answers.len() > 1 {
                one(answers)?;
            }
        }
        Expected::Nothing => {
            if let Some(first) = answers.first() {
                return Err(Mismatch::new(Oracle::ExtraAnswer, format!("unexpected answer {}", first.text)));
            }
        }
        Expected::Confirmed { kind, .. }
            if kind == "unsubscription_confirmed" && !extensions && answers.is_empty() => {}
        Expected::Error { code, id } => {
            one(answers)?;
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
            check_id(id.as_deref(), a)?;
        }
        Expected::Confirmed { kind, topics, id } => {
            one(answers)?;
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
            check_id(id.as_deref(), a)?;
        }
        Expected::PublishAck { id } => {
            one(answers)?;
            let a = &answers[0];
            if a.kind.as_deref() != Some("publish_ack") {
                return Err(Mismatch::new(
                    Oracle::WrongAnswer,
                    format!("expected publish_ack, got {}", a.text),
                ));
            }
            check_id(Some(id), a)?;
        }
    }
    match &obs.sentinel {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expectations_follow_section_4() {
        let e = |t: &str| expect_message(t.as_bytes(), false, false, 65536);
        assert_eq!(
            e(r#"{"type":"subscribe","topics":["nope"],"id":"x"}"#),
            Expected::Error { code: ErrorCode::SubscriptionError, id: Some("x".into()) }
        );
        assert_eq!(e("nope"), Expected::Error { code: ErrorCode::InvalidMessage, id: None });
        assert!(
            matches!(e(r#"{"type":"subscribe","topics":["alerts","alerts"]}"#), Expected::Confirmed { topics, .. } if topics == ["alerts"])
        );
        assert_eq!(expect_message(b"\xff", false, false, 65536), Expected::close(1007));
        assert_eq!(expect_message(&[b' '; 10], false, false, 5), Expected::close(1009));
        // Too large and invalid UTF-8: either rule may be the one the server applies first.
        let both = expect_message(b"[\"\xff         \"]", false, false, 5);
        assert_eq!(both, Expected::Close { code: 1009, or: Some(1007) });
        assert_eq!(
            expect_message(b"\xff\xff\xff\xff\xff\xff", true, false, 5),
            Expected::close(1009),
            "binary"
        );
        assert_eq!(
            expect_message(b"{}", true, false, 65536),
            Expected::Error { code: ErrorCode::InvalidMessage, id: None }
        );
    }

    #[test]
    fn implementation_defined_inputs_are_recognised() {
        for text in [
            r#"{"type":"subscribe","type":"unsubscribe","topics":["alerts"]}"#,
            r#"{"type":"subscribe","topics":["alerts"],"id":"\ud800"}"#,
            r#"{"type":"publish","topic":"alerts","data":{"n":1e400}}"#,
            r#"{"id":123456789012345678}"#,
            "\u{FEFF}{}",
        ] {
            assert!(is_ambiguous(text), "{text}");
        }
        for text in [
            r#"{"type":"subscribe","topics":["alerts"],"id":"\ud83d\ude00"}"#,
            r#"{"a":{"b":1},"c":{"b":2}}"#,
            "[1.5e10, 123456789012345]",
        ] {
            assert!(!is_ambiguous(text), "{text}");
        }
    }
}
