//! How much a figure moves by chance: the standard error of a whole-run figure, from what one
//! report holds.
//!
//! - **Per-second spread.** Each interval carries its own HdrHistograms and counts, so a figure
//!   has one value per second. Their robust spread (1.4826 × the median absolute deviation,
//!   which ignores a few odd seconds such as the ramp) divided by √n estimates the standard
//!   error of the whole-run figure, treating seconds as independent samples. This catches a
//!   machine whose speed wanders during the run (other jobs, throttling).
//! - **Sampling error.** A percentile read from n samples is itself uncertain: the rank of
//!   quantile q varies by √(n·q·(1−q)), so half the distance between the values at
//!   q ± √(q·(1−q)/n) estimates its standard error (the distribution-free interval for a
//!   quantile); for the mean, σ/√n.
//! - **Borrowed spread.** A figure without per-second values of its own (completion, a client
//!   group's fan-out, connects that all happened in the first second) borrows fan-out
//!   latency's relative per-second spread at the same statistic: they run on the same machine
//!   at the same time, and scheduling noise moves them alike.
//!
//! A run's standard error for a figure is the largest of these it has. This is an estimate, not
//! a proof (seconds are not truly independent), which is why `compare` allows several standard
//! errors, not one.

use crate::metrics::histogram::{Latency, decode};
use crate::results::model::{Interval, RunReport};

/// Fewer usable seconds than this give no estimate (a spread of two values means little).
pub const MIN_INTERVALS: usize = 3;

/// A latency statistic can be read from an interval only when at least this many of its
/// samples lie beyond it (e.g. 1,000 samples for p99), as for the whole run.
pub const MIN_TAIL_SAMPLES: f64 = 10.0;

/// The statistics `compare` judges, and how each is read from a histogram.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stat {
    Quantile(f64),
    Mean,
}

impl Stat {
    /// Samples needed before the statistic means something.
    pub fn min_samples(self) -> u64 {
        match self {
            Stat::Quantile(q) => (MIN_TAIL_SAMPLES / (1.0 - q)).ceil() as u64,
            Stat::Mean => 2 * MIN_TAIL_SAMPLES as u64,
        }
    }

    /// The statistic of `histogram`.
    pub fn of(self, histogram: &Latency) -> f64 {
        match self {
            Stat::Quantile(q) => histogram.value_at_quantile(q) as f64,
            Stat::Mean => histogram.mean(),
        }
    }
}

/// The standard error of a run's whole-run `stat` of latency `metric` whose value is `value`
/// microseconds: the largest of its per-second spread (or fan-out's, relative, when it has
/// none), and its sampling error. `None` when nothing gives an estimate.
pub fn latency_error(report: &RunReport, metric: &str, stat: Stat, value: f64) -> Option<f64> {
    let spread = spread_error(report, metric, stat).or_else(|| {
        let fanout_value = stat.of(&decode(report.histograms.get("fanout")?).ok()?);
        let relative = spread_error(report, "fanout", stat)? / fanout_value;
        (metric != "fanout" && fanout_value > 0.0).then_some(relative * value)
    });
    let sampling =
        report.histograms.get(metric).and_then(|h| decode(h).ok()).and_then(|h| sampling_error(&h, stat));
    match (spread, sampling) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// The sampling error of `stat` read from `histogram` (see the module's documentation).
pub fn sampling_error(histogram: &Latency, stat: Stat) -> Option<f64> {
    let n = histogram.len() as f64;
    if n < 2.0 {
        return None;
    }
    Some(match stat {
        Stat::Quantile(q) => {
            let d = (q * (1.0 - q) / n).sqrt();
            let lo = histogram.value_at_quantile((q - d).max(0.0)) as f64;
            let hi = histogram.value_at_quantile((q + d).min(1.0)) as f64;
            (hi - lo) / 2.0
        }
        Stat::Mean => histogram.stdev() / n.sqrt(),
    })
}

/// Standard error of a run's whole-run `stat` of latency `metric`, in microseconds, from its
/// per-second histograms; `None` when too few seconds have enough samples.
pub fn spread_error(report: &RunReport, metric: &str, stat: Stat) -> Option<f64> {
    let values: Vec<f64> = report
        .intervals
        .iter()
        .filter_map(|i| decode(i.histograms.get(metric)?).ok())
        .filter(|h| h.len() >= stat.min_samples())
        .map(|h| stat.of(&h))
        .collect();
    standard_error(&values)
}

/// Standard error of a run's whole-run rate of `count` per second, from the seconds of its
/// steady state: while publishers ran, without the first and last (partial) such seconds.
pub fn rate_standard_error(report: &RunReport, count: impl Fn(&Interval) -> u64) -> Option<f64> {
    let publishing: Vec<usize> =
        report.intervals.iter().enumerate().filter(|(_, i)| i.events_published > 0).map(|(n, _)| n).collect();
    let (&first, &last) = (publishing.first()?, publishing.last()?);
    if last < first + 2 {
        return None;
    }
    let mut previous_end = report.intervals[first].t_s;
    let mut rates = Vec::new();
    for interval in &report.intervals[first + 1..last] {
        let length = interval.t_s - previous_end;
        previous_end = interval.t_s;
        if length > 0.0 {
            rates.push(count(interval) as f64 / length);
        }
    }
    standard_error(&rates)
}

/// 1.4826 × MAD / √n, or `None` below [`MIN_INTERVALS`] values.
pub fn standard_error(values: &[f64]) -> Option<f64> {
    if values.len() < MIN_INTERVALS {
        return None;
    }
    let center = median(values.to_vec());
    let mad = median(values.iter().map(|v| (v - center).abs()).collect());
    Some(1.4826 * mad / (values.len() as f64).sqrt())
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::histogram::{encode, new_histogram, record};

    #[test]
    fn the_spread_ignores_an_odd_second() {
        let steady = [8.0, 12.0, 9.0, 11.0, 10.0, 13.0, 7.0, 10.5, 9.5];
        let with_ramp: Vec<f64> = [0.5].iter().chain(steady.iter()).copied().collect();
        let a = standard_error(&steady).unwrap();
        let b = standard_error(&with_ramp).unwrap();
        assert!(a > 0.0 && b < 2.0 * a, "{a} {b}");
        assert_eq!(standard_error(&[1.0, 2.0]), None, "too few");
        assert_eq!(standard_error(&[5.0, 5.0, 5.0]), Some(0.0));
    }

    #[test]
    fn tail_statistics_need_samples_beyond_them() {
        assert_eq!(Stat::Quantile(0.5).min_samples(), 20);
        assert_eq!(Stat::Quantile(0.99).min_samples(), 1_000);
        assert_eq!(Stat::Quantile(0.999).min_samples(), 10_000);
    }

    #[test]
    fn latency_error_comes_from_the_seconds_with_enough_samples() {
        let mut report = RunReport::empty("x");
        for (t, center, samples) in [(1, 1_000, 30), (2, 2_000, 30), (3, 3_000, 30), (4, 50_000, 5)] {
            let mut h = new_histogram();
            for _ in 0..samples {
                record(&mut h, center);
            }
            let mut interval = Interval { t_s: t as f64, ..Interval::default() };
            interval.histograms.insert("fanout".into(), encode(&h));
            report.intervals.push(interval);
        }
        let se = spread_error(&report, "fanout", Stat::Quantile(0.5)).unwrap();
        // medians 1000, 2000, 3000 (the 5-sample second is left out): MAD 1000.
        assert!((se - 1.4826 * 1_000.0 / 3f64.sqrt()).abs() < 5.0, "{se}");
        assert_eq!(spread_error(&report, "fanout", Stat::Quantile(0.99)), None);
    }

    #[test]
    fn a_percentile_of_few_samples_is_uncertain() {
        let uniform = |n: u64| {
            let mut h = new_histogram();
            for i in 0..n {
                record(&mut h, 1_000 + i * 100_000 / n);
            }
            h
        };
        let few = sampling_error(&uniform(100), Stat::Quantile(0.9)).unwrap();
        let many = sampling_error(&uniform(100_000), Stat::Quantile(0.9)).unwrap();
        // sqrt(0.09/100) = 3 % of the range: about 3,000 µs; a thousand times the samples,
        // about 30 times less (the histogram's 0.1 % buckets blur the last digit).
        assert!((few - 3_000.0).abs() < 300.0, "{few}");
        assert!(many < few / 20.0, "{many} {few}");
        assert!(sampling_error(&uniform(1), Stat::Mean).is_none());
    }

    #[test]
    fn figures_without_seconds_of_their_own_borrow_the_fanout_spread() {
        let mut report = RunReport::empty("x");
        let mut total = new_histogram();
        for (t, center) in [(1, 10_000), (2, 12_000), (3, 8_000), (4, 10_000)] {
            let mut h = new_histogram();
            for _ in 0..100 {
                record(&mut h, center);
            }
            crate::metrics::histogram::merge(&mut total, &h);
            let mut interval = Interval { t_s: t as f64, ..Interval::default() };
            interval.histograms.insert("fanout".into(), encode(&h));
            report.intervals.push(interval);
        }
        report.histograms.insert("fanout".into(), encode(&total));
        let fanout = spread_error(&report, "fanout", Stat::Quantile(0.5)).unwrap();
        let fanout_p50 = Stat::Quantile(0.5).of(&total);
        // "completion" has no histogram at all: only the borrowed, relative spread.
        let borrowed = latency_error(&report, "completion", Stat::Quantile(0.5), 2.0 * fanout_p50).unwrap();
        assert!((borrowed - 2.0 * fanout).abs() < 1e-6, "{borrowed} {fanout}");
    }

    #[test]
    fn rates_come_from_the_steady_seconds() {
        let mut report = RunReport::empty("x");
        for (t, published, delivered) in
            [(1, 0, 0), (2, 3, 10), (3, 10, 100), (4, 10, 110), (5, 10, 90), (6, 2, 5)]
        {
            report.intervals.push(Interval {
                t_s: t as f64,
                events_published: published,
                events_delivered: delivered,
                ..Interval::default()
            });
        }
        let se = rate_standard_error(&report, |i| i.events_delivered).unwrap();
        assert!((se - 1.4826 * 10.0 / 3f64.sqrt()).abs() < 1e-9, "{se}");
    }
}
