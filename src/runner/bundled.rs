//! The bundled server a run starts when the scenario names no target: in this process, or —
//! when one process cannot hold its sockets (`[target] cluster_workers = N`) — as a cluster of
//! `serve` processes on one port over a Redis broker started for the run (PROTOCOL.md holds
//! across them; see docs/ARCHITECTURE.md, "The server as a cluster").

use std::ffi::OsStr;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::RunError;
use crate::server::ServerHandle;
use crate::tls::GeneratedPki;
use crate::tls::generate::PemFiles;

/// CPU priority of the server cluster's processes, below the harness's (0): on a machine that
/// runs both, the instrument reads what the server has sent as soon as it is there, and the
/// server's share of the cores shows in the latency it is measured by.
const SERVER_NICENESS: libc::c_int = 5;

/// How long the broker and the server cluster may take to come up.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A bundled server, running.
#[derive(Debug)]
pub enum Bundled {
    InProcess(ServerHandle),
    Cluster(Box<Cluster>),
}

impl Bundled {
    pub fn ws_url(&self) -> String {
        match self {
            Bundled::InProcess(server) => server.ws_url(),
            Bundled::Cluster(cluster) => cluster.ws_url.clone(),
        }
    }

    pub fn http_url(&self) -> String {
        match self {
            Bundled::InProcess(server) => server.http_url(),
            Bundled::Cluster(cluster) => cluster.http_url.clone(),
        }
    }

    /// The `/metrics` URL of every process of the server.
    pub fn metrics_urls(&self) -> Vec<String> {
        match self {
            Bundled::InProcess(server) => vec![format!("{}/metrics", server.http_url())],
            Bundled::Cluster(cluster) if !cluster.process_metrics.is_empty() => {
                cluster.process_metrics.clone()
            }
            Bundled::Cluster(cluster) => vec![format!("{}/metrics", cluster.http_url)],
        }
    }

    /// Whether the server shares this process (its CPU and memory are in the harness's figures).
    pub fn in_process(&self) -> bool {
        matches!(self, Bundled::InProcess(_))
    }

    pub async fn stop(self) {
        match self {
            Bundled::InProcess(server) => server.shutdown().await,
            Bundled::Cluster(cluster) => cluster.stop().await,
        }
    }
}

/// What a cluster's `serve` processes are told.
#[derive(Debug, Clone)]
pub struct ClusterSpec {
    pub workers: u32,
    pub secret: Vec<u8>,
    /// `serve` flags for faults, queue bound and send buffer, as the scenario gave them.
    pub serve_flags: Vec<String>,
}

/// `serve --workers N --broker …` and its `redis-server`, children of this process.
#[derive(Debug)]
pub struct Cluster {
    broker: Child,
    serve: Child,
    ws_url: String,
    http_url: String,
    /// Each worker process's own `/metrics` (the shared port answers from any one of them).
    process_metrics: Vec<String>,
    /// Kept until the cluster is dropped.
    _tls_files: Option<TlsFiles>,
}

/// The generated certificate and key handed to `serve`, in a folder removed on drop.
#[derive(Debug)]
struct TlsFiles {
    dir: PathBuf,
    files: PemFiles,
}

impl TlsFiles {
    fn write(pki: &GeneratedPki) -> Result<TlsFiles, RunError> {
        let dir = std::env::temp_dir().join(format!("openframe-harness-cluster-{}", std::process::id()));
        let files = pki
            .write_pem_files(&dir)
            .map_err(|e| RunError::Workers(format!("cannot write {}: {e}", dir.display())))?;
        Ok(TlsFiles { dir, files })
    }

    fn serve_flags(&self) -> Vec<&OsStr> {
        vec![
            "--tls-cert".as_ref(),
            self.files.cert.as_os_str(),
            "--tls-key".as_ref(),
            self.files.key.as_os_str(),
        ]
    }
}

impl Drop for TlsFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Cluster {
    /// Starts a Redis broker on a free loopback port, then the server cluster over it; with
    /// `pki`, the cluster serves `wss://` with its certificate.
    pub async fn start(spec: &ClusterSpec, pki: Option<&GeneratedPki>) -> Result<Cluster, RunError> {
        let tls_files = pki.map(TlsFiles::write).transpose()?;
        let tls_flags = tls_files.as_ref().map(TlsFiles::serve_flags).unwrap_or_default();
        let redis = which("redis-server").ok_or_else(|| {
            RunError::Preflight(
                "the scenario asks for a server cluster (cluster_workers), which needs a Redis broker and \
                 redis-server is not installed: `apt-get install redis-server` (or `.ci/install-test-tools redis`)"
                    .into(),
            )
        })?;
        let port = free_port()?;
        let mut broker = Command::new(redis)
            .args(["--bind", "127.0.0.1", "--port", &port.to_string(), "--save", "", "--appendonly", "no"])
            .args(["--loglevel", "warning"])
            .stdout(Stdio::null())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| RunError::Preflight(format!("cannot start redis-server: {e}")))?;
        if let Err(error) = wait_for_port(port).await {
            let _ = broker.kill().await;
            return Err(error);
        }
        let exe = std::env::current_exe()
            .map_err(|e| RunError::Workers(format!("cannot find my own executable: {e}")))?;
        let mut serve = Command::new(exe);
        serve
            .args(["serve", "--addr", "127.0.0.1:0", "--workers", &spec.workers.to_string()])
            .args(["--broker", &format!("redis://127.0.0.1:{port}"), "--status-interval", "0s"])
            .args(&spec.serve_flags)
            .args(tls_flags)
            .env("OPENFRAME_JWT_SECRET", String::from_utf8_lossy(&spec.secret).into_owned())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        // SAFETY: setpriority is async-signal-safe; it only lowers the child's own priority.
        unsafe {
            serve.pre_exec(|| {
                libc::setpriority(libc::PRIO_PROCESS, 0, SERVER_NICENESS);
                Ok(())
            });
        }
        let mut serve =
            serve.spawn().map_err(|e| RunError::Workers(format!("cannot start the server cluster: {e}")))?;
        let Some(stderr) = serve.stderr.take() else {
            return Err(RunError::Workers("the server cluster's messages cannot be read".into()));
        };
        let mut lines = BufReader::new(stderr).lines();
        let listening = tokio::time::timeout(START_TIMEOUT, async {
            while let Ok(Some(line)) = lines.next_line().await {
                let url = line.split_whitespace().find(|w| w.starts_with("ws://") || w.starts_with("wss://"));
                if let Some(url) = url {
                    return Some(url.to_owned());
                }
                eprintln!("server: {line}");
            }
            None
        })
        .await
        .ok()
        .flatten();
        let Some(ws_url) = listening else {
            let _ = serve.kill().await;
            let _ = broker.kill().await;
            return Err(RunError::Workers("the server cluster did not report its address".into()));
        };
        // The supervisor names each worker's own address next; their /metrics are scraped apart.
        let mut process_metrics = Vec::new();
        let _ = tokio::time::timeout(START_TIMEOUT, async {
            while process_metrics.len() < spec.workers as usize {
                let Ok(Some(line)) = lines.next_line().await else { break };
                if let Some((_, rest)) = line.split_once("own address ")
                    && let Some(url) = rest.split_whitespace().next()
                {
                    process_metrics.push(format!("{url}/metrics"));
                }
                eprintln!("server: {line}");
            }
        })
        .await;
        // Keep passing the cluster's later messages on (a worker that dies says so).
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                eprintln!("server: {line}");
            }
        });
        let http_url = super::super::scenario::plan::derive_http_url(&ws_url).unwrap_or_default();
        Ok(Cluster { broker, serve, ws_url, http_url, process_metrics, _tls_files: tls_files })
    }

    /// SIGTERM to the cluster (every connection gets 1001), then the broker.
    pub async fn stop(mut self) {
        if let Some(pid) = self.serve.id() {
            // SAFETY: signalling our own child process.
            unsafe { libc::kill(pid as i32, libc::SIGTERM) };
        }
        if tokio::time::timeout(Duration::from_secs(15), self.serve.wait()).await.is_err() {
            let _ = self.serve.kill().await;
        }
        let _ = self.broker.kill().await;
        let _ = self.broker.wait().await;
    }
}

fn free_port() -> Result<u16, RunError> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(|e| RunError::Preflight(format!("no free loopback port for the broker: {e}")))
}

async fn wait_for_port(port: u16) -> Result<(), RunError> {
    let deadline = tokio::time::Instant::now() + START_TIMEOUT;
    while tokio::time::Instant::now() < deadline {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(RunError::Preflight(format!("redis-server did not listen on port {port} within {START_TIMEOUT:?}")))
}

fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(program)).find(|p| p.is_file())
}
