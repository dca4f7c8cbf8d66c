//! The body of one server-sent event of `GET /events`: the latest snapshot's figures for the
//! page's tiles and its charts as ready-drawn SVG, as one JSON object on one line.
//!
//! Rendered once per snapshot on the endpoint's thread, whatever the number of readers.

use serde_json::{Value, json};

use super::charts::live_charts;
use super::snapshot::{LiveSnapshot, RunState};

/// The JSON of one event (no newline inside: SSE ends an event's data at a newline).
pub fn render(snapshot: &LiveSnapshot) -> String {
    let last = snapshot.seconds.last();
    let (state, report_dir, passed, valid) = match &snapshot.state {
        RunState::Starting => ("starting", None, None, None),
        RunState::Running => ("running", None, None, None),
        RunState::Finished { report_dir, passed, valid } => {
            ("finished", Some(report_dir.as_str()), Some(*passed), Some(*valid))
        }
    };
    let server = last.and_then(|s| s.server.as_ref()).map(|s| {
        json!({"connections": s.connections, "subscriptions": s.subscriptions, "cpu_s": s.cpu_s,
               "rss_bytes": s.rss_bytes, "events_delivered": s.events_delivered,
               "processes": s.processes.len().max(1)})
    });
    let charts: Vec<Value> =
        live_charts(&snapshot.seconds).iter().map(|c| json!({"id": c.id, "svg": c.render()})).collect();
    json!({
        "scenario": snapshot.scenario,
        "run_id": snapshot.run_id,
        "shard": snapshot.shard,
        "state": state,
        "report_dir": report_dir,
        "passed": passed,
        "valid": valid,
        "verdict": snapshot.verdict,
        "failing": snapshot.failing,
        "stage": snapshot.stage,
        "step": snapshot.step,
        "elapsed_s": snapshot.elapsed_s,
        "clients": snapshot.clients_total(),
        "clients_by_group": snapshot.clients.iter().map(|(g, n)| json!({"group": g, "clients": n})).collect::<Vec<_>>(),
        "delivered_per_s": last.map(|s| s.delivered),
        "fanout_p50_us": last.and_then(|s| s.fanout_p50_us),
        "fanout_p99_us": last.and_then(|s| s.fanout_p99_us),
        "loop_lag_us": last.and_then(|s| s.loop_lag_us),
        "loop_lag_max_us": snapshot.loop_lag_max_us,
        "events_delivered": snapshot.counter("events_delivered"),
        "missing": snapshot.counter("events_missing"),
        "duplicated": snapshot.counter("events_duplicated"),
        "out_of_order": snapshot.counter("events_out_of_order"),
        "server": server,
        "charts": charts,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::snapshot::LiveSecond;
    use std::sync::Arc;

    #[test]
    fn one_line_of_json_with_tiles_and_charts() {
        let snapshot = LiveSnapshot {
            scenario: "fanout".into(),
            state: RunState::Finished { report_dir: "reports/x".into(), passed: true, valid: true },
            counters: vec![("events_missing", 2)],
            clients: vec![("a".into(), 3), ("b".into(), 4)],
            seconds: Arc::new(vec![LiveSecond { t_s: 1.0, delivered: 90, ..LiveSecond::default() }]),
            ..LiveSnapshot::default()
        };
        let text = render(&snapshot);
        assert!(!text.contains('\n'));
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["state"], "finished");
        assert_eq!(value["report_dir"], "reports/x");
        assert_eq!(value["clients"], 7);
        assert_eq!(value["missing"], 2);
        assert_eq!(value["delivered_per_s"], 90);
        assert!(value["charts"][0]["svg"].as_str().unwrap().starts_with("<svg"));
    }
}
