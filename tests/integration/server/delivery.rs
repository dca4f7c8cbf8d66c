//! PROTOCOL.md §5: ordering, delivery and back-pressure.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use openframe_harness::protocol::close;
use openframe_harness::wire::{OutFrame, RawSocket, Read, opcode, upgrade_request};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};
use tokio::net::TcpSocket;

use crate::common::{ANSWER, Client, TestServer, alert, config_with, device};

/// A publish message of an alert carrying `seq` and `from`, without an id (no answer).
fn sequenced(seq: u64, from: &str) -> String {
    json!({"type": "publish", "topic": "alerts", "event": "alert_created",
           "data": alert("high", json!({"seq": seq, "from": from}))})
    .to_string()
}

/// Reads events until `count` arrived; panics if they do not come in time.
async fn receive_events(client: &mut Client, count: usize) -> Vec<Value> {
    let mut events = Vec::with_capacity(count);
    while events.len() < count {
        let message = client
            .try_recv(ANSWER)
            .await
            .unwrap_or_else(|| panic!("only {} of {count} events arrived", events.len()));
        assert_eq!(message["type"], "event", "{message}");
        events.push(message);
    }
    events
}

fn seqs(events: &[Value]) -> Vec<u64> {
    events.iter().map(|e| e["data"]["seq"].as_u64().expect("seq")).collect()
}

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
    assert_eq!(publisher.publish("alerts", data.clone(), "p1").await, 1);
    let event = subscriber.recv_checked().await;
    assert_eq!(event["type"], "event");
    assert_eq!(event["event"], "alert_created");
    assert_eq!(event["data"], data);
}

#[tokio::test]
async fn delivery_is_exactly_once_even_when_subscribed_twice() {
    let server = TestServer::spawn().await;
    let mut subscriber = server.client().await;
    subscriber.subscribe_to(&["alerts"], Value::Null).await;
    subscriber.subscribe_to(&["alerts", "alerts"], Value::Null).await;
    subscriber.subscribe_to(&["devices", "alerts"], Value::Null).await;
    let mut publisher = server.publisher().await;
    for seq in 0..50 {
        publisher.send_text(&sequenced(seq, "p")).await;
    }
    let events = receive_events(&mut subscriber, 50).await;
    assert_eq!(seqs(&events), (0..50).collect::<Vec<_>>());
    // A second copy of any event would have been queued right behind the first.
    subscriber.assert_nothing_queued().await;
}

#[tokio::test]
async fn delivery_preserves_each_publishers_order() {
    let server = TestServer::spawn().await;
    let mut subscriber = server.client().await;
    subscriber.subscribe_to(&["alerts"], Value::Null).await;
    const PER_PUBLISHER: u64 = 300;
    let mut tasks = Vec::new();
    for name in ["a", "b", "c"] {
        let mut publisher = server.publisher().await;
        tasks.push(tokio::spawn(async move {
            for seq in 0..PER_PUBLISHER {
                publisher.send_text(&sequenced(seq, name)).await;
            }
            publisher
        }));
    }
    let events = receive_events(&mut subscriber, 3 * PER_PUBLISHER as usize).await;
    for name in ["a", "b", "c"] {
        let from: Vec<_> = events.iter().filter(|e| e["data"]["from"] == name).cloned().collect();
        assert_eq!(seqs(&from), (0..PER_PUBLISHER).collect::<Vec<_>>(), "publisher {name}");
    }
    for task in tasks {
        task.await.unwrap();
    }
    subscriber.assert_nothing_queued().await;
}

/// Publishes `count` sequenced events as fast as the socket takes them, in the background.
fn publish_stream(mut publisher: Client, count: u64) -> tokio::task::JoinHandle<Client> {
    tokio::spawn(async move {
        for seq in 0..count {
            publisher.send_text(&sequenced(seq, "stream")).await;
            if seq % 50 == 0 {
                tokio::task::yield_now().await;
            }
        }
        publisher
    })
}

#[tokio::test]
async fn delivery_subscription_boundary_every_event_after_the_subscribe_arrives_without_gaps() {
    let server = TestServer::spawn().await;
    let mut subscriber = server.client().await;
    let stream = publish_stream(server.publisher().await, 2_000);
    tokio::time::sleep(Duration::from_millis(5)).await;
    subscriber.send(json!({"type": "subscribe", "topics": ["alerts"], "id": "mid"})).await;
    // An event the hub routed while the subscribe was being answered may precede the confirmation.
    let mut events = Vec::new();
    loop {
        let message = subscriber.recv().await;
        if message["type"] == "subscription_confirmed" {
            break;
        }
        events.push(message);
    }
    // An acknowledged publish from the same connection: every earlier one was handled.
    stream.await.unwrap().publish("devices", device("d", "online"), "end").await;
    events.extend(subscriber.drain_events().await);
    let got = seqs(&events);
    let first = *got.first().expect("the stream was still running after the subscribe");
    assert_eq!(
        got,
        (first..2_000).collect::<Vec<_>>(),
        "a gap or reorder after the subscription took effect"
    );
}

#[tokio::test]
async fn delivery_subscription_boundary_no_event_after_unsubscription_confirmed() {
    let server = TestServer::spawn().await;
    let mut subscriber = server.client().await;
    subscriber.subscribe_to(&["alerts"], Value::Null).await;
    let stream = publish_stream(server.publisher().await, 2_000);
    let before = receive_events(&mut subscriber, 20).await;
    subscriber.send(json!({"type": "unsubscribe", "topics": ["alerts"], "id": "stop"})).await;
    let mut got = seqs(&before);
    loop {
        let message = subscriber.recv().await;
        match message["type"].as_str() {
            Some("event") => got.push(message["data"]["seq"].as_u64().unwrap()),
            Some("unsubscription_confirmed") => break,
            _ => panic!("{message}"),
        }
    }
    assert_eq!(got, (0..got.len() as u64).collect::<Vec<_>>(), "events before the confirmation are complete");
    stream.await.unwrap().publish("devices", device("d", "online"), "end").await;
    let late = subscriber.drain_events().await;
    assert!(late.is_empty(), "{} events arrived after unsubscription_confirmed", late.len());
}

#[tokio::test]
async fn delivery_an_event_that_fails_the_filters_never_arrives() {
    let server = TestServer::spawn().await;
    let mut subscriber = server.client().await;
    subscriber
        .subscribe_to(&["alerts"], json!({"severity": ["critical", "low"], "device_id": ["d-1"]}))
        .await;
    let mut publisher = server.publisher().await;
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let mut expected = Vec::new();
    for seq in 0..300u64 {
        let severity = ["critical", "high", "medium", "low"][rng.random_range(0..4)];
        let device = ["d-1", "d-2"][rng.random_range(0..2)];
        let data = alert(severity, json!({"device_id": device, "seq": seq}));
        if ["critical", "low"].contains(&severity) && device == "d-1" {
            expected.push(seq);
        }
        publisher
            .send(json!({"type": "publish", "topic": "alerts", "event": "alert_created", "data": data}))
            .await;
    }
    publisher.publish("devices", device("d", "online"), "end").await;
    let events = subscriber.drain_events().await;
    assert_eq!(seqs(&events), expected);
}

/// A raw client with a tiny receive buffer, subscribed to alerts, that then never reads.
async fn stalled_subscriber(server: &TestServer) -> RawSocket {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(server.handle.local_addr()).await.unwrap();
    let bearer = format!("Bearer {}", server.token(false));
    let request = upgrade_request(&server.addr(), "/v1/ws", &[("Authorization", &bearer)]);
    let (mut raw, response) = RawSocket::upgrade(stream, request.as_bytes(), ANSWER).await.unwrap();
    assert_eq!(response.status, 101);
    raw.send(&OutFrame::text(r#"{"type":"subscribe","topics":["alerts"]}"#)).await.unwrap();
    for expected in ["connection_established", "subscription_confirmed"] {
        let text = raw.read_text(ANSWER).await.unwrap().unwrap();
        assert!(text.contains(expected), "{text}");
    }
    raw
}

#[tokio::test]
async fn delivery_slow_consumer_is_closed_1013_within_the_bound_and_others_are_not_delayed() {
    let server = TestServer::spawn_with(config_with(|c| c.outbound_queue = 16)).await;
    let slow = stalled_subscriber(&server).await;
    let mut fast = server.client().await;
    fast.subscribe_to(&["alerts"], Value::Null).await;
    let fast_reader = tokio::spawn(async move {
        let mut arrivals = Vec::new();
        while let Some(message) = fast.try_recv(ANSWER).await {
            if message["type"] == "event" {
                arrivals.push((message["data"]["seq"].as_u64().unwrap(), Instant::now()));
                if message["data"]["last"] == true {
                    break;
                }
            }
        }
        arrivals
    });
    let mut publisher = server.publisher().await;
    let padding = "x".repeat(8 * 1024);
    let mut acked_at = Vec::new();
    let mut overflow_at = None;
    for seq in 0..3_000u64 {
        let data = alert("high", json!({"seq": seq, "padding": padding}));
        let delivered = publisher.publish("alerts", data, &format!("p{seq}")).await;
        acked_at.push(Instant::now());
        if delivered == 1 {
            overflow_at = Some(Instant::now());
            break;
        }
        assert_eq!(delivered, 2);
    }
    let overflow_at = overflow_at.expect("the stalled subscriber's queue never overflowed");
    let metrics = server.handle.metrics();
    // Cut within 1 s of the overflow, plus at most 1 s waiting for a close handshake that cannot come.
    while metrics.connections_open.load(Ordering::Relaxed) > 2 {
        assert!(overflow_at.elapsed() < Duration::from_millis(2_200), "slow consumer not closed in time");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(metrics.slow_consumer_disconnects.load(Ordering::Relaxed), 1);
    assert!(
        metrics.events_dropped_full_queue.load(Ordering::Relaxed) >= 1,
        "the refused delivery is counted"
    );
    // The fast subscriber got every event, each promptly after its publish was acknowledged.
    let last_seq = acked_at.len() as u64 - 1;
    let extra = json!({"seq": last_seq + 1, "last": true});
    assert_eq!(publisher.publish("alerts", alert("high", extra), "after").await, 1);
    acked_at.push(Instant::now());
    let arrivals = fast_reader.await.unwrap();
    assert_eq!(arrivals.iter().map(|(s, _)| *s).collect::<Vec<_>>(), (0..=last_seq + 1).collect::<Vec<_>>());
    let worst = arrivals
        .iter()
        .map(|(seq, at)| at.saturating_duration_since(acked_at[*seq as usize]))
        .max()
        .unwrap_or_default();
    assert!(worst < Duration::from_millis(500), "the fast subscriber was delayed by {worst:?}");
    assert_slow_consumer_saw_a_prefix_then_1013(slow).await;
}

/// What the stalled client finds when it finally reads: events without a gap, then (when the
/// server could still write them) `CONNECTION_ERROR` "slow consumer" and close 1013, or EOF.
async fn assert_slow_consumer_saw_a_prefix_then_1013(mut slow: RawSocket) {
    let mut next_seq = 0;
    let mut saw_error = false;
    loop {
        match slow.read(ANSWER).await.unwrap() {
            Read::Frame(f) if f.opcode == opcode::TEXT => {
                let message: Value = serde_json::from_slice(&f.payload).unwrap();
                if message["type"] == "event" {
                    assert!(!saw_error, "an event after the error");
                    assert_eq!(message["data"]["seq"], next_seq, "a gap in what the slow consumer got");
                    next_seq += 1;
                } else {
                    assert_eq!(
                        (message["code"].as_str(), message["message"].as_str()),
                        (Some("CONNECTION_ERROR"), Some("slow consumer"))
                    );
                    saw_error = true;
                }
            }
            Read::Frame(f) if f.opcode == opcode::CLOSE => {
                assert_eq!(f.close_code(), Some(close::TRY_AGAIN_LATER));
                break;
            }
            Read::Frame(f) => panic!("unexpected frame {f:?}"),
            Read::Eof => break,
            Read::TimedOut => panic!("the slow consumer's connection was not closed"),
        }
    }
}
