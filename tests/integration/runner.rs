//! The scenario runner against the bundled server: a clean run passes with every delivery
//! counter at zero, and each deliberate server fault fails the run with the right counter and
//! the right gate (issue: "fault injection, so the harness proves it catches bugs").

use std::path::Path;

use openframe_harness::results::model::RunReport;
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

/// The delivery counters a fault may set, by name.
fn delivery_counters(report: &RunReport) -> Vec<(&'static str, u64)> {
    let c = report.counters;
    vec![
        ("events_missing", c.events_missing),
        ("events_duplicated", c.events_duplicated),
        ("events_out_of_order", c.events_out_of_order),
        ("filter_violations", c.filter_violations),
        ("events_after_unsubscribe", c.events_after_unsubscribe),
        ("protocol_violations", c.protocol_violations),
    ]
}

/// The fault shows in `counter` (and its gate fails) and in no other delivery counter. The
/// latency gate is not asserted: on a loaded machine it may fail on its own.
fn caught_exactly(report: &RunReport, counter: &str) {
    for (name, value) in delivery_counters(report) {
        if name == counter {
            assert!(value > 0, "{counter} should be non-zero: {:?}", report.counters);
        } else {
            assert_eq!(value, 0, "{name} should stay zero: {:?}", report.counters);
        }
    }
    let failed = failed_gates(report);
    assert!(failed.contains(&format!("counters.{counter}").as_str()), "{failed:?}");
    assert!(
        failed.iter().all(|g| *g == format!("counters.{counter}") || *g == "latency.fanout.p99"),
        "{failed:?}"
    );
    assert!(!report.passed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_server_passes_with_every_delivery_counter_at_zero() {
    let report = run_probe("").await;
    let c = report.counters;
    assert!(c.events_expected > 5_000, "{c:?}");
    for (name, value) in delivery_counters(&report) {
        assert_eq!(value, 0, "{name}: {c:?} {:?}", report.samples);
    }
    assert_eq!((c.unexpected_closes, c.connections_failed), (0, 0), "{:?}", report.samples);
    assert!(c.resubscribes > 10, "the churners churned: {c:?}");
    let failed = failed_gates(&report);
    assert!(failed.iter().all(|g| *g == "latency.fanout.p99"), "{failed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_deliveries_are_caught_as_missing_events() {
    caught_exactly(&run_probe(r#""drop=0.02""#).await, "events_missing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicated_deliveries_are_caught() {
    caught_exactly(&run_probe(r#""duplicate=0.02""#).await, "events_duplicated");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reordered_deliveries_are_caught_as_out_of_order() {
    caught_exactly(&run_probe(r#""reorder=0.02""#).await, "events_out_of_order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ignored_filters_are_caught_as_filter_violations() {
    caught_exactly(&run_probe(r#""ignore-filters""#).await, "filter_violations");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_after_unsubscribe_are_caught() {
    caught_exactly(&run_probe(r#""ignore-unsubscribe""#).await, "events_after_unsubscribe");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_latency_tail_fails_the_latency_gate_and_nothing_else() {
    let report = run_probe(r#""delay=0.05:400ms""#).await;
    assert!(report.latency_us["fanout"].p99 >= 300_000, "{:?}", report.latency_us["fanout"]);
    for (name, value) in delivery_counters(&report) {
        assert_eq!(value, 0, "{name}: {:?}", report.counters);
    }
    assert_eq!(failed_gates(&report), ["latency.fanout.p99"]);
}
