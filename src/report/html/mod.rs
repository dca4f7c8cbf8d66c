//! `report.html`: one self-contained page per run (inline CSS and SVG, no network access
//! needed to view it): the verdict and each gate, the fan-out latency distribution by
//! percentile, values per second, the delivery counters, connect and subscribe latency,
//! protocol violations with samples, what the harness cost, and the scenario and environment;
//! for a capacity search, its result and knee charts right after the gates.
//!
//! The page reads only [`RunReport`], so `report PATH --format html` renders it again from
//! `report.json`. A short inline script checks that the charts drew (see `check.js`); the page
//! does not depend on it.

mod capacity;
mod charts;
mod sections;

pub use capacity::KNEE_CHARTS;

pub use charts::server_charts;

use std::io::{self, Write};

use super::markup::escape;
use crate::results::model::RunReport;

const CSS: &str = include_str!("page.css");
const CHECK_JS: &str = include_str!("check.js");

/// Writes the whole page.
pub fn write_html<W: Write>(w: &mut W, report: &RunReport) -> io::Result<()> {
    let mut page = String::with_capacity(256 * 1024);
    page.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    page.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    page.push_str(&format!(
        "<title>{} — {} — openframe-harness</title>\n",
        escape(&report.scenario),
        sections::verdict_text(report)
    ));
    page.push_str("<style>\n");
    page.push_str(CSS);
    page.push_str("</style>\n</head>\n<body>\n<main>\n");
    sections::header(&mut page, report);
    sections::summary(&mut page, report);
    capacity::section(&mut page, report);
    sections::fanout(&mut page, report);
    sections::stages(&mut page, report);
    sections::timeline(&mut page, report);
    sections::delivery(&mut page, report);
    sections::setup(&mut page, report);
    sections::violations(&mut page, report);
    sections::harness(&mut page, report);
    sections::scenario(&mut page, report);
    sections::footer(&mut page, report);
    page.push_str("</main>\n<pre id=\"render-check\" hidden></pre>\n<script>\n");
    page.push_str(CHECK_JS);
    page.push_str("</script>\n</body>\n</html>\n");
    w.write_all(page.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::histogram::{encode, new_histogram, record, summarize};
    use crate::results::model::{GateResult, Interval, Sample};

    fn sample_report() -> RunReport {
        let mut report = RunReport::empty("smoke <test>");
        report.started_at = "2026-01-01T00:00:00.000Z".into();
        report.duration_s = 3.0;
        for metric in ["fanout", "completion", "connect", "subscribe"] {
            let mut h = new_histogram();
            for v in 1..=2_000u64 {
                record(&mut h, v * 7);
            }
            report.latency_us.insert(metric.into(), summarize(&h));
            report.histograms.insert(metric.into(), encode(&h));
        }
        for t in 1..=3 {
            report.intervals.push(Interval {
                t_s: t as f64,
                clients: 10 * t,
                events_published: 5,
                events_delivered: 50 * t,
                fanout_p50_us: 1_000,
                fanout_p99_us: 3_000,
                fanout_max_us: 4_000,
                ..Interval::default()
            });
        }
        report.gates.push(GateResult {
            name: "counters.events_missing".into(),
            expr: "counters.events_missing == 0".into(),
            observed: "2".into(),
            passed: false,
            default: false,
        });
        report.passed = false;
        report.counters.events_missing = 2;
        report.violations.insert("bad_json".into(), 1);
        report.samples.push(Sample {
            kind: "bad_json".into(),
            detail: "expected value".into(),
            message: "{\"type\":<script>".into(),
            group: "g".into(),
            t_s: 1.5,
        });
        report.scenario_source = "name = \"smoke\"\n# <b>not bold</b>".into();
        report
    }

    fn render(report: &RunReport) -> String {
        let mut out = Vec::new();
        write_html(&mut out, report).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn the_page_holds_every_section_and_chart() {
        let html = render(&sample_report());
        for id in ["summary", "fanout", "timeline", "delivery", "setup", "violations", "harness", "scenario"]
        {
            assert!(html.contains(&format!(r#"<section id="{id}">"#)), "section {id}");
        }
        for id in [
            "fanout-percentiles",
            "setup-percentiles",
            "ts-clients",
            "ts-delivered",
            "ts-published",
            "ts-fanout",
            "ts-errors",
            "ts-loop-lag",
        ] {
            assert!(html.contains(&format!(r#"class="chart" id="{id}""#)), "chart {id}");
        }
        assert!(html.contains("FAILED"));
        assert!(html.contains("counters.events_missing == 0"));
    }

    #[test]
    fn the_page_is_self_contained_and_escapes_what_the_run_saw() {
        let html = render(&sample_report());
        for external in ["http://", "https://", "src=", "@import", "url("] {
            let allowed = "http://www.w3.org/2000/svg";
            assert!(!html.replace(allowed, "").contains(external), "references {external}");
        }
        assert!(html.contains("smoke &lt;test&gt;"));
        assert!(html.contains("&lt;script&gt;"), "a sample's message is text");
        assert!(html.contains("&lt;b&gt;not bold&lt;/b&gt;"));
        assert_eq!(html.matches("<script>").count(), 1, "only the render check");
    }

    #[test]
    fn an_untrusted_run_says_its_gates_were_not_judged() {
        let mut report = sample_report();
        report.valid = false;
        report.harness.reasons.push("the harness's event loop ran 89.5ms late".into());
        let html = render(&report);
        assert!(html.contains("NOT TRUSTWORTHY"));
        assert!(html.contains("89.5ms late"));
        assert!(html.contains("not judged"));
    }

    #[test]
    fn a_capacity_search_draws_its_knee_and_names_its_capacity() {
        use crate::results::model::LatencySummary;
        use crate::results::model::{CapacityReport, CapacityStep};
        let mut report = sample_report();
        let mut capacity = CapacityReport::template();
        capacity.unit = "events/s".into();
        capacity.highest_passing = Some(10.0);
        capacity.highest_passing_deliveries_per_s = Some(2_000.0);
        capacity.first_failing = Some(11.0);
        capacity.failing_gate = Some("latency.fanout.p99 < 100ms".into());
        for (step, offered, p99, passed) in [
            (1, 4.0, 50_000, true),
            (2, 16.0, 1_500_000, false),
            (3, 10.0, 52_000, true),
            (4, 11.0, 330_000, false),
        ] {
            let fanout = LatencySummary { count: 100, p50: p99 / 10, p99, ..LatencySummary::default() };
            capacity.steps.push(CapacityStep {
                step,
                phase: "grow".into(),
                offered,
                achieved: offered,
                deliveries_per_s: (offered * 200.0).min(2_000.0),
                passed,
                valid: true,
                failing_gate: (!passed).then(|| "latency.fanout.p99 < 100ms".into()),
                reasons: Vec::new(),
                started_at: "2026-01-01T00:00:00.000Z".into(),
                duration_s: 5.0,
                latency_us: [("fanout".to_owned(), fanout)].into_iter().collect(),
                counters: Default::default(),
            });
        }
        capacity.top_level_step = Some(2);
        report.capacity = Some(capacity);
        let html = render(&report);
        assert!(html.contains(r#"<section id="capacity">"#) && html.contains(r##"href="#capacity""##));
        for id in KNEE_CHARTS {
            assert!(html.contains(&format!(r#"class="chart" id="{id}""#)), "chart {id}");
        }
        assert!(html.contains("The capacity is 10 events/s (2,000 deliveries/s)"), "the sentence");
        assert!(html.contains("failing steps (latency.fanout.p99 &lt; 100ms)"), "failing steps marked");
        assert!(html.contains("capacity 2000/s"), "the capacity as a line");
        let charts = capacity::knee_charts(&report);
        let failing = &charts[0].series[2];
        let xs: Vec<f64> = failing.points.iter().flatten().map(|p| p.0).collect();
        assert_eq!(xs, [10.0, 11.0, 16.0], "from the knee through the failing steps");
        assert!(
            !render(&sample_report()).contains(r#"id="capacity""#),
            "no capacity section for a plain run"
        );
    }

    #[test]
    fn an_empty_report_still_renders() {
        let html = render(&RunReport::empty("empty"));
        assert!(html.contains("no data recorded"));
        assert!(html.ends_with("</html>\n"));
    }
}
