//! Several servers in this process joined by one Redis broker: PROTOCOL.md §5 across processes
//! (every server has its own hub, connections and broker links, exactly as separate processes
//! would), `publish_ack.delivered` in cluster mode, and fail-stop when the broker goes.

use std::time::Duration;

use openframe_harness::server::cluster::BrokerConfig;
use openframe_harness::server::{self, ServerConfig};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::common::tools::Broker;
use crate::common::{ANSWER, Client, TestServer, alert, config_with, http_request};

/// `count` servers joined by `broker`, each with `change` applied to its config.
async fn cluster_with(
    broker: &Broker,
    count: usize,
    change: impl Fn(usize, &mut ServerConfig),
) -> Vec<TestServer> {
    let mut servers = Vec::with_capacity(count);
    for i in 0..count {
        let config = config_with(|c| {
            c.broker = Some(BrokerConfig::new(broker.url()));
            change(i, c);
        });
        servers.push(TestServer::spawn_with(config).await);
    }
    servers
}

async fn cluster(broker: &Broker, count: usize) -> Vec<TestServer> {
    cluster_with(broker, count, |_, _| {}).await
}

/// A publish message of an alert of `severity` carrying `seq`, with an id when `id` is given.
fn sequenced(seq: u64, severity: &str, id: Option<&str>) -> Value {
    let mut message = json!({"type": "publish", "topic": "alerts", "event": "alert_created",
                             "data": alert(severity, json!({"seq": seq}))});
    if let Some(id) = id {
        message["id"] = json!(id);
    }
    message
}

/// Reads `count` events (skipping nothing else: anything but an event fails).
async fn events(client: &mut Client, count: usize) -> Vec<u64> {
    let mut seqs = Vec::with_capacity(count);
    while seqs.len() < count {
        let message = client
            .try_recv(ANSWER)
            .await
            .unwrap_or_else(|| panic!("only {} of {count} events arrived: {seqs:?}", seqs.len()));
        assert_eq!(message["type"], "event", "{message}");
        seqs.push(message["data"]["seq"].as_u64().expect("seq"));
    }
    seqs
}

/// Reads the `publish_ack` of `id`; its `delivered`.
async fn ack(publisher: &mut Client, id: &str) -> u64 {
    let answer = publisher.recv().await;
    assert_eq!((answer["type"].as_str(), answer["id"].as_str()), (Some("publish_ack"), Some(id)), "{answer}");
    answer["delivered"].as_u64().expect("a count")
}

#[tokio::test]
async fn cluster_an_event_published_on_one_process_reaches_the_subscribers_of_every_process_once() {
    let broker = Broker::start();
    let servers = cluster(&broker, 3).await;
    let mut everything = Vec::new();
    let mut high_only = Vec::new();
    for server in &servers {
        let mut all = server.client().await;
        all.subscribe_to(&["alerts"], Value::Null).await;
        // Subscribed twice, still one delivery (§5 rule 1).
        all.subscribe_to(&["alerts", "devices"], Value::Null).await;
        everything.push(all);
        let mut high = server.client().await;
        high.subscribe_to(&["alerts"], json!({"severity": ["high"]})).await;
        high_only.push(high);
    }
    let mut publisher = servers[1].publisher().await;
    publisher.send(sequenced(0, "low", Some("p0"))).await;
    // `delivered` counts the queues of the accepting process: of its two alert subscribers, only
    // the unfiltered one takes a low alert.
    assert_eq!(ack(&mut publisher, "p0").await, 1);
    publisher.send(sequenced(1, "high", Some("p1"))).await;
    assert_eq!(ack(&mut publisher, "p1").await, 2);
    for (all, high) in everything.iter_mut().zip(&mut high_only) {
        assert_eq!(events(all, 2).await, [0, 1]);
        assert_eq!(events(high, 1).await, [1], "the filter held on every process (§5 rule 4)");
    }
    for client in everything.iter_mut().chain(&mut high_only) {
        client.expect_silence().await;
    }
}

#[tokio::test]
async fn cluster_each_publishers_order_holds_at_every_process() {
    let broker = Broker::start();
    let servers = cluster(&broker, 3).await;
    let mut subscribers = Vec::new();
    for server in &servers {
        let mut client = server.client().await;
        client.subscribe_to(&["alerts"], Value::Null).await;
        subscribers.push(client);
    }
    // Two publishers on different processes, interleaving as fast as they can write.
    let mut first = servers[0].publisher().await;
    let mut second = servers[2].publisher().await;
    for seq in 0..300 {
        first.send(sequenced(seq, "low", None)).await;
        second.send(sequenced(1_000 + seq, "low", None)).await;
    }
    let mut interleavings = Vec::new();
    for subscriber in &mut subscribers {
        let seqs = events(subscriber, 600).await;
        let from_first: Vec<u64> = seqs.iter().copied().filter(|s| *s < 1_000).collect();
        let from_second: Vec<u64> = seqs.iter().copied().filter(|s| *s >= 1_000).collect();
        assert_eq!(from_first, (0..300).collect::<Vec<_>>(), "§5 rule 2, first publisher");
        assert_eq!(from_second, (1_000..1_300).collect::<Vec<_>>(), "§5 rule 2, second publisher");
        interleavings.push(seqs);
    }
    // Beyond the protocol, a property of the design (ARCHITECTURE.md): Redis hands every process
    // one sequence, so every subscriber saw the same interleaving of the two publishers.
    assert!(interleavings.windows(2).all(|w| w[0] == w[1]), "subscribers saw different interleavings");
}

#[tokio::test]
async fn cluster_an_event_acknowledged_before_an_unsubscribe_arrives_even_on_a_lagging_process() {
    let broker = Broker::start();
    // The subscriber's process handles every broker message 300 ms late; without the barrier
    // of the unsubscribe, the event would reach its hub after the subscription was gone.
    let servers = cluster_with(&broker, 2, |i, c| {
        if i == 1 {
            c.faults.broker_lag = Some(Duration::from_millis(300));
        }
    })
    .await;
    let mut subscriber = servers[1].client().await;
    subscriber.subscribe_to(&["alerts"], Value::Null).await;
    let mut publisher = servers[0].publisher().await;
    publisher.send(sequenced(7, "low", Some("owed"))).await;
    ack(&mut publisher, "owed").await;
    subscriber.send(json!({"type": "unsubscribe", "topics": ["alerts"], "id": "u"})).await;
    let first = subscriber.recv().await;
    assert_eq!((first["type"].as_str(), first["data"]["seq"].as_u64()), (Some("event"), Some(7)), "{first}");
    let confirmed = subscriber.recv().await;
    assert_eq!(confirmed["type"], "unsubscription_confirmed", "{confirmed}");
    // And after the confirmation, nothing (§5 rule 3).
    publisher.send(sequenced(8, "low", Some("after"))).await;
    ack(&mut publisher, "after").await;
    assert!(
        subscriber.try_recv(Duration::from_millis(800)).await.is_none(),
        "an event after the unsubscribe"
    );
}

#[tokio::test]
async fn cluster_a_client_that_closes_right_after_an_ack_still_gets_the_event_first() {
    let broker = Broker::start();
    let servers = cluster_with(&broker, 2, |i, c| {
        if i == 1 {
            c.faults.broker_lag = Some(Duration::from_millis(300));
        }
    })
    .await;
    let mut subscriber = servers[1].client().await;
    subscriber.subscribe_to(&["alerts"], Value::Null).await;
    let mut publisher = servers[0].publisher().await;
    publisher.send(sequenced(9, "low", Some("owed"))).await;
    ack(&mut publisher, "owed").await;
    // The subscription holds until the server processes the Close: the event is owed, and the
    // server may still send it (RFC 6455 §5.5.1) before it answers the Close.
    let normal = CloseFrame { code: CloseCode::Normal, reason: "".into() };
    subscriber.ws.close(Some(normal)).await.expect("close sent");
    let event = subscriber.recv().await;
    assert_eq!((event["type"].as_str(), event["data"]["seq"].as_u64()), (Some("event"), Some(9)), "{event}");
    assert_eq!(subscriber.closed_with().await, Some(1000));
}

#[tokio::test]
async fn cluster_a_subscription_confirmed_on_one_process_gets_what_another_publishes_next() {
    let broker = Broker::start();
    let servers = cluster_with(&broker, 2, |i, c| {
        if i == 0 {
            c.faults.broker_lag = Some(Duration::from_millis(200));
        }
    })
    .await;
    let mut publisher = servers[0].publisher().await;
    for round in 0..5 {
        let mut subscriber = servers[1].client().await;
        subscriber.subscribe_to(&["alerts"], Value::Null).await;
        // Published after the confirmation arrived: owed (§5 rule 3), lag or not.
        let id = format!("r{round}");
        publisher.send(sequenced(round, "low", Some(&id))).await;
        assert_eq!(ack(&mut publisher, &id).await, 0, "the publisher's process has no subscriber");
        assert_eq!(events(&mut subscriber, 1).await, [round]);
    }
}

#[tokio::test]
async fn cluster_http_publishes_answer_with_the_deliveries_of_the_accepting_process() {
    let broker = Broker::start();
    let servers = cluster(&broker, 2).await;
    let mut here = servers[0].client().await;
    here.subscribe_to(&["alerts"], Value::Null).await;
    let mut there = Vec::new();
    for _ in 0..3 {
        let mut client = servers[1].client().await;
        client.subscribe_to(&["alerts"], Value::Null).await;
        there.push(client);
    }
    let bearer = format!("Bearer {}", servers[0].token(true));
    let body = json!({"topic": "alerts", "event": "alert_created", "data": alert("low", json!({"seq": 3}))});
    let (status, answer) = http_request(
        &servers[0].addr(),
        "POST",
        "/v1/events",
        &[("Authorization", &bearer), ("Content-Type", "application/json")],
        &body.to_string(),
    )
    .await;
    assert_eq!((status, answer.as_str()), (202, r#"{"delivered":1}"#));
    assert_eq!(events(&mut here, 1).await, [3]);
    for client in &mut there {
        assert_eq!(events(client, 1).await, [3]);
    }
    let (_, metrics) = servers[1].http_get("/metrics").await;
    assert!(metrics.contains("openframe_events_published_total 0\n"), "published here: none\n{metrics}");
    assert!(metrics.contains("openframe_broker_events_received_total 1\n"), "{metrics}");
    assert!(metrics.contains("openframe_events_delivered_total 3\n"), "{metrics}");
}

#[tokio::test]
async fn cluster_a_process_that_loses_the_broker_stops_and_closes_every_connection() {
    let mut broker = Broker::start();
    let servers = cluster(&broker, 1).await;
    let mut client = servers[0].client().await;
    client.subscribe_to(&["alerts"], Value::Null).await;
    broker.kill();
    let error = client.recv().await;
    assert_eq!(
        (error["type"].as_str(), error["code"].as_str()),
        (Some("error"), Some("CONNECTION_ERROR")),
        "{error}"
    );
    assert_eq!(client.closed_with().await, Some(1001));
    tokio::time::timeout(ANSWER, servers[0].handle.stopping()).await.expect("the server stops");
    let failure = servers[0].handle.failure().expect("a reason");
    assert!(failure.contains("broker"), "{failure}");
}

#[tokio::test]
async fn cluster_a_server_that_cannot_reach_its_broker_does_not_start() {
    let broker = Broker::start();
    let url = broker.url();
    drop(broker);
    let config = config_with(|c| c.broker = Some(BrokerConfig::new(url.clone())));
    let error =
        server::start("127.0.0.1:0".parse().unwrap(), config).await.expect_err("no broker, no server");
    let message = error.to_string();
    assert!(message.contains(&url) && message.contains("redis-server"), "{message}");
}
