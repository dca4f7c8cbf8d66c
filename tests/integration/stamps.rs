//! Kernel receive timestamps (issue 16 §1): with the harness's own subscriber threads stalled on
//! purpose (`[harness] faults = ["stall=200ms/1300ms"]`), fan-out latency against a server that delays
//! every event by a fixed 10 ms stays that delay when frames are timed by the kernel's stamps,
//! and the run stays trusted; timed when read, the same stalls show up in the latency tail (one
//! 200 ms timer sample in 130 stays under the loop-lag p99 limit, so that run is not flagged).
//!
//! The events come 500 ms apart, so a stall holds at most one frame per socket and the harness
//! has 300 ms after it to read every socket before the next frame arrives: a read that consumes
//! several queued frames gets the stamp of the last one (TCP's rule), and those would all be
//! timed at its arrival (docs/ARCHITECTURE.md, "Kernel receive stamps"). With events 250 ms
//! apart, a harness slowed further by other jobs on a 2-core machine fell that far behind after
//! some stalls (fan-out p99 540 ms: frames timed by the arrival of the frame two later).

use std::path::Path;

use openframe_harness::results::model::RunReport;
use openframe_harness::runner::{self, RunOptions};
use openframe_harness::scenario::{self, Overrides};

const STALLED: &str = r#"
name = "stalled-subscribers"
duration = "7s"
seed = 3

[target]
faults = ["delay=1:10ms"]

[[clients]]
name = "subscribers"
count = 200
topics = ["alerts"]

[[publishers]]
topic = "alerts"
rate = "2/s"
start_after = "500ms"

[harness]
drain = "1s"
timestamps = "TIMESTAMPS"
faults = ["stall=200ms/1300ms"]
"#;

async fn run(timestamps: &str, stalled: bool) -> RunReport {
    let mut text = STALLED.replace("TIMESTAMPS", timestamps);
    if !stalled {
        text = text.replace("faults = [\"stall=200ms/1300ms\"]\n", "");
    }
    run_scenario(&text).await
}

/// Runs a scenario given as text, quietly, against the bundled server.
async fn run_scenario(text: &str) -> RunReport {
    let plan =
        scenario::parse(text, Path::new("scenario.toml"), &Overrides::default()).expect("valid scenario");
    runner::run(plan, RunOptions { quiet: true, ..RunOptions::default() }).await.expect("the run completes")
}

#[test]
fn kernel_stamps_keep_latency_true_through_the_harness_own_stalls() {
    crate::common::timed_alone(stalls_against_calm());
}

async fn stalls_against_calm() {
    // The reference: the same run without stalls.
    let calm = run("kernel", false).await.latency_us["fanout"];
    let kernel = run("kernel", true).await;
    let fanout = kernel.latency_us["fanout"];
    let read_delay = kernel.latency_us["read_delay"];
    assert_eq!(kernel.harness.timestamps, "kernel");
    assert_eq!(kernel.counters.events_missing, 0, "{:?}", kernel.counters);
    assert!(
        kernel.latency_us["loop_lag"].max >= 150_000,
        "the stalls happened: {:?}",
        kernel.latency_us["loop_lag"]
    );
    assert!(read_delay.p99 >= 100_000, "frames waited in the socket through the stalls: {read_delay:?}");
    // The server's 10 ms and what the path adds, as without stalls: never the stalls' 200 ms.
    assert!(fanout.p50 >= 10_000, "{fanout:?}");
    let seen = format!("stalled {fanout:?} against calm {calm:?}, read delay {read_delay:?}");
    assert!(fanout.p50.abs_diff(calm.p50) <= 1_500, "{seen}");
    assert!(fanout.p99.abs_diff(calm.p99) <= 3_000, "{seen}");
    assert!(kernel.valid, "{:?}", kernel.harness.reasons);

    let user = run("user", true).await;
    assert_eq!(user.harness.timestamps, "user");
    assert!(
        user.latency_us["fanout"].p99 >= 100_000,
        "read time includes the stalls: {:?}",
        user.latency_us["fanout"]
    );
}

/// Stalls long enough for the subscribers' receive queues to fill (8 KB events, 20 a second, read
/// a second late): with kernel stamps the frames are still timed right, but the queues pushed back
/// on the server, so the run must be flagged, not trusted.
const BACKED_UP: &str = r#"
name = "backed-up-subscribers"
duration = "6s"
seed = 5

[[clients]]
name = "subscribers"
count = 50
topics = ["alerts"]

[[publishers]]
topic = "alerts"
rate = "20/s"
payload_bytes = 8000
start_after = "500ms"

[harness]
drain = "1s"
timestamps = "kernel"
faults = ["stall=1s/2s"]
"#;

#[test]
fn receive_queues_that_back_up_flag_the_run() {
    crate::common::timed_alone(async {
        let report = run_scenario(BACKED_UP).await;
        eprintln!(
            "backed up: {:?}, read delay {:?}",
            report.harness.reasons, report.latency_us["read_delay"]
        );
        assert_eq!(report.harness.timestamps, "kernel");
        assert!(!report.valid, "queues of a second's 160 KB must flag the run: {:?}", report.harness);
        assert!(
            report
                .harness
                .reasons
                .iter()
                .any(|r| r.contains("receive queues") || r.contains("without a kernel")),
            "{:?}",
            report.harness.reasons
        );
    });
}
