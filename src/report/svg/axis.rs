//! Axes: how a data value becomes a position (linear, logarithmic, or "nines" for percentile
//! levels), where the ticks go, and how their labels read in the axis's unit.

use crate::report::numbers::{format_count, format_latency, trim_number};

/// How values are placed along an axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AxisKind {
    /// Evenly; starts at zero.
    Linear,
    /// By order of magnitude; for values spanning decades (all must be positive).
    Log,
    /// Percentile levels as HdrHistogram plots them: the value is the number of nines,
    /// `-log10(1 - q)`, so 0 is 0 %, 1 is 90 %, 2 is 99 %, 3 is 99.9 %.
    Nines,
}

/// What an axis measures; decides how its tick labels read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Plain numbers: 0, 500, 1.5k, 2M.
    Count,
    /// Seconds since the run started.
    Seconds,
    /// Latency in microseconds, labelled in µs, ms or s by the axis's range.
    Micros,
    /// Number of nines (see [`AxisKind::Nines`]), labelled as percentiles.
    Nines,
}

/// One axis of a chart: what it shows and how.
#[derive(Debug, Clone, PartialEq)]
pub struct Axis {
    pub label: String,
    pub kind: AxisKind,
    pub unit: Unit,
}

/// An axis fitted to data: maps values onto `[0, 1]` and knows its ticks.
#[derive(Debug, Clone, PartialEq)]
pub struct Scale {
    kind: AxisKind,
    unit: Unit,
    /// Domain ends; for `Log`, their base-10 logarithms.
    lo: f64,
    hi: f64,
    /// Tick values in data units.
    ticks: Vec<f64>,
}

impl Scale {
    /// Fits `axis` to `values` (non-finite values are ignored).
    pub fn fit(axis: &Axis, values: impl IntoIterator<Item = f64>) -> Scale {
        let values: Vec<f64> = values.into_iter().filter(|v| v.is_finite()).collect();
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        match axis.kind {
            AxisKind::Linear => {
                let max = if max > 0.0 { max } else { 1.0 };
                let step = nice_step(max, 5);
                // Time ends where the run ended; other values round up to the next tick.
                let hi = if axis.unit == Unit::Seconds { max } else { (max / step).ceil() * step };
                let ticks =
                    (0..).map(|i| f64::from(i) * step).take_while(|t| *t <= hi + step * 1e-9).collect();
                Scale { kind: axis.kind, unit: axis.unit, lo: 0.0, hi, ticks }
            }
            AxisKind::Log => {
                let min = values.iter().copied().filter(|v| *v > 0.0).fold(f64::INFINITY, f64::min);
                let (lo, hi) = if min.is_finite() {
                    (min.log10().floor(), max.log10().ceil().max(min.log10().floor() + 1.0))
                } else {
                    (0.0, 1.0)
                };
                let decades = (hi - lo) as i32;
                let multiples: &[f64] = if decades <= 2 { &[1.0, 2.0, 5.0] } else { &[1.0] };
                let mut ticks = Vec::new();
                for d in lo as i32..=hi as i32 {
                    for m in multiples {
                        let t = m * 10f64.powi(d);
                        if t.log10() <= hi + 1e-9 {
                            ticks.push(t);
                        }
                    }
                }
                Scale { kind: axis.kind, unit: axis.unit, lo, hi, ticks }
            }
            AxisKind::Nines => {
                let hi = if max > 0.0 { max.ceil() } else { 1.0 };
                let ticks = (0..=hi as u32).map(f64::from).collect();
                Scale { kind: axis.kind, unit: axis.unit, lo: 0.0, hi, ticks }
            }
        }
    }

    /// Where `value` lies between the ends of the axis: 0 at the start, 1 at the end
    /// (clamped, so a value outside the domain stays on the chart's edge).
    pub fn unit_position(&self, value: f64) -> f64 {
        let v = match self.kind {
            AxisKind::Log => value.max(10f64.powf(self.lo)).log10(),
            AxisKind::Linear | AxisKind::Nines => value,
        };
        if self.hi <= self.lo { 0.5 } else { ((v - self.lo) / (self.hi - self.lo)).clamp(0.0, 1.0) }
    }

    /// The largest value on the axis, in data units.
    pub fn max(&self) -> f64 {
        match self.kind {
            AxisKind::Log => 10f64.powf(self.hi),
            AxisKind::Linear | AxisKind::Nines => self.hi,
        }
    }

    /// Tick values with their labels.
    pub fn ticks(&self) -> Vec<(f64, String)> {
        let step = match self.ticks.as_slice() {
            [a, b, ..] => b - a,
            _ => self.max(),
        };
        self.ticks.iter().map(|t| (*t, self.label(*t, step))).collect()
    }

    fn label(&self, value: f64, step: f64) -> String {
        match self.unit {
            Unit::Count => format_count(value),
            Unit::Seconds => format!("{}s", trim_number(value, decimals_for(step))),
            Unit::Nines => format_nines(value),
            Unit::Micros if self.kind == AxisKind::Log => format_latency(value),
            Unit::Micros => format_micros_tick(value, step, self.max()),
        }
    }
}

/// A step of 1, 2 or 5 times a power of ten that cuts `[0, max]` into about `target` parts.
pub fn nice_step(max: f64, target: u32) -> f64 {
    let raw = max / f64::from(target.max(1));
    let magnitude = 10f64.powf(raw.log10().floor());
    let fraction = raw / magnitude;
    let nice = if fraction <= 1.0 {
        1.0
    } else if fraction <= 2.0 {
        2.0
    } else if fraction <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * magnitude
}

/// `0%`, `90%`, `99%`, `99.9%`, `99.99%` for 0, 1, 2, 3, 4 nines.
pub fn format_nines(nines: f64) -> String {
    let n = nines.round() as usize;
    match n {
        0 => "0%".to_owned(),
        1 => "90%".to_owned(),
        _ => format!("99.{}%", "9".repeat(n - 2)).replace(".%", "%"),
    }
}

/// A latency tick in a unit chosen by the axis's top, with as many decimals as its step needs.
fn format_micros_tick(value: f64, step: f64, top: f64) -> String {
    let (divisor, unit) = if top >= 1e6 {
        (1e6, "s")
    } else if top >= 2e3 {
        (1e3, "ms")
    } else {
        (1.0, "µs")
    };
    format!("{}{unit}", trim_number(value / divisor, decimals_for(step / divisor)))
}

fn decimals_for(step: f64) -> usize {
    if step >= 1.0 || step <= 0.0 { 0 } else { (-step.log10().floor()) as usize }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn axis(kind: AxisKind, unit: Unit) -> Axis {
        Axis { label: String::new(), kind, unit }
    }

    #[test]
    fn linear_axes_start_at_zero_and_end_on_a_round_tick() {
        let scale = Scale::fit(&axis(AxisKind::Linear, Unit::Count), [3.0, 17.0, 44.2]);
        let labels: Vec<String> = scale.ticks().into_iter().map(|(_, l)| l).collect();
        assert_eq!(labels, ["0", "10", "20", "30", "40", "50"]);
        assert_eq!(scale.unit_position(0.0), 0.0);
        assert_eq!(scale.unit_position(25.0), 0.5);
        assert_eq!(scale.unit_position(80.0), 1.0, "clamped");
    }

    #[test]
    fn time_ends_with_the_run() {
        let scale = Scale::fit(&axis(AxisKind::Linear, Unit::Seconds), [1.0, 11.0]);
        assert_eq!(scale.max(), 11.0);
        let labels: Vec<String> = scale.ticks().into_iter().map(|(_, l)| l).collect();
        assert_eq!(labels, ["0s", "5s", "10s"]);
        assert_eq!(scale.unit_position(11.0), 1.0);
    }

    #[test]
    fn an_all_zero_series_still_gets_an_axis() {
        let scale = Scale::fit(&axis(AxisKind::Linear, Unit::Count), [0.0, 0.0]);
        assert!(scale.max() > 0.0);
        assert_eq!(scale.unit_position(0.0), 0.0);
    }

    #[test]
    fn latency_ticks_read_in_a_unit_fitting_the_range() {
        let ms = Scale::fit(&axis(AxisKind::Linear, Unit::Micros), [81_727.0]);
        let labels: Vec<String> = ms.ticks().into_iter().map(|(_, l)| l).collect();
        assert_eq!(labels, ["0ms", "20ms", "40ms", "60ms", "80ms", "100ms"]);
        let fine = Scale::fit(&axis(AxisKind::Linear, Unit::Micros), [2_500.0]);
        assert_eq!(fine.ticks()[1].1, "0.5ms");
        let s = Scale::fit(&axis(AxisKind::Linear, Unit::Micros), [1_184_000.0]);
        let labels: Vec<String> = s.ticks().into_iter().map(|(_, l)| l).collect();
        assert_eq!(labels, ["0s", "0.5s", "1s", "1.5s"]);
        let us = Scale::fit(&axis(AxisKind::Linear, Unit::Micros), [900.0]);
        assert_eq!(us.ticks()[1].1, "200µs");
    }

    #[test]
    fn log_axes_cover_whole_decades() {
        let scale = Scale::fit(&axis(AxisKind::Log, Unit::Micros), [153.0, 28_900.0]);
        assert_eq!(scale.max(), 100_000.0);
        assert_eq!(scale.unit_position(100.0), 0.0);
        assert!((scale.unit_position(1_000.0) - 1.0 / 3.0).abs() < 1e-9);
        let labels: Vec<String> = scale.ticks().into_iter().map(|(_, l)| l).collect();
        assert_eq!(labels, ["100µs", "1ms", "10ms", "100ms"]);
    }

    #[test]
    fn nines_read_as_percentiles() {
        let scale = Scale::fit(&axis(AxisKind::Nines, Unit::Nines), [0.0, 3.2]);
        let labels: Vec<String> = scale.ticks().into_iter().map(|(_, l)| l).collect();
        assert_eq!(labels, ["0%", "90%", "99%", "99.9%", "99.99%"]);
        assert_eq!(scale.unit_position(2.0), 0.5);
    }

    #[test]
    fn steps_are_one_two_or_five_times_a_power_of_ten() {
        assert_eq!(nice_step(44.2, 5), 10.0);
        assert_eq!(nice_step(3.0, 5), 1.0);
    }
}
