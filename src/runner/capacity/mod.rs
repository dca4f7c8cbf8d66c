//! The capacity search of `run` (a scenario's `[capacity]` table, or `--find-capacity`): the
//! highest load at which every gate of the scenario holds.
//!
//! - [`search`]: which load to try next (geometric steps up, then bisection), as a state machine;
//! - [`step`]: one step's verdict and record, from its run's report.
//!
//! Each step is a fresh run of its own plan (`CapacityPlan::step`: the varied value set, its
//! warm-up left out of its latency) through [`crate::runner::run`], so every step starts its own
//! bundled server and is judged by the scenario's gates, default gates included. A step the
//! harness cannot be trusted on ends the search with `limited_by = "harness"`: the answer is then
//! a lower bound, never a capacity that is really the harness's own. The search's report is the
//! highest passing step's (else the first step's), with `capacity` added and judged by the
//! `capacity.…` gates. It must not print: the caller hears of every step through `on_step`.

pub mod search;
pub mod step;

use crate::protocol::timestamp::now_rfc3339;
use crate::report::gates::apply_gates;
use crate::report::numbers::trim_number;
use crate::results::model::RunReport;
use crate::results::model::{CapacityReport, CapacityStep, LimitedBy};
use crate::scenario::Plan;
use crate::scenario::plan::CapacityPlan;

use super::preflight::{self, Machine};
use super::{RunError, RunOptions};
use search::{Params, Search, Verdict};
use step::StepAt;

/// Runs the search of `plan` (which must have a `[capacity]` table: else it is one plain run).
/// `on_step` hears of each step as it ends, with its run's report (`None`: it was not run).
pub async fn run(
    plan: Plan,
    options: RunOptions,
    on_step: &mut dyn FnMut(&CapacityStep, Option<&RunReport>),
) -> Result<RunReport, RunError> {
    let Some(capacity) = plan.capacity.clone() else {
        return super::run(plan, options).await;
    };
    let started_at = now_rfc3339();
    let mut search = Search::new(Params {
        from: capacity.from,
        to: capacity.to,
        growth: capacity.growth,
        resolution: capacity.resolution,
        whole: capacity.vary.whole(),
    });
    let mut steps: Vec<CapacityStep> = Vec::new();
    // The first step's report, and the highest passing step's with its index.
    let mut first: Option<RunReport> = None;
    let mut best: Option<(usize, RunReport)> = None;
    while let Some((offered, phase)) = search.next() {
        if options.interrupt.is_cancelled() {
            search.interrupt();
            break;
        }
        let at = StepAt { step: search.steps() + 1, phase, offered };
        let step_plan = capacity.step(&plan, offered);
        if let Some(reason) = cannot_hold(&step_plan, &capacity, offered) {
            let record = step::not_run(at, reason);
            on_step(&record, None);
            steps.push(record);
            search.record(Verdict::Untrusted);
            continue;
        }
        let step_options = RunOptions {
            live_step: Some(format!("{}: {} {}", at.step, trim_number(offered, 2), capacity.vary.unit())),
            ..options.clone()
        };
        let report = super::run(step_plan.clone(), step_options).await?;
        if report.interrupted {
            // A step cut short says nothing about its load.
            search.interrupt();
            break;
        }
        let (verdict, record) = step::judge(&capacity, &step_plan, &report, at);
        on_step(&record, Some(&report));
        if verdict == Verdict::Passed && best.as_ref().is_none_or(|(i, _)| steps[*i].offered < offered) {
            best = Some((steps.len(), report));
        } else if first.is_none() && steps.is_empty() {
            first = Some(report);
        }
        steps.push(record);
        search.record(verdict);
    }
    Ok(search_report(&plan, &capacity, &search, steps, best, first, started_at))
}

/// Why this process cannot run a step (preflight), if it cannot: the harness's limit, not the
/// target's.
fn cannot_hold(step: &Plan, capacity: &CapacityPlan, offered: f64) -> Option<String> {
    let at = format!("at {offered} {}", capacity.vary.unit());
    match preflight::check(step, &Machine::read(), None) {
        Ok(layout) if layout.workers == 0 => None,
        Ok(layout) => Some(format!(
            "{at} the step needs {} worker processes (more sockets than one process may hold), and a capacity \
             search runs each step in this one process",
            layout.workers
        )),
        Err(e) => Some(format!("{at} this machine cannot hold the step: {e}")),
    }
}

/// The search's report: the reference step's (the highest passing, else the first run), with
/// the search's `capacity`, start and verdict; judged by every gate of the scenario.
fn search_report(
    plan: &Plan,
    capacity: &CapacityPlan,
    search: &Search,
    steps: Vec<CapacityStep>,
    best: Option<(usize, RunReport)>,
    first: Option<RunReport>,
    started_at: String,
) -> RunReport {
    let outcome = search.outcome();
    let best_index = best.as_ref().map(|(i, _)| *i);
    let first_run = steps.iter().position(|s| !s.started_at.is_empty());
    let (top_level_step, mut report) = match (best, first) {
        (Some((index, report)), _) => (Some(index), report),
        (None, Some(report)) => (first_run, report),
        (None, None) => (None, RunReport::empty(&plan.name)),
    };
    let unit = capacity.vary.unit();
    let untrusted = steps.iter().find(|s| !s.valid);
    let remedy = (outcome.limited_by == LimitedBy::Harness).then(|| {
        let at_least = match outcome.highest_passing {
            Some(value) => format!("the target handled at least {value} {unit}"),
            None => "no step could be measured".to_owned(),
        };
        format!(
            "the generator was the limit, not the target: {at_least}. To measure further, give the load more \
             than this process has: run the target on its own machine (--target), and the harness in more \
             processes or on more machines (shards)"
        )
    });
    let failing_gate = match outcome.limited_by {
        LimitedBy::Gate => steps
            .iter()
            .find(|s| Some(s.offered) == outcome.first_failing)
            .and_then(|s| s.failing_gate.clone()),
        _ => None,
    };
    report.started_at = started_at;
    report.interrupted = outcome.limited_by == LimitedBy::Interrupted;
    if outcome.limited_by == LimitedBy::Harness {
        report.valid = false;
        report.harness.overloaded = true;
        report.harness.reasons = untrusted.map(|s| s.reasons.clone()).unwrap_or_default();
        report.harness.reasons.extend(remedy.clone());
    }
    report.capacity = Some(CapacityReport {
        vary: capacity.vary_text.clone(),
        unit: unit.to_owned(),
        from: capacity.from,
        to: capacity.to,
        growth: capacity.growth,
        resolution: capacity.resolution,
        step_duration_s: capacity.step_duration.as_secs_f64(),
        warmup_s: capacity.warmup.as_secs_f64(),
        highest_passing: outcome.highest_passing,
        highest_passing_deliveries_per_s: best_index.and_then(|i| steps.get(i)).map(|s| s.deliveries_per_s),
        first_failing: outcome.first_failing,
        limited_by: outcome.limited_by,
        failing_gate,
        remedy,
        top_level_step,
        steps,
    });
    apply_gates(&mut report, &plan.gates);
    report
}
