//! The sections of `report.html`, top to bottom. Each appends its HTML to the page; every
//! text that came from the run or the scenario is escaped.

use std::fmt::Write;

use super::charts;
use crate::report::markup::escape;
use crate::report::md::{LATENCY_ROWS, verdict};
use crate::report::numbers::{format_count, format_int as int, format_latency};
use crate::report::svg::Chart;
use crate::results::counters::{CounterKind, describe, kind_of};
use crate::results::model::{LatencySummary, RunReport};

/// Latency metrics the harness records about itself, after the ones `report.md` shows.
const HARNESS_LATENCY_ROWS: &[(&str, &str)] =
    &[("publisher_lag", "publisher lag behind its schedule"), ("loop_lag", "harness event-loop lag")];

pub fn verdict_text(report: &RunReport) -> &'static str {
    verdict(report)
}

fn verdict_class(report: &RunReport) -> &'static str {
    if report.interrupted {
        "interrupted"
    } else if !report.valid {
        "untrusted"
    } else if report.passed {
        "passed"
    } else {
        "failed"
    }
}

pub fn header(page: &mut String, report: &RunReport) {
    let badge = if report.interrupted {
        "INTERRUPTED"
    } else if !report.valid {
        "NOT TRUSTWORTHY"
    } else if report.passed {
        "PASSED"
    } else {
        "FAILED"
    };
    let _ = write!(
        page,
        r#"<header><h1>{} <span class="badge {}">{badge}</span></h1>"#,
        escape(&report.scenario),
        verdict_class(report)
    );
    if !report.description.is_empty() {
        let _ = write!(page, "<p>{}</p>", escape(&report.description));
    }
    let _ = write!(
        page,
        r#"<p class="muted">Target <code>{}</code> · seed {} · {:.1} s · peak {} clients · started {} · openframe-harness {}</p>"#,
        escape(&report.target),
        report.seed,
        report.duration_s,
        int(report.peak_clients),
        escape(&report.started_at),
        escape(&report.environment.harness_version)
    );
    if report.interrupted {
        page.push_str(
            r#"<div class="banner">Interrupted: the run was stopped early; these figures cover only the part that ran.</div>"#,
        );
    }
    if !report.valid {
        page.push_str(r#"<div class="banner bad"><strong>Measurements not trustworthy:</strong> the harness itself was the bottleneck, so its timestamps include its own delay and the gates were not judged."#);
        if !report.harness.reasons.is_empty() {
            page.push_str("<ul>");
            for reason in &report.harness.reasons {
                let _ = write!(page, "<li>{}</li>", escape(reason));
            }
            page.push_str("</ul>");
        }
        page.push_str("</div>");
    }
    page.push_str(r##"<nav><a href="#summary">Gates</a>"##);
    if report.capacity.is_some() {
        page.push_str(r##"<a href="#capacity">Capacity</a>"##);
    }
    page.push_str(concat!(
        r##"<a href="#fanout">Fan-out latency</a>"##,
        r##"<a href="#timeline">Per second</a><a href="#delivery">Delivery</a>"##,
        r##"<a href="#setup">Connect &amp; subscribe</a><a href="#violations">Protocol violations</a>"##,
        r##"<a href="#harness">Harness</a><a href="#scenario">Scenario &amp; environment</a></nav></header>"##,
        "\n"
    ));
}

pub fn summary(page: &mut String, report: &RunReport) {
    page.push_str(r#"<section id="summary"><h2>Summary and gates</h2><div class="tiles">"#);
    let passed = report.gates.iter().filter(|g| g.passed).count();
    if report.valid {
        let all = passed == report.gates.len();
        tile(page, "gates passed", &format!("{passed} / {}", report.gates.len()), Some(all));
    } else {
        tile(page, "gates", "not judged", None);
    }
    let fanout = latency(report, "fanout");
    for (label, value) in
        [("fan-out p50", fanout.p50), ("fan-out p99", fanout.p99), ("fan-out max", fanout.max)]
    {
        tile(page, label, &latency_text(fanout.count, value), None);
    }
    let per_s = report.throughput.get("events_delivered_per_s").copied().unwrap_or(0.0);
    tile(page, "delivered / s", &format_count(per_s), None);
    let c = &report.counters;
    tile(page, "events delivered", &int(c.events_delivered), None);
    tile(page, "missing", &int(c.events_missing), Some(c.events_missing == 0));
    let disorder = c.events_duplicated + c.events_out_of_order;
    tile(page, "duplicated + out of order", &int(disorder), Some(disorder == 0));
    tile(page, "protocol violations", &int(c.protocol_violations), Some(c.protocol_violations == 0));
    tile(page, "peak clients", &int(report.peak_clients), None);
    page.push_str("</div>");
    if report.gates.is_empty() {
        page.push_str("<p class=\"muted\">The scenario declares no gates.</p>");
    } else {
        page.push_str(r#"<table><tr><th>gate</th><th class="n">observed</th><th>verdict</th></tr>"#);
        for gate in &report.gates {
            let (class, text) = if !report.valid {
                ("skip", "not judged")
            } else if gate.passed {
                ("pass", "✓ pass")
            } else {
                ("fail", "✗ FAIL")
            };
            let _ = write!(
                page,
                r#"<tr{}><td><code>{}</code>{}</td><td class="n">{}</td><td class="{class}">{text}</td></tr>"#,
                if class == "fail" { r#" class="bad""# } else { "" },
                escape(&gate.expr),
                if gate.default { " (default)" } else { "" },
                escape(&gate.observed)
            );
        }
        page.push_str("</table>");
    }
    page.push_str("</section>\n");
}

pub fn fanout(page: &mut String, report: &RunReport) {
    let fanout = latency(report, "fanout");
    page.push_str(r#"<section id="fanout"><h2>Fan-out latency distribution</h2>"#);
    figure(
        page,
        &charts::fanout_percentiles(report),
        &format!(
            "Intended publish time → receipt at each subscriber ({} deliveries; open-loop, so a late \
             publisher or a slow server shows up here). HdrHistogram percentile distribution: the \
             x axis is log-scaled by percentile, each step one more nine; levels beyond what the \
             sample count resolves are drawn at the last one. Dotted lines: fan-out latency gates.",
            int(fanout.count)
        ),
        true,
    );
    page.push_str("<h3>Every latency metric</h3>");
    latency_table(page, report, LATENCY_ROWS.iter().chain(HARNESS_LATENCY_ROWS));
    page.push_str("</section>\n");
}

pub fn timeline(page: &mut String, report: &RunReport) {
    page.push_str(r#"<section id="timeline"><h2>Per second</h2><div class="charts">"#);
    for chart in charts::time_series(report) {
        let caption = match chart.id.as_str() {
            "ts-clients" => {
                "Clients connected at the end of each second, and connections opened in it (ramp and churn)."
            }
            "ts-delivered" => "Events received by all subscribers in each second.",
            "ts-published" => "Events the publishers sent and the target accepted in each second.",
            "ts-fanout" => {
                "Fan-out latency of the deliveries in each second (its own histogram); gaps: no deliveries."
            }
            "ts-server-cpu" => {
                "The target's own CPU time per second (cores busy), from its process_cpu_seconds_total."
            }
            "ts-server-memory" => {
                "The target's resident memory (process_resident_memory_bytes), summed over its processes."
            }
            "ts-server-connections" => {
                "Connections the target itself counted open (openframe_connections_open)."
            }
            "ts-server-delivered" => {
                "Deliveries the target queued to subscribers per second (openframe_events_delivered_total), \
                 beside what the harness received."
            }
            "ts-errors" => {
                "Failed connections, protocol violations, unexpected closes, publish and subscribe \
                 errors, and missing, duplicated, out-of-order, filter-violating and after-unsubscribe events."
            }
            _ => {
                "How late the harness's own timers fired: when this grows, its timestamps include its own delay."
            }
        };
        figure(page, &chart, caption, false);
    }
    page.push_str("</div></section>\n");
}

/// The timeline's stages, one row each, when there is more than one (the per-second charts
/// mark where each begins).
pub fn stages(page: &mut String, report: &RunReport) {
    if report.stages.len() < 2 {
        return;
    }
    page.push_str(concat!(
        r#"<section id="stages"><h2>Stages</h2><div class="scroll"><table><tr><th>stage</th>"#,
        r#"<th class="n">from</th><th class="n">to</th><th class="n">published</th>"#,
        r#"<th class="n">delivered</th><th class="n">delivered/s</th><th class="n">missing</th>"#,
        r#"<th class="n">fan-out p50</th><th class="n">fan-out p99</th></tr>"#
    ));
    for stage in &report.stages {
        let c = &stage.counters;
        let fanout = stage.latency_us.get("fanout").copied().unwrap_or_default();
        let length = (stage.end_s - stage.start_s).max(f64::EPSILON);
        let _ = write!(
            page,
            r#"<tr><td>{}</td><td class="n">{:.1} s</td><td class="n">{:.1} s</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td></tr>"#,
            escape(&stage.name),
            stage.start_s,
            stage.end_s,
            int(c.events_published),
            int(c.events_delivered),
            format_count(c.events_delivered as f64 / length),
            int(c.events_missing),
            latency_text(fanout.count, fanout.p50),
            latency_text(fanout.count, fanout.p99),
        );
    }
    page.push_str(concat!(
        "</table></div><p class=\"muted\">Each event counts in the stage of its intended publish time, ",
        "wherever it was delivered.</p></section>\n"
    ));
}

pub fn delivery(page: &mut String, report: &RunReport) {
    let c = &report.counters;
    page.push_str(r#"<section id="delivery"><h2>Delivery</h2>"#);
    let ratio = if c.events_expected > 0 {
        format!(
            " {:.4} % of the certainly expected deliveries arrived.",
            100.0 * (c.events_expected - c.events_missing.min(c.events_expected)) as f64
                / c.events_expected as f64
        )
    } else {
        String::new()
    };
    let _ = write!(
        page,
        "<p>Every event a subscriber was owed is tracked by the delivery oracle: it must arrive once, in \
         publisher order, only where the filters admit it and never after an unsubscribe.{ratio} \
         Red rows are failures of the target.</p>"
    );
    page.push_str(r#"<div class="cols">"#);
    let (delivery, connections): (Vec<_>, Vec<_>) = c.iter().partition(|(name, _)| {
        name.starts_with("events_") || *name == "filter_violations" || *name == "foreign_events"
    });
    for (title, rows) in [("Events", delivery), ("Connections, publishes, subscriptions", connections)] {
        let _ = write!(
            page,
            r#"<div><h3>{title}</h3><table><tr><th>counter</th><th class="n">count</th><th>what it counts</th></tr>"#
        );
        for (name, value) in rows {
            let bad = kind_of(name) == CounterKind::Failure && value > 0;
            let description = describe(name);
            let _ = write!(
                page,
                r#"<tr{}><td><code>{name}</code></td><td class="n">{}</td><td class="muted">{}</td></tr>"#,
                if bad { r#" class="bad""# } else { "" },
                int(value),
                escape(description)
            );
        }
        page.push_str("</table></div>");
    }
    page.push_str("</div>");
    if !report.groups.is_empty() {
        page.push_str(concat!(
            r#"<h3>By client group</h3><div class="scroll"><table><tr><th>group</th><th class="n">clients</th>"#,
            r#"<th class="n">expected</th><th class="n">delivered</th><th class="n">missing</th>"#,
            r#"<th class="n">duplicated</th><th class="n">out of order</th><th class="n">filter violations</th>"#,
            r#"<th class="n">after unsubscribe</th><th class="n">unexpected closes</th>"#,
            r#"<th class="n">slow-consumer closes</th><th class="n">fan-out p50</th><th class="n">p99</th>"#,
            r#"<th class="n">max</th></tr>"#
        ));
        for group in &report.groups {
            let g = &group.counters;
            let fanout = group.latency_us.get("fanout").copied().unwrap_or_default();
            let _ = write!(page, "<tr><td><code>{}</code></td>", escape(&group.name));
            for (value, judged) in [
                (group.clients, false),
                (g.events_expected, false),
                (g.events_delivered, false),
                (g.events_missing, true),
                (g.events_duplicated, true),
                (g.events_out_of_order, true),
                (g.filter_violations, true),
                (g.events_after_unsubscribe, true),
                (g.unexpected_closes, true),
                (g.slow_consumer_closes, false),
            ] {
                let class = if judged && value > 0 { "n bad" } else { "n" };
                let _ = write!(page, r#"<td class="{class}">{}</td>"#, int(value));
            }
            for value in [fanout.p50, fanout.p99, fanout.max] {
                let _ = write!(page, r#"<td class="n">{}</td>"#, latency_text(fanout.count, value));
            }
            page.push_str("</tr>");
        }
        page.push_str("</table></div>");
    }
    if !report.throughput.is_empty() {
        page.push_str(
            r#"<h3>Throughput (whole run)</h3><table><tr><th>rate</th><th class="n">per second</th></tr>"#,
        );
        for (name, value) in &report.throughput {
            let _ = write!(
                page,
                r#"<tr><td><code>{}</code></td><td class="n">{}</td></tr>"#,
                escape(name),
                format_count(*value)
            );
        }
        page.push_str("</table>");
    }
    page.push_str("</section>\n");
}

pub fn setup(page: &mut String, report: &RunReport) {
    page.push_str(r#"<section id="setup"><h2>Connect and subscribe latency</h2>"#);
    figure(
        page,
        &charts::setup_percentiles(report),
        "Start of connect → connection_established; subscribe sent → subscription_confirmed; \
         publish sent → publish_ack (or 202). Log-scaled latency axis; percentile axis as above.",
        true,
    );
    let rows: Vec<&(&str, &str)> = LATENCY_ROWS
        .iter()
        .filter(|(m, _)| ["connect", "subscribe", "first_event", "publish_ack"].contains(m))
        .collect();
    latency_table(page, report, rows.into_iter());
    page.push_str("</section>\n");
}

pub fn violations(page: &mut String, report: &RunReport) {
    page.push_str(r#"<section id="violations"><h2>Protocol violations</h2>"#);
    if report.violations.is_empty() && report.samples.is_empty() {
        let _ = write!(
            page,
            "<p class=\"pass\">None: {} protocol violations, and no sample of a delivery error was kept.</p>",
            int(report.counters.protocol_violations)
        );
    }
    if !report.violations.is_empty() {
        page.push_str(r#"<table><tr><th>kind</th><th class="n">count</th></tr>"#);
        for (kind, count) in &report.violations {
            let _ = write!(
                page,
                r#"<tr class="bad"><td><code>{}</code></td><td class="n">{}</td></tr>"#,
                escape(kind),
                int(*count)
            );
        }
        page.push_str("</table>");
    }
    if !report.samples.is_empty() {
        let _ = write!(
            page,
            "<h3>Samples ({} kept)</h3><p class=\"muted\">Examples of what went wrong, with the message as it was received (truncated).</p>",
            report.samples.len()
        );
        page.push_str(concat!(
            r#"<div class="scroll"><table><tr><th class="n">at</th><th>group</th><th>kind</th>"#,
            r#"<th>detail</th><th>message</th></tr>"#
        ));
        for sample in &report.samples {
            let _ = write!(
                page,
                r#"<tr><td class="n">{:.1} s</td><td>{}</td><td><code>{}</code></td><td>{}</td><td><code>{}</code></td></tr>"#,
                sample.t_s,
                escape(&sample.group),
                escape(&sample.kind),
                escape(&sample.detail),
                escape(&sample.message)
            );
        }
        page.push_str("</table></div>");
    }
    page.push_str("</section>\n");
}

pub fn harness(page: &mut String, report: &RunReport) {
    let h = &report.harness;
    page.push_str(r#"<section id="harness"><h2>The harness</h2>"#);
    let _ = write!(
        page,
        "<p>{}</p>",
        if report.valid {
            "The harness kept up with its schedule, so its measurements are trusted."
        } else {
            "The harness was the bottleneck: its measurements are not trusted (see the reasons at the top)."
        }
    );
    let mib = |bytes: u64| format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0));
    let loop_lag =
        report.latency_us.get("loop_lag").map_or("–".to_owned(), |s| latency_text(s.count, s.p99));
    let rows = [
        ("threads / workers", format!("{} / {}", h.threads, h.workers)),
        ("CPU time", format!("{:.2} s ({:.0} % of the machine)", h.cpu_s, h.cpu_percent)),
        ("CPU per delivered event", format!("{:.2} µs", h.cpu_us_per_event)),
        ("CPU per client", format!("{:.0} µs", h.cpu_us_per_client)),
        ("peak resident memory", mib(h.peak_rss_bytes)),
        ("memory per client", format!("{:.1} KiB", h.rss_per_client_bytes as f64 / 1024.0)),
        ("bytes received", format!("{} ({:.0} per event)", mib(h.bytes_received), h.bytes_per_event)),
        ("event-loop lag p99", loop_lag),
        (
            "bundled server in the same process",
            if h.server_in_process { "yes: figures include it" } else { "no" }.into(),
        ),
    ];
    page.push_str("<table>");
    for (key, value) in rows {
        let _ = write!(page, "<tr><th>{key}</th><td>{}</td></tr>", escape(&value));
    }
    page.push_str("</table></section>\n");
}

pub fn scenario(page: &mut String, report: &RunReport) {
    let e = &report.environment;
    page.push_str(r#"<section id="scenario"><h2>Scenario and environment</h2><div class="cols"><div>"#);
    page.push_str("<h3>Environment</h3><table>");
    let rows = [
        ("scenario", report.scenario.clone()),
        ("target", report.target.clone()),
        ("seed", report.seed.to_string()),
        ("started", report.started_at.clone()),
        ("duration", format!("{:.1} s", report.duration_s)),
        ("command", e.command.clone()),
        ("harness version", e.harness_version.clone()),
        ("host", e.hostname.clone()),
        ("operating system", e.os.clone()),
        ("CPUs", e.cpus.to_string()),
        ("memory", format!("{:.1} GiB", e.memory_bytes as f64 / (1024.0 * 1024.0 * 1024.0))),
    ];
    for (key, value) in rows {
        let _ = write!(page, "<tr><th>{key}</th><td><code>{}</code></td></tr>", escape(&value));
    }
    page.push_str("</table></div><div><h3>Scenario file as run</h3>");
    if report.scenario_source.is_empty() {
        page.push_str("<p class=\"muted\">The report does not carry the scenario file.</p>");
    } else {
        let _ = write!(page, "<pre>{}</pre>", escape(&report.scenario_source));
    }
    page.push_str("</div></div></section>\n");
}

pub fn footer(page: &mut String, report: &RunReport) {
    let _ = writeln!(
        page,
        "<footer>Generated by openframe-harness {} from <code>report.json</code> (schema version {}). \
         Render again with <code>openframe-harness report PATH --format html</code>; compare two runs with \
         <code>openframe-harness compare BASELINE.json CURRENT.json</code>.</footer>",
        escape(&report.environment.harness_version),
        report.schema_version
    );
}

/// A chart in a `<figure>` with its caption.
pub(super) fn figure(page: &mut String, chart: &Chart, caption: &str, wide: bool) {
    let _ = write!(
        page,
        r#"<figure{}><h3>{}</h3>{}<figcaption>{}</figcaption></figure>"#,
        if wide { r#" class="wide""# } else { "" },
        escape(&chart.title),
        chart.render(),
        escape(caption)
    );
}

fn tile(page: &mut String, label: &str, value: &str, good: Option<bool>) {
    let class = match good {
        Some(true) => " good",
        Some(false) => " bad",
        None => "",
    };
    let _ = write!(
        page,
        r#"<div class="tile{class}"><div class="k">{}</div><div class="v">{}</div></div>"#,
        escape(label),
        escape(value)
    );
}

fn latency_table<'a>(
    page: &mut String,
    report: &RunReport,
    rows: impl Iterator<Item = &'a (&'a str, &'a str)>,
) {
    page.push_str(concat!(
        r#"<div class="scroll"><table><tr><th>latency</th><th class="n">count</th><th class="n">min</th>"#,
        r#"<th class="n">p50</th><th class="n">p90</th><th class="n">p99</th><th class="n">p99.9</th>"#,
        r#"<th class="n">max</th><th class="n">mean</th></tr>"#
    ));
    let mut any = false;
    for (metric, label) in rows {
        let Some(s) = report.latency_us.get(*metric).filter(|s| s.count > 0) else { continue };
        any = true;
        let _ = write!(page, "<tr><td>{} <code class=\"muted\">{metric}</code></td>", escape(label));
        let _ = write!(page, r#"<td class="n">{}</td>"#, int(s.count));
        for value in [s.min, s.p50, s.p90, s.p99, s.p999, s.max] {
            let _ = write!(page, r#"<td class="n">{}</td>"#, format_latency(value as f64));
        }
        let _ = write!(page, r#"<td class="n">{}</td></tr>"#, format_latency(s.mean));
    }
    if !any {
        page.push_str(r#"<tr><td colspan="9" class="muted">nothing recorded</td></tr>"#);
    }
    page.push_str("</table></div>");
}

fn latency(report: &RunReport, metric: &str) -> LatencySummary {
    report.latency_us.get(metric).copied().unwrap_or_default()
}

/// A latency, or a dash when nothing was recorded (zero would read as "instant").
fn latency_text(count: u64, micros: u64) -> String {
    if count == 0 { "–".to_owned() } else { format_latency(micros as f64) }
}
