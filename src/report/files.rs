//! Writing a run's report folder (CLI.md): `report.json`, `report.md`, `report.html`,
//! `junit.xml` (one testcase per gate) and one `<metric>.hlog` per latency metric; and any of
//! the rendered formats again from a report (`report PATH --format …`).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::hlog::{metrics_with_intervals, write_hlog};
use super::html::write_html;
use super::junit::{JunitCase, JunitVerdict, write_junit};
use super::md::write_md;
use crate::results::model::RunReport;

/// The formats rendered from `report.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `report.html`
    Html,
    /// `report.md`
    Md,
    /// `junit.xml`
    Junit,
    /// `<metric>.hlog`, one per latency metric with interval histograms.
    Hlog,
}

impl Format {
    pub const ALL: [Format; 4] = [Format::Md, Format::Html, Format::Junit, Format::Hlog];
}

/// Writes every file of a run's report into `folder`; returns the paths written.
pub fn write_run_folder(folder: &Path, report: &RunReport) -> std::io::Result<Vec<PathBuf>> {
    let mut written = vec![write_file(folder, "report.json", &mut |w| {
        serde_json::to_writer_pretty(&mut *w, report).map_err(std::io::Error::other)?;
        writeln!(w)
    })?];
    written.extend(write_formats(folder, report, &Format::ALL)?);
    Ok(written)
}

/// Renders `formats` of `report` into `folder`; returns the paths written.
pub fn write_formats(folder: &Path, report: &RunReport, formats: &[Format]) -> std::io::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for format in formats {
        match format {
            Format::Md => written.push(write_file(folder, "report.md", &mut |w| write_md(w, report))?),
            Format::Html => written.push(write_file(folder, "report.html", &mut |w| write_html(w, report))?),
            Format::Junit => written.push(write_file(folder, "junit.xml", &mut |w| {
                write_junit(
                    w,
                    &format!("openframe-harness run {}", report.scenario),
                    report.duration_s,
                    &gate_cases(report),
                )
            })?),
            Format::Hlog => {
                for metric in metrics_with_intervals(report) {
                    let name = format!("{metric}.hlog");
                    written.push(write_file(folder, &name, &mut |w| write_hlog(w, report, &metric))?);
                }
            }
        }
    }
    Ok(written)
}

fn write_file(
    folder: &Path,
    name: &str,
    body: &mut dyn FnMut(&mut BufWriter<File>) -> std::io::Result<()>,
) -> std::io::Result<PathBuf> {
    let path = folder.join(name);
    let mut file = BufWriter::new(File::create(&path)?);
    body(&mut file)?;
    file.flush()?;
    Ok(path)
}

/// One JUnit testcase per gate; a run whose measurements cannot be trusted fails each gate.
pub fn gate_cases(report: &RunReport) -> Vec<JunitCase> {
    report
        .gates
        .iter()
        .map(|gate| {
            let verdict = if !report.valid {
                JunitVerdict::Failed {
                    message: "not judged: the harness was the bottleneck".into(),
                    detail: report.harness.reasons.join("\n"),
                }
            } else if gate.passed {
                JunitVerdict::Passed
            } else {
                JunitVerdict::Failed {
                    message: format!("observed {}", gate.observed),
                    detail: gate.expr.clone(),
                }
            };
            JunitCase { name: gate.expr.clone(), classname: "gates".into(), time_s: 0.0, verdict }
        })
        .collect()
}
