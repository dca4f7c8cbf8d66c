//! Every connection the harness holds keeps reading for as long as it is open: against a server
//! that pings every 200 ms and closes a connection after two unanswered pings (PROTOCOL.md §1),
//! a fuzz run, a conformance run and a short `run` lose no connection. (A connection that read
//! only when its holder asked — a canary publisher that only sends, a fuzz executor's kept
//! connection between cases — is closed within 600 ms there.)

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use openframe_harness::conform::{self, ConformPlan};
use openframe_harness::fuzz::run::{self as fuzz_run, FuzzPlan, Stop};
use openframe_harness::probe::{Credentials, SutSpec, Target};
use openframe_harness::protocol::jwt::DEFAULT_DEV_SECRET;
use openframe_harness::runner::{self, RunOptions};
use openframe_harness::scenario::{self, Overrides};
use openframe_harness::server::ServerConfig;
use tokio_util::sync::CancellationToken;

use crate::common::TestServer;

const PING: Duration = Duration::from_millis(200);
const HANDSHAKE: Duration = Duration::from_secs(2);

/// The bundled server's configuration (as `conform` and `fuzz` start it), pinging every 200 ms.
async fn pinging_server() -> TestServer {
    TestServer::spawn_with(ServerConfig {
        jwt_secret: DEFAULT_DEV_SECRET.as_bytes().to_vec(),
        handshake_timeout: HANDSHAKE,
        ping_interval: PING,
        ..ServerConfig::default()
    })
    .await
}

fn external(server: &TestServer) -> (SutSpec, Credentials) {
    let target = Target::parse(&server.url(), None).expect("a ws:// URL");
    (SutSpec::External(target), Credentials::Secret(DEFAULT_DEV_SECRET.as_bytes().to_vec()))
}

/// Connections the server closed because they answered no ping.
fn ping_timeouts(server: &TestServer) -> u64 {
    server.handle.metrics().ping_timeouts.load(Ordering::Relaxed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fuzz_run_keeps_every_connection_reading_against_a_server_pinging_every_200ms() {
    let server = pinging_server().await;
    let (sut, creds) = external(&server);
    let mut plan = FuzzPlan::new(sut, creds, 21, Stop::After(Duration::from_secs(4)));
    plan.answer = Duration::from_secs(1);
    plan.growth = false;
    let report = fuzz_run::run(plan, CancellationToken::new()).await.expect("fuzz runs");
    let canaries = report.canaries.as_ref().expect("canaries ran");
    assert!(canaries.published > 100 && canaries.received > 0, "{canaries:?}");
    assert!(canaries.damage.is_empty(), "{canaries:?}");
    assert!(report.passed, "{:#?}", report.findings);
    assert_eq!(ping_timeouts(&server), 0);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conform_run_keeps_every_connection_reading_against_a_server_pinging_every_200ms() {
    let server = pinging_server().await;
    let (sut, creds) = external(&server);
    let mut plan = ConformPlan::new(sut, creds);
    plan.handshake_timeout = HANDSHAKE;
    let report = conform::run(plan, CancellationToken::new()).await.expect("conform runs");
    let failed: Vec<(&str, Option<&str>)> = report
        .cases
        .iter()
        .filter(|c| c.verdict == "fail")
        .map(|c| (c.name.as_str(), c.received.as_deref()))
        .collect();
    assert!(report.passed, "{failed:#?}");
    assert_eq!(ping_timeouts(&server), 0);
    server.shutdown().await;
}

/// Subscribers that churn, a WebSocket publisher from the start and one that starts late.
const SCENARIO: &str = r#"
name = "pings"
duration = "3s"
seed = 9
target = "URL"

[[clients]]
name = "all"
count = 10
topics = ["alerts"]

[[clients]]
name = "churners"
count = 5
topics = ["alerts"]
churn = { resubscribe_every = "300ms..500ms", resubscribe_pause = "250ms" }

[[publishers]]
topic = "alerts"
rate = "50/s"

[[publishers]]
topic = "alerts"
rate = "20/s"
start_after = "1500ms"

[harness]
drain = "1s"
max_loop_lag = "1s"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_keeps_every_connection_reading_against_a_server_pinging_every_200ms() {
    let server = pinging_server().await;
    let text = SCENARIO.replace("URL", &server.url());
    let overrides = Overrides { jwt_secret: Some(DEFAULT_DEV_SECRET.into()), ..Overrides::default() };
    let plan = scenario::parse(&text, Path::new("pings.toml"), &overrides).expect("valid scenario");
    let report = runner::run(plan, RunOptions { quiet: true, ..RunOptions::default() })
        .await
        .expect("the run completes");
    let c = report.counters;
    assert!(c.events_published >= 50 && c.publish_acks == c.events_published, "{c:?}");
    assert!(c.resubscribes > 5 && c.events_delivered > 500, "{c:?}");
    assert_eq!(
        (c.unexpected_closes, c.connections_failed, c.events_missing),
        (0, 0, 0),
        "{c:?} {:?}",
        report.samples
    );
    assert_eq!(ping_timeouts(&server), 0);
    server.shutdown().await;
}
