//! The binary as scripts see it (CLI.md): exit codes, the report folder, Ctrl-C.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_openframe-harness");

fn harness(args: &[&str], dir: &Path) -> Output {
    Command::new(BIN).args(args).current_dir(dir).output().expect("the binary runs")
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

const TINY: &str = r#"
name = "tiny"
duration = "3s"
seed = 1
[[clients]]
name = "c"
count = 10
topics = ["alerts", "devices"]
[[publishers]]
topic = "alerts"
rate = "50/s"
start_after = "500ms"
[harness]
drain = "1s"
[gates]
"counters.events_missing" = "== 0"
"latency.fanout.p99" = "< 1s"
"#;

#[test]
fn run_refuses_a_bad_scenario_with_exit_2_and_the_position() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "bad.toml", &TINY.replace("count = 10", "count = 10\ncolour = \"red\""));
    let out = harness(&["run", &path], dir.path());
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bad.toml:8:1: unknown field `colour`"), "{stderr}");
}

#[test]
fn run_against_an_unreachable_target_exits_3() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "tiny.toml", TINY);
    let out =
        harness(&["run", &path, "--target", "ws://127.0.0.1:9/v1/ws", "--jwt-secret", "x", "-q"], dir.path());
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unreachable"));
}

#[test]
fn run_writes_every_report_file_with_the_fields_cli_md_fixes() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "tiny.toml", TINY);
    let out = harness(&["run", &path, "--out", "out", "-q"], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let folder = dir.path().join("out");
    for file in [
        "report.json",
        "report.md",
        "report.html",
        "junit.xml",
        "fanout.hlog",
        "connect.hlog",
        "subscribe.hlog",
    ] {
        assert!(folder.join(file).is_file(), "{file} missing");
    }
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(folder.join("report.json")).unwrap()).unwrap();
    assert_eq!((report["schema_version"].as_u64(), report["kind"].as_str()), (Some(1), Some("run")));
    assert_eq!(
        (report["scenario"].as_str(), report["target"].as_str(), report["seed"].as_u64()),
        (Some("tiny"), Some("embedded"), Some(1))
    );
    assert_eq!(
        (report["interrupted"].as_bool(), report["valid"].as_bool(), report["passed"].as_bool()),
        (Some(false), Some(true), Some(true))
    );
    assert!(report["started_at"].as_str().is_some_and(|s| s.ends_with('Z')));
    assert!(report["duration_s"].as_f64().is_some_and(|d| d > 2.0));
    assert_eq!(report["peak_clients"].as_u64(), Some(10));
    assert!(report["counters"]["events_delivered"].as_u64().is_some_and(|n| n > 500));
    assert_eq!(report["counters"]["events_missing"].as_u64(), Some(0));
    assert!(report["latency_us"]["fanout"]["p99"].as_u64().is_some_and(|n| n > 0));
    assert!(report["latency_us"]["connect"]["count"].as_u64().is_some_and(|n| n >= 10));
    // Its own two gates, and the five defaults it does not override (it gates events_missing).
    let gates = report["gates"].as_array().unwrap();
    assert_eq!(gates.len(), 7, "{gates:?}");
    assert_eq!(gates.iter().filter(|g| g["default"] == true).count(), 5);
    assert!(report["intervals"].as_array().is_some_and(|i| i.len() >= 3));
    assert!(report["histograms"]["fanout"].as_str().is_some_and(|h| !h.is_empty()));
    let junit = std::fs::read_to_string(folder.join("junit.xml")).unwrap();
    assert!(junit.contains(r#"tests="7" failures="0""#), "{junit}");
}

#[test]
fn run_with_workers_merges_their_reports_into_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "tiny.toml", TINY);
    let out = harness(&["run", &path, "--workers", "2", "--out", "out", "-q"], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("out/report.json")).unwrap()).unwrap();
    assert_eq!(report["harness"]["workers"].as_u64(), Some(2));
    assert_eq!(report["peak_clients"].as_u64(), Some(10));
    assert_eq!(report["counters"]["events_missing"].as_u64(), Some(0));
    assert_eq!(report["counters"]["connections_opened"].as_u64(), Some(11), "10 clients and a publisher");
    for worker in ["out/workers/worker-0/report.json", "out/workers/worker-1/report.json"] {
        assert!(dir.path().join(worker).is_file(), "{worker}");
    }
}

#[test]
fn run_failing_a_gate_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "strict.toml", &TINY.replace("< 1s", "< 1us"));
    let out = harness(&["run", &path, "--out", "out", "-q"], dir.path());
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
}

/// Starts a 60-second run of TINY in `dir` (report into `out/`) and gives it 3 s to get going.
fn start_long_run(dir: &Path, extra: &[&str]) -> (std::process::Child, String) {
    let path = write(dir, "long.toml", &TINY.replace("duration = \"3s\"", "duration = \"60s\""));
    let child = Command::new(BIN)
        .args(["run", &path, "--out", "out", "-q"])
        .args(extra)
        .current_dir(dir)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    (child, path)
}

#[test]
fn run_interrupted_by_sigint_writes_a_partial_report_and_exits_130() {
    let dir = tempfile::tempdir().unwrap();
    let (child, _) = start_long_run(dir.path(), &[]);
    // SAFETY: sending a signal to our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("out/report.json")).unwrap()).unwrap();
    assert_eq!(report["interrupted"].as_bool(), Some(true));
    assert_eq!(report["passed"].as_bool(), Some(false));
    assert!(report["counters"]["events_delivered"].as_u64().is_some_and(|n| n > 0));
}

#[test]
fn a_scenario_without_gates_still_fails_when_events_go_missing() {
    let dir = tempfile::tempdir().unwrap();
    let ungated = TINY.split("[gates]").next().unwrap().to_owned();
    let path = write(dir.path(), "lossy.toml", &format!("{ungated}[target]\nfaults = [\"drop=0.5\"]\n"));
    let out = harness(&["run", &path, "--out", "out"], dir.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("gate counters.events_missing == 0: FAIL") && stderr.contains("[default]"),
        "{stderr}"
    );
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("out/report.json")).unwrap()).unwrap();
    let gates = report["gates"].as_array().unwrap();
    assert!(gates.iter().all(|g| g["default"] == true), "{gates:?}");
}

#[test]
fn an_error_names_each_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&[&str], i32); 5] = [
        (&["run", "/nonexistent/s.toml"], 2),
        (&["conform", "--token-file", "/nonexistent/tokens"], 2),
        (&["fuzz", "--replay", "/nonexistent/finding.json"], 2),
        (&["conform", "--target", "wss://localhost:1/v1/ws", "--ca-cert", "/nonexistent/ca.pem"], 2),
        (&["serve", "--addr", "192.0.2.1:1"], 3),
    ];
    for (args, code) in cases {
        let out = harness(args, dir.path());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {stderr}");
        assert_eq!(stderr.matches("(os error").count(), 1, "{args:?}: {stderr}");
    }
}

/// Starts `serve` on a free port and waits for its banner.
fn serve_until_listening() -> std::process::Child {
    use std::io::{BufRead, BufReader};
    let mut child =
        Command::new(BIN).args(["serve", "--addr", "127.0.0.1:0"]).stderr(Stdio::piped()).spawn().unwrap();
    let mut banner = String::new();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    while !banner.contains("listening on") {
        banner.clear();
        assert!(stderr.read_line(&mut banner).unwrap() > 0, "serve ended before listening");
    }
    // Keep draining its stderr so that it never blocks on a full pipe.
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    child
}

#[test]
fn two_signals_at_once_are_one_request_to_drain() {
    // `timeout` and supervisors signal a process and its group together: not an abort.
    let mut child = serve_until_listening();
    for _ in 0..2 {
        // SAFETY: sending a signal to our own child process.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    }
    assert_eq!(child.wait().unwrap().code(), Some(0), "a drained server exits 0");
}

#[test]
fn a_second_ctrl_c_later_ends_a_run_with_workers_and_leaves_none_behind() {
    let dir = tempfile::tempdir().unwrap();
    // With worker processes: an abort must take them down too, not leave them running.
    let (mut child, path) = start_long_run(dir.path(), &["--workers", "2"]);
    // SAFETY: sending signals to our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    std::thread::sleep(Duration::from_millis(400));
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let started = std::time::Instant::now();
    let status = child.wait().unwrap();
    let stderr = std::io::read_to_string(child.stderr.take().unwrap()).unwrap();
    // Drained already, or aborted by the second signal: either way 130, and quickly.
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(5), "the abort waited {:?}", started.elapsed());
    let workers_left = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("cmdline")).ok())
        .filter(|cmd| cmd.contains(&path) && cmd.contains("--shard"))
        .count();
    assert_eq!(workers_left, 0, "the aborted run's workers were killed");
}

#[test]
fn token_prints_a_token_the_reference_server_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let out = harness(&["token", "--sub", "me", "--scope", "publish", "--jwt-secret", "s3cret"], dir.path());
    assert_eq!(out.status.code(), Some(0));
    let token = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let now = openframe_harness::protocol::jwt::unix_now_s();
    let verified = openframe_harness::protocol::jwt::verify(&token, b"s3cret", now).unwrap();
    assert_eq!(verified.subject, "me");
    assert!(verified.may_publish);
    assert_eq!(harness(&["token", "--ttl", "forever"], dir.path()).status.code(), Some(2));
}
