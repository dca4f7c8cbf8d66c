//! `report.md`: a run in a few lines, short enough for a pull-request comment or
//! `$GITHUB_STEP_SUMMARY`: verdict, gates, delivery counters, latency, what the harness cost;
//! for a capacity search, first its result in one sentence and a row per step.

use std::io::{self, Write};

use super::numbers::{format_count, trim_number};
use super::summary;
use crate::results::model::CapacityReport;
use crate::results::model::RunReport;
use crate::util::duration::format_micros;

/// Latency rows shown, in order (the HTML report uses them too).
pub const LATENCY_ROWS: &[(&str, &str)] = &[
    ("fanout", "fan-out (publish → each subscriber)"),
    ("completion", "fan-out completion (publish → last subscriber)"),
    ("first_event", "first event after (re)subscribe"),
    ("connect", "connect (→ connection_established)"),
    ("tcp_connect", "  TCP connect"),
    ("tls_handshake", "  TLS handshake"),
    ("upgrade", "  upgrade (→ connection_established)"),
    ("subscribe", "subscribe (→ subscription_confirmed)"),
    ("publish_ack", "publish → ack"),
];

pub fn verdict(report: &RunReport) -> &'static str {
    if report.interrupted {
        "INTERRUPTED"
    } else if !report.valid {
        "NOT TRUSTWORTHY (the harness was the bottleneck)"
    } else if report.passed {
        "PASSED"
    } else {
        "FAILED"
    }
}

pub fn write_md<W: Write>(w: &mut W, report: &RunReport) -> io::Result<()> {
    writeln!(w, "## openframe-harness run `{}`: {}", report.scenario, verdict(report))?;
    writeln!(w)?;
    if !report.description.is_empty() {
        writeln!(w, "{}", report.description)?;
        writeln!(w)?;
    }
    writeln!(
        w,
        "Target `{}`, seed {}, {:.1} s, peak {} clients, started {}.",
        report.target, report.seed, report.duration_s, report.peak_clients, report.started_at
    )?;
    if let Some(capacity) = &report.capacity {
        write_capacity(w, capacity)?;
    }
    for reason in &report.harness.reasons {
        writeln!(w, "\n> **Measurements not trustworthy:** {reason}")?;
    }
    let tls = &report.tls;
    if tls.insecure {
        writeln!(w, "\n> **INSECURE:** the target's TLS certificate was not verified (`--insecure`).")?;
    }
    if tls.enabled {
        writeln!(
            w,
            "\n**TLS:** {} handshakes, {} resumed ({:.1} %); verification: {}; SNI `{}`; ALPN {}.",
            report.counters.tls_handshakes,
            report.counters.tls_resumed,
            tls.resumed_percent,
            tls.verification,
            tls.server_name,
            tls.alpn.join(", ")
        )?;
    }
    if !report.gates.is_empty() {
        writeln!(w, "\n| gate | observed | |\n|---|---|---|")?;
        for gate in &report.gates {
            let mark = if gate.passed { "✅ pass" } else { "❌ FAIL" };
            let default = if gate.default { " (default)" } else { "" };
            writeln!(w, "| `{}`{default} | {} | {mark} |", gate.expr, gate.observed)?;
        }
    }
    writeln!(w, "\n**Delivery:** {}.", summary::delivery(&report.counters))?;
    writeln!(w, "**Connections:** {}.", summary::connections(&report.counters))?;
    writeln!(
        w,
        "\n| latency | count | p50 | p90 | p99 | p99.9 | max |\n|---|---:|---:|---:|---:|---:|---:|"
    )?;
    for (key, label) in LATENCY_ROWS {
        let Some(s) = report.latency_us.get(*key).filter(|s| s.count > 0) else { continue };
        writeln!(
            w,
            "| {label} | {} | {} | {} | {} | {} | {} |",
            s.count,
            format_micros(s.p50),
            format_micros(s.p90),
            format_micros(s.p99),
            format_micros(s.p999),
            format_micros(s.max)
        )?;
    }
    write_stages(w, report)?;
    let h = &report.harness;
    writeln!(
        w,
        "\n**Harness:** {:.1} CPU-s ({:.0} % of the machine), {:.2} µs CPU per delivered event, peak RSS {:.1} MiB{}; loop lag p99 {}.",
        h.cpu_s,
        h.cpu_percent,
        h.cpu_us_per_event,
        h.peak_rss_bytes as f64 / (1024.0 * 1024.0),
        if h.server_in_process { " (bundled server included)" } else { "" },
        report.latency_us.get("loop_lag").map_or("-".to_owned(), |s| format_micros(s.p99)),
    )?;
    if let Some(peaks) = ServerPeaks::of(report) {
        writeln!(
            w,
            "**Server** (its own metrics, {} seconds scraped): peak CPU {:.2} cores, peak resident memory {:.1} MiB, peak {} connections.",
            peaks.seconds,
            peaks.cpu_cores,
            peaks.rss_bytes as f64 / (1024.0 * 1024.0),
            peaks.connections
        )?;
    }
    if !report.samples.is_empty() {
        writeln!(w, "\n<details><summary>{} samples of what went wrong</summary>\n", report.samples.len())?;
        for sample in report.samples.iter().take(10) {
            writeln!(w, "- `{}` ({}, {:.1} s): {}", sample.kind, sample.group, sample.t_s, sample.detail)?;
        }
        writeln!(w, "\n</details>")?;
    }
    Ok(())
}

/// The timeline, one row per stage, when there is more than one.
fn write_stages<W: Write>(w: &mut W, report: &RunReport) -> io::Result<()> {
    if report.stages.len() < 2 {
        return Ok(());
    }
    writeln!(
        w,
        "\n| stage | from | to | published | delivered | missing | fan-out p50 | fan-out p99 |\n|---|---:|---:|---:|---:|---:|---:|---:|"
    )?;
    for stage in &report.stages {
        let fanout = stage.latency_us.get("fanout").copied().unwrap_or_default();
        let micros = |us: u64| if fanout.count == 0 { "-".to_owned() } else { format_micros(us) };
        writeln!(
            w,
            "| {} | {:.1} s | {:.1} s | {} | {} | {} | {} | {} |",
            stage.name,
            stage.start_s,
            stage.end_s,
            stage.counters.events_published,
            stage.counters.events_delivered,
            stage.counters.events_missing,
            micros(fanout.p50),
            micros(fanout.p99),
        )?;
    }
    Ok(())
}

/// A capacity search: its sentence, a row per step, and which step the rest of the page shows.
fn write_capacity<W: Write>(w: &mut W, c: &CapacityReport) -> io::Result<()> {
    writeln!(w, "\n**Capacity:** {}", summary::capacity(c))?;
    writeln!(
        w,
        "\n| step | | offered ({unit}) | achieved | deliveries/s | fan-out p50 | p99 | |\n|---:|---|---:|---:|---:|---:|---:|---|",
        unit = c.unit
    )?;
    for s in &c.steps {
        let fanout = s.latency_us.get("fanout").copied().unwrap_or_default();
        let verdict = if !s.valid {
            "⚠️ not trustworthy".to_owned()
        } else if s.passed {
            "✅ pass".to_owned()
        } else {
            format!("❌ FAIL `{}`", s.failing_gate.as_deref().unwrap_or("?"))
        };
        writeln!(
            w,
            "| {} | {} | {} | {} | {} | {} | {} | {verdict} |",
            s.step,
            s.phase,
            trim_number(s.offered, 2),
            trim_number(s.achieved, 2),
            format_count(s.deliveries_per_s),
            format_micros(fanout.p50),
            format_micros(fanout.p99)
        )?;
    }
    if let Some(step) = c.top_level_step.and_then(|i| c.steps.get(i)) {
        writeln!(
            w,
            "\nThe figures below are step {}'s ({} {}), each step's first {} s (its warm-up) left out of its latency.",
            step.step,
            trim_number(step.offered, 2),
            c.unit,
            trim_number(c.warmup_s, 1)
        )?;
    }
    Ok(())
}

/// The highest figures of the target's own metrics over the run (`intervals[].server`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ServerPeaks {
    /// Seconds with a sample.
    pub seconds: usize,
    /// CPU seconds per second between consecutive samples.
    pub cpu_cores: f64,
    pub rss_bytes: u64,
    pub connections: u64,
}

impl ServerPeaks {
    /// `None` when no second has a sample.
    pub fn of(report: &RunReport) -> Option<ServerPeaks> {
        let mut peaks = ServerPeaks { seconds: 0, cpu_cores: 0.0, rss_bytes: 0, connections: 0 };
        let mut previous: Option<(f64, f64)> = None;
        for interval in &report.intervals {
            let Some(server) = &interval.server else {
                previous = None;
                continue;
            };
            peaks.seconds += 1;
            peaks.rss_bytes = peaks.rss_bytes.max(server.rss_bytes);
            peaks.connections = peaks.connections.max(server.connections);
            if let Some((t0, cpu0)) = previous
                && interval.t_s > t0
                && server.cpu_s >= cpu0
            {
                peaks.cpu_cores = peaks.cpu_cores.max((server.cpu_s - cpu0) / (interval.t_s - t0));
            }
            previous = Some((interval.t_s, server.cpu_s));
        }
        (peaks.seconds > 0).then_some(peaks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::model::GateResult;

    #[test]
    fn gives_the_servers_peak_cpu_and_memory_when_it_was_scraped() {
        use crate::results::model::Interval;
        use crate::results::server_sample::ServerSample;
        let mut report = RunReport::empty("s");
        for (t, cpu_s, rss_bytes) in [(1.0, 1.0, 10 << 20), (2.0, 1.5, 30 << 20), (3.0, 1.75, 20 << 20)] {
            let server = Some(ServerSample { cpu_s, rss_bytes, connections: 4, ..ServerSample::default() });
            report.intervals.push(Interval { t_s: t, server, ..Interval::default() });
        }
        let peaks = ServerPeaks::of(&report).unwrap();
        assert_eq!(
            (peaks.seconds, peaks.cpu_cores, peaks.rss_bytes, peaks.connections),
            (3, 0.5, 30 << 20, 4)
        );
        let mut text = Vec::new();
        write_md(&mut text, &report).unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(text.contains("peak CPU 0.50 cores, peak resident memory 30.0 MiB"), "{text}");
        report.intervals.clear();
        assert_eq!(ServerPeaks::of(&report), None);
    }

    #[test]
    fn names_the_verdict_gates_and_counters() {
        let mut report = RunReport::empty("smoke");
        report.passed = false;
        report.gates.push(GateResult {
            name: "x".into(),
            expr: "counters.events_missing == 0".into(),
            observed: "3".into(),
            passed: false,
            default: true,
        });
        report.counters.events_missing = 3;
        let mut out = Vec::new();
        write_md(&mut out, &report).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("`smoke`: FAILED"));
        assert!(text.contains("| `counters.events_missing == 0` (default) | 3 | ❌ FAIL |"));
        assert!(text.contains("3 missing"));
        assert!(text.lines().count() < 40);
    }
}
