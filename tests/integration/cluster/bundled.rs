//! `[target] cluster_workers = N`: the one command `run SCENARIO` starts a Redis broker and the
//! bundled server as N `serve` processes over it, drives them (from worker processes too), and
//! stops them, with the delivery rules holding across the processes.

use crate::common::processes::{counter, finish, harness, report};
use crate::common::tools::redis_server;

fn scenario(target: &str) -> String {
    format!(
        r#"
name = "bundled-cluster"
duration = "6s"
seed = 3

[target]
{target}

[[clients]]
name = "all"
count = 40
ramp = "1s"
topics = ["alerts", "devices"]

[[clients]]
name = "high"
count = 20
ramp = "1s"
topics = ["alerts"]
filters = {{ severity = ["high", "critical"] }}

[[publishers]]
topic = "alerts"
rate = "50/s"
start_after = "1500ms"
severity_mix = {{ critical = 1, high = 1, low = 2 }}

[[publishers]]
topic = "devices"
rate = "20/s"
start_after = "1500ms"
via = "http"

[harness]
drain = "1s"
max_loop_lag = "1s"
"#
    )
}

/// Runs `target` (the `[target]` table's keys) with `args` and returns the report.
fn run_bundled_cluster(target: &str, args: &[&str]) -> serde_json::Value {
    redis_server();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("scenario.toml"), scenario(target)).unwrap();
    let mut all = vec!["run", "scenario.toml", "--out", "out", "-q"];
    all.extend_from_slice(args);
    let (code, _, stderr) = finish(harness(&all, dir.path()));
    let report = report(&dir.path().join("out"));
    // 4: too busy a machine to keep the schedule; the delivery counters are exact all the same.
    assert!(matches!(code, Some(0 | 4)), "exit {code:?}\n{stderr}\n{}", report["counters"]);
    for name in [
        "events_missing",
        "events_duplicated",
        "events_out_of_order",
        "filter_violations",
        "protocol_violations",
        "unexpected_closes",
        "connections_failed",
    ] {
        assert_eq!(counter(&report, name), 0, "{name}: {}\n{stderr}", report["counters"]);
    }
    assert_eq!(report["peak_clients"], 60, "{}", report["counters"]);
    assert!(counter(&report, "events_expected") > 5_000, "{}", report["counters"]);
    assert_eq!(report["harness"]["server_in_process"], false, "the server ran in its own processes");
    report
}

#[test]
fn cluster_bundled_by_the_scenario_serves_harness_worker_processes_exactly_once_in_order() {
    run_bundled_cluster("cluster_workers = 3", &["--workers", "2"]);
}

#[test]
fn cluster_bundled_by_the_scenario_speaks_tls_with_its_generated_certificate() {
    let report = run_bundled_cluster("cluster_workers = 2\ntls = true", &[]);
    assert!(report["counters"]["tls_handshakes"].as_u64().unwrap_or(0) >= 60, "{}", report["counters"]);
}
