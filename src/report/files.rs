//! Writing a run's report folder (CLI.md): `report.json`, `report.md`, `junit.xml` (one
//! testcase per gate) and one `<metric>.hlog` per latency metric.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::hlog::{metrics_with_intervals, write_hlog};
use super::junit::{JunitCase, JunitVerdict, write_junit};
use super::md::write_md;
use super::model::RunReport;

/// Writes every file of a run's report into `folder`; returns the paths written.
pub fn write_run_folder(folder: &Path, report: &RunReport) -> std::io::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    let mut write = |name: &str, body: &dyn Fn(&mut BufWriter<File>) -> std::io::Result<()>| {
        let path = folder.join(name);
        let mut file = BufWriter::new(File::create(&path)?);
        body(&mut file)?;
        file.flush()?;
        written.push(path);
        Ok::<(), std::io::Error>(())
    };
    write("report.json", &|w| {
        serde_json::to_writer_pretty(&mut *w, report).map_err(std::io::Error::other)?;
        writeln!(w)
    })?;
    write("report.md", &|w| write_md(w, report))?;
    write("junit.xml", &|w| {
        write_junit(
            w,
            &format!("openframe-harness run {}", report.scenario),
            report.duration_s,
            &gate_cases(report),
        )
    })?;
    for metric in metrics_with_intervals(report) {
        write(&format!("{metric}.hlog"), &|w| write_hlog(w, report, &metric))?;
    }
    Ok(written)
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
