//! The results of a run as data: `report.json`'s model ([`model`]), the latency metrics by name
//! ([`latency`]), what each counter means ([`counters`]), what the target's own metrics said
//! each second ([`server_sample`]); a capacity search's result is part of [`model`].
//!
//! The bottom of the harness: metrics record into these types, runners fill them, every report
//! writer, `compare`, `merge` and the gates read them. It imports nothing of the crate, so any
//! layer may use it; it must not grow I/O, formatting or judgement.

pub mod counters;
pub mod latency;
pub mod model;
pub mod server_sample;

pub use latency::LatencyMetric;
pub use model::{
    Counters, Environment, GateResult, GroupReport, HarnessReport, Interval, LatencySummary, RunReport,
    Sample, TlsReport,
};
