//! The capacity search's arithmetic, as a state machine: which load to try next given the
//! verdicts so far. Geometric steps up from `from` (× `growth`, capped at `to`) until a step
//! fails, then bisection between the last passing and the first failing load until the bracket
//! is no wider than `resolution` of its bottom. An untrusted step ends the search at once.
//!
//! It owns no runs and no time: [`Search::next`] proposes a load, [`Search::record`] takes its
//! verdict. It must not run, measure or judge anything (`runner::capacity` does).

use crate::results::model::LimitedBy;

/// No search runs more steps than this, whatever its range (the plan's checks keep real
/// searches well below it: `CapacityPlan` refuses a range, growth and resolution that could
/// need more than `scenario::plan::capacity::PLANNED_STEPS_LIMIT`).
pub const MAX_STEPS: u32 = 128;

/// What a step's run said about its load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Every gate held.
    Passed,
    /// A gate failed (or the load was not achieved).
    Failed,
    /// The harness flagged itself: nothing can be concluded about this load.
    Untrusted,
}

/// Which part of the search proposed a load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Grow,
    Bisect,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::Grow => "grow",
            Phase::Bisect => "bisect",
        }
    }
}

/// How a search is laid out.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Params {
    pub from: f64,
    pub to: f64,
    pub growth: f64,
    pub resolution: f64,
    /// Loads are whole numbers (client counts).
    pub whole: bool,
}

/// Where a search stands.
#[derive(Debug, Clone, PartialEq)]
pub struct Search {
    params: Params,
    /// The load to try next and why; `None` once the search is over.
    next: Option<(f64, Phase)>,
    highest_passing: Option<f64>,
    first_failing: Option<f64>,
    limited_by: Option<LimitedBy>,
    steps: u32,
}

/// What a finished (or interrupted) search found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Outcome {
    pub highest_passing: Option<f64>,
    pub first_failing: Option<f64>,
    pub limited_by: LimitedBy,
}

impl Search {
    pub fn new(params: Params) -> Search {
        Search {
            params,
            next: Some((params.from, Phase::Grow)),
            highest_passing: None,
            first_failing: None,
            limited_by: None,
            steps: 0,
        }
    }

    /// The load to try next, or `None` when the search is over.
    pub fn next(&self) -> Option<(f64, Phase)> {
        self.next
    }

    /// Takes the verdict on the load [`Search::next`] proposed.
    pub fn record(&mut self, verdict: Verdict) {
        let Some((value, phase)) = self.next.take() else { return };
        self.steps += 1;
        match verdict {
            Verdict::Untrusted => return self.finish(LimitedBy::Harness),
            Verdict::Passed => self.highest_passing = Some(value),
            Verdict::Failed => self.first_failing = Some(value),
        }
        if self.steps >= MAX_STEPS {
            return self.finish(if self.first_failing.is_some() {
                LimitedBy::Gate
            } else {
                LimitedBy::Range
            });
        }
        match (phase, verdict) {
            (Phase::Grow, Verdict::Passed) if value >= self.params.to => self.finish(LimitedBy::Range),
            (Phase::Grow, Verdict::Passed) => {
                let mut up = self.round((value * self.params.growth).min(self.params.to));
                if up <= value {
                    up = (value + 1.0).min(self.params.to);
                }
                self.next = Some((up, Phase::Grow));
            }
            _ => self.bisect(),
        }
    }

    /// Ends the search early (Ctrl-C): what it found so far stands.
    pub fn interrupt(&mut self) {
        self.finish(LimitedBy::Interrupted);
    }

    pub fn outcome(&self) -> Outcome {
        Outcome {
            highest_passing: self.highest_passing,
            first_failing: self.first_failing,
            limited_by: self.limited_by.unwrap_or(LimitedBy::Interrupted),
        }
    }

    /// Steps recorded so far.
    pub fn steps(&self) -> u32 {
        self.steps
    }

    /// The midpoint of the bracket, or the end of the search when it is narrow enough (or no
    /// step passed: the capacity lies below the range).
    fn bisect(&mut self) {
        let (Some(low), Some(high)) = (self.highest_passing, self.first_failing) else {
            return self.finish(LimitedBy::Gate);
        };
        let mid = self.round((low + high) / 2.0);
        if high - low <= self.params.resolution * low || mid <= low || mid >= high {
            return self.finish(LimitedBy::Gate);
        }
        self.next = Some((mid, Phase::Bisect));
    }

    fn round(&self, value: f64) -> f64 {
        if self.params.whole { value.round() } else { value }
    }

    fn finish(&mut self, limited_by: LimitedBy) {
        self.next = None;
        self.limited_by = Some(limited_by);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(from: f64, to: f64) -> Params {
        Params { from, to, growth: 2.0, resolution: 0.05, whole: false }
    }

    /// Runs a search against a judge that passes every load up to `capacity`; returns the loads
    /// tried and the outcome.
    fn against(params: Params, judge: impl Fn(f64) -> Verdict) -> (Vec<(f64, Phase)>, Outcome) {
        let mut search = Search::new(params);
        let mut tried = Vec::new();
        while let Some((value, phase)) = search.next() {
            tried.push((value, phase));
            search.record(judge(value));
            assert!(tried.len() < 100, "the search ends");
        }
        (tried, search.outcome())
    }

    fn threshold(capacity: f64) -> impl Fn(f64) -> Verdict {
        move |v| if v <= capacity { Verdict::Passed } else { Verdict::Failed }
    }

    #[test]
    fn steps_up_geometrically_then_bisects_to_the_resolution() {
        let (tried, outcome) = against(params(100.0, 100_000.0), threshold(1_000.0));
        let grow: Vec<f64> = tried.iter().filter(|t| t.1 == Phase::Grow).map(|t| t.0).collect();
        assert_eq!(grow, [100.0, 200.0, 400.0, 800.0, 1_600.0]);
        let bisect: Vec<f64> = tried.iter().filter(|t| t.1 == Phase::Bisect).map(|t| t.0).collect();
        assert_eq!(bisect, [1_200.0, 1_000.0, 1_100.0, 1_050.0]);
        assert_eq!(outcome.limited_by, LimitedBy::Gate);
        let (low, high) = (outcome.highest_passing.unwrap(), outcome.first_failing.unwrap());
        assert!(low <= 1_000.0 && high > 1_000.0, "{low}..{high} brackets the capacity");
        assert!(high - low <= 0.05 * low, "to the resolution: {low}..{high}");
    }

    #[test]
    fn finds_any_capacity_in_the_range_within_the_resolution() {
        for capacity in [101.0, 137.0, 999.0, 5_000.0, 31_415.0, 99_999.0] {
            let (tried, outcome) = against(params(100.0, 100_000.0), threshold(capacity));
            let (low, high) = (outcome.highest_passing.unwrap(), outcome.first_failing.unwrap());
            assert!(low <= capacity && capacity < high, "{capacity}: {low}..{high}");
            assert!(high - low <= 0.05 * low, "{capacity}: {low}..{high}");
            assert!(tried.len() <= 11 + 5, "{capacity}: {} steps", tried.len());
        }
    }

    #[test]
    fn the_top_of_the_range_is_tried_and_a_range_that_passes_says_so() {
        let (tried, outcome) = against(params(100.0, 1_000.0), |_| Verdict::Passed);
        let loads: Vec<f64> = tried.iter().map(|t| t.0).collect();
        assert_eq!(loads, [100.0, 200.0, 400.0, 800.0, 1_000.0]);
        assert_eq!(outcome.limited_by, LimitedBy::Range);
        assert_eq!((outcome.highest_passing, outcome.first_failing), (Some(1_000.0), None));
    }

    #[test]
    fn a_failing_first_step_ends_below_the_range() {
        let (tried, outcome) = against(params(100.0, 1_000.0), |_| Verdict::Failed);
        assert_eq!(tried.len(), 1);
        assert_eq!(outcome.limited_by, LimitedBy::Gate);
        assert_eq!((outcome.highest_passing, outcome.first_failing), (None, Some(100.0)));
    }

    #[test]
    fn an_untrusted_step_ends_the_search_with_what_passed_before_it() {
        let judge = |v: f64| if v < 700.0 { Verdict::Passed } else { Verdict::Untrusted };
        let (tried, outcome) = against(params(100.0, 100_000.0), judge);
        assert_eq!(tried.last().unwrap().0, 800.0);
        assert_eq!(outcome.limited_by, LimitedBy::Harness);
        assert_eq!((outcome.highest_passing, outcome.first_failing), (Some(400.0), None));
        // Untrusted while bisecting: the bracket found so far stands, the harness is named.
        let judge = |v: f64| match v {
            v if v <= 1_000.0 => Verdict::Passed,
            v if v >= 1_600.0 => Verdict::Failed,
            _ => Verdict::Untrusted,
        };
        let (_, outcome) = against(params(100.0, 100_000.0), judge);
        assert_eq!(outcome.limited_by, LimitedBy::Harness);
        assert_eq!((outcome.highest_passing, outcome.first_failing), (Some(800.0), Some(1_600.0)));
    }

    #[test]
    fn whole_loads_stay_whole_and_stop_when_the_bracket_has_no_room() {
        let whole = Params { from: 1.0, to: 1_000.0, growth: 3.0, resolution: 0.01, whole: true };
        let (tried, outcome) = against(whole, threshold(7.0));
        assert!(tried.iter().all(|t| t.0.fract() == 0.0), "{tried:?}");
        assert_eq!((outcome.highest_passing, outcome.first_failing), (Some(7.0), Some(8.0)));
        let slow = Params { from: 1.0, to: 5.0, growth: 1.2, resolution: 0.05, whole: true };
        let (tried, _) = against(slow, |_| Verdict::Passed);
        let loads: Vec<f64> = tried.iter().map(|t| t.0).collect();
        assert_eq!(loads, [1.0, 2.0, 3.0, 4.0, 5.0], "a growth that rounds to nothing still climbs");
    }

    #[test]
    fn an_interrupted_search_keeps_what_it_found() {
        let mut search = Search::new(params(100.0, 1_000.0));
        search.record(Verdict::Passed);
        search.interrupt();
        assert_eq!(search.next(), None);
        let outcome = search.outcome();
        assert_eq!((outcome.limited_by, outcome.highest_passing), (LimitedBy::Interrupted, Some(100.0)));
    }
}
