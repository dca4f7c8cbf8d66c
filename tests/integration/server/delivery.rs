//! PROTOCOL.md §5: ordering, delivery and back-pressure.

use serde_json::json;

use crate::common::{TestServer, alert};

#[tokio::test]
async fn delivery_event_reaches_subscriber_with_data_unchanged() {
    let server = TestServer::spawn().await;
    let mut subscriber = server.client().await;
    let confirmed =
        subscriber.subscribe(json!({"type": "subscribe", "topics": ["alerts"], "id": "r1"})).await;
    assert_eq!(
        confirmed,
        json!({"type": "subscription_confirmed", "topics": ["alerts"], "id": "r1", "timestamp": confirmed["timestamp"]})
    );
    let mut publisher = server.publisher().await;
    let data = alert("high", json!({"seq": 18446744073709551615u64, "nested": {"x": [1, 2.5, null]}}));
    publisher
        .send(
            json!({"type": "publish", "topic": "alerts", "event": "alert_created", "data": data, "id": "p1"}),
        )
        .await;
    let ack = publisher.recv().await;
    assert_eq!((ack["type"].as_str(), ack["delivered"].as_u64()), (Some("publish_ack"), Some(1)));
    let event = subscriber.recv().await;
    assert_eq!(event["type"], "event");
    assert_eq!(event["event"], "alert_created");
    assert_eq!(event["data"], data);
}
