//! `compare BASELINE… CURRENT`: every latency percentile, throughput and counter of a run and
//! its baseline side by side, and whether the run regressed further than noise explains.
//!
//! # When a change is a regression
//!
//! For each judged figure `compare` computes an *allowance*, the largest change in the worse
//! direction it still calls noise, and flags a regression only beyond it:
//!
//! - **Latency** (p50, p90, p99, p99.9 and mean of fan-out, completion, first event, connect,
//!   subscribe, publish ack, and each client group's fan-out): higher is worse. The allowance is
//!   the largest of
//!   (a) `--max-regression` × the baseline;
//!   (b) `--min-delta` (1 ms by default: scheduler jitter on a shared CI machine is that large,
//!   so a 0.3 → 0.6 ms move is not judged as +100 %);
//!   (c) 3 standard errors of the difference between the runs, each run's error being the
//!   largest of the figure's per-second spread (or fan-out's, relative, for figures without
//!   per-second values) and the sampling error of the statistic itself ([`noise`]);
//!   (d) with several baseline runs, 3 × their standard deviation × √(1 + 1/n): the prediction
//!   interval of one more run. This is the only term that sees run-to-run variation (another
//!   job on the machine, a different CPU), so a baseline of 3 or more runs is what makes the
//!   gate both strict and quiet.
//!   A percentile is judged only when every run has at least 10 samples beyond it (p99 needs
//!   1,000 samples, p99.9 10,000); min and max are single samples and only shown.
//! - **Stages** (a run with a timeline of `[[stages]]`): each stage's fan-out p50 to p99.9 as
//!   a group's, and its failure counters as the run's, compared with the baseline's stage of
//!   the same name.
//! - **Throughput** (events published and delivered per second, connections per second): lower
//!   is worse; the allowance is the largest of (a), (c) (from the steady seconds) and (d).
//! - **Failure counters** (missing, duplicated, out-of-order, filter violations, after
//!   unsubscribe, protocol violations, unexpected closes, failed connections, publish and
//!   subscribe errors, auth mistakes): zero in every baseline run must stay zero (no allowance
//!   at all); otherwise the largest baseline count may grow by (a) only.
//! - Volume counters, bytes per second and the harness's own timing (publisher and loop lag)
//!   are shown, not judged: they follow the load, the payloads or the harness's health, which
//!   `valid` already judges.
//! - **Capacity** (a capacity search's `capacity.highest_passing` and
//!   `capacity.highest_passing_deliveries_per_s`): lower is worse; the allowance is the largest
//!   of (a), the searches' own resolution (each run's bracket, [`capacity`]) and (d). The
//!   latency and throughput of capacity searches are one step's, at a load each search chose,
//!   so they are shown, not judged.
//!
//! With several baseline runs the baseline of a figure is their median. Improvements beyond the
//! allowance are marked too. When any run is not trustworthy (the harness was the bottleneck)
//! or was interrupted, the table is shown but no verdict is given (exit 4).

mod capacity;
pub mod noise;
mod table;

pub use table::write_comparison;

use noise::{Stat, latency_error, rate_standard_error};

use crate::results::counters::{CounterKind, kind_of};
use crate::results::model::{Interval, LatencySummary, RunReport, StageReport};

/// How strict the comparison is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Options {
    /// Relative worsening allowed, as a fraction (0.1 = 10 %).
    pub max_regression: f64,
    /// Latency changes up to this many microseconds are noise whatever their ratio.
    pub min_delta_us: f64,
    /// Standard errors of the run-to-run difference counted as noise.
    pub noise_sigmas: f64,
}

impl Default for Options {
    fn default() -> Options {
        Options { max_regression: 0.10, min_delta_us: 1_000.0, noise_sigmas: 3.0 }
    }
}

/// What a row's numbers are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Micros,
    PerSecond,
    Count,
}

/// Which term of the rule set a row's allowance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// `--max-regression` × baseline.
    Relative,
    /// `--min-delta`.
    Floor,
    /// Standard errors of the per-second spread.
    Noise,
    /// Standard deviations between the baseline runs.
    Runs,
    /// A failure counter at zero: no allowance.
    Zero,
}

/// The verdict on one row.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Worse by more than the allowance.
    Regressed,
    /// Better by more than the allowance.
    Improved,
    /// Changed by no more than the allowance.
    Within,
    /// Shown only, for the reason given.
    NotJudged(&'static str),
}

/// One figure of both runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The figure's path in `report.json`, as gates name it (`latency.fanout.p99`).
    pub metric: String,
    pub unit: Unit,
    pub baseline: f64,
    pub current: f64,
    /// The allowed worsening and the term that set it, for judged rows.
    pub allowance: Option<(f64, Bound)>,
    pub verdict: Verdict,
}

/// Which run a side of the comparison is.
#[derive(Debug, Clone, PartialEq)]
pub struct RunInfo {
    /// How the table names it: the path it was read from, or "baseline" / "current".
    pub label: String,
    pub scenario: String,
    pub started_at: String,
    pub hostname: String,
}

impl RunInfo {
    fn of(label: &str, report: &RunReport) -> RunInfo {
        RunInfo {
            label: label.to_owned(),
            scenario: report.scenario.clone(),
            started_at: report.started_at.clone(),
            hostname: report.environment.hostname.clone(),
        }
    }
}

/// The whole comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// One entry per baseline run.
    pub baselines: Vec<RunInfo>,
    pub current: RunInfo,
    pub options: Options,
    pub rows: Vec<Row>,
    /// Differences between the runs that make the comparison weaker (other machine, seed…).
    pub notes: Vec<String>,
    /// Why no verdict is given (a run not trustworthy or interrupted); empty when judged.
    pub untrusted: Vec<String>,
}

impl Comparison {
    pub fn regressions(&self) -> impl Iterator<Item = &Row> {
        self.rows.iter().filter(|r| r.verdict == Verdict::Regressed)
    }

    pub fn judged(&self) -> usize {
        self.rows.iter().filter(|r| !matches!(r.verdict, Verdict::NotJudged(_))).count()
    }

    /// What the comparison concludes as a whole: not judged when a run cannot be trusted,
    /// else regressed when any figure regressed.
    pub fn conclusion(&self) -> Conclusion {
        if !self.untrusted.is_empty() {
            Conclusion::NotJudged
        } else if self.regressions().next().is_some() {
            Conclusion::Regressed
        } else {
            Conclusion::NoRegression
        }
    }
}

/// The verdict of a whole comparison (`commands::compare` maps it to an exit code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conclusion {
    NoRegression,
    Regressed,
    /// A run cannot be trusted, so nothing was judged.
    NotJudged,
}

/// Latency metrics judged; the others in a report are the harness's own timing.
const JUDGED_LATENCY: &[&str] =
    &["fanout", "completion", "first_event", "connect", "subscribe", "publish_ack"];

/// The statistics of a latency summary, in table order; `None`: a single sample, not judged.
const LATENCY_STATS: &[(&str, Option<Stat>)] = &[
    ("min", None),
    ("p50", Some(Stat::Quantile(0.50))),
    ("p90", Some(Stat::Quantile(0.90))),
    ("p99", Some(Stat::Quantile(0.99))),
    ("p999", Some(Stat::Quantile(0.999))),
    ("max", None),
    ("mean", Some(Stat::Mean)),
];

/// A count one interval holds.
type IntervalCount = fn(&Interval) -> u64;

/// Which direction of change is worse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Worse {
    Higher,
    Lower,
}

/// Compares `current` against one or more runs of the same scenario (`baselines` must not be
/// empty; the command ensures it).
pub fn compare(baselines: &[RunReport], current: &RunReport, options: Options) -> Comparison {
    let runs = Runs { baselines, current, options };
    let mut rows = Vec::new();
    runs.latency_rows(&mut rows);
    runs.group_rows(&mut rows);
    runs.stage_rows(&mut rows);
    runs.throughput_rows(&mut rows);
    runs.counter_rows(&mut rows);
    runs.capacity_rows(&mut rows);
    if runs.searching() {
        for row in rows.iter_mut().filter(|r| {
            r.metric.starts_with("latency.")
                || r.metric.starts_with("throughput.")
                || r.metric.starts_with("groups.")
                || r.metric.starts_with("stages.")
        }) {
            row.allowance = None;
            row.verdict = capacity::step_figure();
        }
    }
    Comparison {
        baselines: baselines.iter().map(|b| RunInfo::of("baseline", b)).collect(),
        current: RunInfo::of("current", current),
        options,
        rows,
        notes: notes(baselines, current),
        untrusted: untrusted(baselines, current),
    }
}

/// The runs being compared and the rule's settings.
struct Runs<'a> {
    baselines: &'a [RunReport],
    current: &'a RunReport,
    options: Options,
}

/// A figure's values: one per baseline run, and the current run's.
struct Values {
    baselines: Vec<f64>,
    current: f64,
    /// The largest within-run standard error among the baselines, and the current run's.
    noise: (Option<f64>, Option<f64>),
}

impl Runs<'_> {
    fn all(&self) -> impl Iterator<Item = &RunReport> {
        self.baselines.iter().chain(std::iter::once(self.current))
    }

    fn latency_rows(&self, rows: &mut Vec<Row>) {
        let mut metrics: Vec<&String> = self.all().flat_map(|r| r.latency_us.keys()).collect();
        metrics
            .sort_by_key(|m| crate::results::LatencyMetric::from_name(m).map_or(usize::MAX, |m| m as usize));
        metrics.dedup();
        for metric in metrics {
            let summaries: Vec<LatencySummary> =
                self.all().map(|r| r.latency_us.get(metric).copied().unwrap_or_default()).collect();
            if summaries.iter().all(|s| s.count == 0) {
                continue;
            }
            let fewest = summaries.iter().map(|s| s.count).min().unwrap_or(0);
            for (name, stat) in LATENCY_STATS {
                let read =
                    |r: &RunReport| stat_value(&r.latency_us.get(metric).copied().unwrap_or_default(), name);
                let path = format!("latency.{metric}.{name}");
                let skip = if !JUDGED_LATENCY.contains(&metric.as_str()) {
                    Some("the harness's own timing")
                } else if fewest == 0 {
                    Some("not recorded in every run")
                } else {
                    match stat {
                        None => Some("a single sample"),
                        Some(stat) if fewest < stat.min_samples() => Some("too few samples beyond it"),
                        Some(_) => None,
                    }
                };
                let noise = |r: &RunReport| latency_error(r, metric, stat.unwrap_or(Stat::Mean), read(r));
                let values = self.values(read, noise);
                rows.push(self.row(
                    path,
                    Unit::Micros,
                    Worse::Higher,
                    values,
                    Some(self.options.min_delta_us),
                    skip,
                ));
            }
        }
    }

    fn group_rows(&self, rows: &mut Vec<Row>) {
        for group in &self.current.groups {
            let fanout = |r: &RunReport| {
                r.groups
                    .iter()
                    .find(|g| g.name == group.name)
                    .and_then(|g| g.latency_us.get("fanout").copied())
            };
            self.part_fanout_rows(&format!("groups.{}", group.name), fanout, rows);
        }
    }

    /// Each stage's fan-out percentiles and failure counters, when the runs have a timeline
    /// (a run of one stage is the whole run, judged above). A stage is compared with the stage
    /// of the same name; one missing from a baseline is left out.
    fn stage_rows(&self, rows: &mut Vec<Row>) {
        if self.current.stages.len() < 2 {
            return;
        }
        for stage in &self.current.stages {
            fn find<'r>(r: &'r RunReport, name: &str) -> Option<&'r StageReport> {
                r.stages.iter().find(|s| s.name == name)
            }
            if self.baselines.iter().any(|b| find(b, &stage.name).is_none()) {
                continue;
            }
            let prefix = format!("stages.{}", stage.name);
            let fanout =
                |r: &RunReport| find(r, &stage.name).and_then(|s| s.latency_us.get("fanout").copied());
            self.part_fanout_rows(&prefix, fanout, rows);
            for (index, (name, current)) in stage.counters.iter().enumerate() {
                if kind_of(name) != CounterKind::Failure {
                    continue;
                }
                let baseline = self
                    .baselines
                    .iter()
                    .filter_map(|b| find(b, &stage.name).and_then(|s| s.counters.iter().nth(index)))
                    .map(|c| c.1)
                    .max();
                rows.push(self.failure_row(
                    format!("{prefix}.counters.{name}"),
                    baseline.unwrap_or(0),
                    current,
                ));
            }
        }
    }

    /// The fan-out percentiles of a part of the run (`prefix`: a client group, a stage) that
    /// every run has; a part has no per-second histograms of its own, so its noise is the whole
    /// run's fan-out's, relative.
    fn part_fanout_rows(
        &self,
        prefix: &str,
        fanout: impl Fn(&RunReport) -> Option<LatencySummary>,
        rows: &mut Vec<Row>,
    ) {
        if self.all().any(|r| fanout(r).is_none_or(|s| s.count == 0)) {
            return;
        }
        let fewest = self.all().filter_map(&fanout).map(|s| s.count).min().unwrap_or(0);
        for (name, stat) in LATENCY_STATS.iter().filter(|(n, _)| ["p50", "p90", "p99", "p999"].contains(n)) {
            let stat = stat.unwrap_or(Stat::Mean);
            let read = |r: &RunReport| stat_value(&fanout(r).unwrap_or_default(), name);
            let values = self.values(read, |r| borrowed_error(r, stat, name, read(r)));
            let skip = (fewest < stat.min_samples()).then_some("too few samples beyond it");
            let path = format!("{prefix}.latency.fanout.{name}");
            rows.push(self.row(
                path,
                Unit::Micros,
                Worse::Higher,
                values,
                Some(self.options.min_delta_us),
                skip,
            ));
        }
    }

    fn throughput_rows(&self, rows: &mut Vec<Row>) {
        let per_interval: &[(&str, IntervalCount)] = &[
            ("events_published_per_s", |i| i.events_published),
            ("events_delivered_per_s", |i| i.events_delivered),
            ("connections_per_s", |i| i.connections_opened),
        ];
        let mut keys: Vec<&String> = self.all().flat_map(|r| r.throughput.keys()).collect();
        keys.sort();
        keys.dedup();
        for key in keys {
            let read = |r: &RunReport| r.throughput.get(key).copied().unwrap_or(0.0);
            let count = per_interval.iter().find(|(k, _)| k == key).map(|(_, count)| *count);
            let values = self.values(read, |r| count.and_then(|count| rate_standard_error(r, count)));
            let skip = count.is_none().then_some("follows the payload sizes");
            rows.push(self.row(
                format!("throughput.{key}"),
                Unit::PerSecond,
                Worse::Lower,
                values,
                None,
                skip,
            ));
        }
    }

    fn counter_rows(&self, rows: &mut Vec<Row>) {
        for (index, (name, current)) in self.current.counters.iter().enumerate() {
            let baseline =
                self.baselines.iter().filter_map(|b| b.counters.iter().nth(index)).map(|c| c.1).max();
            let metric = format!("counters.{name}");
            let row = match kind_of(name) {
                CounterKind::Failure => self.failure_row(metric, baseline.unwrap_or(0), current),
                kind => Row {
                    metric,
                    unit: Unit::Count,
                    baseline: baseline.unwrap_or(0) as f64,
                    current: current as f64,
                    allowance: None,
                    verdict: Verdict::NotJudged(if kind == CounterKind::Volume {
                        "follows the load and duration"
                    } else {
                        "expected in some scenarios"
                    }),
                },
            };
            rows.push(row);
        }
    }

    /// A failure counter: zero in every baseline must stay zero, else the largest baseline
    /// count may grow by `--max-regression`.
    fn failure_row(&self, metric: String, baseline: u64, current: u64) -> Row {
        let (b, c) = (baseline as f64, current as f64);
        let (allowance, verdict) = if baseline == 0 {
            (Some((0.0, Bound::Zero)), judge(c - b, 0.0))
        } else {
            let allowed = self.options.max_regression * b;
            (Some((allowed, Bound::Relative)), judge(c - b, allowed))
        };
        Row { metric, unit: Unit::Count, baseline: b, current: c, allowance, verdict }
    }

    fn values(&self, read: impl Fn(&RunReport) -> f64, noise: impl Fn(&RunReport) -> Option<f64>) -> Values {
        Values {
            baselines: self.baselines.iter().map(&read).collect(),
            current: read(self.current),
            noise: (self.baselines.iter().filter_map(&noise).reduce(f64::max), noise(self.current)),
        }
    }

    /// Judges one figure (unless `skip` says why not).
    fn row(
        &self,
        metric: String,
        unit: Unit,
        worse: Worse,
        values: Values,
        floor: Option<f64>,
        skip: Option<&'static str>,
    ) -> Row {
        let baseline = median(values.baselines.clone());
        let mut row = Row {
            metric,
            unit,
            baseline,
            current: values.current,
            allowance: None,
            verdict: Verdict::Within,
        };
        if let Some(reason) = skip {
            row.verdict = Verdict::NotJudged(reason);
            return row;
        }
        let within = combined(values.noise.0, values.noise.1);
        let allowance = allowance(baseline, floor, within, between_runs(&values.baselines), &self.options);
        let worsening = match worse {
            Worse::Higher => values.current - baseline,
            Worse::Lower => baseline - values.current,
        };
        row.allowance = Some(allowance);
        row.verdict = judge(worsening, allowance.0);
        row
    }
}

/// Fan-out's relative per-second spread at `stat` (named `name`), applied to `value`.
fn borrowed_error(report: &RunReport, stat: Stat, name: &str, value: f64) -> Option<f64> {
    let fanout = report.latency_us.get("fanout").filter(|s| s.count > 0)?;
    let relative = noise::spread_error(report, "fanout", stat)? / stat_value(fanout, name).max(1.0);
    Some(relative * value)
}

/// The standard error of one more run predicted from `values` of earlier runs:
/// s × √(1 + 1/n), with s their sample standard deviation; `None` below two runs.
fn between_runs(values: &[f64]) -> Option<f64> {
    let n = values.len() as f64;
    if values.len() < 2 {
        return None;
    }
    let mean = values.iter().sum::<f64>() / n;
    let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    Some(variance.sqrt() * (1.0 + 1.0 / n).sqrt())
}

/// The largest of the relative bound, the absolute floor (when one applies), the within-run
/// noise and the between-run spread.
fn allowance(
    baseline: f64,
    floor: Option<f64>,
    within_se: Option<f64>,
    between_se: Option<f64>,
    options: &Options,
) -> (f64, Bound) {
    let mut best = (options.max_regression * baseline, Bound::Relative);
    let candidates = [
        (floor, Bound::Floor),
        (within_se.map(|se| options.noise_sigmas * se), Bound::Noise),
        (between_se.map(|se| options.noise_sigmas * se), Bound::Runs),
    ];
    for (amount, bound) in candidates {
        if let Some(amount) = amount.filter(|a| *a > best.0) {
            best = (amount, bound);
        }
    }
    best
}

/// `worsening` is positive when the current run is worse.
fn judge(worsening: f64, allowed: f64) -> Verdict {
    if worsening > allowed {
        Verdict::Regressed
    } else if -worsening > allowed && allowed > 0.0 {
        Verdict::Improved
    } else {
        Verdict::Within
    }
}

/// The standard error of a difference of two independent estimates (either may be missing:
/// then only the other counts; both missing: no noise estimate).
fn combined(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (None, None) => None,
        (a, b) => Some((a.unwrap_or(0.0).powi(2) + b.unwrap_or(0.0).powi(2)).sqrt()),
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => 0.0,
        _ if n % 2 == 1 => values[n / 2],
        _ => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

fn stat_value(summary: &LatencySummary, name: &str) -> f64 {
    match name {
        "min" => summary.min as f64,
        "p50" => summary.p50 as f64,
        "p90" => summary.p90 as f64,
        "p99" => summary.p99 as f64,
        "p999" => summary.p999 as f64,
        "max" => summary.max as f64,
        _ => summary.mean,
    }
}

fn untrusted(baselines: &[RunReport], current: &RunReport) -> Vec<String> {
    let mut reasons = Vec::new();
    if baselines.is_empty() {
        reasons.push("there is no baseline run".to_owned());
    }
    let runs = baselines.iter().enumerate().map(|(i, b)| {
        (if baselines.len() == 1 { "baseline".to_owned() } else { format!("baseline #{}", i + 1) }, b)
    });
    for (which, report) in runs.chain(std::iter::once(("current".to_owned(), current))) {
        if report.interrupted {
            reasons.push(format!("the {which} run was interrupted"));
        }
        if !report.valid {
            let why = report.harness.reasons.join("; ");
            reasons.push(format!("the {which} run's measurements are not trustworthy: {why}"));
        }
    }
    reasons
}

fn notes(baselines: &[RunReport], current: &RunReport) -> Vec<String> {
    let mut notes = Vec::new();
    let Some(baseline) = baselines.first() else { return notes };
    if baselines
        .iter()
        .any(|b| b.scenario != baseline.scenario || b.scenario_source != baseline.scenario_source)
    {
        notes.push("the baseline runs are not all of the same scenario file".into());
    }
    if baseline.scenario != current.scenario {
        notes.push(format!(
            "different scenarios: {:?} against a baseline of {:?}",
            current.scenario, baseline.scenario
        ));
    } else if baseline.scenario_source != current.scenario_source
        && !baseline.scenario_source.is_empty()
        && !current.scenario_source.is_empty()
    {
        notes.push("the scenario file changed since the baseline".into());
    }
    if baseline.seed != current.seed {
        notes.push(format!("different seeds: {} against {}", current.seed, baseline.seed));
    }
    if baseline.target != current.target {
        notes.push(format!("different targets: {} against {}", current.target, baseline.target));
    }
    let longer = baseline.duration_s.max(current.duration_s);
    if longer > 0.0 && (baseline.duration_s - current.duration_s).abs() / longer > 0.05 {
        notes.push(format!(
            "different durations ({:.1} s against {:.1} s): counters scale with it",
            current.duration_s, baseline.duration_s
        ));
    }
    let (b, c) = (&baseline.environment, &current.environment);
    if (b.cpus, &b.os) != (c.cpus, &c.os) || b.hostname != c.hostname {
        notes.push(format!(
            "different machines: {} ({} CPUs, {}) against {} ({} CPUs, {}); latency follows the machine",
            c.hostname, c.cpus, c.os, b.hostname, b.cpus, b.os
        ));
    }
    if b.harness_version != c.harness_version {
        notes
            .push(format!("different harness versions: {} against {}", c.harness_version, b.harness_version));
    }
    if let (Some(b), Some(c)) = (&baseline.capacity, &current.capacity)
        && b.limited_by != c.limited_by
    {
        notes.push(format!(
            "the searches ended differently: limited by {} against {}",
            c.limited_by.name(),
            b.limited_by.name()
        ));
    }
    if baselines.len() == 1 {
        notes.push(
            "one baseline run: run-to-run variation is not measured; a baseline of 3 or more runs makes the \
             allowance fit the machine"
                .into(),
        );
    }
    notes
}

#[cfg(test)]
mod tests;
