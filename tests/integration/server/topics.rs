//! PROTOCOL.md §3: topics and events: the shape of an event, `data` passed through unchanged,
//! and the server's own `system_status` heartbeat.

use std::time::Duration;

use openframe_harness::protocol::{ServerMessage, Topic, timestamp};
use serde_json::json;

use crate::common::{ANSWER, TestServer, alert, checked, config_with, device, status};

#[tokio::test]
async fn topics_each_topic_delivers_its_event_kind_with_an_rfc3339_utc_timestamp() {
    let server = TestServer::spawn().await;
    let mut subscriber = server.client().await;
    subscriber.subscribe_to(&["devices", "alerts", "system_status"], serde_json::Value::Null).await;
    let mut publisher = server.publisher().await;
    for (topic, data) in [
        ("devices", device("d-1", "online")),
        ("alerts", alert("low", json!({}))),
        ("system_status", status("down")),
    ] {
        assert_eq!(publisher.publish(topic, data.clone(), topic).await, 1);
        let text = subscriber.recv_text(ANSWER).await.expect("an event");
        let ServerMessage::Event { topic: got, .. } = checked(&text) else { panic!("not an event: {text}") };
        assert_eq!(got, Topic::from_name(topic).unwrap());
        let event: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(event["type"], "event");
        assert_eq!(event["topic"], topic);
        assert_eq!(event["event"], Topic::from_name(topic).unwrap().event_kind());
        assert_eq!(event["data"], data);
        assert!(timestamp::is_rfc3339_utc(event["timestamp"].as_str().unwrap()), "{event}");
    }
}

#[tokio::test]
async fn topics_data_is_delivered_byte_for_byte_with_unknown_fields() {
    let server = TestServer::spawn().await;
    let mut subscriber = server.client().await;
    subscriber.subscribe_to(&["alerts"], serde_json::Value::Null).await;
    let mut publisher = server.publisher().await;
    // Whitespace, escapes, key order, repeated-looking keys, huge and precise numbers, nesting.
    let data = r#"{ "title" : "caf\u00e9 \"quoted\"", "id":"a-1","severity":"high","device_id":"d-9",
        "seq": 18446744073709551615, "sent_at_ns": 1.0000000000000002, "neg": -0.0, "big": 1e400,
        "nested": {"list": [1, [2, [3, {"deep": null}]]], "empty": {}}, "emoji": "\ud83d\ude00", "t": true }"#;
    let message =
        format!(r#"{{"type":"publish","topic":"alerts","event":"alert_created","data":{data},"id":"p"}}"#);
    publisher.send_text(&message).await;
    assert_eq!(publisher.recv().await["delivered"], 1);
    let text = subscriber.recv_text(ANSWER).await.expect("an event");
    let ServerMessage::Event { data_json, .. } = checked(&text) else { panic!("{text}") };
    assert_eq!(data_json.get(), data);
}

#[tokio::test]
async fn topics_system_status_heartbeat_is_a_valid_event_published_at_the_interval() {
    let interval = Duration::from_millis(100);
    let server = TestServer::spawn_with(config_with(|c| c.status_interval = Some(interval))).await;
    let mut subscriber = server.client().await;
    subscriber.subscribe_to(&["system_status"], serde_json::Value::Null).await;
    let started = std::time::Instant::now();
    for _ in 0..3 {
        let text = subscriber.recv_text(ANSWER).await.expect("a heartbeat");
        let ServerMessage::Event { topic, data, .. } = checked(&text) else { panic!("{text}") };
        assert_eq!(topic, Topic::SystemStatus);
        assert!(["healthy", "degraded", "down"].contains(&&*data.get_str("status").unwrap()));
    }
    assert!(started.elapsed() < interval * 3 + Duration::from_secs(1), "{:?}", started.elapsed());
    // Heartbeats go to system_status subscribers only.
    let mut other = server.client().await;
    other.subscribe_to(&["alerts", "devices"], serde_json::Value::Null).await;
    other.expect_silence().await;
}

#[tokio::test]
async fn topics_no_heartbeat_when_the_interval_is_off() {
    let server = TestServer::spawn_with(config_with(|c| c.status_interval = None)).await;
    let mut subscriber = server.client().await;
    subscriber.subscribe_to(&["system_status"], serde_json::Value::Null).await;
    subscriber.expect_silence().await;
}

#[tokio::test]
async fn topics_an_event_reaches_only_subscribers_of_its_topic() {
    let server = TestServer::spawn().await;
    let mut devices = server.client().await;
    devices.subscribe_to(&["devices"], serde_json::Value::Null).await;
    let mut alerts = server.client().await;
    alerts.subscribe_to(&["alerts"], serde_json::Value::Null).await;
    let mut publisher = server.publisher().await;
    assert_eq!(publisher.publish("alerts", alert("low", json!({})), "p").await, 1);
    assert_eq!(alerts.recv().await["topic"], "alerts");
    devices.assert_nothing_queued().await;
}
