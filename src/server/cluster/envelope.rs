//! What one process sends another through the broker: an event frame, already serialized as
//! every subscriber will get it, behind a one-line header that says which process accepted it
//! and which answer (if any) waits for it there.
//!
//! ```text
//! 8c1f0a2be44d9e01 17\n{"type":"event","topic":"alerts","event":"alert_created","data":{…},"timestamp":"…"}
//! ^origin (16 hex)  ^ticket (0: nobody waits)
//! ```
//!
//! The frame carries its topic and `data`, so a receiver judges filters from the very text it
//! forwards. Broker messages are input from a peer: decoding never panics, it refuses.

use crate::protocol::{ObjectView, Topic};

/// The header and frame of one event on the wire.
pub fn encode(origin: u64, ticket: u64, frame: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(frame.len() + 40);
    out.extend_from_slice(format!("{origin:016x} {ticket}\n").as_bytes());
    out.extend_from_slice(frame.as_bytes());
    out
}

/// A decoded envelope, borrowing its frame from the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Envelope<'a> {
    pub origin: u64,
    pub ticket: u64,
    pub frame: &'a [u8],
}

/// Splits a broker message into header and frame; `None` when it is not an envelope.
pub fn decode(message: &[u8]) -> Option<Envelope<'_>> {
    let newline = message.iter().position(|&b| b == b'\n')?;
    let header = std::str::from_utf8(&message[..newline]).ok()?;
    let (origin, ticket) = header.split_once(' ')?;
    if origin.len() != 16 {
        return None;
    }
    Some(Envelope {
        origin: u64::from_str_radix(origin, 16).ok()?,
        ticket: ticket.parse().ok()?,
        frame: &message[newline + 1..],
    })
}

/// The topic and `data` of an event frame; `None` when the frame is not an event of a known topic.
pub fn event_parts(frame: &str) -> Option<(Topic, ObjectView<'_>)> {
    let event = ObjectView::parse(frame).ok()?;
    if event.get_str("type").as_deref() != Some("event") {
        return None;
    }
    let topic = Topic::from_name(&event.get_str("topic")?)?;
    let data = ObjectView::parse(event.get("data")?.get()).ok()?;
    Some((topic, data))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::server_message::event_json;

    #[test]
    fn an_envelope_round_trips_and_its_frame_yields_topic_and_data() {
        let frame =
            event_json(Topic::Alerts, r#"{"severity":"high","x":[1,{"y":null}]}"#, "2026-01-01T00:00:00Z");
        let bytes = encode(0x8c1f_0a2b_e44d_9e01, 17, &frame);
        let envelope = decode(&bytes).unwrap();
        assert_eq!((envelope.origin, envelope.ticket), (0x8c1f_0a2b_e44d_9e01, 17));
        assert_eq!(envelope.frame, frame.as_bytes());
        let (topic, data) = event_parts(std::str::from_utf8(envelope.frame).unwrap()).unwrap();
        assert_eq!(topic, Topic::Alerts);
        assert_eq!(data.get_str("severity").as_deref(), Some("high"));
    }

    #[test]
    fn anything_else_is_refused_without_a_panic() {
        for message in [&b""[..], b"no newline", b"xyz 1\n{}", b"0000000000000001 -1\n{}", b"\xff\xfe 1\n{}"]
        {
            assert_eq!(decode(message), None, "{message:?}");
        }
        for frame in [
            "",
            "[]",
            r#"{"type":"error"}"#,
            r#"{"type":"event","topic":"nope","data":{}}"#,
            r#"{"type":"event","topic":"alerts","data":5}"#,
        ] {
            assert!(event_parts(frame).is_none(), "{frame}");
        }
    }
}
