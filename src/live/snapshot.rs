//! What the run knows each second, as the live endpoint receives it: the input of every route.
//!
//! The run builds one [`LiveSnapshot`] per closed interval and sends it through a
//! `tokio::sync::watch` channel (only the latest is kept), so the endpoint never holds anything
//! the run needs and a slow reader only ever misses intermediate snapshots.

use std::sync::Arc;

use hdrhistogram::Histogram;

use crate::results::server_sample::ServerSample;

/// Upper bounds of the latency histograms' buckets, in seconds: 100 µs steps below 1 ms, then
/// about 20 % apart to 100 ms, then coarser; fine enough that `histogram_quantile(0.99, …)` of
/// a p99 in the millisecond range lands within a fifth of a millisecond or so.
pub const LATENCY_BUCKETS_S: [f64; 40] = [
    0.0001, 0.0002, 0.0003, 0.0004, 0.0005, 0.0006, 0.0007, 0.0008, 0.0009, 0.001, 0.0012, 0.0014, 0.0016,
    0.0018, 0.002, 0.0025, 0.003, 0.0035, 0.004, 0.005, 0.006, 0.007, 0.008, 0.01, 0.012, 0.015, 0.02, 0.025,
    0.03, 0.04, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// One latency metric of the whole run so far as a Prometheus histogram: counts per bucket of
/// [`LATENCY_BUCKETS_S`] (not cumulative; the encoder accumulates), plus everything above.
#[derive(Debug, Clone, PartialEq)]
pub struct LatencyBuckets {
    /// `counts[i]` values were at most `LATENCY_BUCKETS_S[i]` and above the bound before it.
    pub counts: [u64; LATENCY_BUCKETS_S.len()],
    pub count: u64,
    pub sum_s: f64,
}

impl Default for LatencyBuckets {
    fn default() -> LatencyBuckets {
        LatencyBuckets { counts: [0; LATENCY_BUCKETS_S.len()], count: 0, sum_s: 0.0 }
    }
}

impl LatencyBuckets {
    /// The buckets of a histogram of microseconds (the run's HdrHistograms). Each recorded
    /// value (HdrHistogram keeps equivalent values together) is placed by its highest
    /// equivalent value, so a bucket never holds a value above its bound.
    pub fn from_micros(histogram: &Histogram<u64>) -> LatencyBuckets {
        let mut buckets = LatencyBuckets::default();
        for value in histogram.iter_recorded() {
            let micros = histogram.highest_equivalent(value.value_iterated_to());
            let seconds = micros as f64 / 1e6;
            let n = value.count_at_value();
            if let Some(i) = LATENCY_BUCKETS_S.iter().position(|bound| seconds <= *bound) {
                buckets.counts[i] += n;
            }
            buckets.count += n;
            buckets.sum_s += histogram.median_equivalent(value.value_iterated_to()) as f64 / 1e6 * n as f64;
        }
        buckets
    }

    /// `(upper bound, count)` pairs as `prometheus-client` encodes them.
    pub fn pairs(&self) -> Vec<(f64, u64)> {
        LATENCY_BUCKETS_S.iter().copied().zip(self.counts).collect()
    }
}

/// Where the run is.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum RunState {
    /// Connecting, before the first interval closed.
    #[default]
    Starting,
    Running,
    /// The report is written; `report_dir` is its folder.
    Finished {
        report_dir: String,
        passed: bool,
        valid: bool,
    },
}

/// One second of the run, for the page's charts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LiveSecond {
    /// Seconds since the run started, at the end of this second.
    pub t_s: f64,
    pub clients: u64,
    /// Deliveries in this second.
    pub delivered: u64,
    pub fanout_p50_us: Option<u64>,
    pub fanout_p99_us: Option<u64>,
    /// The harness's worst event-loop lag in this second, when measured.
    pub loop_lag_us: Option<u64>,
    /// The target's own figures at the end of this second, when scraped.
    pub server: Option<ServerSample>,
}

/// Everything the endpoint shows, as of the latest closed second.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LiveSnapshot {
    pub scenario: String,
    pub run_id: String,
    /// `I/N` for a sharded run.
    pub shard: Option<String>,
    pub state: RunState,
    /// The verdict so far, in words ("no failure so far", "3 events missing", …).
    pub verdict: String,
    /// Whether anything failed so far (the page colours the verdict by it).
    pub failing: bool,
    /// The stage the run is in (a run with more than one stage).
    pub stage: Option<String>,
    /// The capacity step the run is, in words (`3: 40 events/s`), during a capacity search.
    pub step: Option<String>,
    /// Seconds since the run started.
    pub elapsed_s: f64,
    /// Every counter of `report.json`, by its name there, totals so far.
    pub counters: Vec<(&'static str, u64)>,
    /// Clients connected now, per group.
    pub clients: Vec<(String, u64)>,
    /// Latency metrics of the run so far, by their name in `report.json` (`fanout`, `connect`, …).
    pub latency: Vec<(String, LatencyBuckets)>,
    /// The harness's worst loop lag so far, and its CPU time so far.
    pub loop_lag_max_us: u64,
    pub harness_cpu_s: f64,
    /// Every second so far (shared: each snapshot adds one).
    pub seconds: Arc<Vec<LiveSecond>>,
}

impl LiveSnapshot {
    pub fn counter(&self, name: &str) -> u64 {
        self.counters.iter().find(|(n, _)| *n == name).map_or(0, |(_, v)| *v)
    }

    pub fn clients_total(&self) -> u64 {
        self.clients.iter().map(|(_, n)| n).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::histogram::{new_histogram, record};

    #[test]
    fn buckets_hold_each_value_at_or_below_their_bound() {
        let mut histogram = new_histogram();
        for micros in [50, 100, 950, 1_000, 1_001, 2_600, 20_000_000] {
            record(&mut histogram, micros);
        }
        let buckets = LatencyBuckets::from_micros(&histogram);
        assert_eq!(buckets.count, 7);
        let at = |bound: f64| buckets.counts[LATENCY_BUCKETS_S.iter().position(|b| *b == bound).unwrap()];
        assert_eq!(at(0.0001), 2, "50 µs and 100 µs");
        assert_eq!(at(0.001), 2, "950 µs and 1 ms");
        assert_eq!(at(0.0012), 1, "1.001 ms");
        assert_eq!(at(0.003), 1, "2.6 ms");
        assert_eq!(buckets.counts.iter().sum::<u64>(), 6, "20 s is above every bound: only in +Inf");
        assert!((buckets.sum_s - 20.005701).abs() < 0.05, "{}", buckets.sum_s);
    }
}
