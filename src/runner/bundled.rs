//! The bundled server a run starts when the scenario names no target: in this process, or —
//! when one process cannot hold its sockets (`[target] cluster_workers = N`) — as a cluster of
//! `serve` processes on one port over a Redis broker started for the run (PROTOCOL.md holds
//! across them; see docs/ARCHITECTURE.md, "The server as a cluster").

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use super::RunError;
use crate::server::ServerHandle;
use crate::server::child::{ServeChild, ServeCommand};
use crate::tls::GeneratedPki;

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

    /// The `/metrics` URL of every process of the server (a cluster's workers each at their own
    /// address; the shared port answers from whichever worker the kernel picks).
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
    serve: ServeChild,
    ws_url: String,
    http_url: String,
    /// Each worker process's own `/metrics`, as the supervisor named their addresses.
    process_metrics: Vec<String>,
}

impl Cluster {
    /// Starts a Redis broker on a free loopback port, then the server cluster over it; with
    /// `pki`, the cluster serves `wss://` with its certificate.
    pub async fn start(spec: &ClusterSpec, pki: Option<&GeneratedPki>) -> Result<Cluster, RunError> {
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
        let workers = spec.workers.to_string();
        let broker_url = format!("redis://127.0.0.1:{port}");
        let mut command = ServeCommand::new(exe, &spec.secret)
            .args(["--addr", "127.0.0.1:0", "--workers", workers.as_str()])
            .args(["--broker", broker_url.as_str(), "--status-interval", "0s"])
            .args(spec.serve_flags.iter().map(String::as_str));
        command.niceness = Some(SERVER_NICENESS);
        command.own_process_group = true;
        command.echo_stderr = Some("server: ");
        command.start_timeout = START_TIMEOUT;
        let serve = match ServeChild::spawn(command, pki).await {
            Ok(serve) => serve,
            Err(error) => {
                let _ = broker.kill().await;
                return Err(RunError::Workers(format!("the server cluster: {error}")));
            }
        };
        let ws_url = serve.ws_url().to_owned();
        let http_url = crate::util::url::derive_http_url(&ws_url).unwrap_or_default();
        // The supervisor names each worker's own address right after the shared one.
        let workers = spec.workers as usize;
        let said = serve
            .lines_after_address(|lines| worker_metrics(lines).len() >= workers, Duration::from_secs(5))
            .await;
        let process_metrics = worker_metrics(&said);
        Ok(Cluster { broker, serve, ws_url, http_url, process_metrics })
    }

    /// SIGTERM to the cluster (every connection gets 1001), then the broker.
    pub async fn stop(mut self) {
        self.serve.stop(Duration::from_secs(15)).await;
        let _ = self.broker.kill().await;
        let _ = self.broker.wait().await;
    }
}

/// `…own address http://127.0.0.1:PORT …` lines → `http://127.0.0.1:PORT/metrics`.
fn worker_metrics(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .filter_map(|line| line.split_once("own address ")?.1.split_whitespace().next())
        .map(|url| format!("{url}/metrics"))
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_workers_metrics_are_read_from_the_supervisors_lines() {
        let lines: Vec<String> = [
            "  open files: 1024 per worker",
            "  worker 0: pid 11, own address http://127.0.0.1:4001 (its own /metrics, /healthz, /v1/ws)",
            "  worker 1: pid 12, own address https://127.0.0.1:4002 (its own /metrics, /healthz, /v1/ws)",
            "  http://127.0.0.1:4000/metrics and /healthz answer from whichever worker the kernel picks",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            worker_metrics(&lines),
            ["http://127.0.0.1:4001/metrics", "https://127.0.0.1:4002/metrics"]
        );
    }
}
