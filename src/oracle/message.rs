//! What one client message may earn. The reference answer comes from
//! [`parse_client_message`], the one reading of §4; it is widened where two rules apply to the
//! message and PROTOCOL.md ranks neither, and where a sentence leaves room. Each widening is a
//! row of the rule-pair table appended to `docs/PROTOCOL.md`, and `pairs.rs` tests each row both ways.

use serde_json::Value;

use super::{Allowed, Answer, Expectation, is_ambiguous};
use crate::protocol::client::{ClientMessage, MAX_ID_CHARS, Rejection};
use crate::protocol::{ErrorCode, ObjectView, parse_client_message};

/// The expectation for `bytes` sent as one text message (or binary when `binary`) on a
/// connection whose token has the publish scope when `may_publish`.
pub fn expect_message(bytes: &[u8], binary: bool, may_publish: bool, max_bytes: usize) -> Expectation {
    let within = expect_within_limit(bytes, binary, may_publish);
    if bytes.len() <= max_bytes {
        return within;
    }
    // "Larger: close code 1009" (§1). A message over the limit that some other rule refuses
    // (invalid UTF-8, a binary frame, an invalid message) may get that rule's answer instead:
    // PROTOCOL.md does not say which a server checks first, and one that validates each frame
    // as it arrives (RFC 6455 section 8.1) can see the bad byte before the size crosses the limit.
    let over = Expectation::by(Answer::Close { code: 1009 }, "§1");
    if within.refuses() { over.or(within) } else { over }
}

/// What a message within the size limit earns.
fn expect_within_limit(bytes: &[u8], binary: bool, may_publish: bool) -> Expectation {
    if binary {
        return Expectation::by(Answer::Error { code: ErrorCode::InvalidMessage, id: None }, "§1");
    }
    // Invalid UTF-8 closes with 1007 (§1), whatever else is wrong: RFC 6455 section 8.1 requires
    // failing the connection, so an `error` on an open connection is never right.
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Expectation::by(Answer::Close { code: 1007 }, "§1");
    };
    if is_ambiguous(text) {
        return Expectation::any_answer();
    }
    expect_strict(text, may_publish)
}

/// The answers `text` may earn, implementation-defined JSON aside.
pub fn expect_strict(text: &str, may_publish: bool) -> Expectation {
    long_id_room(text, may_publish, expect_ranked(text, may_publish))
}

/// The reference answer, and the other error when scope and the message's own error both apply.
fn expect_ranked(text: &str, may_publish: bool) -> Expectation {
    let reference = parse_client_message(text, may_publish);
    let expected = from_parse(&reference, text);
    // Scope against the message's own errors (§4 publish): "Allowed only when the token has the
    // publish scope; otherwise PERMISSION_ERROR" and "otherwise INVALID_MESSAGE" are both
    // unconditional, and no sentence says which is checked first.
    if let Err(Rejection { code: ErrorCode::PermissionError, .. }) = &reference
        && let Err(shape) = parse_client_message(text, true)
    {
        return expected.or(Expectation::by(Answer::Error { code: shape.code, id: shape.id }, "§4"));
    }
    expected
}

fn from_parse(parsed: &Result<ClientMessage<'_>, Rejection>, text: &str) -> Expectation {
    match parsed {
        Ok(ClientMessage::Subscribe(s)) => Expectation::one(Answer::Confirmed {
            kind: "subscription_confirmed",
            topics: s.topics.iter().map(|t| t.name().to_owned()).collect(),
            id: s.id.clone(),
        }),
        Ok(ClientMessage::Unsubscribe(u)) => Expectation::one(Answer::Confirmed {
            kind: "unsubscription_confirmed",
            topics: u.topics.iter().map(|t| t.name().to_owned()).collect(),
            id: u.id.clone(),
        }),
        Ok(ClientMessage::Publish(p)) => match &p.id {
            Some(id) => Expectation::one(Answer::PublishAck { id: id.clone(), delivered: None }),
            None => Expectation::nothing(),
        },
        Err(rejection) => {
            let answer = Answer::Error { code: rejection.code, id: rejection.id.clone() };
            // An invalid subscribe, unsubscribe or publish breaks a rule of §4; anything else
            // is §1's "not valid per §4" (and §4 "anything else").
            let request = ObjectView::parse(text)
                .ok()
                .and_then(|o| o.get_str("type"))
                .is_some_and(|t| matches!(&*t, "subscribe" | "unsubscribe" | "publish"));
            let rule = if request { "§4" } else { answer.default_rule() };
            Expectation::by(answer, rule)
        }
    }
}

/// The room an `id` longer than 128 characters leaves.
///
/// - §6 "`id` is echoed when the request had one": a refused message with such an id may have
///   it echoed or not (the reference server echoes only a valid id).
/// - The 128-character limit is stated for subscribe only (§4 subscribe: "`id` (optional,
///   string ≤ 128 chars)"); an unsubscribe or publish with a longer id may also get the answer
///   it would get with a short one.
fn long_id_room(text: &str, may_publish: bool, expected: Expectation) -> Expectation {
    let Ok(Value::Object(mut object)) = serde_json::from_str::<Value>(text) else { return expected };
    let long = match object.get("id") {
        Some(Value::String(id)) if id.chars().count() > MAX_ID_CHARS => id.clone(),
        _ => return expected,
    };
    let echoed: Vec<Allowed> = expected
        .allowed
        .iter()
        .filter_map(|a| match &a.answer {
            Answer::Error { code, id: None } => {
                Some(Allowed { answer: Answer::Error { code: *code, id: Some(long.clone()) }, rule: "§6" })
            }
            _ => None,
        })
        .collect();
    let mut widened = expected.or(Expectation { allowed: echoed });
    let kind = object.get("type").and_then(Value::as_str).map(str::to_owned);
    if matches!(kind.as_deref(), Some("unsubscribe" | "publish")) {
        const SHORT: &str = "long-id";
        object.insert("id".into(), Value::String(SHORT.into()));
        let short_text = Value::Object(object).to_string();
        let as_short = expect_ranked(&short_text, may_publish);
        let restored: Vec<Allowed> = as_short
            .allowed
            .into_iter()
            .map(|a| Allowed { answer: with_id(a.answer, SHORT, &long), rule: a.rule })
            .collect();
        widened = widened.or(Expectation { allowed: restored });
    }
    widened
}

/// `answer` with the placeholder id `short` put back as `long`.
fn with_id(answer: Answer, short: &str, long: &str) -> Answer {
    let swap = |id: Option<String>| if id.as_deref() == Some(short) { Some(long.to_owned()) } else { id };
    match answer {
        Answer::Error { code, id } => Answer::Error { code, id: swap(id) },
        Answer::Confirmed { kind, topics, id } => Answer::Confirmed { kind, topics, id: swap(id) },
        Answer::PublishAck { id, delivered } if id == short => {
            Answer::PublishAck { id: long.to_owned(), delivered }
        }
        other => other,
    }
}
