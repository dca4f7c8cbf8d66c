//! A run split into shards the way machines (or a Kubernetes Indexed Job) split it: three
//! `run --shard I/3 --start-at T` processes against one external server, `merge`d, must report
//! what one process running the whole scenario reports.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::common::processes::{SECRET, ServeProcess, counter, finish, harness, report};

/// No churn and subscriptions long before the first event: every event is owed to every
/// matching subscriber, so the counts are the same however the run is split.
const SCENARIO: &str = r#"
name = "sharded"
duration = "6s"
seed = 21

[[clients]]
name = "all"
count = 45
ramp = "1s"
topics = ["alerts", "devices"]

[[clients]]
name = "high"
count = 15
ramp = "1s"
topics = ["alerts"]
filters = { severity = ["high", "critical"] }

[[publishers]]
name = "alerts-a"
topic = "alerts"
rate = "40/s"
start_after = "2s"

[[publishers]]
name = "alerts-b"
topic = "alerts"
rate = "40/s"
start_after = "2s"

[[publishers]]
name = "devices"
topic = "devices"
rate = "20/s"
start_after = "2s"
via = "http"

[harness]
drain = "1s"
max_loop_lag = "1s"

[gates]
"counters.events_missing" = "== 0"
"#;

const EXACT: &[&str] = &[
    "events_published",
    "events_expected",
    "events_delivered",
    "connections_opened",
    "events_missing",
    "events_duplicated",
    "events_out_of_order",
    "filter_violations",
    "events_after_unsubscribe",
    "protocol_violations",
    "unexpected_closes",
    "foreign_events",
];

#[test]
fn shards_three_processes_merged_report_what_one_process_reports() {
    let server = ServeProcess::start(&["--status-interval", "0s"]);
    let target = server.target();
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("sharded.toml");
    std::fs::write(&scenario, SCENARIO).unwrap();
    let scenario = scenario.to_string_lossy().into_owned();
    let common = ["--target", &target, "--jwt-secret", SECRET, "-q"];

    // The shards, in parallel, sharing one start time.
    let start_at = SystemTime::now().duration_since(UNIX_EPOCH).unwrap() + Duration::from_secs(3);
    let start_at = format!("{:.3}", start_at.as_secs_f64());
    let shards: Vec<_> = (0..3)
        .map(|i| {
            let shard = format!("{i}/3");
            let out = format!("shard-{i}");
            let mut args = vec!["run", &scenario, "--shard", &shard, "--start-at", &start_at, "--out", &out];
            args.extend(common);
            harness(&args, dir.path())
        })
        .collect();
    for (i, shard) in shards.into_iter().enumerate() {
        let (code, _, stderr) = finish(shard);
        assert!(matches!(code, Some(0 | 4)), "shard {i} exited {code:?}: {stderr}");
    }
    let merged = dir.path().join("merged");
    let reports: Vec<String> = (0..3)
        .map(|i| dir.path().join(format!("shard-{i}/report.json")).to_string_lossy().into_owned())
        .collect();
    let mut args = vec!["merge"];
    args.extend(reports.iter().map(String::as_str));
    args.extend(["--out", merged.to_str().unwrap()]);
    let (code, _, stderr) = finish(harness(&args, dir.path()));
    assert!(matches!(code, Some(0 | 4)), "merge exited {code:?}: {stderr}");
    let merged = report(&merged);

    // The same scenario in one process.
    let mut args = vec!["run", &scenario, "--out", "single"];
    args.extend(common);
    let (code, _, stderr) = finish(harness(&args, dir.path()));
    assert!(matches!(code, Some(0 | 4)), "the single run exited {code:?}: {stderr}");
    let single = report(&dir.path().join("single"));

    for name in EXACT {
        assert_eq!(
            counter(&merged, name),
            counter(&single, name),
            "{name}\nmerged: {}\nsingle: {}",
            merged["counters"],
            single["counters"]
        );
    }
    assert_eq!(counter(&single, "events_missing"), 0, "{}", single["counters"]);
    // Each shard saw every publisher's events, its own and the others' (one run id), so what was
    // owed is every event to every matching subscriber.
    let published = counter(&single, "events_published");
    assert!(published > 150, "{}", single["counters"]);
    assert_eq!(merged["peak_clients"], single["peak_clients"]);
    assert_eq!(merged["peak_clients"].as_u64(), Some(60));
    let fanout = |r: &Value, field: &str| r["latency_us"]["fanout"][field].as_u64().unwrap();
    assert_eq!(
        fanout(&merged, "count"),
        counter(&merged, "events_delivered"),
        "the merged histogram holds every delivery"
    );
    for field in ["p50", "p90"] {
        let (m, s) = (fanout(&merged, field), fanout(&single, field));
        // Close, not equal: three processes share the machine's cores differently from one.
        let close = m.max(s) <= 4 * m.min(s).max(1) || m.abs_diff(s) <= 5_000;
        assert!(close, "fan-out {field}: merged {m} µs, single {s} µs");
    }
}
