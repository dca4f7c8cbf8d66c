//! The bundled server as a child process: `openframe-harness serve …` started from an executable
//! (usually this one), its address read from the first `ws://`/`wss://` its stderr prints, its later
//! output kept (the first lines after the address, for what a supervisor says about its workers;
//! the last lines, for a report when it dies) and optionally passed on, a generated
//! certificate written to a folder removed with the child, and a bounded stop.
//!
//! The one way the crate spawns a server: `probe` (conform and fuzz with `--child-server`) and the
//! runner's bundled cluster both use it. It must not know who asked for the server or why.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStderr, Command};

use crate::tls::GeneratedPki;

/// How many of the child's last stderr lines are kept.
const TAIL_LINES: usize = 8;
/// How many of the child's first stderr lines after its address are kept (what a supervisor
/// says about its workers).
const HEAD_LINES: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum ChildError {
    #[error("starting the server process {exe}: {cause}")]
    Spawn { exe: String, cause: std::io::Error },
    #[error("writing the generated certificate to {dir}: {cause}")]
    PemFiles { dir: String, cause: std::io::Error },
    #[error("the server process did not say where it listens within {timeout:?}: {said}")]
    NoAddress { timeout: Duration, said: String },
}

/// What to start.
#[derive(Debug, Clone)]
pub struct ServeCommand {
    pub exe: PathBuf,
    /// The arguments after `serve` (address, faults, workers, broker, …).
    pub args: Vec<OsString>,
    /// Passed as `OPENFRAME_JWT_SECRET`, never on the command line.
    pub jwt_secret: Vec<u8>,
    /// Lower the child's CPU priority by this much (the harness measures it and should win the cores).
    pub niceness: Option<i32>,
    /// Its own process group, so that a whole `serve --workers` tree can be signalled at once.
    pub own_process_group: bool,
    /// Pass the child's stderr on to ours, each line behind this prefix.
    pub echo_stderr: Option<&'static str>,
    /// How long the child may take to print its address.
    pub start_timeout: Duration,
}

impl ServeCommand {
    pub fn new(exe: impl Into<PathBuf>, jwt_secret: &[u8]) -> ServeCommand {
        ServeCommand {
            exe: exe.into(),
            args: Vec::new(),
            jwt_secret: jwt_secret.to_vec(),
            niceness: None,
            own_process_group: false,
            echo_stderr: None,
            start_timeout: Duration::from_secs(10),
        }
    }

    pub fn args<I, S>(mut self, args: I) -> ServeCommand
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }
}

/// A running `serve` child.
#[derive(Debug)]
pub struct ServeChild {
    child: Child,
    ws_url: String,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
    /// The first [`HEAD_LINES`] stderr lines after the address line.
    stderr_head: Arc<Mutex<Vec<String>>>,
    _pem: Option<PemFolder>,
}

impl ServeChild {
    /// Starts the child, serving `wss://` with `pki`'s certificate when given, and waits for its address.
    pub async fn spawn(spec: ServeCommand, pki: Option<&GeneratedPki>) -> Result<ServeChild, ChildError> {
        let pem = pki.map(PemFolder::write).transpose()?;
        let mut command = Command::new(&spec.exe);
        command
            .arg("serve")
            .args(&spec.args)
            .env("OPENFRAME_JWT_SECRET", String::from_utf8_lossy(&spec.jwt_secret).into_owned())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(pem) = &pem {
            command.arg("--tls-cert").arg(&pem.cert).arg("--tls-key").arg(&pem.key);
        }
        if spec.own_process_group {
            command.process_group(0);
        }
        if let Some(niceness) = spec.niceness {
            // SAFETY: setpriority is async-signal-safe; it only lowers the child's own priority.
            unsafe {
                command.pre_exec(move || {
                    libc::setpriority(libc::PRIO_PROCESS, 0, niceness);
                    Ok(())
                });
            }
        }
        let exe = spec.exe.display().to_string();
        let mut child =
            command.spawn().map_err(|source| ChildError::Spawn { exe: exe.clone(), cause: source })?;
        let no_stderr = || ChildError::NoAddress { timeout: spec.start_timeout, said: "no stderr".into() };
        let stderr = child.stderr.take().ok_or_else(no_stderr)?;
        let mut lines = BufReader::new(stderr).lines();
        let mut said = Vec::new();
        let address =
            tokio::time::timeout(spec.start_timeout, read_address(&mut lines, &mut said, spec.echo_stderr))
                .await
                .ok()
                .flatten();
        let Some(ws_url) = address else {
            let _ = child.kill().await;
            return Err(ChildError::NoAddress { timeout: spec.start_timeout, said: said.join(" | ") });
        };
        let stderr_tail = Arc::new(Mutex::new(VecDeque::with_capacity(TAIL_LINES)));
        let stderr_head = Arc::new(Mutex::new(Vec::new()));
        tokio::spawn(keep_reading(
            lines,
            Arc::clone(&stderr_tail),
            Arc::clone(&stderr_head),
            spec.echo_stderr,
        ));
        Ok(ServeChild { child, ws_url, stderr_tail, stderr_head, _pem: pem })
    }

    /// The address the child printed: `ws://127.0.0.1:PORT/v1/ws` (or `wss://`).
    pub fn ws_url(&self) -> &str {
        &self.ws_url
    }

    /// The stderr lines printed after the address, once `enough` says they are complete or
    /// `timeout` has passed (whatever there is then).
    pub async fn lines_after_address(
        &self,
        enough: impl Fn(&[String]) -> bool,
        timeout: Duration,
    ) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let lines = self.stderr_head.lock().map(|h| h.clone()).unwrap_or_default();
            if enough(&lines) || tokio::time::Instant::now() >= deadline {
                return lines;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// How the child ended and its last words, once it has exited.
    pub fn death(&mut self) -> Option<String> {
        let status: ExitStatus = self.child.try_wait().ok().flatten()?;
        let tail: Vec<String> =
            self.stderr_tail.lock().map(|t| t.iter().cloned().collect()).unwrap_or_default();
        Some(format!("server process exited ({status}); last output: {}", tail.join(" | ")))
    }

    /// SIGKILL, and wait (at most `grace`) for it to be reaped.
    pub async fn kill(mut self, grace: Duration) {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(grace, self.child.wait()).await;
    }

    /// SIGTERM (every connection gets its 1001), then SIGKILL if it has not exited within `grace`.
    pub async fn stop(mut self, grace: Duration) {
        if let Some(pid) = self.child.id() {
            // SAFETY: signalling our own child process.
            unsafe { libc::kill(pid as i32, libc::SIGTERM) };
        }
        if tokio::time::timeout(grace, self.child.wait()).await.is_err() {
            let _ = self.child.kill().await;
        }
    }
}

/// Reads stderr until a line names the address; the lines before it are kept (and echoed).
async fn read_address(
    lines: &mut Lines<BufReader<ChildStderr>>,
    said: &mut Vec<String>,
    echo: Option<&str>,
) -> Option<String> {
    while let Ok(Some(line)) = lines.next_line().await {
        let url = line.split_whitespace().find(|w| w.starts_with("ws://") || w.starts_with("wss://"));
        if let Some(url) = url {
            return Some(url.to_owned());
        }
        if let Some(prefix) = echo {
            eprintln!("{prefix}{line}");
        }
        said.push(line);
    }
    None
}

async fn keep_reading(
    mut lines: Lines<BufReader<ChildStderr>>,
    tail: Arc<Mutex<VecDeque<String>>>,
    head: Arc<Mutex<Vec<String>>>,
    echo: Option<&'static str>,
) {
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(prefix) = echo {
            eprintln!("{prefix}{line}");
        }
        if let Ok(mut head) = head.lock()
            && head.len() < HEAD_LINES
        {
            head.push(line.clone());
        }
        if let Ok(mut tail) = tail.lock() {
            if tail.len() == TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(line);
        }
    }
}

/// The generated certificate and key handed to the child, in a folder removed on drop.
#[derive(Debug)]
struct PemFolder {
    dir: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

impl PemFolder {
    fn write(pki: &GeneratedPki) -> Result<PemFolder, ChildError> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .subsec_nanos();
        let dir = std::env::temp_dir().join(format!("openframe-serve-{}-{nanos}", std::process::id()));
        let files = pki
            .write_pem_files(&dir)
            .map_err(|source| ChildError::PemFiles { dir: dir.display().to_string(), cause: source })?;
        Ok(PemFolder { dir, cert: files.cert, key: files.key })
    }
}

impl Drop for PemFolder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
