//! `fuzz` against the bundled server with a fixed seed and a bounded case count: nothing on the
//! clean server; each protocol fault reported; findings saved, replayable and deterministic; and
//! findings that were wrongly judged (issue 13) replayed against an independent stub server
//! (`stub.rs`, fixtures in `tests/fixtures/fuzz/`) as passes.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use openframe_harness::fuzz::replay;
use openframe_harness::fuzz::report::FuzzReport;
use openframe_harness::fuzz::run::{self, FuzzPlan, Stop};
use openframe_harness::oracle::Oracle;
use openframe_harness::probe::{Credentials, SutSpec};
use openframe_harness::protocol::jwt::DEFAULT_DEV_SECRET;
use tokio_util::sync::CancellationToken;

use crate::conform::temp_dir;

const SEED: u64 = 3;

fn plan(faults: &[&str], cases: u64) -> FuzzPlan {
    let child = faults.contains(&"crash-on-deep-nesting");
    let sut = SutSpec::Bundled {
        faults: faults.iter().map(|f| f.to_string()).collect(),
        secret: DEFAULT_DEV_SECRET.as_bytes().to_vec(),
        child_exe: child.then(|| PathBuf::from(env!("CARGO_BIN_EXE_openframe-harness"))),
        tls: openframe_harness::probe::sut::BundledTls::Off,
    };
    let mut plan = FuzzPlan::new(
        sut,
        Credentials::Secret(DEFAULT_DEV_SECRET.as_bytes().to_vec()),
        SEED,
        Stop::Cases(cases),
    );
    plan.answer = Duration::from_secs(1);
    plan.growth = false;
    plan.shrink_attempts = 40;
    plan
}

async fn fuzz(faults: &[&str], cases: u64) -> FuzzReport {
    run::run(plan(faults, cases), CancellationToken::new()).await.expect("fuzz runs")
}

fn oracles(report: &FuzzReport) -> Vec<(Oracle, String)> {
    report.findings.iter().map(|f| (f.oracle, f.signature.clone())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuzz_clean_bundled_server_has_no_findings_and_covers_every_layer() {
    let mut p = plan(&[], 1500);
    p.growth = true;
    let report = run::run(p, CancellationToken::new()).await.unwrap();
    assert!(report.passed, "{:#?}", report.findings);
    assert_eq!(report.cases, 1500);
    for key in [
        "sent:subscribe",
        "sent:publish",
        "sent:not_json",
        "sent:raw_frames",
        "sent:upgrade",
        "sent:sequence",
        "code:SUBSCRIPTION_ERROR",
        "code:INVALID_MESSAGE",
        "code:AUTH_ERROR",
        "close:1002",
        "close:1007",
        "close:1009",
    ] {
        assert!(report.coverage.contains_key(key), "{key} not reached: {:?}", report.coverage);
    }
    let canaries = report.canaries.as_ref().expect("canaries ran");
    assert!(canaries.received > 0 && canaries.damage.is_empty(), "{canaries:?}");
    assert!(
        report
            .growth
            .as_ref()
            .is_some_and(|g| g.finding.is_none() && g.samples.iter().all(|s| s.connections_open.is_some()))
    );
    assert!(report.liveness_probes > 0);
}

/// Each protocol fault and the oracle that must report it.
const FAULTS: &[(&str, Oracle)] = &[
    ("wrong-unknown-topic-code", Oracle::SentinelBroken),
    ("close-on-bad-json", Oracle::UnexpectedClose),
    ("accept-expired-tokens", Oracle::WrongAnswer),
    ("accept-alg-none", Oracle::WrongAnswer),
    ("no-id-echo", Oracle::IdNotEchoed),
    ("no-error-timestamp", Oracle::MissingTimestamp),
    ("hang-on-deep-nesting", Oracle::Hang),
    ("crash-on-deep-nesting", Oracle::ServerDied),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuzz_reports_every_protocol_fault_with_a_replayable_finding() {
    for (fault, oracle) in FAULTS {
        let report = fuzz(&[fault], 600).await;
        let found = oracles(&report);
        assert!(found.iter().any(|(o, _)| o == oracle), "{fault}: {oracle:?} not among {found:?}");
        // The fault's infinite leeway lets a not-yet-valid token in as well as an expired one:
        // whichever the run met first is the finding's reproducer.
        let tokens: &[&str] = match *fault {
            "accept-alg-none" => &["AlgNone"],
            "accept-expired-tokens" => &["Expired", "NotYetValid"],
            _ => &[],
        };
        if !tokens.is_empty() {
            let sent: Vec<&String> = report.findings.iter().map(|f| &f.sent).collect();
            assert!(sent.iter().any(|s| tokens.iter().any(|t| s.contains(t))), "{fault}: {found:?} {sent:?}");
        }
        assert!(
            report
                .findings
                .iter()
                .filter(|f| f.oracle == *oracle)
                .all(|f| f.case.is_some() || f.oracle == Oracle::ServerDied)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuzz_runs_are_deterministic_for_a_seed_and_findings_replay() {
    let first = fuzz(&["no-id-echo"], 300).await;
    let second = fuzz(&["no-id-echo"], 300).await;
    let signatures =
        |r: &FuzzReport| r.findings.iter().map(|f| (f.signature.clone(), f.case_index)).collect::<Vec<_>>();
    assert_eq!(signatures(&first), signatures(&second));
    let mut report = first;
    let dir = temp_dir("fuzz-report");
    report.write_all(&dir).unwrap();
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("report.json")).unwrap()).unwrap();
    assert_eq!((json["kind"].as_str(), json["passed"].as_bool()), (Some("fuzz"), Some(false)));
    let finding = json["findings"][0].clone();
    assert!(
        finding["name"].is_string()
            && finding["verdict"] == "fail"
            && finding["sent"].is_string()
            && finding["received"].is_string()
            && finding["expected"].is_string()
    );
    let file = dir.join(finding["file"].as_str().unwrap());
    let exe = env!("CARGO_BIN_EXE_openframe-harness");
    let out = temp_dir("fuzz-replay");
    let replay = |faults: &[&str]| {
        let mut command = Command::new(exe);
        command.args(["fuzz", "--replay", file.to_str().unwrap(), "--out", out.to_str().unwrap()]);
        for f in faults {
            command.args(["--fault", f]);
        }
        command.output().unwrap().status.code()
    };
    assert_eq!(replay(&["no-id-echo"]), Some(1), "the finding reproduces on the faulty server");
    assert_eq!(replay(&[]), Some(0), "and not on the clean one");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuzz_differential_mode_against_the_embedded_reference_finds_nothing_on_itself() {
    let mut p = plan(&[], 300);
    p.reference = true;
    p.canaries = false;
    let report = run::run(p, CancellationToken::new()).await.unwrap();
    assert!(report.passed, "{:#?}", report.findings);
    assert_eq!(report.reference.as_deref(), Some("embedded"));
}

/// The corpus files in the repository, which the binary embeds.
fn corpus_files_in_repo() -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/jsontestsuite/test_parsing");
    std::fs::read_dir(&dir).unwrap().filter(|e| e.as_ref().is_ok_and(|e| e.path().is_file())).count()
}

#[test]
fn the_installed_binary_sends_the_whole_embedded_corpus_from_any_folder() {
    // The binary alone, in an empty folder with no `../shared` next to it.
    let dir = tempfile::tempdir().unwrap();
    assert!(!dir.path().join("../shared").exists() && !dir.path().join("shared").exists());
    let exe = dir.path().join("openframe-harness");
    std::fs::copy(env!("CARGO_BIN_EXE_openframe-harness"), &exe).unwrap();
    let files = corpus_files_in_repo() as u64;
    assert_eq!(files, 318);
    let run = |args: &[&str]| {
        let out = Command::new(&exe).args(args).current_dir(dir.path()).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stdout}{}", String::from_utf8_lossy(&out.stderr));
        stdout
    };

    let stdout = run(&["fuzz", "--cases", "2000", "--seed", "5", "--out", "fuzz-report"]);
    assert!(stdout.contains(&format!("corpus embedded: {files} of {files} files sent")), "{stdout}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("fuzz-report/report.json")).unwrap()).unwrap();
    assert_eq!(report["passed"], true);
    assert_eq!(report["cases"], 2000);
    assert_eq!(report["corpus"]["source"], "embedded");
    assert_eq!(
        (report["corpus"]["files"].as_u64(), report["corpus"]["files_sent"].as_u64()),
        (Some(files), Some(files))
    );

    run(&["conform", "--only", "corpus.", "--out", "conform-report"]);
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("conform-report/report.json")).unwrap())
            .unwrap();
    let cases = report["cases"].as_array().unwrap();
    assert_eq!(cases.len() as u64, files);
    assert!(
        cases.iter().all(|c| c["name"].as_str().unwrap().starts_with("corpus.") && c["verdict"] == "pass")
    );
}

#[test]
fn a_corpus_folder_given_with_corpus_replaces_the_embedded_one() {
    let dir = tempfile::tempdir().unwrap();
    let parsing = dir.path().join("mine/test_parsing");
    std::fs::create_dir_all(&parsing).unwrap();
    std::fs::write(parsing.join("n_mine.json"), "[1,]").unwrap();
    std::fs::write(parsing.join("y_mine.json"), "[1]").unwrap();
    let exe = env!("CARGO_BIN_EXE_openframe-harness");
    let out = Command::new(exe)
        .args(["conform", "--only", "corpus.", "--corpus", "mine", "--out", "report"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("report/report.json")).unwrap()).unwrap();
    let names: Vec<&str> =
        report["cases"].as_array().unwrap().iter().filter_map(|c| c["name"].as_str()).collect();
    assert_eq!(names, ["corpus.n_mine.json", "corpus.y_mine.json"]);
    let refused =
        Command::new(exe).args(["conform", "--corpus", "nowhere"]).current_dir(dir.path()).output().unwrap();
    assert_eq!(refused.status.code(), Some(2), "{}", String::from_utf8_lossy(&refused.stderr));
}

mod stub;

/// Replays a saved finding against the independent stub server.
async fn replay_against_stub(fixture: &str) -> FuzzReport {
    let url = stub::spawn().await;
    let target = openframe_harness::probe::Target::parse(&url, None).expect("stub url");
    let mut plan = plan(&[], 1);
    plan.sut = SutSpec::External(target);
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fuzz").join(fixture);
    let file = replay::load(&path).expect("a finding file");
    replay::replay(plan, file, fixture).await.expect("replay runs")
}

/// PROTOCOL.md does not rank the publish scope against the message's own shape: a server that
/// answers an ill-typed `id` with INVALID_MESSAGE before looking at the scope is right too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_without_scope_answered_for_its_shape_replays_as_a_pass() {
    let report = replay_against_stub("publish-without-scope-ill-typed-id.json").await;
    assert!(report.passed, "{:#?}", report.findings);
    assert_eq!(report.coverage.get("code:INVALID_MESSAGE"), Some(&1), "the stub answered for the shape");
}

/// A server that echoes a client's lone surrogate escape in an error `message` sends valid JSON
/// (RFC 8259's grammar); it is a note, not a finding.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_echoing_a_lone_surrogate_escape_replays_as_a_pass() {
    let report = replay_against_stub("subscribe-lone-surrogate-topic-echoed.json").await;
    assert!(report.passed, "{:#?}", report.findings);
    assert_eq!(report.coverage.get("code:SUBSCRIPTION_ERROR"), Some(&1), "the stub answered for the topic");
    assert_eq!(report.notes.get("lone_surrogate_escape"), Some(&1));
}
