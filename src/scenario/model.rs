//! The scenario file as written: serde structs that only parse (STYLE rule 3).
//!
//! Unknown keys are refused (`deny_unknown_fields`) and every value with a syntax of its own
//! (durations, rates, ranges, topics) is parsed while deserializing, so its error carries the
//! value's position in the file. What needs more than one value to judge (filter keys against
//! topics, gate metrics) is checked by `plan/`, which uses the [`Spanned`] positions kept here.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use super::values::{
    Count, Credential, DurationValue, FractionValue, LoadValue, RangeValue, RateValue, TopicValue, Via,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioFile {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// The run's length; with `[[stages]]` the stages say it instead, and a `[capacity]` table's
    /// steps have their own.
    pub duration: Option<Spanned<DurationValue>>,
    /// Load that changes over time (`stages.rs`): named stages, one after another.
    #[serde(default)]
    pub stages: Vec<Spanned<super::stages::StageSpec>>,
    #[serde(default)]
    pub seed: Option<u64>,
    #[serde(default)]
    pub target: Option<Spanned<TargetSpec>>,
    #[serde(default)]
    pub auth: Option<Spanned<AuthSpec>>,
    #[serde(default)]
    pub clients: Vec<Spanned<ClientGroupSpec>>,
    #[serde(default)]
    pub publishers: Vec<Spanned<PublisherSpec>>,
    #[serde(default)]
    pub gates: BTreeMap<Spanned<String>, Spanned<String>>,
    #[serde(default)]
    pub harness: HarnessSpec,
    /// A capacity search instead of one run (`plan/capacity.rs`).
    #[serde(default)]
    pub capacity: Option<Spanned<CapacitySpec>>,
}

/// `[capacity]`: what a capacity search varies, over which range, and how long each step lasts.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapacitySpec {
    /// `publishers.<name>.rate`, `clients.<group>.count` or `clients.<group>.arrival_rate`.
    pub vary: Spanned<String>,
    /// The first step's load, in the varied value's unit (a rate may be written `"200/s"`).
    pub from: Spanned<LoadValue>,
    /// The highest load the search tries.
    pub to: Spanned<LoadValue>,
    /// How long each step is measured, after its warm-up.
    pub step_duration: Spanned<DurationValue>,
    /// The start of each step's load that its judgement leaves out (default 2s).
    pub warmup: Option<DurationValue>,
    /// Factor between steps on the way up (default 2).
    pub growth: Option<Spanned<f64>>,
    /// Bisection stops when the bracket is this narrow, relative to its bottom (default "5%").
    pub resolution: Option<Spanned<FractionValue>>,
}

/// `target = "ws://…"` or a `[target]` table.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum TargetSpec {
    Url(String),
    Table(TargetTable),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetTable {
    /// `ws://` or `wss://` URL of the target's `/v1/ws`; omitted: the bundled server in-process.
    pub url: Option<String>,
    /// Base URL for `POST /v1/events`; derived from `url` when omitted.
    pub http_url: Option<String>,
    /// Faults for the bundled server (`serve --fault`); refused with an external target.
    #[serde(default)]
    pub faults: Vec<String>,
    /// Outbound queue bound of the bundled server (messages per connection).
    pub queue: Option<usize>,
    /// Kernel send buffer per connection of the bundled server (bytes).
    pub socket_send_buffer: Option<u32>,
    /// The bundled server speaks TLS (`wss://`, `https://`) with a certificate generated at
    /// start, which the run's clients trust. For an external target, the URL's scheme says it.
    pub tls: Option<bool>,
    /// PEM file of the CA that signed an external `wss://` target's certificate (a private CA);
    /// default: the platform's root certificates.
    pub ca_cert: Option<String>,
    /// Do not verify the target's certificate at all (reported loudly).
    pub insecure: Option<bool>,
    /// Run the bundled server as this many `serve` processes on one port over a Redis broker
    /// started for the run (for more connections than one process may hold); default 1, in-process.
    pub cluster_workers: Option<u32>,
    /// `http://` or `https://` URL of the target's Prometheus metrics, scraped once a second
    /// (`intervals[].server`); default: the bundled server's, or the `/metrics` next to an
    /// external target's `/v1/ws` when it answers.
    pub metrics_url: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSpec {
    pub jwt_secret: Option<String>,
    pub tokens_file: Option<String>,
    pub token_env: Option<String>,
    /// Lifetime of minted tokens (default: the run's length plus a margin).
    pub token_ttl: Option<DurationValue>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientGroupSpec {
    pub name: String,
    /// The group's size; with stages, its size until a stage changes it (optional when a stage
    /// names the group).
    pub count: Option<Count>,
    /// Spread the group's connections evenly over this time.
    pub ramp: Option<DurationValue>,
    /// Or: open connections at this rate.
    pub arrival_rate: Option<RateValue>,
    /// Wait this long after the run starts before the first connection.
    pub start_after: Option<DurationValue>,
    #[serde(default)]
    pub topics: Vec<TopicValue>,
    pub filters: Option<Spanned<BTreeMap<String, Vec<String>>>>,
    pub churn: Option<ChurnSpec>,
    #[serde(default)]
    pub credential: Credential,
    /// Present the token as `?access_token=` instead of the header.
    #[serde(default)]
    pub token_in_query: bool,
    pub read: Option<ReadSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChurnSpec {
    pub reconnect_every: Option<RangeValue>,
    pub resubscribe_every: Option<RangeValue>,
    /// Time between an `unsubscription_confirmed` and the next subscribe (default 200ms):
    /// events sent in this window must not arrive.
    pub resubscribe_pause: Option<DurationValue>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadSpec {
    /// Stop reading this long after subscribing…
    pub stall_after: DurationValue,
    /// …for this long, then read again (and see how the server cut the connection).
    pub stall_for: DurationValue,
    /// Receive buffer of the socket (bytes), so a stall fills the server's queue sooner.
    pub socket_buffer_bytes: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublisherSpec {
    pub name: Option<String>,
    pub topic: TopicValue,
    /// Events per second; with stages, the rate until a stage changes it (optional when a
    /// stage names the publisher).
    pub rate: Option<RateValue>,
    #[serde(default)]
    pub via: Via,
    /// Separate publisher connections, each with its own sequence and share of the rate.
    pub connections: Option<Count>,
    /// Weights of `severity` (alerts) values.
    pub severity_mix: Option<Spanned<BTreeMap<String, u32>>>,
    /// Weights of `status` values (devices, system_status).
    pub status_mix: Option<Spanned<BTreeMap<String, u32>>>,
    /// Distinct device ids the events name.
    pub device_ids: Option<Count>,
    /// Approximate size of each event's `data`, padded with a filler field.
    pub payload_bytes: Option<usize>,
    pub start_after: Option<DurationValue>,
    /// Stop publishing this long before the run's end (default: the drain time).
    pub stop_before_end: Option<DurationValue>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HarnessSpec {
    /// Worker threads for clients (default: the CPUs).
    pub threads: Option<Count>,
    /// Event-loop lag beyond which the run's measurements are not trusted (default 25ms).
    pub max_loop_lag: Option<DurationValue>,
    /// Time after the publishers stop for the last deliveries to arrive (default 2s).
    pub drain: Option<DurationValue>,
    /// Connect timeout per attempt (default 10s).
    pub connect_timeout: Option<DurationValue>,
    /// Serve the live endpoint (`/metrics`, `/events`, `/`) on this `HOST:PORT` during the run,
    /// like `run --live` (which wins).
    pub live: Option<toml::Spanned<String>>,
    /// `kernel` (default: frames timed by the kernel's receive stamps where the platform gives
    /// them) or `user` (timed when read).
    pub timestamps: Option<Spanned<String>>,
    /// Self-test faults of the harness itself: `stall=200ms/2s`.
    #[serde(default)]
    pub faults: Vec<Spanned<String>>,
}
