//! PROTOCOL.md §1 and §4 "anything else": every INVALID_MESSAGE form, binary frames, the size
//! limit (1009), RFC 6455 framing errors (1002), invalid UTF-8 (1007) and fragmentation that
//! must not change the answer.

use super::case::{Case, Ctx, Failure, check, expect_close, send_expect};
use crate::oracle::Expectation;
use crate::probe::Conn;
use crate::protocol::ErrorCode::{InvalidMessage, SubscriptionError};
use crate::wire::{OutFrame, opcode};

const INVALID: &str = "The server MUST answer every client text message that is not valid per §4 with an `error` message \
and keep the connection open (reference code INVALID_MESSAGE, *extension*). Any other `type`, a message that is not a JSON \
object, or a missing/ill-typed field: `INVALID_MESSAGE`. (§1, §4)";
const BINARY: &str = "A **binary** client frame gets an `error` (the reference server: `INVALID_MESSAGE`, \"binary frames are \
not supported\"); the connection stays open. (§1)";
const SIZE: &str = "Maximum client message size: 64 KiB (configurable), counted over the whole message after its fragments \
are joined. Larger: close code **1009**. (§1)";
const FRAMING: &str = "Framing errors of RFC 6455 (unmasked client frame, reserved bits or opcodes, bad fragmentation, invalid \
close code) close with **1002**. (§1)";
const UTF8: &str = "Invalid UTF-8 in a text frame closes with **1007**. (§1)";
const FRAGMENTS: &str = "All application messages are UTF-8 JSON objects in text frames, one object per message (§1); a \
message fragmented per RFC 6455, with control frames between its fragments, is the same message.";

fn invalid(name: &str, text: &'static str, id: Option<&'static str>) -> Case {
    Case::new(format!("invalid.{name}"), "invalid", INVALID, move |cx| async move {
        let mut conn = cx.connect(false).await?;
        send_expect(&cx, &mut conn, text, Expectation::error(InvalidMessage, id)).await?;
        conn.close().await;
        Ok(())
    })
}

/// Sends `frames` on a fresh connection and expects a close with `code`.
fn closes(name: &str, rule: &'static str, code: u16, frames: fn(&Ctx) -> Vec<OutFrame>) -> Case {
    Case::new(name, "framing", rule, move |cx| async move {
        let mut conn = cx.connect(false).await?;
        let frames = frames(&cx);
        let sent = describe_frames(&frames);
        conn.send_frames(&frames).await;
        expect_close(&cx, &mut conn, &sent, &[Some(code)], None).await
    })
}

fn frame(fin: bool, rsv: u8, op: u8, masked: bool, payload: &[u8]) -> OutFrame {
    OutFrame { fin, rsv, opcode: op, masked, payload: payload.to_vec() }
}

pub fn describe_frames(frames: &[OutFrame]) -> String {
    frames
        .iter()
        .map(|f| {
            let text = String::from_utf8_lossy(&f.payload);
            let payload =
                if f.payload.len() > 80 { format!("{} bytes", f.payload.len()) } else { format!("{text:?}") };
            format!(
                "frame fin={} rsv={:03b} opcode={:#x} masked={} payload {payload}",
                f.fin, f.rsv, f.opcode, f.masked
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

const SUBSCRIBE: &str = r#"{"type":"subscribe","topics":["alerts"],"id":"frag"}"#;
/// Around a `device_id` filter value (any string is valid): a valid subscribe of any size.
const OVERSIZE_HEAD: &str = r#"{"type":"subscribe","topics":["alerts"],"filters":{"device_id":[""#;
const OVERSIZE_TAIL: &str = r#""]}}"#;

/// Sends `frames` (one message in pieces) and wants the subscribe's confirmation.
async fn same_answer(cx: &Ctx, frames: Vec<OutFrame>) -> Result<(), Failure> {
    let mut conn: Conn = cx.connect(false).await?;
    let observation = conn.exchange(&frames, cx.answer_wait).await;
    conn.close().await;
    let want = Expectation::confirmed("subscription_confirmed", &["alerts"], Some("frag"));
    check(cx, &describe_frames(&frames), &observation, &want)
}

pub fn cases() -> Vec<Case> {
    vec![
        invalid("not_json", "not json", None),
        invalid("truncated_json", r#"{"type":"subscribe","topics":["alerts"]"#, None),
        invalid("empty_message", "", None),
        invalid("json_array", r#"[{"type":"subscribe","topics":["alerts"]}]"#, None),
        invalid("json_string", r#""subscribe""#, None),
        invalid("json_number", "42", None),
        invalid("json_null", "null", None),
        invalid(
            "two_objects_in_one_message",
            r#"{"type":"subscribe","topics":["alerts"]}{"type":"subscribe","topics":["alerts"]}"#,
            None,
        ),
        invalid("missing_type", r#"{"topics":["alerts"],"id":"x"}"#, Some("x")),
        invalid("unknown_type", r#"{"type":"hello","id":"x"}"#, Some("x")),
        invalid("type_not_a_string", r#"{"type":["subscribe"],"topics":["alerts"],"id":"x"}"#, Some("x")),
        invalid("type_wrong_case", r#"{"type":"Subscribe","topics":["alerts"],"id":"x"}"#, Some("x")),
        invalid("type_null", r#"{"type":null,"id":"x"}"#, Some("x")),
        invalid(
            "unsubscribe_topics_an_object",
            r#"{"type":"unsubscribe","topics":{"alerts":true},"id":"x"}"#,
            Some("x"),
        ),
        Case::new("invalid.binary_frame", "invalid", BINARY, |cx| async move {
            let mut conn = cx.connect(false).await?;
            let frames = [OutFrame::new(opcode::BINARY, SUBSCRIBE)];
            let observation = conn.exchange(&frames, cx.answer_wait).await;
            conn.close().await;
            check(
                &cx,
                "binary frame carrying a valid subscribe",
                &observation,
                &Expectation::error(InvalidMessage, None),
            )
        }),
        Case::new("invalid.valid_request_after_binary_frame", "invalid", BINARY, |cx| async move {
            let mut conn = cx.connect(false).await?;
            conn.exchange(&[OutFrame::new(opcode::BINARY, vec![0xff, 0, 1])], cx.answer_wait).await;
            let want = Expectation::confirmed("subscription_confirmed", &["alerts"], Some("frag"));
            send_expect(&cx, &mut conn, SUBSCRIBE, want).await?;
            conn.close().await;
            Ok(())
        }),
        Case::new("size.at_the_limit_is_answered", "size", SIZE, |cx| async move {
            let mut conn = cx.connect(false).await?;
            let head = r#"{"type":"nonsense","id":"big","pad":""#;
            let pad = cx.max_message_bytes - head.len() - 2;
            let text = format!("{head}{}\"}}", "x".repeat(pad));
            send_expect(&cx, &mut conn, &text, Expectation::error(InvalidMessage, Some("big"))).await?;
            conn.close().await;
            Ok(())
        }),
        // A subscribe that is valid but for its size: the size rule is the only one that applies
        // (an invalid message over the limit may get its `error` instead: the rule pairs appended to docs/PROTOCOL.md).
        closes("size.over_the_limit_closes_1009", SIZE, 1009, |cx| {
            vec![OutFrame::text(format!(
                "{OVERSIZE_HEAD}{}{OVERSIZE_TAIL}",
                "x".repeat(cx.max_message_bytes)
            ))]
        }),
        closes("size.fragments_joined_over_the_limit_close_1009", SIZE, 1009, |cx| {
            let half = cx.max_message_bytes / 2 + 16;
            vec![
                frame(
                    false,
                    0,
                    opcode::TEXT,
                    true,
                    format!("{OVERSIZE_HEAD}{}", "x".repeat(half)).as_bytes(),
                ),
                frame(
                    true,
                    0,
                    opcode::CONTINUATION,
                    true,
                    format!("{}{OVERSIZE_TAIL}", "x".repeat(half)).as_bytes(),
                ),
            ]
        }),
        closes("framing.unmasked_frame_1002", FRAMING, 1002, |_| {
            vec![frame(true, 0, opcode::TEXT, false, SUBSCRIBE.as_bytes())]
        }),
        closes("framing.rsv1_set_1002", FRAMING, 1002, |_| {
            vec![frame(true, 0b100, opcode::TEXT, true, SUBSCRIBE.as_bytes())]
        }),
        closes("framing.rsv2_set_1002", FRAMING, 1002, |_| {
            vec![frame(true, 0b010, opcode::TEXT, true, SUBSCRIBE.as_bytes())]
        }),
        closes("framing.rsv3_set_1002", FRAMING, 1002, |_| {
            vec![frame(true, 0b001, opcode::TEXT, true, SUBSCRIBE.as_bytes())]
        }),
        closes("framing.reserved_data_opcode_1002", FRAMING, 1002, |_| vec![frame(true, 0, 0x3, true, b"x")]),
        closes("framing.reserved_control_opcode_1002", FRAMING, 1002, |_| {
            vec![frame(true, 0, 0xB, true, b"x")]
        }),
        closes("framing.continuation_without_start_1002", FRAMING, 1002, |_| {
            vec![frame(true, 0, opcode::CONTINUATION, true, SUBSCRIBE.as_bytes())]
        }),
        closes("framing.new_message_inside_fragmented_1002", FRAMING, 1002, |_| {
            vec![
                frame(false, 0, opcode::TEXT, true, b"{\"type\":"),
                frame(true, 0, opcode::TEXT, true, SUBSCRIBE.as_bytes()),
            ]
        }),
        closes("framing.fragmented_ping_1002", FRAMING, 1002, |_| {
            vec![frame(false, 0, opcode::PING, true, b"a"), frame(true, 0, opcode::CONTINUATION, true, b"b")]
        }),
        closes("framing.control_payload_over_125_1002", FRAMING, 1002, |_| {
            vec![frame(true, 0, opcode::PING, true, &[b'p'; 126])]
        }),
        closes("framing.close_code_999_1002", FRAMING, 1002, |_| vec![OutFrame::close(999)]),
        closes("framing.close_code_1005_1002", FRAMING, 1002, |_| vec![OutFrame::close(1005)]),
        closes("framing.close_payload_of_one_byte_1002", FRAMING, 1002, |_| {
            vec![frame(true, 0, opcode::CLOSE, true, &[3])]
        }),
        closes("utf8.invalid_text_frame_1007", UTF8, 1007, |_| {
            vec![frame(true, 0, opcode::TEXT, true, b"{\"type\":\"\xff\xfe\"}")]
        }),
        closes("utf8.lone_surrogate_bytes_1007", UTF8, 1007, |_| {
            vec![frame(true, 0, opcode::TEXT, true, b"{\"id\":\"\xed\xa0\x80\"}")]
        }),
        closes("utf8.invalid_across_fragments_1007", UTF8, 1007, |_| {
            vec![
                frame(false, 0, opcode::TEXT, true, b"{\"id\":\"\xe2\x82"),
                frame(true, 0, opcode::CONTINUATION, true, b"\"}"),
            ]
        }),
        closes("utf8.invalid_close_reason_1007", UTF8, 1007, |_| {
            vec![frame(true, 0, opcode::CLOSE, true, b"\x03\xe8\xff\xfe")]
        }),
        Case::new("fragments.three_fragments_same_answer", "framing", FRAGMENTS, |cx| async move {
            let b = SUBSCRIBE.as_bytes();
            same_answer(
                &cx,
                vec![
                    frame(false, 0, opcode::TEXT, true, &b[..10]),
                    frame(false, 0, opcode::CONTINUATION, true, &b[10..30]),
                    frame(true, 0, opcode::CONTINUATION, true, &b[30..]),
                ],
            )
            .await
        }),
        Case::new("fragments.pings_between_fragments_same_answer", "framing", FRAGMENTS, |cx| async move {
            let b = SUBSCRIBE.as_bytes();
            same_answer(
                &cx,
                vec![
                    frame(false, 0, opcode::TEXT, true, &b[..5]),
                    frame(true, 0, opcode::PING, true, b"1"),
                    frame(false, 0, opcode::CONTINUATION, true, &b[5..20]),
                    frame(true, 0, opcode::PONG, true, b"unsolicited"),
                    frame(true, 0, opcode::CONTINUATION, true, &b[20..]),
                ],
            )
            .await
        }),
        Case::new("fragments.utf8_character_split_across_fragments", "framing", FRAGMENTS, |cx| async move {
            let text = r#"{"type":"subscribe","topics":["alerts"],"id":"é"}"#.as_bytes();
            let split = text.iter().position(|&b| b == 0xc3).unwrap_or(1) + 1;
            let frames = vec![
                frame(false, 0, opcode::TEXT, true, &text[..split]),
                frame(true, 0, opcode::CONTINUATION, true, &text[split..]),
            ];
            let mut conn = cx.connect(false).await?;
            let observation = conn.exchange(&frames, cx.answer_wait).await;
            conn.close().await;
            check(
                &cx,
                &describe_frames(&frames),
                &observation,
                &Expectation::confirmed("subscription_confirmed", &["alerts"], Some("é")),
            )
        }),
        Case::new("fragments.empty_fragments_same_answer", "framing", FRAGMENTS, |cx| async move {
            same_answer(
                &cx,
                vec![
                    frame(false, 0, opcode::TEXT, true, b""),
                    frame(false, 0, opcode::CONTINUATION, true, SUBSCRIBE.as_bytes()),
                    frame(true, 0, opcode::CONTINUATION, true, b""),
                ],
            )
            .await
        }),
        Case::new("invalid.unknown_topic_error_keeps_connection_open", "invalid", INVALID, |cx| async move {
            let mut conn = cx.connect(false).await?;
            for i in 0..3 {
                let text = format!(r#"{{"type":"subscribe","topics":["nope-{i}"],"id":"n{i}"}}"#);
                let id = format!("n{i}");
                send_expect(&cx, &mut conn, &text, Expectation::error(SubscriptionError, Some(&id))).await?;
            }
            conn.close().await;
            Ok(())
        }),
    ]
}

/// Deeply nested JSON: implementation-defined, but it must be answered, in bounded time, on an open connection.
pub fn nesting_cases() -> Vec<Case> {
    [("invalid.deeply_nested_arrays_answered", 200usize, false), ("invalid.deeply_nested_filters_answered", 120, true)]
        .into_iter()
        .map(|(name, depth, in_filters)| {
            Case::new(name, "invalid", INVALID, move |cx| async move {
                let nested = format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
                let text = if in_filters {
                    format!(r#"{{"type":"subscribe","topics":["alerts"],"filters":{{"severity":{nested}}},"id":"deep"}}"#)
                } else {
                    nested
                };
                let mut conn = cx.connect(false).await?;
                let observation = conn.exchange(&[OutFrame::text(text.as_str())], cx.answer_wait).await;
                conn.close().await;
                check(&cx, &text, &observation, &Expectation::any_answer())
            })
        })
        .collect()
}
