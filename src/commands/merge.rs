//! `merge REPORT.json… --out DIR`: one report from the reports of a run's shards (CLI.md).

use std::path::{Path, PathBuf};

use anyhow::Context;

use super::run::{outcome, print_summary};
use crate::cli::MergeArgs;
use crate::commands::outcome::{BadInput, Outcome};
use crate::report::files::write_run_folder;
use crate::report::merge::merge;
use crate::results::model::RunReport;

pub fn execute(args: MergeArgs) -> anyhow::Result<Outcome> {
    let reports = args.reports.iter().map(|path| read_report(path)).collect::<Result<Vec<_>, _>>()?;
    let merged = merge(&reports).map_err(|e| BadInput(format!("cannot merge: {e}")))?;
    std::fs::create_dir_all(&args.out).with_context(|| format!("cannot create {}", args.out.display()))?;
    write_run_folder(&args.out, &merged)
        .with_context(|| format!("cannot write into {}", args.out.display()))?;
    print_summary(&merged);
    println!("report: {}", args.out.display());
    Ok(outcome(&merged))
}

/// Reads `path`, a report.json or a folder holding one.
pub fn read_report(path: &Path) -> Result<RunReport, BadInput> {
    let file: PathBuf = if path.is_dir() { path.join("report.json") } else { path.to_path_buf() };
    let text = std::fs::read_to_string(&file)
        .map_err(|e| BadInput(format!("cannot read {}: {e}", file.display())))?;
    serde_json::from_str(&text).map_err(|e| BadInput(format!("{} is not a run report: {e}", file.display())))
}
