//! The publisher board: what every publisher has had answered so far, readable by every
//! subscriber's oracle, and the per-group view the oracle asks its questions through.
//!
//! Publishers write (one atomic store per ack); subscribers read only when a subscription
//! starts or ends, or when a gap needs judging: never per delivered event. When a run is split
//! into worker processes on one machine, the answered counters live in a shared memory file
//! that every worker maps, so every oracle sees every publisher's acks exactly.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use memmap2::MmapMut;
use parking_lot::Mutex;

use super::clock::Schedule;
use super::content::AdmissionTable;
use super::oracle::PublisherFacts;

/// Refusals seen by this process's publishers.
#[derive(Debug, Default)]
pub struct Refusals {
    any: AtomicBool,
    /// Seqs the target refused (never published), sorted.
    seqs: Mutex<Vec<u64>>,
}

/// Where the answered counters live.
#[derive(Debug)]
enum Counters {
    Heap(Box<[AtomicU64]>),
    /// A file mapped by every worker process of the run.
    Shared(MmapMut),
}

#[derive(Debug)]
pub struct PublisherBoard {
    /// Per publisher: seqs `0..answered` have been acked or refused.
    answered: Counters,
    publishers: usize,
    refused: Vec<Refusals>,
}

impl PublisherBoard {
    pub fn new(publishers: usize) -> PublisherBoard {
        let answered = Counters::Heap((0..publishers).map(|_| AtomicU64::new(0)).collect());
        PublisherBoard {
            answered,
            publishers,
            refused: (0..publishers).map(|_| Refusals::default()).collect(),
        }
    }

    /// A board whose counters live in `path`, shared with the run's other worker processes
    /// (the file is created, zeroed and sized when it does not exist yet).
    pub fn shared(publishers: usize, path: &Path) -> std::io::Result<PublisherBoard> {
        let file =
            std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)?;
        let bytes = (publishers.max(1) * 8) as u64;
        if file.metadata()?.len() < bytes {
            file.set_len(bytes)?;
        }
        // SAFETY: the mapping is only accessed through atomics (see `counters`), and every
        // process of the run maps the same file for the same purpose.
        let map = unsafe { MmapMut::map_mut(&file)? };
        Ok(PublisherBoard {
            answered: Counters::Shared(map),
            publishers,
            refused: (0..publishers).map(|_| Refusals::default()).collect(),
        })
    }

    fn counters(&self) -> &[AtomicU64] {
        match &self.answered {
            Counters::Heap(counters) => counters,
            Counters::Shared(map) => {
                // SAFETY: the map is page-aligned, at least `publishers * 8` bytes long, lives as
                // long as `self`, and AtomicU64 has the size and alignment of u64.
                unsafe { std::slice::from_raw_parts(map.as_ptr().cast::<AtomicU64>(), self.publishers) }
            }
        }
    }

    /// Publisher `p` has had seqs `0..n` answered.
    pub fn set_answered(&self, p: usize, n: u64) {
        self.counters()[p].store(n, Ordering::Release);
    }

    pub fn answered(&self, p: usize) -> u64 {
        self.counters()[p].load(Ordering::Acquire)
    }

    /// The target refused seq `seq` of publisher `p`: nobody is owed it.
    pub fn refuse(&self, p: usize, seq: u64) {
        let refusals = &self.refused[p];
        let mut refused = refusals.seqs.lock();
        if let Err(at) = refused.binary_search(&seq) {
            refused.insert(at, seq);
        }
        refusals.any.store(true, Ordering::Release);
    }

    /// Refused seqs of publisher `p` in `from..to` that `table` admits.
    fn refused_admitted(&self, p: usize, from: u64, to: u64, table: &AdmissionTable) -> u64 {
        let refusals = &self.refused[p];
        if !refusals.any.load(Ordering::Acquire) {
            return 0;
        }
        let refused = refusals.seqs.lock();
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
    fn a_shared_board_is_seen_by_every_mapping() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("board");
        let writer = PublisherBoard::shared(3, &path).unwrap();
        let reader = PublisherBoard::shared(3, &path).unwrap();
        writer.set_answered(2, 41);
        assert_eq!(reader.answered(2), 41);
        assert_eq!(reader.answered(0), 0);
    }

    #[test]
    fn refused_events_are_owed_to_nobody() {
        let board = Arc::new(PublisherBoard::new(1));
        let facts = GroupFacts {
            board: Arc::clone(&board),
            schedules: vec![Schedule::constant(0, 1000.0, 100)].into(),
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
