//! Load that changes over time: the scenario's `[[stages]]` as written, and the validated
//! timeline they become — named stages one after another, and per client group and publisher a
//! [`Curve`] (its client count or its rate over the run, constant or ramping linearly within each
//! stage, jumping at a stage's start).
//!
//! ```toml
//! [[stages]]
//! name = "spike"
//! duration = "10s"
//! clients = { dashboards = 2500 }            # jump to 2,500 at the stage's start
//! publishers = { alerts = "10/s..50/s" }     # ramp linearly across the stage
//! ```
//!
//! A value is `N` / `"N/s"` (from the stage's start, held), `"A..B"` / `"A/s..B/s"` (from A to B
//! across the stage) or `"..B"` (from where the previous stage left it to B). A stage that does
//! not name a group or publisher holds its value. This module owns the curve arithmetic the
//! runner's schedules invert; it must not know about connections or time sources.

use std::collections::BTreeMap;
use std::ops::Range;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer};
use toml::Spanned;

use super::values::{DurationValue, parse_rate};

/// One `[[stages]]` table as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageSpec {
    pub name: String,
    pub duration: DurationValue,
    /// Optional check: where the stage begins (it must be where the previous one ends).
    pub start: Option<Spanned<DurationValue>>,
    /// Client counts by group name.
    #[serde(default)]
    pub clients: BTreeMap<Spanned<String>, Spanned<CountStep>>,
    /// Rates by publisher name.
    #[serde(default)]
    pub publishers: BTreeMap<Spanned<String>, Spanned<RateStep>>,
}

/// How a value moves across one stage: from `from` (`None`: where the previous stage left it)
/// to `to`, linearly; a constant has `from == to`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Step {
    pub from: Option<f64>,
    pub to: f64,
}

/// A client count across a stage: `500`, `"0..500"`, `"..0"`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CountStep(pub Step);

/// A rate across a stage: `"10/s"`, `"10/s..50/s"`, `"..0/s"`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateStep(pub Step);

impl<'de> Deserialize<'de> for CountStep {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = CountStep;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a client count (500) or a ramp (\"0..500\", \"..0\")")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<CountStep, E> {
                count(&v.to_string()).map(|to| CountStep(Step { from: Some(to), to })).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<CountStep, E> {
                self.visit_i64(i64::try_from(v).unwrap_or(i64::MAX))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<CountStep, E> {
                parse_step(v, count).map(CountStep).map_err(E::custom)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

impl<'de> Deserialize<'de> for RateStep {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer).map_err(|_| {
            de::Error::custom("expected a rate (\"10/s\") or a ramp (\"10/s..50/s\", \"..0/s\")")
        })?;
        parse_step(&text, rate).map(RateStep).map_err(de::Error::custom)
    }
}

/// A count of clients: an integer, zero allowed, never negative.
fn count(text: &str) -> Result<f64, String> {
    match text.trim().parse::<i64>() {
        Ok(n) if n >= 0 => Ok(n as f64),
        Ok(n) => Err(format!("a client count cannot be negative, found {n}: expected 0 or more")),
        Err(_) => Err(format!("invalid client count {text:?}: expected an integer such as 500")),
    }
}

/// A rate; `0/s` is allowed here (a publisher quiet for a stage).
fn rate(text: &str) -> Result<f64, String> {
    let text = text.trim();
    if let Some((count, _)) = text.split_once('/')
        && count.trim().parse::<f64>() == Ok(0.0)
    {
        return parse_rate(&text.replacen(count, "1", 1)).map(|_| 0.0);
    }
    parse_rate(text)
}

/// `X`, `A..B` or `..B`.
fn parse_step(text: &str, value: fn(&str) -> Result<f64, String>) -> Result<Step, String> {
    match text.split_once("..") {
        None => value(text).map(|to| Step { from: Some(to), to }),
        Some((from, to)) if from.trim().is_empty() => Ok(Step { from: None, to: value(to)? }),
        Some((from, to)) => Ok(Step { from: Some(value(from)?), to: value(to)? }),
    }
}

/// A named stage of the validated timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagePlan {
    pub name: String,
    pub start: Duration,
    pub end: Duration,
}

/// One linear piece of a [`Curve`]: the value goes from `from` at `start` to `to` at `end`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Piece {
    pub start: Duration,
    pub end: Duration,
    pub from: f64,
    pub to: f64,
}

impl Piece {
    fn length_s(&self) -> f64 {
        self.end.saturating_sub(self.start).as_secs_f64()
    }

    /// The area under the piece from its start to `t_s` seconds into it.
    fn area_to(&self, t_s: f64) -> f64 {
        let length = self.length_s();
        if length <= 0.0 {
            return 0.0;
        }
        let t = t_s.clamp(0.0, length);
        self.from * t + (self.to - self.from) * t * t / (2.0 * length)
    }

    /// Seconds into the piece at which its area reaches `area` (`area` within the piece's).
    fn time_for_area(&self, area: f64) -> f64 {
        let length = self.length_s();
        if area <= 0.0 || length <= 0.0 {
            return 0.0;
        }
        // area = from·t + (to - from)/(2·length)·t²; the root in the numerically stable form,
        // which is also right for a constant piece (slope 0).
        let slope_half = (self.to - self.from) / (2.0 * length);
        let discriminant = (self.from * self.from + 4.0 * slope_half * area).max(0.0);
        let denominator = self.from + discriminant.sqrt();
        if denominator <= 0.0 { 0.0 } else { (2.0 * area / denominator).min(length) }
    }
}

/// A value over the run, piecewise linear (a jump where one piece ends and the next begins at
/// another value). A rate curve's area is events; a count curve says how many clients are on.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Curve {
    pieces: Vec<Piece>,
}

impl Curve {
    /// `value` from `start` to `end`.
    pub fn constant(start: Duration, end: Duration, value: f64) -> Curve {
        Curve { pieces: vec![Piece { start, end, from: value, to: value }] }
    }

    /// A curve of `pieces`, in order, each starting where the previous ends.
    pub fn from_pieces(pieces: Vec<Piece>) -> Curve {
        Curve { pieces }
    }

    pub fn pieces(&self) -> &[Piece] {
        &self.pieces
    }

    /// Where the curve begins and ends.
    pub fn span(&self) -> (Duration, Duration) {
        let start = self.pieces.first().map_or(Duration::ZERO, |p| p.start);
        (start, self.pieces.last().map_or(start, |p| p.end))
    }

    /// The highest value the curve takes.
    pub fn peak(&self) -> f64 {
        self.pieces.iter().map(|p| p.from.max(p.to)).fold(0.0, f64::max)
    }

    /// The value at `t` (0 outside the curve).
    pub fn value_at(&self, t: Duration) -> f64 {
        self.pieces
            .iter()
            .find(|p| p.start <= t && t < p.end)
            .map_or(0.0, |p| p.from + (p.to - p.from) * (t - p.start).as_secs_f64() / p.length_s())
    }

    /// The curve cut to `start..end`.
    pub fn clipped(&self, start: Duration, end: Duration) -> Curve {
        let pieces = self
            .pieces
            .iter()
            .filter(|p| p.end > start && p.start < end)
            .map(|p| {
                let (s, e) = (p.start.max(start), p.end.min(end));
                let at = |t: Duration| p.from + (p.to - p.from) * (t - p.start).as_secs_f64() / p.length_s();
                Piece { start: s, end: e, from: at(s), to: at(e) }
            })
            .filter(|p| p.end > p.start)
            .collect();
        Curve { pieces }
    }

    /// Every value times `factor` (a rate shared by several connections).
    pub fn scaled(&self, factor: f64) -> Curve {
        let pieces =
            self.pieces.iter().map(|p| Piece { from: p.from * factor, to: p.to * factor, ..*p }).collect();
        Curve { pieces }
    }

    /// The area under the curve from its start to `t` (events, for a rate).
    pub fn area_to(&self, t: Duration) -> f64 {
        let mut area = 0.0;
        for piece in &self.pieces {
            if t <= piece.start {
                break;
            }
            area += piece.area_to((t - piece.start).as_secs_f64());
        }
        area
    }

    /// The area under the whole curve.
    pub fn area(&self) -> f64 {
        self.pieces.iter().map(|p| p.area_to(p.length_s())).sum()
    }

    /// The first time the area under the curve exceeds `area`, counted from the run's start:
    /// for a rate curve, when event `k` (area `k`) is due — `start + k / rate` for a constant
    /// rate, the exact inverse of the ramp's integral otherwise. `None` when the area never
    /// grows past it.
    pub fn time_past_area(&self, area: f64) -> Option<Duration> {
        let mut before = 0.0;
        for piece in &self.pieces {
            let own = piece.area_to(piece.length_s());
            if before + own > area {
                let into = piece.time_for_area(area - before);
                return Some(piece.start + Duration::from_secs_f64(into));
            }
            before += own;
        }
        None
    }

    /// Maximal intervals in which the curve is above `level` (for a count curve: when client
    /// number `level` is on); an interval ending at the curve's end is open (`None`).
    pub fn above(&self, level: f64) -> Vec<(Duration, Option<Duration>)> {
        let mut windows: Vec<(Duration, Option<Duration>)> = Vec::new();
        let (_, curve_end) = self.span();
        for piece in &self.pieces {
            let length = piece.length_s();
            let crossing = |v: f64| {
                piece.start + Duration::from_secs_f64(length * (v - piece.from) / (piece.to - piece.from))
            };
            let (on, off) = match (piece.from > level, piece.to > level) {
                (true, true) => (piece.start, piece.end),
                // Rising through `level`: on from the crossing (the ramp's client `level` arrives).
                (false, true) => (crossing(level).max(piece.start), piece.end),
                // Falling: off at the crossing.
                (true, false) => (piece.start, crossing(level).min(piece.end)),
                (false, false) => continue,
            };
            if on >= off {
                continue;
            }
            match windows.last_mut() {
                Some((_, Some(end))) if *end == on => *end = off,
                _ => windows.push((on, Some(off))),
            }
        }
        // Still on when the curve ends: on until the run ends.
        let on_at_end = self.pieces.last().is_some_and(|p| p.to > level);
        if let Some((_, end)) = windows.last_mut()
            && *end == Some(curve_end)
            && on_at_end
        {
            *end = None;
        }
        windows
    }
}

/// The timeline: the stages, and what the scenario's groups and publishers do in them.
#[derive(Debug, Default)]
pub struct Timeline {
    pub stages: Vec<StagePlan>,
    /// Per group name, its count curve (only groups some stage names).
    pub counts: BTreeMap<String, Curve>,
    /// Per publisher name, its rate curve (only publishers some stage names).
    pub rates: BTreeMap<String, Curve>,
}

/// A problem in the stages, at a byte range of the file.
pub type StageError = (Range<usize>, String);

impl Timeline {
    /// Builds the timeline from `[[stages]]`. `initial_count` / `initial_rate` give a group's /
    /// publisher's value before a stage first changes it (`None`: unknown name).
    pub fn build(
        specs: &[Spanned<StageSpec>],
        initial_count: impl Fn(&str) -> Option<f64>,
        initial_rate: impl Fn(&str) -> Option<f64>,
    ) -> Result<Timeline, StageError> {
        let mut timeline = Timeline::default();
        let mut at = Duration::ZERO;
        let mut count_steps: BTreeMap<String, Vec<(Duration, Duration, Step)>> = BTreeMap::new();
        let mut rate_steps: BTreeMap<String, Vec<(Duration, Duration, Step)>> = BTreeMap::new();
        for spanned in specs {
            let spec = spanned.get_ref();
            let span = spanned.span();
            let name = spec.name.trim();
            if name.is_empty() || name.contains('.') {
                return Err((span, format!("a stage needs a `name` without dots, found {:?}", spec.name)));
            }
            if timeline.stages.iter().any(|s| s.name == name) {
                return Err((span, format!("two stages are named {name:?}: stage names must differ")));
            }
            if spec.duration.0.is_zero() {
                return Err((
                    span,
                    format!("stage {name:?} is empty: expected a `duration` of more than 0s"),
                ));
            }
            if let Some(start) = &spec.start {
                let (given, previous) = (start.get_ref().0, timeline.stages.last());
                if given < at {
                    let other = previous.map_or(String::new(), |p| format!(" {:?}", p.name));
                    return Err((
                        start.span(),
                        format!(
                            "stage {name:?} overlaps stage{other}, which ends at {at:?}: expected start = {at:?} \
                             (stages follow one another)"
                        ),
                    ));
                }
                if given > at {
                    return Err((
                        start.span(),
                        format!(
                            "stage {name:?} starts at {given:?}, leaving a gap after {at:?}: expected start = {at:?} \
                             (stages follow one another)"
                        ),
                    ));
                }
            }
            let end = at + spec.duration.0;
            for (group, step) in &spec.clients {
                if initial_count(group.get_ref()).is_none() {
                    return Err((
                        group.span(),
                        format!("stage {name:?} names no client group {:?}", group.get_ref()),
                    ));
                }
                count_steps.entry(group.get_ref().clone()).or_default().push((at, end, step.get_ref().0));
            }
            for (publisher, step) in &spec.publishers {
                if initial_rate(publisher.get_ref()).is_none() {
                    return Err((
                        publisher.span(),
                        format!("stage {name:?} names no publisher {:?}", publisher.get_ref()),
                    ));
                }
                rate_steps.entry(publisher.get_ref().clone()).or_default().push((at, end, step.get_ref().0));
            }
            timeline.stages.push(StagePlan { name: name.to_owned(), start: at, end });
            at = end;
        }
        let curve = |steps: &[(Duration, Duration, Step)], initial: f64| {
            let mut pieces = Vec::new();
            let (mut t, mut value) = (Duration::ZERO, initial);
            for (start, end, step) in steps {
                if *start > t {
                    pieces.push(Piece { start: t, end: *start, from: value, to: value });
                }
                pieces.push(Piece {
                    start: *start,
                    end: *end,
                    from: step.from.unwrap_or(value),
                    to: step.to,
                });
                (t, value) = (*end, step.to);
            }
            if at > t {
                pieces.push(Piece { start: t, end: at, from: value, to: value });
            }
            Curve { pieces }
        };
        for (group, steps) in &count_steps {
            let curve = curve(steps, initial_count(group).unwrap_or(0.0));
            timeline.counts.insert(group.clone(), curve);
        }
        for (publisher, steps) in &rate_steps {
            let curve = curve(steps, initial_rate(publisher).unwrap_or(0.0));
            timeline.rates.insert(publisher.clone(), curve);
        }
        Ok(timeline)
    }

    /// When the last stage ends.
    pub fn end(&self) -> Duration {
        self.stages.last().map_or(Duration::ZERO, |s| s.end)
    }

    /// Every stage (and curve) stretched by `factor` (`--duration` on a staged scenario).
    pub fn scaled_in_time(&mut self, factor: f64) {
        let scale = |d: Duration| Duration::from_secs_f64((d.as_secs_f64() * factor * 1e6).round() / 1e6);
        for stage in &mut self.stages {
            (stage.start, stage.end) = (scale(stage.start), scale(stage.end));
        }
        for curve in self.counts.values_mut().chain(self.rates.values_mut()) {
            for piece in &mut curve.pieces {
                (piece.start, piece.end) = (scale(piece.start), scale(piece.end));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(secs: f64) -> Duration {
        Duration::from_secs_f64(secs)
    }

    #[test]
    fn a_constant_rate_puts_event_k_at_k_over_rate() {
        let curve = Curve::constant(s(2.0), s(12.0), 4.0);
        assert_eq!(curve.area(), 40.0);
        assert_eq!(curve.time_past_area(0.0), Some(s(2.0)));
        assert_eq!(curve.time_past_area(6.0), Some(s(3.5)));
        assert_eq!(curve.time_past_area(40.0), None);
    }

    #[test]
    fn a_ramp_inverts_its_integral_exactly() {
        // 0 → 10/s over 10 s: area(t) = t²/2, so event k is due at sqrt(2k).
        let curve = Curve { pieces: vec![Piece { start: s(0.0), end: s(10.0), from: 0.0, to: 10.0 }] };
        assert_eq!(curve.area(), 50.0);
        for k in [0.5, 2.0, 8.0, 18.0, 49.9] {
            let t = curve.time_past_area(k).unwrap().as_secs_f64();
            assert!((t - (2.0 * k).sqrt()).abs() < 1e-6, "{k}: {t}");
            assert!((curve.area_to(s(t)) - k).abs() < 1e-4, "{k}");
        }
        // A falling ramp 10 → 2 over 4 s: area = 24; half of it by t where 10t - t² = 12.
        let falling = Curve { pieces: vec![Piece { start: s(0.0), end: s(4.0), from: 10.0, to: 2.0 }] };
        assert_eq!(falling.area(), 24.0);
        let t = falling.time_past_area(12.0).unwrap().as_secs_f64();
        assert!((t - (5.0 - 13f64.sqrt())).abs() < 1e-6, "{t}");
    }

    #[test]
    fn a_quiet_stage_moves_the_next_event_past_it() {
        let curve = Curve {
            pieces: vec![
                Piece { start: s(0.0), end: s(5.0), from: 2.0, to: 2.0 },
                Piece { start: s(5.0), end: s(10.0), from: 0.0, to: 0.0 },
                Piece { start: s(10.0), end: s(20.0), from: 1.0, to: 1.0 },
            ],
        };
        assert_eq!(curve.time_past_area(9.0), Some(s(4.5)));
        assert_eq!(curve.time_past_area(10.0), Some(s(10.0)), "event 10 waits for the quiet stage to end");
        assert_eq!(curve.area(), 20.0);
    }

    #[test]
    fn clients_are_on_where_the_count_is_above_their_number() {
        // Ramp 0 → 10 over 10 s, hold 10 s, spike to 30 for 5 s, back to 10, ramp down to 0 over 10 s.
        let curve = Curve {
            pieces: vec![
                Piece { start: s(0.0), end: s(10.0), from: 0.0, to: 10.0 },
                Piece { start: s(10.0), end: s(20.0), from: 10.0, to: 10.0 },
                Piece { start: s(20.0), end: s(25.0), from: 30.0, to: 30.0 },
                Piece { start: s(25.0), end: s(30.0), from: 10.0, to: 10.0 },
                Piece { start: s(30.0), end: s(40.0), from: 10.0, to: 0.0 },
            ],
        };
        assert_eq!(curve.peak(), 30.0);
        // Client 0 arrives first and leaves last; client 9 arrives at 9 s and leaves first.
        assert_eq!(curve.above(0.0), [(s(0.0), Some(s(40.0)))]);
        assert_eq!(curve.above(9.0), [(s(9.0), Some(s(31.0)))]);
        // Spike clients are on for the spike only.
        assert_eq!(curve.above(10.0), [(s(20.0), Some(s(25.0)))]);
        assert_eq!(curve.above(29.0), [(s(20.0), Some(s(25.0)))]);
        assert!(curve.above(30.0).is_empty());
        // The count at a time is how many clients are on then.
        for t in [0.5, 5.5, 15.0, 22.0, 27.0, 35.5] {
            let on = (0..30).filter(|i| on_at(&curve.above(*i as f64), s(t))).count() as f64;
            assert_eq!(on, curve.value_at(s(t)).ceil(), "{t}");
        }
    }

    fn on_at(windows: &[(Duration, Option<Duration>)], t: Duration) -> bool {
        windows.iter().any(|(on, off)| *on <= t && off.is_none_or(|off| t < off))
    }

    #[test]
    fn a_count_held_to_the_end_stays_open() {
        let curve = Curve::constant(s(0.0), s(30.0), 5.0);
        assert_eq!(curve.above(4.0), [(s(0.0), None)]);
    }

    #[test]
    fn values_parse_as_constants_ramps_and_ramps_from_the_previous() {
        assert_eq!(parse_step("10/s", rate), Ok(Step { from: Some(10.0), to: 10.0 }));
        assert_eq!(parse_step("10/s..50/s", rate), Ok(Step { from: Some(10.0), to: 50.0 }));
        assert_eq!(parse_step("..0/s", rate), Ok(Step { from: None, to: 0.0 }));
        assert_eq!(parse_step("0..500", count), Ok(Step { from: Some(0.0), to: 500.0 }));
        assert!(parse_step("..-5", count).unwrap_err().contains("cannot be negative"));
        assert!(parse_step("-1/s", rate).is_err());
        assert!(parse_step("fast", rate).is_err());
    }
}
