//! Load that changes over time, against the bundled server: clients that leave on a ramp-down
//! and a spike's clients that come and go are judged exactly by the delivery oracle (nothing
//! owed is lost, nothing is owed after the close was sent).

use std::path::Path;

use openframe_harness::results::model::RunReport;
use openframe_harness::runner::{self, RunOptions};
use openframe_harness::scenario::{self, Overrides};

/// Ramp up, hold, a spike of three times the clients and rate, back, ramp down to nobody while
/// the publisher goes on.
const SPIKE: &str = r#"
name = "stages-probe"
seed = 11

[[stages]]
name = "up"
duration = "1s"
clients = { dashboards = "0..30" }
publishers = { alerts = "100/s" }

[[stages]]
name = "steady"
duration = "1s"

[[stages]]
name = "spike"
duration = "1500ms"
clients = { dashboards = 90 }
publishers = { alerts = "100/s..300/s" }

[[stages]]
name = "back"
duration = "1s"
clients = { dashboards = 30 }
publishers = { alerts = "100/s" }

[[stages]]
name = "down"
duration = "1500ms"
clients = { dashboards = "..0" }

[[stages]]
name = "after"
duration = "1500ms"

[[clients]]
name = "dashboards"
topics = ["alerts"]

[[publishers]]
name = "alerts"
topic = "alerts"

[harness]
drain = "1s"
max_loop_lag = "1s"
"#;

async fn run(text: &str, overrides: &Overrides) -> RunReport {
    let plan = scenario::parse(text, Path::new("probe.toml"), overrides).expect("valid scenario");
    runner::run(plan, RunOptions { quiet: true, ..RunOptions::default() }).await.expect("the run completes")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_oracle_stays_exact_across_a_spike_and_a_ramp_down() {
    let report = run(SPIKE, &Overrides::default()).await;
    let c = report.counters;
    let delivery = [
        c.events_missing,
        c.events_duplicated,
        c.events_out_of_order,
        c.events_after_unsubscribe,
        c.filter_violations,
        c.protocol_violations,
        c.unexpected_closes,
        c.connections_failed,
    ];
    assert_eq!(delivery, [0; 8], "{c:?} {:?}", report.samples);
    // 30 clients, then 60 more for the spike only: each connects once (and the publisher).
    assert!((90..=91).contains(&c.connections_opened), "{c:?}");
    assert!((80..=90).contains(&report.peak_clients), "{}", report.peak_clients);
    // Every event of the ramped schedule: 100 + 100 + (100..300 over 1.5 s) 300 + 100 + 150, and
    // half a second of "after" before the drain.
    assert_eq!(c.events_published, 800, "{c:?}");
    assert!(c.events_expected > 10_000, "{c:?}");
    // The publisher keeps going through the ramp-down and after it, and the spike's clients come
    // for the spike only: the clients that left are owed none of what followed (at most 30 × the
    // 300 outside the spike, 90 × its 300 and 30 × the 200 of the ramp-down and after).
    assert!(c.events_expected <= 30 * 300 + 90 * 300 + 30 * 200, "{c:?}");
    assert_eq!(c.events_delivered, c.events_expected + c.events_uncertain, "{c:?}");

    // Per stage, each event in the stage of its intended time: the schedule's own split.
    let names: Vec<&str> = report.stages.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["up", "steady", "spike", "back", "down", "after"]);
    let published: Vec<u64> = report.stages.iter().map(|s| s.counters.events_published).collect();
    assert_eq!(published, [100, 100, 300, 100, 150, 50]);
    let bounds: Vec<(f64, f64)> = report.stages.iter().map(|s| (s.start_s, s.end_s)).collect();
    assert_eq!(bounds[2], (2.0, 3.5));
    let delivered: u64 = report.stages.iter().map(|s| s.counters.events_delivered).sum();
    assert_eq!(delivered, c.events_delivered);
    let fanout: u64 = report.stages.iter().map(|s| s.latency_us["fanout"].count).sum();
    assert_eq!(fanout, report.latency_us["fanout"].count);
    // The spike's 90 clients receive more of its events than the 30 before and after it.
    let per_event = |i: usize| report.stages[i].counters.events_delivered as f64 / published[i] as f64;
    assert!(per_event(2) > 2.0 * per_event(1), "{} vs {}", per_event(2), per_event(1));
    // Nobody is subscribed after the ramp-down: none of "after"'s events is owed.
    assert_eq!(report.stages[5].counters.events_expected, 0, "{:?}", report.stages[5].counters);
}
