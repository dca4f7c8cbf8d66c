//! PROTOCOL.md §6: which error each mistake earns, `id` echo, shape errors before meaning
//! errors, and that no input closes a connection (outside the table) or stops the server.

use std::time::Duration;

use openframe_harness::wire::{OutFrame, opcode};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::common::{ANSWER, TestServer, alert, http_request};

/// Sends each (what, text) and asserts the error `code` with the expected `id` echo.
async fn assert_errors(server: &TestServer, code: &str, cases: &[(&str, String, Option<&str>)]) {
    let mut client = server.publisher().await;
    for (what, text, id) in cases {
        let error = client.error_for(text).await;
        assert_eq!(error["code"], code, "{what}: {text} got {error}");
        assert_eq!(error["id"].as_str(), *id, "{what}: id echo in {error}");
        assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}: {error}");
    }
    client.assert_still_serving().await;
}

fn case(
    what: &'static str,
    message: Value,
    id: Option<&'static str>,
) -> (&'static str, String, Option<&'static str>) {
    (what, message.to_string(), id)
}

#[tokio::test]
async fn errors_text_that_is_not_a_json_object_is_invalid_message() {
    let server = TestServer::spawn().await;
    let texts = [
        "hello",
        "",
        " ",
        "{",
        "{\"type\":\"subscribe\"",
        "{'type':'subscribe'}",
        "{\"type\":\"subscribe\",\"topics\":[\"alerts\"]} {}",
        "[]",
        "[{\"type\":\"subscribe\",\"topics\":[\"alerts\"]}]",
        "\"subscribe\"",
        "42",
        "null",
        "true",
    ];
    let cases: Vec<_> = texts.iter().map(|t| ("not a JSON object", (*t).to_owned(), None)).collect();
    assert_errors(&server, "INVALID_MESSAGE", &cases).await;
}

#[tokio::test]
async fn errors_missing_unknown_or_ill_typed_type_is_invalid_message() {
    let server = TestServer::spawn().await;
    let cases = [
        case("type missing", json!({"topics": ["alerts"], "id": "i"}), Some("i")),
        case("unknown type", json!({"type": "dance", "id": "i"}), Some("i")),
        case("type in capitals", json!({"type": "SUBSCRIBE", "topics": ["alerts"], "id": "i"}), Some("i")),
        case("empty type", json!({"type": "", "id": "i"}), Some("i")),
        case(
            "a server message type",
            json!({"type": "subscription_confirmed", "topics": ["alerts"], "id": "i"}),
            Some("i"),
        ),
        case("type a number", json!({"type": 1, "id": "i"}), Some("i")),
        case("type null", json!({"type": null, "id": "i"}), Some("i")),
        case("type an array", json!({"type": ["subscribe"], "topics": ["alerts"], "id": "i"}), Some("i")),
    ];
    assert_errors(&server, "INVALID_MESSAGE", &cases).await;
}

#[tokio::test]
async fn errors_each_missing_or_ill_typed_subscribe_field_is_invalid_message() {
    let server = TestServer::spawn().await;
    let sub = |extra: Value| {
        let mut message = json!({"type": "subscribe", "id": "i"});
        message.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        message
    };
    let long_id = "x".repeat(129);
    let cases = vec![
        case("topics missing", sub(json!({})), Some("i")),
        case("topics a string", sub(json!({"topics": "alerts"})), Some("i")),
        case("topics null", sub(json!({"topics": null})), Some("i")),
        case("topics an object", sub(json!({"topics": {"alerts": true}})), Some("i")),
        case("a topic a number", sub(json!({"topics": [1]})), Some("i")),
        case("a topic null", sub(json!({"topics": ["alerts", null]})), Some("i")),
        case("a topic an array", sub(json!({"topics": [["alerts"]]})), Some("i")),
        case("filters an array", sub(json!({"topics": ["alerts"], "filters": []})), Some("i")),
        case("filters a string", sub(json!({"topics": ["alerts"], "filters": "severity"})), Some("i")),
        case("filters a number", sub(json!({"topics": ["alerts"], "filters": 1})), Some("i")),
        case(
            "a filter value a string",
            sub(json!({"topics": ["alerts"], "filters": {"severity": "high"}})),
            Some("i"),
        ),
        case(
            "a filter value null",
            sub(json!({"topics": ["alerts"], "filters": {"severity": null}})),
            Some("i"),
        ),
        case(
            "a filter value an object",
            sub(json!({"topics": ["alerts"], "filters": {"severity": {}}})),
            Some("i"),
        ),
        case(
            "a filter element a number",
            sub(json!({"topics": ["alerts"], "filters": {"severity": [1]}})),
            Some("i"),
        ),
        case(
            "a filter element null",
            sub(json!({"topics": ["alerts"], "filters": {"severity": ["high", null]}})),
            Some("i"),
        ),
        case("id a number", json!({"type": "subscribe", "topics": ["alerts"], "id": 5}), None),
        case("id null", json!({"type": "subscribe", "topics": ["alerts"], "id": null}), None),
        case("id an object", json!({"type": "subscribe", "topics": ["alerts"], "id": {}}), None),
        (
            "id longer than 128 characters",
            json!({"type": "subscribe", "topics": ["alerts"], "id": long_id}).to_string(),
            None,
        ),
    ];
    assert_errors(&server, "INVALID_MESSAGE", &cases).await;
}

#[tokio::test]
async fn errors_binary_frame_and_invalid_publish_are_invalid_message() {
    let server = TestServer::spawn().await;
    let mut raw = server.raw_client().await;
    raw.send(&OutFrame::new(opcode::BINARY, vec![0, 159, 146, 150])).await.unwrap();
    let answer: Value = serde_json::from_str(&raw.read_text(ANSWER).await.unwrap().unwrap()).unwrap();
    assert_eq!(answer["code"], "INVALID_MESSAGE");
    let cases = [
        case(
            "publish of an unknown topic",
            json!({"type": "publish", "topic": "nope", "event": "x", "data": {}, "id": "p"}),
            Some("p"),
        ),
        case(
            "publish with invalid data",
            json!({"type": "publish", "topic": "alerts", "event": "alert_created", "data": {"id": 1}, "id": "p"}),
            Some("p"),
        ),
    ];
    assert_errors(&server, "INVALID_MESSAGE", &cases).await;
}

#[tokio::test]
async fn errors_each_subscription_error_cause_gets_subscription_error_with_the_id() {
    let server = TestServer::spawn().await;
    let sub = |topics: Value, filters: Value| json!({"type": "subscribe", "topics": topics, "filters": filters, "id": "q"});
    let cases = [
        case("topics empty", sub(json!([]), Value::Null), Some("q")),
        case("unknown topic", sub(json!(["alerts", "foo"]), Value::Null), Some("q")),
        case("topic name in capitals", sub(json!(["Alerts"]), Value::Null), Some("q")),
        case(
            "a key filterable for no listed topic",
            sub(json!(["alerts"]), json!({"status": ["online"]})),
            Some("q"),
        ),
        case(
            "a field of the topic that is not filterable",
            sub(json!(["alerts"]), json!({"title": ["x"]})),
            Some("q"),
        ),
        case("id is filterable on devices only", sub(json!(["alerts"]), json!({"id": ["a-1"]})), Some("q")),
        case("an unknown key", sub(json!(["devices", "alerts"]), json!({"colour": ["red"]})), Some("q")),
        case(
            "metrics is not filterable",
            sub(json!(["system_status"]), json!({"metrics": ["x"]})),
            Some("q"),
        ),
        case("an empty value array", sub(json!(["alerts"]), json!({"severity": []})), Some("q")),
        case(
            "a value outside the set",
            sub(json!(["alerts"]), json!({"severity": ["high", "urgent"]})),
            Some("q"),
        ),
        case(
            "a system status for devices",
            sub(json!(["devices"]), json!({"status": ["healthy"]})),
            Some("q"),
        ),
        case(
            "a device status for system_status",
            sub(json!(["system_status"]), json!({"status": ["online"]})),
            Some("q"),
        ),
        case(
            "unsubscribe of an unknown topic",
            json!({"type": "unsubscribe", "topics": ["foo"], "id": "q"}),
            Some("q"),
        ),
        case("unsubscribe of no topics", json!({"type": "unsubscribe", "topics": [], "id": "q"}), Some("q")),
    ];
    assert_errors(&server, "SUBSCRIPTION_ERROR", &cases).await;
    let mut client = server.client().await;
    let error = client.error_for(&json!({"type": "subscribe", "topics": ["foo"]}).to_string()).await;
    assert_eq!(error["message"], "Invalid topic: foo");
    assert!(error.get("id").is_none(), "{error}");
}

#[tokio::test]
async fn errors_a_shape_error_wins_over_a_meaning_error() {
    let server = TestServer::spawn().await;
    let cases = [
        case(
            "unknown topic and a non-string topic",
            json!({"type": "subscribe", "topics": ["foo", 1], "id": "i"}),
            Some("i"),
        ),
        case("empty topics and a bad id", json!({"type": "subscribe", "topics": [], "id": 1}), None),
        case(
            "unknown topic and filters not an object",
            json!({"type": "subscribe", "topics": ["foo"], "filters": [], "id": "i"}),
            Some("i"),
        ),
        case(
            "bad filter key and a filter value not an array",
            json!({"type": "subscribe", "topics": ["alerts"], "filters": {"colour": ["red"], "severity": "high"}, "id": "i"}),
            Some("i"),
        ),
        case(
            "value outside the set and a non-string value",
            json!({"type": "subscribe", "topics": ["alerts"], "filters": {"severity": ["urgent", 3]}, "id": "i"}),
            Some("i"),
        ),
        case(
            "unknown topic and an id too long",
            json!({"type": "subscribe", "topics": ["foo"], "id": "y".repeat(200)}),
            None,
        ),
        case(
            "unsubscribe: empty topics and a bad id",
            json!({"type": "unsubscribe", "topics": [], "id": []}),
            None,
        ),
    ];
    assert_errors(&server, "INVALID_MESSAGE", &cases).await;
}

#[tokio::test]
async fn errors_echo_the_id_for_every_code_that_answers_a_request() {
    let server = TestServer::spawn().await;
    let mut reader = server.client().await;
    let publish = json!({"type": "publish", "topic": "alerts", "event": "alert_created", "data": alert("low", json!({})), "id": "e-3"});
    for (text, code, id) in [
        (json!({"type": "nope", "id": "e-1"}), "INVALID_MESSAGE", "e-1"),
        (json!({"type": "subscribe", "topics": ["x"], "id": "e-2"}), "SUBSCRIPTION_ERROR", "e-2"),
        (publish, "PERMISSION_ERROR", "e-3"),
    ] {
        let error = reader.error_for(&text.to_string()).await;
        assert_eq!((error["code"].as_str(), error["id"].as_str()), (Some(code), Some(id)), "{error}");
    }
}

#[tokio::test]
async fn errors_many_bad_messages_in_a_row_never_close_the_connection() {
    let server = TestServer::spawn().await;
    let mut client = server.client().await;
    for i in 0..200 {
        client.send_text(&format!("garbage {i}")).await;
    }
    for _ in 0..200 {
        assert_eq!(client.recv().await["code"], "INVALID_MESSAGE");
    }
    client.assert_still_serving().await;
}

/// Random bytes, seeded so a failure can be replayed.
fn noise(rng: &mut ChaCha8Rng, len: usize) -> Vec<u8> {
    (0..len).map(|_| rng.random()).collect()
}

#[tokio::test]
async fn errors_bad_input_never_stops_the_server_serving_others() {
    let server = TestServer::spawn().await;
    let mut bystander = server.client().await;
    bystander.subscribe_to(&["alerts"], Value::Null).await;
    let mut rng = ChaCha8Rng::seed_from_u64(0x6f66);
    // Garbage text, deep nesting, huge numbers and long strings on one connection.
    let mut client = server.publisher().await;
    let deep_array = format!("{}{}", "[".repeat(30_000), "]".repeat(30_000));
    let deep_in_data = format!(
        r#"{{"type":"publish","topic":"alerts","event":"alert_created","data":{{"id":"a","title":"t","severity":"low","device_id":"d","x":{}}},"id":"deep"}}"#,
        &deep_array[..]
    );
    let deep_filters =
        format!(r#"{{"type":"subscribe","topics":["alerts"],"filters":{}}}"#, "{\"a\":".repeat(10_000));
    for text in [
        deep_array.as_str(),
        &format!(r#"{{"type":"subscribe","topics":{deep_array}}}"#),
        &deep_filters,
        r#"{"type":"subscribe","topics":["alerts"],"id":1e999999999}"#,
        r#"{"type":1e999999999}"#,
        r#"{"type":"subscribe","topics":["\ud800"]}"#,
        r#"{"type":"subscribe","topics":["alerts"],"filters":{"severity":["\u0000"]}}"#,
        &format!(r#"{{"type":"{}"}}"#, "x".repeat(60_000)),
    ] {
        client.send_text(text).await;
        assert_eq!(client.recv().await["type"], "error", "{}", &text[..text.len().min(80)]);
    }
    client.send_text(&deep_in_data).await;
    let answer = client.recv().await;
    assert_eq!(
        (answer["type"].as_str(), answer["delivered"].as_u64()),
        (Some("publish_ack"), Some(1)),
        "{answer}"
    );
    // Deeper than a serde_json `Value` can hold, so compare the raw text.
    let deep_event = bystander.recv_text(ANSWER).await.expect("the deep event");
    assert!(deep_event.contains(&deep_array), "the deeply nested data was not passed through");
    // Random frames after a good upgrade, random bytes before any upgrade, broken HTTP.
    for round in 0..20 {
        let mut raw = server.raw_client().await;
        let len = rng.random_range(1..2_000);
        raw.send_bytes(&noise(&mut rng, len)).await.ok();
        if round % 2 == 0 {
            let _ = raw.read_close(Duration::from_millis(200)).await;
        }
        let mut tcp = TcpStream::connect(server.addr()).await.unwrap();
        let len = rng.random_range(1..4_000);
        tcp.write_all(&noise(&mut rng, len)).await.ok();
    }
    for request in [
        "GET / HTTP/9.9\r\n\r\n",
        "GET /v1/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    ] {
        let mut tcp = TcpStream::connect(server.addr()).await.unwrap();
        tcp.write_all(request.as_bytes()).await.unwrap();
    }
    assert_eq!(
        http_request(&server.addr(), "POST", "/v1/events", &[("Authorization", "Bearer x")], "\u{0}").await.0,
        401
    );
    // The server still serves: the bystander still gets events, a fresh client subscribes and receives.
    let mut fresh = server.client().await;
    fresh.subscribe_to(&["alerts"], Value::Null).await;
    let mut publisher = server.publisher().await;
    assert_eq!(publisher.publish("alerts", alert("high", json!({"after": "barrage"})), "p").await, 2);
    assert_eq!(fresh.recv().await["data"]["after"], "barrage");
    assert_eq!(bystander.recv().await["data"]["after"], "barrage");
    let (status, body) = server.http_get("/healthz").await;
    assert_eq!((status, body.as_str()), (200, "ok"));
}
