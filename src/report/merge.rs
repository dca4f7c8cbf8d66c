//! Merging the reports of the shards of one run (`merge`, and `run --workers`): histograms
//! merged exactly (never percentiles averaged), counters added, intervals aligned by time, and
//! the gates judged again on the merged data.

use std::collections::BTreeMap;

use crate::metrics::histogram::{self, Latency, decode, encode, summarize};
use crate::report::gates::{Gate, apply_gates};
use crate::results::model::{GroupReport, Interval, LatencySummary, RunReport, StageReport, TlsReport};
use crate::results::server_sample::ScrapeReport;

#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("nothing to merge")]
    Empty,
    #[error("the reports are not shards of one run: {field} differs ({a:?} vs {b:?})")]
    Mismatch { field: &'static str, a: String, b: String },
    #[error("a report is not a run report (kind {0:?})")]
    NotARun(String),
    #[error("{0}")]
    Histogram(#[from] histogram::DecodeError),
    #[error("gate {0:?} cannot be judged again: {1}")]
    Gate(String, String),
}

/// Merges the shards' reports into one.
pub fn merge(reports: &[RunReport]) -> Result<RunReport, MergeError> {
    let first = reports.first().ok_or(MergeError::Empty)?;
    for report in reports {
        if report.kind != RunReport::KIND {
            return Err(MergeError::NotARun(report.kind.clone()));
        }
        same("scenario", &first.scenario, &report.scenario)?;
        same("seed", &first.seed.to_string(), &report.seed.to_string())?;
    }
    let mut merged = RunReport::empty(&first.scenario);
    merged.description = first.description.clone();
    merged.target = first.target.clone();
    merged.seed = first.seed;
    merged.environment = first.environment.clone();
    merged.tls = first.tls.clone();
    merged.tls.insecure = reports.iter().any(|r| r.tls.insecure);
    merged.scenario_source = first.scenario_source.clone();
    merged.interrupted = reports.iter().any(|r| r.interrupted);
    merged.valid = reports.iter().all(|r| r.valid);
    merged.started_at = reports.iter().map(|r| r.started_at.clone()).min().unwrap_or_default();
    merged.duration_s = reports.iter().map(|r| r.duration_s).fold(0.0, f64::max);
    for report in reports {
        merged.counters += &report.counters;
        for (kind, n) in &report.violations {
            *merged.violations.entry(kind.clone()).or_default() += n;
        }
        for sample in &report.samples {
            if merged.samples.iter().filter(|s| s.kind == sample.kind).count()
                < crate::metrics::SAMPLES_PER_KIND
            {
                merged.samples.push(sample.clone());
            }
        }
    }
    let histograms = merge_histogram_maps(reports.iter().map(|r| &r.histograms))?;
    for (name, h) in &histograms {
        merged.latency_us.insert(name.clone(), summarize(h));
        merged.histograms.insert(name.clone(), encode(h));
    }
    merged.intervals = merge_intervals(reports)?;
    let scrapes: Vec<&ScrapeReport> = reports.iter().filter_map(|r| r.server_metrics.as_ref()).collect();
    merged.server_metrics = ScrapeReport::merge(&scrapes);
    merged.peak_clients = merged
        .intervals
        .iter()
        .map(|i| i.clients)
        .max()
        .unwrap_or_else(|| reports.iter().map(|r| r.peak_clients).sum());
    merged.groups = merge_groups(reports)?;
    merged.stages = merge_stages(reports)?;
    merge_harness(&mut merged, reports);
    let per_s = |n: f64| if merged.duration_s > 0.0 { n / merged.duration_s } else { 0.0 };
    let c = merged.counters;
    merged.throughput.insert("events_published_per_s".into(), per_s(c.events_published as f64));
    merged.throughput.insert("events_delivered_per_s".into(), per_s(c.events_delivered as f64));
    merged.throughput.insert("connections_per_s".into(), per_s(c.connections_opened as f64));
    merged.throughput.insert("bytes_received_per_s".into(), per_s(merged.harness.bytes_received as f64));
    merged.throughput.insert("tls_handshakes_per_s".into(), per_s(c.tls_handshakes as f64));
    merged.tls.resumed_percent = TlsReport::resumed_percent(&c);
    let gates = first
        .gates
        .iter()
        .map(|g| {
            let (metric, condition) = g.expr.split_once(' ').unwrap_or((&g.expr, ""));
            let names: Vec<&str> = merged.groups.iter().map(|g| g.name.as_str()).collect();
            let stages: Vec<&str> = merged.stages.iter().map(|s| s.name.as_str()).collect();
            Gate::parse_in(metric, condition, &names, &stages)
                .map(|gate| Gate { default: g.default, ..gate })
                .map_err(|e| MergeError::Gate(g.expr.clone(), e))
        })
        .collect::<Result<Vec<_>, _>>()?;
    apply_gates(&mut merged, &gates);
    Ok(merged)
}

/// Every shard ran the same timeline: stage `i` of each is stage `i` of the run, its counters
/// added and its histograms merged.
fn merge_stages(reports: &[RunReport]) -> Result<Vec<StageReport>, MergeError> {
    let first = &reports[0].stages;
    let mut merged = Vec::with_capacity(first.len());
    for (i, stage) in first.iter().enumerate() {
        let mut parts = Vec::with_capacity(reports.len());
        for report in reports {
            let part = report.stages.get(i).filter(|s| s.name == stage.name).ok_or_else(|| {
                let other = report.stages.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ");
                let ours = first.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ");
                MergeError::Mismatch { field: "stages", a: ours, b: other }
            })?;
            parts.push(part);
        }
        let histograms = merge_histogram_maps(parts.iter().map(|s| &s.histograms))?;
        let mut counters = crate::results::model::Counters::default();
        for part in &parts {
            counters += &part.counters;
        }
        merged.push(StageReport {
            name: stage.name.clone(),
            start_s: stage.start_s,
            end_s: stage.end_s,
            counters,
            latency_us: stage
                .latency_us
                .keys()
                .map(|name| (name.clone(), histograms.get(name).map(summarize).unwrap_or_default()))
                .collect(),
            histograms: histograms.iter().map(|(k, h)| (k.clone(), encode(h))).collect(),
        });
    }
    Ok(merged)
}

fn same(field: &'static str, a: &str, b: &str) -> Result<(), MergeError> {
    if a == b { Ok(()) } else { Err(MergeError::Mismatch { field, a: a.to_owned(), b: b.to_owned() }) }
}

fn merge_histogram_maps<'a>(
    maps: impl Iterator<Item = &'a BTreeMap<String, String>>,
) -> Result<BTreeMap<String, Latency>, MergeError> {
    let mut merged: BTreeMap<String, Latency> = BTreeMap::new();
    for map in maps {
        for (name, encoded) in map {
            let h = decode(encoded)?;
            histogram::merge(merged.entry(name.clone()).or_insert_with(histogram::new_histogram), &h);
        }
    }
    Ok(merged)
}

/// Intervals with the same end time (to the millisecond) are one interval of the merged run.
fn merge_intervals(reports: &[RunReport]) -> Result<Vec<Interval>, MergeError> {
    let mut by_time: BTreeMap<u64, Vec<&Interval>> = BTreeMap::new();
    for interval in reports.iter().flat_map(|r| &r.intervals) {
        by_time.entry((interval.t_s * 1000.0).round() as u64).or_default().push(interval);
    }
    by_time
        .into_values()
        .map(|parts| {
            let histograms = merge_histogram_maps(parts.iter().map(|i| &i.histograms))?;
            let fanout = histograms.get("fanout").map(summarize).unwrap_or_default();
            Ok(Interval {
                t_s: parts[0].t_s,
                clients: parts.iter().map(|i| i.clients).sum(),
                events_published: parts.iter().map(|i| i.events_published).sum(),
                events_delivered: parts.iter().map(|i| i.events_delivered).sum(),
                fanout_p50_us: fanout.p50,
                fanout_p99_us: fanout.p99,
                fanout_max_us: fanout.max,
                errors: parts.iter().map(|i| i.errors).sum(),
                connections_opened: parts.iter().map(|i| i.connections_opened).sum(),
                histograms: histograms.iter().map(|(k, h)| (k.clone(), encode(h))).collect(),
                rss_bytes: parts.iter().map(|i| i.rss_bytes).sum(),
                server: parts.iter().find_map(|i| i.server.clone()),
            })
        })
        .collect()
}

fn merge_groups(reports: &[RunReport]) -> Result<Vec<GroupReport>, MergeError> {
    let mut merged: Vec<GroupReport> = Vec::new();
    for group in reports.iter().flat_map(|r| &r.groups) {
        match merged.iter_mut().find(|g| g.name == group.name) {
            Some(existing) => {
                existing.clients += group.clients;
                existing.counters += &group.counters;
                let histograms = merge_histogram_maps([&existing.histograms, &group.histograms].into_iter())?;
                existing.histograms = histograms.iter().map(|(k, h)| (k.clone(), encode(h))).collect();
                existing.latency_us = histograms.iter().map(|(k, h)| (k.clone(), summarize(h))).collect();
            }
            None => merged.push(group.clone()),
        }
    }
    for group in &mut merged {
        for name in group.latency_us.keys().cloned().collect::<Vec<_>>() {
            if !group.histograms.contains_key(&name) {
                group.latency_us.insert(name, LatencySummary::default());
            }
        }
    }
    Ok(merged)
}

fn merge_harness(merged: &mut RunReport, reports: &[RunReport]) {
    let h = &mut merged.harness;
    for r in reports.iter().map(|r| &r.harness) {
        h.threads += r.threads;
        h.workers += r.workers.max(1);
        h.cpu_s += r.cpu_s;
        h.cpu_percent += r.cpu_percent;
        h.peak_rss_bytes += r.peak_rss_bytes;
        h.rss_growth_pct = h.rss_growth_pct.max(r.rss_growth_pct);
        h.bytes_received += r.bytes_received;
        h.server_in_process |= r.server_in_process;
        h.overloaded |= r.overloaded;
        for reason in &r.reasons {
            if !h.reasons.contains(reason) {
                h.reasons.push(reason.clone());
            }
        }
    }
    // Kernel-stamped only when every part was.
    let all_kernel = !reports.is_empty() && reports.iter().all(|r| r.harness.timestamps == "kernel");
    h.timestamps = if all_kernel { "kernel" } else { "user" }.to_owned();
    let delivered = merged.counters.events_delivered;
    let clients = merged.peak_clients.max(1);
    h.rss_per_client_bytes = h.peak_rss_bytes / clients;
    h.cpu_us_per_event = if delivered == 0 { 0.0 } else { h.cpu_s * 1e6 / delivered as f64 };
    h.cpu_us_per_client = h.cpu_s * 1e6 / clients as f64;
    h.bytes_per_event = if delivered == 0 { 0.0 } else { h.bytes_received as f64 / delivered as f64 };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::histogram::{new_histogram, record};
    use crate::results::model::GateResult;

    fn shard(values: &[u64], missing: u64, clients: u64) -> RunReport {
        let mut report = RunReport::empty("s");
        report.started_at = "2026-01-01T00:00:00.000Z".into();
        report.duration_s = 10.0;
        let mut h = new_histogram();
        values.iter().for_each(|v| record(&mut h, *v));
        report.histograms.insert("fanout".into(), encode(&h));
        report.counters.events_missing = missing;
        report.counters.events_delivered = values.len() as u64;
        let mut interval = Interval { t_s: 1.0, clients, ..Interval::default() };
        interval.histograms.insert("fanout".into(), encode(&h));
        report.intervals.push(interval);
        report.gates.push(GateResult {
            name: "counters.events_missing".into(),
            expr: "counters.events_missing == 0".into(),
            observed: missing.to_string(),
            passed: missing == 0,
            default: true,
        });
        report
    }

    #[test]
    fn histograms_merge_exactly_and_counters_add() {
        let merged = merge(&[shard(&[100, 200], 0, 5), shard(&[300, 400_000], 0, 7)]).unwrap();
        let fanout = merged.latency_us["fanout"];
        assert_eq!((fanout.count, fanout.min), (4, 100));
        assert!(fanout.max >= 399_000);
        assert_eq!(merged.counters.events_delivered, 4);
        assert_eq!(merged.intervals.len(), 1);
        assert_eq!((merged.intervals[0].clients, merged.peak_clients), (12, 12));
        assert!(merged.passed);
    }

    #[test]
    fn gates_are_judged_on_the_merged_data() {
        let merged = merge(&[shard(&[1], 0, 1), shard(&[1], 3, 1)]).unwrap();
        assert_eq!(merged.counters.events_missing, 3);
        assert!(!merged.gates[0].passed);
        assert_eq!(merged.gates[0].observed, "3");
        assert!(merged.gates[0].default, "a default gate stays one through the merge");
        assert!(!merged.passed);
    }

    #[test]
    fn reports_of_different_runs_do_not_merge() {
        let mut other = shard(&[1], 0, 1);
        other.seed = 9;
        assert!(matches!(
            merge(&[shard(&[1], 0, 1), other]),
            Err(MergeError::Mismatch { field: "seed", .. })
        ));
        assert!(matches!(merge(&[]), Err(MergeError::Empty)));
    }
}
