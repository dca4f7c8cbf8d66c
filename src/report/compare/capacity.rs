//! `compare` of capacity searches: the capacity found (`capacity.highest_passing` and
//! `capacity.highest_passing_deliveries_per_s`), where lower is worse.
//!
//! A search knows its capacity only to within its bracket: the true figure lies somewhere from
//! the highest passing load up to the first failing one (or, without one, within the search's
//! resolution). Taken as spread evenly over that bracket, a run's figure has a standard error of
//! its width / √12; the rule of `compare` then allows the usual multiple of the two runs' errors
//! combined (and `--max-regression`, and the spread between baseline runs), so a drop counts as
//! a regression only beyond what the searches' own resolution explains. A current search with
//! no passing step at all regressed from any baseline that had one. It must not read anything
//! but the reports.

use super::{Row, Runs, Unit, Verdict, Worse};
use crate::results::model::CapacityReport;
use crate::results::model::RunReport;

/// How a figure reads from a search.
type Read = fn(&CapacityReport) -> Option<f64>;

/// The figures judged, with how each reads from a search.
const FIGURES: &[(&str, Unit, Read)] = &[
    ("highest_passing", Unit::Count, |c| c.highest_passing),
    ("highest_passing_deliveries_per_s", Unit::PerSecond, |c| c.highest_passing_deliveries_per_s),
];

/// Why a run's latency and throughput rows are not judged when the runs are capacity searches:
/// those figures are one step's, at a load each search chose for itself.
pub const STEP_FIGURES: &str = "one step of a capacity search, at a load that differs between runs";

impl Runs<'_> {
    /// Whether any run compared is a capacity search.
    pub(super) fn searching(&self) -> bool {
        self.all().any(|r| r.capacity.is_some())
    }

    pub(super) fn capacity_rows(&self, rows: &mut Vec<Row>) {
        let Some(current) = &self.current.capacity else { return };
        let skip = if self.baselines.iter().any(|b| b.capacity.is_none()) {
            Some("not a capacity search in every run")
        } else if self.baselines.iter().filter_map(|b| b.capacity.as_ref()).any(|b| b.vary != current.vary) {
            Some("the searches varied different values")
        } else {
            None
        };
        for (name, unit, read) in FIGURES {
            let figure = |r: &RunReport| r.capacity.as_ref().and_then(read).unwrap_or(0.0);
            let noise = |r: &RunReport| r.capacity.as_ref().and_then(|c| bracket_error(c, *read));
            let values = self.values(figure, noise);
            rows.push(self.row(format!("capacity.{name}"), *unit, Worse::Lower, values, None, skip));
        }
    }
}

/// A search's standard error of a figure: the width of its bracket, in the figure's unit, / √12.
fn bracket_error(c: &CapacityReport, read: Read) -> Option<f64> {
    let low = c.highest_passing.filter(|l| *l > 0.0)?;
    let value = read(c)?;
    let relative_width = match c.first_failing {
        Some(high) if high > low => (high - low) / low,
        _ => c.resolution,
    };
    Some(value * relative_width / 12f64.sqrt())
}

/// The verdict a latency or throughput row of capacity searches gets instead of a judgement.
pub(super) fn step_figure() -> Verdict {
    Verdict::NotJudged(STEP_FIGURES)
}

#[cfg(test)]
mod tests {
    use super::super::{Bound, Conclusion, Options, compare};
    use super::*;
    use crate::results::model::CapacityReport;

    fn search(highest: f64, first_failing: Option<f64>) -> RunReport {
        let mut report = RunReport::empty("capacity");
        let mut c = CapacityReport::template();
        c.vary = "publishers.alerts.rate".into();
        c.resolution = 0.05;
        c.highest_passing = Some(highest);
        c.highest_passing_deliveries_per_s = Some(highest * 200.0);
        c.first_failing = first_failing;
        report.capacity = Some(c);
        report
    }

    fn capacity_row(baseline: &RunReport, current: &RunReport) -> Row {
        let comparison = compare(std::slice::from_ref(baseline), current, Options::default());
        comparison.rows.into_iter().find(|r| r.metric == "capacity.highest_passing_deliveries_per_s").unwrap()
    }

    #[test]
    fn a_capacity_drop_beyond_the_brackets_is_a_regression() {
        let baseline = search(1_000.0, Some(1_050.0));
        assert_eq!(capacity_row(&baseline, &search(1_000.0, Some(1_050.0))).verdict, Verdict::Within);
        // Within --max-regression (10 %) and the brackets: noise.
        assert_eq!(capacity_row(&baseline, &search(950.0, Some(1_000.0))).verdict, Verdict::Within);
        let dropped = capacity_row(&baseline, &search(700.0, Some(735.0)));
        assert_eq!(dropped.verdict, Verdict::Regressed, "{dropped:?}");
        assert!(
            compare(std::slice::from_ref(&baseline), &search(700.0, Some(735.0)), Options::default())
                .conclusion()
                == Conclusion::Regressed
        );
        assert_eq!(capacity_row(&baseline, &search(1_500.0, Some(1_575.0))).verdict, Verdict::Improved);
    }

    #[test]
    fn a_coarse_search_allows_its_own_bracket() {
        // Both searches only know the capacity to within a factor of two.
        let baseline = search(1_000.0, Some(2_000.0));
        let row = capacity_row(&baseline, &search(800.0, Some(1_600.0)));
        assert_eq!(row.verdict, Verdict::Within, "{row:?}");
        assert!(matches!(row.allowance, Some((_, Bound::Noise))), "{row:?}");
    }

    #[test]
    fn no_passing_step_regressed_and_step_figures_are_not_judged() {
        let baseline = search(1_000.0, Some(1_050.0));
        let mut nothing = search(0.0, Some(100.0));
        if let Some(c) = nothing.capacity.as_mut() {
            c.highest_passing = None;
            c.highest_passing_deliveries_per_s = None;
        }
        assert_eq!(capacity_row(&baseline, &nothing).verdict, Verdict::Regressed);
        let comparison = compare(std::slice::from_ref(&baseline), &baseline, Options::default());
        let throughput = comparison.rows.iter().find(|r| r.metric.starts_with("throughput.")).unwrap();
        assert_eq!(throughput.verdict, Verdict::NotJudged(STEP_FIGURES));
        let plain = RunReport::empty("capacity");
        let row = capacity_row(&plain, &baseline);
        assert!(matches!(row.verdict, Verdict::NotJudged(_)), "{row:?}");
    }
}
