//! Reports: where they are written and the formats shared by every command.
//!
//! - [`folder`]: the report folder of CLI.md; [`files`]: writing a run's folder;
//! - [`hlog`]: HdrHistogram interval logs, one per latency metric;
//! - [`junit`]: JUnit XML, one testcase per gate or conformance case;
//! - [`model`]: `report.json` of `run`;
//! - [`md`]: `report.md`, short enough for a pull-request comment;
//! - [`merge`]: one report from the reports of a run's shards.

pub mod files;
pub mod folder;
pub mod hlog;
pub mod junit;
pub mod md;
pub mod merge;
pub mod model;
