//! PROTOCOL.md §4: subscribe, unsubscribe and filter semantics, as seen by a subscriber.

use serde_json::{Value, json};

use crate::common::{Client, TestServer, alert, device, status};

/// Publishes each (topic, data) in order with acks, then returns the `data` the subscriber got.
async fn delivered_data(
    subscriber: &mut Client,
    publisher: &mut Client,
    events: &[(&str, Value)],
) -> Vec<Value> {
    for (i, (topic, data)) in events.iter().enumerate() {
        publisher.publish(topic, data.clone(), &format!("p{i}")).await;
    }
    subscriber.drain_events().await.into_iter().map(|e| e["data"].clone()).collect()
}

#[tokio::test]
async fn subscribe_confirmation_lists_topics_in_first_given_order_without_duplicates_and_echoes_id() {
    let server = TestServer::spawn().await;
    let mut client = server.client().await;
    client
        .send(json!({"type": "subscribe", "topics": ["system_status", "alerts", "system_status", "devices", "alerts"], "id": "req-1"}))
        .await;
    let answer = client.recv_checked().await;
    assert_eq!(answer["type"], "subscription_confirmed");
    assert_eq!(answer["topics"], json!(["system_status", "alerts", "devices"]));
    assert_eq!(answer["id"], "req-1");
}

#[tokio::test]
async fn subscribe_without_id_is_confirmed_without_id() {
    let server = TestServer::spawn().await;
    let mut client = server.client().await;
    client.send(json!({"type": "subscribe", "topics": ["alerts"]})).await;
    let answer = client.recv_checked().await;
    assert_eq!(answer["type"], "subscription_confirmed");
    assert!(answer.get("id").is_none(), "{answer}");
}

#[tokio::test]
async fn subscribe_null_filters_count_as_absent() {
    let server = TestServer::spawn().await;
    let mut subscriber = server.client().await;
    let answer =
        subscriber.subscribe(json!({"type": "subscribe", "topics": ["alerts"], "filters": null})).await;
    assert_eq!(answer["type"], "subscription_confirmed", "{answer}");
    let mut publisher = server.publisher().await;
    let events: Vec<_> = ["low", "critical"].iter().map(|s| ("alerts", alert(s, json!({})))).collect();
    assert_eq!(delivered_data(&mut subscriber, &mut publisher, &events).await.len(), 2);
}

#[tokio::test]
async fn subscribe_id_of_128_characters_is_echoed() {
    let server = TestServer::spawn().await;
    let mut client = server.client().await;
    let id = "é".repeat(128);
    let answer = client.subscribe(json!({"type": "subscribe", "topics": ["alerts"], "id": id})).await;
    assert_eq!(
        (answer["type"].as_str(), answer["id"].as_str()),
        (Some("subscription_confirmed"), Some(id.as_str()))
    );
}

#[tokio::test]
async fn subscribe_filter_delivers_only_events_with_a_listed_value() {
    let server = TestServer::spawn().await;
    let mut subscriber = server.client().await;
    subscriber.subscribe_to(&["alerts"], json!({"severity": ["high", "critical"]})).await;
    let mut publisher = server.publisher().await;
    let severities = ["low", "high", "medium", "critical", "high"];
    let events: Vec<_> = severities.iter().map(|s| ("alerts", alert(s, json!({})))).collect();
    let got = delivered_data(&mut subscriber, &mut publisher, &events).await;
    let got: Vec<_> = got.iter().map(|d| d["severity"].as_str().unwrap().to_owned()).collect();
    assert_eq!(got, ["high", "critical", "high"]);
}

#[tokio::test]
async fn subscribe_filter_key_applies_only_when_the_event_data_has_the_field() {
    let server = TestServer::spawn().await;
    let mut subscriber = server.client().await;
    // `severity` is a filterable field of alerts; it also filters device events that carry it.
    subscriber.subscribe_to(&["devices", "alerts"], json!({"severity": ["high"]})).await;
    let mut publisher = server.publisher().await;
    let with = |severity: &str| {
        let mut d = device("d-1", "online");
        d["severity"] = json!(severity);
        d
    };
    let events = [
        ("devices", device("plain", "online")),
        ("devices", with("low")),
        ("devices", with("high")),
        ("alerts", alert("low", json!({}))),
        ("alerts", alert("high", json!({}))),
    ];
    let got = delivered_data(&mut subscriber, &mut publisher, &events).await;
    assert_eq!(got, [events[0].1.clone(), events[2].1.clone(), events[4].1.clone()]);
}

#[tokio::test]
async fn subscribe_filter_never_matches_a_field_that_is_not_a_string() {
    let server = TestServer::spawn().await;
    let mut subscriber = server.client().await;
    // `device_id` is a free-form filterable field of alerts; device events may carry it too.
    subscriber.subscribe_to(&["devices", "alerts"], json!({"device_id": ["7"]})).await;
    let mut publisher = server.publisher().await;
    let with = |device_id: Value| {
        let mut d = device("d", "online");
        d["device_id"] = device_id;
        d
    };
    let events = [
        ("devices", with(json!(7))),
        ("devices", with(json!(null))),
        ("devices", with(json!(["7"]))),
        ("devices", with(json!("7"))),
        ("devices", device("d", "online")),
    ];
    let got = delivered_data(&mut subscriber, &mut publisher, &events).await;
    assert_eq!(got, [events[3].1.clone(), events[4].1.clone()]);
}

#[tokio::test]
async fn subscribe_every_applicable_filter_key_must_match() {
    let server = TestServer::spawn().await;
    let mut subscriber = server.client().await;
    subscriber
        .subscribe_to(&["alerts"], json!({"severity": ["critical"], "device_id": ["d-1", "d-2"]}))
        .await;
    let mut publisher = server.publisher().await;
    let on = |device: &str, severity: &str| alert(severity, json!({"device_id": device}));
    let events = [
        ("alerts", on("d-1", "critical")),
        ("alerts", on("d-3", "critical")),
        ("alerts", on("d-2", "low")),
        ("alerts", on("d-2", "critical")),
    ];
    let got = delivered_data(&mut subscriber, &mut publisher, &events).await;
    assert_eq!(got, [events[0].1.clone(), events[3].1.clone()]);
}

#[tokio::test]
async fn subscribe_topic_without_filters_gets_every_event() {
    let server = TestServer::spawn().await;
    let mut subscriber = server.client().await;
    subscriber.subscribe_to(&["alerts"], Value::Null).await;
    let mut publisher = server.publisher().await;
    let events: Vec<_> =
        ["low", "medium", "high", "critical"].iter().map(|s| ("alerts", alert(s, json!({})))).collect();
    assert_eq!(delivered_data(&mut subscriber, &mut publisher, &events).await.len(), 4);
}

#[tokio::test]
async fn subscribe_filters_replace_those_of_the_listed_topics_only() {
    let server = TestServer::spawn().await;
    let mut subscriber = server.client().await;
    subscriber.subscribe_to(&["alerts"], json!({"severity": ["high"]})).await;
    subscriber.subscribe_to(&["devices"], json!({"status": ["online"]})).await;
    subscriber.subscribe_to(&["alerts"], Value::Null).await;
    let mut publisher = server.publisher().await;
    let events = [
        ("alerts", alert("low", json!({}))),
        ("devices", device("d", "offline")),
        ("devices", device("d", "online")),
    ];
    let got = delivered_data(&mut subscriber, &mut publisher, &events).await;
    assert_eq!(got, [events[0].1.clone(), events[2].1.clone()]);
    // And a filter given later replaces "no filter".
    subscriber.subscribe_to(&["alerts"], json!({"severity": ["critical"]})).await;
    let got = delivered_data(&mut subscriber, &mut publisher, &[("alerts", alert("low", json!({})))]).await;
    assert!(got.is_empty(), "{got:?}");
}

#[tokio::test]
async fn subscribe_status_values_are_judged_against_each_listed_topic_with_the_field() {
    let server = TestServer::spawn().await;
    let mut subscriber = server.client().await;
    subscriber.subscribe_to(&["devices", "system_status"], json!({"status": ["online", "healthy"]})).await;
    let mut publisher = server.publisher().await;
    let events = [
        ("devices", device("d", "offline")),
        ("devices", device("d", "online")),
        ("system_status", status("down")),
        ("system_status", status("healthy")),
    ];
    let got = delivered_data(&mut subscriber, &mut publisher, &events).await;
    assert_eq!(got, [events[1].1.clone(), events[3].1.clone()]);
}

#[tokio::test]
async fn unsubscribe_is_confirmed_with_its_topics_and_id() {
    let server = TestServer::spawn().await;
    let mut client = server.client().await;
    client.subscribe_to(&["devices", "alerts"], Value::Null).await;
    client.send(json!({"type": "unsubscribe", "topics": ["devices", "devices"], "id": "req-2"})).await;
    let answer = client.recv_checked().await;
    assert_eq!(answer["type"], "unsubscription_confirmed");
    assert_eq!(answer["topics"], json!(["devices"]));
    assert_eq!(answer["id"], "req-2");
}

#[tokio::test]
async fn unsubscribe_of_a_topic_not_held_is_not_an_error() {
    let server = TestServer::spawn().await;
    let mut client = server.client().await;
    client.send(json!({"type": "unsubscribe", "topics": ["system_status"]})).await;
    let answer = client.recv_checked().await;
    assert_eq!(answer["type"], "unsubscription_confirmed");
    assert!(answer.get("id").is_none());
}

#[tokio::test]
async fn unsubscribe_validates_topics_like_subscribe() {
    let server = TestServer::spawn().await;
    let mut client = server.client().await;
    for (message, code) in [
        (json!({"type": "unsubscribe", "topics": [], "id": "u"}), "SUBSCRIPTION_ERROR"),
        (json!({"type": "unsubscribe", "topics": ["alerts", "nope"], "id": "u"}), "SUBSCRIPTION_ERROR"),
        (json!({"type": "unsubscribe", "topics": "alerts", "id": "u"}), "INVALID_MESSAGE"),
        (json!({"type": "unsubscribe", "topics": [7], "id": "u"}), "INVALID_MESSAGE"),
        (json!({"type": "unsubscribe", "id": "u"}), "INVALID_MESSAGE"),
    ] {
        let error = client.error_for(&message.to_string()).await;
        assert_eq!((error["code"].as_str(), error["id"].as_str()), (Some(code), Some("u")), "{message}");
    }
}

#[tokio::test]
async fn unsubscribe_stops_the_listed_topics_and_keeps_the_others() {
    let server = TestServer::spawn().await;
    let mut subscriber = server.client().await;
    subscriber.subscribe_to(&["devices", "alerts"], Value::Null).await;
    subscriber.send(json!({"type": "unsubscribe", "topics": ["alerts"]})).await;
    assert_eq!(subscriber.recv().await["type"], "unsubscription_confirmed");
    let mut publisher = server.publisher().await;
    let events = [("alerts", alert("high", json!({}))), ("devices", device("d", "online"))];
    assert_eq!(delivered_data(&mut subscriber, &mut publisher, &events).await, [events[1].1.clone()]);
}

#[tokio::test]
async fn subscribe_is_atomic_a_failed_subscribe_changes_nothing() {
    let server = TestServer::spawn().await;
    let mut subscriber = server.client().await;
    subscriber.subscribe_to(&["alerts"], json!({"severity": ["high"]})).await;
    for bad in [
        json!({"type": "subscribe", "topics": ["alerts", "nope"]}),
        json!({"type": "subscribe", "topics": ["devices", "alerts"], "filters": {"severity": ["urgent"]}}),
        json!({"type": "subscribe", "topics": ["devices", "alerts"], "filters": {"metrics": ["x"]}}),
        json!({"type": "subscribe", "topics": ["devices", "alerts"], "filters": {"severity": []}}),
        json!({"type": "subscribe", "topics": ["devices", "alerts"], "filters": {"severity": "low"}}),
        json!({"type": "subscribe", "topics": ["devices", "alerts"], "id": 5}),
    ] {
        assert_eq!(subscriber.error_for(&bad.to_string()).await["type"], "error");
    }
    let mut publisher = server.publisher().await;
    let events = [
        ("alerts", alert("low", json!({}))),
        ("devices", device("d", "online")),
        ("alerts", alert("high", json!({}))),
    ];
    // Still alerts only, still filtered to high: no failed subscribe added or replaced anything.
    assert_eq!(delivered_data(&mut subscriber, &mut publisher, &events).await, [events[2].1.clone()]);
}
