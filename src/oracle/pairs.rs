//! One test per row of the rule-pair table appended to `docs/PROTOCOL.md`: a message that triggers both rules, in both orders
//! (of its fields, or of where the second fault sits), and the judge accepting exactly the
//! allowed answers. The bundled server's answer is always among them (its first).

use std::time::Duration;

use super::upgrade::{Token, UpgradeAnswer, expect_upgrade, judge_accepted, judge_refused};
use super::{Expectation, expect_message, judge};
use crate::probe::{End, Observation, Received};
use crate::protocol::ErrorCode::{self, InvalidMessage, PermissionError, SubscriptionError};
use crate::protocol::server_message::{
    connection_established_json, error_json, publish_ack_json, subscription_confirmed_json,
    unsubscription_confirmed_json,
};
use crate::protocol::{Topic, parse_client_message};

const LIMIT: usize = 4096;
const STAMP: &str = "2024-03-20T10:00:00.000Z";

fn received(text: &str) -> Received {
    Received::from_text(text.to_owned())
}

/// An open connection that answered `answers` and then the sentinel.
fn open(answers: &[String]) -> Observation {
    Observation {
        answers: answers.iter().map(|a| received(a)).collect(),
        events: Vec::new(),
        sentinel: Some(received(&error_json(
            SubscriptionError,
            "Invalid topic: zz-sync-1",
            Some("zz-sync-1"),
        ))),
        end: End::Open,
        elapsed: Duration::from_millis(1),
    }
}

fn closed(code: u16) -> Observation {
    Observation {
        answers: Vec::new(),
        events: Vec::new(),
        sentinel: None,
        end: End::Closed(Some(code)),
        elapsed: Duration::from_millis(1),
    }
}

fn error(code: ErrorCode, id: Option<&str>) -> Observation {
    open(&[error_json(code, "refused", id)])
}

fn accepts(expected: &Expectation, obs: &Observation) -> bool {
    judge(expected, obs, true).is_ok()
}

/// The expectation for `text` on a connection with (or without) the publish scope.
fn expect(text: &str, may_publish: bool) -> Expectation {
    expect_message(text.as_bytes(), false, may_publish, LIMIT)
}

/// The reference server's own answer to `text` (what `server::connection` sends).
fn reference(text: &str, may_publish: bool) -> Observation {
    match parse_client_message(text, may_publish) {
        Err(r) => error(r.code, r.id.as_deref()),
        Ok(crate::protocol::ClientMessage::Subscribe(s)) => {
            open(&[subscription_confirmed_json(&s.topics, s.id.as_deref())])
        }
        Ok(crate::protocol::ClientMessage::Unsubscribe(u)) => {
            open(&[unsubscription_confirmed_json(&u.topics, u.id.as_deref())])
        }
        Ok(crate::protocol::ClientMessage::Publish(p)) => match &p.id {
            Some(id) => open(&[publish_ack_json(id, 0)]),
            None => open(&[]),
        },
    }
}

/// Checks that `expected` accepts every observation in `yes` and none in `no`, and the
/// reference server's answer to `text`.
fn exactly(text: &str, may_publish: bool, yes: &[Observation], no: &[Observation]) {
    let expected = expect(text, may_publish);
    assert!(accepts(&expected, &reference(text, may_publish)), "{text}: the bundled server's answer");
    for obs in yes {
        assert!(accepts(&expected, obs), "{text}: must accept {}", obs.describe());
    }
    for obs in no {
        assert!(!accepts(&expected, obs), "{text}: must refuse {}", obs.describe());
    }
}

#[test]
fn scope_against_shape_accepts_either_error() {
    for text in [r#"{"id":[],"type":"publish"}"#, r#"{"type":"publish","id":[]}"#] {
        exactly(
            text,
            false,
            &[error(PermissionError, None), error(InvalidMessage, None)],
            &[error(SubscriptionError, None), open(&[]), closed(1008)],
        );
    }
    for text in [r#"{"type":"publish","topic":7,"id":"p"}"#, r#"{"id":"p","topic":7,"type":"publish"}"#] {
        exactly(
            text,
            false,
            &[error(PermissionError, Some("p")), error(InvalidMessage, Some("p"))],
            &[error(InvalidMessage, None), error(PermissionError, None)],
        );
    }
}

#[test]
fn scope_against_meaning_of_a_publish_accepts_either_error() {
    for text in [
        r#"{"type":"publish","topic":"weather","event":"x","data":{},"id":"p"}"#,
        r#"{"data":{},"event":"x","topic":"weather","id":"p","type":"publish"}"#,
    ] {
        exactly(
            text,
            false,
            &[error(PermissionError, Some("p")), error(InvalidMessage, Some("p"))],
            &[error(SubscriptionError, Some("p"))],
        );
    }
}

#[test]
fn scope_alone_is_permission_error_only() {
    let data = r#"{"id":"a","title":"t","severity":"low","device_id":"d"}"#;
    for text in [
        format!(r#"{{"type":"publish","topic":"alerts","event":"alert_created","data":{data},"id":"p"}}"#),
        format!(r#"{{"id":"p","data":{data},"event":"alert_created","topic":"alerts","type":"publish"}}"#),
    ] {
        exactly(
            &text,
            false,
            &[error(PermissionError, Some("p"))],
            &[error(InvalidMessage, Some("p")), open(&[publish_ack_json("p", 0)])],
        );
    }
}

#[test]
fn shape_wins_over_meaning_in_subscribe_and_unsubscribe() {
    for text in [
        r#"{"type":"subscribe","topics":["weather"],"filters":["x"],"id":"r"}"#,
        r#"{"type":"subscribe","filters":["x"],"topics":["weather"],"id":"r"}"#,
        r#"{"type":"subscribe","topics":[],"filters":{"severity":[1]},"id":"r"}"#,
        r#"{"type":"subscribe","filters":{"severity":[1]},"topics":[],"id":"r"}"#,
        r#"{"type":"unsubscribe","topics":["weather",1],"id":"r"}"#,
        r#"{"type":"unsubscribe","topics":[1,"weather"],"id":"r"}"#,
    ] {
        exactly(text, false, &[error(InvalidMessage, Some("r"))], &[error(SubscriptionError, Some("r"))]);
    }
}

#[test]
fn unknown_or_missing_type_against_other_faults_is_invalid_message() {
    for text in [
        r#"{"type":"hello","id":"x"}"#,
        r#"{"id":"x","type":"hello"}"#,
        r#"{"topics":["weather"],"id":"x"}"#,
        r#"{"id":"x","topics":["weather"]}"#,
        r#"{"type":"Subscribe","topics":["weather"],"id":"x"}"#,
    ] {
        exactly(
            text,
            false,
            &[error(InvalidMessage, Some("x"))],
            &[error(SubscriptionError, Some("x")), error(InvalidMessage, None)],
        );
    }
}

#[test]
fn an_invalid_id_is_not_echoed_and_an_over_long_one_may_be() {
    let long = "i".repeat(129);
    for text in [
        format!(r#"{{"type":"subscribe","topics":["alerts"],"id":"{long}"}}"#),
        format!(r#"{{"id":"{long}","topics":["alerts"],"type":"subscribe"}}"#),
    ] {
        let confirmed = open(&[subscription_confirmed_json(&[Topic::Alerts], Some(&long))]);
        exactly(
            &text,
            false,
            &[error(InvalidMessage, None), error(InvalidMessage, Some(&long))],
            &[confirmed, error(SubscriptionError, None)],
        );
    }
    for text in [
        r#"{"type":"subscribe","topics":["weather"],"id":7}"#,
        r#"{"id":7,"topics":["weather"],"type":"subscribe"}"#,
    ] {
        exactly(text, false, &[error(InvalidMessage, None)], &[error(SubscriptionError, None)]);
    }
}

#[test]
fn an_over_long_id_outside_subscribe_may_be_taken_as_an_id() {
    let long = "i".repeat(129);
    for text in [
        format!(r#"{{"type":"unsubscribe","topics":["alerts"],"id":"{long}"}}"#),
        format!(r#"{{"id":"{long}","topics":["alerts"],"type":"unsubscribe"}}"#),
    ] {
        let confirmed = |id: Option<&str>| open(&[unsubscription_confirmed_json(&[Topic::Alerts], id)]);
        exactly(
            &text,
            false,
            &[error(InvalidMessage, None), error(InvalidMessage, Some(&long)), confirmed(Some(&long))],
            &[confirmed(None)],
        );
    }
    let data = r#"{"id":"a","title":"t","severity":"low","device_id":"d"}"#;
    let text = format!(
        r#"{{"type":"publish","topic":"alerts","event":"alert_created","data":{data},"id":"{long}"}}"#
    );
    exactly(&text, true, &[error(InvalidMessage, None), open(&[publish_ack_json(&long, 0)])], &[open(&[])]);
}

/// A text of exactly `len` bytes: `head`, padding, `tail`.
fn padded(head: &[u8], tail: &[u8], len: usize) -> Vec<u8> {
    let mut bytes = head.to_vec();
    bytes.resize(len - tail.len(), b'x');
    bytes.extend_from_slice(tail);
    bytes
}

#[test]
fn size_against_invalid_utf8_accepts_either_close() {
    for bytes in
        [padded(b"{\"id\":\"\xff", b"\"}", LIMIT + 10), padded(b"{\"id\":\"", b"\xff\"}", LIMIT + 10)]
    {
        let expected = expect_message(&bytes, false, false, LIMIT);
        assert!(accepts(&expected, &closed(1009)) && accepts(&expected, &closed(1007)));
        assert!(!accepts(&expected, &closed(1002)) && !accepts(&expected, &error(InvalidMessage, None)));
    }
}

#[test]
fn size_against_an_invalid_message_accepts_the_close_or_the_error() {
    for bytes in [
        padded(br#"{"type":"nonsense","id":"big","pad":""#, br#""}"#, LIMIT + 10),
        padded(br#"{"pad":""#, br#"","id":"big","type":"nonsense"}"#, LIMIT + 10),
    ] {
        let expected = expect_message(&bytes, false, false, LIMIT);
        assert!(accepts(&expected, &closed(1009)) && accepts(&expected, &error(InvalidMessage, Some("big"))));
        assert!(!accepts(&expected, &closed(1007)) && !accepts(&expected, &error(InvalidMessage, None)));
    }
    // Valid but for its size: the size rule is the only one that applies.
    for bytes in [
        padded(
            br#"{"type":"subscribe","topics":["alerts"],"filters":{"device_id":[""#,
            br#""]}}"#,
            LIMIT + 10,
        ),
        padded(
            br#"{"filters":{"device_id":[""#,
            br#""]},"topics":["alerts"],"type":"subscribe"}"#,
            LIMIT + 10,
        ),
    ] {
        let expected = expect_message(&bytes, false, false, LIMIT);
        assert!(accepts(&expected, &closed(1009)));
        assert!(!accepts(&expected, &error(InvalidMessage, None)));
        assert!(!accepts(&expected, &open(&[subscription_confirmed_json(&[Topic::Alerts], None)])));
    }
}

#[test]
fn size_against_a_binary_frame_accepts_the_close_or_the_error() {
    for bytes in [
        padded(
            br#"{"type":"subscribe","topics":["alerts"],"filters":{"device_id":[""#,
            br#""]}}"#,
            LIMIT + 10,
        ),
        padded(b"\xff\xfe", b"\x00", LIMIT + 10),
    ] {
        let expected = expect_message(&bytes, true, false, LIMIT);
        assert!(accepts(&expected, &closed(1009)) && accepts(&expected, &error(InvalidMessage, None)));
        assert!(!accepts(&expected, &closed(1007)) && !accepts(&expected, &open(&[])));
    }
}

#[test]
fn invalid_utf8_wins_over_every_message_rule() {
    for bytes in [&b"{\"type\":\"\xff\",\"id\":\"x\"}"[..], &b"{\"type\":\"nonsense\",\"id\":\"\xff\"}"[..]] {
        let expected = expect_message(bytes, false, false, LIMIT);
        assert!(accepts(&expected, &closed(1007)));
        assert!(!accepts(&expected, &error(InvalidMessage, None)) && !accepts(&expected, &closed(1002)));
    }
}

#[test]
fn an_invalid_publish_without_id_still_gets_its_error() {
    for text in [r#"{"type":"publish","topic":"weather"}"#, r#"{"topic":"weather","type":"publish"}"#] {
        exactly(text, true, &[error(InvalidMessage, None)], &[open(&[])]);
    }
}

/// A server message as an independent server may write it: the client's lone surrogate escape
/// echoed raw in `message`.
fn echoing_escape(code: ErrorCode, id: &str) -> Observation {
    open(&[format!(
        r#"{{"type":"error","code":"{code}","message":"Invalid topic: \ude00","id":"{id}","timestamp":"{STAMP}"}}"#
    )])
}

#[test]
fn implementation_defined_json_against_any_rule_gets_any_answer() {
    for text in [
        r#"{"type":"subscribe","topics":["\ude00"],"id":"s"}"#,
        r#"{"id":"s","topics":["\ude00"],"type":"subscribe"}"#,
    ] {
        exactly(
            text,
            false,
            &[
                echoing_escape(SubscriptionError, "s"),
                echoing_escape(InvalidMessage, "s"),
                error(InvalidMessage, None),
            ],
            &[
                closed(1007),
                open(&[error_json(InvalidMessage, "a", None), error_json(InvalidMessage, "b", None)]),
            ],
        );
    }
    for text in [r#"{"type":"publish","id":"p","id":[]}"#, r#"{"id":[],"id":"p","type":"publish"}"#] {
        exactly(
            text,
            false,
            &[error(PermissionError, Some("p")), error(InvalidMessage, None)],
            &[closed(1008)],
        );
    }
}

#[test]
fn a_bad_header_token_wins_over_a_good_query_token() {
    let established = received(&connection_established_json("s-1"));
    let auth_error = received(&error_json(ErrorCode::AuthError, "Invalid token", None));
    for (header, query, answer) in [
        (Token::Invalid, Token::Valid, UpgradeAnswer::AuthError),
        (Token::Valid, Token::Invalid, UpgradeAnswer::Established),
    ] {
        assert_eq!(expect_upgrade(header, query), answer, "{header:?} {query:?}");
    }
    assert!(judge_refused(std::slice::from_ref(&auth_error), End::Closed(Some(1008))).is_ok());
    assert!(judge_refused(std::slice::from_ref(&established), End::Open).is_err());
    assert!(judge_refused(&[], End::Closed(Some(1008))).is_err());
    assert!(judge_accepted(&Ok(established)).is_ok());
    assert!(judge_accepted(&Ok(auth_error)).is_err());
}
