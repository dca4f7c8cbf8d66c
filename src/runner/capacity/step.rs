//! One capacity step's verdict and record, from the report of its run: what was achieved and
//! delivered per second in its measured window (warm-up excluded), and whether it passed,
//! failed or cannot be trusted.
//!
//! The gates were judged by the run itself (`report::gates`, against latency that leaves the
//! warm-up out); this adds the one check a search needs beyond them, that the load was really
//! offered. It must not run anything.

use std::collections::BTreeMap;

use super::search::{Phase, Verdict};
use crate::results::model::CapacityStep;
use crate::results::model::{Interval, RunReport};
use crate::scenario::Plan;
use crate::scenario::plan::{CapacityPlan, Vary};

/// A step whose achieved load falls below this share of the offered one failed: the target
/// pushed back (the harness's own shortfalls make the run untrusted instead).
pub const ACHIEVED_SHARE: f64 = 0.9;

/// The expression a step that did not achieve its load failed.
pub fn achieved_gate() -> String {
    format!("load.achieved >= {:.0}% of offered", ACHIEVED_SHARE * 100.0)
}

/// Where a step stands in the search.
#[derive(Debug, Clone, Copy)]
pub struct StepAt {
    pub step: u32,
    pub phase: Phase,
    pub offered: f64,
}

/// Judges step `at`, whose plan was `plan` and whose run reported `report`.
pub fn judge(
    capacity: &CapacityPlan,
    plan: &Plan,
    report: &RunReport,
    at: StepAt,
) -> (Verdict, CapacityStep) {
    let (from, to) = capacity.window(plan);
    let window = Window { from: from.as_secs_f64(), to: to.as_secs_f64() };
    let deliveries_per_s = window.rate(&report.intervals, |i| i.events_delivered);
    let achieved = achieved(capacity, plan, report, &window);
    let failing_gate = report
        .gates
        .iter()
        .filter(|g| !g.passed)
        .min_by_key(|g| g.default)
        .map(|g| g.expr.clone())
        .or_else(|| (achieved < ACHIEVED_SHARE * at.offered).then(achieved_gate));
    let verdict = if !report.valid {
        Verdict::Untrusted
    } else if failing_gate.is_some() {
        Verdict::Failed
    } else {
        Verdict::Passed
    };
    let latency_us: BTreeMap<_, _> = ["fanout", "completion"]
        .into_iter()
        .filter_map(|m| report.latency_us.get(m).map(|s| (m.to_owned(), *s)))
        .collect();
    let record = CapacityStep {
        step: at.step,
        phase: at.phase.name().to_owned(),
        offered: at.offered,
        achieved,
        deliveries_per_s,
        passed: verdict == Verdict::Passed,
        valid: report.valid,
        failing_gate: if report.valid { failing_gate } else { None },
        reasons: report.harness.reasons.clone(),
        started_at: report.started_at.clone(),
        duration_s: report.duration_s,
        latency_us,
        counters: report.counters,
    };
    (verdict, record)
}

/// A step that was not run because this process cannot hold it (preflight): untrusted, with why.
pub fn not_run(at: StepAt, reason: String) -> CapacityStep {
    CapacityStep {
        step: at.step,
        phase: at.phase.name().to_owned(),
        offered: at.offered,
        achieved: 0.0,
        deliveries_per_s: 0.0,
        passed: false,
        valid: false,
        failing_gate: None,
        reasons: vec![reason],
        started_at: String::new(),
        duration_s: 0.0,
        latency_us: BTreeMap::new(),
        counters: Default::default(),
    }
}

/// What the harness generated of the varied value (see `CapacityStep::achieved`).
fn achieved(capacity: &CapacityPlan, plan: &Plan, report: &RunReport, window: &Window) -> f64 {
    match &capacity.vary {
        Vary::PublisherRate { shares } => {
            // Intervals count every publisher's acknowledged events together: the varied
            // publisher achieved the share of all scheduled events that were acknowledged.
            let scheduled: f64 = plan.publishers.iter().map(|p| p.peak_rate_per_s()).sum();
            let offered: f64 =
                shares.iter().filter_map(|(i, _)| plan.publishers.get(*i)).map(|p| p.peak_rate_per_s()).sum();
            let published = window.rate(&report.intervals, |i| i.events_published);
            if scheduled > 0.0 { offered * (published / scheduled).min(1.0) } else { 0.0 }
        }
        Vary::GroupCount { group } => connected(plan, report, *group),
        Vary::GroupArrivalRate { group } => {
            let count = plan.groups.get(*group).map_or(0, |g| g.count).max(1) as f64;
            let rate = match plan.groups.get(*group).map(|g| g.arrival) {
                Some(crate::scenario::plan::Arrival::Rate(rate)) => rate,
                _ => 0.0,
            };
            rate * connected(plan, report, *group) / count
        }
    }
}

/// Clients of `group` that connected (at most its count: reconnects are not new clients).
fn connected(plan: &Plan, report: &RunReport, group: usize) -> f64 {
    let Some(g) = plan.groups.get(group) else { return 0.0 };
    let opened = report.groups.iter().find(|r| r.name == g.name).map_or(0, |r| r.counters.connections_opened);
    opened.min(g.count) as f64
}

/// A step's measured window, in seconds since its run's start.
struct Window {
    from: f64,
    to: f64,
}

impl Window {
    /// A per-interval count per second over the window: each interval (the second before its
    /// `t_s`) weighs by how much of it lies inside.
    fn rate(&self, intervals: &[Interval], count: impl Fn(&Interval) -> u64) -> f64 {
        let (mut total, mut seconds) = (0.0, 0.0);
        let mut start = 0.0_f64;
        for interval in intervals {
            let end = interval.t_s;
            let inside = (end.min(self.to) - start.max(self.from)).max(0.0);
            if end > start && inside > 0.0 {
                total += count(interval) as f64 * inside / (end - start);
                seconds += inside;
            }
            start = end;
        }
        if seconds > 0.0 { total / seconds } else { 0.0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn intervals(delivered: &[u64]) -> Vec<Interval> {
        delivered
            .iter()
            .enumerate()
            .map(|(i, d)| Interval { t_s: (i + 1) as f64, events_delivered: *d, ..Interval::default() })
            .collect()
    }

    #[test]
    fn the_window_counts_whole_and_partial_seconds() {
        let seconds = intervals(&[0, 0, 1_000, 2_000, 2_000, 9_999]);
        assert_eq!(Window { from: 3.0, to: 5.0 }.rate(&seconds, |i| i.events_delivered), 2_000.0);
        // Half of second 3 (1,000) and all of seconds 4 and 5.
        let rate = Window { from: 2.5, to: 5.0 }.rate(&seconds, |i| i.events_delivered);
        assert!((rate - (500.0 + 4_000.0) / 2.5).abs() < 1e-9, "{rate}");
        assert_eq!(Window { from: 10.0, to: 12.0 }.rate(&seconds, |i| i.events_delivered), 0.0);
    }
}
