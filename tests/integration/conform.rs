//! `conform` against the bundled server: clean it passes every case; each protocol fault is
//! reported by the case that checks its rule; the report folder holds what CLI.md fixes.

use std::path::PathBuf;
use std::process::Command;

use openframe_harness::conform::report::ConformReport;
use openframe_harness::conform::{self, ConformPlan};
use openframe_harness::probe::target::FileToken;
use openframe_harness::probe::{Credentials, SutSpec};
use openframe_harness::protocol::jwt::{self, Claims, DEFAULT_DEV_SECRET};
use tokio_util::sync::CancellationToken;

fn bundled(faults: &[&str], child: bool) -> SutSpec {
    SutSpec::Bundled {
        faults: faults.iter().map(|f| f.to_string()).collect(),
        secret: DEFAULT_DEV_SECRET.as_bytes().to_vec(),
        child_exe: child.then(|| PathBuf::from(env!("CARGO_BIN_EXE_openframe-harness"))),
        tls: openframe_harness::probe::sut::BundledTls::Off,
    }
}

async fn conform_run(faults: &[&str], only: Option<&str>) -> ConformReport {
    let mut plan = ConformPlan::new(
        bundled(faults, faults.contains(&"crash-on-deep-nesting")),
        Credentials::Secret(DEFAULT_DEV_SECRET.as_bytes().to_vec()),
    );
    plan.only = only.map(str::to_owned);
    conform::run(plan, CancellationToken::new()).await.expect("conform runs")
}

fn failed(report: &ConformReport) -> Vec<&str> {
    report.cases.iter().filter(|c| c.verdict == "fail").map(|c| c.name.as_str()).collect()
}

pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "openframe-{name}-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conform_clean_bundled_server_passes_every_case_and_writes_the_report() {
    let report = conform_run(&[], None).await;
    assert!(report.passed, "failed: {:?}", failed(&report));
    assert!(report.summary.total > 400, "{}", report.summary.total);
    assert_eq!(report.summary.skipped, 0);
    assert!(report.cases.iter().any(|c| c.name == "corpus.n_structure_100000_opening_arrays.json"));
    let dir = temp_dir("conform-report");
    report.write_all(&dir).unwrap();
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(json["kind"], "conform");
    assert_eq!(json["passed"], true);
    assert!(
        json["cases"].as_array().unwrap().iter().all(|c| c["name"].is_string() && c["verdict"] == "pass")
    );
    let junit = std::fs::read_to_string(dir.join("junit.xml")).unwrap();
    assert_eq!(junit.matches("<testcase ").count(), report.summary.total);
    assert!(std::fs::read_to_string(dir.join("report.md")).unwrap().contains("PASSED"));
}

/// Each protocol fault, the cases that must catch it, and a case that must still pass.
const FAULTS: &[(&str, &str, &[&str], &str)] = &[
    ("wrong-unknown-topic-code", "subscribe.meaning.", &["subscribe.meaning.unknown_topic"], "-"),
    (
        "close-on-bad-json",
        "invalid.",
        &["invalid.not_json", "invalid.truncated_json"],
        "invalid.unknown_type",
    ),
    ("accept-expired-tokens", "auth.", &["auth.expired", "auth.not_yet_valid"], "auth.alg_none_unsigned"),
    (
        "accept-alg-none",
        "auth.alg_",
        &["auth.alg_none_unsigned", "auth.alg_none_with_valid_hs256_signature"],
        "auth.alg_hs512_header",
    ),
    (
        "no-id-echo",
        "subscribe.meaning.",
        &["subscribe.meaning.unknown_topic", "subscribe.meaning.topics_empty"],
        "-",
    ),
    ("no-error-timestamp", "auth.missing", &["auth.missing_token"], "-"),
    ("hang-on-deep-nesting", "invalid.deeply", &["invalid.deeply_nested_arrays_answered"], "-"),
    ("crash-on-deep-nesting", "invalid.deeply", &["invalid.deeply_nested_arrays_answered"], "-"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conform_reports_every_protocol_fault_and_the_clean_server_passes_the_same_cases() {
    for (fault, only, must_fail, must_pass) in FAULTS {
        let clean = conform_run(&[], Some(only)).await;
        assert!(clean.passed && clean.summary.total > 0, "{fault}: clean server failed {:?}", failed(&clean));
        let report = conform_run(&[fault], Some(only)).await;
        let failures = failed(&report);
        for name in *must_fail {
            assert!(failures.contains(name), "{fault}: {name} did not fail; failures {failures:?}");
        }
        assert!(!failures.contains(must_pass), "{fault}: {must_pass} failed too");
        let case = report.cases.iter().find(|c| c.name == must_fail[0]).unwrap();
        assert!(
            case.sent.is_some() && case.received.is_some() && case.expected.is_some() && case.rule.is_some()
        );
    }
}

#[tokio::test]
async fn conform_without_extensions_skips_them_and_still_passes() {
    let mut plan =
        ConformPlan::new(bundled(&[], false), Credentials::Secret(DEFAULT_DEV_SECRET.as_bytes().to_vec()));
    plan.extensions = false;
    plan.only = Some("publish.".into());
    let report = conform::run(plan, CancellationToken::new()).await.unwrap();
    assert!(report.passed);
    assert!(report.cases.iter().all(|c| c.verdict == "skipped-extension"), "{:?}", report.cases);
}

#[tokio::test]
async fn conform_with_only_a_token_file_skips_cases_that_mint_tokens() {
    let token = jwt::mint(DEFAULT_DEV_SECRET.as_bytes(), &Claims::for_subject("t", 3600, true));
    let creds = Credentials::Tokens(vec![FileToken { token, may_publish: true }]);
    let mut plan = ConformPlan::new(bundled(&[], false), creds);
    plan.only = Some("auth.".into());
    let report = conform::run(plan, CancellationToken::new()).await.unwrap();
    assert!(report.passed, "{:?}", failed(&report));
    let expired = report.cases.iter().find(|c| c.name == "auth.expired").unwrap();
    assert_eq!(expired.verdict, "skipped");
    assert!(expired.reason.as_deref().unwrap().contains("--jwt-secret"));
    assert_eq!(report.cases.iter().find(|c| c.name == "auth.missing_token").unwrap().verdict, "pass");
}

#[tokio::test]
async fn conform_command_exit_codes_follow_cli_md() {
    let exe = env!("CARGO_BIN_EXE_openframe-harness");
    let run = |args: &[&str]| Command::new(exe).arg("conform").args(args).output().unwrap();
    let out = temp_dir("conform-cli");
    let passed = run(&["--only", "auth.missing", "--out", out.to_str().unwrap()]);
    assert_eq!(passed.status.code(), Some(0), "{}", String::from_utf8_lossy(&passed.stderr));
    assert!(out.join("report.json").exists() && out.join("junit.xml").exists());
    let failed =
        run(&["--only", "auth.missing", "--fault", "no-error-timestamp", "--out", out.to_str().unwrap()]);
    assert_eq!(failed.status.code(), Some(1));
    let unreachable = run(&["--target", "ws://127.0.0.1:1/v1/ws", "--out", out.to_str().unwrap()]);
    assert_eq!(unreachable.status.code(), Some(3));
    assert_eq!(run(&["--no-such-flag"]).status.code(), Some(2));
    assert_eq!(run(&["--fault", "explode"]).status.code(), Some(2));
}
