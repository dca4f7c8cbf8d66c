//! The rule of `compare`, case by case.

use super::*;
use crate::metrics::histogram::{encode, new_histogram, record};
use crate::results::model::{GroupReport, StageReport};

/// A run with `seconds` steady seconds of fan-out around `p99_us` (per-second p99 varying by
/// `spread_us`), 2,000 deliveries a second, 100 events published a second.
fn run(p99_us: u64, spread_us: u64, seconds: u64) -> RunReport {
    let mut report = RunReport::empty("smoke");
    report.duration_s = seconds as f64;
    report.environment.hostname = "ci".into();
    let mut total = new_histogram();
    for t in 1..=seconds {
        // Alternate the tail up and down by the spread.
        let tail = if t % 2 == 0 { p99_us + spread_us } else { p99_us.saturating_sub(spread_us) };
        let mut h = new_histogram();
        for i in 0..2_000u64 {
            record(&mut h, if i < 1_975 { 5_000 + i } else { tail });
        }
        crate::metrics::histogram::merge(&mut total, &h);
        let mut interval = Interval {
            t_s: t as f64,
            events_published: 100,
            events_delivered: 2_000,
            connections_opened: 3,
            ..Interval::default()
        };
        interval.histograms.insert("fanout".into(), encode(&h));
        report.intervals.push(interval);
    }
    report.latency_us.insert("fanout".into(), crate::metrics::histogram::summarize(&total));
    report.histograms.insert("fanout".into(), encode(&total));
    report.throughput.insert("events_delivered_per_s".into(), 2_000.0);
    report.throughput.insert("events_published_per_s".into(), 100.0);
    report.counters.events_delivered = 2_000 * seconds;
    report
}

fn row<'c>(comparison: &'c Comparison, metric: &str) -> &'c Row {
    comparison.rows.iter().find(|r| r.metric == metric).unwrap_or_else(|| panic!("no row {metric}"))
}

#[test]
fn a_run_compared_with_itself_has_no_regression() {
    let report = run(40_000, 0, 10);
    let comparison = compare(std::slice::from_ref(&report), &report, Options::default());
    assert_eq!(comparison.conclusion(), Conclusion::NoRegression);
    assert!(comparison.judged() >= 20, "{}", comparison.judged());
    assert!(comparison.rows.iter().all(|r| !matches!(r.verdict, Verdict::Regressed | Verdict::Improved)));
    assert_eq!(comparison.notes.len(), 1, "{:?}", comparison.notes);
    assert!(comparison.notes[0].starts_with("one baseline run"));
    let three = compare(&[report.clone(), report.clone(), report.clone()], &report, Options::default());
    assert!(three.notes.is_empty(), "{:?}", three.notes);
}

#[test]
fn a_tail_beyond_the_bound_is_a_regression() {
    let baseline = run(40_000, 0, 10);
    let current = run(60_000, 0, 10);
    let comparison = compare(std::slice::from_ref(&baseline), &current, Options::default());
    let p99 = row(&comparison, "latency.fanout.p99");
    assert_eq!(p99.verdict, Verdict::Regressed);
    assert_eq!(p99.allowance.map(|a| a.1), Some(Bound::Relative));
    assert_eq!(row(&comparison, "latency.fanout.p50").verdict, Verdict::Within, "the body did not move");
    assert_eq!(comparison.conclusion(), Conclusion::Regressed);
    let back = compare(std::slice::from_ref(&current), &baseline, Options::default());
    assert_eq!(row(&back, "latency.fanout.p99").verdict, Verdict::Improved);
    assert_eq!(back.conclusion(), Conclusion::NoRegression);
}

#[test]
fn a_looser_bound_lets_the_same_change_pass() {
    let options = Options { max_regression: 0.6, ..Options::default() };
    let comparison = compare(&[run(40_000, 0, 10)], &run(60_000, 0, 10), options);
    assert_eq!(row(&comparison, "latency.fanout.p99").verdict, Verdict::Within);
}

#[test]
fn sub_millisecond_changes_are_below_the_floor() {
    let mut baseline = run(40_000, 0, 10);
    baseline.latency_us.get_mut("fanout").unwrap().p99 = 300;
    let mut current = baseline.clone();
    current.latency_us.get_mut("fanout").unwrap().p99 = 900;
    let comparison = compare(std::slice::from_ref(&baseline), &current, Options::default());
    let p99 = row(&comparison, "latency.fanout.p99");
    assert_eq!((p99.verdict.clone(), p99.allowance), (Verdict::Within, Some((1_000.0, Bound::Floor))));
    let strict = Options { min_delta_us: 100.0, ..Options::default() };
    assert_eq!(
        row(&compare(std::slice::from_ref(&baseline), &current, strict), "latency.fanout.p99").verdict,
        Verdict::Regressed
    );
}

#[test]
fn a_noisy_run_widens_the_allowance() {
    // Per-second p99 swings ±20 ms around 40 ms: +12 ms on the whole run is within noise.
    let baseline = run(40_000, 20_000, 10);
    let mut current = baseline.clone();
    current.latency_us.get_mut("fanout").unwrap().p99 += 12_000;
    let comparison = compare(std::slice::from_ref(&baseline), &current, Options::default());
    let p99 = row(&comparison, "latency.fanout.p99");
    assert_eq!(p99.verdict, Verdict::Within);
    let (amount, bound) = p99.allowance.unwrap();
    assert_eq!(bound, Bound::Noise);
    assert!(amount > 12_000.0, "{amount}");
    // The same change in a quiet run is a regression.
    let quiet = run(40_000, 0, 10);
    let mut worse = quiet.clone();
    worse.latency_us.get_mut("fanout").unwrap().p99 += 12_000;
    assert_eq!(
        row(&compare(std::slice::from_ref(&quiet), &worse, Options::default()), "latency.fanout.p99").verdict,
        Verdict::Regressed
    );
}

#[test]
fn tails_without_enough_samples_and_single_samples_are_not_judged() {
    let baseline = run(40_000, 0, 4); // 8,000 deliveries: p99.9 needs 10,000
    let comparison = compare(std::slice::from_ref(&baseline), &baseline, Options::default());
    assert_eq!(
        row(&comparison, "latency.fanout.p999").verdict,
        Verdict::NotJudged("too few samples beyond it")
    );
    assert_eq!(row(&comparison, "latency.fanout.max").verdict, Verdict::NotJudged("a single sample"));
    assert_eq!(row(&comparison, "latency.fanout.p99").verdict, Verdict::Within);
}

#[test]
fn failure_counters_must_stay_at_zero() {
    let baseline = run(40_000, 0, 10);
    let mut current = baseline.clone();
    current.counters.events_missing = 1;
    current.counters.slow_consumer_closes = 5;
    current.counters.events_delivered += 1_000_000;
    let comparison = compare(std::slice::from_ref(&baseline), &current, Options::default());
    let missing = row(&comparison, "counters.events_missing");
    assert_eq!((missing.verdict.clone(), missing.allowance), (Verdict::Regressed, Some((0.0, Bound::Zero))));
    assert!(matches!(row(&comparison, "counters.slow_consumer_closes").verdict, Verdict::NotJudged(_)));
    assert!(matches!(row(&comparison, "counters.events_delivered").verdict, Verdict::NotJudged(_)));
    // A counter already above zero may grow within the bound.
    let mut noisy = baseline.clone();
    noisy.counters.unexpected_closes = 20;
    let mut more = noisy.clone();
    more.counters.unexpected_closes = 21;
    assert_eq!(
        row(&compare(std::slice::from_ref(&noisy), &more, Options::default()), "counters.unexpected_closes")
            .verdict,
        Verdict::Within
    );
    more.counters.unexpected_closes = 23;
    assert_eq!(
        row(&compare(std::slice::from_ref(&noisy), &more, Options::default()), "counters.unexpected_closes")
            .verdict,
        Verdict::Regressed
    );
}

#[test]
fn throughput_may_not_drop_beyond_the_bound() {
    let baseline = run(40_000, 0, 10);
    let mut current = baseline.clone();
    current.throughput.insert("events_delivered_per_s".into(), 1_700.0);
    current.throughput.insert("events_published_per_s".into(), 95.0);
    let comparison = compare(std::slice::from_ref(&baseline), &current, Options::default());
    assert_eq!(row(&comparison, "throughput.events_delivered_per_s").verdict, Verdict::Regressed);
    assert_eq!(row(&comparison, "throughput.events_published_per_s").verdict, Verdict::Within);
    current.throughput.insert("events_delivered_per_s".into(), 2_500.0);
    let comparison = compare(std::slice::from_ref(&baseline), &current, Options::default());
    assert_eq!(row(&comparison, "throughput.events_delivered_per_s").verdict, Verdict::Improved);
}

#[test]
fn client_groups_are_compared_by_name() {
    let mut baseline = run(40_000, 0, 10);
    let mut group = GroupReport::template("dashboards");
    let fanout = group.latency_us.get_mut("fanout").unwrap();
    (fanout.count, fanout.p50, fanout.p99) = (20_000, 5_000, 40_000);
    baseline.groups.push(group);
    let mut current = baseline.clone();
    current.groups[0].latency_us.get_mut("fanout").unwrap().p99 = 80_000;
    let comparison = compare(std::slice::from_ref(&baseline), &current, Options::default());
    assert_eq!(row(&comparison, "groups.dashboards.latency.fanout.p99").verdict, Verdict::Regressed);
    assert_eq!(row(&comparison, "groups.dashboards.latency.fanout.p50").verdict, Verdict::Within);
}

#[test]
fn stages_are_compared_by_name_and_a_run_of_one_stage_adds_nothing() {
    let mut baseline = run(40_000, 0, 10);
    for name in ["steady", "spike"] {
        let mut stage = StageReport::template(name);
        let fanout = stage.latency_us.get_mut("fanout").unwrap();
        (fanout.count, fanout.p50, fanout.p99) = (10_000, 5_000, 40_000);
        baseline.stages.push(stage);
    }
    let mut current = baseline.clone();
    current.stages[1].latency_us.get_mut("fanout").unwrap().p99 = 90_000;
    current.stages[1].counters.events_missing = 3;
    let comparison = compare(std::slice::from_ref(&baseline), &current, Options::default());
    assert_eq!(row(&comparison, "stages.spike.latency.fanout.p99").verdict, Verdict::Regressed);
    assert_eq!(row(&comparison, "stages.spike.counters.events_missing").verdict, Verdict::Regressed);
    assert_eq!(row(&comparison, "stages.steady.latency.fanout.p99").verdict, Verdict::Within);
    assert_eq!(row(&comparison, "latency.fanout.p99").verdict, Verdict::Within, "the whole run did not move");
    assert!(
        !comparison.rows.iter().any(|r| r.metric.starts_with("stages.") && r.metric.contains("delivered"))
    );
    let mut renamed = current.clone();
    renamed.stages[1].name = "burst".into();
    let comparison = compare(std::slice::from_ref(&baseline), &renamed, Options::default());
    assert!(
        !comparison.rows.iter().any(|r| r.metric.starts_with("stages.burst")),
        "no baseline stage to compare"
    );
    let mut single = run(40_000, 0, 10);
    single.stages.push(StageReport::template("smoke"));
    let comparison = compare(std::slice::from_ref(&single), &single, Options::default());
    assert!(!comparison.rows.iter().any(|r| r.metric.starts_with("stages.")));
}

#[test]
fn an_untrustworthy_run_gets_no_verdict() {
    let baseline = run(40_000, 0, 10);
    let mut current = run(90_000, 0, 10);
    current.valid = false;
    current.harness.reasons.push("loop lag 90ms".into());
    let comparison = compare(std::slice::from_ref(&baseline), &current, Options::default());
    assert_eq!(comparison.conclusion(), Conclusion::NotJudged);
    assert!(comparison.untrusted[0].contains("loop lag 90ms"));
}

#[test]
fn differences_between_the_runs_are_noted() {
    let baseline = run(40_000, 0, 10);
    let mut current = run(40_000, 0, 5);
    current.seed = 9;
    current.environment.hostname = "laptop".into();
    current.environment.cpus = 8;
    let notes = compare(std::slice::from_ref(&baseline), &current, Options::default()).notes.join("\n");
    assert!(notes.contains("different seeds"), "{notes}");
    assert!(notes.contains("different durations"), "{notes}");
    assert!(notes.contains("different machines: laptop (8 CPUs"), "{notes}");
}

#[test]
fn the_table_leads_with_the_verdict_and_the_regressions() {
    let mut comparison = compare(&[run(40_000, 0, 10)], &run(60_000, 0, 10), Options::default());
    comparison.baselines[0].label = "base.json".into();
    let mut out = Vec::new();
    write_comparison(&mut out, &comparison).unwrap();
    let text = String::from_utf8(out).unwrap();
    let first = text.lines().next().unwrap();
    assert!(first.starts_with("## openframe-harness compare `smoke`: REGRESSION ("), "{first}");
    assert!(text.contains("against baseline `base.json`"));
    assert!(text.contains("- `latency.fanout.p99`: 40"), "{text}");
    let p99_line = text.lines().find(|l| l.starts_with("| `latency.fanout.p99`")).unwrap();
    assert!(p99_line.contains("❌ REGRESSION") && p99_line.contains("(bound)"), "{p99_line}");
    let missing = text.lines().find(|l| l.starts_with("| `counters.events_missing`")).unwrap();
    assert_eq!(missing, "| `counters.events_missing` | 0 | 0 | 0 | none: must stay 0 | ok |");
}

#[test]
fn several_baseline_runs_give_their_median_and_spread() {
    let runs: Vec<RunReport> = [38_000, 40_000, 46_000].iter().map(|p99| run(*p99, 0, 10)).collect();
    let p99 = |r: &RunReport| r.latency_us["fanout"].p99 as f64;
    // A run inside the spread of the baselines is noise even though it is 20 % above their median.
    let current = run(48_000, 0, 10);
    let comparison = compare(&runs, &current, Options::default());
    let row = row(&comparison, "latency.fanout.p99");
    assert_eq!(row.baseline, p99(&runs[1]), "the median run");
    assert_eq!(row.verdict, Verdict::Within);
    assert_eq!(row.allowance.map(|a| a.1), Some(Bound::Runs));
    // Far outside it is a regression.
    let comparison = compare(&runs, &run(70_000, 0, 10), Options::default());
    assert_eq!(row_verdict(&comparison, "latency.fanout.p99"), Verdict::Regressed);
    // Baselines that agree allow no more than the bound.
    let same = vec![run(40_000, 0, 10), run(40_000, 0, 10)];
    let comparison = compare(&same, &run(48_000, 0, 10), Options::default());
    assert_eq!(row_verdict(&comparison, "latency.fanout.p99"), Verdict::Regressed);
}

#[test]
fn the_prediction_interval_widens_for_few_runs() {
    let two = between_runs(&[10.0, 12.0]).unwrap();
    assert!((two - 2f64.sqrt() * 1.5f64.sqrt()).abs() < 1e-9, "{two}");
    assert_eq!(between_runs(&[10.0]), None);
    assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
    assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
}

#[test]
fn a_failure_in_any_baseline_run_sets_the_baseline_count() {
    let clean = run(40_000, 0, 10);
    let mut flaky = clean.clone();
    flaky.counters.unexpected_closes = 10;
    let mut current = clean.clone();
    current.counters.unexpected_closes = 10;
    let comparison = compare(&[clean.clone(), flaky], &current, Options::default());
    assert_eq!(row_verdict(&comparison, "counters.unexpected_closes"), Verdict::Within);
    let comparison = compare(&[clean.clone(), clean.clone()], &current, Options::default());
    assert_eq!(row_verdict(&comparison, "counters.unexpected_closes"), Verdict::Regressed);
}

fn row_verdict(comparison: &Comparison, metric: &str) -> Verdict {
    row(comparison, metric).verdict.clone()
}
