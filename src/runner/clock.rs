//! Time for a run: one clock in microseconds since the Unix epoch (so intended send times can
//! travel inside events and be compared in any process on the machine), and the open-model
//! schedules of publishers (STYLE rule 10: `start + i / rate`, never drifting).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Monotonic microseconds, anchored to the wall clock once.
#[derive(Debug, Clone, Copy)]
pub struct RunClock {
    anchor: Instant,
    anchor_unix_us: u64,
}

impl RunClock {
    pub fn new() -> RunClock {
        let anchor_unix_us =
            SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_micros() as u64;
        RunClock { anchor: Instant::now(), anchor_unix_us }
    }

    /// Now, in µs since the Unix epoch.
    #[inline]
    pub fn now_us(&self) -> u64 {
        self.anchor_unix_us + self.anchor.elapsed().as_micros() as u64
    }

    /// The instant at `unix_us` on this clock.
    pub fn instant_at(&self, unix_us: u64) -> Instant {
        match unix_us.checked_sub(self.anchor_unix_us) {
            Some(after) => self.anchor + Duration::from_micros(after),
            None => self
                .anchor
                .checked_sub(Duration::from_micros(self.anchor_unix_us - unix_us))
                .unwrap_or(self.anchor),
        }
    }
}

impl Default for RunClock {
    fn default() -> Self {
        RunClock::new()
    }
}

/// A constant-rate schedule: event `k` is intended at `start_us + k / rate`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    pub start_us: u64,
    pub rate_per_s: f64,
    /// Events in the schedule.
    pub events: u64,
}

impl Schedule {
    /// Intended time of event `k`, µs since the epoch (rounded down).
    #[inline]
    pub fn time_of(&self, k: u64) -> u64 {
        self.start_us + (k as f64 * 1e6 / self.rate_per_s) as u64
    }

    /// The first event intended at or after `t_us` (every later event is too). Used as "sent
    /// certainly after `t_us`": a publisher never sends an event before its intended time.
    pub fn first_at_or_after(&self, t_us: u64) -> u64 {
        if t_us <= self.start_us {
            return 0;
        }
        let mut k = ((t_us - self.start_us) as f64 * self.rate_per_s / 1e6).floor() as u64;
        while self.time_of(k) < t_us {
            k += 1;
        }
        k
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_times_never_drift() {
        let s = Schedule { start_us: 1_000_000, rate_per_s: 3.0, events: 100 };
        assert_eq!(s.time_of(0), 1_000_000);
        assert_eq!(s.time_of(3), 2_000_000);
        assert_eq!(s.time_of(99), 1_000_000 + 33_000_000);
    }

    #[test]
    fn first_at_or_after_is_the_exact_boundary() {
        let s = Schedule { start_us: 5_000, rate_per_s: 7.0, events: 1000 };
        for t in [0, 5_000, 5_001, 147_857, 147_858, 1_000_000, 9_999_999] {
            let k = s.first_at_or_after(t);
            assert!(s.time_of(k) >= t, "{t}");
            assert!(k == 0 || s.time_of(k - 1) < t, "{t}");
        }
    }

    #[test]
    fn the_clock_maps_instants_both_ways() {
        let clock = RunClock::new();
        let now = clock.now_us();
        let at = clock.instant_at(now + 1_000);
        assert!(at > Instant::now());
        assert!(clock.instant_at(0) <= Instant::now());
    }
}
