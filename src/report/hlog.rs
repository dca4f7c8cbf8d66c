//! HdrHistogram interval logs (`<metric>.hlog`), one interval histogram per second, in the
//! format of HdrHistogram's `HistogramLogWriter` (log format version 1.3), which
//! HistogramLogAnalyzer, `HistogramLogProcessor` and the Rust crate's `IntervalLogIterator` read.
//!
//! The harness records microseconds; these logs hold **nanoseconds**, the unit the Java tools
//! assume (HistogramLogAnalyzer divides every value by 10⁶ to plot milliseconds). The
//! `Interval_Max` column is in milliseconds, as the Java writer's default ratio gives it.
//! Interval timestamps are seconds since `BaseTime`, the run's start.

use std::io::{self, Write};
use std::time::{Duration, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hdrhistogram::serialization::{Serializer, V2DeflateSerializer};

use crate::metrics::histogram::{Latency, decode, new_histogram};
use crate::results::model::RunReport;

/// Nanoseconds per recorded unit (microseconds).
const NANOS_PER_UNIT: u64 = 1_000;

/// Divides nanoseconds into the milliseconds of the `Interval_Max` column.
const MAX_VALUE_RATIO: f64 = 1e6;

/// Metrics that have at least one interval histogram in `report`.
pub fn metrics_with_intervals(report: &RunReport) -> Vec<String> {
    let mut names: Vec<String> = report.intervals.iter().flat_map(|i| i.histograms.keys().cloned()).collect();
    names.sort();
    names.dedup();
    names
}

/// Writes the interval log of `metric`.
pub fn write_hlog<W: Write>(w: &mut W, report: &RunReport, metric: &str) -> io::Result<()> {
    let start = start_seconds(&report.started_at);
    writeln!(
        w,
        "#[openframe-harness {metric} latency of run {:?} ({}), values in nanoseconds]",
        report.scenario, report.started_at
    )?;
    writeln!(w, "#[Histogram log format version 1.3]")?;
    writeln!(w, "#[StartTime: {start:.3} (seconds since epoch), {}]", report.started_at)?;
    writeln!(w, "#[BaseTime: {start:.3} (seconds since epoch)]")?;
    writeln!(w, r#""StartTimestamp","Interval_Length","Interval_Max","Interval_Compressed_Histogram""#)?;
    let mut serializer = V2DeflateSerializer::new();
    let mut bytes = Vec::new();
    let mut previous_end = 0.0;
    for interval in &report.intervals {
        let interval_start = previous_end;
        previous_end = interval.t_s;
        let Some(encoded) = interval.histograms.get(metric) else { continue };
        let micros = decode(encoded).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        let nanos = to_nanos(&micros);
        bytes.clear();
        serializer
            .serialize(&nanos, &mut bytes)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{e:?}")))?;
        writeln!(
            w,
            "Tag={metric},{interval_start:.3},{:.3},{:.3},{}",
            (interval.t_s - interval_start).max(0.0),
            // From the microseconds, which hold the max exactly.
            (micros.max() * NANOS_PER_UNIT) as f64 / MAX_VALUE_RATIO,
            STANDARD.encode(&bytes)
        )?;
    }
    Ok(())
}

/// The same distribution in nanoseconds: each recorded bucket moved to 1,000 × its value.
fn to_nanos(micros: &Latency) -> Latency {
    let mut nanos = new_histogram();
    for bucket in micros.iter_recorded() {
        let _ = nanos.record_n(bucket.value_iterated_to() * NANOS_PER_UNIT, bucket.count_at_value());
    }
    nanos
}

/// The run's start in seconds since the epoch (0 when it cannot be read).
fn start_seconds(started_at: &str) -> f64 {
    let start = crate::protocol::timestamp::parse_rfc3339_utc(started_at)
        .map_or(UNIX_EPOCH, |us| UNIX_EPOCH + Duration::from_micros(us));
    start.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::histogram::{encode, record};
    use crate::results::model::Interval;
    use hdrhistogram::Histogram;
    use hdrhistogram::serialization::Deserializer;
    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};

    fn report() -> RunReport {
        let mut report = RunReport::empty("smoke");
        report.started_at = "2026-01-01T00:00:00.500Z".into();
        for t in 1..=3u64 {
            let mut interval = Interval { t_s: t as f64, ..Interval::default() };
            // No deliveries in the first second: no fan-out histogram for it.
            if t > 1 {
                let mut h = new_histogram();
                for v in 1..=100 {
                    record(&mut h, 1_000 * t + v);
                }
                interval.histograms.insert("fanout".into(), encode(&h));
            }
            report.intervals.push(interval);
        }
        report
    }

    #[test]
    fn the_log_reads_back_as_the_intervals_in_nanoseconds() {
        let report = report();
        let mut out = Vec::new();
        write_hlog(&mut out, &report, "fanout").unwrap();
        let mut start_time = None;
        let mut base_time = None;
        let mut intervals = Vec::new();
        for entry in IntervalLogIterator::new(&out) {
            match entry.expect("every line parses") {
                LogEntry::StartTime(t) => start_time = Some(t),
                LogEntry::BaseTime(t) => base_time = Some(t),
                LogEntry::Interval(h) => {
                    let bytes = STANDARD.decode(h.encoded_histogram()).unwrap();
                    let histogram: Histogram<u64> =
                        Deserializer::new().deserialize(&mut bytes.as_slice()).unwrap();
                    intervals.push((
                        h.tag().map(|t| t.as_str().to_owned()),
                        h.start_timestamp(),
                        h.duration(),
                        h.max(),
                        histogram,
                    ));
                }
            }
        }
        let epoch = Duration::from_millis(1_767_225_600_500);
        assert_eq!((start_time, base_time), (Some(epoch), Some(epoch)));
        assert_eq!(intervals.len(), 2);
        for ((tag, start, length, max_ms, histogram), t) in intervals.iter().zip([2u64, 3]) {
            assert_eq!(tag.as_deref(), Some("fanout"));
            assert_eq!(*start, Duration::from_secs(t - 1), "seconds since BaseTime");
            assert_eq!(*length, Duration::from_secs(1));
            assert_eq!(histogram.len(), 100);
            let original = decode(&report.intervals[t as usize - 1].histograms["fanout"]).unwrap();
            for q in [0.0, 0.5, 0.99, 1.0] {
                let nanos = histogram.value_at_quantile(q) as f64;
                let micros = original.value_at_quantile(q) as f64;
                assert!(
                    (nanos / 1_000.0 - micros).abs() <= micros * 0.002,
                    "q {q}: {nanos} ns vs {micros} µs"
                );
            }
            assert!((max_ms - (1_000 * t + 100) as f64 / 1_000.0).abs() < 0.01, "{max_ms}");
        }
    }

    #[test]
    fn the_header_follows_the_java_writer() {
        let mut out = Vec::new();
        write_hlog(&mut out, &report(), "fanout").unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[1], "#[Histogram log format version 1.3]");
        assert!(lines[2].starts_with("#[StartTime: 1767225600.500 (seconds since epoch), "), "{}", lines[2]);
        assert_eq!(lines[3], "#[BaseTime: 1767225600.500 (seconds since epoch)]");
        assert_eq!(
            lines[4],
            r#""StartTimestamp","Interval_Length","Interval_Max","Interval_Compressed_Histogram""#
        );
        assert!(lines[5].starts_with("Tag=fanout,1.000,1.000,2.10"), "{}", lines[5]);
        assert!(lines[5].contains(",HISTF"), "V2 compressed: {}", lines[5]);
        assert_eq!(metrics_with_intervals(&report()), ["fanout"]);
    }
}
