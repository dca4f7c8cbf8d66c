//! The run's side of `--live` and of the target's telemetry: what the aggregator's closed
//! intervals become on the live endpoint (one [`LiveSnapshot`] a second), the scrape of the
//! target's metrics once a second beside the run, and the feed of a parent of worker
//! processes from its workers' progress lines (each carries the worker's counters so far and
//! its second's histograms, so the parent's one endpoint serves the whole run).
//!
//! Everything here runs off the shards' threads: the hook on the aggregator's task, the
//! scraper on the run's own runtime. Nothing here may block: the endpoint only receives.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::EmbeddedServer;
use crate::live::charts::WINDOW_S;
use crate::live::{LatencyBuckets, LiveSecond, LiveServer, LiveSnapshot, RunState};
use crate::metrics::Histograms;
use crate::metrics::aggregator::{IntervalHook, Totals};
use crate::metrics::histogram::{decode, summarize};
use crate::metrics::progress::{ProgressLine, stage_at};
use crate::results::LatencyMetric;
use crate::results::model::Counters;
use crate::results::server_sample::ServerSample;
use crate::scenario::Plan;
use crate::scenario::plan::{TargetMetrics, TargetPlan};
use crate::telemetry::{Scraper, metrics_url_next_to, parse_metrics_url};
use crate::util::process;

/// The latency metrics the endpoint exports as Prometheus histograms.
const EXPORTED: [LatencyMetric; 5] = [
    LatencyMetric::Fanout,
    LatencyMetric::Completion,
    LatencyMetric::Connect,
    LatencyMetric::Subscribe,
    LatencyMetric::PublishAck,
];

/// What names the run on the endpoint.
#[derive(Debug, Clone)]
pub struct RunLabels {
    pub scenario: String,
    pub run_id: String,
    pub shard: Option<String>,
    /// The plan's client groups, in order (the `group` label of per-group series).
    pub groups: Vec<String>,
    /// The plan's stages: name and end, in seconds since the start.
    pub stages: Vec<(String, f64)>,
    /// The capacity step this run is, in words (`3: 40 events/s`), when it is one.
    pub step: Option<String>,
}

impl RunLabels {
    /// The labels of a run of `plan`.
    pub fn of(plan: &Plan, run_id: u32, shard: Option<String>, step: Option<String>) -> RunLabels {
        RunLabels {
            scenario: plan.name.clone(),
            run_id: run_id.to_string(),
            shard,
            groups: plan.groups.iter().map(|g| g.name.clone()).collect(),
            stages: plan.stages.iter().map(|s| (s.name.clone(), s.end.as_secs_f64())).collect(),
            step,
        }
    }
}

/// The run so far as the endpoint shows it, built up one closed second at a time: by the
/// aggregator's hook in a run of one process, by the parent from its workers' progress lines
/// otherwise. Nothing here is read back by the run.
#[derive(Debug)]
pub struct Feed {
    live: Arc<LiveServer>,
    labels: RunLabels,
    /// The latest [`WINDOW_S`] seconds (what the page draws).
    seconds: VecDeque<LiveSecond>,
    /// Every latency metric of the run so far.
    so_far: Histograms,
    delivered_so_far: u64,
}

impl Feed {
    pub fn new(live: Arc<LiveServer>, labels: RunLabels) -> Feed {
        Feed { live, labels, seconds: VecDeque::new(), so_far: Histograms::default(), delivered_so_far: 0 }
    }

    /// Publishes the run as of the end of second `t_s`: `counters` so far, clients now per
    /// group, the second's own histograms, the harness's CPU time so far, the target's sample.
    pub fn second(&mut self, now: SecondFigures<'_>) {
        self.so_far.merge(now.histograms);
        let fanout = now.histograms.get(LatencyMetric::Fanout);
        let lag = now.histograms.get(LatencyMetric::LoopLag);
        let fanout_summary = summarize(fanout);
        let delivered = now.counters.events_delivered.saturating_sub(self.delivered_so_far);
        self.delivered_so_far = now.counters.events_delivered;
        if self.seconds.len() == WINDOW_S {
            self.seconds.pop_front();
        }
        self.seconds.push_back(LiveSecond {
            t_s: now.t_s,
            clients: now.clients_by_group.iter().sum(),
            delivered,
            fanout_p50_us: (!fanout.is_empty()).then_some(fanout_summary.p50),
            fanout_p99_us: (!fanout.is_empty()).then_some(fanout_summary.p99),
            loop_lag_us: (!lag.is_empty()).then(|| lag.max()),
            server: now.server,
        });
        let (failing, verdict) = verdict_so_far(now.counters);
        let lag_so_far = self.so_far.get(LatencyMetric::LoopLag);
        let groups = &self.labels.groups;
        let snapshot = LiveSnapshot {
            scenario: self.labels.scenario.clone(),
            run_id: self.labels.run_id.clone(),
            shard: self.labels.shard.clone(),
            state: RunState::Running,
            verdict,
            failing,
            stage: stage_at(&self.labels.stages, now.t_s),
            step: self.labels.step.clone(),
            elapsed_s: now.t_s,
            counters: now.counters.iter().collect(),
            clients: now
                .clients_by_group
                .iter()
                .enumerate()
                .map(|(g, n)| (groups.get(g).cloned().unwrap_or_else(|| format!("group-{g}")), *n))
                .collect(),
            latency: EXPORTED
                .iter()
                .filter(|m| !self.so_far.get(**m).is_empty())
                .map(|m| (m.name().to_owned(), LatencyBuckets::from_micros(self.so_far.get(*m))))
                .collect(),
            loop_lag_max_us: if lag_so_far.is_empty() { 0 } else { lag_so_far.max() },
            harness_cpu_s: now.cpu_s,
            seconds: Arc::new(self.seconds.iter().cloned().collect()),
        };
        self.live.publish(snapshot);
    }

    /// One second of a run in worker processes, from each worker's progress line (the
    /// workers are this program, so every line carries its detail; one without adds nothing).
    pub fn workers_second(&mut self, parts: &[ProgressLine]) {
        let mut counters = Counters::default();
        let mut clients_by_group: Vec<u64> = Vec::new();
        let mut histograms = Histograms::default();
        let mut cpu_s = 0.0;
        let mut server = None;
        for part in parts {
            let Some(detail) = &part.detail else { continue };
            counters += &detail.counters;
            if clients_by_group.len() < detail.clients_by_group.len() {
                clients_by_group.resize(detail.clients_by_group.len(), 0);
            }
            for (total, n) in clients_by_group.iter_mut().zip(&detail.clients_by_group) {
                *total += n;
            }
            for (name, encoded) in &detail.histograms {
                if let (Some(metric), Ok(histogram)) = (LatencyMetric::from_name(name), decode(encoded)) {
                    histograms.merge_metric(metric, &histogram);
                }
            }
            cpu_s += detail.cpu_s;
            // Every worker scrapes the same target: one sample stands for it.
            server = server.or_else(|| detail.server.clone());
        }
        let t_s = parts.first().map_or(0.0, |p| p.t_s);
        self.second(SecondFigures {
            t_s,
            counters: &counters,
            clients_by_group: &clients_by_group,
            histograms: &histograms,
            cpu_s,
            server,
        });
    }
}

/// What one closed second adds (see [`Feed::second`]).
#[derive(Debug)]
pub struct SecondFigures<'a> {
    pub t_s: f64,
    pub counters: &'a Counters,
    pub clients_by_group: &'a [u64],
    pub histograms: &'a Histograms,
    pub cpu_s: f64,
    pub server: Option<ServerSample>,
}

/// The aggregator's hook that publishes a snapshot per closed interval.
pub fn interval_hook(live: Arc<LiveServer>, labels: RunLabels) -> IntervalHook {
    let feed = Mutex::new(Feed::new(live, labels));
    IntervalHook(Arc::new(move |totals: &Totals, interval: &Histograms| {
        let Some(last) = totals.intervals.last() else { return };
        let counters = totals.counters_total();
        let mut feed = feed.lock().unwrap_or_else(|p| p.into_inner());
        feed.second(SecondFigures {
            t_s: last.t_s,
            counters: &counters,
            clients_by_group: &totals.clients_by_group,
            histograms: interval,
            cpu_s: process::cpu_time().as_secs_f64(),
            server: last.server.clone(),
        });
    }))
}

/// Whether a failure counter moved so far, and the failures in words.
fn verdict_so_far(c: &Counters) -> (bool, String) {
    let failures: Vec<String> = [
        (c.connections_failed, "failed connections"),
        (c.events_missing, "missing"),
        (c.events_duplicated, "duplicated"),
        (c.events_out_of_order, "out of order"),
        (c.filter_violations, "filter violations"),
        (c.events_after_unsubscribe, "after unsubscribe"),
        (c.protocol_violations, "protocol violations"),
        (c.unexpected_closes, "unexpected closes"),
    ]
    .into_iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, what)| format!("{n} {what}"))
    .collect();
    if failures.is_empty() { (false, "no failure so far".to_owned()) } else { (true, failures.join(", ")) }
}

/// The final snapshot: the last one published, marked finished with its report folder.
pub fn finished(live: &LiveServer, report_dir: &std::path::Path, passed: bool, valid: bool) -> LiveSnapshot {
    let mut last = (*live.latest()).clone();
    let dir = std::fs::canonicalize(report_dir).unwrap_or_else(|_| report_dir.to_owned());
    last.state = RunState::Finished { report_dir: dir.display().to_string(), passed, valid };
    last
}

/// How long an external target's `/metrics` may take to answer the first time.
const PROBE_WAIT: Duration = Duration::from_secs(2);

/// The scraper of the run's target: `[target] metrics_url`; the bundled server's processes;
/// or the `/metrics` next to an external target's `/v1/ws` when it answers (else none, said
/// in one line).
pub(crate) async fn scraper_for(
    plan: &Plan,
    embedded: Option<&EmbeddedServer>,
    quiet: bool,
) -> Option<Scraper> {
    let (urls, probe) = match (&plan.target_metrics, embedded, &plan.target) {
        (TargetMetrics::Off, _, _) => return None,
        (TargetMetrics::Urls(urls), _, _) => (urls.clone(), false),
        (TargetMetrics::Default, Some(embedded), _) => (embedded.server.metrics_urls(), false),
        (TargetMetrics::Default, None, TargetPlan::External { ws_url, .. }) => {
            (vec![metrics_url_next_to(ws_url)?], true)
        }
        (TargetMetrics::Default, None, TargetPlan::Embedded { .. }) => return None,
    };
    let mut targets = Vec::with_capacity(urls.len());
    for url in &urls {
        match parse_metrics_url(url) {
            Ok(target) => targets.push(target),
            Err(error) => {
                if !quiet {
                    eprintln!("target metrics: off ({error})");
                }
                return None;
            }
        }
    }
    // An https endpoint is checked as the clients check the target (the bundled server's CA).
    let tls = match urls.iter().any(|u| u.starts_with("https://")) {
        true => match super::client_tls(plan, embedded, "wss://", "https://") {
            Ok(tls) => tls,
            Err(error) => {
                if !quiet {
                    eprintln!("target metrics: off ({error})");
                }
                return None;
            }
        },
        false => None,
    };
    let scraper = Scraper::new(targets, tls);
    if probe && !scraper.answers(PROBE_WAIT).await {
        if !quiet {
            eprintln!(
                "target metrics: off ({} does not answer; set [target] metrics_url to scrape the target's metrics)",
                urls[0]
            );
        }
        return None;
    }
    Some(scraper)
}

/// Scrapes the target once a second until `stop`, publishing each sample with its time; a
/// failed or slow scrape leaves the previous sample, which then goes stale.
pub async fn scrape_each_second(
    scraper: Scraper,
    samples: watch::Sender<Option<(Instant, ServerSample)>>,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => break,
        }
        if let Ok(sample) = scraper.scrape().await {
            samples.send_replace(Some((Instant::now(), sample)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::histogram::encode;
    use crate::metrics::progress::WorkerSecond;

    fn live() -> Arc<LiveServer> {
        let listener = crate::live::bind(([127, 0, 0, 1], 0).into()).unwrap();
        Arc::new(LiveServer::start(listener, LiveSnapshot::default()).unwrap())
    }

    fn labels() -> RunLabels {
        RunLabels {
            scenario: "s".into(),
            run_id: "7".into(),
            shard: None,
            groups: vec!["watchers".into(), "others".into()],
            stages: vec![("steady".into(), 2.0), ("spike".into(), 4.0)],
            step: None,
        }
    }

    fn fanout(values: &[u64]) -> Histograms {
        let mut h = Histograms::default();
        for v in values {
            h.record(LatencyMetric::Fanout, *v);
        }
        h
    }

    #[test]
    fn each_second_adds_its_deliveries_and_histograms_to_the_run_so_far() {
        let live = live();
        let mut feed = Feed::new(Arc::clone(&live), labels());
        let mut counters = Counters { events_delivered: 3, ..Counters::default() };
        fn second<'a>(t_s: f64, counters: &'a Counters, histograms: &'a Histograms) -> SecondFigures<'a> {
            SecondFigures { t_s, counters, clients_by_group: &[4, 1], histograms, cpu_s: 0.5, server: None }
        }
        feed.second(second(1.0, &counters, &fanout(&[1_000, 2_000, 3_000])));
        counters.events_delivered = 5;
        feed.second(second(2.0, &counters, &fanout(&[4_000, 5_000])));
        let snapshot = live.latest();
        assert_eq!(snapshot.counter("events_delivered"), 5);
        assert_eq!(snapshot.clients, [("watchers".to_owned(), 4), ("others".to_owned(), 1)]);
        let per_second: Vec<u64> = snapshot.seconds.iter().map(|s| s.delivered).collect();
        assert_eq!(per_second, [3, 2]);
        let (name, buckets) = &snapshot.latency[0];
        assert_eq!((name.as_str(), buckets.count), ("fanout", 5), "both seconds' deliveries");
        assert_eq!(snapshot.seconds[1].fanout_p99_us.map(|p| p / 100), Some(50));
        assert!(!snapshot.failing);
    }

    #[test]
    fn a_run_in_workers_is_the_sum_of_their_lines() {
        let live = live();
        let mut feed = Feed::new(Arc::clone(&live), labels());
        let part = |delivered, missing, clients: Vec<u64>, values: &[u64]| ProgressLine {
            t_s: 3.0,
            detail: Some(Box::new(WorkerSecond {
                counters: Counters {
                    events_delivered: delivered,
                    events_missing: missing,
                    ..Counters::default()
                },
                clients_by_group: clients,
                histograms: [("fanout".to_owned(), encode(fanout(values).get(LatencyMetric::Fanout)))].into(),
                cpu_s: 1.0,
                server: None,
            })),
            ..ProgressLine::default()
        };
        feed.workers_second(&[part(10, 0, vec![2, 1], &[100, 200]), part(20, 1, vec![3, 0], &[300])]);
        let snapshot = live.latest();
        assert_eq!(snapshot.counter("events_delivered"), 30);
        assert_eq!(snapshot.counter("events_missing"), 1);
        assert!(snapshot.failing && snapshot.verdict.contains("1 missing"), "{}", snapshot.verdict);
        assert_eq!(snapshot.clients_total(), 6);
        assert_eq!(snapshot.clients[0], ("watchers".to_owned(), 5));
        assert_eq!(snapshot.latency[0].1.count, 3);
        assert_eq!(snapshot.harness_cpu_s, 2.0);
    }

    #[test]
    fn the_verdict_names_what_failed_so_far() {
        assert_eq!(verdict_so_far(&Counters::default()), (false, "no failure so far".to_owned()));
        let c = Counters { events_missing: 3, unexpected_closes: 1, ..Counters::default() };
        assert_eq!(verdict_so_far(&c), (true, "3 missing, 1 unexpected closes".to_owned()));
    }
}
