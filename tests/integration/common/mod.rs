//! Test helpers: an in-process reference server on port 0 and WebSocket clients that speak to it.

#![allow(dead_code)]

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use openframe_harness::protocol::jwt::{self, Claims, DEFAULT_DEV_SECRET};
use openframe_harness::server::{self, ServerConfig, ServerHandle};
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
                Ok(Some(Ok(Message::Close(frame)))) => return frame.map(|f: CloseFrame| u16::from(f.code)),
                Ok(Some(Ok(_))) => continue,
            }
        }
    }

    pub async fn subscribe(&mut self, message: Value) -> Value {
        self.send(message).await;
        self.recv().await
    }
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

/// A valid device `data` object.
pub fn device(id: &str, status: &str) -> Value {
    serde_json::json!({"id": id, "status": status, "last_seen": "2024-03-20T10:00:00Z"})
}
