//! The capacity search against a server of known capacity: the bundled server with the
//! `throttle=N` fault sends at most N event frames per second, so the search must find N
//! deliveries per second (±15 %). Also: the throttle itself limits what is delivered while the
//! run still ends on time, and `run` with a capacity scenario (bad input, Ctrl-C) as scripts see it.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use openframe_harness::results::model::{CapacityStep, LimitedBy};
use openframe_harness::runner::{self, RunOptions};
use openframe_harness::scenario::{self, Overrides};
use serde_json::Value;

use crate::common::timed_alone;

const BIN: &str = env!("CARGO_BIN_EXE_openframe-harness");

/// 200 subscribers; the alerts rate varies from 4/s (800 deliveries/s) up. Against
/// `throttle=2000` the knee is at 10/s: each event fans out to 200 subscribers.
const SEARCH: &str = r#"
name = "capacity-throttle"
seed = 5

[[clients]]
name = "subs"
count = 200
topics = ["alerts"]

[[publishers]]
name = "alerts"
topic = "alerts"
rate = "1/s"

[capacity]
vary = "publishers.alerts.rate"
from = 4
to = 64
step_duration = "2s"
warmup = "1s"

[harness]
drain = "1s"

[gates]
"latency.fanout.p99" = "< 100ms"
"capacity.highest_passing_deliveries_per_s" = ">= 1000"
"#;

const THROTTLE: u32 = 2_000;

fn throttled() -> Overrides {
    Overrides { faults: vec![format!("throttle={THROTTLE}")], ..Overrides::default() }
}

#[test]
fn the_search_finds_the_capacity_of_a_throttled_server() {
    timed_alone(async {
        let plan = scenario::parse(SEARCH, Path::new("capacity.toml"), &throttled()).expect("valid scenario");
        let started = Instant::now();
        let mut heard: Vec<CapacityStep> = Vec::new();
        let report = runner::capacity::run(
            plan,
            RunOptions { quiet: true, ..RunOptions::default() },
            &mut |step, run| {
                assert!(run.is_some(), "every step fits in this process");
                heard.push(step.clone());
            },
        )
        .await
        .expect("the search completes");
        let took = started.elapsed();
        let c = report.capacity.clone().expect("a capacity search reports capacity");
        let steps: Vec<(f64, bool)> = c.steps.iter().map(|s| (s.offered, s.passed)).collect();
        assert!(took < Duration::from_secs(60), "the search took {took:?}: {steps:?}");
        assert_eq!(heard, c.steps, "the caller heard of every step");
        assert_eq!(c.limited_by, LimitedBy::Gate, "{steps:?}");
        assert_eq!(c.failing_gate.as_deref(), Some("latency.fanout.p99 < 100ms"), "{steps:?}");
        let found = c.highest_passing_deliveries_per_s.expect("a step passed");
        let n = f64::from(THROTTLE);
        assert!(
            (found - n).abs() <= 0.15 * n,
            "found {found} deliveries/s for throttle={THROTTLE}: {steps:?}"
        );
        // Up geometrically from 4/s, then bisection to 5 %.
        let grow: Vec<f64> = c.steps.iter().filter(|s| s.phase == "grow").map(|s| s.offered).collect();
        assert_eq!(&grow[..2], [4.0, 8.0], "{steps:?}");
        let (low, high) = (c.highest_passing.unwrap(), c.first_failing.unwrap());
        assert!(high - low <= 0.05 * low + 1e-9, "bisected to the resolution: {low}..{high}");
        // Under capacity deliveries follow the offered load; past it they flatten at N.
        for s in &c.steps {
            let offered = s.offered * 200.0;
            assert!(
                s.deliveries_per_s <= n * 1.05 + 10.0,
                "step {}: {} deliveries/s",
                s.step,
                s.deliveries_per_s
            );
            if offered < n * 0.9 {
                assert!(s.passed && (s.deliveries_per_s - offered).abs() <= 0.05 * offered, "step {s:?}");
            }
            assert!(s.valid && (s.achieved - s.offered).abs() <= 0.1 * s.offered, "step {s:?}");
        }
        // The report's top level is the highest passing step's, judged with the capacity gate.
        let top = c.top_level_step.and_then(|i| c.steps.get(i)).expect("a top-level step");
        assert_eq!(top.offered, low);
        assert_eq!(report.counters, top.counters);
        assert!(report.passed && report.valid && !report.interrupted, "{:?}", report.gates);
        let capacity_gate =
            report.gates.iter().find(|g| g.name.starts_with("capacity.")).expect("the capacity gate");
        assert!(capacity_gate.passed, "{capacity_gate:?}");
    });
}

/// 500 subscribers and 10 events/s: 5,000 deliveries/s offered to a server that sends 2,000.
const OVERLOAD: &str = r#"
name = "throttle-overload"
duration = "7s"
seed = 9

[[clients]]
name = "subs"
count = 500
topics = ["alerts"]

[[publishers]]
topic = "alerts"
rate = "10/s"

[harness]
drain = "1s"
"#;

#[test]
fn the_throttle_limits_deliveries_and_the_run_still_ends_on_time() {
    timed_alone(async {
        let plan =
            scenario::parse(OVERLOAD, Path::new("overload.toml"), &throttled()).expect("valid scenario");
        let planned = plan.duration;
        let started = Instant::now();
        let report = runner::run(plan, RunOptions { quiet: true, ..RunOptions::default() })
            .await
            .expect("the run completes");
        // The throttled connections keep reading, so the clients' closes are answered at once.
        assert!(started.elapsed() < planned + Duration::from_secs(3), "the run took {:?}", started.elapsed());
        // The publishers run from 1 s to 6 s: the whole seconds from 2 to 6 are steady.
        let steady: Vec<u64> = report
            .intervals
            .iter()
            .filter(|i| (3.0..=6.0).contains(&i.t_s))
            .map(|i| i.events_delivered)
            .collect();
        assert_eq!(steady.len(), 4, "{:?}", report.intervals);
        for delivered in &steady {
            assert!(delivered.abs_diff(u64::from(THROTTLE)) <= u64::from(THROTTLE) / 10, "{steady:?}");
        }
        // What was still queued when the clients left never came.
        assert!(report.counters.events_missing > 0, "{:?}", report.counters);
        assert_eq!(report.counters.unexpected_closes, 0, "{:?}", report.counters);
    });
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

#[test]
fn run_refuses_faults_for_an_external_target_and_a_search_without_a_table() {
    let dir = tempfile::tempdir().unwrap();
    let search = write(dir.path(), "search.toml", SEARCH);
    let plain = write(dir.path(), "plain.toml", OVERLOAD);
    let external = write(
        dir.path(),
        "external.toml",
        &OVERLOAD.replace("seed = 9", "seed = 9\ntarget = \"ws://127.0.0.1:9/v1/ws\""),
    );
    let cases: [(&[&str], &str); 5] = [
        (
            &["run", &plain, "--fault", "throttle=10", "--target", "ws://127.0.0.1:9/v1/ws"],
            "cannot be used with",
        ),
        (
            &["run", &external, "--fault", "throttle=10", "--jwt-secret", "s"],
            "--fault breaks the bundled server",
        ),
        (&["run", &plain, "--fault", "throttle=0"], "positive whole number of event frames per second"),
        (&["run", &plain, "--find-capacity"], "--find-capacity needs a [capacity] table"),
        (&["run", &search, "--duration", "5s"], "--duration does not apply to a capacity search"),
    ];
    for (args, expected) in cases {
        let out = Command::new(BIN).args(args).current_dir(dir.path()).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}

#[test]
fn ctrl_c_ends_a_search_with_the_steps_so_far_written() {
    let _alone = crate::common::heavy_or_timed();
    let dir = tempfile::tempdir().unwrap();
    let search = write(dir.path(), "search.toml", SEARCH);
    let mut child = Command::new(BIN)
        .args(["run", &search, "--fault", "throttle=2000", "-q", "--out", "out"])
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    // The first step's line, then Ctrl-C during the second step.
    for line in (&mut stderr).lines().map_while(Result::ok) {
        seen.push_str(&line);
        seen.push('\n');
        if line.starts_with("capacity step 1 (grow): 4 events/s offered") {
            break;
        }
    }
    assert!(seen.contains("capacity step 1"), "{seen}");
    std::thread::sleep(Duration::from_millis(1_500));
    // SAFETY: sending a signal to our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let rest = std::io::read_to_string(stderr).unwrap_or_default();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{seen}{rest}");
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("out/report.json")).unwrap()).unwrap();
    assert_eq!(report["interrupted"], true);
    assert_eq!(report["capacity"]["limited_by"], "interrupted");
    let steps = report["capacity"]["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 1, "only the finished step: {steps:?}");
    assert_eq!(steps[0]["offered"], 4.0);
    assert!(dir.path().join("out/steps/step-01.json").is_file());
    assert!(rest.contains("capacity search was interrupted"), "{rest}");
}
