//! A capacity search's plan (`[capacity]`): what it varies, over which range and in which
//! steps, checked against the scenario's groups and publishers; and the plan of each step, the
//! scenario with the varied value set and its timing derived from it.
//!
//! It owns the step's timeline: clients connect as their groups say, the load starts one second
//! after the last of them is ready, its first `warmup` is left out of the judgement, the next
//! `step_duration` is measured, then the publishers stop and the run drains. It must not run
//! anything or judge a step (`runner::capacity` does both).

use std::ops::Range;
use std::time::Duration;

use super::groups::{Arrival, settled};
use super::{Plan, PlanError};
use crate::scenario::model::CapacitySpec;

/// Warm-up of each step when the table does not say.
pub const DEFAULT_WARMUP: Duration = Duration::from_secs(2);
/// Factor between steps on the way up when the table does not say.
pub const DEFAULT_GROWTH: f64 = 2.0;
/// Bracket width at which bisection stops when the table does not say.
pub const DEFAULT_RESOLUTION: f64 = 0.05;
/// The most steps a search's range, growth and resolution may need (each step is a run).
pub const PLANNED_STEPS_LIMIT: u32 = 60;

/// The scenario value a search varies.
#[derive(Debug, Clone, PartialEq)]
pub enum Vary {
    /// `publishers.<name>.rate`: each of the named publisher's connections (index into
    /// `Plan::publishers`) gets its share of the rate.
    PublisherRate { shares: Vec<(usize, f64)> },
    /// `clients.<group>.count`.
    GroupCount { group: usize },
    /// `clients.<group>.arrival_rate`: connections per second.
    GroupArrivalRate { group: usize },
}

impl Vary {
    /// The unit of the varied value, as `report.json` names it.
    pub fn unit(&self) -> &'static str {
        match self {
            Vary::PublisherRate { .. } => "events/s",
            Vary::GroupCount { .. } => "clients",
            Vary::GroupArrivalRate { .. } => "connections/s",
        }
    }

    /// Whether the value is a whole number (a count).
    pub fn whole(&self) -> bool {
        matches!(self, Vary::GroupCount { .. })
    }
}

/// The validated `[capacity]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct CapacityPlan {
    pub vary: Vary,
    /// `vary` as written, for the report.
    pub vary_text: String,
    pub from: f64,
    pub to: f64,
    pub growth: f64,
    pub resolution: f64,
    pub step_duration: Duration,
    pub warmup: Duration,
    /// Per publisher connection (`Plan::publishers`), its `start_after` if it gave one.
    starts: Vec<Option<Duration>>,
}

/// What the scenario holds that the table may name: group names (with whether each arrives by
/// ramp), and per publisher as written its name and its connections' range in `Plan::publishers`.
pub(super) struct Names<'a> {
    pub groups: Vec<(&'a str, bool)>,
    pub publishers: Vec<(String, Range<usize>)>,
    pub starts: Vec<Option<Duration>>,
}

pub(super) fn capacity(
    spec: &toml::Spanned<CapacitySpec>,
    names: Names<'_>,
) -> Result<CapacityPlan, PlanError> {
    let table = spec.get_ref();
    let vary_span = table.vary.span();
    let text = table.vary.get_ref().trim();
    let expected = || {
        PlanError::at(
            vary_span.clone(),
            format!(
                "[capacity] vary = {text:?}: expected publishers.<name>.rate, clients.<group>.count or \
                 clients.<group>.arrival_rate (publishers: {}; groups: {})",
                names.publishers.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(", "),
                names.groups.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
            ),
        )
    };
    let (kind, rest) = text.split_once('.').ok_or_else(expected)?;
    let (name, field) = rest.rsplit_once('.').ok_or_else(expected)?;
    let group = || names.groups.iter().position(|(g, _)| *g == name);
    let vary = match (kind, field) {
        ("publishers", "rate") => {
            let shares: Vec<(usize, f64)> = names
                .publishers
                .iter()
                .filter(|(n, _)| n == name)
                .flat_map(|(_, range)| {
                    let share = 1.0 / range.len().max(1) as f64;
                    range.clone().map(move |i| (i, share))
                })
                .collect();
            if shares.is_empty() {
                return Err(expected());
            }
            Vary::PublisherRate { shares }
        }
        ("clients", "count") => Vary::GroupCount { group: group().ok_or_else(expected)? },
        ("clients", "arrival_rate") => {
            let group = group().ok_or_else(expected)?;
            if names.groups[group].1 {
                return Err(PlanError::at(
                    vary_span,
                    format!(
                        "[capacity] vary = {text:?}: group {name:?} arrives by `ramp`; an arrival rate can \
                         vary only for a group without one (or with `arrival_rate`)"
                    ),
                ));
            }
            Vary::GroupArrivalRate { group }
        }
        _ => return Err(expected()),
    };
    let (from, to) = (table.from.get_ref().0, table.to.get_ref().0);
    if vary.whole() && from.fract() != 0.0 {
        return Err(PlanError::at(table.from.span(), format!("[capacity] from = {from}: a count is whole")));
    }
    if to <= from {
        return Err(PlanError::at(
            table.to.span(),
            format!("[capacity] to = {to} must be above from = {from}"),
        ));
    }
    let growth = match &table.growth {
        None => DEFAULT_GROWTH,
        Some(g) if g.get_ref().is_finite() && *g.get_ref() > 1.0 && *g.get_ref() <= 100.0 => *g.get_ref(),
        Some(g) => {
            return Err(PlanError::at(
                g.span(),
                format!("[capacity] growth = {}: expected a factor above 1 and at most 100", g.get_ref()),
            ));
        }
    };
    let resolution = table.resolution.as_ref().map_or(DEFAULT_RESOLUTION, |r| r.get_ref().0);
    let step_duration = table.step_duration.get_ref().0;
    if step_duration < Duration::from_secs(1) {
        return Err(PlanError::at(
            table.step_duration.span(),
            "[capacity] step_duration must be at least 1s (deliveries are counted per second)",
        ));
    }
    let worst = worst_case_steps(from, to, growth, resolution);
    if worst > PLANNED_STEPS_LIMIT {
        return Err(PlanError::at(
            spec.span(),
            format!(
                "[capacity] this range, growth and resolution could take {worst} steps (at most \
                 {PLANNED_STEPS_LIMIT}, each a run): raise growth or resolution, or narrow from..to"
            ),
        ));
    }
    Ok(CapacityPlan {
        vary,
        vary_text: text.to_owned(),
        from,
        to,
        growth,
        resolution,
        step_duration,
        warmup: table.warmup.map_or(DEFAULT_WARMUP, |w| w.0),
        starts: names.starts,
    })
}

/// The most steps a search can take: up from `from` to `to`, then bisecting one growth factor
/// down to the resolution.
pub fn worst_case_steps(from: f64, to: f64, growth: f64, resolution: f64) -> u32 {
    let grow = ((to / from).ln() / growth.ln()).ceil().max(0.0) + 1.0;
    let bisect = ((growth - 1.0) / resolution).log2().ceil().max(0.0);
    (grow + bisect).min(f64::from(u32::MAX)) as u32
}

impl CapacityPlan {
    /// The plan of one step: `base` (the scenario's plan) with the varied value at `value`,
    /// its publishers' windows and its duration derived from when its clients are ready, and
    /// only the gates a step is judged by (not `capacity.…`). A step is a plain run: its plan
    /// has no `capacity`.
    pub fn step(&self, base: &Plan, value: f64) -> Plan {
        let mut plan = base.clone();
        match &self.vary {
            Vary::PublisherRate { shares } => {
                for (index, share) in shares {
                    if let Some(publisher) = plan.publishers.get_mut(*index) {
                        publisher.rate_per_s = value * share;
                    }
                }
            }
            Vary::GroupCount { group } => {
                if let Some(group) = plan.groups.get_mut(*group) {
                    group.count = value.round().max(1.0) as u64;
                }
            }
            Vary::GroupArrivalRate { group } => {
                if let Some(group) = plan.groups.get_mut(*group) {
                    group.arrival = Arrival::Rate(value);
                }
            }
        }
        let load_starts = settled(&plan.groups);
        let measured_end = load_starts + self.warmup + self.step_duration;
        for (publisher, start_after) in plan.publishers.iter_mut().zip(&self.starts) {
            publisher.start = start_after.unwrap_or(load_starts);
            publisher.stop = measured_end;
        }
        plan.duration = measured_end + plan.harness.drain;
        plan.judged_from = load_starts + self.warmup;
        plan.gates.retain(|g| !g.is_capacity());
        plan.capacity = None;
        plan
    }

    /// A step's measured window, in time since its run's start: from the end of its warm-up to
    /// when its publishers stop.
    pub fn window(&self, step: &Plan) -> (Duration, Duration) {
        (step.judged_from, step.judged_from + self.step_duration)
    }

    /// Checks that every publisher publishes in the measured window of the lowest and the
    /// highest step (a group's count or arrival rate moves the window); `span` is the table's.
    pub(super) fn check_windows(&self, base: &Plan, span: Range<usize>) -> Result<(), PlanError> {
        for value in [self.from, self.to] {
            let step = self.step(base, value);
            if let Some(p) = step.publishers.iter().find(|p| p.start >= p.stop) {
                return Err(PlanError::at(
                    span,
                    format!(
                        "publisher {:?} starts at {:?}, after the measured window of the step at {value} {} \
                         ends ({:?}): lower its start_after",
                        p.name,
                        p.start,
                        self.vary.unit(),
                        p.stop
                    ),
                ));
            }
        }
        Ok(())
    }
}
