//! The target's own telemetry beside the harness's: once a second, `run` scrapes the target's
//! Prometheus endpoint (every process of a cluster), parses the exposition with a library and
//! reduces it to a `results::server_sample::ServerSample` per second.
//!
//! The parser is `prometheus-parse`: a small crate (regex-based, Apache-2.0, used by e.g.
//! Vector's and Fluvio's scrapers) that reads the text format 0.0.4 the bundled server and most
//! exporters serve, including histograms and summaries, and skips lines it cannot read instead
//! of failing the scrape. The alternatives were `openmetrics-parser` (LGPL-3.0, OpenMetrics
//! first) and the `prometheus` crate (an exporter with no parser); writing the format by hand is
//! what the issue rules out.
//!
//! A scrape never stops a run: one slower than [`SCRAPE_TIMEOUT`] is skipped for that second, one
//! that fails (refused, not HTTP, not 200) is counted; both leave that second without a sample.
//! This module must not know about reports or the runner: it owns the scraping and the reading
//! of a scrape; the sample's type is data in `results/`.

mod sample;
mod scrape;

pub use sample::reduce;
pub use scrape::{MetricsUrl, ScrapeCounts, ScrapeError, Scraper, metrics_url_next_to, parse_metrics_url};

use std::time::Duration;

/// How long one scrape of one process may take before that second is skipped.
pub const SCRAPE_TIMEOUT: Duration = Duration::from_millis(250);
