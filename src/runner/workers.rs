//! Worker processes: when a run needs more sockets than one process may hold, the parent
//! splits it into local worker processes — each `run --shard I/N` of the same scenario, all
//! starting at the same instant and sharing one publisher board in shared memory — shows one
//! progress line for all of them, and merges their reports exactly into one.
//!
//! The same shard mechanism serves several machines (`run --shard I/N --start-at T` by hand or
//! from Kubernetes, then `merge`); only the shared board is local to one machine.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

use super::{RunError, RunOptions, start_embedded};
use crate::metrics::progress::{ProgressLine, show_line};
use crate::report::merge::merge;
use crate::results::model::RunReport;
use crate::scenario::Plan;
use crate::scenario::plan::{CredentialSource, TargetMetrics, TargetPlan};

/// How to start the workers: the scenario file they re-read and what overrides it.
#[derive(Debug, Clone)]
pub struct WorkerSetup {
    pub scenario: PathBuf,
    pub workers: u32,
    /// Worker reports are written under this folder (`worker-I/`).
    pub folder: PathBuf,
    /// A token file given on the command line, passed on to the workers.
    pub token_file: Option<PathBuf>,
}

/// Runs `plan` as `setup.workers` worker processes and merges their reports.
pub async fn run(plan: Plan, setup: WorkerSetup, options: RunOptions) -> Result<RunReport, RunError> {
    let embedded = start_embedded(&plan).await?;
    let target = match (&plan.target, &embedded) {
        (TargetPlan::External { ws_url, .. }, _) => ws_url.clone(),
        (TargetPlan::Embedded { .. }, Some(e)) => e.server.ws_url(),
        (TargetPlan::Embedded { .. }, None) => {
            unreachable!("the bundled server is started for an embedded target")
        }
    };
    // The workers trust what this process would: the bundled server's generated CA (written
    // next to their reports), or the CA file given.
    let ca_cert = match embedded.as_ref().and_then(|e| e.pki.as_ref()) {
        Some(pki) => {
            let path = setup.folder.join("bundled-server-ca.pem");
            std::fs::create_dir_all(&setup.folder)
                .and_then(|()| std::fs::write(&path, &pki.ca_pem))
                .map_err(|e| RunError::Workers(format!("cannot write {}: {e}", path.display())))?;
            Some(path)
        }
        None => plan.tls.ca_cert.clone(),
    };
    // The first worker scrapes the target's metrics for all: every process of the bundled server
    // by its own address (the shared port answers from any one of them).
    let metrics_urls = match (&plan.target_metrics, &embedded) {
        (TargetMetrics::Default, Some(embedded)) => embedded.server.metrics_urls(),
        _ => Vec::new(),
    };
    let target = Target { ws_url: &target, ca_cert: ca_cert.as_deref(), metrics_urls: &metrics_urls };
    let result = coordinate(&plan, &setup, &options, &target).await;
    if let Some(embedded) = embedded {
        embedded.server.stop().await;
    }
    let mut report = result?;
    report.harness.server_in_process = false;
    Ok(report)
}

/// What the workers are pointed at.
#[derive(Debug, Clone, Copy)]
struct Target<'a> {
    ws_url: &'a str,
    /// The CA they trust (the bundled server's generated one, or the file given).
    ca_cert: Option<&'a Path>,
    /// The target's metrics, one URL per server process, for the first worker to scrape
    /// (empty: as the plan says).
    metrics_urls: &'a [String],
}

/// Runs the workers through their phases: start them all for one instant, relay their
/// progress (and a Ctrl-C) until they finish, then merge their reports.
async fn coordinate(
    plan: &Plan,
    setup: &WorkerSetup,
    options: &RunOptions,
    target: &Target<'_>,
) -> Result<RunReport, RunError> {
    std::fs::create_dir_all(&setup.folder)
        .map_err(|e| RunError::Workers(format!("cannot create {}: {e}", setup.folder.display())))?;
    let board = setup.folder.join("publisher-board");
    let _ = std::fs::remove_file(&board);
    let run_id = rand::random::<u32>() & 0x7FFF_FFFF;
    let (children, lines) = spawn_workers(plan, setup, target, &board, run_id)?;
    relay_progress(plan, options, run_id, &children, lines).await;
    let reports = collect_reports(setup, children).await?;
    let _ = std::fs::remove_file(&board);
    let mut merged = merge(&reports).map_err(|e| RunError::Workers(e.to_string()))?;
    merged.target = plan.target_name();
    Ok(merged)
}

/// A started worker: its shard index and process.
type Worker = (u32, Child);

/// Where the workers' progress lines arrive, tagged with their shard index.
type ProgressLines = mpsc::Receiver<(u32, ProgressLine)>;

/// Starts one `run --shard I/N` per worker, all due at the same instant, and returns them with
/// the channel their progress lines arrive on.
fn spawn_workers(
    plan: &Plan,
    setup: &WorkerSetup,
    target: &Target<'_>,
    board: &Path,
    run_id: u32,
) -> Result<(Vec<Worker>, ProgressLines), RunError> {
    let count = setup.workers.max(1);
    // Time for every worker to start and connect before the first client is due.
    let start_at_us = super::clock::RunClock::new().now_us() + 1_500_000;
    let threads = (crate::util::process::cpu_count() / count as usize).max(1);
    let exe = std::env::current_exe()
        .map_err(|e| RunError::Workers(format!("cannot find my own executable: {e}")))?;
    let (lines_tx, lines) = mpsc::channel::<(u32, ProgressLine)>(256);
    let mut children: Vec<Worker> = Vec::new();
    for index in 0..count {
        let out = worker_folder(&setup.folder, index);
        let mut command = Command::new(&exe);
        command
            .arg("run")
            .arg(&setup.scenario)
            .args(["--shard", &format!("{index}/{count}")])
            .args([
                "--start-at",
                &format!("{:.6}", start_at_us as f64 / 1e6),
                "--run-id",
                &run_id.to_string(),
            ])
            .args(["--threads", &threads.to_string(), "--seed", &plan.seed.to_string()])
            .args(["--duration", &format!("{}ms", plan.duration.as_millis())])
            .args(["--target", target.ws_url, "--progress-json", "--quiet"])
            .arg("--board")
            .arg(board)
            .arg("--out")
            .arg(&out)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            // Their own process group: a Ctrl-C at the terminal reaches only this parent, which
            // forwards one SIGINT to each worker (a second would abort them without a report).
            .process_group(0)
            .kill_on_drop(true);
        if let Some(ca) = target.ca_cert {
            command.arg("--ca-cert").arg(ca);
        }
        if plan.tls.insecure {
            command.arg("--insecure");
        }
        // One worker scrapes for all (they share one target); the file's metrics_url reaches
        // it with the file itself.
        if index > 0 || plan.target_metrics == TargetMetrics::Off {
            command.arg("--no-target-metrics");
        }
        for url in target.metrics_urls {
            command.args(["--target-metrics-url", url]);
        }
        match (&plan.credentials, &setup.token_file) {
            (_, Some(file)) => {
                command.arg("--token-file").arg(file);
            }
            (CredentialSource::Secret(secret), None) => {
                command.env("OPENFRAME_JWT_SECRET", String::from_utf8_lossy(secret).into_owned());
            }
            (CredentialSource::Tokens(_), None) => {}
        }
        let mut child =
            command.spawn().map_err(|e| RunError::Workers(format!("cannot start worker {index}: {e}")))?;
        if let Some(stdout) = child.stdout.take() {
            tokio::spawn(forward_progress(index, stdout, lines_tx.clone()));
        }
        children.push((index, child));
    }
    Ok((children, lines))
}

/// Shows one progress line per second for all workers until every worker's output ends; the
/// first interrupt is passed on as one SIGINT to each worker, which then drains and reports.
async fn relay_progress(
    plan: &Plan,
    options: &RunOptions,
    run_id: u32,
    children: &[Worker],
    mut lines: ProgressLines,
) {
    let count = children.len();
    let planned = plan.planned_clients();
    let duration_s = plan.duration.as_secs_f64();
    let show = !options.quiet;
    let mut pending: BTreeMap<u64, Vec<ProgressLine>> = BTreeMap::new();
    let mut interrupted = false;
    // One live endpoint for the whole run: this process's, fed from the combined progress.
    let mut live = options.live.clone().map(|live| {
        super::live_feed::Feed::new(live, super::live_feed::RunLabels::of(plan, run_id, None, None))
    });
    loop {
        tokio::select! {
            line = lines.recv() => {
                let Some((_, line)) = line else { break };
                let key = line.t_s.round() as u64;
                let parts = pending.entry(key).or_default();
                parts.push(line);
                if parts.len() == count
                    && let Some(parts) = pending.remove(&key)
                {
                    if show {
                        show_line(&combine(&parts, planned, duration_s));
                    }
                    if let Some(live) = &mut live {
                        live.workers_second(&parts);
                    }
                }
            }
            _ = options.interrupt.cancelled(), if !interrupted => {
                interrupted = true;
                for (_, child) in children {
                    if let Some(pid) = child.id() {
                        // SAFETY: signalling our own child process.
                        unsafe { libc::kill(pid as i32, libc::SIGINT) };
                    }
                }
            }
        }
    }
}

/// Waits for every worker and reads the report it left.
async fn collect_reports(setup: &WorkerSetup, children: Vec<Worker>) -> Result<Vec<RunReport>, RunError> {
    let mut reports = Vec::with_capacity(children.len());
    for (index, mut child) in children {
        let status = child.wait().await.map_err(|e| RunError::Workers(format!("worker {index}: {e}")))?;
        // 0, 1, 4 and 130 are finished runs with a report; anything else is a failure.
        if !matches!(status.code(), Some(0 | 1 | 4 | 130)) {
            return Err(RunError::Workers(format!(
                "worker {index} failed ({status}); see its messages above"
            )));
        }
        let path = worker_folder(&setup.folder, index).join("report.json");
        let text = std::fs::read_to_string(&path).map_err(|e| {
            RunError::Workers(format!("worker {index} left no report at {}: {e}", path.display()))
        })?;
        reports.push(serde_json::from_str::<RunReport>(&text).map_err(|e| {
            RunError::Workers(format!("worker {index}'s report {} is unreadable: {e}", path.display()))
        })?);
    }
    Ok(reports)
}

fn worker_folder(folder: &Path, index: u32) -> PathBuf {
    folder.join(format!("worker-{index}"))
}

/// Reads a worker's JSON progress lines and passes them on.
async fn forward_progress(
    index: u32,
    stdout: tokio::process::ChildStdout,
    lines: mpsc::Sender<(u32, ProgressLine)>,
) {
    let mut reader = BufReader::new(stdout).lines();
    while let Ok(Some(text)) = reader.next_line().await {
        let Ok(json) = serde_json::from_str::<serde_json::Value>(&text) else { continue };
        let number = |key: &str| json.get(key).and_then(serde_json::Value::as_u64).unwrap_or(0);
        let line = ProgressLine {
            t_s: json.get("t_s").and_then(serde_json::Value::as_f64).unwrap_or(0.0),
            clients: number("clients"),
            events_per_s: number("events_per_s"),
            fanout_p99_us: number("fanout_p99_us"),
            missing: number("missing"),
            errors: number("errors"),
            stage: json.get("stage").and_then(serde_json::Value::as_str).map(str::to_owned),
            detail: json.get("detail").and_then(|d| serde_json::from_value(d.clone()).ok()),
            ..ProgressLine::default()
        };
        if lines.send((index, line)).await.is_err() {
            return;
        }
    }
}

/// One line for all workers: sums, and the worst p99 (the exact one comes with the report).
fn combine(parts: &[ProgressLine], planned: u64, duration_s: f64) -> ProgressLine {
    ProgressLine {
        t_s: parts.first().map_or(0.0, |p| p.t_s),
        duration_s,
        clients: parts.iter().map(|p| p.clients).sum(),
        planned_clients: planned,
        events_per_s: parts.iter().map(|p| p.events_per_s).sum(),
        fanout_p99_us: parts.iter().map(|p| p.fanout_p99_us).max().unwrap_or(0),
        missing: parts.iter().map(|p| p.missing).sum(),
        errors: parts.iter().map(|p| p.errors).sum(),
        stage: parts.iter().find_map(|p| p.stage.clone()),
        detail: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_of_all_workers_is_one_line() {
        let part = |clients, p99| ProgressLine {
            t_s: 3.0,
            clients,
            events_per_s: 10,
            fanout_p99_us: p99,
            ..ProgressLine::default()
        };
        let line = combine(&[part(5, 100), part(7, 300)], 12, 30.0);
        assert_eq!((line.clients, line.events_per_s, line.fanout_p99_us), (12, 20, 300));
    }
}
