//! Test helpers: an in-process reference server on port 0 and WebSocket clients that speak to it.

#![allow(dead_code)]

pub mod processes;
pub mod tools;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use openframe_harness::protocol::jwt::{self, Claims, DEFAULT_DEV_SECRET};
use openframe_harness::protocol::{ServerMessage, parse_server_message};
use openframe_harness::server::{self, ServerConfig, ServerHandle};
use openframe_harness::wire::{RawSocket, UpgradeResponse, upgrade_request};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long a test waits for an answer that must come.
pub const ANSWER: Duration = Duration::from_secs(3);
/// How long a test waits to be sure nothing comes.
pub const QUIET: Duration = Duration::from_millis(300);

pub struct TestServer {
    pub handle: ServerHandle,
}

/// The config tests start from: no heartbeat events to skip over.
pub fn quiet_config() -> ServerConfig {
    ServerConfig { status_interval: None, ..ServerConfig::default() }
}

/// The quiet config with `change` applied.
pub fn config_with(change: impl FnOnce(&mut ServerConfig)) -> ServerConfig {
    let mut config = quiet_config();
    change(&mut config);
    config
}

impl TestServer {
    pub async fn spawn() -> TestServer {
        TestServer::spawn_with(quiet_config()).await
    }

    pub async fn spawn_with(config: ServerConfig) -> TestServer {
        let handle = server::start("127.0.0.1:0".parse().unwrap(), config).await.expect("server starts");
        TestServer { handle }
    }

    pub fn addr(&self) -> String {
        self.handle.local_addr().to_string()
    }

    pub fn url(&self) -> String {
        self.handle.ws_url()
    }

    pub fn secret(&self) -> Vec<u8> {
        self.handle.config().jwt_secret.clone()
    }

    pub fn token(&self, publish: bool) -> String {
        jwt::mint(&self.secret(), &Claims::for_subject("tester", 3600, publish))
    }

    /// A token signed with this server's secret from literal claims JSON.
    pub fn token_from_claims(&self, claims_json: &str) -> String {
        jwt::mint_raw(r#"{"alg":"HS256","typ":"JWT"}"#, claims_json, Some(&self.secret()))
    }

    /// A raw socket upgraded on `path_and_query` with `headers`, before any frame is read.
    pub async fn raw_upgrade(
        &self,
        path_and_query: &str,
        headers: &[(&str, &str)],
    ) -> (RawSocket, UpgradeResponse) {
        let request = upgrade_request(&self.addr(), path_and_query, headers);
        RawSocket::connect(&self.addr(), request.as_bytes(), ANSWER).await.expect("raw upgrade")
    }

    /// A raw socket with a valid token, past `connection_established`.
    pub async fn raw_client(&self) -> RawSocket {
        let bearer = format!("Bearer {}", self.token(false));
        let (mut raw, response) = self.raw_upgrade("/v1/ws", &[("Authorization", &bearer)]).await;
        assert_eq!(response.status, 101);
        let hello = raw.read_text(ANSWER).await.expect("read").expect("connection_established");
        assert!(hello.contains("connection_established"), "{hello}");
        raw
    }

    /// Connects a client with these request headers and `path_and_query`.
    pub async fn connect_with(&self, path_and_query: &str, headers: &[(&str, &str)]) -> Client {
        let url = format!("ws://{}{path_and_query}", self.addr());
        Client::connect_headers(&url, headers).await
    }

    /// A subscriber-only client past `connection_established`.
    pub async fn client(&self) -> Client {
        self.established(false).await
    }

    /// A client with the `publish` scope past `connection_established`.
    pub async fn publisher(&self) -> Client {
        self.established(true).await
    }

    async fn established(&self, publish: bool) -> Client {
        let mut client = Client::connect(&self.url(), Some(&self.token(publish))).await;
        let hello = client.recv().await;
        assert_eq!(hello["type"], "connection_established", "{hello}");
        client
    }

    pub async fn http_get(&self, path: &str) -> (u16, String) {
        http_request(&self.addr(), "GET", path, &[], "").await
    }

    pub async fn shutdown(self) {
        self.handle.shutdown().await;
    }
}

pub fn default_secret() -> &'static [u8] {
    DEFAULT_DEV_SECRET.as_bytes()
}

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A well-behaved client (tokio-tungstenite).
pub struct Client {
    pub ws: Ws,
}

impl Client {
    /// Connects with the token in the `Authorization` header (or none).
    pub async fn connect(url: &str, token: Option<&str>) -> Client {
        let mut request = url.into_client_request().unwrap();
        if let Some(token) = token {
            let value = HeaderValue::from_str(&format!("Bearer {token}")).unwrap();
            request.headers_mut().insert("authorization", value);
        }
        let (ws, _) = tokio_tungstenite::connect_async(request).await.expect("upgrade succeeds");
        Client { ws }
    }

    /// Connects with arbitrary request headers.
    pub async fn connect_headers(url: &str, headers: &[(&str, &str)]) -> Client {
        let mut request = url.into_client_request().unwrap();
        for (name, value) in headers {
            let name = tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(name.as_bytes()).unwrap();
            request.headers_mut().append(name, HeaderValue::from_str(value).unwrap());
        }
        let (ws, _) = tokio_tungstenite::connect_async(request).await.expect("upgrade succeeds");
        Client { ws }
    }

    pub async fn send(&mut self, message: Value) {
        self.send_text(&message.to_string()).await;
    }

    pub async fn send_text(&mut self, text: &str) {
        self.ws.send(Message::Text(Utf8Bytes::from(text))).await.expect("send");
    }

    /// The next text message as JSON; panics when none comes in time.
    pub async fn recv(&mut self) -> Value {
        self.try_recv(ANSWER).await.expect("a message within the answer time")
    }

    /// The next text message within `wait`, skipping control frames.
    pub async fn try_recv(&mut self, wait: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let next = tokio::time::timeout_at(deadline, self.ws.next()).await.ok()??;
            match next {
                Ok(Message::Text(text)) => {
                    return Some(serde_json::from_str(&text).expect("server sends JSON"));
                }
                Ok(Message::Ping(_) | Message::Pong(_)) => continue,
                _ => return None,
            }
        }
    }

    /// Asserts that no text message arrives within [`QUIET`].
    pub async fn expect_silence(&mut self) {
        if let Some(message) = self.try_recv(QUIET).await {
            panic!("expected nothing, got {message}");
        }
    }

    /// Reads until the connection closes; the close frame's code (None: closed without one).
    pub async fn closed_with(&mut self) -> Option<u16> {
        let deadline = tokio::time::Instant::now() + ANSWER;
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => panic!("connection not closed within {ANSWER:?}"),
                Ok(None | Some(Err(_))) => return None,
                Ok(Some(Ok(Message::Close(frame)))) => {
                    // Keep polling so tungstenite sends its close reply, as a real client does.
                    let _ = tokio::time::timeout_at(deadline, async {
                        while let Some(Ok(_)) = self.ws.next().await {}
                    })
                    .await;
                    return frame.map(|f: CloseFrame| u16::from(f.code));
                }
                Ok(Some(Ok(_))) => continue,
            }
        }
    }

    pub async fn subscribe(&mut self, message: Value) -> Value {
        self.send(message).await;
        self.recv().await
    }

    /// Subscribes to `topics` with `filters` and asserts the confirmation.
    pub async fn subscribe_to(&mut self, topics: &[&str], filters: Value) {
        let mut message = serde_json::json!({"type": "subscribe", "topics": topics});
        if !filters.is_null() {
            message["filters"] = filters;
        }
        let answer = self.subscribe(message).await;
        assert_eq!(answer["type"], "subscription_confirmed", "{answer}");
    }

    /// Sends `text` and returns the answer, which must be an `error` valid per PROTOCOL.md.
    pub async fn error_for(&mut self, text: &str) -> Value {
        self.send_text(text).await;
        let answer = self.recv_checked().await;
        assert_eq!(answer["type"], "error", "{text} got {answer}");
        answer
    }

    /// The next text message, which must be valid per PROTOCOL.md (checked by the protocol core).
    pub async fn recv_checked(&mut self) -> Value {
        let text = self.recv_text(ANSWER).await.expect("a message within the answer time");
        if let Err(violation) = parse_server_message(&text) {
            panic!("invalid server message {text}: {violation}");
        }
        serde_json::from_str(&text).expect("server sends JSON")
    }

    /// The next text message as received, skipping control frames.
    pub async fn recv_text(&mut self, wait: Duration) -> Option<String> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let next = tokio::time::timeout_at(deadline, self.ws.next()).await.ok()??;
            match next {
                Ok(Message::Text(text)) => return Some(text.as_str().to_owned()),
                Ok(Message::Ping(_) | Message::Pong(_)) => continue,
                _ => return None,
            }
        }
    }

    /// Publishes `data` on `topic` with `id` and returns `publish_ack.delivered`.
    pub async fn publish(&mut self, topic: &str, data: Value, id: &str) -> u64 {
        let event = event_kind(topic);
        self.send(
            serde_json::json!({"type": "publish", "topic": topic, "event": event, "data": data, "id": id}),
        )
        .await;
        let ack = self.recv().await;
        assert_eq!((ack["type"].as_str(), ack["id"].as_str()), (Some("publish_ack"), Some(id)), "{ack}");
        ack["delivered"].as_u64().expect("delivered is a count")
    }

    /// The events queued to this connection before the server reads a probe sent now.
    ///
    /// The probe (an unknown message type) earns an `error`, queued behind every event already
    /// queued to this connection (one FIFO queue per connection, §5), so this needs no waiting
    /// for silence. Each probe counts as one protocol error in `/metrics`.
    pub async fn drain_events(&mut self) -> Vec<Value> {
        self.send_text(r#"{"type":"probe","id":"drain-probe"}"#).await;
        let mut events = Vec::new();
        loop {
            let message = self.recv().await;
            if message["type"] == "error" && message["id"] == "drain-probe" {
                return events;
            }
            assert_eq!(message["type"], "event", "{message}");
            events.push(message);
        }
    }

    /// Asserts that no message is queued to this connection (see [`Client::drain_events`]).
    pub async fn assert_nothing_queued(&mut self) {
        let events = self.drain_events().await;
        assert!(events.is_empty(), "expected nothing, got {events:?}");
    }

    /// Asserts the connection is still open and serving: a subscribe is still answered.
    pub async fn assert_still_serving(&mut self) {
        let answer = self
            .subscribe(serde_json::json!({"type": "subscribe", "topics": ["devices"], "id": "alive"}))
            .await;
        assert_eq!(
            (answer["type"].as_str(), answer["id"].as_str()),
            (Some("subscription_confirmed"), Some("alive")),
            "{answer}"
        );
    }
}

/// The event kind of a topic name.
pub fn event_kind(topic: &str) -> &'static str {
    match topic {
        "devices" => "device_update",
        "alerts" => "alert_created",
        _ => "system_status",
    }
}

/// Parses a server message with the protocol core, panicking on a violation.
pub fn checked(text: &str) -> ServerMessage<'_> {
    parse_server_message(text).unwrap_or_else(|v| panic!("invalid server message {text}: {v}"))
}

/// One HTTP/1.1 request on a fresh connection: (status, body).
pub async fn http_request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(ANSWER, stream.read_to_end(&mut response)).await.expect("response in time").unwrap();
    let response = String::from_utf8_lossy(&response).into_owned();
    let status = response.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

/// A valid alert `data` object with `extra` fields merged in.
pub fn alert(severity: &str, extra: Value) -> Value {
    let mut data =
        serde_json::json!({"id": "a-1", "title": "New Alert", "severity": severity, "device_id": "d-1"});
    if let (Some(map), Some(extra)) = (data.as_object_mut(), extra.as_object()) {
        map.extend(extra.clone());
    }
    data
}

/// A valid `system_status` `data` object.
pub fn status(status: &str) -> Value {
    serde_json::json!({"status": status, "metrics": {"cpu_usage": 10, "memory_usage": 20.5}})
}

/// A valid device `data` object.
pub fn device(id: &str, status: &str) -> Value {
    serde_json::json!({"id": id, "status": status, "last_seen": "2024-03-20T10:00:00Z"})
}

/// Held by the tests whose figures depend on a calm machine (latency compared across runs)
/// and by those that load it most (a browser, Prometheus): on two cores, one of each at the same
/// time makes the first measure the second.
pub fn heavy_or_timed() -> std::sync::MutexGuard<'static, ()> {
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Runs `test` on a two-thread runtime while holding [`heavy_or_timed`].
pub fn timed_alone<F: std::future::Future>(test: F) -> F::Output {
    let _alone = heavy_or_timed();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(test)
}
