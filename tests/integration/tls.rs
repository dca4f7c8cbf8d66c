//! TLS (issue 6): a scenario over `wss://` delivers exactly what it delivers over `ws://`;
//! reconnecting clients resume their own sessions; a certificate the client must not trust, a
//! certificate for another name and a server that does not speak TLS all stop the run with
//! exit code 3 and say so; `--insecure` works against a self-signed server and is recorded;
//! `conform` and `fuzz` pass over TLS. A self-signed certificate made as `openssl req -x509` makes
//! it (CA:TRUE) and given with `--ca-cert` is trusted by `run`, `conform` and `fuzz`, as
//! `curl --cacert` trusts it (issue 13 §3); one for another name still fails with exit code 3.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use openframe_harness::conform::{self, ConformPlan};
use openframe_harness::fuzz::run::{self as fuzz_run, FuzzPlan, Stop};
use openframe_harness::probe::sut::BundledTls;
use openframe_harness::probe::{Credentials, SutSpec};
use openframe_harness::protocol::jwt::DEFAULT_DEV_SECRET;
use openframe_harness::results::model::RunReport;
use openframe_harness::runner::{self, RunError, RunOptions};
use openframe_harness::scenario::plan::TargetPlan;
use openframe_harness::scenario::{self, Overrides};
use openframe_harness::tls::{GeneratedPki, TlsError, TlsFailure};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

const BIN: &str = env!("CARGO_BIN_EXE_openframe-harness");

/// Stable subscribers (plain and filtered), a WebSocket and an HTTP publisher: every delivery
/// counter is determined by the seed, whatever the transport. Light enough that a debug build on
/// a busy machine keeps the publishers' schedule.
const DELIVERY: &str = r#"
name = "tls-delivery"
duration = "5s"
seed = 11

[target]
tls = TLS

[[clients]]
name = "all"
count = 30
topics = ["alerts", "devices"]
ramp = "500ms"

[[clients]]
name = "critical"
count = 20
topics = ["alerts"]
filters = { severity = ["critical"] }
ramp = "500ms"

[[publishers]]
topic = "alerts"
rate = "60/s"
start_after = "1500ms"

[[publishers]]
name = "devices-http"
topic = "devices"
rate = "20/s"
via = "http"
start_after = "1500ms"

[harness]
drain = "1500ms"
max_loop_lag = "2s"

[gates]
"counters.events_missing" = "== 0"
"counters.connections_failed" = "== 0"
"#;

async fn run_scenario(text: &str) -> Result<RunReport, RunError> {
    let plan = scenario::parse(text, Path::new("tls.toml"), &Overrides::default()).expect("valid scenario");
    runner::run(plan, RunOptions { quiet: true, ..RunOptions::default() }).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scenario_over_tls_delivers_exactly_what_it_delivers_over_plain() {
    let plain = run_scenario(&DELIVERY.replace("TLS", "false")).await.expect("plain run");
    let tls = run_scenario(&DELIVERY.replace("TLS", "true")).await.expect("tls run");
    for report in [&plain, &tls] {
        assert!(report.passed, "{:?} {:?}", report.gates, report.samples);
        let c = report.counters;
        assert_eq!(
            (c.events_missing, c.events_duplicated, c.events_out_of_order, c.filter_violations),
            (0, 0, 0, 0),
            "{c:?}"
        );
        assert!(c.events_expected > 2_500, "{c:?}");
    }
    let (p, t) = (plain.counters, tls.counters);
    assert_eq!(
        (p.events_published, p.events_expected, p.events_delivered, p.connections_opened, p.publish_acks),
        (t.events_published, t.events_expected, t.events_delivered, t.connections_opened, t.publish_acks),
        "plain {p:?}\ntls {t:?}"
    );
    assert!(!plain.tls.enabled && p.tls_handshakes == 0);
    assert_eq!(plain.latency_us["tls_handshake"].count, 0);
    // 50 clients and the WebSocket publisher: one handshake each (the HTTP publisher's is not a client's).
    assert!(tls.tls.enabled && !tls.tls.insecure, "{:?}", tls.tls);
    assert_eq!(t.tls_handshakes, 51, "{t:?}");
    assert_eq!(tls.latency_us["tls_handshake"].count, 51);
    assert!(tls.tls.verification.contains("generated"), "{}", tls.tls.verification);
    assert_eq!(tls.tls.alpn, ["http/1.1"]);
    assert_eq!(tls.tls.server_name, "", "no SNI for an IP address");
    for metric in ["connect", "tcp_connect", "upgrade"] {
        assert_eq!(tls.latency_us[metric].count, plain.latency_us[metric].count, "{metric}");
    }
    let connect = tls.latency_us["connect"];
    let parts = tls.latency_us["tcp_connect"].min + tls.latency_us["tls_handshake"].min;
    assert!(connect.max >= parts, "connect {connect:?} is the sum of its steps");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnecting_clients_resume_their_own_sessions_and_first_connects_are_full() {
    let text = r#"
name = "tls-resume"
duration = "4s"
seed = 5
[target]
tls = true
[[clients]]
name = "churners"
count = 20
topics = ["alerts"]
churn = { reconnect_every = "400ms..600ms" }
[harness]
max_loop_lag = "1s"
"#;
    let report = run_scenario(text).await.expect("run");
    let c = report.counters;
    assert!(c.reconnects >= 40, "{c:?}");
    assert_eq!(c.tls_handshakes, c.connections_opened, "{c:?}");
    // Each client's first handshake is full: no client may resume another client's session.
    assert!(c.tls_handshakes - c.tls_resumed >= 20, "{c:?}");
    assert!(c.tls_resumed >= c.reconnects * 9 / 10, "reconnects resume: {c:?}");
    assert!(report.tls.resumed_percent > 50.0, "{:?}", report.tls);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_client_against_a_plain_server_fails_as_not_tls() {
    let server = crate::common::TestServer::spawn().await;
    let url = server.url().replace("ws://", "wss://");
    let text = DELIVERY.replace("[target]\ntls = TLS", &format!("target = \"{url}\""));
    let overrides = Overrides { jwt_secret: Some(DEFAULT_DEV_SECRET.into()), ..Overrides::default() };
    let plan = scenario::parse(&text, Path::new("t.toml"), &overrides).unwrap();
    let error = runner::run(plan, RunOptions { quiet: true, ..RunOptions::default() }).await.unwrap_err();
    let RunError::Tls { source: TlsError::Handshake { failure, .. }, .. } = &error else {
        panic!("expected a TLS failure, got {error:?}")
    };
    assert_eq!(*failure, TlsFailure::NotTls, "{error}");
}

#[test]
fn the_shipped_tls_storm_asks_the_bundled_server_for_tls_and_gates_on_handshakes() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/tls-storm.toml");
    let plan = scenario::load(&path, &Overrides::default()).expect("tls-storm.toml is valid");
    assert!(matches!(plan.target, TargetPlan::Embedded { tls: true, .. }), "{:?}", plan.target);
    assert!(plan.planned_clients() >= 2_000);
    assert!(plan.groups.iter().any(|g| g.churn.reconnect_every.is_some()));
    assert!(plan.source.contains("\"latency.tls_handshake.p99\""));
    let plain = Overrides { tls: Some(false), ..Overrides::default() };
    let plan = scenario::load(&path, &plain).expect("the same storm over plain ws://");
    assert!(matches!(plan.target, TargetPlan::Embedded { tls: false, .. }));
}

// ---- the binary against `serve --tls-cert --tls-key` ----

/// A `serve` child process over TLS with the given PEM files; killed on drop.
struct TlsServer {
    child: Child,
    url: String,
}

impl TlsServer {
    fn start(cert: &Path, key: &Path) -> TlsServer {
        let mut child = Command::new(BIN)
            .args(["serve", "--addr", "127.0.0.1:0", "--status-interval", "0s", "--tls-cert"])
            .arg(cert)
            .arg("--tls-key")
            .arg(key)
            .stderr(Stdio::piped())
            .spawn()
            .expect("serve starts");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let url = lines
            .by_ref()
            .map_while(Result::ok)
            .find_map(|line| line.find("wss://").map(|at| line[at..].trim().to_owned()))
            .expect("serve prints its wss:// URL");
        // Keep reading, so the server never writes into a closed pipe.
        std::thread::spawn(move || lines.for_each(drop));
        TlsServer { child, url }
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const TINY: &str = r#"
name = "tiny-tls"
duration = "3s"
seed = 1
[[clients]]
name = "c"
count = 10
topics = ["alerts"]
[[publishers]]
topic = "alerts"
rate = "50/s"
start_after = "500ms"
[harness]
drain = "1s"
max_loop_lag = "1s"
[gates]
"counters.events_missing" = "== 0"
"#;

fn harness(args: &[&str], dir: &Path) -> Output {
    Command::new(BIN)
        .args(args)
        .env("OPENFRAME_JWT_SECRET", DEFAULT_DEV_SECRET)
        .current_dir(dir)
        .output()
        .expect("the binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn a_client_with_the_wrong_ca_fails_clearly_with_exit_3() {
    let dir = tempfile::tempdir().unwrap();
    let files = GeneratedPki::new().unwrap().write_pem_files(&dir.path().join("server")).unwrap();
    let wrong = GeneratedPki::new().unwrap().write_pem_files(&dir.path().join("other")).unwrap();
    std::fs::write(dir.path().join("tiny.toml"), TINY).unwrap();
    let server = TlsServer::start(&files.cert, &files.key);
    let wrong_ca = wrong.ca.to_str().unwrap();
    let out =
        harness(&["run", "tiny.toml", "--target", &server.url, "--ca-cert", wrong_ca, "-q"], dir.path());
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("certificate is not trusted") && stderr.contains("UnknownIssuer"), "{stderr}");
    assert_eq!(stderr.matches("TLS handshake").count(), 1, "said once: {stderr}");
    assert!(stderr.contains("by the --ca-cert file") && !stderr.contains("pass --ca-cert"), "{stderr}");
    for command in ["conform", "fuzz"] {
        let out = harness(&[command, "--target", &server.url, "--ca-cert", wrong_ca], dir.path());
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{command}: {stderr}");
        assert!(stderr.contains("certificate is not trusted"), "{command}: {stderr}");
        assert!(!stderr.contains("FINDING") && !stderr.contains("FAIL "), "{command}: {stderr}");
    }
    // The right CA: the same run passes, over TLS.
    let right_ca = files.ca.to_str().unwrap();
    let out = harness(
        &["run", "tiny.toml", "--target", &server.url, "--ca-cert", right_ca, "--out", "ok"],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("ok/report.json")).unwrap()).unwrap();
    assert_eq!(report["tls"]["enabled"], true);
    assert_eq!(report["tls"]["insecure"], false);
    assert!(report["counters"]["tls_handshakes"].as_u64().unwrap() >= 11, "{}", report["counters"]);
    assert!(report["latency_us"]["tls_handshake"]["count"].as_u64().unwrap() >= 11);
    // A missing CA file is bad input (2), named.
    let out =
        harness(&["run", "tiny.toml", "--target", &server.url, "--ca-cert", "nope.pem", "-q"], dir.path());
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("nope.pem"));
}

#[test]
fn a_certificate_for_another_host_name_is_reported_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let files = GeneratedPki::for_names(&["example.test"]).unwrap().write_pem_files(dir.path()).unwrap();
    std::fs::write(dir.path().join("tiny.toml"), TINY).unwrap();
    let server = TlsServer::start(&files.cert, &files.key);
    let ca = files.ca.to_str().unwrap();
    let out = harness(&["run", "tiny.toml", "--target", &server.url, "--ca-cert", ca, "-q"], dir.path());
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("not valid for this host name"), "{stderr}");
}

#[test]
fn insecure_works_against_a_self_signed_server_and_is_recorded_loudly() {
    let dir = tempfile::tempdir().unwrap();
    let signed = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, signed.cert.pem()).unwrap();
    std::fs::write(&key, signed.signing_key.serialize_pem()).unwrap();
    std::fs::write(dir.path().join("tiny.toml"), TINY).unwrap();
    let server = TlsServer::start(&cert, &key);
    // Verified against the platform's roots, a self-signed certificate is refused.
    let out = harness(&["run", "tiny.toml", "--target", &server.url, "-q"], dir.path());
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("not trusted"), "{}", text(&out.stderr));
    let out = harness(&["run", "tiny.toml", "--target", &server.url, "--insecure", "--out", "r"], dir.path());
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("WARNING: --insecure"), "{stderr}");
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("r/report.json")).unwrap()).unwrap();
    assert_eq!(report["tls"]["insecure"], true, "{}", report["tls"]);
    assert_eq!(report["counters"]["events_missing"], 0);
    let md = std::fs::read_to_string(dir.path().join("r/report.md")).unwrap();
    assert!(md.contains("INSECURE"), "{md}");
    let out = harness(
        &["conform", "--target", &server.url, "--insecure", "--only", "http.", "--out", "c"],
        dir.path(),
    );
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("NOT verified"), "{stdout}");
    let conform: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("c/report.json")).unwrap()).unwrap();
    assert_eq!(conform["tls"]["insecure"], true);
}

// ---- a self-signed certificate given with --ca-cert (issue 13 §3) ----

/// A self-signed certificate made as `openssl req -x509 -newkey … -subj /CN=localhost -addext
/// subjectAltName=DNS:localhost,IP:127.0.0.1` makes it: CA:TRUE, its own issuer, `names` as
/// subjectAltNames. Writes `cert.pem` and `key.pem` into `dir`.
fn openssl_style_self_signed(dir: &Path, names: &[&str]) -> (std::path::PathBuf, std::path::PathBuf) {
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let mut params = rcgen::CertificateParams::new(names).unwrap();
    params.distinguished_name.push(rcgen::DnType::CommonName, "localhost");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    (cert_path, key_path)
}

#[test]
fn a_self_signed_certificate_given_with_ca_cert_is_trusted_by_run_conform_and_fuzz() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = openssl_style_self_signed(dir.path(), &["localhost", "127.0.0.1"]);
    std::fs::write(dir.path().join("tiny.toml"), TINY).unwrap();
    let server = TlsServer::start(&cert, &key);
    let by_name = server.url.replace("127.0.0.1", "localhost");
    let ca = cert.to_str().unwrap();
    // run, by name (SNI localhost): the scenario passes over TLS, verified.
    let out = harness(&["run", "tiny.toml", "--target", &by_name, "--ca-cert", ca, "--out", "r"], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("r/report.json")).unwrap()).unwrap();
    assert_eq!(
        (&report["tls"]["enabled"], &report["tls"]["insecure"]),
        (&Value::Bool(true), &Value::Bool(false))
    );
    assert!(report["tls"]["verification"].as_str().unwrap().contains("cert.pem"), "{}", report["tls"]);
    assert_eq!(report["tls"]["server_name"], "localhost", "{}", report["tls"]);
    assert_eq!(report["counters"]["events_missing"], 0, "{}", report["counters"]);
    assert!(report["counters"]["events_delivered"].as_u64().unwrap() > 0, "{}", report["counters"]);
    assert!(report["counters"]["tls_handshakes"].as_u64().unwrap() >= 11, "{}", report["counters"]);
    // conform by name, fuzz by address (the certificate's IP subjectAltName).
    let out = harness(&["conform", "--target", &by_name, "--ca-cert", ca, "--out", "c"], dir.path());
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    let conform: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("c/report.json")).unwrap()).unwrap();
    assert_eq!((&conform["passed"], &conform["tls"]["insecure"]), (&Value::Bool(true), &Value::Bool(false)));
    assert_eq!(conform["tls"]["server_name"], "localhost", "{}", conform["tls"]);
    assert!(conform["summary"]["passed"].as_u64().unwrap() > 100, "{}", conform["summary"]);
    let out = harness(
        &["fuzz", "--target", &server.url, "--ca-cert", ca, "--cases", "50", "--seed", "3", "--out", "f"],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(0), "{}{}", text(&out.stdout), text(&out.stderr));
    let fuzz: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("f/report.json")).unwrap()).unwrap();
    assert_eq!(fuzz["cases"], 50, "{fuzz}");
    assert_eq!((&fuzz["passed"], &fuzz["tls"]["insecure"]), (&Value::Bool(true), &Value::Bool(false)));
    assert_eq!(fuzz["tls"]["server_name"], "", "no SNI for an IP address: {}", fuzz["tls"]);
}

#[test]
fn a_self_signed_certificate_for_another_name_fails_with_exit_3_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = openssl_style_self_signed(dir.path(), &["example.test"]);
    std::fs::write(dir.path().join("tiny.toml"), TINY).unwrap();
    let server = TlsServer::start(&cert, &key);
    let by_name = server.url.replace("127.0.0.1", "localhost");
    let ca = cert.to_str().unwrap();
    let runs: [&[&str]; 3] = [
        &["run", "tiny.toml", "--target", &by_name, "--ca-cert", ca, "-q"],
        &["conform", "--target", &by_name, "--ca-cert", ca],
        &["fuzz", "--target", &server.url, "--ca-cert", ca, "--cases", "50"],
    ];
    for args in runs {
        let out = harness(args, dir.path());
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {stderr}");
        assert!(stderr.contains("certificate is not valid for this host name"), "{args:?}: {stderr}");
        assert!(stderr.contains("only valid for DnsName(\"example.test\")"), "{args:?}: {stderr}");
        assert!(
            !stderr.contains("pass --ca-cert") && !stderr.contains("CaUsedAsEndEntity"),
            "{args:?}: {stderr}"
        );
        assert_eq!(stderr.matches("TLS handshake").count(), 1, "said once: {args:?}: {stderr}");
    }
}

// ---- conform and fuzz over TLS ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conform_over_tls_passes_every_case_against_the_bundled_server() {
    let sut = SutSpec::Bundled {
        faults: Vec::new(),
        secret: DEFAULT_DEV_SECRET.as_bytes().to_vec(),
        child_exe: None,
        tls: BundledTls::On,
    };
    let plan = ConformPlan::new(sut, Credentials::Secret(DEFAULT_DEV_SECRET.as_bytes().to_vec()));
    let report = conform::run(plan, CancellationToken::new()).await.expect("conform runs");
    let failed: Vec<_> = report.cases.iter().filter(|c| c.verdict == "fail").map(|c| &c.name).collect();
    assert!(report.passed, "failed: {failed:?}");
    assert!(report.summary.total > 400 && report.summary.passed > 400, "{:?}", report.summary);
    let tls = report.tls.expect("the report says the target spoke TLS");
    assert!(!tls.insecure && tls.verification.contains("generated"), "{tls:?}");
}

#[test]
fn conform_over_tls_against_a_child_server_with_pem_files() {
    let dir = tempfile::tempdir().unwrap();
    let out =
        harness(&["conform", "--bundled-tls", "--child-server", "--only", "http.", "--out", "c"], dir.path());
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("child process) over TLS [TLS]"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuzz_over_tls_has_no_findings_against_the_bundled_server() {
    let sut = SutSpec::Bundled {
        faults: Vec::new(),
        secret: DEFAULT_DEV_SECRET.as_bytes().to_vec(),
        child_exe: None,
        tls: BundledTls::On,
    };
    let creds = Credentials::Secret(DEFAULT_DEV_SECRET.as_bytes().to_vec());
    let mut plan = FuzzPlan::new(sut, creds, 9, Stop::Cases(400));
    plan.growth = false;
    let report = fuzz_run::run(plan, CancellationToken::new()).await.expect("fuzz runs");
    assert!(report.passed, "{:#?}", report.findings);
    assert_eq!(report.cases, 400);
    assert!(report.coverage.contains_key("sent:upgrade"), "{:?}", report.coverage);
    assert!(report.tls.is_some());
}
