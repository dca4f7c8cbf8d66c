//! `report PATH --format …`: renders a finished run's `report.json` again (CLI.md), next to it
//! or into `--out DIR`, and prints the paths it wrote. It judges nothing: exit 0 once written,
//! 2 when the report cannot be read.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::cli::{ReportArgs, ReportFormat};
use crate::commands::outcome::Outcome;
use crate::report::files::{Format, write_formats};
use crate::report::read::{read_run_report, report_file};

pub fn execute(args: ReportArgs) -> anyhow::Result<Outcome> {
    let report = read_run_report(&args.path)?;
    let folder = args.out.clone().unwrap_or_else(|| folder_of(&report_file(&args.path)));
    std::fs::create_dir_all(&folder).with_context(|| format!("cannot create {}", folder.display()))?;
    let written = write_formats(&folder, &report, &formats(&args.format))
        .with_context(|| format!("cannot write into {}", folder.display()))?;
    for path in written {
        println!("{}", path.display());
    }
    Ok(Outcome::Passed)
}

/// The formats asked for, each once, in a fixed order.
fn formats(asked: &[ReportFormat]) -> Vec<Format> {
    Format::ALL
        .into_iter()
        .filter(|format| {
            asked.iter().any(|a| {
                *a == ReportFormat::All
                    || matches!(
                        (a, format),
                        (ReportFormat::Html, Format::Html)
                            | (ReportFormat::Md, Format::Md)
                            | (ReportFormat::Junit, Format::Junit)
                            | (ReportFormat::Hlog, Format::Hlog)
                    )
            })
        })
        .collect()
}

fn folder_of(file: &Path) -> PathBuf {
    match file.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_deduplicated_and_all_means_all() {
        assert_eq!(
            formats(&[ReportFormat::Hlog, ReportFormat::Html, ReportFormat::Html]),
            [Format::Html, Format::Hlog]
        );
        assert_eq!(formats(&[ReportFormat::All]), Format::ALL);
        assert_eq!(folder_of(Path::new("report.json")), PathBuf::from("."));
        assert_eq!(folder_of(Path::new("a/b/report.json")), PathBuf::from("a/b"));
    }
}
