//! The live page's charts, drawn on the endpoint's thread each second with the report's own
//! SVG renderer (`report::svg`), so the live page and `report.html` look like one product.
//!
//! The server's charts are `report.html`'s own ([`server_charts`]), drawn from the samples
//! the run scraped.

use super::snapshot::LiveSecond;
use crate::report::html::server_charts;
use crate::report::svg::{Axis, AxisKind, Chart, PALETTE, Series, Size, Unit};
use crate::results::server_sample::ServerSample;

/// The page shows at most this many of the latest seconds.
pub const WINDOW_S: usize = 600;

/// Every chart of the live page, for the latest [`WINDOW_S`] seconds.
pub fn live_charts(seconds: &[LiveSecond]) -> Vec<Chart> {
    let seconds = &seconds[seconds.len().saturating_sub(WINDOW_S)..];
    let points = |value: &dyn Fn(&LiveSecond) -> Option<f64>| -> Vec<Option<(f64, f64)>> {
        seconds.iter().map(|s| value(s).map(|v| (s.t_s, v))).collect()
    };
    let samples: Vec<(f64, Option<&ServerSample>)> =
        seconds.iter().map(|s| (s.t_s, s.server.as_ref())).collect();
    let has_server = samples.iter().any(|(_, s)| s.is_some());
    let delivered = vec![line("delivered/s", PALETTE[2], false, points(&|s| Some(s.delivered as f64)))];
    let clients = vec![line("clients connected", PALETTE[0], false, points(&|s| Some(s.clients as f64)))];
    let mut charts = vec![
        chart("live-delivered", "Events delivered per second", count("events/s"), delivered),
        chart(
            "live-fanout",
            "Fan-out latency per second",
            micros("latency"),
            vec![
                line("p50", PALETTE[2], false, points(&|s| s.fanout_p50_us.map(|v| v as f64))),
                line("p99", PALETTE[0], false, points(&|s| s.fanout_p99_us.map(|v| v as f64))),
            ],
        ),
        chart("live-clients", "Clients connected", count("clients"), clients),
        chart(
            "live-loop-lag",
            "Harness event-loop lag (worst) per second",
            micros("lag"),
            vec![line("loop lag", PALETTE[3], false, points(&|s| s.loop_lag_us.map(|v| v as f64)))],
        ),
    ];
    if has_server {
        charts.extend(server_charts(&samples, "live-"));
    }
    charts
}

fn line(label: &str, color: &'static str, dashed: bool, points: Vec<Option<(f64, f64)>>) -> Series {
    Series { label: label.into(), color, dashed, dots: false, points }
}

fn chart(id: &str, title: &str, y: Axis, series: Vec<Series>) -> Chart {
    Chart {
        id: id.into(),
        title: title.into(),
        x: Axis { label: "seconds since start".into(), kind: AxisKind::Linear, unit: Unit::Seconds },
        y,
        series,
        markers: Vec::new(),
        boundaries: Vec::new(),
        size: Size::Half,
    }
}

fn count(label: &str) -> Axis {
    Axis { label: label.into(), kind: AxisKind::Linear, unit: Unit::Count }
}

fn micros(label: &str) -> Axis {
    Axis { label: label.into(), kind: AxisKind::Linear, unit: Unit::Micros }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_charts_include_the_server_only_when_it_was_scraped() {
        let second = |t: f64, server: Option<ServerSample>| LiveSecond {
            t_s: t,
            clients: 10,
            delivered: 500,
            fanout_p50_us: Some(800),
            fanout_p99_us: Some(2_000),
            loop_lag_us: Some(300),
            server,
        };
        let without: Vec<LiveSecond> = (1..=3).map(|t| second(t as f64, None)).collect();
        assert_eq!(live_charts(&without).len(), 4);
        let with: Vec<LiveSecond> =
            (1..=3).map(|t| second(t as f64, Some(ServerSample::default()))).collect();
        let ids: Vec<String> = live_charts(&with).into_iter().map(|c| c.id).collect();
        assert!(
            ids.contains(&"live-server-cpu".to_owned()) && ids.contains(&"live-server-memory".to_owned())
        );
    }
}
