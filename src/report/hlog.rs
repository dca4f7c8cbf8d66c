//! HdrHistogram interval logs (`<metric>.hlog`), one interval histogram per second, in the
//! format HistogramLogAnalyzer and `HistogramLogProcessor` read. Values are microseconds; the
//! log's max column is in milliseconds (divisor 1000).

use std::io::{self, Write};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};

use super::model::RunReport;
use crate::metrics::histogram::decode;

/// Metrics that have at least one interval histogram in `report`.
pub fn metrics_with_intervals(report: &RunReport) -> Vec<String> {
    let mut names: Vec<String> = report.intervals.iter().flat_map(|i| i.histograms.keys().cloned()).collect();
    names.sort();
    names.dedup();
    names
}

/// Writes the interval log of `metric`.
pub fn write_hlog<W: Write>(w: &mut W, report: &RunReport, metric: &str) -> io::Result<()> {
    let start = parse_start(&report.started_at);
    let mut serializer = V2DeflateSerializer::new();
    let mut log = IntervalLogWriterBuilder::new()
        .add_comment(&format!(
            "openframe-harness {} latency of run {:?}, microseconds",
            metric, report.scenario
        ))
        .with_start_time(start)
        .with_base_time(start)
        .with_max_value_divisor(1000.0)
        .begin_log_with(w, &mut serializer)?;
    let tag = Tag::new(metric);
    for interval in &report.intervals {
        let Some(encoded) = interval.histograms.get(metric) else { continue };
        let histogram = decode(encoded).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        let end = Duration::from_secs_f64(interval.t_s.max(1.0));
        log.write_histogram(&histogram, end - Duration::from_secs(1), Duration::from_secs(1), tag)
            .map_err(|e| io::Error::other(format!("{e:?}")))?;
    }
    Ok(())
}

/// The run's start as a `SystemTime` (the epoch when it cannot be read).
fn parse_start(started_at: &str) -> SystemTime {
    crate::protocol::timestamp::parse_rfc3339_utc(started_at)
        .map_or(UNIX_EPOCH, |us| UNIX_EPOCH + Duration::from_micros(us))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::histogram::{encode, new_histogram, record};
    use crate::report::model::Interval;
    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};

    #[test]
    fn writes_one_readable_entry_per_interval() {
        let mut report = RunReport::empty("x");
        report.started_at = "2026-01-01T00:00:00.000Z".into();
        for t in 1..=3 {
            let mut h = new_histogram();
            record(&mut h, 1000 * t);
            let mut interval = Interval { t_s: t as f64, ..Interval::default() };
            interval.histograms.insert("fanout".into(), encode(&h));
            report.intervals.push(interval);
        }
        assert_eq!(metrics_with_intervals(&report), ["fanout"]);
        let mut out = Vec::new();
        write_hlog(&mut out, &report, "fanout").unwrap();
        let entries: Vec<_> = IntervalLogIterator::new(&out)
            .filter_map(Result::ok)
            .filter_map(|e| match e {
                LogEntry::Interval(h) => Some(h.start_timestamp()),
                _ => None,
            })
            .collect();
        assert_eq!(entries, [Duration::ZERO, Duration::from_secs(1), Duration::from_secs(2)]);
    }
}
