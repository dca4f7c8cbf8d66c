//! The scenario runner against the bundled server: a clean run passes with every delivery
//! counter at zero, and each deliberate server fault fails the run with the right counter and
//! the right gate (issue: "fault injection, so the harness proves it catches bugs").

use std::path::Path;

use openframe_harness::report::model::RunReport;
use openframe_harness::runner::{self, RunOptions};
use openframe_harness::scenario::{self, Overrides};

/// A short scenario exercising every delivery rule: plain, filtered and churning subscribers.
const PROBE: &str = r#"
name = "fault-probe"
duration = "4s"
seed = 7

[target]
faults = [FAULTS]

[[clients]]
name = "all"
count = 20
topics = ["alerts"]

[[clients]]
name = "high-only"
count = 10
topics = ["alerts"]
filters = { severity = ["high"] }

[[clients]]
name = "churners"
count = 10
topics = ["alerts"]
churn = { resubscribe_every = "300ms..500ms", resubscribe_pause = "250ms" }

[[publishers]]
topic = "alerts"
rate = "200/s"
start_after = "500ms"

[harness]
drain = "1s"
max_loop_lag = "1s"

[gates]
"latency.fanout.p99" = "< 100ms"
"counters.events_missing" = "== 0"
"counters.events_duplicated" = "== 0"
"counters.events_out_of_order" = "== 0"
"counters.filter_violations" = "== 0"
"counters.events_after_unsubscribe" = "== 0"
"counters.protocol_violations" = "== 0"
"#;

async fn run_probe(faults: &str) -> RunReport {
    let text = PROBE.replace("FAULTS", faults);
    let plan =
        scenario::parse(&text, Path::new("probe.toml"), &Overrides::default()).expect("valid scenario");
    runner::run(plan, RunOptions { quiet: true, ..RunOptions::default() }).await.expect("the run completes")
}

fn failed_gates(report: &RunReport) -> Vec<&str> {
    report.gates.iter().filter(|g| !g.passed).map(|g| g.name.as_str()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_server_passes_with_every_delivery_counter_at_zero() {
    let report = run_probe("").await;
    let c = report.counters;
    assert!(c.events_expected > 5_000, "{c:?}");
    assert_eq!(
        (
            c.events_missing,
            c.events_duplicated,
            c.events_out_of_order,
            c.filter_violations,
            c.events_after_unsubscribe
        ),
        (0, 0, 0, 0, 0),
        "{c:?}"
    );
    assert_eq!(
        (c.protocol_violations, c.unexpected_closes, c.connections_failed),
        (0, 0, 0),
        "{:?}",
        report.samples
    );
    assert!(c.resubscribes > 10, "the churners churned: {c:?}");
    assert!(report.passed, "{:?}", report.gates);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_deliveries_are_caught_as_missing_events() {
    let report = run_probe(r#""drop=0.02""#).await;
    assert!(report.counters.events_missing > 0, "{:?}", report.counters);
    assert_eq!(failed_gates(&report), ["counters.events_missing"]);
    assert!(!report.passed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicated_deliveries_are_caught() {
    let report = run_probe(r#""duplicate=0.02""#).await;
    assert!(report.counters.events_duplicated > 0, "{:?}", report.counters);
    assert_eq!(failed_gates(&report), ["counters.events_duplicated"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reordered_deliveries_are_caught_as_out_of_order() {
    let report = run_probe(r#""reorder=0.02""#).await;
    assert!(report.counters.events_out_of_order > 0, "{:?}", report.counters);
    assert_eq!(report.counters.events_missing, 0, "a late event is not a lost one");
    assert_eq!(failed_gates(&report), ["counters.events_out_of_order"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ignored_filters_are_caught_as_filter_violations() {
    let report = run_probe(r#""ignore-filters""#).await;
    assert!(report.counters.filter_violations > 0, "{:?}", report.counters);
    assert_eq!(failed_gates(&report), ["counters.filter_violations"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_after_unsubscribe_are_caught() {
    let report = run_probe(r#""ignore-unsubscribe""#).await;
    assert!(report.counters.events_after_unsubscribe > 0, "{:?}", report.counters);
    assert_eq!(failed_gates(&report), ["counters.events_after_unsubscribe"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_latency_tail_fails_the_latency_gate_only() {
    let report = run_probe(r#""delay=0.05:300ms""#).await;
    assert!(report.latency_us["fanout"].p99 >= 100_000, "{:?}", report.latency_us["fanout"]);
    assert_eq!(failed_gates(&report), ["latency.fanout.p99"]);
}
