//! The values of a scenario file that have a syntax of their own (durations, rates, ranges,
//! counts, loads, fractions, topics, credential kinds, publishing paths), each parsed while
//! deserializing so that its error carries its position in the file.
//!
//! Both the file's tables ([`super::model`]) and its stages ([`super::stages`]) read these; this
//! module reads neither.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer};

use crate::protocol::Topic;
use crate::util::duration::parse_duration;

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
