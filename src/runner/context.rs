//! What every task of a run shares: the plan, the clock, the publishers' board and schedules,
//! per-group oracle facts (immutable, behind `Arc`), and per-shard statistics (`Rc<RefCell>`,
//! owned by one thread, so recording never synchronises).

use std::cell::RefCell;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::board::{GroupFacts, PublisherBoard};
use super::clock::{RunClock, Schedule};
use super::connect::Connector;
use super::content::{AdmissionTable, ContentModel};
use super::credentials::Credentials;
use crate::metrics::ShardStats;
use crate::results::model::Sample;
use crate::scenario::Plan;
use crate::scenario::plan::GroupPlan;

/// A client group, ready for its clients.
#[derive(Debug)]
pub struct GroupRuntime {
    pub index: usize,
    pub plan: GroupPlan,
    pub facts: GroupFacts,
    /// Global indices of the publishers on the group's topics; a client's oracle slot `i`
    /// tracks publisher `publishers[i]`.
    pub publishers: Vec<usize>,
    /// Per global publisher index, its oracle slot.
    pub slot_of: Vec<Option<usize>>,
}

/// Shared by every shard of one run.
#[derive(Debug)]
pub struct RunShared {
    pub plan: Plan,
    /// Marks this run's events among everything the target sends.
    pub run_id: u32,
    pub clock: RunClock,
    /// When the run's clock starts (µs since the epoch).
    pub start_us: u64,
    pub connector: Connector,
    /// Base URL for `POST /v1/events`.
    pub http_url: String,
    pub credentials: Credentials,
    pub board: Arc<PublisherBoard>,
    pub schedules: Arc<[Schedule]>,
    pub contents: Vec<ContentModel>,
    pub groups: Vec<GroupRuntime>,
    /// Cancelled at the end of the run (or on Ctrl-C): clients close, publishers stop.
    pub stop: CancellationToken,
}

impl RunShared {
    /// Seconds since the run started.
    pub fn elapsed_s(&self) -> f64 {
        self.clock.now_us().saturating_sub(self.start_us) as f64 / 1e6
    }

    /// Whether an event intended at `intended_us` counts in the run's latency: not when it falls
    /// in a capacity step's warm-up (`Plan::judged_from`).
    #[inline]
    pub fn judged(&self, intended_us: u64) -> bool {
        intended_us >= self.start_us + self.plan.judged_from.as_micros() as u64
    }

    /// Whether some publisher's window has begun by `t_us`.
    pub fn publishing_since(&self, t_us: u64) -> bool {
        self.schedules.iter().any(|s| s.start_us <= t_us)
    }

    /// Builds every group's facts: admission tables per (publisher, group filters).
    pub fn group_runtimes(
        plan: &Plan,
        board: &Arc<PublisherBoard>,
        schedules: &Arc<[Schedule]>,
        contents: &[ContentModel],
    ) -> Vec<GroupRuntime> {
        plan.groups
            .iter()
            .enumerate()
            .map(|(index, group)| {
                let tables: Vec<Option<AdmissionTable>> = plan
                    .publishers
                    .iter()
                    .zip(contents)
                    .map(|(publisher, content)| {
                        group.topics.contains(&publisher.topic).then(|| {
                            AdmissionTable::build(content, &group.filters, publisher.planned_events())
                        })
                    })
                    .collect();
                let publishers: Vec<usize> = (0..tables.len()).filter(|p| tables[*p].is_some()).collect();
                let mut slot_of = vec![None; tables.len()];
                for (slot, p) in publishers.iter().enumerate() {
                    slot_of[*p] = Some(slot);
                }
                GroupRuntime {
                    index,
                    plan: group.clone(),
                    facts: GroupFacts {
                        board: Arc::clone(board),
                        schedules: Arc::clone(schedules),
                        tables: tables.into(),
                    },
                    publishers,
                    slot_of,
                }
            })
            .collect()
    }
}

/// One shard's view: the run, and the statistics this shard owns.
#[derive(Debug)]
pub struct ShardCtx {
    pub run: Arc<RunShared>,
    pub index: usize,
    pub stats: RefCell<ShardStats>,
    /// Per publisher, per seq: the latest receipt in this shard (µs since the epoch).
    pub completion: RefCell<Vec<Vec<u64>>>,
}

impl ShardCtx {
    pub fn new(run: Arc<RunShared>, index: usize) -> ShardCtx {
        let completion = run.schedules.iter().map(|s| vec![0; s.events as usize]).collect();
        let stats = ShardStats::new(run.plan.groups.len(), run.plan.stages.len());
        ShardCtx { run, index, stats: RefCell::new(stats), completion: RefCell::new(completion) }
    }

    /// Index of the publishers' slot in the per-group counters.
    pub fn publisher_slot(&self) -> usize {
        self.run.plan.groups.len()
    }

    /// Keeps an example of something that went wrong.
    pub fn sample(&self, kind: &str, detail: impl Into<String>, message: &str, group: &str) {
        let message: String = message.chars().take(300).collect();
        self.stats.borrow_mut().sample(Sample {
            kind: kind.to_owned(),
            detail: detail.into(),
            message,
            group: group.to_owned(),
            t_s: self.run.elapsed_s(),
        });
    }
}
