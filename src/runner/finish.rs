//! From the aggregated totals to the run's report: completion times, summaries, what the
//! harness cost, whether it can be trusted (it was not the bottleneck), and the gates.

use std::time::Duration;

use super::context::RunShared;
use crate::metrics::aggregator::Totals;
use crate::metrics::histogram::{encode, summarize};
use crate::protocol::timestamp::format_rfc3339_millis;
use crate::report::gates::apply_gates;
use crate::results::LatencyMetric;
use crate::results::model::{
    Counters, Environment, GroupReport, HarnessReport, RunReport, StageReport, TlsReport, growth_pct,
};
use crate::results::server_sample::ScrapeReport;
use crate::util::duration::format_duration;
use crate::util::process;

/// Share of its time a shard thread may spend on the CPU before the harness counts as saturated.
const BUSY_LIMIT: f64 = 0.95;
/// With kernel stamps, the share of deliveries that may come without one before the run is
/// flagged. Unstamped reads were seen only where receive queues had overflowed (0.5–3.4 % of
/// the deliveries at 600,000–800,000 a second, none in any run that kept up: the kernel does not
/// stamp data it had to compact in a full queue), and those frames were timed when read; a few
/// can come from a process's first moment of stamping.
const UNSTAMPED_LIMIT: f64 = 0.001;

/// What the run cost this process.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    pub cpu: Duration,
    pub wall: Duration,
    /// The bundled server ran in this process, so CPU and memory include it.
    pub server_in_process: bool,
}

/// Builds the report and judges the gates.
/// `scrapes`: how the target's metrics were scraped, when they were.
pub fn report(
    run: &RunShared,
    mut totals: Totals,
    usage: Usage,
    interrupted: bool,
    scrapes: Option<ScrapeReport>,
) -> RunReport {
    let plan = &run.plan;
    record_completion(run, &mut totals);
    let counters = totals.counters_total();
    let duration_s =
        (run.clock.now_us().saturating_sub(run.start_us) as f64 / 1e6).min(plan.duration.as_secs_f64());
    let mut report = RunReport::empty(&plan.name);
    report.description = plan.description.clone();
    report.target = plan.target_name();
    report.seed = plan.seed;
    report.interrupted = interrupted;
    report.started_at = format_rfc3339_millis(std::time::UNIX_EPOCH + Duration::from_micros(run.start_us));
    report.duration_s = duration_s;
    report.peak_clients = totals.peak_clients;
    report.counters = counters;
    for metric in LatencyMetric::ALL {
        let histogram = totals.histograms.get(metric);
        report.latency_us.insert(metric.name().to_owned(), summarize(histogram));
        if !histogram.is_empty() {
            report.histograms.insert(metric.name().to_owned(), encode(histogram));
        }
    }
    let per_s = |n: u64| if duration_s > 0.0 { n as f64 / duration_s } else { 0.0 };
    report.throughput.insert("events_published_per_s".into(), per_s(counters.events_published));
    report.throughput.insert("events_delivered_per_s".into(), per_s(counters.events_delivered));
    report.throughput.insert("connections_per_s".into(), per_s(counters.connections_opened));
    report.throughput.insert("bytes_received_per_s".into(), per_s(totals.bytes_received));
    report.throughput.insert("tls_handshakes_per_s".into(), per_s(counters.tls_handshakes));
    report.tls = tls_report(run, &counters);
    report.harness = harness_report(run, &totals, usage, counters.events_delivered);
    report.valid = !report.harness.overloaded;
    report.groups = plan
        .groups
        .iter()
        .zip(&totals.counters)
        .enumerate()
        .map(|(i, (g, c))| GroupReport {
            name: g.name.clone(),
            clients: g.count,
            counters: *c,
            latency_us: totals
                .group_fanout
                .get(i)
                .map(|h| [("fanout".to_owned(), summarize(h))].into_iter().collect())
                .unwrap_or_default(),
            histograms: totals
                .group_fanout
                .get(i)
                .filter(|h| !h.is_empty())
                .map(|h| [("fanout".to_owned(), encode(h))].into_iter().collect())
                .unwrap_or_default(),
        })
        .chain(totals.counters.last().map(|c| GroupReport {
            name: "publishers".into(),
            clients: plan.publishers.len() as u64,
            counters: *c,
            latency_us: Default::default(),
            histograms: Default::default(),
        }))
        .collect();
    report.stages = plan
        .stages
        .iter()
        .enumerate()
        .map(|(i, stage)| {
            let measured = totals.stages.get(i).cloned().unwrap_or_default();
            StageReport {
                name: stage.name.clone(),
                start_s: stage.start.as_secs_f64(),
                end_s: stage.end.as_secs_f64(),
                counters: measured.counters,
                latency_us: [("fanout".to_owned(), summarize(&measured.fanout))].into_iter().collect(),
                histograms: Some(&measured.fanout)
                    .filter(|h| !h.is_empty())
                    .map(|h| [("fanout".to_owned(), encode(h))].into_iter().collect())
                    .unwrap_or_default(),
            }
        })
        .collect();
    report.violations = totals
        .violations
        .iter()
        .map(|(kind, n)| {
            (
                serde_json::to_value(kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                *n,
            )
        })
        .collect();
    report.samples = std::mem::take(&mut totals.samples);
    report.intervals = std::mem::take(&mut totals.intervals);
    let rss: Vec<u64> = report.intervals.iter().map(|i| i.rss_bytes).collect();
    report.harness.rss_growth_pct = growth_pct(&rss);
    report.server_metrics = scrapes.map(|scrapes| {
        let rss: Vec<u64> =
            report.intervals.iter().filter_map(|i| i.server.as_ref()).map(|s| s.rss_bytes).collect();
        ScrapeReport { rss_growth_pct: growth_pct(&rss), ..scrapes }
    });
    report.environment = environment();
    report.scenario_source = plan.source.clone();
    apply_gates(&mut report, &plan.gates);
    report
}

/// How the clients spoke TLS, when they did.
fn tls_report(run: &RunShared, counters: &Counters) -> TlsReport {
    let connector = &run.connector;
    let Some(tls) = connector.tls().filter(|_| connector.is_tls()) else { return TlsReport::default() };
    TlsReport {
        enabled: true,
        verification: tls.verification().to_owned(),
        insecure: tls.insecure(),
        server_name: connector.sni(),
        alpn: vec![String::from_utf8_lossy(crate::tls::ALPN_HTTP1).into_owned()],
        resumption: "per client: a client resumes its own earlier session when it reconnects, if the \
                     server offered a ticket or session id"
            .to_owned(),
        resumed_percent: TlsReport::resumed_percent(counters),
    }
}

/// Per event: from its intended time to its last receipt anywhere (but for a capacity step's
/// warm-up).
fn record_completion(run: &RunShared, totals: &mut Totals) {
    for (p, receipts) in totals.completion.iter().enumerate() {
        let Some(schedule) = run.schedules.get(p) else { continue };
        for (seq, last) in receipts.iter().enumerate().filter(|(_, last)| **last > 0) {
            let intended = schedule.time_of(seq as u64);
            if !run.judged(intended) {
                continue;
            }
            let latency = last.saturating_sub(intended);
            totals.histograms.record(LatencyMetric::Completion, latency);
        }
    }
}

fn harness_report(run: &RunShared, totals: &Totals, usage: Usage, delivered: u64) -> HarnessReport {
    let cpu_us = usage.cpu.as_micros() as f64;
    let clients = totals.peak_clients.max(1);
    let loop_lag = summarize(totals.histograms.get(LatencyMetric::LoopLag));
    let read_delay = summarize(totals.histograms.get(LatencyMetric::ReadDelay));
    // Each stamped delivery records its read delay: kernel stamps when most deliveries had one.
    let stamped = read_delay.count;
    let kernel_stamps = stamped > 0 && stamped.saturating_mul(2) >= delivered;
    let limit = run.plan.harness.max_loop_lag;
    let mut reasons = Vec::new();
    if let Some(busiest) = totals.shard_busy.iter().copied().reduce(f64::max).filter(|b| *b > BUSY_LIMIT) {
        reasons.push(format!(
            "a harness thread was on the CPU {:.0} % of the run (limit {:.0} %): it had no headroom left",
            busiest * 100.0,
            BUSY_LIMIT * 100.0
        ));
    }
    if kernel_stamps {
        // A late read is timed exactly while the data waits in the socket; what the harness must
        // not do is let a receive queue fill, or TCP flow control slows the server down.
        let per_connection = peak_bytes_per_connection_s(totals, clients, delivered, run.plan.duration);
        let queued = per_connection * read_delay.p99 as f64 / 1e6;
        let room = process::tcp_receive_buffer_bytes() as f64 / 2.0;
        if queued > room {
            reasons.push(format!(
                "subscribers read {} after arrival at p99: at {:.0} B/s per connection their receive queues held \
                 about {:.0} KiB, over half the socket's receive buffer ({:.0} KiB), so TCP flow control may \
                 have slowed the server",
                format_duration(Duration::from_micros(read_delay.p99)),
                per_connection,
                queued / 1024.0,
                room / 1024.0
            ));
        }
        let unstamped = delivered.saturating_sub(stamped);
        if unstamped as f64 > delivered as f64 * UNSTAMPED_LIMIT {
            reasons.push(format!(
                "{unstamped} deliveries ({:.1} %) came without a kernel receive stamp and were timed when read: \
                 the kernel gives none for data it had to compact in a receive queue that overflowed",
                unstamped as f64 * 100.0 / delivered as f64
            ));
        }
    } else if loop_lag.p99 > limit.as_micros() as u64 {
        reasons.push(format!(
            "the harness's event loop ran {} late at p99 (limit {}): its timestamps include its own delay",
            format_duration(Duration::from_micros(loop_lag.p99)),
            format_duration(limit)
        ));
    }
    let peak_rss = process::peak_rss_bytes();
    HarnessReport {
        threads: run.plan.harness.threads as u64,
        timestamps: if kernel_stamps { "kernel" } else { "user" }.to_owned(),
        workers: 1,
        cpu_s: usage.cpu.as_secs_f64(),
        cpu_percent: if usage.wall.is_zero() {
            0.0
        } else {
            usage.cpu.as_secs_f64() / usage.wall.as_secs_f64() / process::cpu_count() as f64 * 100.0
        },
        peak_rss_bytes: peak_rss,
        rss_per_client_bytes: peak_rss / clients,
        // Set from the intervals once they are in the report.
        rss_growth_pct: 0.0,
        cpu_us_per_event: if delivered == 0 { 0.0 } else { cpu_us / delivered as f64 },
        cpu_us_per_client: cpu_us / clients as f64,
        bytes_received: totals.bytes_received,
        bytes_per_event: if delivered == 0 { 0.0 } else { totals.bytes_received as f64 / delivered as f64 },
        overloaded: !reasons.is_empty(),
        server_in_process: usage.server_in_process,
        reasons,
    }
}

/// Bytes a subscriber received per second in the run's busiest second: the rate at which its
/// receive queue fills while it is not read (the whole run's average would dilute a publishing
/// window with the ramp and the drain). It errs high, never low: reads that catch up after a
/// delay bunch into one second (the 100/s ceiling runs of BENCHMARKS.md: 93–145 KB/s against
/// 36 KB/s arriving). The run's average when no second was recorded.
fn peak_bytes_per_connection_s(totals: &Totals, clients: u64, delivered: u64, duration: Duration) -> f64 {
    let clients = clients.max(1) as f64;
    let busiest = totals.intervals.iter().map(|i| i.events_delivered).max().unwrap_or(0);
    if busiest == 0 || delivered == 0 {
        return totals.bytes_received as f64 / duration.as_secs_f64().max(1e-3) / clients;
    }
    let bytes_per_delivery = totals.bytes_received as f64 / delivered as f64;
    busiest as f64 * bytes_per_delivery / clients
}

fn environment() -> Environment {
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default().trim().to_owned();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_owned();
    Environment {
        harness_version: env!("CARGO_PKG_VERSION").to_owned(),
        hostname,
        os: format!("{} {kernel}", std::env::consts::OS).trim().to_owned(),
        cpus: process::cpu_count() as u64,
        memory_bytes: process::total_memory_bytes(),
        command: std::env::args().collect::<Vec<_>>().join(" "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::model::Interval;

    #[test]
    fn a_receive_queue_fills_at_the_busiest_seconds_rate_not_the_runs_average() {
        let second = |events_delivered| Interval { events_delivered, ..Interval::default() };
        // 10 clients; 1,000 deliveries of 100 bytes, 800 of them in one second of a 40 s run.
        let totals = Totals {
            bytes_received: 100_000,
            intervals: vec![second(100), second(800), second(100), second(0)],
            ..Totals::default()
        };
        let rate = peak_bytes_per_connection_s(&totals, 10, 1_000, Duration::from_secs(40));
        assert_eq!(rate, 8_000.0, "800 deliveries × 100 B over 10 connections in the busiest second");
        let unrecorded = Totals { bytes_received: 100_000, ..Totals::default() };
        assert_eq!(peak_bytes_per_connection_s(&unrecorded, 10, 1_000, Duration::from_secs(40)), 250.0);
    }
}
