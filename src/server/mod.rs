//! The bundled reference server: PROTOCOL.md, exactly, and fast enough to be the default target.
//!
//! - [`http`]: accepted sockets, routing, the upgrade (and its deadline), `/healthz`, `/metrics`, `POST /v1/events`;
//! - [`tls`]: the TLS handshake of an accepted socket (within the same deadline), then [`http`];
//! - [`auth`]: where the token comes from and whether it is good;
//! - [`connection`]: one WebSocket session, its queue writer, pings, expiry and close codes;
//! - [`hub`]: topics → subscribers, fan-out of one serialized frame to bounded queues;
//! - [`metrics`]: counters and their Prometheus rendering;
//! - [`faults`]: the deliberate bugs tests switch on to prove the harness catches them;
//! - [`throttle`]: the `throttle=N` fault's token bucket, shared by every connection;
//! - [`cluster`]: with a broker configured, many processes as one server;
//! - [`child`]: the server as a child process of the harness (`serve …`, its address read back).
//!
//! Embedding: [`start`] binds, spawns and returns a [`ServerHandle`] with the bound address; the
//! `serve` command and tests use the same entry point. [`bind_reuse_port`] makes the listener of
//! one of several processes sharing a port (`serve --workers N`).

pub mod auth;
pub mod child;
pub mod cluster;
pub mod connection;
mod delay_line;
pub mod faults;
pub mod http;
pub mod hub;
pub mod metrics;
mod status;
pub mod throttle;
pub mod tls;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

use cluster::{BrokerConfig, ClusterLink};
pub use faults::Faults;
use hub::Hub;
use metrics::ServerMetrics;

use crate::protocol::jwt::DEFAULT_DEV_SECRET;
use crate::tls::ServerTls;

/// Everything the server can be told; defaults are PROTOCOL.md's.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub jwt_secret: Vec<u8>,
    /// Largest client message, after its fragments are joined (§1).
    pub max_message_bytes: usize,
    /// Time a new TCP connection has to complete the HTTP upgrade (§1).
    pub handshake_timeout: Duration,
    /// Interval of the server's pings; two unanswered in a row close the connection (§1).
    pub ping_interval: Duration,
    /// Interval of the `system_status` heartbeat event; `None` turns it off (§3).
    pub status_interval: Option<Duration>,
    /// Outbound queue bound per connection, in messages (§5 rule 5).
    pub outbound_queue: usize,
    /// Connections beyond this get `CONNECTION_ERROR` and 1013 (§6).
    pub max_connections: usize,
    /// tungstenite read buffer per connection, allocated up front. Its 128 KiB default costs
    /// ~135 KiB per connection; each KiB here is about a KiB of RSS per idle connection
    /// (`examples/conn_memory.rs`). 2 KiB still takes several typical client messages per read,
    /// and a larger frame reserves its own length.
    pub ws_read_buffer_bytes: usize,
    /// Bytes of outbound frames collected before a socket write.
    pub ws_write_buffer_bytes: usize,
    /// Kernel send buffer per connection (`SO_SNDBUF`); `None` leaves the OS's autotuning.
    /// A bound makes a client that stops reading fill its queue (§5 rule 5) sooner.
    pub socket_send_buffer: Option<u32>,
    pub faults: Faults,
    /// Cluster mode: the broker that joins this process to the others of one logical server
    /// (`None`: a single process, whose hub is the whole server).
    pub broker: Option<BrokerConfig>,
    /// Serve `wss://` and `https://` with this certificate; `None`: plain `ws://` and `http://`.
    pub tls: Option<ServerTls>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            jwt_secret: DEFAULT_DEV_SECRET.as_bytes().to_vec(),
            max_message_bytes: 64 * 1024,
            handshake_timeout: Duration::from_secs(10),
            ping_interval: Duration::from_secs(30),
            status_interval: Some(Duration::from_secs(5)),
            outbound_queue: 4096,
            max_connections: 1_000_000,
            ws_read_buffer_bytes: 2 * 1024,
            ws_write_buffer_bytes: 8 * 1024,
            socket_send_buffer: None,
            faults: Faults::default(),
            broker: None,
            tls: None,
        }
    }
}

impl ServerConfig {
    /// The tungstenite configuration every connection gets.
    pub fn websocket_config(&self) -> WebSocketConfig {
        WebSocketConfig::default()
            .read_buffer_size(self.ws_read_buffer_bytes)
            .write_buffer_size(self.ws_write_buffer_bytes)
            .max_write_buffer_size(self.ws_write_buffer_bytes + 2 * self.max_message_bytes.max(64 * 1024))
            .max_message_size(Some(self.max_message_bytes))
            .max_frame_size(Some(self.max_message_bytes))
    }
}

/// State shared by every task of one server.
#[derive(Debug)]
pub struct Shared {
    pub config: ServerConfig,
    pub hub: Hub,
    pub metrics: Arc<ServerMetrics>,
    pub shutdown: CancellationToken,
    pub tracker: TaskTracker,
    /// Cluster mode: the link to the broker, through which every publish goes.
    pub cluster: Option<Arc<ClusterLink>>,
    /// The `throttle=N` fault's bucket, shared by every connection of this process.
    pub throttle: Option<throttle::Throttle>,
    /// Why the server stopped by itself, if it did (the broker failed).
    failure: OnceLock<String>,
    next_conn_id: AtomicU64,
    /// Connections admitted under `max_connections`, counted from the upgrade decision (not from
    /// when the session starts), so that concurrent upgrades cannot all pass the limit.
    admitted: AtomicUsize,
}

impl Shared {
    fn new(config: ServerConfig, cluster: Option<Arc<ClusterLink>>) -> Shared {
        let metrics = Arc::new(ServerMetrics::default());
        Shared {
            hub: Hub::new(Arc::clone(&metrics), config.faults.clone()),
            throttle: config.faults.throttle.map(throttle::Throttle::new),
            config,
            metrics,
            shutdown: CancellationToken::new(),
            tracker: TaskTracker::new(),
            cluster,
            failure: OnceLock::new(),
            next_conn_id: AtomicU64::new(1),
            admitted: AtomicUsize::new(0),
        }
    }

    /// Takes one of the `max_connections` places, if one is free; give it back with
    /// [`Shared::release_connection`] when the connection ends, however it ends.
    pub fn try_admit_connection(&self) -> bool {
        let limit = self.config.max_connections;
        self.admitted
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < limit).then_some(n + 1))
            .is_ok()
    }

    pub fn release_connection(&self) {
        self.admitted.fetch_sub(1, Ordering::AcqRel);
    }

    pub fn next_conn_id(&self) -> hub::ConnId {
        self.next_conn_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Stops the server because it can no longer keep the protocol's promises (fail-stop):
    /// every connection is closed as at shutdown, and [`ServerHandle::failure`] says why.
    pub fn fail(&self, reason: String) {
        if self.failure.set(reason).is_ok() {
            error!(reason = self.failure.get().map(String::as_str), "the server stops");
        }
        self.shutdown.cancel();
    }
}

/// Errors that stop the server from starting.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {addr}: {cause}")]
    Bind { addr: SocketAddr, cause: std::io::Error },
    #[error(transparent)]
    Broker(#[from] cluster::BrokerError),
}

/// A running server.
#[derive(Debug)]
pub struct ServerHandle {
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl ServerHandle {
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `ws://ADDR/v1/ws`, or `wss://` when the server speaks TLS.
    pub fn ws_url(&self) -> String {
        let scheme = if self.is_tls() { "wss" } else { "ws" };
        format!("{scheme}://{}/v1/ws", self.local_addr)
    }

    /// `http://ADDR`, or `https://` when the server speaks TLS.
    pub fn http_url(&self) -> String {
        let scheme = if self.is_tls() { "https" } else { "http" };
        format!("{scheme}://{}", self.local_addr)
    }

    pub fn is_tls(&self) -> bool {
        self.shared.config.tls.is_some()
    }

    pub fn metrics(&self) -> &ServerMetrics {
        &self.shared.metrics
    }

    pub fn config(&self) -> &ServerConfig {
        &self.shared.config
    }

    /// Cluster mode: the link to the broker.
    pub fn cluster(&self) -> Option<&ClusterLink> {
        self.shared.cluster.as_deref()
    }

    /// Serves `listener` too, with the same state (one more address of the same server).
    pub fn serve_also(&self, listener: TcpListener) {
        self.shared.tracker.spawn(accept_loop(listener, Arc::clone(&self.shared)));
    }

    /// Resolves when the server begins to stop: [`ServerHandle::shutdown`] or a failure.
    pub async fn stopping(&self) {
        self.shared.shutdown.cancelled().await;
    }

    /// Why the server stopped by itself (the broker failed), if it did.
    pub fn failure(&self) -> Option<&str> {
        self.shared.failure.get().map(String::as_str)
    }

    /// Stops accepting, closes every connection with `CONNECTION_ERROR` and 1001, and waits
    /// (a bounded time) for the connections to finish.
    pub async fn shutdown(self) {
        self.shared.shutdown.cancel();
        let _ = self.task.await;
    }
}

/// Binds `addr` and runs the server in the background.
pub async fn start(addr: SocketAddr, config: ServerConfig) -> Result<ServerHandle, ServerError> {
    let listener =
        TcpListener::bind(addr).await.map_err(|source| ServerError::Bind { addr, cause: source })?;
    start_on(listener, config).await
}

/// Runs the server on an already bound listener, in the background. With a broker configured,
/// joins it first: the server accepts nothing before it receives every event of the cluster.
pub async fn start_on(listener: TcpListener, config: ServerConfig) -> Result<ServerHandle, ServerError> {
    let local_addr = listener.local_addr().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let (cluster, connected) = match &config.broker {
        Some(broker) => {
            let (link, connected) = ClusterLink::connect(broker).await?;
            (Some(link), Some(connected))
        }
        None => (None, None),
    };
    let shared = Arc::new(Shared::new(config, cluster));
    if let (Some(link), Some(connected)) = (&shared.cluster, connected) {
        link.spawn(connected, &shared);
    }
    let task = tokio::spawn(serve(listener, Arc::clone(&shared)));
    Ok(ServerHandle { local_addr, shared, task })
}

/// A listener on `addr` that other sockets with `SO_REUSEPORT` (other processes of
/// `serve --workers N`) share: the kernel spreads new connections over all of them.
pub fn bind_reuse_port(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = reuse_port_socket(addr)?;
    socket.listen(4096)?;
    TcpListener::from_std(socket.into())
}

/// A socket bound to `addr` with `SO_REUSEPORT` and not listening: it holds the port (port 0
/// picks one) while the processes that will listen on it start. It takes no connections.
pub fn reserve_port(addr: SocketAddr) -> std::io::Result<(socket2::Socket, SocketAddr)> {
    let socket = reuse_port_socket(addr)?;
    let bound = socket.local_addr()?.as_socket().ok_or_else(|| std::io::Error::other("not an IP socket"))?;
    Ok((socket, bound))
}

fn reuse_port_socket(addr: SocketAddr) -> std::io::Result<socket2::Socket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    Ok(socket)
}

/// The accept loop, until shutdown; then the bounded drain of every connection.
async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    if let Some(interval) = shared.config.status_interval {
        shared.tracker.spawn(status::heartbeat(Arc::clone(&shared), interval));
    }
    accept_loop(listener, Arc::clone(&shared)).await;
    shared.tracker.close();
    let drained = tokio::time::timeout(Duration::from_secs(5), shared.tracker.wait()).await;
    info!(clean = drained.is_ok(), "server stopped");
}

/// Accepts connections on `listener` until shutdown.
async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut backoff = Duration::from_millis(5);
    loop {
        let accepted = tokio::select! {
            _ = shared.shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _peer)) => {
                backoff = Duration::from_millis(5);
                let _ = stream.set_nodelay(true);
                if let Some(bytes) = shared.config.socket_send_buffer {
                    let _ = socket2::SockRef::from(&stream).set_send_buffer_size(bytes as usize);
                }
                match &shared.config.tls {
                    None => shared.tracker.spawn(http::serve_connection(stream, Arc::clone(&shared))),
                    Some(tls) => {
                        shared.tracker.spawn(tls::serve_connection(stream, tls.clone(), Arc::clone(&shared)))
                    }
                };
            }
            Err(error) => {
                // Out of file descriptors, or a connection reset before accept: never fatal.
                warn!(%error, "accept failed; retrying in {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}
