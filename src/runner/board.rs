//! The publisher board: what every publisher has had answered so far, readable by every
//! subscriber's oracle, and the per-group view the oracle asks its questions through.
//!
//! Publishers write (one atomic store per ack); subscribers read only when a subscription
//! starts or ends, or when a gap needs judging: never per delivered event.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::Mutex;

use super::clock::Schedule;
use super::content::AdmissionTable;
use super::oracle::PublisherFacts;

/// Progress of one publisher.
#[derive(Debug, Default)]
pub struct PublisherProgress {
    /// Seqs `0..answered` have been acked or refused.
    answered: AtomicU64,
    any_refused: AtomicBool,
    /// Seqs the target refused (never published), sorted.
    refused: Mutex<Vec<u64>>,
}

#[derive(Debug, Default)]
pub struct PublisherBoard {
    publishers: Vec<PublisherProgress>,
}

impl PublisherBoard {
    pub fn new(publishers: usize) -> PublisherBoard {
        PublisherBoard { publishers: (0..publishers).map(|_| PublisherProgress::default()).collect() }
    }

    /// Publisher `p` has had seqs `0..n` answered.
    pub fn set_answered(&self, p: usize, n: u64) {
        self.publishers[p].answered.store(n, Ordering::Release);
    }

    pub fn answered(&self, p: usize) -> u64 {
        self.publishers[p].answered.load(Ordering::Acquire)
    }

    /// The target refused seq `seq` of publisher `p`: nobody is owed it.
    pub fn refuse(&self, p: usize, seq: u64) {
        let progress = &self.publishers[p];
        let mut refused = progress.refused.lock();
        if let Err(at) = refused.binary_search(&seq) {
            refused.insert(at, seq);
        }
        progress.any_refused.store(true, Ordering::Release);
    }

    /// Refused seqs of publisher `p` in `from..to` that `table` admits.
    fn refused_admitted(&self, p: usize, from: u64, to: u64, table: &AdmissionTable) -> u64 {
        let progress = &self.publishers[p];
        if !progress.any_refused.load(Ordering::Acquire) {
            return 0;
        }
        let refused = progress.refused.lock();
        let start = refused.partition_point(|s| *s < from);
        refused[start..].iter().take_while(|s| **s < to).filter(|s| table.admits(**s)).count() as u64
    }
}

/// The oracle's view of the publishers for one client group.
#[derive(Debug, Clone)]
pub struct GroupFacts {
    pub board: Arc<PublisherBoard>,
    pub schedules: Arc<[Schedule]>,
    /// Per global publisher index; `None` for publishers of topics the group does not hold.
    pub tables: Arc<[Option<AdmissionTable>]>,
}

impl PublisherFacts for GroupFacts {
    fn first_sent_at_or_after(&self, p: usize, t_us: u64) -> u64 {
        self.schedules[p].first_at_or_after(t_us)
    }

    fn answered(&self, p: usize) -> u64 {
        self.board.answered(p)
    }

    fn admitted(&self, p: usize, from: u64, to: u64) -> u64 {
        let Some(table) = &self.tables[p] else { return 0 };
        let to = to.min(self.schedules[p].events);
        table.count(from, to).saturating_sub(self.board.refused_admitted(p, from, to, table))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_events_are_owed_to_nobody() {
        let board = Arc::new(PublisherBoard::new(1));
        let facts = GroupFacts {
            board: Arc::clone(&board),
            schedules: vec![Schedule { start_us: 0, rate_per_s: 1000.0, events: 100 }].into(),
            tables: vec![Some(AdmissionTable::All)].into(),
        };
        assert_eq!(facts.admitted(0, 0, 10), 10);
        board.refuse(0, 3);
        board.refuse(0, 12);
        assert_eq!(facts.admitted(0, 0, 10), 9);
        assert_eq!(facts.admitted(0, 0, 1000), 98, "clamped to the schedule's 100 events");
        board.set_answered(0, 7);
        assert_eq!(facts.answered(0), 7);
    }
}
