//! Gates: `"latency.fanout.p99" = "< 100ms"`, judged against the finished report.
//!
//! A gate names any numeric field of `report.json` by its dotted path; latency fields are in
//! microseconds and take duration thresholds, everything else takes plain numbers. A capacity
//! search's result (`capacity.highest_passing_deliveries_per_s`, …) is judged on the search; its
//! steps are judged by the other gates ([`Gate::is_capacity`]). The path is
//! checked against the shape of an empty report when the scenario is loaded, so a misspelt
//! metric is bad input (exit 2), never a gate that silently passes.

use serde_json::Value;

use crate::results::model::{CapacityReport, GateResult, GroupReport, RunReport, StageReport};
use crate::util::duration::{format_micros, parse_duration};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
    Equal,
    NotEqual,
}

impl Comparison {
    fn symbol(self) -> &'static str {
        match self {
            Comparison::Less => "<",
            Comparison::LessOrEqual => "<=",
            Comparison::Greater => ">",
            Comparison::GreaterOrEqual => ">=",
            Comparison::Equal => "==",
            Comparison::NotEqual => "!=",
        }
    }

    fn holds(self, observed: f64, threshold: f64) -> bool {
        match self {
            Comparison::Less => observed < threshold,
            Comparison::LessOrEqual => observed <= threshold,
            Comparison::Greater => observed > threshold,
            Comparison::GreaterOrEqual => observed >= threshold,
            Comparison::Equal => observed == threshold,
            Comparison::NotEqual => observed != threshold,
        }
    }
}

/// A validated gate.
#[derive(Debug, Clone, PartialEq)]
pub struct Gate {
    /// The metric's dotted path in `report.json`, e.g. `latency.fanout.p99`.
    pub metric: String,
    pub comparison: Comparison,
    /// In the metric's unit (microseconds for latency).
    pub threshold: f64,
    /// The threshold as written, for the report.
    pub threshold_text: String,
    /// One of [`Gate::defaults`], not written in the scenario.
    pub default: bool,
}

/// What every run must hold unless its scenario gates the same metric itself: no failed
/// connection and nothing the delivery oracle or the protocol checks flag. Without them a run in
/// which every connection failed would pass a scenario that has no gates.
pub const DEFAULT_GATES: &[&str] = &[
    "counters.connections_failed",
    "counters.events_missing",
    "counters.events_duplicated",
    "counters.events_out_of_order",
    "counters.filter_violations",
    "counters.protocol_violations",
];

impl Gate {
    /// Parses `metric` and `condition` (e.g. `"< 100ms"`); errors say what was expected.
    /// `groups` are the scenario's client groups, which `groups.<name>.…` paths may name.
    pub fn parse(metric: &str, condition: &str, groups: &[&str]) -> Result<Gate, String> {
        Gate::parse_in(metric, condition, groups, &[])
    }

    /// [`Gate::parse`] for a run whose timeline has `stages`, which `stages.<name>.counters.…`
    /// and `stages.<name>.latency.fanout.…` may name.
    pub fn parse_in(metric: &str, condition: &str, groups: &[&str], stages: &[&str]) -> Result<Gate, String> {
        if let Some(rest) = metric.strip_prefix("stages.") {
            let stage = rest.split_once('.').map_or(rest, |(stage, _)| stage);
            if !stages.contains(&stage) {
                return Err(format!(
                    "unknown stage {stage:?} in gate {metric:?}: expected stages.<stage>.counters.<counter> \
                     or stages.<stage>.latency.fanout.<stat> with a stage of {}",
                    stages.join(", ")
                ));
            }
        }
        let path = report_path(metric);
        let mut template = RunReport::empty("");
        template.groups = groups.iter().map(|name| GroupReport::template(name)).collect();
        template.stages = stages.iter().map(|name| StageReport::template(name)).collect();
        template.server_metrics = Some(Default::default());
        template.capacity = Some(CapacityReport::template());
        let template = serde_json::to_value(template).unwrap_or(Value::Null);
        if !lookup(&template, &path).is_some_and(Value::is_number) {
            return Err(format!(
                "unknown metric {metric:?}: expected a numeric field of report.json such as \
                 latency.fanout.p99, counters.events_missing, throughput.events_delivered_per_s, \
                 groups.<group>.latency.fanout.p99, groups.<group>.counters.events_missing or \
                 capacity.highest_passing_deliveries_per_s \
                 (latency metrics: {}; stats: count, min, p50, p90, p99, p999, max, mean; groups: {})",
                crate::results::LatencyMetric::ALL.map(|m| m.name()).join(", "),
                groups.join(", ")
            ));
        }
        let condition = condition.trim();
        let (comparison, rest) = [
            ("<=", Comparison::LessOrEqual),
            (">=", Comparison::GreaterOrEqual),
            ("==", Comparison::Equal),
            ("!=", Comparison::NotEqual),
            ("<", Comparison::Less),
            (">", Comparison::Greater),
        ]
        .into_iter()
        .find_map(|(symbol, comparison)| condition.strip_prefix(symbol).map(|rest| (comparison, rest.trim())))
        .ok_or_else(|| {
            format!("invalid gate condition {condition:?}: expected OP VALUE with OP one of < <= > >= == !=")
        })?;
        let is_latency = path.iter().any(|p| p == "latency_us");
        let threshold = if is_latency {
            parse_duration(rest)
                .map(|d| d.as_micros() as f64)
                .map_err(|e| format!("{e} (latency gates take durations)"))?
        } else {
            rest.parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| format!("invalid gate value {rest:?}: expected a number"))?
        };
        Ok(Gate {
            metric: metric.to_owned(),
            comparison,
            threshold,
            threshold_text: rest.to_owned(),
            default: false,
        })
    }

    /// [`DEFAULT_GATES`], each `== 0`, but for the metrics `written` already gates: a scenario
    /// overrides a default by gating its metric (`">= 0"` waives it).
    pub fn defaults(written: &[Gate]) -> Vec<Gate> {
        DEFAULT_GATES
            .iter()
            .filter(|metric| !written.iter().any(|g| g.metric == **metric))
            .map(|metric| Gate {
                metric: (*metric).to_owned(),
                comparison: Comparison::Equal,
                threshold: 0.0,
                threshold_text: "0".to_owned(),
                default: true,
            })
            .collect()
    }

    /// Whether the gate judges a capacity search's result (`capacity.…`) rather than a run.
    pub fn is_capacity(&self) -> bool {
        self.metric.starts_with("capacity.")
    }

    /// `latency.fanout.p99 < 100ms`.
    pub fn expr(&self) -> String {
        format!("{} {} {}", self.metric, self.comparison.symbol(), self.threshold_text)
    }

    /// Judges this gate against a finished report (as JSON).
    pub fn judge(&self, report: &Value) -> GateResult {
        let path = report_path(&self.metric);
        let observed = lookup(report, &path).and_then(Value::as_f64);
        let is_latency = path.iter().any(|p| p == "latency_us");
        let (observed_text, passed) = match observed {
            Some(v) if is_latency => (format_micros(v as u64), self.comparison.holds(v, self.threshold)),
            Some(v) => (format_number(v), self.comparison.holds(v, self.threshold)),
            None => ("missing".to_owned(), false),
        };
        GateResult {
            name: self.metric.clone(),
            expr: self.expr(),
            observed: observed_text,
            passed,
            default: self.default,
        }
    }
}

/// Judges `gates` against `report` and sets its verdict: passed when the measurements are
/// trustworthy, the run was not interrupted and every gate held.
pub fn apply_gates(report: &mut RunReport, gates: &[Gate]) {
    let judged = serde_json::to_value(&*report).unwrap_or_default();
    report.gates = gates.iter().map(|gate| gate.judge(&judged)).collect();
    report.passed = report.valid && !report.interrupted && report.gates.iter().all(|g| g.passed);
}

/// `latency.x.y` is `latency_us.x.y` in the report (also under a group); the rest is as written.
fn report_path(metric: &str) -> Vec<String> {
    metric.split('.').map(|part| if part == "latency" { "latency_us" } else { part }.to_owned()).collect()
}

/// Walks `path`; under `groups` and `stages`, the next part names an entry rather than an index.
fn lookup<'v>(value: &'v Value, path: &[String]) -> Option<&'v Value> {
    let mut current = value;
    let mut parts = path.iter();
    while let Some(key) = parts.next() {
        current = current.get(key)?;
        if (key == "groups" || key == "stages") && current.is_array() {
            let name = parts.next()?;
            current =
                current.as_array()?.iter().find(|g| g.get("name").and_then(Value::as_str) == Some(name))?;
        }
    }
    Some(current)
}

fn format_number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 { format!("{}", v as i64) } else { format!("{v:.3}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_latency_and_counter_gates() {
        let g = Gate::parse("latency.fanout.p99", "< 100ms", &[]).unwrap();
        assert_eq!((g.comparison, g.threshold), (Comparison::Less, 100_000.0));
        assert_eq!(g.expr(), "latency.fanout.p99 < 100ms");
        let g = Gate::parse("counters.events_missing", "== 0", &[]).unwrap();
        assert_eq!((g.comparison, g.threshold), (Comparison::Equal, 0.0));
        assert!(Gate::parse("throughput.events_delivered_per_s", ">= 1000", &[]).is_ok());
    }

    #[test]
    fn refuses_unknown_metrics_and_bad_conditions() {
        assert!(Gate::parse("latency.fanout.p98", "< 1ms", &[]).unwrap_err().contains("unknown metric"));
        assert!(Gate::parse("counters.nope", "== 0", &[]).is_err());
        assert!(Gate::parse("scenario", "== 0", &[]).is_err(), "not numeric");
        assert!(Gate::parse("counters.events_missing", "about 0", &[]).is_err());
        assert!(Gate::parse("latency.fanout.p99", "< 100", &[]).is_err(), "latency needs a unit");
        assert!(Gate::parse("counters.events_missing", "== many", &[]).is_err());
    }

    #[test]
    fn group_paths_name_a_group_of_the_scenario() {
        let gate = Gate::parse("groups.fast.latency.fanout.p99", "< 50ms", &["fast", "slow"]).unwrap();
        assert!(Gate::parse("groups.nope.latency.fanout.p99", "< 50ms", &["fast"]).is_err());
        let mut report = RunReport::empty("x");
        let mut fast = GroupReport::template("fast");
        fast.latency_us.get_mut("fanout").unwrap().p99 = 60_000;
        report.groups.push(fast);
        let result = gate.judge(&serde_json::to_value(&report).unwrap());
        assert!(!result.passed);
        assert_eq!(result.observed, "60.0ms");
    }

    #[test]
    fn capacity_gates_judge_the_search_and_fail_without_a_passing_step() {
        let gate = Gate::parse("capacity.highest_passing_deliveries_per_s", ">= 100000", &[]).unwrap();
        assert!(gate.is_capacity());
        assert!(!Gate::parse("latency.fanout.p99", "< 1ms", &[]).unwrap().is_capacity());
        assert!(Gate::parse("capacity.highest_passing_deliveries", ">= 1", &[]).is_err());
        assert!(Gate::parse("capacity.vary", ">= 1", &[]).is_err(), "not numeric");
        let mut report = RunReport::empty("x");
        assert_eq!(gate.judge(&serde_json::to_value(&report).unwrap()).observed, "missing");
        let mut capacity = CapacityReport::template();
        capacity.highest_passing_deliveries_per_s = Some(123_456.0);
        report.capacity = Some(capacity.clone());
        let result = gate.judge(&serde_json::to_value(&report).unwrap());
        assert!(result.passed, "{result:?}");
        assert_eq!(result.observed, "123456");
        capacity.highest_passing_deliveries_per_s = None;
        report.capacity = Some(capacity);
        let result = gate.judge(&serde_json::to_value(&report).unwrap());
        assert!(!result.passed && result.observed == "missing", "{result:?}");
    }

    #[test]
    fn judges_against_the_report() {
        let mut report = RunReport::empty("x");
        report.latency_us.get_mut("fanout").unwrap().p99 = 3_100;
        report.counters.events_missing = 2;
        let json = serde_json::to_value(&report).unwrap();
        let latency = Gate::parse("latency.fanout.p99", "< 25ms", &[]).unwrap().judge(&json);
        assert!(latency.passed);
        assert_eq!(latency.observed, "3.1ms");
        let missing = Gate::parse("counters.events_missing", "== 0", &[]).unwrap().judge(&json);
        assert!(!missing.passed);
        assert_eq!(missing.observed, "2");
    }
}
