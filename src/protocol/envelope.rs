//! The one place an event's data is framed: `"topic"`, `"event"` and `"data"` in that order,
//! with what each frame adds around them — a `publish` over the WebSocket (§4.4), the body of
//! `POST /v1/events` (§4.5), and the server's `event` (§3). The data is written byte for byte as
//! given (the server forwards it untouched), so it must already be a JSON object; this module
//! never parses or checks it.

use super::topic::Topic;

/// Which message carries the data, with what that message adds.
#[derive(Debug, Clone, Copy)]
pub enum Frame<'a> {
    /// `{"type":"publish",…}` from a client, with its optional correlation `id`.
    Publish { id: Option<&'a str> },
    /// The body of an HTTP publish: the same fields without a `type`.
    HttpBody,
    /// `{"type":"event",…}` from the server, stamped when it was sent.
    Event { timestamp: &'a str },
}

/// `frame` around `data_json` for `topic`.
pub fn envelope(frame: Frame<'_>, topic: Topic, data_json: &str) -> String {
    let mut out = String::with_capacity(data_json.len() + 100);
    out.push('{');
    match frame {
        Frame::Publish { .. } => out.push_str(r#""type":"publish","#),
        Frame::Event { .. } => out.push_str(r#""type":"event","#),
        Frame::HttpBody => {}
    }
    out.push_str(r#""topic":""#);
    out.push_str(topic.name());
    out.push_str(r#"","event":""#);
    out.push_str(topic.event_kind());
    out.push_str(r#"","data":"#);
    out.push_str(data_json);
    match frame {
        Frame::Publish { id: Some(id) } => {
            out.push_str(r#","id":"#);
            out.push_str(&serde_json::Value::from(id).to_string());
        }
        Frame::Event { timestamp } => {
            out.push_str(r#","timestamp":""#);
            out.push_str(timestamp);
            out.push('"');
        }
        Frame::Publish { id: None } | Frame::HttpBody => {}
    }
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_frame_adds_only_its_own_fields() {
        let data = r#"{"id":"a"}"#;
        assert_eq!(
            envelope(Frame::Publish { id: Some("p\"1") }, Topic::Alerts, data),
            r#"{"type":"publish","topic":"alerts","event":"alert_created","data":{"id":"a"},"id":"p\"1"}"#
        );
        assert_eq!(
            envelope(Frame::HttpBody, Topic::Devices, data),
            r#"{"topic":"devices","event":"device_update","data":{"id":"a"}}"#
        );
        assert_eq!(
            envelope(Frame::Event { timestamp: "2026-01-01T00:00:00Z" }, Topic::Alerts, data),
            r#"{"type":"event","topic":"alerts","event":"alert_created","data":{"id":"a"},"timestamp":"2026-01-01T00:00:00Z"}"#
        );
    }
}
