//! The conformance report: `report.json` (the fields CLI.md fixes), `report.md` for people,
//! `junit.xml` with one testcase per case.

use std::io::{self, Write};
use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use super::case::{Case, Failure};
use crate::report::junit::{JunitCase, JunitVerdict, write_junit};

/// How one case came out.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Pass,
    Fail(Failure),
    /// The case checks an extension and `--no-extensions` was given.
    SkippedExtension,
    /// The case cannot be judged here (the reason says why).
    Skipped {
        reason: String,
    },
}

impl Verdict {
    pub fn label(&self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail(_) => "fail",
            Verdict::SkippedExtension => "skipped-extension",
            Verdict::Skipped { .. } => "skipped",
        }
    }
}

/// One case's entry in `report.json`.
#[derive(Debug, Clone, Serialize)]
pub struct CaseReport {
    pub name: String,
    pub area: &'static str,
    pub verdict: &'static str,
    pub extension: bool,
    pub time_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sent: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub received: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    /// The PROTOCOL.md rule, quoted; given for failures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<&'static str>,
}

impl CaseReport {
    pub fn new(case: &Case, verdict: Verdict, took: Duration) -> CaseReport {
        let mut report = CaseReport {
            name: case.name.clone(),
            area: case.area,
            verdict: verdict.label(),
            extension: case.extension,
            time_ms: took.as_millis() as u64,
            reason: None,
            sent: None,
            received: None,
            expected: None,
            rule: None,
        };
        match verdict {
            Verdict::Fail(failure) => {
                report.sent = Some(failure.sent);
                report.received = Some(failure.received);
                report.expected = Some(failure.expected);
                report.rule = Some(case.rule);
            }
            Verdict::Skipped { reason } => report.reason = Some(reason),
            Verdict::SkippedExtension => report.reason = Some("checks an extension; --no-extensions".into()),
            Verdict::Pass => {}
        }
        report
    }
}

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Summary {
    pub total: usize,
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
}

/// `report.json` of `conform`.
#[derive(Debug, Clone, Serialize)]
pub struct ConformReport {
    pub schema_version: u32,
    pub kind: &'static str,
    pub target: String,
    pub extensions: bool,
    pub interrupted: bool,
    pub passed: bool,
    pub started_at: String,
    pub duration_s: f64,
    pub summary: Summary,
    /// How a `wss://` target's TLS was checked (absent for `ws://`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<crate::probe::target::TlsSummary>,
    pub cases: Vec<CaseReport>,
}

impl ConformReport {
    pub fn new(
        target: String,
        extensions: bool,
        started_at: String,
        took: Duration,
        cases: Vec<CaseReport>,
        interrupted: bool,
    ) -> Self {
        let count = |v: &str| cases.iter().filter(|c| c.verdict == v).count();
        let summary = Summary {
            total: cases.len(),
            passed: count("pass"),
            failed: count("fail"),
            skipped: count("skipped") + count("skipped-extension"),
        };
        ConformReport {
            schema_version: 1,
            kind: "conform",
            target,
            extensions,
            interrupted,
            passed: summary.failed == 0 && !interrupted,
            started_at,
            duration_s: took.as_secs_f64(),
            summary,
            tls: None,
            cases,
        }
    }

    /// One line for the terminal.
    pub fn summary_line(&self) -> String {
        format!(
            "conform {}{}: {} cases, {} passed, {} failed, {} skipped in {:.2}s{}",
            self.target,
            crate::probe::target::TlsSummary::note(self.tls.as_ref()),
            self.summary.total,
            self.summary.passed,
            self.summary.failed,
            self.summary.skipped,
            self.duration_s,
            if self.interrupted { " (interrupted)" } else { "" }
        )
    }

    /// Writes `report.json`, `report.md` and `junit.xml` into `folder`.
    pub fn write_all(&self, folder: &Path) -> io::Result<()> {
        let json = serde_json::to_vec_pretty(self).map_err(io::Error::other)?;
        std::fs::write(folder.join("report.json"), json)?;
        let mut md = Vec::new();
        write_md(&mut md, self)?;
        std::fs::write(folder.join("report.md"), md)?;
        let mut xml = Vec::new();
        write_junit(&mut xml, "conform", self.duration_s, &junit_cases(self))?;
        std::fs::write(folder.join("junit.xml"), xml)
    }
}

pub fn junit_cases(report: &ConformReport) -> Vec<JunitCase> {
    report
        .cases
        .iter()
        .map(|c| JunitCase {
            name: c.name.clone(),
            classname: format!("conform.{}", c.area),
            time_s: c.time_ms as f64 / 1000.0,
            verdict: match c.verdict {
                "pass" => JunitVerdict::Passed,
                "fail" => JunitVerdict::Failed {
                    message: c.expected.clone().unwrap_or_default(),
                    detail: format!(
                        "sent:\n{}\n\nreceived:\n{}\n\nexpected:\n{}\n\nrule: {}",
                        c.sent.as_deref().unwrap_or_default(),
                        c.received.as_deref().unwrap_or_default(),
                        c.expected.as_deref().unwrap_or_default(),
                        c.rule.unwrap_or_default()
                    ),
                },
                _ => JunitVerdict::Skipped { message: c.reason.clone().unwrap_or_default() },
            },
        })
        .collect()
}

pub fn write_md<W: Write>(w: &mut W, report: &ConformReport) -> io::Result<()> {
    writeln!(w, "# Conformance: {}\n", if report.passed { "PASSED" } else { "FAILED" })?;
    writeln!(w, "- target: `{}`", report.target)?;
    writeln!(w, "- extensions checked: {}", report.extensions)?;
    writeln!(
        w,
        "- started: {}, took {:.2} s{}",
        report.started_at,
        report.duration_s,
        if report.interrupted { " (interrupted)" } else { "" }
    )?;
    let s = report.summary;
    writeln!(w, "- {} cases: {} passed, {} failed, {} skipped\n", s.total, s.passed, s.failed, s.skipped)?;
    let failed: Vec<&CaseReport> = report.cases.iter().filter(|c| c.verdict == "fail").collect();
    if !failed.is_empty() {
        writeln!(w, "## Failures\n")?;
        for c in failed {
            writeln!(w, "### `{}`\n", c.name)?;
            writeln!(w, "> {}\n", c.rule.unwrap_or_default())?;
            for (label, text) in [("Sent", &c.sent), ("Received", &c.received), ("Expected", &c.expected)] {
                writeln!(
                    w,
                    "**{label}:**\n\n```\n{}\n```\n",
                    text.as_deref().unwrap_or_default().replace("```", "'''")
                )?;
            }
        }
    }
    writeln!(w, "## All cases\n\n| case | verdict | ms | note |\n|---|---|---|---|")?;
    for c in &report.cases {
        writeln!(
            w,
            "| `{}` | {} | {} | {} |",
            c.name,
            c.verdict,
            c.time_ms,
            c.reason.as_deref().unwrap_or_default().replace('|', "/")
        )?;
    }
    Ok(())
}
