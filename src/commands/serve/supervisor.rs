//! `serve --workers N`: N child `serve` processes on one address and their supervision.
//!
//! The parent reserves the address (a bound, non-listening `SO_REUSEPORT` socket, so that port 0
//! becomes one port for all), starts each child with `--worker I` on it, waits for each to
//! report `ready <own address>`, prints the address once, and then only supervises: the first
//! SIGINT or SIGTERM is passed on to every child as SIGTERM and the parent exits 0 when they have
//! stopped cleanly; a second kills them.
//! A child that dies is reported and not replaced: its clients were cut, the others keep
//! being served. Children run in their own process group (a terminal's Ctrl-C reaches them only
//! through the parent) and get SIGTERM if the parent dies.
//!
//! There is no distribution layer here: the children form one server through the broker, which
//! is why more than one worker needs `--broker`.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{Context, anyhow};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdout, Command};
use tokio::task::JoinSet;

use crate::cli::ServeArgs;
use crate::commands::outcome::{BadInput, Outcome};
use crate::commands::shutdown::Shutdown;
use crate::server::cluster::BrokerConfig;
use crate::server::{self, ServerError};
use crate::util::process;

/// What a worker prints on stdout, followed by its own address, once it serves.
pub(super) const READY: &str = "ready";
/// Longest a worker may take to start serving.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest the workers may take to stop after the signal is forwarded; then they are killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// A started child.
struct Worker {
    index: u32,
    pid: i32,
    child: Child,
    own_addr: SocketAddr,
}

pub(super) async fn run(args: ServeArgs, shutdown: Shutdown) -> anyhow::Result<Outcome> {
    let Some(broker) = &args.broker else {
        return Err(BadInput(format!(
            "--workers {} needs --broker: the worker processes form one server only through a broker \
             (every publish must reach the subscribers of every process). Start one, e.g. \
             `redis-server --port 6379 --save '' --appendonly no`, and add --broker redis://127.0.0.1:6379 \
             (or run a single process: --workers 1)",
            args.workers
        ))
        .into());
    };
    let broker = BrokerConfig { url: broker.clone(), prefix: args.broker_prefix.clone() };
    let (reservation, addr) = server::reserve_port(args.addr)
        .map_err(|source| ServerError::Bind { addr: args.addr, cause: source })?;
    let mut workers = Vec::with_capacity(args.workers as usize);
    for index in 0..args.workers {
        match spawn_worker(&args, addr, index).await {
            Ok(worker) => workers.push(worker),
            Err(error) => {
                stop_all(workers, libc::SIGTERM).await;
                return Err(error.context(format!("starting worker {index}")));
            }
        }
    }
    drop(reservation);
    let (ws, http) = if args.tls_cert.is_some() { ("wss", "https") } else { ("ws", "http") };
    eprintln!(
        "openframe reference server listening on {ws}://{addr}/v1/ws ({} worker processes, broker {}, channel prefix {:?})",
        workers.len(),
        broker.display_url(),
        broker.prefix
    );
    eprintln!(
        "  open files: {} per worker (at most about that many connections each)",
        process::raise_open_files_limit()
    );
    for worker in &workers {
        eprintln!(
            "  worker {}: pid {}, own address {http}://{} (its own /metrics, /healthz, /v1/ws)",
            worker.index, worker.pid, worker.own_addr
        );
    }
    eprintln!("  {http}://{addr}/metrics and /healthz answer from whichever worker the kernel picks");
    supervise(workers, &shutdown).await
}

/// The flags of worker `index`: everything the parent was given except `--workers`; the secret
/// and the broker go by environment, so they do not show in the process list.
fn worker_args(args: &ServeArgs, addr: SocketAddr, index: u32) -> Vec<OsString> {
    let micros = |d: Duration| format!("{}us", d.as_micros());
    let mut out: Vec<String> = vec![
        "serve".into(),
        "--addr".into(),
        addr.to_string(),
        "--worker".into(),
        index.to_string(),
        "--max-message-size".into(),
        args.max_message_size.to_string(),
        "--handshake-timeout".into(),
        micros(args.handshake_timeout),
        "--ping-interval".into(),
        micros(args.ping_interval),
        "--status-interval".into(),
        micros(args.status_interval),
        "--queue".into(),
        args.queue.to_string(),
        "--max-connections".into(),
        args.max_connections.to_string(),
        "--broker-prefix".into(),
        args.broker_prefix.clone(),
    ];
    if let Some(bytes) = args.socket_send_buffer {
        out.extend(["--socket-send-buffer".into(), bytes.to_string()]);
    }
    for fault in &args.faults {
        out.extend(["--fault".into(), fault.clone()]);
    }
    let mut out: Vec<OsString> = out.into_iter().map(OsString::from).collect();
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        out.extend([
            "--tls-cert".into(),
            cert.clone().into_os_string(),
            "--tls-key".into(),
            key.clone().into_os_string(),
        ]);
    }
    out
}

async fn spawn_worker(args: &ServeArgs, addr: SocketAddr, index: u32) -> anyhow::Result<Worker> {
    let exe = std::env::current_exe().context("finding this program's path")?;
    let mut command = Command::new(exe);
    command
        .args(worker_args(args, addr, index))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    if let Some(secret) = &args.secret.jwt_secret {
        command.env("OPENFRAME_JWT_SECRET", secret);
    }
    if let Some(broker) = &args.broker {
        command.env("OPENFRAME_BROKER", broker);
    }
    command.process_group(0);
    // SAFETY: only async-signal-safe calls between fork and exec (prctl, errno).
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command.spawn().context("starting a worker process")?;
    let pid =
        child.id().and_then(|id| i32::try_from(id).ok()).ok_or_else(|| anyhow!("the worker has no pid"))?;
    let stdout = child.stdout.take().ok_or_else(|| anyhow!("the worker's stdout is not piped"))?;
    let mut lines = BufReader::new(stdout).lines();
    let ready = tokio::select! {
        line = tokio::time::timeout(START_TIMEOUT, lines.next_line()) => line,
        status = child.wait() => {
            let status = status.map_or_else(|e| e.to_string(), describe);
            return Err(anyhow!("worker {index} exited before serving ({status})"));
        }
    };
    let line = match ready {
        Ok(Ok(Some(line))) => line,
        Ok(Ok(None)) | Ok(Err(_)) => {
            let _ = child.start_kill();
            return Err(anyhow!("worker {index} closed its stdout before reporting ready"));
        }
        Err(_) => {
            let _ = child.start_kill();
            return Err(anyhow!("worker {index} did not report ready within {START_TIMEOUT:?}"));
        }
    };
    let own_addr = line
        .strip_prefix(READY)
        .and_then(|rest| rest.trim().parse::<SocketAddr>().ok())
        .ok_or_else(|| anyhow!("worker {index} reported {line:?}, expected `{READY} ADDRESS`"))?;
    tokio::spawn(drain(lines));
    Ok(Worker { index, pid, child, own_addr })
}

/// Keeps reading a worker's stdout, so that a late line never meets a closed pipe.
async fn drain(mut lines: tokio::io::Lines<BufReader<ChildStdout>>) {
    while let Ok(Some(line)) = lines.next_line().await {
        println!("{line}");
    }
}

/// Waits for the drain request and the children until every worker has stopped.
async fn supervise(workers: Vec<Worker>, shutdown: &Shutdown) -> anyhow::Result<Outcome> {
    let total = workers.len();
    let mut live: BTreeMap<u32, i32> = workers.iter().map(|w| (w.index, w.pid)).collect();
    let mut exits = watch_exits(workers);
    loop {
        tokio::select! {
            () = shutdown.draining() => break,
            exited = exits.join_next() => {
                let Some(Ok((index, status))) = exited else { continue };
                live.remove(&index);
                eprintln!(
                    "worker {index} exited ({}); {} of {total} workers still serving",
                    describe(status),
                    live.len()
                );
                if live.is_empty() {
                    return Err(anyhow!("every worker process exited"));
                }
            }
        }
    }
    eprintln!("stopping {} workers", live.len());
    for pid in live.values() {
        // SAFETY: signalling our own child processes.
        unsafe { libc::kill(*pid, libc::SIGTERM) };
    }
    let mut failed = Vec::new();
    let deadline = tokio::time::Instant::now() + STOP_TIMEOUT;
    while !live.is_empty() {
        // The deadline bounds the wait; a second Ctrl-C aborts (the workers are killed on drop).
        let exited = tokio::select! {
            exited = exits.join_next() => exited,
            _ = tokio::time::sleep_until(deadline) => None,
        };
        let Some(Ok((index, status))) = exited else { break };
        live.remove(&index);
        if !status.success() {
            failed.push(format!("worker {index}: {}", describe(status)));
        }
    }
    if !live.is_empty() {
        for (index, pid) in &live {
            // SAFETY: killing our own child processes that did not stop in time.
            unsafe { libc::kill(*pid, libc::SIGKILL) };
            failed.push(format!("worker {index}: killed, it did not stop within {STOP_TIMEOUT:?}"));
        }
        while exits.join_next().await.is_some() {}
    }
    if failed.is_empty() {
        Ok(Outcome::Passed)
    } else {
        Err(anyhow!("workers did not stop cleanly: {}", failed.join("; ")))
    }
}

/// One task per worker that resolves with its exit status.
fn watch_exits(workers: Vec<Worker>) -> JoinSet<(u32, ExitStatus)> {
    let mut exits = JoinSet::new();
    for Worker { index, mut child, .. } in workers {
        exits.spawn(async move {
            // A failed wait (never seen) reads as exit code 1.
            let status = child
                .wait()
                .await
                .unwrap_or_else(|_| std::os::unix::process::ExitStatusExt::from_raw(1 << 8));
            (index, status)
        });
    }
    exits
}

/// Stops workers that were started before a later one failed.
async fn stop_all(workers: Vec<Worker>, sig: i32) {
    for worker in &workers {
        // SAFETY: signalling our own child processes.
        unsafe { libc::kill(worker.pid, sig) };
    }
    let mut exits = watch_exits(workers);
    let _ = tokio::time::timeout(STOP_TIMEOUT, async { while exits.join_next().await.is_some() {} }).await;
}

fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        _ => status.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command as CliCommand};

    fn serve_args(line: &[&str]) -> ServeArgs {
        match Cli::parse_from(line).command {
            CliCommand::Serve(args) => args,
            _ => unreachable!(),
        }
    }

    #[test]
    fn a_worker_gets_every_setting_of_its_parent_and_parses_them_back() {
        let parent = serve_args(&[
            "openframe-harness",
            "serve",
            "--workers",
            "3",
            "--broker",
            "redis://127.0.0.1:1",
            "--broker-prefix",
            "p",
            "--fault",
            "drop=0.1",
            "--ping-interval",
            "1500ms",
            "--status-interval",
            "0s",
            "--queue",
            "7",
            "--socket-send-buffer",
            "4096",
        ]);
        let addr: SocketAddr = "127.0.0.1:4567".parse().unwrap();
        let mut line = vec![OsString::from("openframe-harness")];
        line.extend(worker_args(&parent, addr, 2));
        let child = match Cli::parse_from(line).command {
            CliCommand::Serve(args) => args,
            _ => unreachable!(),
        };
        assert_eq!((child.addr, child.worker, child.workers), (addr, Some(2), 1));
        assert_eq!(child.ping_interval, Duration::from_millis(1500));
        assert_eq!(child.status_interval, Duration::ZERO);
        assert_eq!((child.queue, child.socket_send_buffer), (7, Some(4096)));
        assert_eq!(child.faults, ["drop=0.1"]);
        assert_eq!(child.broker_prefix, "p");
        assert_eq!(child.handshake_timeout, parent.handshake_timeout);
        assert_eq!(child.max_connections, parent.max_connections);
    }
}
