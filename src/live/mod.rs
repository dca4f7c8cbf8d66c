//! The live endpoint of `run --live ADDR`: while a run goes on (and until its report is
//! written) it serves `GET /metrics` (the run so far in the Prometheus text format, through
//! `prometheus-client`), `GET /events` (server-sent events: one JSON snapshot a second, with
//! the charts drawn) and `GET /` (a self-contained page that shows them).
//!
//! Its only input is a [`LiveSnapshot`] per second through a `tokio::sync::watch` channel: the
//! run publishes and moves on, and the endpoint runs on its own thread and runtime
//! ([`LiveServer`]), so a stuck browser or a flood of scrapes costs the run nothing but a
//! share of the CPU. This module must not know how the run computes what it publishes: it
//! owns the snapshot type, the renderings and the HTTP side.
//!
//! Its modules:
//!
//! - [`snapshot`]: what the run knows each second; latency as Prometheus buckets;
//! - [`exposition`] renders `/metrics`;
//! - [`payload`] and [`charts`]: the `/events` JSON and its SVG charts (the report's renderer);
//! - [`page`] is `/`;
//! - [`serve`]: the HTTP/1 server on a given listener, until a cancellation token fires.

pub mod charts;
pub mod exposition;
pub mod page;
pub mod payload;
pub mod serve;
pub mod snapshot;

pub use snapshot::{LATENCY_BUCKETS_S, LatencyBuckets, LiveSecond, LiveSnapshot, RunState};

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Why the live endpoint cannot start.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// Bad input (exit 2).
    #[error("invalid --live address {0:?}: expected HOST:PORT, e.g. 127.0.0.1:0")]
    InvalidAddress(String),
    /// The address cannot be bound: in use or not ours (exit 3).
    #[error("cannot serve the live endpoint on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("cannot start the live endpoint's thread: {0}")]
    Thread(std::io::Error),
}

impl LiveError {
    /// The exit code of CLI.md.
    pub fn exit_code(&self) -> u8 {
        match self {
            LiveError::InvalidAddress(_) => 2,
            LiveError::Bind { .. } | LiveError::Thread(_) => 3,
        }
    }
}

/// Parses `HOST:PORT` (an IP address; `localhost` is taken as 127.0.0.1).
pub fn parse_address(text: &str) -> Result<SocketAddr, LiveError> {
    crate::util::url::parse_socket_addr(text).ok_or_else(|| LiveError::InvalidAddress(text.to_owned()))
}

/// Binds the live endpoint's address now, so that a port in use stops the run before it starts.
pub fn bind(addr: SocketAddr) -> Result<std::net::TcpListener, LiveError> {
    let listener = std::net::TcpListener::bind(addr).map_err(|source| LiveError::Bind { addr, source })?;
    listener.set_nonblocking(true).map_err(|source| LiveError::Bind { addr, source })?;
    Ok(listener)
}

/// The live endpoint on its own thread (a current-thread runtime), fed by [`LiveServer::publish`].
pub struct LiveServer {
    addr: SocketAddr,
    snapshots: watch::Sender<Arc<LiveSnapshot>>,
    cancel: CancellationToken,
    thread: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl std::fmt::Debug for LiveServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveServer").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl LiveServer {
    /// Starts serving on `listener` (from [`bind`]) with `first` as the snapshot until the
    /// first [`publish`](LiveServer::publish).
    pub fn start(listener: std::net::TcpListener, first: LiveSnapshot) -> Result<LiveServer, LiveError> {
        let addr = listener.local_addr().map_err(LiveError::Thread)?;
        let (snapshots, receiver) = watch::channel(Arc::new(first));
        let cancel = CancellationToken::new();
        let token = cancel.clone();
        let runtime =
            tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(LiveError::Thread)?;
        let listener = {
            let _guard = runtime.enter();
            tokio::net::TcpListener::from_std(listener).map_err(|source| LiveError::Bind { addr, source })?
        };
        let thread = std::thread::Builder::new()
            .name("live".into())
            .spawn(move || runtime.block_on(serve::serve(listener, receiver, token)))
            .map_err(LiveError::Thread)?;
        Ok(LiveServer { addr, snapshots, cancel, thread: std::sync::Mutex::new(Some(thread)) })
    }

    /// The address it serves on (the port chosen for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR/`.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Replaces the snapshot every route shows; never waits.
    pub fn publish(&self, snapshot: LiveSnapshot) {
        self.snapshots.send_replace(Arc::new(snapshot));
    }

    /// The snapshot shown now.
    pub fn latest(&self) -> Arc<LiveSnapshot> {
        Arc::clone(&self.snapshots.borrow())
    }

    /// Publishes the final snapshot, lets open pages receive it, and stops the endpoint.
    pub fn finish(&self, last: LiveSnapshot) {
        self.publish(last);
        self.stop();
    }

    fn stop(&self) {
        self.cancel.cancel();
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

impl Drop for LiveServer {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_host_and_port() {
        assert_eq!(parse_address("127.0.0.1:0").unwrap().port(), 0);
        assert_eq!(parse_address("localhost:9100").unwrap(), SocketAddr::from(([127, 0, 0, 1], 9100)));
        assert!(parse_address("[::1]:8080").is_ok());
        for bad in ["", "127.0.0.1", "nonsense", "127.0.0.1:99999", "localhost:x"] {
            assert_eq!(parse_address(bad).map_err(|e| e.exit_code()).err(), Some(2), "{bad}");
        }
    }

    #[test]
    fn a_port_in_use_is_exit_3_and_names_the_address() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let error = bind(addr).unwrap_err();
        assert_eq!(error.exit_code(), 3);
        assert!(error.to_string().contains(&addr.to_string()), "{error}");
    }
}
