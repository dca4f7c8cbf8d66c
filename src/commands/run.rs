//! `run SCENARIO.toml`: load and validate the scenario, run it (against the bundled server when
//! there is no target) or its capacity search, write the report folder, print the verdict, exit
//! with CLI.md's code.

use std::io::Write;
use std::sync::Arc;

use anyhow::Context;

use super::check::INSECURE_WARNING;
use super::shutdown::Shutdown;
use crate::cli::{CredentialArgs, RunArgs};
use crate::commands::outcome::{BadInput, Outcome};
use crate::live::{self, LiveServer, LiveSnapshot};
use crate::report::files::write_run_folder;
use crate::report::md::verdict;
use crate::report::numbers::trim_number;
use crate::report::summary;
use crate::results::model::RunReport;
use crate::runner::workers::WorkerSetup;
use crate::runner::{self, RunOptions};
use crate::scenario::{self, Overrides, plan::read_tokens};
use crate::util::duration::format_micros;

pub async fn execute(args: RunArgs, shutdown: Shutdown) -> anyhow::Result<Outcome> {
    let overrides = Overrides {
        target: args.target.clone(),
        seed: args.seed,
        duration: args.duration,
        jwt_secret: args.credentials.secret.jwt_secret.clone(),
        token_file: token_file(&args.credentials)?,
        tls: if args.bundled_tls {
            Some(true)
        } else if args.no_bundled_tls {
            Some(false)
        } else {
            None
        },
        ca_cert: args.tls.ca_cert.clone(),
        insecure: args.tls.insecure,
        threads: args.threads,
        sharded: args.shard.is_some(),
        no_target_metrics: args.no_target_metrics,
        target_metrics_urls: args.target_metrics_url.clone(),
        faults: args.faults.clone(),
        find_capacity: args.find_capacity,
    };
    let plan = scenario::load(&args.scenario, &overrides)?;
    if plan.capacity.is_some() {
        return find_capacity(&args, plan, shutdown).await;
    }
    let workers = match args.shard {
        Some(_) => 0,
        None => {
            runner::preflight::check(&plan, &runner::preflight::Machine::read(), args.workers)
                .map_err(|e| runner::RunError::Preflight(e.0))?
                .workers
        }
    };
    let live = start_live(&args, &plan)?;
    if let Some(live) = &live {
        eprintln!("live: {}", live.url());
    }
    let name = plan.name.clone();
    if !args.quiet {
        eprintln!(
            "run {:?}: {} clients in {} groups, {} publishers, {:?}, target {}, seed {}{}",
            name,
            plan.planned_clients(),
            plan.groups.len(),
            plan.publishers.len(),
            plan.duration,
            plan.target_name(),
            plan.seed,
            if workers > 0 { format!(", {workers} worker processes") } else { String::new() }
        );
    }
    if plan.tls.insecure && !args.progress_json {
        eprintln!("{INSECURE_WARNING}");
    }
    let folder = crate::report::folder::create(args.out.as_deref(), &name)
        .context("cannot create the report folder")?;
    let options = RunOptions {
        quiet: args.quiet,
        interrupt: shutdown.drain_token(),
        shard: args.shard,
        start_at_us: args.start_at,
        run_id: args.run_id.or_else(|| args.start_at.map(|at| shared_run_id(at, plan.seed))),
        board: args.board.clone(),
        progress_json: args.progress_json,
        live: live.clone(),
        live_step: None,
    };
    let report = if workers > 0 {
        let setup = WorkerSetup {
            scenario: args.scenario.clone(),
            workers,
            folder: folder.join("workers"),
            token_file: args.credentials.token_file.clone(),
        };
        runner::workers::run(plan, setup, options).await
    } else {
        runner::run(plan, options).await
    }
    .context("the run could not be carried out")?;
    write_run_folder(&folder, &report)
        .with_context(|| format!("cannot write the report into {}", folder.display()))?;
    if let Some(live) = live {
        let last = runner::live_feed::finished(&live, &folder, report.passed, report.valid);
        let _ = tokio::task::spawn_blocking(move || live.finish(last)).await;
    }
    if !args.progress_json {
        print_summary(&report);
        println!("report: {}", folder.display());
    }
    Ok(outcome(&report))
}

/// `run` of a scenario with a `[capacity]` table: the search, a line per step on stderr, each
/// step's report.json in `steps/` of the report folder, and the search's report.
async fn find_capacity(args: &RunArgs, plan: scenario::Plan, shutdown: Shutdown) -> anyhow::Result<Outcome> {
    if args.workers.is_some_and(|w| w > 0) {
        return Err(BadInput(
            "--workers does not apply to a capacity search: each step runs in this process (a step that \
             would need worker processes ends the search as the harness's limit)"
                .into(),
        )
        .into());
    }
    let Some(capacity) = plan.capacity.clone() else {
        return Err(BadInput("no [capacity] table".into()).into());
    };
    let live = start_live(args, &plan)?;
    if let Some(live) = &live {
        eprintln!("live: {}", live.url());
    }
    if !args.quiet {
        eprintln!(
            "capacity search {:?}: {} from {} to {} {} (x{} up, then bisect to {} %), each step {:?} warm-up + {:?} \
             measured, target {}, seed {}",
            plan.name,
            capacity.vary_text,
            capacity.from,
            capacity.to,
            capacity.vary.unit(),
            capacity.growth,
            capacity.resolution * 100.0,
            capacity.warmup,
            capacity.step_duration,
            plan.target_name(),
            plan.seed
        );
    }
    let folder = crate::report::folder::create(args.out.as_deref(), &plan.name)
        .context("cannot create the report folder")?;
    let steps_folder = folder.join("steps");
    std::fs::create_dir_all(&steps_folder)
        .with_context(|| format!("cannot create {}", steps_folder.display()))?;
    let options = RunOptions {
        quiet: args.quiet,
        interrupt: shutdown.drain_token(),
        live: live.clone(),
        ..RunOptions::default()
    };
    let unit = capacity.vary.unit();
    let mut on_step = |step: &crate::results::model::CapacityStep, report: Option<&RunReport>| {
        let fanout = step.latency_us.get("fanout").copied().unwrap_or_default();
        let verdict = if !step.valid {
            format!("NOT TRUSTWORTHY: {}", step.reasons.join("; "))
        } else if step.passed {
            "passed".to_owned()
        } else {
            format!("FAILED {}", step.failing_gate.as_deref().unwrap_or_default())
        };
        eprintln!(
            "capacity step {} ({}): {} {unit} offered, {} achieved, {:.0} deliveries/s, fan-out p50 {} p99 {}: {verdict}",
            step.step,
            step.phase,
            trim_number(step.offered, 2),
            trim_number(step.achieved, 2),
            step.deliveries_per_s,
            format_micros(fanout.p50),
            format_micros(fanout.p99),
        );
        if let Some(report) = report {
            let path = steps_folder.join(format!("step-{:02}.json", step.step));
            let written = std::fs::File::create(&path).map_err(|e| e.to_string()).and_then(|file| {
                serde_json::to_writer_pretty(std::io::BufWriter::new(file), report).map_err(|e| e.to_string())
            });
            if let Err(e) = written {
                eprintln!("cannot write {}: {e}", path.display());
            }
        }
    };
    let report = runner::capacity::run(plan, options, &mut on_step)
        .await
        .context("the capacity search could not be carried out")?;
    write_run_folder(&folder, &report)
        .with_context(|| format!("cannot write the report into {}", folder.display()))?;
    if let Some(live) = live {
        let last = runner::live_feed::finished(&live, &folder, report.passed, report.valid);
        let _ = tokio::task::spawn_blocking(move || live.finish(last)).await;
    }
    print_summary(&report);
    println!("report: {}", folder.display());
    Ok(outcome(&report))
}

/// The live endpoint of `--live ADDR` (or `[harness] live`), bound now so that a bad address
/// (exit 2) or a port in use (exit 3) stops the run before it starts. A worker process of a
/// parent run has none: the parent's endpoint covers the whole run.
fn start_live(args: &RunArgs, plan: &scenario::Plan) -> anyhow::Result<Option<Arc<LiveServer>>> {
    if args.progress_json {
        return Ok(None);
    }
    let addr = match &args.live {
        Some(text) => live::parse_address(text)?,
        None => match plan.harness.live {
            Some(addr) => addr,
            None => return Ok(None),
        },
    };
    let listener = live::bind(addr)?;
    let first = LiveSnapshot {
        scenario: plan.name.clone(),
        verdict: "starting".into(),
        counters: crate::results::model::Counters::default().iter().collect(),
        ..LiveSnapshot::default()
    };
    Ok(Some(Arc::new(LiveServer::start(listener, first)?)))
}

/// The run id of shards started apart (other machines, a Kubernetes Job): derived from what they
/// must share anyway, the start time and the seed, so that every shard recognises the events of
/// every other shard's publishers as the run's own.
fn shared_run_id(start_at_us: u64, seed: u64) -> u32 {
    (crate::util::mix::mix64(seed, 0x0f_5a_4d, start_at_us) & 0x7FFF_FFFF) as u32
}

fn token_file(credentials: &CredentialArgs) -> anyhow::Result<Option<Vec<String>>> {
    let Some(path) = &credentials.token_file else { return Ok(None) };
    let text = std::fs::read_to_string(path)
        .map_err(|e| BadInput(format!("cannot read --token-file {}: {e}", path.display())))?;
    let tokens = read_tokens(&text);
    if tokens.is_empty() {
        return Err(BadInput(format!("--token-file {} holds no tokens", path.display())).into());
    }
    Ok(Some(tokens))
}

/// The exit code a finished run earns.
pub(super) fn outcome(report: &RunReport) -> Outcome {
    if report.interrupted {
        Outcome::Interrupted
    } else if !report.valid {
        Outcome::Untrustworthy
    } else if report.passed {
        Outcome::Passed
    } else {
        Outcome::Failed
    }
}

/// The verdict, counters, fan-out latency and gates, on stderr.
pub(super) fn print_summary(report: &RunReport) {
    let c = &report.counters;
    let mut err = std::io::stderr().lock();
    let fanout = report.latency_us.get("fanout").copied().unwrap_or_default();
    let _ = writeln!(err, "\n{}: {}", report.scenario, verdict(report));
    let _ = writeln!(err, "  events: {}", summary::delivery(c));
    let _ = writeln!(err, "  connections: {}", summary::connections(c));
    let _ = writeln!(
        err,
        "  fan-out latency: p50 {}  p99 {}  max {}  ({} deliveries)",
        format_micros(fanout.p50),
        format_micros(fanout.p99),
        format_micros(fanout.max),
        fanout.count
    );
    if report.tls.enabled {
        let handshake = report.latency_us.get("tls_handshake").copied().unwrap_or_default();
        let _ = writeln!(
            err,
            "  tls: {} handshakes ({} resumed), handshake p50 {}  p99 {}; verification: {}",
            c.tls_handshakes,
            c.tls_resumed,
            format_micros(handshake.p50),
            format_micros(handshake.p99),
            report.tls.verification
        );
    }
    if report.tls.insecure {
        let _ = writeln!(err, "  {INSECURE_WARNING}");
    }
    if let Some(capacity) = &report.capacity {
        let _ = writeln!(err, "  capacity: {}", summary::capacity(capacity));
    }
    for reason in &report.harness.reasons {
        let _ = writeln!(err, "  NOT TRUSTWORTHY: {reason}");
    }
    for gate in &report.gates {
        let _ = writeln!(
            err,
            "  gate {}: {} (observed {}){}",
            gate.expr,
            if gate.passed { "pass" } else { "FAIL" },
            gate.observed,
            if gate.default { " [default]" } else { "" }
        );
    }
}
