//! PROTOCOL.md §1: transport. Framing errors are sent with the raw client of `wire`, since a
//! well-behaved client library refuses to produce them.

use std::time::{Duration, Instant};

use openframe_harness::protocol::close;
use openframe_harness::wire::{OutFrame, Read, opcode};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::{ANSWER, TestServer, config_with};

const LIMIT: usize = 64 * 1024;

/// A subscribe message padded with an `id`-free extra member to exactly `len` bytes.
fn subscribe_of_len(len: usize) -> String {
    let head = r#"{"type":"subscribe","topics":["alerts"],"pad":""#;
    let tail = r#""}"#;
    let pad = len - head.len() - tail.len();
    format!("{head}{}{tail}", "x".repeat(pad))
}

fn frame(fin: bool, rsv: u8, op: u8, payload: &[u8]) -> OutFrame {
    OutFrame { fin, rsv, opcode: op, masked: true, payload: payload.to_vec() }
}

/// Sends `frames` on a fresh authenticated raw connection and returns the server's close code.
async fn close_code_after(server: &TestServer, frames: &[OutFrame]) -> Option<u16> {
    let mut raw = server.raw_client().await;
    for f in frames {
        raw.send(f).await.expect("send");
    }
    raw.read_close(ANSWER).await.expect("read")
}

#[tokio::test]
async fn transport_invalid_text_message_gets_an_error_and_the_connection_stays_open() {
    let server = TestServer::spawn().await;
    let mut client = server.client().await;
    let error = client.error_for("hello").await;
    assert_eq!(error["code"], "INVALID_MESSAGE");
    client.assert_still_serving().await;
}

#[tokio::test]
async fn transport_binary_frame_gets_invalid_message_and_the_connection_stays_open() {
    let server = TestServer::spawn().await;
    let mut raw = server.raw_client().await;
    raw.send(&OutFrame::new(opcode::BINARY, br#"{"type":"subscribe","topics":["alerts"]}"#.to_vec()))
        .await
        .unwrap();
    let error: serde_json::Value =
        serde_json::from_str(&raw.read_text(ANSWER).await.unwrap().expect("an answer")).unwrap();
    assert_eq!(error["type"], "error");
    assert_eq!(error["code"], "INVALID_MESSAGE");
    assert_eq!(error["message"], "binary frames are not supported");
    raw.send(&OutFrame::text(r#"{"type":"subscribe","topics":["alerts"],"id":"after"}"#)).await.unwrap();
    let answer = raw.read_text(ANSWER).await.unwrap().expect("still open");
    assert!(answer.contains("subscription_confirmed") && answer.contains("after"), "{answer}");
}

#[tokio::test]
async fn transport_message_of_exactly_the_limit_is_accepted() {
    let server = TestServer::spawn().await;
    let mut client = server.client().await;
    client.send_text(&subscribe_of_len(LIMIT)).await;
    assert_eq!(client.recv().await["type"], "subscription_confirmed");
}

#[tokio::test]
async fn transport_single_frame_over_64_kib_closes_1009() {
    let server = TestServer::spawn().await;
    let code = close_code_after(&server, &[OutFrame::text(subscribe_of_len(LIMIT + 1))]).await;
    assert_eq!(code, Some(close::MESSAGE_TOO_BIG));
}

#[tokio::test]
async fn transport_message_over_64_kib_after_joining_fragments_closes_1009() {
    let server = TestServer::spawn().await;
    let text = subscribe_of_len(LIMIT + 1);
    let (a, rest) = text.as_bytes().split_at(30_000);
    let (b, c) = rest.split_at(30_000);
    let frames = [
        frame(false, 0, opcode::TEXT, a),
        frame(false, 0, opcode::CONTINUATION, b),
        frame(true, 0, opcode::CONTINUATION, c),
    ];
    assert_eq!(close_code_after(&server, &frames).await, Some(close::MESSAGE_TOO_BIG));
}

#[tokio::test]
async fn transport_fragmented_message_within_the_limit_is_joined_and_answered() {
    let server = TestServer::spawn().await;
    let mut raw = server.raw_client().await;
    let text = br#"{"type":"subscribe","topics":["alerts"],"id":"frag"}"#;
    raw.send(&frame(false, 0, opcode::TEXT, &text[..10])).await.unwrap();
    // A control frame may come between fragments (RFC 6455 §5.4).
    raw.send(&OutFrame::new(opcode::PING, b"mid".to_vec())).await.unwrap();
    raw.send(&frame(false, 0, opcode::CONTINUATION, &text[10..20])).await.unwrap();
    raw.send(&frame(true, 0, opcode::CONTINUATION, &text[20..])).await.unwrap();
    let answer = raw.read_text(ANSWER).await.unwrap().expect("an answer");
    assert!(answer.contains("subscription_confirmed") && answer.contains("frag"), "{answer}");
}

#[tokio::test]
async fn transport_no_compression_extension_is_negotiated() {
    let server = TestServer::spawn().await;
    let bearer = format!("Bearer {}", server.token(false));
    let (_raw, response) = server
        .raw_upgrade(
            "/v1/ws",
            &[
                ("Authorization", &bearer),
                ("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits"),
            ],
        )
        .await;
    assert_eq!(response.status, 101);
    assert_eq!(response.header("sec-websocket-extensions"), None);
}

#[tokio::test]
async fn transport_unmasked_client_frame_closes_1002() {
    let server = TestServer::spawn().await;
    let unmasked =
        OutFrame { masked: false, ..OutFrame::text(r#"{"type":"subscribe","topics":["alerts"]}"#) };
    assert_eq!(close_code_after(&server, &[unmasked]).await, Some(close::PROTOCOL_ERROR));
}

#[tokio::test]
async fn transport_reserved_bits_close_1002() {
    let server = TestServer::spawn().await;
    for rsv in [0b100, 0b010, 0b001] {
        let f = frame(true, rsv, opcode::TEXT, br#"{"type":"subscribe","topics":["alerts"]}"#);
        assert_eq!(close_code_after(&server, &[f]).await, Some(close::PROTOCOL_ERROR), "rsv {rsv:03b}");
    }
}

#[tokio::test]
async fn transport_reserved_opcodes_close_1002() {
    let server = TestServer::spawn().await;
    for op in [0x3, 0x7, 0xB, 0xF] {
        let code = close_code_after(&server, &[frame(true, 0, op, b"x")]).await;
        assert_eq!(code, Some(close::PROTOCOL_ERROR), "opcode {op:#x}");
    }
}

#[tokio::test]
async fn transport_bad_fragmentation_closes_1002() {
    let server = TestServer::spawn().await;
    let cases: [(&str, Vec<OutFrame>); 3] = [
        ("continuation without a start", vec![frame(true, 0, opcode::CONTINUATION, b"{}")]),
        (
            "a new message inside a fragmented one",
            vec![frame(false, 0, opcode::TEXT, b"{\"a\":"), frame(true, 0, opcode::TEXT, b"{}")],
        ),
        ("a fragmented control frame", vec![frame(false, 0, opcode::PING, b"x")]),
    ];
    for (what, frames) in cases {
        assert_eq!(close_code_after(&server, &frames).await, Some(close::PROTOCOL_ERROR), "{what}");
    }
}

#[tokio::test]
async fn transport_invalid_close_code_closes_1002() {
    let server = TestServer::spawn().await;
    for payload in
        [vec![0x03, 0xE7], 1005u16.to_be_bytes().to_vec(), 1006u16.to_be_bytes().to_vec(), vec![0x03]]
    {
        let code = close_code_after(&server, &[OutFrame::new(opcode::CLOSE, payload.clone())]).await;
        assert_eq!(code, Some(close::PROTOCOL_ERROR), "close payload {payload:?}");
    }
}

#[tokio::test]
async fn transport_valid_close_from_the_client_is_echoed() {
    let server = TestServer::spawn().await;
    assert_eq!(close_code_after(&server, &[OutFrame::close(1000)]).await, Some(1000));
}

#[tokio::test]
async fn transport_invalid_utf8_text_closes_1007() {
    let server = TestServer::spawn().await;
    let single = [frame(true, 0, opcode::TEXT, b"{\"type\":\"\xff\xfe\"}")];
    assert_eq!(close_code_after(&server, &single).await, Some(close::INVALID_PAYLOAD));
    // A code point split across fragments is fine; an invalid sequence across them is not.
    let split_bad = [frame(false, 0, opcode::TEXT, b"{\"a\":\"\xe2\x82"), frame(true, 0, 0, b"\x28\"}")];
    assert_eq!(close_code_after(&server, &split_bad).await, Some(close::INVALID_PAYLOAD));
}

#[tokio::test]
async fn transport_client_ping_is_answered_with_a_pong_of_the_same_payload() {
    let server = TestServer::spawn().await;
    let mut raw = server.raw_client().await;
    raw.send(&OutFrame::new(opcode::PING, b"are-you-there".to_vec())).await.unwrap();
    match raw.read(ANSWER).await.unwrap() {
        Read::Frame(f) => {
            assert_eq!(f.opcode, opcode::PONG);
            assert_eq!(f.payload, b"are-you-there");
        }
        other => panic!("expected a pong, got {other:?}"),
    }
}

#[tokio::test]
async fn transport_server_pings_and_a_client_that_answers_stays_open() {
    let ping_interval = Duration::from_millis(100);
    let server = TestServer::spawn_with(config_with(|c| c.ping_interval = ping_interval)).await;
    let mut raw = server.raw_client().await;
    let mut pings = 0;
    let deadline = Instant::now() + ping_interval * 6;
    while Instant::now() < deadline {
        match raw.read(deadline - Instant::now()).await.unwrap() {
            Read::Frame(f) if f.opcode == opcode::PING => {
                pings += 1;
                raw.send(&OutFrame::new(opcode::PONG, f.payload)).await.unwrap();
            }
            Read::TimedOut => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(pings >= 4, "only {pings} pings in {:?}", ping_interval * 6);
    raw.send(&OutFrame::text(r#"{"type":"subscribe","topics":["alerts"],"id":"alive"}"#)).await.unwrap();
    let answer = raw.read_text(ANSWER).await.unwrap().expect("still open");
    assert!(answer.contains("subscription_confirmed"), "{answer}");
}

#[tokio::test]
async fn transport_client_that_never_pongs_is_closed_1001_after_two_pings() {
    let ping_interval = Duration::from_millis(100);
    let server = TestServer::spawn_with(config_with(|c| c.ping_interval = ping_interval)).await;
    let mut raw = server.raw_client().await;
    let started = Instant::now();
    let mut pings = 0;
    let code = loop {
        match raw.read(ANSWER).await.unwrap() {
            Read::Frame(f) if f.opcode == opcode::PING => pings += 1,
            Read::Frame(f) if f.opcode == opcode::CLOSE => break f.close_code(),
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(code, Some(close::GOING_AWAY));
    assert_eq!(pings, 2, "closed after {pings} unanswered pings");
    assert!(started.elapsed() >= ping_interval * 2, "closed too early: {:?}", started.elapsed());
    assert!(
        started.elapsed() < ping_interval * 3 + Duration::from_secs(1),
        "closed late: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn transport_handshake_deadline_drops_a_silent_or_half_sent_request() {
    let deadline = Duration::from_millis(200);
    let server = TestServer::spawn_with(config_with(|c| c.handshake_timeout = deadline)).await;
    let half = format!("GET /v1/ws HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\n", server.addr());
    for sent in ["", half.as_str()] {
        let mut stream = TcpStream::connect(server.addr()).await.unwrap();
        stream.write_all(sent.as_bytes()).await.unwrap();
        let started = Instant::now();
        let mut buf = [0u8; 256];
        let read =
            tokio::time::timeout(ANSWER, stream.read(&mut buf)).await.expect("dropped within the deadline");
        assert!(matches!(read, Ok(0) | Err(_)), "expected the connection dropped, got {read:?}");
        assert!(started.elapsed() < deadline + Duration::from_secs(1), "{:?}", started.elapsed());
    }
}

#[tokio::test]
async fn transport_handshake_deadline_is_not_extended_by_dribbling_bytes() {
    let deadline = Duration::from_millis(300);
    let server = TestServer::spawn_with(config_with(|c| c.handshake_timeout = deadline)).await;
    let mut stream = TcpStream::connect(server.addr()).await.unwrap();
    let request =
        b"GET /v1/ws HTTP/1.1\r\nHost: localhost\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let started = Instant::now();
    for byte in request {
        if stream.write_all(&[*byte]).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        if started.elapsed() > deadline * 4 {
            break;
        }
    }
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(ANSWER, stream.read(&mut buf)).await.expect("dropped");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    assert!(
        started.elapsed() < deadline * 4,
        "a dribbling client kept the connection for {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn transport_handshake_deadline_does_not_cut_an_upgraded_connection() {
    let deadline = Duration::from_millis(100);
    let server = TestServer::spawn_with(config_with(|c| c.handshake_timeout = deadline)).await;
    let mut client = server.client().await;
    tokio::time::sleep(deadline * 3).await;
    client.assert_still_serving().await;
}

#[tokio::test]
async fn transport_other_paths_answer_404() {
    let server = TestServer::spawn().await;
    for (method, path) in [
        ("GET", "/"),
        ("GET", "/v1"),
        ("GET", "/v1/ws/extra"),
        ("GET", "/v2/ws"),
        ("GET", "/healthz/x"),
        ("GET", "/v1/events"),
        ("POST", "/healthz"),
        ("PUT", "/v1/events"),
    ] {
        let (status, _) = crate::common::http_request(&server.addr(), method, path, &[], "").await;
        assert_eq!(status, 404, "{method} {path}");
    }
}

#[tokio::test]
async fn transport_messages_are_text_frames_holding_one_json_object() {
    let server = TestServer::spawn().await;
    let mut raw = server.raw_client().await;
    raw.send(&OutFrame::text(json!({"type": "subscribe", "topics": ["alerts"]}).to_string())).await.unwrap();
    let Read::Frame(f) = raw.read(ANSWER).await.unwrap() else { panic!("no answer") };
    assert_eq!(f.opcode, opcode::TEXT);
    assert!(f.fin);
    let value: serde_json::Value = serde_json::from_slice(&f.payload).expect("JSON");
    assert!(value.is_object());
}

#[tokio::test]
async fn transport_control_frame_over_125_bytes_closes_1002() {
    let server = TestServer::spawn().await;
    let code = close_code_after(&server, &[OutFrame::new(opcode::PING, vec![b'x'; 126])]).await;
    assert_eq!(code, Some(close::PROTOCOL_ERROR));
}

#[tokio::test]
async fn transport_64_bit_length_with_the_top_bit_set_closes_1002() {
    let server = TestServer::spawn().await;
    let mut raw = server.raw_client().await;
    // FIN + text, masked, 127 = 64-bit length whose most significant bit is set (RFC 6455 §5.2).
    let mut bytes = vec![0x81, 0x80 | 127];
    bytes.extend_from_slice(&(1u64 << 63 | 5).to_be_bytes());
    bytes.extend_from_slice(&[1, 2, 3, 4]);
    bytes.extend_from_slice(b"hello");
    raw.send_bytes(&bytes).await.unwrap();
    assert_eq!(raw.read_close(ANSWER).await.unwrap(), Some(close::PROTOCOL_ERROR));
}
