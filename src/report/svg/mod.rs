//! Hand-written SVG charts for `report.html`: values over the seconds of a run, and latency
//! distributions by percentile the way HdrHistogram plots them (a log-scaled percentile axis).
//!
//! Each chart renders to one `<svg>` element with its presentation attributes inline, so it
//! draws without the page's CSS, without scripts and without network access. This module must
//! not read reports: callers turn a report into [`Chart`]s (see `report::html::charts`).

mod axis;
mod chart;

pub use axis::{Axis, AxisKind, Unit};
pub use chart::{Boundary, Chart, Marker, Series, Size};

/// Colours that stay apart for colour-blind readers (Okabe–Ito), in the order series use them.
pub const PALETTE: [&str; 6] = ["#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9"];

/// The colour for failures and gate thresholds.
pub const ALERT: &str = "#c0392b";
