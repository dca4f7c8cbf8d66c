//! The capacity section of `report.html`, for a report with `capacity`: the search's sentence,
//! the knee (fan-out p50 and p99, and deliveries per second, against the offered load, failing
//! steps marked, the gates and the capacity as lines) and a row per step.
//!
//! Charts go through the report's one renderer (`svg::Chart`); this module only picks the
//! points. It must not judge anything: verdicts come from the report.

use std::fmt::Write;

use super::charts::fanout_gate_markers;
use super::sections::figure;
use crate::report::gates::Gate;
use crate::report::markup::escape;
use crate::report::numbers::{format_count, format_int, format_latency, trim_number};
use crate::report::summary;
use crate::report::svg::{ALERT, Axis, AxisKind, Chart, Marker, PALETTE, Series, Size, Unit};
use crate::results::model::RunReport;
use crate::results::model::{CapacityReport, CapacityStep};

/// The ids of the knee charts, in page order.
pub const KNEE_CHARTS: [&str; 2] = ["capacity-latency", "capacity-deliveries"];

/// The knee charts of a capacity search; none for any other report.
pub fn knee_charts(report: &RunReport) -> Vec<Chart> {
    let Some(capacity) = &report.capacity else { return Vec::new() };
    let mut steps: Vec<&CapacityStep> = capacity.steps.iter().collect();
    steps.sort_by(|a, b| a.offered.total_cmp(&b.offered));
    let x = Axis {
        label: format!("offered load ({})", capacity.unit),
        kind: AxisKind::Linear,
        unit: Unit::Count,
    };
    let fanout = |s: &CapacityStep, p99: bool| {
        let fanout = s.latency_us.get("fanout").filter(|f| f.count > 0)?;
        Some((s.offered, (if p99 { fanout.p99 } else { fanout.p50 }) as f64))
    };
    let mut latency = vec![
        series("fan-out p50", PALETTE[2], steps.iter().map(|s| fanout(s, false)).collect()),
        series("fan-out p99", PALETTE[0], steps.iter().map(|s| fanout(s, true)).collect()),
    ];
    latency.extend(verdict_series(capacity, &steps, |s| fanout(s, true)));
    let markers = fanout_gate_markers(report, &latency, &["p50", "p99"]);
    // A step that was not run (preflight) delivered nothing to draw.
    let delivered = |s: &CapacityStep| (!s.started_at.is_empty()).then_some((s.offered, s.deliveries_per_s));
    let mut deliveries =
        vec![series("delivered/s", PALETTE[2], steps.iter().map(|s| delivered(s)).collect())];
    deliveries.extend(verdict_series(capacity, &steps, delivered));
    vec![
        Chart {
            id: KNEE_CHARTS[0].into(),
            title: "Fan-out latency against offered load".into(),
            x: x.clone(),
            y: Axis { label: "latency (log scale)".into(), kind: AxisKind::Log, unit: Unit::Micros },
            series: latency,
            markers,
            boundaries: Vec::new(),
            size: Size::Half,
        },
        Chart {
            id: KNEE_CHARTS[1].into(),
            title: "Deliveries per second against offered load".into(),
            x,
            y: Axis { label: "deliveries/s".into(), kind: AxisKind::Linear, unit: Unit::Count },
            series: deliveries,
            markers: capacity_markers(report, capacity),
            boundaries: Vec::new(),
            size: Size::Half,
        },
    ]
}

fn series(label: &str, color: &'static str, points: Vec<Option<(f64, f64)>>) -> Series {
    Series { label: label.into(), color, dashed: false, dots: true, points }
}

/// The failing steps (from the knee, the highest passing step below them, on), and the
/// untrusted ones, each as a series of its own drawn over the line through every step.
fn verdict_series(
    capacity: &CapacityReport,
    steps: &[&CapacityStep],
    value: impl Fn(&CapacityStep) -> Option<(f64, f64)>,
) -> Vec<Series> {
    let lowest_failing = steps.iter().find(|s| s.valid && !s.passed).map(|s| s.offered);
    let knee = lowest_failing
        .and_then(|fail| steps.iter().rev().find(|s| s.passed && s.offered < fail))
        .and_then(|s| value(s));
    let failing: Vec<Option<(f64, f64)>> = knee
        .into_iter()
        .chain(steps.iter().filter(|s| s.valid && !s.passed).filter_map(|s| value(s)))
        .map(Some)
        .collect();
    let untrusted: Vec<Option<(f64, f64)>> =
        steps.iter().filter(|s| !s.valid).filter_map(|s| value(s)).map(Some).collect();
    let mut out = Vec::new();
    if failing.iter().any(Option::is_some) && lowest_failing.is_some() {
        let label = match &capacity.failing_gate {
            Some(gate) => format!("failing steps ({gate})"),
            None => "failing steps".to_owned(),
        };
        out.push(Series { label, color: ALERT, dashed: true, dots: true, points: failing });
    }
    if !untrusted.is_empty() {
        out.push(Series {
            label: "untrusted steps".into(),
            color: PALETTE[4],
            dashed: true,
            dots: true,
            points: untrusted,
        });
    }
    out
}

/// The capacity found, and the thresholds of `capacity.highest_passing_deliveries_per_s` gates.
fn capacity_markers(report: &RunReport, capacity: &CapacityReport) -> Vec<Marker> {
    let mut markers: Vec<Marker> = capacity
        .highest_passing_deliveries_per_s
        .map(|d| Marker { label: format!("capacity {}/s", format_count(d)), y: d, color: PALETTE[0] })
        .into_iter()
        .collect();
    for result in report.gates.iter().filter(|g| g.name == "capacity.highest_passing_deliveries_per_s") {
        let Some(condition) = result.expr.strip_prefix(&result.name) else { continue };
        let Ok(gate) = Gate::parse(&result.name, condition, &[]) else { continue };
        markers.push(Marker {
            label: format!("gate{}", &gate.expr()[gate.metric.len()..]),
            y: gate.threshold,
            color: if result.passed { "#4b5563" } else { ALERT },
        });
    }
    markers
}

/// The section: sentence, knee charts, steps.
pub fn section(page: &mut String, report: &RunReport) {
    let Some(capacity) = &report.capacity else { return };
    page.push_str(r#"<section id="capacity"><h2>Capacity</h2>"#);
    let _ = write!(page, "<p><strong>{}</strong></p>", escape(&summary::capacity(capacity)));
    let _ = write!(
        page,
        r#"<p class="muted">Varied <code>{}</code> from {} to {} {} (×{} up, then bisection to {} %); each step a fresh run: its clients connect, its load runs {} s of warm-up (left out of its latency) and {} s measured. The rest of this page shows {}.</p>"#,
        escape(&capacity.vary),
        trim_number(capacity.from, 2),
        trim_number(capacity.to, 2),
        escape(&capacity.unit),
        trim_number(capacity.growth, 2),
        trim_number(capacity.resolution * 100.0, 2),
        trim_number(capacity.warmup_s, 2),
        trim_number(capacity.step_duration_s, 2),
        match capacity.top_level_step.and_then(|i| capacity.steps.get(i)) {
            Some(step) =>
                format!("step {} ({} {})", step.step, trim_number(step.offered, 2), escape(&capacity.unit)),
            None => "no step".to_owned(),
        }
    );
    page.push_str(r#"<div class="charts">"#);
    for chart in knee_charts(report) {
        let caption = if chart.id == KNEE_CHARTS[0] {
            "Each step's fan-out latency (p50 and p99, warm-up excluded) at the load it offered; the red dashed \
             line runs from the knee (the highest passing step) through the failing steps. Dotted lines: \
             fan-out latency gates."
        } else {
            "Events received per second in each step's measured window: it follows the offered load while the \
             target keeps up, and flattens where the target runs out of capacity. Dotted lines: the capacity \
             found and capacity gates."
        };
        figure(page, &chart, caption, false);
    }
    page.push_str("</div>");
    page.push_str(concat!(
        r#"<div class="scroll"><table><tr><th class="n">step</th><th></th><th class="n">offered</th>"#,
        r#"<th class="n">achieved</th><th class="n">deliveries/s</th><th class="n">fan-out p50</th>"#,
        r#"<th class="n">p99</th><th class="n">missing</th><th>verdict</th></tr>"#
    ));
    for s in &capacity.steps {
        let fanout = s.latency_us.get("fanout").copied().unwrap_or_default();
        let (class, verdict) = if !s.valid {
            ("skip", format!("not trustworthy: {}", s.reasons.join("; ")))
        } else if s.passed {
            ("pass", "✓ pass".to_owned())
        } else {
            ("fail", format!("✗ FAIL {}", s.failing_gate.as_deref().unwrap_or_default()))
        };
        let _ = write!(
            page,
            r#"<tr{}><td class="n">{}</td><td>{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td><td class="{class}">{}</td></tr>"#,
            if class == "fail" { r#" class="bad""# } else { "" },
            s.step,
            escape(&s.phase),
            trim_number(s.offered, 2),
            trim_number(s.achieved, 2),
            format_count(s.deliveries_per_s),
            format_latency(fanout.p50 as f64),
            format_latency(fanout.p99 as f64),
            format_int(s.counters.events_missing),
            escape(&verdict)
        );
    }
    page.push_str("</table></div></section>\n");
}
