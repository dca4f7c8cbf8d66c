//! The run's side of `--live` and of the target's telemetry: what the aggregator's closed
//! intervals become on the live endpoint (one [`LiveSnapshot`] a second), the scrape of the
//! target's metrics once a second beside the run, and the feed of a parent of worker
//! processes from its workers' progress lines.
//!
//! Everything here runs off the shards' threads: the hook on the aggregator's task, the
//! scraper on the run's own runtime. Nothing here may block: the endpoint only receives.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::EmbeddedServer;
use crate::live::{LatencyBuckets, LiveSecond, LiveServer, LiveSnapshot, RunState};
use crate::metrics::aggregator::{IntervalHook, Totals};
use crate::metrics::progress::ProgressLine;
use crate::metrics::Histograms;
use crate::results::LatencyMetric;
use crate::results::model::Counters;
use crate::results::server_sample::ServerSample;
use crate::scenario::Plan;
use crate::scenario::plan::TargetPlan;
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
}

/// The aggregator's hook that publishes a snapshot per closed interval.
pub fn interval_hook(live: Arc<LiveServer>, labels: RunLabels) -> IntervalHook {
    let seconds: Mutex<Vec<LiveSecond>> = Mutex::new(Vec::new());
    IntervalHook(Arc::new(move |totals: &Totals, interval: &Histograms| {
        let Some(last) = totals.intervals.last() else { return };
        let lag = interval.get(LatencyMetric::LoopLag);
        let fanout = interval.get(LatencyMetric::Fanout);
        let second = LiveSecond {
            t_s: last.t_s,
            clients: last.clients,
            delivered: last.events_delivered,
            fanout_p50_us: (!fanout.is_empty()).then_some(last.fanout_p50_us),
            fanout_p99_us: (!fanout.is_empty()).then_some(last.fanout_p99_us),
            loop_lag_us: (!lag.is_empty()).then(|| lag.max()),
            server: last.server.clone(),
        };
        let seconds = {
            let mut all = seconds.lock().unwrap_or_else(|p| p.into_inner());
            all.push(second);
            Arc::new(all.clone())
        };
        let counters = totals.counters_total();
        let mut snapshot = base_snapshot(&labels, &counters, last.t_s, last.clients, seconds);
        snapshot.latency = EXPORTED
            .iter()
            .filter(|m| !totals.histograms.get(**m).is_empty())
            .map(|m| (m.name().to_owned(), LatencyBuckets::from_micros(totals.histograms.get(*m))))
            .collect();
        let lag_so_far = totals.histograms.get(LatencyMetric::LoopLag);
        snapshot.loop_lag_max_us = if lag_so_far.is_empty() { 0 } else { lag_so_far.max() };
        live.publish(snapshot);
    }))
}

fn base_snapshot(
    labels: &RunLabels,
    counters: &Counters,
    t_s: f64,
    clients: u64,
    seconds: Arc<Vec<LiveSecond>>,
) -> LiveSnapshot {
    let (failing, verdict) = verdict_so_far(counters);
    LiveSnapshot {
        scenario: labels.scenario.clone(),
        run_id: labels.run_id.clone(),
        shard: labels.shard.clone(),
        state: RunState::Running,
        verdict,
        failing,
        stage: None,
        elapsed_s: t_s,
        counters: counters.iter().collect(),
        // The aggregator counts connected clients per shard, not per group.
        clients: vec![("all".to_owned(), clients)],
        latency: Vec::new(),
        loop_lag_max_us: 0,
        harness_cpu_s: process::cpu_time().as_secs_f64(),
        seconds,
    }
}

/// Whether a failure counter moved so far, and the failures in words.
fn verdict_so_far(c: &Counters) -> (bool, String) {
    let failures: Vec<String> = [
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

/// The feed of a parent of worker processes: one snapshot per combined progress line (no
/// histograms: the workers send percentiles, not buckets).
#[derive(Debug)]
pub struct ProgressFeed {
    live: Arc<LiveServer>,
    labels: RunLabels,
    seconds: Vec<LiveSecond>,
    delivered: u64,
}

impl ProgressFeed {
    pub fn new(live: Arc<LiveServer>, labels: RunLabels) -> ProgressFeed {
        ProgressFeed { live, labels, seconds: Vec::new(), delivered: 0 }
    }

    pub fn publish(&mut self, line: &ProgressLine) {
        self.delivered += line.events_per_s;
        self.seconds.push(LiveSecond {
            t_s: line.t_s,
            clients: line.clients,
            delivered: line.events_per_s,
            fanout_p99_us: (line.events_per_s > 0).then_some(line.fanout_p99_us),
            ..LiveSecond::default()
        });
        let counters = Counters {
            events_delivered: self.delivered,
            events_missing: line.missing,
            ..Counters::default()
        };
        let snapshot =
            base_snapshot(&self.labels, &counters, line.t_s, line.clients, Arc::new(self.seconds.clone()));
        self.live.publish(snapshot);
    }
}

/// How long an external target's `/metrics` may take to answer the first time.
const PROBE_WAIT: Duration = Duration::from_secs(2);

/// The scraper of the run's target: `[target] metrics_url`; the bundled server's processes;
/// or the `/metrics` next to an external target's `/v1/ws` when it answers (else none, said
/// in one line).
pub(crate) async fn scraper_for(plan: &Plan, embedded: Option<&EmbeddedServer>, quiet: bool) -> Option<Scraper> {
    let (urls, probe) = match (&plan.metrics_url, embedded, &plan.target) {
        (Some(url), _, _) => (vec![url.clone()], false),
        (None, Some(embedded), _) => (embedded.server.metrics_urls(), false),
        (None, None, TargetPlan::External { ws_url, .. }) => (vec![metrics_url_next_to(ws_url)?], true),
        (None, None, TargetPlan::Embedded { .. }) => return None,
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

    #[test]
    fn the_verdict_names_what_failed_so_far() {
        assert_eq!(verdict_so_far(&Counters::default()), (false, "no failure so far".to_owned()));
        let c = Counters { events_missing: 3, unexpected_closes: 1, ..Counters::default() };
        assert_eq!(verdict_so_far(&c), (true, "3 missing, 1 unexpected closes".to_owned()));
    }
}
