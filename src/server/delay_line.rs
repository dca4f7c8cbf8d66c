//! The `delay=F:D` fault's line of held frames: one per connection writer, made on its first
//! held frame. A held frame is due `D` after the writer took it from its queue, and every frame
//! behind it waits until it has left (FIFO, as behind a real stall), so order is kept; but
//! frames held one after another each wait their own `D` from when they came, not the sum of
//! the holds before them: a fixed delay, whatever the rate. The writer keeps taking frames from
//! its queue while some wait here, and wakes once per due time to write every frame then due in
//! one batch. This module keeps frames and due times; it does not write, and it knows nothing
//! of which frames the fault chose.

use std::collections::VecDeque;
use std::pin::Pin;

use tokio::time::{Instant, Sleep, sleep_until};
use tokio_tungstenite::tungstenite::Utf8Bytes;

/// Frames waiting, oldest first, each with the instant it may leave.
#[derive(Debug)]
pub struct DelayLine {
    frames: VecDeque<(Instant, Utf8Bytes)>,
    /// Fires at the head's due time; one timer for the line's life, reset as the head changes.
    timer: Pin<Box<Sleep>>,
}

impl DelayLine {
    pub fn new() -> DelayLine {
        DelayLine { frames: VecDeque::new(), timer: Box::pin(sleep_until(Instant::now())) }
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Holds `frame` until `due`, or until the frame ahead of it leaves when that is later.
    pub fn hold(&mut self, frame: Utf8Bytes, due: Instant) {
        let due = self.frames.back().map_or(due, |(ahead, _)| due.max(*ahead));
        if self.frames.is_empty() {
            self.timer.as_mut().reset(due);
        }
        self.frames.push_back((due, frame));
    }

    /// Queues `frame` behind the frames waiting, to leave with the one ahead of it; `Err` gives
    /// it back when none waits, so it can be written now.
    pub fn queue_behind(&mut self, frame: Utf8Bytes) -> Result<(), Utf8Bytes> {
        match self.frames.back() {
            Some(&(ahead, _)) => {
                self.frames.push_back((ahead, frame));
                Ok(())
            }
            None => Err(frame),
        }
    }

    /// Resolves when the head is due; pending while the line is empty.
    pub async fn head_due(&mut self) {
        if self.frames.is_empty() {
            std::future::pending::<()>().await;
        }
        self.timer.as_mut().await;
    }

    /// Moves every frame due at `now` into `out`, oldest first, and sets the timer for the next.
    pub fn take_due(&mut self, now: Instant, out: &mut Vec<Utf8Bytes>) {
        while let Some((due, _)) = self.frames.front()
            && *due <= now
        {
            if let Some((_, frame)) = self.frames.pop_front() {
                out.push(frame);
            }
        }
        if let Some(&(next, _)) = self.frames.front() {
            self.timer.as_mut().reset(next);
        }
    }

    /// When the last frame waiting may leave.
    pub fn last_due(&self) -> Option<Instant> {
        self.frames.back().map(|(due, _)| *due)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn frame(text: &str) -> Utf8Bytes {
        Utf8Bytes::from(text.to_owned())
    }

    #[tokio::test]
    async fn holds_one_after_another_do_not_add_up() {
        let mut line = DelayLine::new();
        let start = Instant::now();
        let delay = Duration::from_millis(10);
        for (i, name) in ["a", "b", "c"].into_iter().enumerate() {
            line.hold(frame(name), start + Duration::from_millis(i as u64) + delay);
        }
        let mut out = Vec::new();
        line.take_due(start + Duration::from_millis(10), &mut out);
        assert_eq!(
            out,
            vec![frame("a")],
            "each frame is due 10 ms after it came, not 10 ms after the one ahead"
        );
        line.take_due(start + Duration::from_millis(12), &mut out);
        assert_eq!(out, vec![frame("a"), frame("b"), frame("c")]);
        assert!(line.is_empty());
    }

    #[tokio::test]
    async fn a_frame_behind_waits_for_the_one_ahead_and_order_is_kept() {
        let mut line = DelayLine::new();
        let start = Instant::now();
        line.hold(frame("held"), start + Duration::from_millis(50));
        assert!(line.queue_behind(frame("next")).is_ok());
        // A frame held for less than the one ahead still leaves after it.
        line.hold(frame("short"), start + Duration::from_millis(5));
        assert_eq!(line.last_due(), Some(start + Duration::from_millis(50)));
        let mut out = Vec::new();
        line.take_due(start + Duration::from_millis(49), &mut out);
        assert!(out.is_empty());
        line.head_due().await;
        assert!(
            Instant::now() >= start + Duration::from_millis(50),
            "the timer fires at the head's due time"
        );
        line.take_due(Instant::now(), &mut out);
        assert_eq!(out, vec![frame("held"), frame("next"), frame("short")]);
        assert_eq!(line.queue_behind(frame("free")), Err(frame("free")), "an empty line holds nothing back");
    }
}
