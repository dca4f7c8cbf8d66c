//! The charts of `report.html`, built from a report: latency by percentile (from the whole-run
//! HdrHistograms) and values per second (from the intervals).

use crate::metrics::histogram::{Latency, decode};
use crate::report::gates::Gate;
use crate::report::svg::{ALERT, Axis, AxisKind, Boundary, Chart, Marker, PALETTE, Series, Size, Unit};
use crate::results::model::{Interval, RunReport};
use crate::results::server_sample::ServerSample;

/// Fan-out latency by percentile: every delivery, and each event's last delivery, with the
/// thresholds of the run's fan-out latency gates.
pub fn fanout_percentiles(report: &RunReport) -> Chart {
    let series: Vec<Series> = [
        ("fanout", "every delivery (fanout)", PALETTE[0], false),
        ("completion", "last subscriber per event (completion)", PALETTE[1], true),
    ]
    .into_iter()
    .filter_map(|(metric, label, color, dashed)| percentile_series(report, metric, label, color, dashed))
    .collect();
    let markers = fanout_gate_markers(report, &series, &["p50", "p90", "p99", "p999", "max"]);
    Chart {
        id: "fanout-percentiles".into(),
        title: "Fan-out latency by percentile".into(),
        x: percentile_axis(),
        y: Axis { label: "latency".into(), kind: AxisKind::Linear, unit: Unit::Micros },
        series,
        markers,
        boundaries: Vec::new(),
        size: Size::Wide,
    }
}

/// Connect, subscribe and publish-ack latency by percentile, on a log scale (they span
/// from microseconds to the ramp's queueing).
pub fn setup_percentiles(report: &RunReport) -> Chart {
    let series = [
        ("connect", "connect → connection_established", PALETTE[0], false),
        ("subscribe", "subscribe → subscription_confirmed", PALETTE[2], false),
        ("publish_ack", "publish → ack", PALETTE[3], true),
    ]
    .into_iter()
    .filter_map(|(metric, label, color, dashed)| percentile_series(report, metric, label, color, dashed))
    .collect();
    Chart {
        id: "setup-percentiles".into(),
        title: "Connect, subscribe and publish-ack latency by percentile".into(),
        x: percentile_axis(),
        y: Axis { label: "latency (log scale)".into(), kind: AxisKind::Log, unit: Unit::Micros },
        series,
        markers: Vec::new(),
        boundaries: Vec::new(),
        size: Size::Wide,
    }
}

/// The per-second charts, in page order.
pub fn time_series(report: &RunReport) -> Vec<Chart> {
    let count = |label: &str| Axis { label: label.into(), kind: AxisKind::Linear, unit: Unit::Count };
    let latency = Axis { label: "latency".into(), kind: AxisKind::Linear, unit: Unit::Micros };
    let line = |label: &str, color: &'static str, dashed: bool, points| Series {
        label: label.into(),
        color,
        dashed,
        dots: true,
        points,
    };
    let has_fanout = |i: &Interval| i.histograms.contains_key("fanout") || i.fanout_max_us > 0;
    let intervals = &report.intervals;
    let mut fanout_series = vec![
        line(
            "p50",
            PALETTE[2],
            false,
            per_second(intervals, |i| has_fanout(i).then_some(i.fanout_p50_us as f64)),
        ),
        line(
            "p99",
            PALETTE[0],
            false,
            per_second(intervals, |i| has_fanout(i).then_some(i.fanout_p99_us as f64)),
        ),
        line(
            "max",
            PALETTE[5],
            true,
            per_second(intervals, |i| has_fanout(i).then_some(i.fanout_max_us as f64)),
        ),
    ];
    let fanout_markers = fanout_gate_markers(report, &fanout_series, &["p50", "p99"]);
    // The max line can dwarf the others; keep it only when it stays within 4× of p99.
    let p99_top = max_value(&fanout_series[1..2]);
    if max_value(&fanout_series[2..]) > 4.0 * p99_top && p99_top > 0.0 {
        fanout_series.pop();
    }
    let mut charts = vec![
        Chart {
            id: "ts-clients".into(),
            title: "Clients connected, and connections opened per second".into(),
            x: seconds_axis(),
            y: count("clients"),
            series: vec![
                line(
                    "clients connected",
                    PALETTE[0],
                    false,
                    per_second(intervals, |i| Some(i.clients as f64)),
                ),
                line("connections opened/s", PALETTE[4], true, rate(intervals, |i| i.connections_opened)),
            ],
            markers: Vec::new(),
            boundaries: Vec::new(),
            size: Size::Half,
        },
        Chart {
            id: "ts-delivered".into(),
            title: "Events delivered per second".into(),
            x: seconds_axis(),
            y: count("events/s"),
            series: vec![line("delivered/s", PALETTE[2], false, rate(intervals, |i| i.events_delivered))],
            markers: Vec::new(),
            boundaries: Vec::new(),
            size: Size::Half,
        },
        Chart {
            id: "ts-published".into(),
            title: "Events published per second".into(),
            x: seconds_axis(),
            y: count("events/s"),
            series: vec![line("published/s", PALETTE[1], false, rate(intervals, |i| i.events_published))],
            markers: Vec::new(),
            boundaries: Vec::new(),
            size: Size::Half,
        },
        Chart {
            id: "ts-fanout".into(),
            title: "Fan-out latency per second".into(),
            x: seconds_axis(),
            y: latency.clone(),
            series: fanout_series,
            markers: fanout_markers,
            boundaries: Vec::new(),
            size: Size::Half,
        },
        Chart {
            id: "ts-errors".into(),
            title: "Errors per second".into(),
            x: seconds_axis(),
            y: count("errors/s"),
            series: vec![line("errors/s", ALERT, false, rate(intervals, |i| i.errors))],
            markers: Vec::new(),
            boundaries: Vec::new(),
            size: Size::Half,
        },
        Chart {
            id: "ts-loop-lag".into(),
            title: "Harness event-loop lag (p99) per second".into(),
            x: seconds_axis(),
            y: latency,
            series: vec![line(
                "loop lag p99",
                PALETTE[3],
                false,
                per_second(intervals, |i| interval_quantile(i, "loop_lag", 0.99)),
            )],
            markers: Vec::new(),
            boundaries: Vec::new(),
            size: Size::Half,
        },
    ];
    if intervals.iter().any(|i| i.server.is_some()) {
        let samples: Vec<(f64, Option<&ServerSample>)> =
            intervals.iter().map(|i| (i.t_s, i.server.as_ref())).collect();
        charts.extend(server_charts(&samples, "ts-"));
    }
    let boundaries = stage_boundaries(report);
    for chart in &mut charts {
        chart.boundaries.clone_from(&boundaries);
    }
    charts
}

/// Where each stage begins, for the per-second charts (none for a run of one stage).
pub fn stage_boundaries(report: &RunReport) -> Vec<Boundary> {
    if report.stages.len() < 2 {
        return Vec::new();
    }
    report.stages.iter().map(|s| Boundary { label: s.name.clone(), x: s.start_s }).collect()
}

/// The target's own figures per second, from the samples a run scraped (`intervals[].server`):
/// CPU (cores busy), resident memory, connections and deliveries queued per second.
/// `id_prefix` keeps the ids of one page unique; the live page draws the same charts.
pub fn server_charts(samples: &[(f64, Option<&ServerSample>)], id_prefix: &str) -> Vec<Chart> {
    let line = |label: &str, color: &'static str, points| Series {
        label: label.into(),
        color,
        dashed: false,
        dots: false,
        points,
    };
    let chart = |id: &str, title: &str, unit: &str, series| Chart {
        id: format!("{id_prefix}{id}"),
        title: title.into(),
        x: seconds_axis(),
        y: Axis { label: unit.into(), kind: AxisKind::Linear, unit: Unit::Count },
        series,
        markers: Vec::new(),
        boundaries: Vec::new(),
        size: Size::Half,
    };
    let gauge = |value: &dyn Fn(&ServerSample) -> f64| -> Vec<Option<(f64, f64)>> {
        samples.iter().map(|(t, s)| s.map(|s| (*t, value(s)))).collect()
    };
    vec![
        chart(
            "server-cpu",
            "Server CPU (cores busy)",
            "cores",
            vec![line("server CPU", PALETTE[4], server_rate(samples, |s| s.cpu_s))],
        ),
        chart(
            "server-memory",
            "Server resident memory (MiB)",
            "MiB",
            vec![line("server RSS", PALETTE[5], gauge(&|s| s.rss_bytes as f64 / (1024.0 * 1024.0)))],
        ),
        chart(
            "server-connections",
            "Server: connections open",
            "connections",
            vec![line("server connections", PALETTE[0], gauge(&|s| s.connections as f64))],
        ),
        chart(
            "server-delivered",
            "Server: deliveries queued per second",
            "events/s",
            vec![line(
                "server deliveries/s",
                PALETTE[2],
                server_rate(samples, |s| s.events_delivered as f64),
            )],
        ),
    ]
}

/// The per-second rate of a server counter between consecutive samples (a gap where either is
/// missing, or where the counter went back: a restarted process).
fn server_rate(
    samples: &[(f64, Option<&ServerSample>)],
    value: impl Fn(&ServerSample) -> f64,
) -> Vec<Option<(f64, f64)>> {
    let mut previous: Option<(f64, f64)> = None;
    samples
        .iter()
        .map(|(t, sample)| {
            let current = sample.map(|s| (*t, value(s)));
            let point = match (previous, current) {
                (Some((t0, v0)), Some((t1, v1))) if t1 > t0 && v1 >= v0 => Some((t1, (v1 - v0) / (t1 - t0))),
                _ => None,
            };
            previous = current;
            point
        })
        .collect()
}

/// Points (number of nines, latency µs) of `metric`'s whole-run histogram, or of its summary
/// when the report carries no histogram for it; `None` when nothing was recorded.
fn percentile_series(
    report: &RunReport,
    metric: &str,
    label: &str,
    color: &'static str,
    dashed: bool,
) -> Option<Series> {
    let summary = report.latency_us.get(metric).filter(|s| s.count > 0)?;
    let histogram = report.histograms.get(metric).and_then(|h| decode(h).ok()).filter(|h| !h.is_empty());
    let points = match histogram {
        Some(h) => histogram_points(&h),
        None => {
            let top = (summary.count as f64).log10().max(3.0);
            [(0.0, summary.min), (0.5f64.log10().abs(), summary.p50), (1.0, summary.p90)]
                .into_iter()
                .chain([(2.0, summary.p99), (3.0, summary.p999), (top, summary.max)])
                .map(|(x, v)| (x, v as f64))
                .collect()
        }
    };
    Some(Series {
        label: label.into(),
        color,
        dashed,
        dots: false,
        points: points.into_iter().map(Some).collect(),
    })
}

/// The percentile distribution as HdrHistogram prints it (5 steps per halving of the
/// remaining distance to 100 %), with levels as numbers of nines. Levels beyond
/// `1 - 1/count` have no samples to tell them apart, so they are drawn at that level.
pub fn histogram_points(histogram: &Latency) -> Vec<(f64, f64)> {
    let resolution = (histogram.len() as f64).log10();
    let mut points: Vec<(f64, f64)> = Vec::new();
    for step in histogram.iter_quantiles(5) {
        let q = step.quantile_iterated_to();
        let nines = if q >= 1.0 { resolution } else { (-(1.0 - q).log10()).min(resolution) };
        let point = (nines, step.value_iterated_to() as f64);
        if points.last() != Some(&point) {
            points.push(point);
        }
    }
    points
}

/// Horizontal markers for the run's gates on fan-out latency statistics in `stats`, kept when
/// they lie near the data (a threshold far above it would flatten the chart).
pub(super) fn fanout_gate_markers(report: &RunReport, series: &[Series], stats: &[&str]) -> Vec<Marker> {
    let top = max_value(series);
    let groups: Vec<&str> = report.groups.iter().map(|g| g.name.as_str()).collect();
    let mut markers = Vec::new();
    for result in &report.gates {
        let parts: Vec<&str> = result.name.split('.').collect();
        let (group, stat) = match parts.as_slice() {
            ["latency", "fanout", stat] => (None, *stat),
            ["groups", group, "latency", "fanout", stat] => (Some(*group), *stat),
            _ => continue,
        };
        let Some(condition) = result.expr.strip_prefix(&result.name) else { continue };
        let Ok(gate) = Gate::parse(&result.name, condition, &groups) else { continue };
        if !stats.contains(&stat) || top <= 0.0 || gate.threshold > 4.0 * top {
            continue;
        }
        let who = group.map_or(String::new(), |g| format!(" ({g})"));
        markers.push(Marker {
            label: format!("gate {stat}{who}{}", &gate.expr()[gate.metric.len()..]),
            y: gate.threshold,
            color: if result.passed { "#4b5563" } else { ALERT },
        });
    }
    markers
}

fn percentile_axis() -> Axis {
    Axis { label: "percentile".into(), kind: AxisKind::Nines, unit: Unit::Nines }
}

fn seconds_axis() -> Axis {
    Axis { label: "seconds since start".into(), kind: AxisKind::Linear, unit: Unit::Seconds }
}

/// One point per interval, at its end.
fn per_second(intervals: &[Interval], value: impl Fn(&Interval) -> Option<f64>) -> Vec<Option<(f64, f64)>> {
    intervals.iter().map(|i| value(i).map(|v| (i.t_s, v))).collect()
}

/// A count per interval divided by the interval's length.
fn rate(intervals: &[Interval], count: impl Fn(&Interval) -> u64) -> Vec<Option<(f64, f64)>> {
    let mut previous_end = 0.0;
    intervals
        .iter()
        .map(|i| {
            let length = i.t_s - previous_end;
            previous_end = i.t_s;
            (length > 0.0).then(|| (i.t_s, count(i) as f64 / length))
        })
        .collect()
}

/// A quantile of one interval's histogram of `metric`, when it has one.
fn interval_quantile(interval: &Interval, metric: &str, quantile: f64) -> Option<f64> {
    let histogram = decode(interval.histograms.get(metric)?).ok()?;
    (!histogram.is_empty()).then(|| histogram.value_at_quantile(quantile) as f64)
}

fn max_value(series: &[Series]) -> f64 {
    series.iter().flat_map(|s| s.points.iter().flatten()).map(|p| p.1).fold(0.0, f64::max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::histogram::{encode, new_histogram, record};
    use crate::results::model::GateResult;

    fn report_with_fanout(values: impl IntoIterator<Item = u64>) -> RunReport {
        let mut report = RunReport::empty("x");
        let mut h = new_histogram();
        for v in values {
            record(&mut h, v);
        }
        report.latency_us.insert("fanout".into(), crate::metrics::histogram::summarize(&h));
        report.histograms.insert("fanout".into(), encode(&h));
        report
    }

    #[test]
    fn percentile_points_rise_and_end_at_the_histograms_resolution() {
        let mut h = new_histogram();
        for v in 1..=10_000u64 {
            record(&mut h, v);
        }
        let points = histogram_points(&h);
        assert!(points.len() > 20, "{}", points.len());
        assert!(points.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1), "monotonic");
        let last = points.last().unwrap();
        assert!((last.0 - 4.0).abs() < 1e-9, "10,000 samples resolve 4 nines: {last:?}");
        assert!((last.1 - 10_000.0).abs() <= 10.0, "ends at the max: {last:?}");
        let p90 = points.iter().find(|p| (p.0 - 1.0).abs() < 0.05).unwrap();
        assert!((p90.1 - 9_000.0).abs() < 100.0, "{p90:?}");
    }

    #[test]
    fn the_fanout_chart_draws_both_metrics_and_the_gate() {
        let mut report = report_with_fanout((1..=1000).map(|i| i * 50));
        report.gates.push(GateResult {
            name: "latency.fanout.p99".into(),
            expr: "latency.fanout.p99 < 60ms".into(),
            observed: "49.5ms".into(),
            passed: true,
            default: false,
        });
        let chart = fanout_percentiles(&report);
        assert_eq!(chart.series.len(), 1, "no completion histogram, no completion line");
        assert_eq!(chart.markers.len(), 1);
        assert_eq!(chart.markers[0].label, "gate p99 < 60ms");
        assert_eq!(chart.markers[0].y, 60_000.0);
        report.gates[0].expr = "latency.fanout.p99 < 10s".into();
        assert!(fanout_percentiles(&report).markers.is_empty(), "far above the data");
    }

    #[test]
    fn without_a_histogram_the_summary_is_drawn() {
        let mut report = report_with_fanout([1_000, 2_000, 3_000]);
        report.histograms.clear();
        let chart = fanout_percentiles(&report);
        let points: Vec<(f64, f64)> = chart.series[0].points.iter().flatten().copied().collect();
        assert_eq!(points.len(), 6);
        assert_eq!(points.last().unwrap().1, report.latency_us["fanout"].max as f64);
        assert_eq!(points[2], (1.0, report.latency_us["fanout"].p90 as f64));
    }

    #[test]
    fn server_charts_appear_with_server_samples_and_rates_come_from_consecutive_ones() {
        let a = ServerSample { cpu_s: 1.0, events_delivered: 100, ..ServerSample::default() };
        let b = ServerSample { cpu_s: 1.5, events_delivered: 300, ..ServerSample::default() };
        let samples = [(1.0, Some(&a)), (2.0, Some(&b)), (3.0, None), (4.0, Some(&a))];
        assert_eq!(server_rate(&samples, |s| s.cpu_s), vec![None, Some((2.0, 0.5)), None, None]);
        let mut report = RunReport::empty("x");
        for (t, server) in [(1.0, Some(a.clone())), (2.0, Some(b.clone()))] {
            report.intervals.push(Interval { t_s: t, server, ..Interval::default() });
        }
        let ids: Vec<String> = time_series(&report).into_iter().map(|c| c.id).collect();
        for id in ["ts-server-cpu", "ts-server-memory", "ts-server-connections", "ts-server-delivered"] {
            assert!(ids.contains(&id.to_owned()), "{id} in {ids:?}");
        }
        report.intervals.iter_mut().for_each(|i| i.server = None);
        assert!(!time_series(&report).iter().any(|c| c.id.contains("server")));
    }

    #[test]
    fn rates_divide_by_the_interval_length_and_latency_has_gaps_without_deliveries() {
        let mut report = RunReport::empty("x");
        for (t, delivered, p99) in [(1.0, 0, 0), (2.0, 500, 7_000), (2.5, 100, 9_000)] {
            report.intervals.push(Interval {
                t_s: t,
                events_delivered: delivered,
                fanout_p99_us: p99,
                fanout_max_us: p99,
                ..Interval::default()
            });
        }
        let charts = time_series(&report);
        let delivered = &charts.iter().find(|c| c.id == "ts-delivered").unwrap().series[0].points;
        assert_eq!(delivered, &[Some((1.0, 0.0)), Some((2.0, 500.0)), Some((2.5, 200.0))]);
        let fanout = &charts.iter().find(|c| c.id == "ts-fanout").unwrap().series[1].points;
        assert_eq!(fanout, &[None, Some((2.0, 7_000.0)), Some((2.5, 9_000.0))]);
        let ids: Vec<&str> = charts.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(
            ids,
            ["ts-clients", "ts-delivered", "ts-published", "ts-fanout", "ts-errors", "ts-loop-lag"]
        );
    }
}
