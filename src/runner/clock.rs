//! Time for a run: one clock in microseconds since the Unix epoch (so intended send times can
//! travel inside events and be compared in any process on the machine). The publishers'
//! open-model schedules on it are `schedule.rs`'s.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use super::schedule::Schedule;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_maps_instants_both_ways() {
        let clock = RunClock::new();
        let now = clock.now_us();
        let at = clock.instant_at(now + 1_000);
        assert!(at > Instant::now());
        assert!(clock.instant_at(0) <= Instant::now());
    }
}
