//! The `throttle=N` fault: one token bucket shared by every connection of the server, so that
//! at most N event frames per second leave it in total and the bundled server has a known
//! capacity (what a capacity search must find).
//!
//! The bucket is a generic cell rate algorithm on one atomic: it holds the time at which the
//! next frame may leave, and each frame reserves the slot `1/N` after the previous one. A frame
//! whose slot lies in the future waits for it at the head of its connection's writer (which
//! reads on meanwhile, `server::connection`), so the excess queues in the connection queues and
//! latency grows as it does on a real overloaded server. A short burst allowance (a twentieth of
//! a second's worth) keeps a quiet server from pacing single frames. It must not know about
//! frames or connections: it hands out send times.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// At most `rate` reservations per second, shared by every caller.
#[derive(Debug)]
pub struct Throttle {
    origin: Instant,
    /// Nanoseconds between two frames.
    interval_ns: u64,
    /// How far before its slot a frame may leave (the burst allowance), in nanoseconds.
    burst_ns: u64,
    /// The theoretical arrival time of the next frame, nanoseconds after `origin`.
    next_ns: AtomicU64,
}

impl Throttle {
    /// A bucket of `rate` frames per second (`rate` > 0).
    pub fn new(rate: u32) -> Throttle {
        let interval_ns = 1_000_000_000 / u64::from(rate.max(1));
        let burst_ns = (u64::from(rate) / 20).max(1) * interval_ns;
        Throttle { origin: Instant::now(), interval_ns, burst_ns, next_ns: AtomicU64::new(0) }
    }

    /// Reserves the next slot; `None` when the frame may leave now, else the instant it may.
    pub fn reserve(&self) -> Option<Instant> {
        self.reserve_at(self.origin.elapsed().as_nanos() as u64)
            .map(|at| self.origin + Duration::from_nanos(at))
    }

    /// [`reserve`](Self::reserve) at `now_ns` after the origin; the slot's time when it is later
    /// than now (minus the burst allowance).
    fn reserve_at(&self, now_ns: u64) -> Option<u64> {
        let mut current = self.next_ns.load(Ordering::Relaxed);
        loop {
            // An idle bucket does not bank more than the burst allowance.
            let slot = current.max(now_ns.saturating_sub(self.burst_ns));
            match self.next_ns.compare_exchange_weak(
                current,
                slot + self.interval_ns,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return (slot > now_ns).then_some(slot),
                Err(seen) => current = seen,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_bucket_spaces_frames_at_its_rate() {
        let throttle = Throttle::new(1000);
        // 1,000 frames asked for at once at t = 10 s: the burst (50) leaves now, the rest 1 ms apart.
        let now = 10_000_000_000;
        let slots: Vec<Option<u64>> = (0..1000).map(|_| throttle.reserve_at(now)).collect();
        let immediate = slots.iter().filter(|s| s.is_none()).count();
        assert_eq!(immediate, 51);
        let last = slots.last().copied().flatten().unwrap();
        assert_eq!(last, now - 50_000_000 + 999 * 1_000_000);
        // Over one second at most rate + burst frames leave.
        let within_a_second = slots.iter().filter(|s| s.is_none_or(|t| t < now + 1_000_000_000)).count();
        assert!(within_a_second <= 1000 + 51, "{within_a_second}");
    }

    #[test]
    fn an_idle_bucket_banks_only_the_burst() {
        let throttle = Throttle::new(100);
        assert_eq!(throttle.reserve_at(5_000_000_000), None);
        // After an idle minute, 5 frames (the burst) and the current one leave at once, the next waits.
        let later = 65_000_000_000;
        let immediate = (0..10).filter(|_| throttle.reserve_at(later).is_none()).count();
        assert_eq!(immediate, 6);
    }

    #[test]
    fn threads_share_one_rate() {
        let throttle = std::sync::Arc::new(Throttle::new(10_000));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let throttle = std::sync::Arc::clone(&throttle);
                std::thread::spawn(move || (0..2500).filter_map(|_| throttle.reserve_at(0)).max())
            })
            .collect();
        let latest = handles.into_iter().filter_map(|h| h.join().unwrap()).max().unwrap();
        // 10,000 slots 100 µs apart: the last one ~1 s after the first, whichever thread took it.
        assert!((990_000_000..=1_000_000_000).contains(&latest), "{latest}");
    }
}
