//! `report.json`'s `capacity`: what a capacity search varied, what it found, and every step it
//! ran (CLI.md, "Added in the second round").
//!
//! Data only, like the rest of `results/`: the search itself is `runner::capacity`, its gates
//! are judged by `report::gates`, its sentence and charts are `report::md` and `report::html`.
//! It must not judge or format anything.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::model::{Counters, LatencySummary};

/// What ended a capacity search.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LimitedBy {
    /// A step failed one of the scenario's gates: the capacity lies between the highest passing
    /// step and the first failing one.
    Gate,
    /// A step's measurements could not be trusted (the harness was the bottleneck): the target
    /// handles at least the highest passing step; its capacity is not known.
    Harness,
    /// Every step up to the range's top passed: the capacity is at least `to`.
    Range,
    /// Ctrl-C ended the search before any of the above.
    Interrupted,
}

impl LimitedBy {
    pub fn name(self) -> &'static str {
        match self {
            LimitedBy::Gate => "gate",
            LimitedBy::Harness => "harness",
            LimitedBy::Range => "range",
            LimitedBy::Interrupted => "interrupted",
        }
    }
}

/// The whole search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapacityReport {
    /// The scenario value varied, as `[capacity] vary` names it (`publishers.alerts.rate`).
    pub vary: String,
    /// The unit of `offered`, `achieved`, `highest_passing` and `first_failing`.
    pub unit: String,
    /// The range searched and how: the first step's load, the highest, the factor between
    /// steps on the way up and the bracket width (a fraction) at which bisection stops.
    pub from: f64,
    pub to: f64,
    pub growth: f64,
    pub resolution: f64,
    /// Each step's measured window (after its warm-up), and its warm-up, in seconds.
    pub step_duration_s: f64,
    pub warmup_s: f64,
    /// The highest offered load at which every gate held; `None` when the first step failed.
    pub highest_passing: Option<f64>,
    /// Deliveries per second the highest passing step achieved in its measured window.
    pub highest_passing_deliveries_per_s: Option<f64>,
    /// The lowest offered load that failed a gate; `None` when none did.
    pub first_failing: Option<f64>,
    pub limited_by: LimitedBy,
    /// The expression of the gate the first failing step failed (when `limited_by` is `gate`).
    pub failing_gate: Option<String>,
    /// What would let the search go further (when `limited_by` is `harness`).
    pub remedy: Option<String>,
    /// The index in `steps` of the step whose figures fill the report's top level (counters,
    /// latency, intervals, groups, harness): the highest passing step, else the first one.
    pub top_level_step: Option<usize>,
    pub steps: Vec<CapacityStep>,
}

/// One load tried: a fresh run of the scenario with the varied value set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapacityStep {
    /// 1, 2, … in the order run.
    pub step: u32,
    /// `grow` (stepping up from `from`) or `bisect` (between the last passing and first failing).
    pub phase: String,
    /// The varied value this step set.
    pub offered: f64,
    /// What the harness actually generated of it in the measured window (publisher rate: events
    /// acknowledged per second; client count: clients connected; arrival rate: the offered rate
    /// times the share of the group's clients that connected).
    pub achieved: f64,
    /// Events received by subscribers per second in the measured window.
    pub deliveries_per_s: f64,
    /// Every gate held, the load was achieved and the measurements can be trusted.
    pub passed: bool,
    /// The harness was not the bottleneck (as `report.valid` of a run).
    pub valid: bool,
    /// The first gate the step failed, as an expression.
    pub failing_gate: Option<String>,
    /// Why the step's measurements cannot be trusted (as `harness.reasons`).
    #[serde(default)]
    pub reasons: Vec<String>,
    pub started_at: String,
    pub duration_s: f64,
    /// `fanout` and `completion`, warm-up excluded.
    pub latency_us: BTreeMap<String, LatencySummary>,
    /// The step's whole-run counters.
    pub counters: Counters,
}

impl CapacityReport {
    /// A report with every numeric field set: the shape `capacity.…` gate paths are checked
    /// against.
    pub fn template() -> CapacityReport {
        CapacityReport {
            vary: String::new(),
            unit: String::new(),
            from: 0.0,
            to: 0.0,
            growth: 0.0,
            resolution: 0.0,
            step_duration_s: 0.0,
            warmup_s: 0.0,
            highest_passing: Some(0.0),
            highest_passing_deliveries_per_s: Some(0.0),
            first_failing: Some(0.0),
            limited_by: LimitedBy::Gate,
            failing_gate: None,
            remedy: None,
            top_level_step: None,
            steps: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limited_by_reads_as_cli_md_names_it() {
        let json = serde_json::to_value(CapacityReport::template()).unwrap();
        assert_eq!(json["limited_by"], "gate");
        assert!(json["highest_passing_deliveries_per_s"].is_number());
        for limit in [LimitedBy::Gate, LimitedBy::Harness, LimitedBy::Range, LimitedBy::Interrupted] {
            assert_eq!(serde_json::to_value(limit).unwrap(), limit.name());
        }
    }
}
