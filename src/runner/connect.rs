//! Opening client WebSocket connections: TCP (optionally with a small receive buffer), the
//! upgrade with the token in the header or the query, small tungstenite buffers.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

pub type WsStream = WebSocketStream<TcpStream>;

/// Why a connection attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("TCP connect failed: {0}")]
    Tcp(#[source] std::io::Error),
    #[error("upgrade refused: {0}")]
    Upgrade(String),
    #[error("invalid target URL {0:?}")]
    BadUrl(String),
}

/// Connects clients to one target.
#[derive(Debug, Clone)]
pub struct Connector {
    ws_url: String,
    addr: SocketAddr,
    config: WebSocketConfig,
    timeout: Duration,
    /// Local addresses client sockets are bound to, in turn (empty: the kernel chooses). One
    /// source address reaches only ~28k connections to one server port.
    sources: Arc<[IpAddr]>,
}

/// tungstenite buffers for clients: 4 KiB read buffer (its 128 KiB default costs ~135 KiB per
/// connection and is zero-filled before every read); writes go out frame by frame.
pub fn client_websocket_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_write_buffer_size(1 << 20)
        .max_message_size(Some(16 << 20))
        .max_frame_size(Some(16 << 20))
}

impl Connector {
    /// Resolves the target's address once.
    pub async fn new(ws_url: &str, timeout: Duration) -> Result<Connector, ConnectError> {
        let request = ws_url.into_client_request().map_err(|_| ConnectError::BadUrl(ws_url.to_owned()))?;
        let uri = request.uri();
        let host = uri.host().ok_or_else(|| ConnectError::BadUrl(ws_url.to_owned()))?;
        let port = uri.port_u16().unwrap_or(if uri.scheme_str() == Some("wss") { 443 } else { 80 });
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let addr = tokio::net::lookup_host((host, port))
            .await
            .map_err(ConnectError::Tcp)?
            .next()
            .ok_or_else(|| ConnectError::BadUrl(ws_url.to_owned()))?;
        Ok(Connector {
            ws_url: ws_url.to_owned(),
            addr,
            config: client_websocket_config(),
            timeout,
            sources: Arc::new([]),
        })
    }

    /// Binds client `i`'s socket to `sources[i % len]`.
    pub fn with_sources(mut self, sources: Vec<IpAddr>) -> Connector {
        self.sources = sources.into();
        self
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Opens a TCP connection (within the timeout) for client `source_index`.
    pub async fn tcp(
        &self,
        receive_buffer: Option<u32>,
        source_index: u64,
    ) -> Result<TcpStream, ConnectError> {
        let socket = if self.addr.is_ipv4() { TcpSocket::new_v4() } else { TcpSocket::new_v6() }
            .map_err(ConnectError::Tcp)?;
        if !self.sources.is_empty() {
            let source = self.sources[(source_index % self.sources.len() as u64) as usize];
            socket.bind(SocketAddr::new(source, 0)).map_err(ConnectError::Tcp)?;
        }
        if let Some(bytes) = receive_buffer {
            socket.set_recv_buffer_size(bytes).map_err(ConnectError::Tcp)?;
        }
        let stream = tokio::time::timeout(self.timeout, socket.connect(self.addr))
            .await
            .map_err(|_| ConnectError::Timeout(self.timeout))?
            .map_err(ConnectError::Tcp)?;
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }

    /// Opens a WebSocket presenting `token` in the `Authorization` header, or in the query.
    pub async fn connect(
        &self,
        token: Option<&str>,
        token_in_query: bool,
        receive_buffer: Option<u32>,
        source_index: u64,
    ) -> Result<WsStream, ConnectError> {
        let url = match (token, token_in_query) {
            (Some(token), true) => {
                let separator = if self.ws_url.contains('?') { '&' } else { '?' };
                format!("{}{separator}access_token={token}", self.ws_url)
            }
            _ => self.ws_url.clone(),
        };
        let mut request =
            url.as_str().into_client_request().map_err(|_| ConnectError::BadUrl(url.clone()))?;
        if let (Some(token), false) = (token, token_in_query) {
            let value = HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|_| ConnectError::Upgrade("token is not a valid header value".into()))?;
            request.headers_mut().insert("authorization", value);
        }
        let stream = self.tcp(receive_buffer, source_index).await?;
        let upgrade = tokio_tungstenite::client_async_with_config(request, stream, Some(self.config));
        match tokio::time::timeout(self.timeout, upgrade).await {
            Err(_) => Err(ConnectError::Timeout(self.timeout)),
            Ok(Err(error)) => Err(ConnectError::Upgrade(error.to_string())),
            Ok(Ok((ws, _response))) => Ok(ws),
        }
    }
}
