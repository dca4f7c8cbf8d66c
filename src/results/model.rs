//! `report.json` of `run`: the fields CLI.md fixes, and what the other formats need
//! (per-second intervals, full and per-interval histograms, the scenario and environment, and a
//! capacity search's result and steps).
//!
//! Writers (`md`, `html`, `junit`, `hlog`), `compare` and `merge` read only this model, so a
//! report can be re-rendered from its JSON alone.

use std::collections::BTreeMap;
use std::ops::AddAssign;

use serde::{Deserialize, Serialize};

/// Declares [`Counters`] with its fields listed once, so merging and iteration never miss one.
macro_rules! counters {
    ($($(#[doc = $doc:literal])* $name:ident),* $(,)?) => {
        /// Run-wide counts. The first fourteen are CLI.md's; the rest add detail.
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(default)]
        pub struct Counters {
            $($(#[doc = $doc])* pub $name: u64,)*
        }

        impl Counters {
            /// Every counter as (name, value), in declaration order.
            pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> {
                [$((stringify!($name), self.$name)),*].into_iter()
            }
        }

        impl AddAssign<&Counters> for Counters {
            fn add_assign(&mut self, other: &Counters) {
                $(self.$name += other.$name;)*
            }
        }
    };
}

counters! {
    /// WebSocket connections that reached `connection_established` or an auth answer.
    connections_opened,
    /// Connection attempts that failed (refused, timed out, upgrade refused).
    connections_failed,
    /// Connections the target refused with `AUTH_ERROR` and 1008.
    auth_rejected,
    /// Events the harness published and the target accepted.
    events_published,
    /// (subscriber, event) pairs the target was certainly required to deliver.
    events_expected,
    /// Events received by subscribers (every receipt).
    events_delivered,
    /// Certainly expected pairs that never arrived.
    events_missing,
    /// Events received more than once by one subscriber.
    events_duplicated,
    /// Events received after a later event of the same publisher.
    events_out_of_order,
    /// Events received although the subscriber's filters (or topics) exclude them.
    filter_violations,
    /// Events certainly published after an `unsubscription_confirmed` that still arrived.
    events_after_unsubscribe,
    /// Server messages that break PROTOCOL.md.
    protocol_violations,
    /// Connections the target closed without a reason the scenario explains.
    unexpected_closes,
    /// Connections cut as slow consumers (1013, or 1006 after a stall).
    slow_consumer_closes,
    /// Received events whose obligation was uncertain (published around a (un)subscribe).
    events_uncertain,
    /// Events from other sources (the server's heartbeat, other runs), validated but not judged.
    foreign_events,
    /// `publish_ack` / 202 answers received.
    publish_acks,
    /// Publishes the target refused with an error.
    publish_errors,
    /// Sum of `delivered` over all publish acks (what the target says it queued).
    server_reported_deliveries,
    /// Subscribes that got an error or no confirmation.
    subscribe_failures,
    /// Reconnects made by churn.
    reconnects,
    /// Unsubscribe + subscribe cycles made by churn.
    resubscribes,
    /// Auth failures that were not expected (a valid token refused).
    auth_unexpected_rejections,
    /// Invalid tokens the target accepted.
    auth_accepted_invalid,
    /// TLS handshakes completed by the harness's clients and publishers (`wss://`).
    tls_handshakes,
    /// Of those, abbreviated handshakes that resumed the client's earlier session.
    tls_resumed,
}

/// A latency distribution, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    pub count: u64,
    pub min: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    pub mean: f64,
}

/// One gate's verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateResult {
    pub name: String,
    pub expr: String,
    pub observed: String,
    pub passed: bool,
    /// A default gate (no failed connections, nothing missing, …), not one the scenario wrote;
    /// absent from reports written before default gates existed.
    #[serde(default)]
    pub default: bool,
}

/// One second of the run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Interval {
    /// Seconds since the run started, at the end of this interval.
    pub t_s: f64,
    pub clients: u64,
    pub events_published: u64,
    pub events_delivered: u64,
    pub fanout_p50_us: u64,
    pub fanout_p99_us: u64,
    pub fanout_max_us: u64,
    pub errors: u64,
    pub connections_opened: u64,
    /// HdrHistogram V2 compressed, base64, of each latency metric recorded in this interval.
    pub histograms: BTreeMap<String, String>,
    /// The harness process's resident memory at the end of this second.
    #[serde(default)]
    pub rss_bytes: u64,
    /// The target's own metrics at the end of this second, when they could be scraped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<crate::results::server_sample::ServerSample>,
}

/// What the harness cost and whether its measurements can be trusted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HarnessReport {
    pub threads: u64,
    /// What deliveries were timed by: `kernel` (each frame by the kernel's receive stamp of the
    /// read that completed it) or `user` (by when the harness read it).
    pub timestamps: String,
    pub workers: u64,
    pub cpu_s: f64,
    /// Percentage of all CPUs the harness used over the run.
    pub cpu_percent: f64,
    pub peak_rss_bytes: u64,
    /// Resident memory per client at the peak (excluding the embedded server when it shares the process).
    pub rss_per_client_bytes: u64,
    /// How much the resident memory grew over the run, in percent: the median of its last
    /// quarter of seconds against that of its second quarter (the first is the ramp); 0 for a
    /// run under 8 seconds. A soak gates it.
    pub rss_growth_pct: f64,
    pub cpu_us_per_event: f64,
    pub cpu_us_per_client: f64,
    pub bytes_received: u64,
    pub bytes_per_event: f64,
    /// The bundled server ran in the harness's process: CPU and memory figures include it.
    pub server_in_process: bool,
    /// True when the harness was the bottleneck; then `valid` is false.
    pub overloaded: bool,
    pub reasons: Vec<String>,
}

/// Memory growth over a series of per-second samples, in percent: the median of the last
/// quarter against the median of the second quarter (the first quarter is the ramp, when
/// buffers and pools fill). 0 for fewer than 8 samples or an empty early quarter.
pub fn growth_pct(samples: &[u64]) -> f64 {
    let n = samples.len();
    if n < 8 {
        return 0.0;
    }
    let median = |part: &[u64]| {
        let mut sorted = part.to_vec();
        sorted.sort_unstable();
        sorted[sorted.len() / 2] as f64
    };
    let early = median(&samples[n / 4..n / 2]);
    let late = median(&samples[3 * n / 4..]);
    if early <= 0.0 { 0.0 } else { (late - early) * 100.0 / early }
}

/// One kept example of a protocol violation or delivery error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub kind: String,
    pub detail: String,
    /// The message as received (truncated).
    pub message: String,
    pub group: String,
    pub t_s: f64,
}

/// Where the run happened.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Environment {
    pub harness_version: String,
    pub hostname: String,
    pub os: String,
    pub cpus: u64,
    pub memory_bytes: u64,
    pub command: String,
}

/// How the run's clients spoke TLS (`wss://`); `enabled` is false for a plain target.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TlsReport {
    pub enabled: bool,
    /// How the server's certificate was checked: platform roots, a CA file, the bundled
    /// server's generated CA, or not at all.
    pub verification: String,
    /// Certificate verification was switched off (`--insecure`): the figures are real, but
    /// nothing proved the target was the server it claimed to be.
    pub insecure: bool,
    /// The SNI sent (empty for an IP address, which browsers do not send).
    pub server_name: String,
    /// The ALPN protocols offered.
    pub alpn: Vec<String>,
    /// How sessions are resumed on reconnect.
    pub resumption: String,
    /// `counters.tls_resumed / counters.tls_handshakes`, in percent.
    pub resumed_percent: f64,
}

impl TlsReport {
    /// The share of handshakes that resumed a session, in percent.
    pub fn resumed_percent(counters: &Counters) -> f64 {
        if counters.tls_handshakes == 0 {
            0.0
        } else {
            counters.tls_resumed as f64 * 100.0 / counters.tls_handshakes as f64
        }
    }
}

/// One stage of the run's timeline and what happened in it (CLI.md: a delivery belongs to the
/// stage of its event's intended publish time). Its `counters` are the event counters (published,
/// expected, delivered, missing, duplicated, out of order, uncertain, after unsubscribe); the
/// connection counters belong to the whole run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StageReport {
    pub name: String,
    /// From the run's start, in seconds.
    pub start_s: f64,
    pub end_s: f64,
    pub counters: Counters,
    /// `fanout`.
    pub latency_us: BTreeMap<String, LatencySummary>,
    /// The same, as HdrHistogram V2 compressed, base64 (so shards' reports merge exactly).
    pub histograms: BTreeMap<String, String>,
}

impl StageReport {
    /// An empty stage named `name`, with the fields gates may name.
    pub fn template(name: &str) -> StageReport {
        StageReport {
            name: name.to_owned(),
            latency_us: [("fanout".to_owned(), LatencySummary::default())].into_iter().collect(),
            ..StageReport::default()
        }
    }
}

/// Per client group: how it fared.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GroupReport {
    pub name: String,
    pub clients: u64,
    pub counters: Counters,
    /// `fanout` for client groups.
    pub latency_us: BTreeMap<String, LatencySummary>,
    /// The same, as HdrHistogram V2 compressed, base64 (so shards' reports merge exactly).
    pub histograms: BTreeMap<String, String>,
}

impl GroupReport {
    /// An empty report for group `name`: the shape group gate paths are checked against.
    pub fn template(name: &str) -> GroupReport {
        GroupReport {
            name: name.to_owned(),
            latency_us: [("fanout".to_owned(), LatencySummary::default())].into_iter().collect(),
            ..GroupReport::default()
        }
    }
}

/// The whole `report.json` of a `run`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    pub schema_version: u32,
    pub kind: String,
    pub scenario: String,
    #[serde(default)]
    pub description: String,
    pub target: String,
    pub seed: u64,
    pub interrupted: bool,
    pub valid: bool,
    pub passed: bool,
    pub started_at: String,
    pub duration_s: f64,
    pub peak_clients: u64,
    pub counters: Counters,
    pub latency_us: BTreeMap<String, LatencySummary>,
    #[serde(default)]
    pub throughput: BTreeMap<String, f64>,
    pub gates: Vec<GateResult>,
    pub intervals: Vec<Interval>,
    /// HdrHistogram V2 compressed, base64, of the whole run, per latency metric.
    pub histograms: BTreeMap<String, String>,
    #[serde(default)]
    pub harness: HarnessReport,
    #[serde(default)]
    pub groups: Vec<GroupReport>,
    /// The timeline's stages, in order (one, named after the scenario, without `[[stages]]`).
    #[serde(default)]
    pub stages: Vec<StageReport>,
    #[serde(default)]
    pub violations: BTreeMap<String, u64>,
    #[serde(default)]
    pub samples: Vec<Sample>,
    #[serde(default)]
    pub environment: Environment,
    #[serde(default)]
    pub tls: TlsReport,
    /// The scenario file as it was run.
    #[serde(default)]
    pub scenario_source: String,
    /// How the target's own metrics were scraped (`intervals[].server`); absent when they were not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_metrics: Option<crate::results::server_sample::ScrapeReport>,
    /// A capacity search's result and steps; absent for any other run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<CapacityReport>,
}

impl RunReport {
    pub const KIND: &'static str = "run";
    pub const SCHEMA_VERSION: u32 = 1;

    /// An empty report; the shape every gate path is checked against.
    pub fn empty(scenario: &str) -> RunReport {
        RunReport {
            schema_version: RunReport::SCHEMA_VERSION,
            kind: RunReport::KIND.to_owned(),
            scenario: scenario.to_owned(),
            description: String::new(),
            target: String::new(),
            seed: 0,
            interrupted: false,
            valid: true,
            passed: true,
            started_at: String::new(),
            duration_s: 0.0,
            peak_clients: 0,
            counters: Counters::default(),
            latency_us: crate::results::LatencyMetric::ALL
                .iter()
                .map(|m| (m.name().to_owned(), LatencySummary::default()))
                .collect(),
            throughput: THROUGHPUT_KEYS.iter().map(|k| ((*k).to_owned(), 0.0)).collect(),
            gates: Vec::new(),
            intervals: Vec::new(),
            histograms: BTreeMap::new(),
            harness: HarnessReport::default(),
            groups: Vec::new(),
            stages: Vec::new(),
            violations: BTreeMap::new(),
            samples: Vec::new(),
            environment: Environment::default(),
            tls: TlsReport::default(),
            scenario_source: String::new(),
            server_metrics: None,
            capacity: None,
        }
    }
}

/// The rates a run reports under `throughput`.
pub const THROUGHPUT_KEYS: &[&str] = &[
    "events_published_per_s",
    "events_delivered_per_s",
    "connections_per_s",
    "bytes_received_per_s",
    "tls_handshakes_per_s",
];

// ---- a capacity search (`capacity`): data only; the search is `runner::capacity`, its gates
// `report::gates`, its sentence and charts `report::{summary, html}` ----

/// What ended a capacity search.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LimitedBy {
    /// A step failed one of the scenario's gates: the capacity lies between the highest passing
    /// step and the first failing one.
    Gate,
    /// A step's measurements could not be trusted (the harness was the bottleneck): the target
    /// handles at least the highest passing step; its capacity is not known.
    Harness,
    /// Every step up to the range's top passed: the capacity is at least `to`.
    Range,
    /// Ctrl-C ended the search before any of the above.
    Interrupted,
}

impl LimitedBy {
    pub fn name(self) -> &'static str {
        match self {
            LimitedBy::Gate => "gate",
            LimitedBy::Harness => "harness",
            LimitedBy::Range => "range",
            LimitedBy::Interrupted => "interrupted",
        }
    }
}

/// The whole search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapacityReport {
    /// The scenario value varied, as `[capacity] vary` names it (`publishers.alerts.rate`).
    pub vary: String,
    /// The unit of `offered`, `achieved`, `highest_passing` and `first_failing`.
    pub unit: String,
    /// The range searched and how: the first step's load, the highest, the factor between
    /// steps on the way up and the bracket width (a fraction) at which bisection stops.
    pub from: f64,
    pub to: f64,
    pub growth: f64,
    pub resolution: f64,
    /// Each step's measured window (after its warm-up), and its warm-up, in seconds.
    pub step_duration_s: f64,
    pub warmup_s: f64,
    /// The highest offered load at which every gate held; `None` when the first step failed.
    pub highest_passing: Option<f64>,
    /// Deliveries per second the highest passing step achieved in its measured window.
    pub highest_passing_deliveries_per_s: Option<f64>,
    /// The lowest offered load that failed a gate; `None` when none did.
    pub first_failing: Option<f64>,
    pub limited_by: LimitedBy,
    /// The expression of the gate the first failing step failed (when `limited_by` is `gate`).
    pub failing_gate: Option<String>,
    /// What would let the search go further (when `limited_by` is `harness`).
    pub remedy: Option<String>,
    /// The index in `steps` of the step whose figures fill the report's top level (counters,
    /// latency, intervals, groups, harness): the highest passing step, else the first one.
    pub top_level_step: Option<usize>,
    pub steps: Vec<CapacityStep>,
}

/// One load tried: a fresh run of the scenario with the varied value set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapacityStep {
    /// 1, 2, … in the order run.
    pub step: u32,
    /// `grow` (stepping up from `from`) or `bisect` (between the last passing and first failing).
    pub phase: String,
    /// The varied value this step set.
    pub offered: f64,
    /// What the harness actually generated of it in the measured window (publisher rate: events
    /// acknowledged per second; client count: clients connected; arrival rate: the offered rate
    /// times the share of the group's clients that connected).
    pub achieved: f64,
    /// Events received by subscribers per second in the measured window.
    pub deliveries_per_s: f64,
    /// Every gate held, the load was achieved and the measurements can be trusted.
    pub passed: bool,
    /// The harness was not the bottleneck (as `report.valid` of a run).
    pub valid: bool,
    /// The first gate the step failed, as an expression.
    pub failing_gate: Option<String>,
    /// Why the step's measurements cannot be trusted (as `harness.reasons`).
    #[serde(default)]
    pub reasons: Vec<String>,
    pub started_at: String,
    pub duration_s: f64,
    /// `fanout` and `completion`, warm-up excluded.
    pub latency_us: BTreeMap<String, LatencySummary>,
    /// The step's whole-run counters.
    pub counters: Counters,
}

impl CapacityReport {
    /// A report with every numeric field set: the shape `capacity.…` gate paths are checked
    /// against.
    pub fn template() -> CapacityReport {
        CapacityReport {
            vary: String::new(),
            unit: String::new(),
            from: 0.0,
            to: 0.0,
            growth: 0.0,
            resolution: 0.0,
            step_duration_s: 0.0,
            warmup_s: 0.0,
            highest_passing: Some(0.0),
            highest_passing_deliveries_per_s: Some(0.0),
            first_failing: Some(0.0),
            limited_by: LimitedBy::Gate,
            failing_gate: None,
            remedy: None,
            top_level_step: None,
            steps: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_growth_compares_the_last_quarter_with_the_second() {
        // A ramp in the first quarter does not count; a steady run grows 0 %.
        let steady: Vec<u64> = (0..40).map(|i| if i < 10 { 10 * i } else { 100 }).collect();
        assert_eq!(growth_pct(&steady), 0.0);
        // A leak of 1 a second from 100: 110..119 against 130..139, medians 115 and 135.
        let leak: Vec<u64> = (0..40).map(|i| 100 + i).collect();
        assert!((growth_pct(&leak) - 20.0 / 115.0 * 100.0).abs() < 1e-9, "{}", growth_pct(&leak));
        assert_eq!(growth_pct(&[5; 7]), 0.0, "too short to say");
    }

    #[test]
    fn counters_add_every_field() {
        let mut a = Counters { events_missing: 1, foreign_events: 2, ..Counters::default() };
        let b = Counters { events_missing: 3, auth_accepted_invalid: 4, ..Counters::default() };
        a += &b;
        assert_eq!((a.events_missing, a.foreign_events, a.auth_accepted_invalid), (4, 2, 4));
        assert_eq!(a.iter().count(), 26);
    }

    #[test]
    fn the_empty_report_has_every_field_cli_md_fixes() {
        let json = serde_json::to_value(RunReport::empty("x")).unwrap();
        for field in [
            "schema_version",
            "kind",
            "scenario",
            "target",
            "seed",
            "interrupted",
            "valid",
            "passed",
            "started_at",
            "duration_s",
            "peak_clients",
            "counters",
            "latency_us",
            "gates",
            "intervals",
            "histograms",
        ] {
            assert!(json.get(field).is_some(), "{field}");
        }
        for counter in [
            "connections_opened",
            "connections_failed",
            "auth_rejected",
            "events_published",
            "events_expected",
            "events_delivered",
            "events_missing",
            "events_duplicated",
            "events_out_of_order",
            "filter_violations",
            "events_after_unsubscribe",
            "protocol_violations",
            "unexpected_closes",
            "slow_consumer_closes",
        ] {
            assert!(json["counters"].get(counter).is_some(), "{counter}");
        }
        for metric in ["fanout", "connect", "subscribe"] {
            for stat in ["count", "min", "p50", "p90", "p99", "p999", "max", "mean"] {
                assert!(json["latency_us"][metric].get(stat).is_some(), "{metric}.{stat}");
            }
        }
    }

    #[test]
    fn limited_by_reads_as_cli_md_names_it() {
        let json = serde_json::to_value(CapacityReport::template()).unwrap();
        assert_eq!(json["limited_by"], "gate");
        assert!(json["highest_passing_deliveries_per_s"].is_number());
        for limit in [LimitedBy::Gate, LimitedBy::Harness, LimitedBy::Range, LimitedBy::Interrupted] {
            assert_eq!(serde_json::to_value(limit).unwrap(), limit.name());
        }
    }
}
