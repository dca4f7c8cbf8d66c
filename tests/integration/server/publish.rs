//! PROTOCOL.md §4: `publish` over the WebSocket and `POST /v1/events` (*extensions*).

use serde_json::{Value, json};

use crate::common::{Client, TestServer, alert, device, http_request, status};

fn publish_message(topic: &str, event: &str, data: Value, id: &str) -> String {
    json!({"type": "publish", "topic": topic, "event": event, "data": data, "id": id}).to_string()
}

async fn post_event(server: &TestServer, token: Option<&str>, body: &str) -> (u16, String) {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = bearer.iter().map(|b| ("Authorization", b.as_str())).collect();
    http_request(&server.addr(), "POST", "/v1/events", &headers, body).await
}

#[tokio::test]
async fn publish_without_the_publish_scope_gets_permission_error_and_delivers_nothing() {
    let server = TestServer::spawn().await;
    let mut subscriber = server.client().await;
    subscriber.subscribe_to(&["alerts"], Value::Null).await;
    let mut reader = server.client().await;
    let error =
        reader.error_for(&publish_message("alerts", "alert_created", alert("high", json!({})), "p-1")).await;
    assert_eq!((error["code"].as_str(), error["id"].as_str()), (Some("PERMISSION_ERROR"), Some("p-1")));
    subscriber.assert_nothing_queued().await;
    reader.assert_still_serving().await;
}

#[tokio::test]
async fn publish_scope_is_one_space_separated_word_of_scope() {
    let server = TestServer::spawn().await;
    let exp = openframe_harness::protocol::jwt::unix_now_s() as i64 + 3600;
    for (scope, allowed) in [
        ("read publish write", true),
        ("publish", true),
        ("publisher", false),
        ("publish:all", false),
        ("", false),
    ] {
        let token = server.token_from_claims(&format!(r#"{{"sub":"u","exp":{exp},"scope":"{scope}"}}"#));
        let mut client = Client::connect(&server.url(), Some(&token)).await;
        assert_eq!(client.recv().await["type"], "connection_established");
        client.send_text(&publish_message("alerts", "alert_created", alert("low", json!({})), "p")).await;
        let answer = client.recv_checked().await;
        let expected = if allowed { "publish_ack" } else { "error" };
        assert_eq!(answer["type"], expected, "scope {scope:?}: {answer}");
    }
}

#[tokio::test]
async fn publish_with_id_is_acked_with_the_number_of_connections_it_was_queued_to() {
    let server = TestServer::spawn().await;
    let mut all = server.client().await;
    all.subscribe_to(&["alerts"], Value::Null).await;
    let mut high_only = server.client().await;
    high_only.subscribe_to(&["alerts"], json!({"severity": ["high"]})).await;
    let mut devices = server.client().await;
    devices.subscribe_to(&["devices"], Value::Null).await;
    let mut publisher = server.publisher().await;
    publisher.subscribe_to(&["alerts"], Value::Null).await;
    publisher.send_text(&publish_message("alerts", "alert_created", alert("low", json!({})), "p-1")).await;
    // The publisher is a subscriber too: its event was queued before the ack.
    assert_eq!(publisher.recv().await["type"], "event");
    let ack = publisher.recv_checked().await;
    assert_eq!(
        (ack["type"].as_str(), ack["id"].as_str(), ack["delivered"].as_u64()),
        (Some("publish_ack"), Some("p-1"), Some(2))
    );
    publisher.send(json!({"type": "unsubscribe", "topics": ["alerts"]})).await;
    assert_eq!(publisher.recv().await["type"], "unsubscription_confirmed");
    assert_eq!(publisher.publish("alerts", alert("high", json!({})), "p-2").await, 2);
    assert_eq!(publisher.publish("system_status", status("healthy"), "p-3").await, 0);
}

#[tokio::test]
async fn publish_without_id_gets_no_answer_but_is_delivered() {
    let server = TestServer::spawn().await;
    let mut subscriber = server.client().await;
    subscriber.subscribe_to(&["devices"], Value::Null).await;
    let mut publisher = server.publisher().await;
    let data = device("d-1", "maintenance");
    publisher
        .send(json!({"type": "publish", "topic": "devices", "event": "device_update", "data": data}))
        .await;
    assert_eq!(subscriber.recv().await["data"], data);
    publisher.assert_nothing_queued().await;
}

#[tokio::test]
async fn publish_invalid_gets_invalid_message_with_id_and_delivers_nothing() {
    let server = TestServer::spawn().await;
    let mut subscriber = server.client().await;
    subscriber.subscribe_to(&["devices", "alerts", "system_status"], Value::Null).await;
    let mut publisher = server.publisher().await;
    let without = |mut data: Value, field: &str| {
        data.as_object_mut().unwrap().remove(field);
        data
    };
    let with = |mut data: Value, field: &str, value: Value| {
        data[field] = value;
        data
    };
    let a = alert("high", json!({}));
    let d = device("d", "online");
    let s = status("healthy");
    let cases = [
        (
            "unknown topic",
            json!({"type": "publish", "topic": "nope", "event": "alert_created", "data": a, "id": "p"}),
        ),
        (
            "topic not a string",
            json!({"type": "publish", "topic": 1, "event": "alert_created", "data": a, "id": "p"}),
        ),
        ("missing topic", json!({"type": "publish", "event": "alert_created", "data": a, "id": "p"})),
        (
            "wrong event kind",
            json!({"type": "publish", "topic": "alerts", "event": "device_update", "data": a, "id": "p"}),
        ),
        ("missing event", json!({"type": "publish", "topic": "alerts", "data": a, "id": "p"})),
        ("missing data", json!({"type": "publish", "topic": "alerts", "event": "alert_created", "id": "p"})),
        (
            "data not an object",
            json!({"type": "publish", "topic": "alerts", "event": "alert_created", "data": [a], "id": "p"}),
        ),
        (
            "data null",
            json!({"type": "publish", "topic": "alerts", "event": "alert_created", "data": null, "id": "p"}),
        ),
    ];
    let mut data_cases = vec![
        ("alerts", "alert_created", without(a.clone(), "id")),
        ("alerts", "alert_created", without(a.clone(), "title")),
        ("alerts", "alert_created", without(a.clone(), "severity")),
        ("alerts", "alert_created", without(a.clone(), "device_id")),
        ("alerts", "alert_created", with(a.clone(), "severity", json!("urgent"))),
        ("alerts", "alert_created", with(a.clone(), "title", json!(5))),
        ("devices", "device_update", without(d.clone(), "id")),
        ("devices", "device_update", without(d.clone(), "status")),
        ("devices", "device_update", without(d.clone(), "last_seen")),
        ("devices", "device_update", with(d.clone(), "status", json!("healthy"))),
        ("devices", "device_update", with(d.clone(), "last_seen", json!("yesterday"))),
        ("devices", "device_update", with(d.clone(), "id", json!(1))),
        ("system_status", "system_status", without(s.clone(), "status")),
        ("system_status", "system_status", without(s.clone(), "metrics")),
        ("system_status", "system_status", with(s.clone(), "status", json!("online"))),
        (
            "system_status",
            "system_status",
            with(s.clone(), "metrics", json!({"cpu_usage": 101, "memory_usage": 1})),
        ),
        (
            "system_status",
            "system_status",
            with(s.clone(), "metrics", json!({"cpu_usage": -1, "memory_usage": 1})),
        ),
        (
            "system_status",
            "system_status",
            with(s.clone(), "metrics", json!({"cpu_usage": "5", "memory_usage": 1})),
        ),
        ("system_status", "system_status", with(s.clone(), "metrics", json!({"cpu_usage": 5}))),
        ("system_status", "system_status", with(s.clone(), "metrics", json!(50))),
    ]
    .into_iter()
    .map(|(topic, event, data)| {
        let what = format!("{topic} {data}");
        (what, json!({"type": "publish", "topic": topic, "event": event, "data": data, "id": "p"}))
    })
    .collect::<Vec<_>>();
    data_cases.extend(cases.into_iter().map(|(what, message)| (what.to_owned(), message)));
    for (what, message) in data_cases {
        let error = publisher.error_for(&message.to_string()).await;
        assert_eq!(
            (error["code"].as_str(), error["id"].as_str()),
            (Some("INVALID_MESSAGE"), Some("p")),
            "{what}"
        );
    }
    subscriber.assert_nothing_queued().await;
    publisher.assert_still_serving().await;
}

#[tokio::test]
async fn http_publish_is_202_with_the_delivered_count_and_reaches_subscribers() {
    let server = TestServer::spawn().await;
    let mut subscriber = server.client().await;
    subscriber.subscribe_to(&["alerts"], Value::Null).await;
    let data = alert("critical", json!({"seq": 1}));
    let body = json!({"topic": "alerts", "event": "alert_created", "data": data}).to_string();
    let (status, response) = post_event(&server, Some(&server.token(true)), &body).await;
    assert_eq!(status, 202, "{response}");
    assert_eq!(serde_json::from_str::<Value>(&response).unwrap(), json!({"delivered": 1}));
    let event = subscriber.recv_checked().await;
    assert_eq!((event["topic"].as_str(), &event["data"]), (Some("alerts"), &data));
}

#[tokio::test]
async fn http_publish_is_401_for_a_missing_or_invalid_token() {
    let server = TestServer::spawn().await;
    let body =
        json!({"topic": "alerts", "event": "alert_created", "data": alert("low", json!({}))}).to_string();
    assert_eq!(post_event(&server, None, &body).await.0, 401);
    assert_eq!(post_event(&server, Some("a.b.c"), &body).await.0, 401);
    let expired = server.token_from_claims(r#"{"sub":"u","exp":1,"scope":"publish"}"#);
    assert_eq!(post_event(&server, Some(&expired), &body).await.0, 401);
}

#[tokio::test]
async fn http_publish_is_403_without_the_publish_scope() {
    let server = TestServer::spawn().await;
    let mut subscriber = server.client().await;
    subscriber.subscribe_to(&["alerts"], Value::Null).await;
    let body =
        json!({"topic": "alerts", "event": "alert_created", "data": alert("low", json!({}))}).to_string();
    assert_eq!(post_event(&server, Some(&server.token(false)), &body).await.0, 403);
    subscriber.assert_nothing_queued().await;
}

#[tokio::test]
async fn http_publish_is_400_for_an_invalid_body() {
    let server = TestServer::spawn().await;
    let token = server.token(true);
    for body in [
        "not json".to_owned(),
        "[]".to_owned(),
        json!({"topic": "nope", "event": "alert_created", "data": alert("low", json!({}))}).to_string(),
        json!({"topic": "alerts", "event": "device_update", "data": alert("low", json!({}))}).to_string(),
        json!({"topic": "alerts", "event": "alert_created", "data": {"id": "a"}}).to_string(),
        json!({"topic": "alerts", "event": "alert_created"}).to_string(),
    ] {
        assert_eq!(post_event(&server, Some(&token), &body).await.0, 400, "{body}");
    }
}
