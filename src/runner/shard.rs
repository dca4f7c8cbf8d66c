//! A shard: one OS thread with a single-threaded runtime running a share of the clients and
//! publishers. Shard-local statistics need no synchronisation; every second the shard sends
//! its deltas to the aggregator, and a probe measures how late its timers fire (its loop lag).
//! Publishers get a shard of their own, so that a burst of deliveries never delays a send; the
//! harness's self-test stall (`[harness] faults = ["stall=…"]`) blocks only subscriber shards.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::{JoinSet, LocalSet};
use tokio::time::{Instant, MissedTickBehavior, sleep_until};

use super::context::{RunShared, ShardCtx};
use super::{client, publisher};
use crate::metrics::ShardReport;
use crate::results::LatencyMetric;
use crate::scenario::plan::HarnessStall;
use crate::util::process;

/// What one shard runs.
#[derive(Debug, Default, Clone)]
pub struct ShardAssignment {
    pub index: usize,
    /// (group, client index, connect offset from the run's start), in offset order.
    pub clients: Vec<(usize, u64, Duration)>,
    pub publishers: Vec<usize>,
}

/// How often the loop-lag probe wakes.
const PROBE_PERIOD: Duration = Duration::from_millis(10);

/// Starts the shard's thread. It ends after sending its final report.
pub fn spawn(
    run: Arc<RunShared>,
    assignment: ShardAssignment,
    reports: mpsc::Sender<ShardReport>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new().name(format!("shard-{}", assignment.index)).spawn(move || {
        let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(runtime) => runtime,
            Err(error) => {
                eprintln!("shard {}: cannot start its runtime: {error}", assignment.index);
                return;
            }
        };
        let local = LocalSet::new();
        local.block_on(&runtime, shard_main(run, assignment, reports));
    })
}

async fn shard_main(run: Arc<RunShared>, assignment: ShardAssignment, reports: mpsc::Sender<ShardReport>) {
    let (cpu_at_start, wall_start) = (process::thread_cpu_time(), Instant::now());
    let ctx = Rc::new(ShardCtx::new(Arc::clone(&run), assignment.index));
    let start = run.clock.instant_at(run.start_us);
    let reporter = tokio::task::spawn_local(report_every_second(Rc::clone(&ctx), reports.clone()));
    let probe = tokio::task::spawn_local(probe_loop_lag(Rc::clone(&ctx)));
    let stall = match run.plan.harness.stall {
        Some(stall) if !assignment.clients.is_empty() => Some(tokio::task::spawn_local(stall_thread(stall))),
        _ => None,
    };
    let mut tasks = JoinSet::new();
    for p in assignment.publishers {
        tasks.spawn_local(publisher::run(Rc::clone(&ctx), p));
    }
    for (group, index, offset) in assignment.clients {
        tokio::select! {
            _ = run.stop.cancelled() => break,
            _ = sleep_until((start + offset).into()) => {}
        }
        tasks.spawn_local(client::run(Rc::clone(&ctx), group, index));
    }
    while tasks.join_next().await.is_some() {}
    reporter.abort();
    probe.abort();
    if let Some(stall) = stall {
        stall.abort();
    }
    let interval = (run.elapsed_s().ceil() as u64).max(1);
    let mut last = ctx.stats.borrow_mut().take_delta(interval, ctx.index);
    last.completion = std::mem::take(&mut *ctx.completion.borrow_mut());
    last.is_final = true;
    let wall = wall_start.elapsed().as_secs_f64();
    last.busy = if wall > 0.0 {
        process::thread_cpu_time().saturating_sub(cpu_at_start).as_secs_f64() / wall
    } else {
        0.0
    };
    let _ = reports.send(last).await;
}

/// Sends the shard's deltas at every whole second of the run.
async fn report_every_second(ctx: Rc<ShardCtx>, reports: mpsc::Sender<ShardReport>) {
    let start = ctx.run.clock.instant_at(ctx.run.start_us);
    for interval in 1u64.. {
        sleep_until((start + Duration::from_secs(interval)).into()).await;
        let report = ctx.stats.borrow_mut().take_delta(interval, ctx.index);
        if reports.send(report).await.is_err() {
            return;
        }
    }
}

/// Blocks this shard's thread for `stall.length` every `stall.every`: a loop that runs late on
/// purpose, to show that kernel-stamped latency does not move with it.
async fn stall_thread(stall: HarnessStall) {
    loop {
        tokio::time::sleep(stall.every - stall.length).await;
        std::thread::sleep(stall.length);
    }
}

/// Measures how late a periodic timer fires: the shard's own scheduling delay.
async fn probe_loop_lag(ctx: Rc<ShardCtx>) {
    let mut ticks = tokio::time::interval(PROBE_PERIOD);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut expected = Instant::now();
    loop {
        ticks.tick().await;
        let now = Instant::now();
        let late = now.saturating_duration_since(expected);
        ctx.stats.borrow_mut().histograms.record(LatencyMetric::LoopLag, late.as_micros() as u64);
        expected = now + PROBE_PERIOD;
    }
}
