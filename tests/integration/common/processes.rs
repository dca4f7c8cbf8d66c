//! The binary as separate processes: `serve` (alone or `--workers N`), `run`, `merge`, with their
//! output, exit codes and report folders.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_openframe-harness");
pub const SECRET: &str = "cluster-test-secret";

/// One worker of `serve --workers N`, as its parent reported it.
#[derive(Debug, Clone, Copy)]
pub struct WorkerInfo {
    pub pid: i32,
    /// Its own address, served by it alone.
    pub own: SocketAddr,
}

/// A `serve` process (a single server, or the parent of workers), stopped with SIGTERM on drop.
pub struct ServeProcess {
    child: Option<Child>,
    pub addr: SocketAddr,
    pub workers: Vec<WorkerInfo>,
    /// Everything the process (and its workers) wrote on stderr so far.
    pub stderr: Arc<Mutex<String>>,
}

impl ServeProcess {
    /// Starts `serve --addr 127.0.0.1:0 --jwt-secret SECRET ARGS…` and waits until it serves.
    pub fn start(args: &[&str]) -> ServeProcess {
        let mut child = Command::new(BIN)
            .args(["serve", "--addr", "127.0.0.1:0"])
            .args(args)
            .env("OPENFRAME_JWT_SECRET", SECRET)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("serve starts");
        let stderr = Arc::new(Mutex::new(String::new()));
        let (lines_tx, lines_rx) = std::sync::mpsc::channel::<String>();
        let pipe = child.stderr.take().expect("piped stderr");
        let log = Arc::clone(&stderr);
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                log.lock().unwrap().push_str(&format!("{line}\n"));
                let _ = lines_tx.send(line);
            }
        });
        let mut addr = None;
        let mut workers = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let wait = deadline.saturating_duration_since(Instant::now());
            let Ok(line) = lines_rx.recv_timeout(wait) else {
                let _ = child.kill();
                panic!("serve did not start:\n{}", stderr.lock().unwrap());
            };
            if let Some(rest) = line.split("listening on ws://").nth(1) {
                addr = rest.split('/').next().and_then(|a| a.parse().ok());
            }
            if let Some(rest) = line.trim().strip_prefix("worker ") {
                // "worker I: pid P, own address http://ADDR (…)"
                let pid =
                    rest.split("pid ").nth(1).and_then(|r| r.split(',').next()).and_then(|p| p.parse().ok());
                let own = rest
                    .split("http://")
                    .nth(1)
                    .and_then(|r| r.split_whitespace().next())
                    .and_then(|a| a.parse().ok());
                if let (Some(pid), Some(own)) = (pid, own) {
                    workers.push(WorkerInfo { pid, own });
                }
            }
            // A single server's banner ends with the health line, a parent's with the note.
            if addr.is_some() && (line.contains("health:") || line.contains("whichever worker")) {
                break;
            }
        }
        let addr = addr.expect("the listening address");
        ServeProcess { child: Some(child), addr, workers, stderr }
    }

    pub fn target(&self) -> String {
        format!("ws://{}/v1/ws", self.addr)
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().map_or(0, |c| c.id() as i32)
    }

    /// Sends `signal` and waits (at most `wait`) for the exit status.
    pub fn stop(&mut self, signal: i32, wait: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        // SAFETY: signalling our own child process.
        unsafe { libc::kill(child.id() as i32, signal) };
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    pub fn stderr_text(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        self.stop(libc::SIGTERM, Duration::from_secs(20));
    }
}

/// One value of a Prometheus text page: the sample named exactly `name`.
pub fn metric(page: &str, name: &str) -> Option<u64> {
    page.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// `GET http://ADDR/metrics`, blocking.
pub fn metrics_of(addr: SocketAddr) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connect for /metrics");
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(stream, "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("a /metrics answer");
    response.split_once("\r\n\r\n").map(|(_, body)| body.to_owned()).unwrap_or_default()
}

/// `openframe-harness ARGS…` in `dir`, started now.
pub fn harness(args: &[&str], dir: &Path) -> Child {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the harness starts")
}

/// Waits for a harness process; its exit code, stdout and stderr.
pub fn finish(child: Child) -> (Option<i32>, String, String) {
    let out = child.wait_with_output().expect("the harness ends");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A report folder's `report.json`.
pub fn report(folder: &Path) -> Value {
    let text = std::fs::read_to_string(folder.join("report.json"))
        .unwrap_or_else(|e| panic!("{}/report.json: {e}", folder.display()));
    serde_json::from_str(&text).expect("report.json is JSON")
}

/// `report["counters"][name]`.
pub fn counter(report: &Value, name: &str) -> u64 {
    report["counters"][name].as_u64().unwrap_or_else(|| panic!("counter {name} in {}", report["counters"]))
}
