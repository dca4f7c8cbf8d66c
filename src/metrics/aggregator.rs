//! The aggregator: an actor that owns every total of a run (STYLE rule 11).
//!
//! Shards send a [`ShardReport`] per second, tagged with the interval's index; when every shard
//! has reported an interval, the aggregator closes it (one [`Interval`] row, one progress line)
//! and folds it into the run's totals. Nothing else holds metric state, so progress and reports
//! never lock anything shared.

use std::collections::BTreeMap;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use super::histogram::{encode, summarize};
use super::progress::{Progress, ProgressLine, WorkerSecond};
use super::{Histograms, ShardReport};
use crate::protocol::ViolationKind;
use crate::results::LatencyMetric;
use crate::results::model::{Counters, Interval, Sample};
use crate::results::server_sample::ServerSample;

/// The latest scrape of the target's metrics and when it was taken (`None` before the first).
pub type ServerSamples = watch::Receiver<Option<(Instant, ServerSample)>>;

/// A sample older than this when an interval closes belongs to an earlier second.
const SAMPLE_FRESH_FOR: Duration = Duration::from_millis(1_500);

/// Called once per closed interval with the totals so far (the new interval last) and the
/// interval's own histograms: how a live view follows the run without holding its state.
#[derive(Clone)]
pub struct IntervalHook(pub Arc<OnInterval>);

/// What an [`IntervalHook`] calls.
pub type OnInterval = dyn Fn(&Totals, &Histograms) + Send + Sync;

impl std::fmt::Debug for IntervalHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IntervalHook")
    }
}

/// Everything a run measured, once every shard has sent its final report.
#[derive(Debug, Default)]
pub struct Totals {
    /// Per client group; publishers in the last slot.
    pub counters: Vec<Counters>,
    /// Per stage of the run.
    pub stages: Vec<super::StageStats>,
    pub histograms: Histograms,
    /// Fan-out latency per client group.
    pub group_fanout: Vec<super::histogram::Latency>,
    pub intervals: Vec<Interval>,
    pub violations: BTreeMap<ViolationKind, u64>,
    pub samples: Vec<Sample>,
    pub peak_clients: u64,
    pub bytes_received: u64,
    /// Per publisher, per sequence number: the latest receipt anywhere (µs since the epoch).
    pub completion: Vec<Vec<u64>>,
    /// Per shard thread: the share of its time it was on the CPU.
    pub shard_busy: Vec<f64>,
    /// When the server sample attached to the latest interval was taken (one sample, one interval).
    pub last_server_sample: Option<Instant>,
    /// Per client group, connected at the end of the latest closed interval.
    pub clients_by_group: Vec<u64>,
}

impl Totals {
    /// All groups' and the publishers' counters added up.
    pub fn counters_total(&self) -> Counters {
        let mut total = Counters::default();
        for c in &self.counters {
            total += c;
        }
        total
    }
}

/// What the aggregator needs to know about the run.
#[derive(Debug, Clone)]
pub struct AggregatorConfig {
    pub shards: usize,
    pub groups: usize,
    pub planned_clients: u64,
    pub duration_s: f64,
    /// The timeline: each stage's name and end, in seconds from the run's start.
    pub stages: Vec<(String, f64)>,
    pub progress: Progress,
    /// The target's metrics, scraped once a second beside the run (`intervals[].server`).
    pub server: Option<ServerSamples>,
    /// Told of every closed interval (the live endpoint's feed).
    pub on_interval: Option<IntervalHook>,
}

#[derive(Debug, Default)]
struct PendingInterval {
    reports: usize,
    counters: Counters,
    histograms: Histograms,
    /// Per group.
    clients: Vec<u64>,
}

/// Runs until every shard has sent its final report (or every sender is gone).
pub async fn run(config: AggregatorConfig, mut reports: mpsc::Receiver<ShardReport>) -> Totals {
    let progress = config.progress;
    let mut totals = Totals { counters: vec![Counters::default(); config.groups + 1], ..Totals::default() };
    let mut pending: BTreeMap<u64, PendingInterval> = BTreeMap::new();
    let mut finished_shards = 0;
    let mut clients_by_shard = vec![vec![0u64; config.groups]; config.shards];
    while finished_shards < config.shards {
        let Some(report) = reports.recv().await else { break };
        if report.is_final {
            finished_shards += 1;
            merge_completion(&mut totals.completion, &report.completion);
            totals.shard_busy.push(report.busy);
        }
        if let Some(slot) = clients_by_shard.get_mut(report.shard) {
            slot.clone_from(&report.clients_connected);
        }
        fold_into_totals(&mut totals, &report);
        let interval = pending.entry(report.interval).or_default();
        interval.reports += 1;
        for c in &report.counters {
            interval.counters += c;
        }
        interval.histograms.merge(&report.histograms);
        interval.clients = (0..config.groups)
            .map(|g| clients_by_shard.iter().map(|shard| shard.get(g).copied().unwrap_or(0)).sum())
            .collect();
        // Close every interval all shards have reported, oldest first.
        while let Some(entry) = pending.first_entry() {
            if entry.get().reports < config.shards && finished_shards < config.shards {
                break;
            }
            let (index, done) = entry.remove_entry();
            close_interval(&mut totals, index, done, &config, &progress);
        }
    }
    for (index, done) in std::mem::take(&mut pending) {
        close_interval(&mut totals, index, done, &config, &progress);
    }
    progress.finish();
    totals
}

fn fold_into_totals(totals: &mut Totals, report: &ShardReport) {
    for (total, part) in totals.counters.iter_mut().zip(&report.counters) {
        *total += part;
    }
    super::add_stages(&mut totals.stages, &report.stages);
    totals.histograms.merge(&report.histograms);
    if totals.group_fanout.len() < report.group_fanout.len() {
        totals.group_fanout.resize_with(report.group_fanout.len(), super::histogram::new_histogram);
    }
    for (total, part) in totals.group_fanout.iter_mut().zip(&report.group_fanout) {
        super::histogram::merge(total, part);
    }
    for (kind, n) in &report.violations {
        *totals.violations.entry(*kind).or_default() += n;
    }
    for sample in &report.samples {
        if totals.samples.iter().filter(|s| s.kind == sample.kind).count() < super::SAMPLES_PER_KIND {
            totals.samples.push(sample.clone());
        }
    }
    totals.bytes_received += report.bytes_received;
}

fn merge_completion(total: &mut Vec<Vec<u64>>, part: &[Vec<u64>]) {
    if total.len() < part.len() {
        total.resize(part.len(), Vec::new());
    }
    for (total, part) in total.iter_mut().zip(part) {
        if total.len() < part.len() {
            total.resize(part.len(), 0);
        }
        for (t, p) in total.iter_mut().zip(part) {
            *t = (*t).max(*p);
        }
    }
}

fn close_interval(
    totals: &mut Totals,
    index: u64,
    done: PendingInterval,
    config: &AggregatorConfig,
    progress: &Progress,
) {
    let fanout = summarize(done.histograms.get(LatencyMetric::Fanout));
    let c = &done.counters;
    let errors = c.connections_failed
        + c.protocol_violations
        + c.unexpected_closes
        + c.publish_errors
        + c.subscribe_failures
        + c.events_missing
        + c.events_duplicated
        + c.events_out_of_order
        + c.filter_violations
        + c.events_after_unsubscribe;
    let clients: u64 = done.clients.iter().sum();
    totals.peak_clients = totals.peak_clients.max(clients);
    let histograms = LatencyMetric::ALL
        .iter()
        .filter(|m| !done.histograms.get(**m).is_empty())
        .map(|m| (m.name().to_owned(), encode(done.histograms.get(*m))))
        .collect();
    let interval = Interval {
        t_s: index as f64,
        clients,
        events_published: c.events_published,
        events_delivered: c.events_delivered,
        fanout_p50_us: fanout.p50,
        fanout_p99_us: fanout.p99,
        fanout_max_us: fanout.max,
        errors,
        connections_opened: c.connections_opened,
        histograms,
        rss_bytes: crate::util::process::rss_bytes(),
        server: config
            .server
            .as_ref()
            .and_then(|samples| fresh_sample(samples, &mut totals.last_server_sample)),
    };
    let so_far = summarize(totals.histograms.get(LatencyMetric::Fanout));
    let missing = totals.counters_total().events_missing;
    // Only a parent process reads the detail: other progress costs nothing more.
    let detail = (*progress == Progress::JsonLines).then(|| {
        Box::new(WorkerSecond {
            counters: totals.counters_total(),
            clients_by_group: done.clients.clone(),
            histograms: interval.histograms.clone(),
            cpu_s: crate::util::process::cpu_time().as_secs_f64(),
            server: interval.server.clone(),
        })
    });
    progress.show(&ProgressLine {
        t_s: interval.t_s,
        duration_s: config.duration_s,
        clients: interval.clients,
        planned_clients: config.planned_clients,
        events_per_s: interval.events_delivered,
        fanout_p99_us: so_far.p99,
        missing,
        errors: totals.intervals.iter().map(|i| i.errors).sum::<u64>() + errors,
        stage: super::progress::stage_at(&config.stages, interval.t_s),
        detail,
    });
    totals.intervals.push(interval);
    totals.clients_by_group = done.clients;
    if let Some(hook) = &config.on_interval {
        (hook.0)(totals, &done.histograms);
    }
}

/// The latest sample when it is recent and not attached to an interval yet.
fn fresh_sample(samples: &ServerSamples, last: &mut Option<Instant>) -> Option<ServerSample> {
    let latest = samples.borrow();
    let (at, sample) = latest.as_ref()?;
    if at.elapsed() > SAMPLE_FRESH_FOR || last.is_some_and(|seen| seen >= *at) {
        return None;
    }
    *last = Some(*at);
    Some(sample.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::ShardStats;

    fn report(shard: usize, interval: u64, delivered: u64, is_final: bool) -> ShardReport {
        let mut stats = ShardStats::new(1, 1);
        stats.counters[0].events_delivered = delivered;
        stats.histograms.record(LatencyMetric::Fanout, 100 * delivered);
        stats.clients_connected = vec![10];
        let mut r = stats.take_delta(interval, shard);
        r.is_final = is_final;
        r
    }

    #[tokio::test]
    async fn an_interval_closes_when_every_shard_reported_it() {
        let (tx, rx) = mpsc::channel(16);
        let config = AggregatorConfig {
            shards: 2,
            groups: 1,
            planned_clients: 20,
            duration_s: 2.0,
            stages: Vec::new(),
            progress: Progress::Off,
            server: None,
            on_interval: None,
        };
        let task = tokio::spawn(run(config, rx));
        tx.send(report(0, 1, 5, false)).await.unwrap();
        tx.send(report(1, 1, 7, false)).await.unwrap();
        tx.send(report(1, 2, 1, true)).await.unwrap();
        tx.send(report(0, 2, 2, true)).await.unwrap();
        let totals = task.await.unwrap();
        assert_eq!(totals.intervals.len(), 2);
        assert_eq!(totals.intervals[0].events_delivered, 12);
        assert_eq!(totals.intervals[1].events_delivered, 3);
        assert_eq!(totals.counters_total().events_delivered, 15);
        assert_eq!(totals.peak_clients, 20);
        assert_eq!(totals.histograms.get(LatencyMetric::Fanout).len(), 4);
    }

    #[test]
    fn a_server_sample_goes_to_one_interval_while_it_is_fresh() {
        let (tx, rx) = watch::channel(None);
        let mut last = None;
        assert_eq!(fresh_sample(&rx, &mut last), None, "nothing scraped yet");
        let sample = ServerSample { connections: 3, ..ServerSample::default() };
        tx.send_replace(Some((Instant::now(), sample.clone())));
        assert_eq!(fresh_sample(&rx, &mut last), Some(sample.clone()));
        assert_eq!(fresh_sample(&rx, &mut last), None, "the same scrape is not attached twice");
        tx.send_replace(Some((Instant::now() - Duration::from_secs(3), sample)));
        assert_eq!(fresh_sample(&rx, &mut last), None, "a stale scrape is not this second's");
    }

    #[test]
    fn completion_keeps_the_latest_receipt_of_each_event() {
        let mut total = vec![vec![5, 0]];
        merge_completion(&mut total, &[vec![3, 9, 4], vec![1]]);
        assert_eq!(total, vec![vec![5, 9, 4], vec![1]]);
    }
}
