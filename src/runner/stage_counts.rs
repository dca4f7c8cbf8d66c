//! The oracle's counts with the stages beside them: every event counter it moves for a group
//! is moved the same way for the stage of the event's intended publish time (a delivery, a
//! loss, a duplicate belong to the stage their event was meant to be sent in, wherever it was
//! judged). Owns no state; must not judge anything itself.

use super::clock::Schedule;
use super::oracle::{CounterField, EventCounts};
use crate::metrics::StageStats;
use crate::results::model::Counters;

/// A group's counters and the run's stages, for one call of the oracle.
pub(super) struct StagedCounts<'a> {
    pub group: &'a mut Counters,
    pub stages: &'a mut [StageStats],
    pub schedules: &'a [Schedule],
}

impl StagedCounts<'_> {
    fn stage(&mut self, p: usize, seq: u64) -> Option<&mut Counters> {
        let stage = self.schedules.get(p)?.stage_of(seq);
        self.stages.get_mut(stage).map(|s| &mut s.counters)
    }
}

impl EventCounts for StagedCounts<'_> {
    fn add(&mut self, p: usize, seq: u64, field: CounterField, n: u64) {
        *field(self.group) += n;
        if let Some(stage) = self.stage(p, seq) {
            *field(stage) += n;
        }
    }

    fn take_back(&mut self, p: usize, seq: u64, field: CounterField) {
        *field(self.group) -= 1;
        if let Some(stage) = self.stage(p, seq) {
            *field(stage) -= 1;
        }
    }

    fn next_stage_at(&self, p: usize, seq: u64) -> u64 {
        self.schedules.get(p).map_or(u64::MAX, |s| s.next_stage_at(seq))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_count_moves_the_group_and_the_events_stage_alike() {
        // 10 events a second for 3 s; stages at 1 s and 2 s: events 0..10, 10..20, 20..30.
        let schedule =
            Schedule::constant(0, 10.0, 30).with_stages([1, 2].map(std::time::Duration::from_secs));
        let mut group = Counters::default();
        let mut stages = vec![StageStats::default(); 3];
        let mut counts = StagedCounts { group: &mut group, stages: &mut stages, schedules: &[schedule] };
        let missing: CounterField = |c| &mut c.events_missing;
        counts.add(0, 12, missing, 3);
        counts.add(0, 25, missing, 1);
        counts.take_back(0, 25, missing);
        assert_eq!(counts.next_stage_at(0, 5), 10);
        assert_eq!(counts.next_stage_at(0, 25), u64::MAX);
        assert_eq!(group.events_missing, 3);
        let by_stage: Vec<u64> = stages.iter().map(|s| s.counters.events_missing).collect();
        assert_eq!(by_stage, [0, 3, 0]);
    }
}
