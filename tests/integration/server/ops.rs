//! PROTOCOL.md §7 and the `CONNECTION_ERROR` rows of §6: `/healthz`, `/metrics`, graceful
//! shutdown and the connection limit.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use openframe_harness::protocol::close;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::{ANSWER, Client, TestServer, alert, config_with};

/// The raw HTTP response to `GET path`.
async fn get_raw(server: &TestServer, path: &str) -> String {
    let mut stream = TcpStream::connect(server.addr()).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", server.addr());
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(ANSWER, stream.read_to_end(&mut response)).await.expect("in time").unwrap();
    String::from_utf8(response).unwrap()
}

/// Samples of a Prometheus text exposition, checked line by line: every sample's family has a
/// `# TYPE` line before it and every value is a number.
fn parse_prometheus(text: &str) -> HashMap<String, f64> {
    let mut typed = Vec::new();
    let mut samples = HashMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
            assert!(["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind), "{line}");
            typed.push(name.to_owned());
        } else if line.starts_with('#') || line.is_empty() {
            continue;
        } else {
            let (series, value) = line.rsplit_once(' ').expect("name value");
            let family = series.split('{').next().unwrap();
            assert!(typed.iter().any(|t| t == family), "{family} has no # TYPE line before its samples");
            let value: f64 = value.parse().unwrap_or_else(|_| panic!("not a number: {line}"));
            samples.insert(series.to_owned(), value);
        }
    }
    samples
}

async fn metrics(server: &TestServer) -> HashMap<String, f64> {
    let (status, body) = server.http_get("/metrics").await;
    assert_eq!(status, 200);
    parse_prometheus(&body)
}

#[tokio::test]
async fn ops_healthz_is_200_ok() {
    let server = TestServer::spawn().await;
    assert_eq!(server.http_get("/healthz").await, (200, "ok".to_owned()));
}

#[tokio::test]
async fn ops_metrics_is_prometheus_text_with_the_families_of_section_7() {
    let server = TestServer::spawn().await;
    let response = get_raw(&server, "/metrics").await;
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.to_ascii_lowercase().contains("content-type: text/plain; version=0.0.4"), "{head}");
    let samples = parse_prometheus(body);
    for series in [
        "openframe_connections_open",
        "openframe_subscriptions{topic=\"devices\"}",
        "openframe_subscriptions{topic=\"alerts\"}",
        "openframe_subscriptions{topic=\"system_status\"}",
        "openframe_events_published_total",
        "openframe_events_delivered_total",
        "openframe_slow_consumer_disconnects_total",
        "openframe_auth_failures_total",
        "openframe_protocol_errors_total",
    ] {
        assert!(samples.contains_key(series), "missing {series} in\n{body}");
    }
}

#[tokio::test]
async fn ops_metrics_count_what_the_clients_saw() {
    let server = TestServer::spawn().await;
    let mut a = server.client().await;
    a.subscribe_to(&["alerts"], Value::Null).await;
    let mut b = server.client().await;
    b.subscribe_to(&["alerts", "devices"], json!({"severity": ["high"]})).await;
    let mut rejected = Client::connect(&server.url(), Some("a.b.c")).await;
    assert_eq!(rejected.closed_with().await, Some(close::POLICY_VIOLATION));
    a.error_for("nonsense").await;
    a.error_for(r#"{"type":"subscribe","topics":["nope"]}"#).await;
    let mut publisher = server.publisher().await;
    let mut delivered = 0;
    for severity in ["low", "high", "critical"] {
        delivered += publisher.publish("alerts", alert(severity, json!({})), severity).await;
    }
    let m = metrics(&server).await;
    let seen = a.drain_events().await.len() + b.drain_events().await.len();
    assert_eq!((delivered, seen), (4, 4));
    assert_eq!(m["openframe_connections_open"], 3.0);
    assert_eq!(m["openframe_subscriptions{topic=\"alerts\"}"], 2.0);
    assert_eq!(m["openframe_subscriptions{topic=\"devices\"}"], 1.0);
    assert_eq!(m["openframe_subscriptions{topic=\"system_status\"}"], 0.0);
    assert_eq!(m["openframe_events_published_total"], 3.0);
    assert_eq!(m["openframe_events_delivered_total"], 4.0);
    assert_eq!(m["openframe_auth_failures_total"], 1.0);
    assert_eq!(m["openframe_protocol_errors_total"], 2.0);
    assert_eq!(m["openframe_slow_consumer_disconnects_total"], 0.0);
    // A connection that goes away takes its subscriptions with it.
    drop(b);
    let deadline = Instant::now() + ANSWER;
    loop {
        let m = metrics(&server).await;
        if m["openframe_connections_open"] == 2.0 && m["openframe_subscriptions{topic=\"devices\"}"] == 0.0 {
            break;
        }
        assert!(Instant::now() < deadline, "a closed connection is still counted: {m:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn ops_graceful_shutdown_sends_connection_error_server_shutting_down_then_1001() {
    let server = TestServer::spawn().await;
    let addr = server.addr();
    let mut clients = Vec::new();
    for _ in 0..3 {
        let mut client = server.client().await;
        client.subscribe_to(&["alerts"], Value::Null).await;
        clients.push(client);
    }
    let started = Instant::now();
    let shutdown = tokio::spawn(server.shutdown());
    for client in &mut clients {
        let error = client.recv_checked().await;
        assert_eq!(
            (error["type"].as_str(), error["code"].as_str()),
            (Some("error"), Some("CONNECTION_ERROR"))
        );
        assert_eq!(error["message"], "server shutting down");
        assert_eq!(client.closed_with().await, Some(close::GOING_AWAY));
    }
    tokio::time::timeout(ANSWER, shutdown).await.expect("shutdown finishes").unwrap();
    assert!(started.elapsed() < Duration::from_secs(2), "shutdown took {:?}", started.elapsed());
    assert!(TcpStream::connect(&addr).await.is_err(), "still accepting after shutdown");
}

#[tokio::test]
async fn ops_connection_limit_answers_connection_error_then_1013() {
    let server = TestServer::spawn_with(config_with(|c| c.max_connections = 2)).await;
    let first = server.client().await;
    let mut second = server.client().await;
    let mut third = Client::connect(&server.url(), Some(&server.token(false))).await;
    let error = third.recv_checked().await;
    assert_eq!((error["type"].as_str(), error["code"].as_str()), (Some("error"), Some("CONNECTION_ERROR")));
    assert_eq!(third.closed_with().await, Some(close::TRY_AGAIN_LATER));
    second.assert_still_serving().await;
    // A freed slot is available again.
    drop(first);
    let deadline = Instant::now() + ANSWER;
    loop {
        let mut retry = Client::connect(&server.url(), Some(&server.token(false))).await;
        let answer = retry.recv_checked().await;
        if answer["type"] == "connection_established" {
            break;
        }
        assert!(Instant::now() < deadline, "the slot of a closed connection was never freed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn ops_connection_limit_holds_under_concurrent_upgrades() {
    let server = TestServer::spawn_with(config_with(|c| c.max_connections = 5)).await;
    let url = server.url();
    let token = server.token(false);
    let attempts: Vec<_> = (0..30)
        .map(|_| {
            let (url, token) = (url.clone(), token.clone());
            tokio::spawn(async move {
                let mut client = Client::connect(&url, Some(&token)).await;
                let first = client.recv().await;
                (first["type"] == "connection_established", client)
            })
        })
        .collect();
    let mut established = 0;
    let mut clients = Vec::new();
    for attempt in attempts {
        let (ok, client) = attempt.await.unwrap();
        established += usize::from(ok);
        clients.push(client);
    }
    assert_eq!(established, 5, "the limit is 5 connections");
}
