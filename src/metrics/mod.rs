//! Measurements: which latencies a run records, the statistics each shard owns, and the
//! reports shards send to the aggregator.
//!
//! STYLE rule 9: histograms live in the shard that records them (no lock, no atomic per
//! sample); every interval the shard swaps them out and sends them, with its counter deltas,
//! to the [`aggregator`], which owns every total.

pub mod aggregator;
pub mod histogram;
pub mod progress;

use std::collections::BTreeMap;

use histogram::{Latency, new_histogram, record};

use crate::protocol::ViolationKind;
use crate::results::LatencyMetric;
use crate::results::model::{Counters, Sample};

/// One histogram per [`LatencyMetric`].
#[derive(Debug, Clone)]
pub struct Histograms {
    by_metric: Vec<Latency>,
}

impl Default for Histograms {
    fn default() -> Self {
        Histograms { by_metric: LatencyMetric::ALL.iter().map(|_| new_histogram()).collect() }
    }
}

impl Histograms {
    #[inline]
    pub fn record(&mut self, metric: LatencyMetric, micros: u64) {
        record(&mut self.by_metric[metric.index()], micros);
    }

    pub fn get(&self, metric: LatencyMetric) -> &Latency {
        &self.by_metric[metric.index()]
    }

    /// Adds `part`'s values to `metric`'s histogram.
    pub fn merge_metric(&mut self, metric: LatencyMetric, part: &Latency) {
        histogram::merge(&mut self.by_metric[metric.index()], part);
    }

    pub fn merge(&mut self, other: &Histograms) {
        for (total, part) in self.by_metric.iter_mut().zip(&other.by_metric) {
            histogram::merge(total, part);
        }
    }

    /// Takes the recorded values out, leaving empty histograms of the same shape.
    pub fn take(&mut self) -> Histograms {
        let mut taken = self.clone();
        std::mem::swap(&mut taken, self);
        self.by_metric.iter_mut().for_each(Latency::reset);
        taken
    }
}

/// Most samples kept per kind of error, per shard.
pub const SAMPLES_PER_KIND: usize = 5;

/// What one stage of the run measured: its event counters (each event in the stage of its
/// intended publish time) and its fan-out latency.
#[derive(Debug, Clone)]
pub struct StageStats {
    pub counters: Counters,
    pub fanout: Latency,
}

impl Default for StageStats {
    fn default() -> Self {
        StageStats { counters: Counters::default(), fanout: new_histogram() }
    }
}

impl StageStats {
    /// Adds `part`'s figures to these.
    pub fn add(&mut self, part: &StageStats) {
        self.counters += &part.counters;
        histogram::merge(&mut self.fanout, &part.fanout);
    }

    /// These figures, leaving zeros behind.
    fn take(&mut self) -> StageStats {
        let taken = self.clone();
        self.counters = Counters::default();
        self.fanout.reset();
        taken
    }
}

/// Adds `parts`, stage by stage, into `totals` (grown to their length).
pub fn add_stages(totals: &mut Vec<StageStats>, parts: &[StageStats]) {
    if totals.len() < parts.len() {
        totals.resize_with(parts.len(), StageStats::default);
    }
    for (total, part) in totals.iter_mut().zip(parts) {
        total.add(part);
    }
}

/// What one shard has measured since its last report.
#[derive(Debug, Default)]
pub struct ShardStats {
    /// Per client group; the publishers' counters are in the last slot.
    pub counters: Vec<Counters>,
    /// Per stage of the run.
    pub stages: Vec<StageStats>,
    pub histograms: Histograms,
    pub violations: BTreeMap<ViolationKind, u64>,
    pub samples: Vec<Sample>,
    /// Fan-out latency per client group, so a gate can hold one group to a bound.
    pub group_fanout: Vec<Latency>,
    /// Per client group: clients currently connected and past `connection_established` (a
    /// gauge, not a delta).
    pub clients_connected: Vec<u64>,
    pub bytes_received: u64,
}

impl ShardStats {
    /// Counts a server message that breaks PROTOCOL.md, for `group`, under its kind.
    pub fn record_violation(&mut self, group: usize, kind: ViolationKind) {
        self.counters[group].protocol_violations += 1;
        *self.violations.entry(kind).or_default() += 1;
    }

    pub fn new(groups: usize, stages: usize) -> ShardStats {
        ShardStats {
            counters: vec![Counters::default(); groups + 1],
            stages: vec![StageStats::default(); stages],
            group_fanout: (0..groups).map(|_| new_histogram()).collect(),
            clients_connected: vec![0; groups],
            ..ShardStats::default()
        }
    }

    /// Records a delivery's fan-out latency, run-wide and for its group.
    /// A delivery to `group` of an event of `stage` (its intended time's), `latency` µs after
    /// it was meant to be sent (`None`: counted, its latency left out, as in a warm-up).
    #[inline]
    pub fn record_delivery(&mut self, group: usize, stage: usize, latency: Option<u64>) {
        if let Some(counters) = self.counters.get_mut(group) {
            counters.events_delivered += 1;
        }
        if let Some(stage) = self.stages.get_mut(stage) {
            stage.counters.events_delivered += 1;
            if let Some(micros) = latency {
                record(&mut stage.fanout, micros);
            }
        }
        let Some(micros) = latency else { return };
        self.histograms.record(LatencyMetric::Fanout, micros);
        if let Some(histogram) = self.group_fanout.get_mut(group) {
            record(histogram, micros);
        }
    }

    pub fn sample(&mut self, sample: Sample) {
        if self.samples.iter().filter(|s| s.kind == sample.kind).count() < SAMPLES_PER_KIND {
            self.samples.push(sample);
        }
    }

    /// The deltas since the last call, resetting them.
    pub fn take_delta(&mut self, interval: u64, shard: usize) -> ShardReport {
        let groups = self.counters.len();
        ShardReport {
            shard,
            interval,
            counters: std::mem::replace(&mut self.counters, vec![Counters::default(); groups]),
            stages: self.stages.iter_mut().map(StageStats::take).collect(),
            histograms: self.histograms.take(),
            group_fanout: self
                .group_fanout
                .iter_mut()
                .map(|h| {
                    let taken = h.clone();
                    h.reset();
                    taken
                })
                .collect(),
            violations: std::mem::take(&mut self.violations),
            samples: std::mem::take(&mut self.samples),
            clients_connected: self.clients_connected.clone(),
            bytes_received: std::mem::take(&mut self.bytes_received),
            completion: Vec::new(),
            is_final: false,
            busy: 0.0,
        }
    }
}

/// A shard's deltas for one interval, sent to the aggregator.
#[derive(Debug)]
pub struct ShardReport {
    pub shard: usize,
    /// 1 for the first second of the run, 2 for the next, …
    pub interval: u64,
    pub counters: Vec<Counters>,
    pub stages: Vec<StageStats>,
    pub histograms: Histograms,
    pub group_fanout: Vec<Latency>,
    pub violations: BTreeMap<ViolationKind, u64>,
    pub samples: Vec<Sample>,
    /// Per client group, connected now.
    pub clients_connected: Vec<u64>,
    pub bytes_received: u64,
    /// In the final report only: per publisher, per sequence number, the latest receipt in
    /// this shard (microseconds since the run's epoch; 0 = never received).
    pub completion: Vec<Vec<u64>>,
    /// The shard's last report.
    pub is_final: bool,
    /// In the final report: the share of the shard thread's wall time spent on CPU (0–1).
    pub busy: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_names_round_trip() {
        for m in LatencyMetric::ALL {
            assert_eq!(LatencyMetric::from_name(m.name()), Some(m));
        }
    }

    #[test]
    fn take_leaves_empty_histograms_and_keeps_the_values() {
        let mut h = Histograms::default();
        h.record(LatencyMetric::Fanout, 100);
        let taken = h.take();
        assert_eq!(taken.get(LatencyMetric::Fanout).len(), 1);
        assert_eq!(h.get(LatencyMetric::Fanout).len(), 0);
    }

    #[test]
    fn samples_are_bounded_per_kind() {
        let mut stats = ShardStats::new(1, 1);
        for i in 0..20 {
            let kind = if i % 2 == 0 { "a" } else { "b" };
            stats.sample(Sample {
                kind: kind.into(),
                detail: String::new(),
                message: String::new(),
                group: String::new(),
                t_s: 0.0,
            });
        }
        assert_eq!(stats.samples.len(), 2 * SAMPLES_PER_KIND);
    }
}
