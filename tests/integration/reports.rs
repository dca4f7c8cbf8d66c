//! `report` and `compare` as scripts see them (CLI.md), on the committed smoke baseline (real
//! runs): every format rendered again from report.json, the hlog files read back by the
//! hdrhistogram crate, and the exit codes of the regression gate.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use base64::Engine;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::Deserializer;
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_openframe-harness");

fn harness(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("the binary runs")
}

fn baselines() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("reports/baselines/smoke")
}

fn baseline_run(n: u32) -> Value {
    let text =
        std::fs::read_to_string(baselines().join(format!("run-{n}.json"))).expect("committed baseline");
    serde_json::from_str(&text).unwrap()
}

fn write_json(dir: &Path, name: &str, value: &Value) -> String {
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_string_pretty(value).unwrap()).unwrap();
    path.to_string_lossy().into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn report_renders_every_format_again_from_report_json() {
    let dir = tempfile::tempdir().unwrap();
    let run = baseline_run(1);
    write_json(dir.path(), "report.json", &run);
    let folder = dir.path().to_string_lossy().into_owned();
    let out = harness(&["report", &folder, "--format", "html,md", "--format", "junit,hlog"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    for file in ["report.html", "report.md", "junit.xml", "fanout.hlog", "connect.hlog", "subscribe.hlog"] {
        assert!(dir.path().join(file).is_file(), "{file} missing");
        assert!(stdout(&out).contains(file), "{file} not listed");
    }
    let junit = std::fs::read_to_string(dir.path().join("junit.xml")).unwrap();
    let gates = run["gates"].as_array().unwrap().len();
    assert_eq!(junit.matches("<testcase ").count(), gates, "one testcase per gate");
    let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    assert!(md.starts_with("## openframe-harness run `smoke`: PASSED"), "{md}");
    assert!(md.lines().count() < 40 && md.len() < 4_000, "short enough for a PR comment");
}

#[test]
fn the_hlog_files_read_back_as_the_runs_interval_histograms() {
    let dir = tempfile::tempdir().unwrap();
    let run = baseline_run(1);
    let json = write_json(dir.path(), "report.json", &run);
    let out = harness(&["report", &json, "--format", "hlog"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let log = std::fs::read(dir.path().join("fanout.hlog")).unwrap();
    let mut total = 0;
    let mut p99_ms = Vec::new();
    for entry in IntervalLogIterator::new(&log) {
        if let LogEntry::Interval(interval) = entry.expect("a valid log line") {
            assert_eq!(interval.tag().map(|t| t.as_str()), Some("fanout"));
            let bytes =
                base64::engine::general_purpose::STANDARD.decode(interval.encoded_histogram()).unwrap();
            let h: Histogram<u64> = Deserializer::new().deserialize(&mut bytes.as_slice()).unwrap();
            total += h.len();
            p99_ms.push(h.value_at_quantile(0.99) as f64 / 1e6);
        }
    }
    assert_eq!(total, run["latency_us"]["fanout"]["count"].as_u64().unwrap(), "every delivery is in the log");
    let whole_run_p99_ms = run["latency_us"]["fanout"]["p99"].as_f64().unwrap() / 1e3;
    let highest = p99_ms.iter().copied().fold(0.0, f64::max);
    assert!(
        highest >= whole_run_p99_ms * 0.5 && highest < whole_run_p99_ms * 10.0,
        "nanoseconds: {p99_ms:?}"
    );
}

#[test]
fn report_writes_into_out_and_refuses_what_is_not_a_run_report() {
    let dir = tempfile::tempdir().unwrap();
    let json = write_json(dir.path(), "report.json", &baseline_run(1));
    let other = dir.path().join("other");
    let out = harness(&["report", &json, "--out", &other.to_string_lossy()]);
    assert_eq!(out.status.code(), Some(0));
    assert!(other.join("report.html").is_file() && !other.join("report.md").exists(), "html by default");
    let missing = harness(&["report", &dir.path().join("nope").to_string_lossy()]);
    assert_eq!(missing.status.code(), Some(2));
    let conform =
        write_json(dir.path(), "conform.json", &serde_json::json!({"kind": "conform", "passed": true}));
    let refused = harness(&["report", &conform]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("\"conform\" report"));
    assert_eq!(harness(&["report", &json, "--format", "pdf"]).status.code(), Some(2));
}

#[test]
fn compare_passes_a_baseline_run_against_the_baseline() {
    let run_1 = baselines().join("run-1.json");
    let out = harness(&["compare", &baselines().to_string_lossy(), &run_1.to_string_lossy()]);
    assert_eq!(out.status.code(), Some(0), "{}{}", stdout(&out), String::from_utf8_lossy(&out.stderr));
    let table = stdout(&out);
    assert!(table.starts_with("## openframe-harness compare `smoke`: no regression"), "{table}");
    assert!(table.contains("the median of 3 baseline runs"), "{table}");
    for row in [
        "| `latency.fanout.p99` |",
        "| `throughput.events_delivered_per_s` |",
        "| `counters.events_missing` |",
    ] {
        assert!(table.contains(row), "{row}");
    }
}

#[test]
fn compare_fails_on_a_regression_and_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut worse = baseline_run(2);
    let p99 = worse["latency_us"]["fanout"]["p99"].as_u64().unwrap();
    worse["latency_us"]["fanout"]["p99"] = (p99 * 4).into();
    worse["counters"]["events_missing"] = 3.into();
    let current = write_json(dir.path(), "worse.json", &worse);
    let out = harness(&["compare", &baselines().to_string_lossy(), &current, "--max-regression", "10%"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let table = stdout(&out);
    assert!(table.contains("REGRESSION"), "{table}");
    let regressions = table.split("**Regressions:**").nth(1).unwrap().split("| figure |").next().unwrap();
    assert!(regressions.contains("`latency.fanout.p99`"), "{regressions}");
    assert!(regressions.contains("`counters.events_missing`: 0 → 3"), "{regressions}");
    // The same change is within a bound loose enough for it… but a missing event never is.
    let loose = harness(&["compare", &baselines().to_string_lossy(), &current, "--max-regression", "4"]);
    assert_eq!(loose.status.code(), Some(2), "a bare 4 is ambiguous");
    let loose = harness(&["compare", &baselines().to_string_lossy(), &current, "--max-regression", "1000%"]);
    assert_eq!(loose.status.code(), Some(1));
    assert!(!stdout(&loose).contains("- `latency.fanout.p99`"), "{}", stdout(&loose));
}

#[test]
fn compare_gives_no_verdict_on_an_untrustworthy_run_and_exit_2_on_unreadable_input() {
    let dir = tempfile::tempdir().unwrap();
    let mut untrusted = baseline_run(3);
    untrusted["valid"] = false.into();
    untrusted["harness"]["reasons"] = serde_json::json!(["the harness's event loop ran 90ms late"]);
    let current = write_json(dir.path(), "untrusted.json", &untrusted);
    let out = harness(&["compare", &baselines().to_string_lossy(), &current]);
    assert_eq!(out.status.code(), Some(4), "{}", stdout(&out));
    assert!(stdout(&out).contains("NOT JUDGED"));
    let garbage = dir.path().join("garbage.json");
    std::fs::write(&garbage, "not json").unwrap();
    let out = harness(&["compare", &garbage.to_string_lossy(), &current]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("garbage.json"));
    assert_eq!(harness(&["compare", &current]).status.code(), Some(2), "two reports at least");
}
