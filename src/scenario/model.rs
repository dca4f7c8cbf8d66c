//! The scenario file as written: serde structs that only parse (STYLE rule 3).
//!
//! Unknown keys are refused (`deny_unknown_fields`) and every value with a syntax of its own
//! (durations, rates, ranges, topics) is parsed while deserializing, so its error carries the
//! value's position in the file. What needs more than one value to judge (filter keys against
//! topics, gate metrics) is checked by `plan/`, which uses the [`Spanned`] positions kept here.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer};
use toml::Spanned;

use crate::protocol::Topic;
use crate::util::duration::parse_duration;

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

// ---- values with a syntax of their own ----

/// A duration such as `30s`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DurationValue(pub Duration);

/// A rate such as `200/s`, `12000/m`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateValue(pub f64);

/// A duration range such as `2s..8s`, or one duration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RangeValue(pub Duration, pub Duration);

/// A positive count.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Count(pub u64);

/// A load: a number in the varied value's unit, or a rate string such as `"200/s"`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoadValue(pub f64);

/// A fraction: `"5%"` or `0.05`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FractionValue(pub f64);

/// A topic name of PROTOCOL.md §3.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TopicValue(pub Topic);

/// How a client group authenticates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Credential {
    #[default]
    Valid,
    Expired,
    BadSignature,
    AlgNone,
    Garbage,
    Missing,
}

impl Credential {
    pub fn is_valid(self) -> bool {
        self == Credential::Valid
    }
}

/// How a publisher injects events.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Via {
    #[default]
    WebSocket,
    Http,
}

/// Implements `Deserialize` for a value parsed from a string by `parse`.
macro_rules! from_str_value {
    ($ty:ty, $expecting:literal, $parse:expr) => {
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)
                    .map_err(|_| de::Error::custom(concat!("expected ", $expecting)))?;
                let parse: fn(&str) -> Result<$ty, String> = $parse;
                parse(&text).map_err(de::Error::custom)
            }
        }
    };
}

from_str_value!(DurationValue, "a duration string such as \"30s\"", |s| {
    parse_duration(s).map(DurationValue).map_err(|e| e.to_string())
});

from_str_value!(RateValue, "a rate string such as \"200/s\"", |s| parse_rate(s).map(RateValue));

from_str_value!(RangeValue, "a duration range such as \"2s..8s\"", |s| {
    let (low, high) = s.split_once("..").unwrap_or((s, s));
    let low = parse_duration(low).map_err(|e| e.to_string())?;
    let high = parse_duration(high).map_err(|e| e.to_string())?;
    if low > high || low.is_zero() {
        return Err(format!("invalid range {s:?}: expected LOW..HIGH with 0 < LOW <= HIGH"));
    }
    Ok(RangeValue(low, high))
});

from_str_value!(TopicValue, "a topic name (devices, alerts, system_status)", |s| {
    Topic::from_name(s)
        .map(TopicValue)
        .ok_or_else(|| format!("unknown topic {s:?}: expected devices, alerts or system_status"))
});

from_str_value!(Credential, "a credential kind", |s| match s {
    "valid" => Ok(Credential::Valid),
    "expired" => Ok(Credential::Expired),
    "bad_signature" => Ok(Credential::BadSignature),
    "alg_none" => Ok(Credential::AlgNone),
    "garbage" => Ok(Credential::Garbage),
    "missing" => Ok(Credential::Missing),
    _ => Err(format!(
        "unknown credential {s:?}: expected valid, expired, bad_signature, alg_none, garbage or missing"
    )),
});

from_str_value!(Via, "\"websocket\" or \"http\"", |s| match s {
    "websocket" => Ok(Via::WebSocket),
    "http" => Ok(Via::Http),
    _ => Err(format!("unknown publishing path {s:?}: expected \"websocket\" or \"http\"")),
});

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct CountVisitor;
        impl de::Visitor<'_> for CountVisitor {
            type Value = Count;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a positive integer")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Count, E> {
                match u64::try_from(v) {
                    Ok(n) if n > 0 => Ok(Count(n)),
                    _ => Err(E::custom(format!("expected a positive integer, found {v}"))),
                }
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Count, E> {
                self.visit_i64(i64::try_from(v).unwrap_or(i64::MAX))
            }
        }
        deserializer.deserialize_i64(CountVisitor)
    }
}

impl<'de> Deserialize<'de> for LoadValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct LoadVisitor;
        impl de::Visitor<'_> for LoadVisitor {
            type Value = LoadValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a positive number, or a rate such as \"200/s\"")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<LoadValue, E> {
                if v.is_finite() && v > 0.0 {
                    Ok(LoadValue(v))
                } else {
                    Err(E::custom(format!("expected a positive load, found {v}")))
                }
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<LoadValue, E> {
                self.visit_f64(v as f64)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<LoadValue, E> {
                self.visit_f64(v as f64)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<LoadValue, E> {
                parse_rate(v).map(LoadValue).map_err(E::custom)
            }
        }
        deserializer.deserialize_any(LoadVisitor)
    }
}

impl<'de> Deserialize<'de> for FractionValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FractionVisitor;
        impl de::Visitor<'_> for FractionVisitor {
            type Value = FractionValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a fraction such as \"5%\" or 0.05")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<FractionValue, E> {
                if v.is_finite() && v > 0.0 && v < 1.0 {
                    Ok(FractionValue(v))
                } else {
                    Err(E::custom(format!(
                        "expected a fraction between 0 and 1 (or 0 % and 100 %), found {v}"
                    )))
                }
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<FractionValue, E> {
                self.visit_f64(v as f64)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<FractionValue, E> {
                let percent = v.trim().strip_suffix('%').and_then(|p| p.trim().parse::<f64>().ok());
                match percent {
                    Some(p) => self.visit_f64(p / 100.0),
                    None => Err(E::custom(format!(
                        "invalid fraction {v:?}: expected a percentage such as \"5%\""
                    ))),
                }
            }
        }
        deserializer.deserialize_any(FractionVisitor)
    }
}

/// Parses `200/s`, `1.5/s`, `12000/m`, `100/ms`.
pub fn parse_rate(s: &str) -> Result<f64, String> {
    let error = || format!("invalid rate {s:?}: expected COUNT/UNIT such as \"200/s\" (units: ms, s, m, h)");
    let (count, unit) = s.trim().split_once('/').ok_or_else(error)?;
    let count: f64 = count.trim().parse().map_err(|_| error())?;
    let per_second = match unit.trim() {
        "ms" => 1000.0,
        "s" => 1.0,
        "m" | "min" => 1.0 / 60.0,
        "h" => 1.0 / 3600.0,
        _ => return Err(error()),
    };
    let rate = count * per_second;
    if !(rate.is_finite() && rate > 0.0) {
        return Err(format!("invalid rate {s:?}: must be more than zero"));
    }
    Ok(rate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_per_second() {
        assert_eq!(parse_rate("200/s"), Ok(200.0));
        assert_eq!(parse_rate("120/m"), Ok(2.0));
        assert_eq!(parse_rate("1/ms"), Ok(1000.0));
        for bad in ["200", "0/s", "-1/s", "x/s", "5/fortnight"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
    }
}
