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
use super::{Plan, PlanError, PublisherPlan};
use crate::scenario::model::CapacitySpec;
use crate::scenario::stages::{Curve, StagePlan};

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
        // Each publisher's constant rate in this step (a search has no stages).
        let mut rates: Vec<f64> = plan.publishers.iter().map(PublisherPlan::peak_rate_per_s).collect();
        match &self.vary {
            Vary::PublisherRate { shares } => {
                for (index, share) in shares {
                    if let Some(rate) = rates.get_mut(*index) {
                        *rate = value * share;
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
        for ((publisher, start_after), rate) in plan.publishers.iter_mut().zip(&self.starts).zip(rates) {
            publisher.start = start_after.unwrap_or(load_starts);
            publisher.stop = measured_end;
            publisher.rate = Curve::constant(publisher.start, publisher.stop, rate);
        }
        plan.duration = measured_end + plan.harness.drain;
        plan.stages = vec![StagePlan { name: plan.name.clone(), start: Duration::ZERO, end: plan.duration }];
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::{Overrides, parse};
    use std::path::Path;

    const BASE: &str = "name = \"c\"\n[[clients]]\nname = \"subs\"\ncount = 200\ntopics = [\"alerts\"]\n\
                        [[clients]]\nname = \"late\"\ncount = 50\narrival_rate = \"100/s\"\ntopics = [\"alerts\"]\n\
                        [[publishers]]\nname = \"alerts\"\ntopic = \"alerts\"\nrate = \"1/s\"\nconnections = 2\n\
                        [gates]\n\"latency.fanout.p99\" = \"< 100ms\"\n";

    fn plan(table: &str) -> Result<Plan, String> {
        parse(&format!("{BASE}[capacity]\n{table}"), Path::new("c.toml"), &Overrides::default())
            .map_err(|e| e.to_string())
    }

    const RATE: &str = "vary = \"publishers.alerts.rate\"\nfrom = 10\nto = \"1000/s\"\nstep_duration = \"3s\"\nwarmup = \"1s\"\n";

    #[test]
    fn a_rate_search_plans_its_first_step_and_each_step_after() {
        let plan = plan(RATE).unwrap();
        let capacity = plan.capacity.clone().unwrap();
        assert_eq!(
            (capacity.from, capacity.to, capacity.growth, capacity.resolution),
            (10.0, 1000.0, 2.0, 0.05)
        );
        assert_eq!(capacity.vary.unit(), "events/s");
        // The late group is ready at 0.49 s: the load starts 1 s later, 1 s of warm-up, 3 s measured, 2 s drain.
        let ready = Duration::from_millis(490) + Duration::from_secs(1);
        assert_eq!(plan.judged_from, ready + Duration::from_secs(1));
        assert_eq!(plan.duration, ready + Duration::from_secs(1 + 3 + 2));
        let step = capacity.step(&plan, 300.0);
        assert_eq!(step.publishers.len(), 2);
        assert!(step.publishers.iter().all(|p| p.peak_rate_per_s() == 150.0
            && p.start == ready
            && p.stop == ready + Duration::from_secs(4)));
        assert!(step.capacity.is_none() && plan.capacity.is_some());
        assert_eq!(capacity.window(&step), (ready + Duration::from_secs(1), ready + Duration::from_secs(4)));
    }

    #[test]
    fn counts_and_arrival_rates_move_the_steps_timeline() {
        let count =
            plan("vary = \"clients.late.count\"\nfrom = 100\nto = 1000\nstep_duration = \"2s\"\n").unwrap();
        let capacity = count.capacity.clone().unwrap();
        let step = capacity.step(&count, 400.0);
        assert_eq!(step.groups[1].count, 400);
        // 400 clients at 100/s: the last connects at 3.99 s; the load starts a second after.
        assert_eq!(step.publishers[0].start, Duration::from_millis(4_990));
        let arrival =
            plan("vary = \"clients.late.arrival_rate\"\nfrom = 50\nto = 800\nstep_duration = \"2s\"\n")
                .unwrap();
        let capacity = arrival.capacity.clone().unwrap();
        assert_eq!(capacity.vary.unit(), "connections/s");
        assert_eq!(capacity.step(&arrival, 200.0).groups[1].arrival, Arrival::Rate(200.0));
    }

    #[test]
    fn capacity_gates_are_the_searchs_and_steps_leave_them_out() {
        let with_gate = format!(
            "{}[capacity]\n{RATE}",
            BASE.replace(
                "[gates]\n",
                "[gates]\n\"capacity.highest_passing_deliveries_per_s\" = \">= 100000\"\n"
            )
        );
        let plan = parse(&with_gate, Path::new("c.toml"), &Overrides::default()).unwrap();
        assert!(plan.gates.iter().any(|g| g.is_capacity()));
        let step = plan.capacity.as_ref().unwrap().step(&plan, 20.0);
        assert!(!step.gates.iter().any(|g| g.is_capacity()));
        assert!(step.gates.iter().any(|g| g.metric == "latency.fanout.p99"));
        let without = parse(
            &BASE
                .replace("[gates]\n", "duration = \"5s\"\n[gates]\n\"capacity.highest_passing\" = \">= 1\"\n")
                .replacen("name = \"c\"\n", "name = \"c\"\nduration = \"5s\"\n", 1),
            Path::new("c.toml"),
            &Overrides::default(),
        );
        assert!(without.is_err());
    }

    #[test]
    fn bad_tables_are_refused_at_their_position() {
        let line_of = |table: &str| -> (String, String) {
            let e = plan(table).unwrap_err();
            let position = e.split(": ").next().unwrap_or_default().to_owned();
            (position, e)
        };
        let (at, e) = line_of("vary = \"publishers.nope.rate\"\nfrom = 1\nto = 2\nstep_duration = \"2s\"\n");
        assert!(at == "c.toml:19:8" && e.contains("publishers: alerts; groups: subs, late"), "{e}");
        let (_, e) = line_of("vary = \"clients.subs.rate\"\nfrom = 1\nto = 2\nstep_duration = \"2s\"\n");
        assert!(e.contains("expected publishers.<name>.rate"), "{e}");
        let (at, e) = line_of("vary = \"clients.late.count\"\nfrom = 10\nto = 5\nstep_duration = \"2s\"\n");
        assert!(at == "c.toml:21:6" && e.contains("must be above from"), "{e}");
        let (_, e) = line_of("vary = \"clients.late.count\"\nfrom = 1.5\nto = 5\nstep_duration = \"2s\"\n");
        assert!(e.contains("a count is whole"), "{e}");
        let (_, e) = line_of(&format!("{RATE}growth = 1\n"));
        assert!(e.contains("growth = 1: expected a factor above 1"), "{e}");
        let (_, e) = line_of(&format!("{RATE}resolution = \"150%\"\n"));
        assert!(e.contains("expected a fraction between 0 and 1"), "{e}");
        let (_, e) = line_of(&RATE.replace("3s", "500ms"));
        assert!(e.contains("step_duration must be at least 1s"), "{e}");
        let (_, e) = line_of(&format!("{RATE}resolution = \"0.01%\"\ngrowth = 1.01\n"));
        assert!(e.contains("could take") && e.contains("steps"), "{e}");
        let (_, e) = line_of(&RATE.replace("from = 10", "from = -1"));
        assert!(e.contains("expected a positive load"), "{e}");
        let (_, e) = line_of(&format!("{RATE}colour = 1\n"));
        assert!(e.contains("unknown field `colour`"), "{e}");
        let ramped = BASE.replace("arrival_rate = \"100/s\"", "ramp = \"1s\"");
        let e = parse(
            &format!("{ramped}[capacity]\nvary = \"clients.late.arrival_rate\"\nfrom = 1\nto = 2\nstep_duration = \"2s\"\n"),
            Path::new("c.toml"),
            &Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("arrives by `ramp`"), "{e}");
    }

    #[test]
    fn a_search_has_no_duration_and_the_flag_needs_a_table() {
        let e = parse(
            &format!("duration = \"5s\"\n{BASE}[capacity]\n{RATE}"),
            Path::new("c.toml"),
            &Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("`duration` does not apply with a [capacity] table"), "{e}");
        let e = parse(BASE, Path::new("c.toml"), &Overrides::default()).unwrap_err().to_string();
        assert!(
            e.contains("missing `duration`: expected `duration = \"30s\"` or a timeline of [[stages]]"),
            "{e}"
        );
        let flag =
            Overrides { find_capacity: true, duration: Some(Duration::from_secs(5)), ..Overrides::default() };
        let e = parse(BASE, Path::new("c.toml"), &flag).unwrap_err().to_string();
        assert!(e.contains("--find-capacity needs a [capacity] table"), "{e}");
        let e =
            parse(&format!("{BASE}[capacity]\n{RATE}"), Path::new("c.toml"), &flag).unwrap_err().to_string();
        assert!(e.contains("--duration does not apply to a capacity search"), "{e}");
    }

    #[test]
    fn the_worst_case_bounds_a_search() {
        assert_eq!(worst_case_steps(100.0, 100_000.0, 2.0, 0.05), 11 + 5);
        assert!(worst_case_steps(1.0, 1e9, 1.01, 0.001) > PLANNED_STEPS_LIMIT);
    }
}
