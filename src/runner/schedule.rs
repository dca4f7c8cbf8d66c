//! A publisher's open-model schedule in the run's microseconds (STYLE rule 10): event `k` is
//! intended at the moment the area under the publisher's rate curve passes `k` — `start + k /
//! rate` for a constant rate, the exact inverse of the ramp's integral within a ramping stage —
//! computed from the run's absolute start, so it never drifts, and latency is measured from it.
//! It must not sleep or send: the publisher does, at these times.

use crate::scenario::stages::Curve;

/// When each event of one publisher connection is due.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    /// The run's start, µs since the epoch; the curve's times count from it.
    pub run_start_us: u64,
    /// When the publisher's window opens (µs since the epoch).
    pub start_us: u64,
    /// Events per second over the window, relative to the run's start.
    pub rate: Curve,
    /// Events in the schedule.
    pub events: u64,
    /// Per stage of the run after the first, its first event (an event belongs to the stage
    /// of its intended time).
    pub stage_starts: Vec<u64>,
}

impl Schedule {
    pub fn new(run_start_us: u64, rate: Curve, events: u64) -> Schedule {
        let start_us = run_start_us + rate.span().0.as_micros() as u64;
        Schedule { run_start_us, start_us, rate, events, stage_starts: Vec::new() }
    }

    /// The schedule with the stages that begin at `offsets` from the run's start (the first
    /// stage's start, 0, left out).
    pub fn with_stages(mut self, offsets: impl IntoIterator<Item = std::time::Duration>) -> Schedule {
        self.stage_starts = offsets.into_iter().map(|at| self.first_at_or_after_offset(at)).collect();
        self
    }

    /// The stage event `k` belongs to.
    #[inline]
    pub fn stage_of(&self, k: u64) -> usize {
        self.stage_starts.partition_point(|&first| first <= k)
    }

    /// The first event after `k` in a later stage (`u64::MAX`: none).
    pub fn next_stage_at(&self, k: u64) -> u64 {
        self.stage_starts.get(self.stage_of(k)).copied().unwrap_or(u64::MAX)
    }

    /// `rate_per_s` from `start_us` for `events` events (tests and simple callers).
    pub fn constant(start_us: u64, rate_per_s: f64, events: u64) -> Schedule {
        let length = std::time::Duration::from_secs_f64(events as f64 / rate_per_s);
        Schedule::new(start_us, Curve::constant(std::time::Duration::ZERO, length, rate_per_s), events)
    }

    /// Intended time of event `k`, µs since the epoch (rounded down). Past the curve's end
    /// (`k >= events`), the end of the window.
    #[inline]
    pub fn time_of(&self, k: u64) -> u64 {
        let at = self.rate.time_past_area(k as f64).unwrap_or_else(|| self.rate.span().1);
        self.run_start_us + at.as_micros() as u64
    }

    /// The first event intended at or after `t_us` (every later event is too). Used as "sent
    /// certainly after `t_us`": a publisher never sends an event before its intended time.
    pub fn first_at_or_after(&self, t_us: u64) -> u64 {
        if t_us <= self.start_us {
            return 0;
        }
        let into = std::time::Duration::from_micros(t_us - self.run_start_us);
        let mut k = (self.rate.area_to(into).floor() as u64).min(self.events);
        while k < self.events && self.time_of(k) < t_us {
            k += 1;
        }
        while k > 0 && self.time_of(k - 1) >= t_us {
            k -= 1;
        }
        k
    }

    /// The first event intended at or after `offset` from the run's start (a stage boundary).
    pub fn first_at_or_after_offset(&self, offset: std::time::Duration) -> u64 {
        self.first_at_or_after(self.run_start_us + offset.as_micros() as u64)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::scenario::stages::Piece;

    #[test]
    fn schedule_times_never_drift() {
        let s = Schedule::constant(1_000_000, 3.0, 100);
        assert_eq!(s.time_of(0), 1_000_000);
        assert_eq!(s.time_of(3), 2_000_000);
        assert_eq!(s.time_of(99), 1_000_000 + 33_000_000);
    }

    #[test]
    fn first_at_or_after_is_the_exact_boundary() {
        let s = Schedule::constant(5_000, 7.0, 1000);
        for t in [0, 5_000, 5_001, 147_857, 147_858, 1_000_000, 9_999_999] {
            let k = s.first_at_or_after(t);
            assert!(s.time_of(k) >= t, "{t}");
            assert!(k == 0 || s.time_of(k - 1) < t, "{t}");
        }
    }

    fn ramped() -> Schedule {
        // 10/s for 10 s, a ramp 10/s → 50/s over 10 s (300 events), 0/s for 5 s, 20/s for 5 s.
        let s = |secs: u64| Duration::from_secs(secs);
        let curve = Curve::from_pieces(vec![
            Piece { start: s(0), end: s(10), from: 10.0, to: 10.0 },
            Piece { start: s(10), end: s(20), from: 10.0, to: 50.0 },
            Piece { start: s(20), end: s(25), from: 0.0, to: 0.0 },
            Piece { start: s(25), end: s(30), from: 20.0, to: 20.0 },
        ]);
        let events = curve.area().ceil() as u64;
        Schedule::new(1_000_000_000, curve, events)
    }

    #[test]
    fn a_ramped_schedule_follows_the_rate_it_ramps_through() {
        let s = ramped();
        assert_eq!(s.events, 100 + 300 + 100);
        let start = s.run_start_us;
        assert_eq!(s.time_of(99), start + 9_900_000);
        assert_eq!(s.time_of(100), start + 10_000_000);
        // Within the ramp the rate at t is 10 + 4(t - 10): the gap between events shrinks from
        // 1/10 s to 1/50 s, and each intended time inverts area(t) = 10τ + 2τ².
        for k in [101u64, 150, 250, 399] {
            let tau = (s.time_of(k) - start) as f64 / 1e6 - 10.0;
            let area = 100.0 + 10.0 * tau + 2.0 * tau * tau;
            assert!((area - k as f64).abs() < 1e-3, "{k}: {area}");
        }
        let gap = |k: u64| s.time_of(k + 1) - s.time_of(k);
        // Event 101 is due where 10τ + 2τ² = 1 (τ ≈ 98 ms), the ramp already under way.
        assert!((98_000..=98_200).contains(&gap(100)), "{}", gap(100));
        assert!((20_000..=20_200).contains(&gap(398)), "{}", gap(398));
        // Nothing is due in the quiet stage: event 400 waits for it to end.
        assert_eq!(s.time_of(400), start + 25_000_000);
        assert_eq!(s.time_of(499), start + 29_950_000);
    }

    #[test]
    fn each_event_belongs_to_the_stage_of_its_intended_time() {
        let s = ramped().with_stages([10, 20, 25].map(Duration::from_secs));
        assert_eq!(s.stage_starts, [100, 400, 400]);
        assert_eq!((s.stage_of(0), s.stage_of(99), s.stage_of(100), s.stage_of(399)), (0, 0, 1, 1));
        // The quiet stage holds no event: 400 is the first of the last one.
        assert_eq!(s.stage_of(400), 3);
        assert_eq!((s.next_stage_at(0), s.next_stage_at(100), s.next_stage_at(400)), (100, 400, u64::MAX));
    }

    #[test]
    fn first_at_or_after_holds_across_stages() {
        let s = ramped();
        for offset_ms in [0u64, 1, 9_999, 10_000, 12_345, 19_999, 20_000, 22_000, 25_000, 29_999, 30_000] {
            let t = s.run_start_us + offset_ms * 1000;
            let k = s.first_at_or_after(t);
            assert!(k == s.events || s.time_of(k) >= t, "{offset_ms}");
            assert!(k == 0 || s.time_of(k - 1) < t, "{offset_ms}");
        }
        assert_eq!(s.first_at_or_after_offset(Duration::from_secs(20)), 400);
        assert_eq!(s.first_at_or_after_offset(Duration::from_secs(30)), 500);
    }
}
