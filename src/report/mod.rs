//! Reports: where they are written and the formats shared by every command.
//!
//! - [`folder`]: the report folder of CLI.md; [`files`]: writing a run's folder;
//! - [`read`]: reading a `report.json` back (its model is [`crate::results`]);
//! - [`md`]: `report.md`, short enough for a pull-request comment;
//! - [`html`]: `report.html`, one self-contained page with [`svg`] charts;
//! - [`junit`]: JUnit XML, one testcase per gate or conformance case;
//! - [`hlog`]: HdrHistogram interval logs, one per latency metric;
//! - [`markup`]: XML/HTML escaping, [`numbers`]: number formats, shared by the formats;
//! - [`compare`]: two runs side by side, regressions beyond noise;
//! - [`merge`]: one report from the reports of a run's shards;
//! - [`gates`]: gate conditions on `report.json` fields, parsed for a scenario and judged on a report.

pub mod compare;
pub mod files;
pub mod folder;
pub mod gates;
pub mod hlog;
pub mod html;
pub mod junit;
pub mod markup;
pub mod md;
pub mod merge;
pub mod numbers;
pub mod read;
pub mod summary;
pub mod svg;
