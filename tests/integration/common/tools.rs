//! What the tests need besides Rust: a Redis broker on loopback (installed when missing), a
//! Prometheus server for the live endpoint, and the Kubernetes manifest validator. All are
//! installed by `.ci/install-test-tools`, which `.ci/run` calls first and these helpers call
//! when they do not find a tool; a test that cannot get Redis or the validator fails with the
//! reason, one that cannot get Prometheus skips, saying so.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The crate's root folder.
pub fn crate_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `.ci/install-test-tools TOOL` once per test binary and tool; the error says why it failed.
fn install(tool: &'static str) -> Result<(), String> {
    static INSTALLS: Mutex<Vec<(&'static str, Result<(), String>)>> = Mutex::new(Vec::new());
    // One install at a time: apt-get and pip do not share their locks with parallel tests.
    let mut installs = INSTALLS.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, result)) = installs.iter().find(|(t, _)| *t == tool) {
        return result.clone();
    }
    let script = crate_root().join(".ci/install-test-tools");
    let result = match Command::new("bash").arg(&script).arg(tool).output() {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(format!(
            "{} {tool} failed ({}): {}",
            script.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(error) => Err(format!("cannot run {}: {error}", script.display())),
    };
    installs.push((tool, result.clone()));
    result
}

/// `redis-server`, installed if missing.
pub fn redis_server() -> PathBuf {
    static PATH: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let found = PATH.get_or_init(|| {
        if let Some(path) = which("redis-server") {
            return Ok(path);
        }
        install("redis")?;
        which("redis-server").ok_or_else(|| "redis-server is not on PATH after installing it".to_owned())
    });
    match found {
        Ok(path) => path.clone(),
        Err(why) => panic!("this test needs a Redis broker and cannot get one: {why}"),
    }
}

/// `prometheus`, installed if missing; `Err` says why there is none (the Prometheus tests skip
/// then, naming it: the binary is a Debian package, not something every machine may install).
pub fn prometheus() -> Result<PathBuf, String> {
    static PATH: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    PATH.get_or_init(|| {
        if let Some(path) = which("prometheus") {
            return Ok(path);
        }
        install("prometheus")?;
        which("prometheus").ok_or_else(|| "prometheus is not on PATH after installing it".to_owned())
    })
    .clone()
}

/// A Prometheus server of this test alone: scrapes `targets` every second, keeps its data in a
/// temporary folder, listens on 127.0.0.1 and a free port; stopped when dropped.
pub struct Prometheus {
    child: Option<Child>,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts `program`; panics with the reason (and its output) when it is not ready in 30 s.
    pub fn start(program: &Path, targets: &[String]) -> Prometheus {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let targets: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: harness\n    \
             scrape_interval: 1s\n    scrape_timeout: 900ms\n    static_configs:\n      - targets: [{}]\n",
            targets.join(", ")
        );
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config).expect("the config is written");
        let log = dir.path().join("prometheus.log");
        let mut last_error = String::new();
        for _ in 0..5 {
            let port = free_port();
            let log_file = std::fs::File::create(&log).expect("a log file");
            let mut child = Command::new(program)
                .arg(format!("--config.file={}", config_path.display()))
                .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log_file)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if http_get(port, "/-/ready").is_some_and(|(status, _)| status == 200) {
                    return Prometheus { child: Some(child), port, _dir: dir };
                }
                if let Ok(Some(status)) = child.try_wait() {
                    last_error = format!(
                        "prometheus exited ({status}): {}",
                        std::fs::read_to_string(&log).unwrap_or_default()
                    );
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
            if last_error.is_empty() {
                last_error =
                    format!("not ready in 30s: {}", std::fs::read_to_string(&log).unwrap_or_default());
            }
        }
        panic!("cannot start Prometheus on loopback: {last_error}");
    }

    /// The JSON answer of an instant query (`/api/v1/query`) at the current time.
    pub fn query(&self, promql: &str) -> serde_json::Value {
        let query: String = form_urlencoded::byte_serialize(promql.as_bytes()).collect();
        self.api(&format!("/api/v1/query?query={query}"), promql)
    }

    /// The JSON answer of a range query (`/api/v1/query_range`), Unix seconds, one point a second.
    pub fn query_range(&self, promql: &str, start_s: f64, end_s: f64) -> serde_json::Value {
        let query: String = form_urlencoded::byte_serialize(promql.as_bytes()).collect();
        self.api(
            &format!("/api/v1/query_range?query={query}&start={start_s:.3}&end={end_s:.3}&step=1"),
            promql,
        )
    }

    fn api(&self, path: &str, promql: &str) -> serde_json::Value {
        let (status, body) = http_get(self.port, path).expect("Prometheus answers a query");
        assert_eq!(status, 200, "query {promql}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("query {promql}: not JSON ({e}): {body}"))
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A blocking `GET` on 127.0.0.1:`port`: (status, body), or `None` when nothing answers.
fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split(' ').nth(1)?.parse().ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let chunked = head.to_ascii_lowercase().contains("transfer-encoding: chunked");
    Some((status, if chunked { dechunk(body) } else { body.to_owned() }))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else { break };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

/// `kubernetes-validate`, installed (into target/test-tools/venv) if missing.
pub fn kubernetes_validate() -> PathBuf {
    static PATH: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let venv = crate_root().join("target/test-tools/venv/bin/kubernetes-validate");
    let found = PATH.get_or_init(|| {
        if venv.is_file() {
            return Ok(venv.clone());
        }
        install("k8s")?;
        if venv.is_file() {
            Ok(venv.clone())
        } else {
            Err(format!("{} missing after installing it", venv.display()))
        }
    });
    match found {
        Ok(path) => path.clone(),
        Err(why) => panic!("this test needs kubernetes-validate and cannot get it: {why}"),
    }
}

fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(program)).find(|p| p.is_file())
}

/// A Redis server of this test alone, on 127.0.0.1 and a free port, without persistence;
/// stopped when dropped.
pub struct Broker {
    child: Option<Child>,
    port: u16,
}

impl Broker {
    /// Starts one; panics with the reason when it cannot.
    pub fn start() -> Broker {
        let program = redis_server();
        let mut last_error = String::new();
        // A port found free can be taken before redis binds it: try a few.
        for _ in 0..5 {
            let port = free_port();
            let mut child = Command::new(&program)
                .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
                .args(["--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning"])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if ping(port) {
                    return Broker { child: Some(child), port };
                }
                if let Ok(Some(status)) = child.try_wait() {
                    let mut out = String::new();
                    if let Some(mut stdout) = child.stdout.take() {
                        let _ = stdout.read_to_string(&mut out);
                    }
                    last_error = format!("redis-server exited ({status}): {}", out.trim());
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
            if last_error.is_empty() {
                last_error = "redis-server did not answer PING within 10s".to_owned();
            }
        }
        panic!("cannot start a Redis broker on loopback: {last_error}");
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Stops the broker now (to test what a server does without it).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// Whether a Redis server answers `PING` on `port`.
fn ping(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else { return false };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut answer = [0u8; 7];
    stream.read_exact(&mut answer).is_ok() && &answer == b"+PONG\r\n"
}
