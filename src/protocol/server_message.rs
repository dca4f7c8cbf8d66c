//! Server → client messages (PROTOCOL.md §2–§6): the writers the reference server uses and the
//! validator the harness applies to every message a target sends.
//!
//! The validator returns a borrowed, typed view so that the runner's hot path reads each
//! received event once. It checks what PROTOCOL.md fixes for every message (type, required
//! fields and their types, RFC 3339 UTC timestamps, event `data` per §3); what a message means in
//! its context (was this error the right one?) is for the conformance cases and the oracle.
//!
//! A message is JSON by RFC 8259's grammar: a string escape that decodes to no Unicode scalar
//! value (a lone surrogate, which a server may echo from a client's own input) is read as
//! U+FFFD, not refused; [`has_lone_surrogates`] tells the callers that want to note it.

use std::borrow::Cow;

use serde::Serialize;

use super::codes::ErrorCode;
use super::data::{ObjectView, Raw, raw_array, raw_str_lossy, raw_u64};
use super::envelope::{Frame, envelope};
use super::timestamp;
use super::topic::Topic;

/// A valid server message, borrowing from the received text.
// One lives per received message and is matched at once; boxing `Event` would cost the
// harness an allocation per received event for no saving.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum ServerMessage<'a> {
    ConnectionEstablished { session_id: Cow<'a, str> },
    SubscriptionConfirmed { topics: Vec<Topic>, id: Option<Cow<'a, str>> },
    UnsubscriptionConfirmed { topics: Vec<Topic>, id: Option<Cow<'a, str>> },
    PublishAck { id: Cow<'a, str>, delivered: u64 },
    Event { topic: Topic, data: ObjectView<'a>, data_json: Raw<'a> },
    Error { code: Cow<'a, str>, message: Cow<'a, str>, id: Option<Cow<'a, str>> },
}

impl ServerMessage<'_> {
    /// The `type` this message was sent with.
    pub fn type_name(&self) -> &'static str {
        match self {
            ServerMessage::ConnectionEstablished { .. } => "connection_established",
            ServerMessage::SubscriptionConfirmed { .. } => "subscription_confirmed",
            ServerMessage::UnsubscriptionConfirmed { .. } => "unsubscription_confirmed",
            ServerMessage::PublishAck { .. } => "publish_ack",
            ServerMessage::Event { .. } => "event",
            ServerMessage::Error { .. } => "error",
        }
    }

    /// For an `error`, its code when it is one PROTOCOL.md names.
    pub fn error_code(&self) -> Option<ErrorCode> {
        match self {
            ServerMessage::Error { code, .. } => ErrorCode::from_name(code),
            _ => None,
        }
    }
}

/// What kind of rule a server message broke; the key of the harness's violation counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ViolationKind {
    NotJson,
    NotAnObject,
    UnknownType,
    MissingField,
    WrongFieldType,
    BadTimestamp,
    UnknownTopic,
    WrongEventKind,
    InvalidEventData,
    EmptyMessage,
    BinaryFrame,
}

/// A broken rule, with what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub struct Violation {
    pub kind: ViolationKind,
    pub detail: String,
}

impl Violation {
    pub fn new(kind: ViolationKind, detail: impl Into<String>) -> Violation {
        Violation { kind, detail: detail.into() }
    }
}

/// Validates one server text message against PROTOCOL.md.
pub fn parse_server_message(text: &str) -> Result<ServerMessage<'_>, Violation> {
    let object = ObjectView::parse(text).map_err(|_| {
        if super::json_scan::is_valid(text) {
            Violation::new(ViolationKind::NotAnObject, "message is not a JSON object")
        } else {
            Violation::new(ViolationKind::NotJson, "message is not valid JSON")
        }
    })?;
    let kind = required_str(&object, "type")?;
    let message = match &*kind {
        "connection_established" => {
            let session_id = required_str(&object, "session_id")?;
            if session_id.is_empty() {
                return Err(Violation::new(ViolationKind::WrongFieldType, "`session_id` is empty"));
            }
            ServerMessage::ConnectionEstablished { session_id }
        }
        "subscription_confirmed" => ServerMessage::SubscriptionConfirmed {
            topics: topics(&object)?,
            id: optional_str(&object, "id")?,
        },
        "unsubscription_confirmed" => ServerMessage::UnsubscriptionConfirmed {
            topics: topics(&object)?,
            id: optional_str(&object, "id")?,
        },
        "publish_ack" => {
            let id = required_str(&object, "id")?;
            let delivered = object.get("delivered").ok_or_else(|| missing("delivered"))?;
            let delivered = raw_u64(delivered).ok_or_else(|| {
                Violation::new(ViolationKind::WrongFieldType, "`delivered` must be a non-negative integer")
            })?;
            ServerMessage::PublishAck { id, delivered }
        }
        "event" => event(&object)?,
        "error" => {
            let code = required_str(&object, "code")?;
            let message = required_str(&object, "message")?;
            if message.is_empty() {
                return Err(Violation::new(ViolationKind::EmptyMessage, "`message` of an error is empty"));
            }
            ServerMessage::Error { code, message, id: optional_str(&object, "id")? }
        }
        other => {
            return Err(Violation::new(
                ViolationKind::UnknownType,
                format!("unknown message type {other:?}"),
            ));
        }
    };
    check_timestamp(&object)?;
    Ok(message)
}

/// Whether `text` has a string escape that decodes to no Unicode scalar value.
pub fn has_lone_surrogates(text: &str) -> bool {
    matches!(super::json_scan::replace_lone_surrogates(text), Cow::Owned(_))
}

fn event<'a>(object: &ObjectView<'a>) -> Result<ServerMessage<'a>, Violation> {
    let topic_name = required_str(object, "topic")?;
    let topic = Topic::from_name(&topic_name).ok_or_else(|| {
        Violation::new(ViolationKind::UnknownTopic, format!("unknown topic {topic_name:?}"))
    })?;
    let kind = required_str(object, "event")?;
    if kind != topic.event_kind() {
        return Err(Violation::new(
            ViolationKind::WrongEventKind,
            format!("event {kind:?} on topic {topic}, expected {:?}", topic.event_kind()),
        ));
    }
    let data_json = object.get("data").ok_or_else(|| missing("data"))?;
    let data = ObjectView::parse(data_json.get())
        .map_err(|_| Violation::new(ViolationKind::InvalidEventData, "`data` is not an object"))?;
    topic
        .validate_data(&data)
        .map_err(|e| Violation::new(ViolationKind::InvalidEventData, format!("{topic} event: {e}")))?;
    Ok(ServerMessage::Event { topic, data, data_json })
}

fn check_timestamp(object: &ObjectView<'_>) -> Result<(), Violation> {
    let stamp = required_str(object, "timestamp")?;
    if timestamp::is_rfc3339_utc(&stamp) {
        Ok(())
    } else {
        Err(Violation::new(ViolationKind::BadTimestamp, format!("timestamp {stamp:?} is not RFC 3339 UTC")))
    }
}

fn missing(field: &str) -> Violation {
    Violation::new(ViolationKind::MissingField, format!("missing `{field}`"))
}

fn required_str<'a>(object: &ObjectView<'a>, field: &str) -> Result<Cow<'a, str>, Violation> {
    optional_str(object, field)?.ok_or_else(|| missing(field))
}

fn optional_str<'a>(object: &ObjectView<'a>, field: &str) -> Result<Option<Cow<'a, str>>, Violation> {
    match object.get(field) {
        None => Ok(None),
        Some(raw) => raw_str_lossy(raw).map(Some).ok_or_else(|| {
            Violation::new(ViolationKind::WrongFieldType, format!("`{field}` must be a string"))
        }),
    }
}

fn topics(object: &ObjectView<'_>) -> Result<Vec<Topic>, Violation> {
    let raw = object.get("topics").ok_or_else(|| missing("topics"))?;
    let names: Vec<Cow<'_, str>> =
        raw_array(raw).and_then(|items| items.into_iter().map(raw_str_lossy).collect()).ok_or_else(|| {
            Violation::new(ViolationKind::WrongFieldType, "`topics` must be an array of strings")
        })?;
    names
        .iter()
        .map(|name| {
            Topic::from_name(name)
                .ok_or_else(|| Violation::new(ViolationKind::UnknownTopic, format!("unknown topic {name:?}")))
        })
        .collect()
}

// ---- writers (the reference server) ----

#[derive(Serialize)]
struct Established<'a> {
    r#type: &'static str,
    session_id: &'a str,
    timestamp: &'a str,
}

#[derive(Serialize)]
struct Confirmed<'a> {
    r#type: &'static str,
    topics: Vec<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    timestamp: &'a str,
}

#[derive(Serialize)]
struct Ack<'a> {
    r#type: &'static str,
    id: &'a str,
    delivered: u64,
    timestamp: &'a str,
}

#[derive(Serialize)]
struct ErrorOut<'a> {
    r#type: &'static str,
    code: ErrorCode,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    timestamp: &'a str,
}

fn to_json(value: &impl Serialize) -> String {
    // Serializing these structs of strings and integers cannot fail.
    serde_json::to_string(value).unwrap_or_default()
}

pub fn connection_established_json(session_id: &str) -> String {
    let timestamp = timestamp::now_rfc3339();
    to_json(&Established { r#type: "connection_established", session_id, timestamp: &timestamp })
}

pub fn subscription_confirmed_json(topics: &[Topic], id: Option<&str>) -> String {
    confirmed("subscription_confirmed", topics, id)
}

pub fn unsubscription_confirmed_json(topics: &[Topic], id: Option<&str>) -> String {
    confirmed("unsubscription_confirmed", topics, id)
}

fn confirmed(kind: &'static str, topics: &[Topic], id: Option<&str>) -> String {
    let timestamp = timestamp::now_rfc3339();
    let topics = topics.iter().map(|t| t.name()).collect();
    to_json(&Confirmed { r#type: kind, topics, id, timestamp: &timestamp })
}

pub fn publish_ack_json(id: &str, delivered: u64) -> String {
    let timestamp = timestamp::now_rfc3339();
    to_json(&Ack { r#type: "publish_ack", id, delivered, timestamp: &timestamp })
}

pub fn error_json(code: ErrorCode, message: &str, id: Option<&str>) -> String {
    let timestamp = timestamp::now_rfc3339();
    to_json(&ErrorOut { r#type: "error", code, message, id, timestamp: &timestamp })
}

/// An event message around `data_json`, which is forwarded byte for byte (§3).
pub fn event_json(topic: Topic, data_json: &str, timestamp: &str) -> String {
    envelope(Frame::Event { timestamp }, topic, data_json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everything_the_server_writes_is_valid() {
        let data = r#"{"id":"a","title":"t","severity":"low","device_id":"d","extra":[1,{"x":null}]}"#;
        let samples = [
            connection_established_json("s-1"),
            subscription_confirmed_json(&[Topic::Alerts, Topic::Devices], Some("r")),
            unsubscription_confirmed_json(&[Topic::Alerts], None),
            publish_ack_json("p\"1", 3),
            error_json(ErrorCode::AuthError, "Invalid token", None),
            event_json(Topic::Alerts, data, &timestamp::now_rfc3339()),
        ];
        for text in &samples {
            parse_server_message(text).unwrap_or_else(|v| panic!("{text}: {v}"));
        }
        let Ok(ServerMessage::Event { data_json, .. }) = parse_server_message(&samples[5]) else { panic!() };
        assert_eq!(data_json.get(), data);
    }

    #[test]
    fn lone_surrogate_escapes_are_read_by_the_grammar() {
        let text = r#"{"type":"error","code":"SUBSCRIPTION_ERROR","message":"Invalid topic: \ude00","id":"s\ud800","timestamp":"2024-03-20T10:00:00Z"}"#;
        let Ok(ServerMessage::Error { message, id, .. }) = parse_server_message(text) else {
            panic!("{text}")
        };
        assert_eq!((&*message, id.as_deref()), ("Invalid topic: \u{fffd}", Some("s\u{fffd}")));
        assert!(has_lone_surrogates(text));
        assert!(!has_lone_surrogates(r#"{"a":"\ud83d\ude00"}"#));
        let confirmed =
            r#"{"type":"subscription_confirmed","topics":["\udc00"],"timestamp":"2024-03-20T10:00:00Z"}"#;
        assert_eq!(
            parse_server_message(confirmed).map(|_| ()).unwrap_err().kind,
            ViolationKind::UnknownTopic
        );
    }

    #[test]
    fn broken_messages_are_classified() {
        let cases = [
            ("nope", ViolationKind::NotJson),
            ("[]", ViolationKind::NotAnObject),
            (r#"{"type":"hello","timestamp":"2024-03-20T10:00:00Z"}"#, ViolationKind::UnknownType),
            (r#"{"type":"error","code":"AUTH_ERROR","message":"x"}"#, ViolationKind::MissingField),
            (
                r#"{"type":"error","code":"AUTH_ERROR","message":"","timestamp":"2024-03-20T10:00:00Z"}"#,
                ViolationKind::EmptyMessage,
            ),
            (
                r#"{"type":"error","code":"AUTH_ERROR","message":"x","timestamp":"yesterday"}"#,
                ViolationKind::BadTimestamp,
            ),
            (
                r#"{"type":"publish_ack","id":"p","delivered":-1,"timestamp":"2024-03-20T10:00:00Z"}"#,
                ViolationKind::WrongFieldType,
            ),
            (
                r#"{"type":"event","topic":"alerts","event":"device_update","data":{},"timestamp":"2024-03-20T10:00:00Z"}"#,
                ViolationKind::WrongEventKind,
            ),
            (
                r#"{"type":"event","topic":"alerts","event":"alert_created","data":{"id":"a"},"timestamp":"2024-03-20T10:00:00Z"}"#,
                ViolationKind::InvalidEventData,
            ),
            (
                r#"{"type":"event","topic":"nope","event":"x","data":{},"timestamp":"2024-03-20T10:00:00Z"}"#,
                ViolationKind::UnknownTopic,
            ),
        ];
        for (text, kind) in cases {
            assert_eq!(parse_server_message(text).map(|_| ()).unwrap_err().kind, kind, "{text}");
        }
    }
}
