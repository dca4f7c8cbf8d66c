//! Opening client connections: TCP (optionally with a small receive buffer), TLS for `wss://`
//! (SNI, ALPN, each client's own session cache; `crate::tls`), the upgrade with the token in the
//! header or the query, small tungstenite buffers. Each step is timed on its own, so the connect
//! latency splits into TCP connect, TLS handshake and upgrade + `connection_established`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::metrics::ShardStats;
use crate::results::LatencyMetric;
use crate::tls::client::server_name;
use crate::tls::{ClientStream, ClientTls, ClientTlsOptions, Handshake, StampedTcp, TlsError};

pub type WsStream = WebSocketStream<ClientStream>;

/// Why a connection attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("TCP connect failed: {0}")]
    Tcp(#[source] std::io::Error),
    #[error(transparent)]
    Tls(#[from] TlsError),
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
    /// TLS settings; used for the WebSocket when `ws_tls` is set, and for `https://` publishing.
    tls: Option<ClientTls>,
    /// The target is `wss://`: the name its certificate must be valid for (and the SNI).
    ws_tls: Option<ServerName<'static>>,
    /// Local addresses client sockets are bound to, in turn (empty: the kernel chooses). One
    /// source address reaches only ~28k connections to one server port.
    sources: Arc<[IpAddr]>,
    /// Ask the kernel to stamp each WebSocket read with its receive time.
    kernel_stamps: bool,
}

/// One client's TLS state across its reconnects: its own session cache, so it resumes its own
/// sessions (see `crate::tls::client`). Empty for a plain target.
#[derive(Debug, Clone, Default)]
pub struct ClientSession(Option<ClientTls>);

/// How long each step of a connect took.
#[derive(Debug, Clone, Copy)]
pub struct ConnectTimings {
    pub tcp: Duration,
    /// The TLS handshake, for a `wss://` target.
    pub tls: Option<Handshake>,
    /// When the upgrade request started: the upgrade metric runs from here to `connection_established`.
    pub upgrade_started: Instant,
}

impl ConnectTimings {
    /// Records the TCP and TLS steps, and counts the handshake in the counters of `slot`.
    pub fn record(&self, stats: &mut ShardStats, slot: usize) {
        stats.histograms.record(LatencyMetric::TcpConnect, self.tcp.as_micros() as u64);
        if let Some(handshake) = self.tls {
            stats.histograms.record(LatencyMetric::TlsHandshake, handshake.elapsed.as_micros() as u64);
            if let Some(counters) = stats.counters.get_mut(slot) {
                counters.tls_handshakes += 1;
                counters.tls_resumed += u64::from(handshake.resumed);
            }
        }
    }
}

/// An open WebSocket and what opening it took.
#[derive(Debug)]
pub struct Connected {
    pub ws: WsStream,
    pub timings: ConnectTimings,
}

/// tungstenite buffers for clients: 2 KiB read buffer (its 128 KiB default costs ~135 KiB per
/// connection and is zero-filled before every read; 2 KiB still holds several events per read);
/// writes go out frame by frame.
pub fn client_websocket_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(2 * 1024)
        .write_buffer_size(0)
        .max_write_buffer_size(1 << 20)
        .max_message_size(Some(16 << 20))
        .max_frame_size(Some(16 << 20))
}

impl Connector {
    /// Resolves the target's address once. A `wss://` target uses `tls` (the platform's roots
    /// when `None`); `tls` is kept for `https://` publishing too.
    pub async fn new(
        ws_url: &str,
        timeout: Duration,
        tls: Option<ClientTls>,
    ) -> Result<Connector, ConnectError> {
        let request = ws_url.into_client_request().map_err(|_| ConnectError::BadUrl(ws_url.to_owned()))?;
        let uri = request.uri();
        let host = uri.host().ok_or_else(|| ConnectError::BadUrl(ws_url.to_owned()))?;
        let secure = uri.scheme_str() == Some("wss");
        let port = uri.port_u16().unwrap_or(if secure { 443 } else { 80 });
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let addr = tokio::net::lookup_host((host, port))
            .await
            .map_err(ConnectError::Tcp)?
            .next()
            .ok_or_else(|| ConnectError::BadUrl(ws_url.to_owned()))?;
        let tls = match tls {
            None if secure => Some(ClientTls::new(&ClientTlsOptions::default())?),
            tls => tls,
        };
        let ws_tls = if secure { Some(server_name(host)?) } else { None };
        Ok(Connector {
            ws_url: ws_url.to_owned(),
            addr,
            config: client_websocket_config(),
            timeout,
            tls,
            ws_tls,
            sources: Arc::new([]),
            kernel_stamps: true,
        })
    }

    /// Whether WebSocket reads carry kernel receive stamps (when the platform gives them).
    pub fn with_kernel_stamps(mut self, on: bool) -> Connector {
        self.kernel_stamps = on;
        self
    }

    /// Binds client `i`'s socket to `sources[i % len]`.
    pub fn with_sources(mut self, sources: Vec<IpAddr>) -> Connector {
        self.sources = sources.into();
        self
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The TLS settings, when the target (WebSocket or HTTP) uses TLS.
    pub fn tls(&self) -> Option<&ClientTls> {
        self.tls.as_ref()
    }

    /// Whether the WebSocket target is `wss://`.
    pub fn is_tls(&self) -> bool {
        self.ws_tls.is_some()
    }

    /// The SNI the clients send: the URL's host name; empty for an IP address or a plain target.
    pub fn sni(&self) -> String {
        match &self.ws_tls {
            Some(ServerName::DnsName(name)) => name.as_ref().to_owned(),
            _ => String::new(),
        }
    }

    /// A new client's TLS state (nothing for a plain target).
    pub fn session(&self) -> ClientSession {
        ClientSession(self.tls.as_ref().filter(|_| self.is_tls()).map(ClientTls::with_own_sessions))
    }

    /// Opens a TCP connection (within the timeout) for client `source_index`.
    pub async fn tcp(
        &self,
        receive_buffer: Option<u32>,
        source_index: u64,
    ) -> Result<TcpStream, ConnectError> {
        let source = (!self.sources.is_empty())
            .then(|| self.sources[(source_index % self.sources.len() as u64) as usize]);
        tcp_to(self.addr, source, receive_buffer, self.timeout).await
    }

    /// TCP, then TLS for a `wss://` target: the stream the upgrade is sent on.
    pub async fn open(
        &self,
        session: &ClientSession,
        receive_buffer: Option<u32>,
        source_index: u64,
    ) -> Result<(ClientStream, ConnectTimings), ConnectError> {
        let started = Instant::now();
        let tcp = self.tcp(receive_buffer, source_index).await?;
        let tcp_time = started.elapsed();
        // Frames are timed by when they reached the socket, not by when the loop read them.
        let tcp = if self.kernel_stamps {
            StampedTcp::with_kernel_stamps(tcp).map_err(ConnectError::Tcp)?
        } else {
            StampedTcp::plain(tcp)
        };
        let (stream, handshake) = match (&self.ws_tls, session.0.as_ref().or(self.tls.as_ref())) {
            (Some(name), Some(tls)) => {
                let (stream, handshake) = tls.handshake(tcp, name, self.timeout).await?;
                (ClientStream::from(stream), Some(handshake))
            }
            _ => (ClientStream::from(tcp), None),
        };
        Ok((stream, ConnectTimings { tcp: tcp_time, tls: handshake, upgrade_started: Instant::now() }))
    }

    /// Opens a connection to `authority` (`host:port`) of the target's HTTP side, over TLS when
    /// `secure` (`https://`), with the client's session when it has one.
    pub async fn open_http(
        &self,
        session: &ClientSession,
        authority: &str,
        secure: bool,
    ) -> Result<ClientStream, ConnectError> {
        let addr = tokio::net::lookup_host(authority)
            .await
            .map_err(ConnectError::Tcp)?
            .next()
            .ok_or_else(|| ConnectError::BadUrl(authority.to_owned()))?;
        let tcp = tcp_to(addr, None, None, self.timeout).await?;
        if !secure {
            return Ok(ClientStream::from(tcp));
        }
        let tls = match session.0.as_ref().or(self.tls.as_ref()) {
            Some(tls) => tls.clone(),
            None => ClientTls::new(&ClientTlsOptions::default())?,
        };
        let host = authority.rsplit_once(':').map_or(authority, |(host, _)| host);
        let (stream, _) = tls.handshake(StampedTcp::plain(tcp), &server_name(host)?, self.timeout).await?;
        Ok(ClientStream::from(stream))
    }

    /// Opens a WebSocket presenting `token` in the `Authorization` header, or in the query.
    pub async fn connect(
        &self,
        session: &ClientSession,
        token: Option<&str>,
        token_in_query: bool,
        receive_buffer: Option<u32>,
        source_index: u64,
    ) -> Result<Connected, ConnectError> {
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
        let (stream, timings) = self.open(session, receive_buffer, source_index).await?;
        let upgrade = tokio_tungstenite::client_async_with_config(request, stream, Some(self.config));
        match tokio::time::timeout(self.timeout, upgrade).await {
            Err(_) => Err(ConnectError::Timeout(self.timeout)),
            Ok(Err(error)) => Err(ConnectError::Upgrade(error.to_string())),
            Ok(Ok((ws, _response))) => Ok(Connected { ws, timings }),
        }
    }
}

async fn tcp_to(
    addr: SocketAddr,
    source: Option<IpAddr>,
    receive_buffer: Option<u32>,
    timeout: Duration,
) -> Result<TcpStream, ConnectError> {
    let socket =
        if addr.is_ipv4() { TcpSocket::new_v4() } else { TcpSocket::new_v6() }.map_err(ConnectError::Tcp)?;
    if let Some(source) = source {
        // Port 0 at bind() would reserve a port for every destination, capping a source address
        // at one ephemeral range in all (and making each bind search an almost full range);
        // with IP_BIND_ADDRESS_NO_PORT the port is chosen at connect() per destination.
        bind_address_no_port(&socket).map_err(ConnectError::Tcp)?;
        socket.bind(SocketAddr::new(source, 0)).map_err(ConnectError::Tcp)?;
    }
    if let Some(bytes) = receive_buffer {
        socket.set_recv_buffer_size(bytes).map_err(ConnectError::Tcp)?;
    }
    let stream = tokio::time::timeout(timeout, socket.connect(addr))
        .await
        .map_err(|_| ConnectError::Timeout(timeout))?
        .map_err(ConnectError::Tcp)?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// Sets `IP_BIND_ADDRESS_NO_PORT` (Linux ≥ 4.2; socket2 has no setter for it).
fn bind_address_no_port(socket: &TcpSocket) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let on: libc::c_int = 1;
    // SAFETY: a valid socket descriptor, and a pointer to an int of the length given.
    let result = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if result == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
}
