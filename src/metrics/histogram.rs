//! HdrHistogram helpers: the one histogram configuration, summaries, and the compressed
//! base64 encoding `report.json` carries (CLI.md: "HdrHistogram V2 compressed, base64").

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};

use crate::results::model::LatencySummary;

/// Latency histograms record microseconds; anything above an hour is recorded as an hour.
pub type Latency = Histogram<u64>;

/// Largest value recorded, in microseconds (1 hour).
pub const MAX_US: u64 = 3_600_000_000;

/// A new, empty latency histogram: 3 significant digits, resizing as values grow.
pub fn new_histogram() -> Latency {
    Histogram::new(3).expect("3 significant digits is a valid histogram configuration")
}

/// Records one value in microseconds, clamped to [1 µs, 1 h].
#[inline]
pub fn record(histogram: &mut Latency, micros: u64) {
    // `record` grows an auto-resizing histogram; `saturating_record` would clamp to its current size.
    let _ = histogram.record(micros.clamp(1, MAX_US));
}

/// count, min, percentiles, max and mean.
pub fn summarize(histogram: &Latency) -> LatencySummary {
    if histogram.is_empty() {
        return LatencySummary::default();
    }
    LatencySummary {
        count: histogram.len(),
        min: histogram.min(),
        p50: histogram.value_at_quantile(0.50),
        p90: histogram.value_at_quantile(0.90),
        p99: histogram.value_at_quantile(0.99),
        p999: histogram.value_at_quantile(0.999),
        max: histogram.max(),
        mean: histogram.mean(),
    }
}

/// V2 compressed, base64.
pub fn encode(histogram: &Latency) -> String {
    let mut bytes = Vec::new();
    // Serializing into a Vec cannot fail for a histogram we built.
    let _ = V2DeflateSerializer::new().serialize(histogram, &mut bytes);
    STANDARD.encode(bytes)
}

#[derive(Debug, thiserror::Error)]
#[error("not an HdrHistogram (V2, base64): {0}")]
pub struct DecodeError(String);

/// Reverses [`encode`].
pub fn decode(text: &str) -> Result<Latency, DecodeError> {
    let bytes = STANDARD.decode(text.trim()).map_err(|e| DecodeError(e.to_string()))?;
    let mut histogram: Latency =
        Deserializer::new().deserialize(&mut bytes.as_slice()).map_err(|e| DecodeError(format!("{e:?}")))?;
    histogram.auto(true);
    Ok(histogram)
}

/// Adds `source` into `total` (both auto-resizing, so this cannot fail).
pub fn merge(total: &mut Latency, source: &Latency) {
    let _ = total.add(source);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_round_trips_exactly() {
        let mut h = new_histogram();
        for v in [1, 10, 100, 1_000, 123_456, 10_000_000] {
            record(&mut h, v);
        }
        let back = decode(&encode(&h)).unwrap();
        assert_eq!(summarize(&back), summarize(&h));
        assert!(decode("not base64!").is_err());
    }

    #[test]
    fn summaries_of_empty_histograms_are_zero() {
        assert_eq!(summarize(&new_histogram()), LatencySummary::default());
    }

    #[test]
    fn values_are_clamped_into_range() {
        let mut h = new_histogram();
        record(&mut h, 0);
        record(&mut h, u64::MAX);
        assert_eq!(h.min(), 1);
        assert!(h.max() >= MAX_US / 1000 * 999, "{}", h.max());
    }
}
