//! `compare BASELINE… CURRENT [--max-regression PCT] [--min-delta D]`: the regression gate
//! between runs (CLI.md). A baseline is a report.json, a report folder, or a folder of
//! baseline runs (`reports/baselines/smoke/`, every `*.json` in it). Prints the comparison as Markdown on stdout; exit 1 on a regression,
//! 4 when a run cannot be trusted, 2 when a report cannot be read, else 0. The rule is
//! documented in `report::compare`.

use std::io::{ErrorKind, Write};

use anyhow::Context;

use crate::cli::CompareArgs;
use crate::commands::outcome::Outcome;
use crate::report::compare::{Conclusion, Options, compare, write_comparison};
use crate::report::read::{baseline_files, read_run_report, report_file};

pub fn execute(args: CompareArgs) -> anyhow::Result<Outcome> {
    // clap guarantees at least two paths: the last is the run to judge.
    let (current_path, baseline_args) = args.reports.split_last().context("no reports given")?;
    let mut baseline_paths = Vec::new();
    for path in baseline_args {
        baseline_paths.extend(baseline_files(path)?);
    }
    let baselines = baseline_paths.iter().map(|p| read_run_report(p)).collect::<Result<Vec<_>, _>>()?;
    let current = read_run_report(current_path)?;
    let options = Options {
        max_regression: args.max_regression,
        min_delta_us: args.min_delta.as_secs_f64() * 1e6,
        ..Options::default()
    };
    let mut comparison = compare(&baselines, &current, options);
    for (info, path) in comparison.baselines.iter_mut().zip(&baseline_paths) {
        info.label = path.display().to_string();
    }
    comparison.current.label = report_file(current_path).display().to_string();
    let mut out = std::io::stdout().lock();
    match write_comparison(&mut out, &comparison).and_then(|()| out.flush()) {
        // A reader that stopped early (`| head`) does not change the verdict.
        Err(e) if e.kind() == ErrorKind::BrokenPipe => {}
        result => result.context("writing the comparison")?,
    }
    Ok(match comparison.conclusion() {
        Conclusion::NoRegression => Outcome::Passed,
        Conclusion::Regressed => Outcome::Failed,
        Conclusion::NotJudged => Outcome::Untrustworthy,
    })
}
