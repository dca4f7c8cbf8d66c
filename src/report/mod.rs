//! Reports: where they are written and the formats shared by every command.
//!
//! - [`folder`]: the report folder of CLI.md; [`files`]: writing a run's folder;
//! - [`model`]: `report.json` of `run`; [`counters`]: what each counter means;
//!   [`server_sample`]: the target's own figures per second;
//!   [`read`]: reading a `report.json` back;
//! - [`md`]: `report.md`, short enough for a pull-request comment;
//! - [`html`]: `report.html`, one self-contained page with [`svg`] charts;
//! - [`junit`]: JUnit XML, one testcase per gate or conformance case;
//! - [`hlog`]: HdrHistogram interval logs, one per latency metric;
//! - [`markup`]: XML/HTML escaping, [`numbers`]: number formats, shared by the formats;
//! - [`compare`]: two runs side by side, regressions beyond noise;
//! - [`merge`]: one report from the reports of a run's shards.

pub mod compare;
pub mod counters;
pub mod files;
pub mod folder;
pub mod hlog;
pub mod html;
pub mod junit;
pub mod markup;
pub mod md;
pub mod merge;
pub mod model;
pub mod numbers;
pub mod read;
pub mod server_sample;
pub mod svg;
