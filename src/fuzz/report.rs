//! The fuzz report: `report.json` (kind, passed, findings with sent / received / expected),
//! `report.md`, and one replayable JSON file per finding.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::canary::CanaryReport;
use super::case::FuzzCase;
use super::growth::GrowthReport;
use crate::oracle::Oracle;

/// Format tag of finding files.
pub const FINDING_FORMAT: &str = "openframe-fuzz-finding/1";

/// One finding, as reported and as saved for replay.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Finding {
    pub name: String,
    pub verdict: String,
    pub oracle: Oracle,
    pub signature: String,
    /// The sections of PROTOCOL.md the broken expectation rests on (`"§4"`, `"§1, §4"`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub rule: String,
    /// What was sent (the shrunk case, described).
    pub sent: String,
    pub received: String,
    pub expected: String,
    pub occurrences: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub case_index: Option<u64>,
    /// The minimal reproducer, when the finding has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub case: Option<FuzzCase>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub original_case: Option<FuzzCase>,
    /// The finding file in the report folder.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
}

/// A saved finding: everything needed to run it again.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FindingFile {
    pub format: String,
    pub seed: u64,
    pub finding: Finding,
}

#[derive(Debug, Clone, Serialize)]
pub struct FuzzReport {
    pub schema_version: u32,
    pub kind: &'static str,
    pub target: String,
    pub seed: u64,
    pub interrupted: bool,
    pub passed: bool,
    pub started_at: String,
    pub duration_s: f64,
    pub cases: u64,
    pub cases_per_s: f64,
    pub workers: usize,
    pub reference: Option<String>,
    /// How a `wss://` target's TLS was checked (absent for `ws://`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<crate::probe::target::TlsSummary>,
    pub liveness_probes: u64,
    pub server_restarts: u64,
    /// What the cases reached: sent message types, answer types, error codes, close codes.
    pub coverage: BTreeMap<String, u64>,
    /// The seed corpus: where it came from, its files, and how many were sent whole (the run's
    /// first cases); absent for `--replay`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub corpus: Option<CorpusSummary>,
    /// Notes that are not failures, with how many cases saw each: `lone_surrogate_escape` counts
    /// server messages with an escape that decodes to no Unicode scalar value (valid by RFC
    /// 8259's grammar; a server echoing a client's own implementation-defined input).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub notes: BTreeMap<String, u64>,
    pub canaries: Option<CanaryReport>,
    pub growth: Option<GrowthReport>,
    pub findings: Vec<Finding>,
    /// Set for `--replay`: the file that was run again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replayed: Option<String>,
}

/// The seed corpus of a run.
#[derive(Debug, Clone, Serialize)]
pub struct CorpusSummary {
    /// `embedded` (built into the binary) or the `--corpus` folder.
    pub source: String,
    pub files: u64,
    /// Files sent whole as cases of their own (all of them once the run has that many cases).
    pub files_sent: u64,
}

impl FuzzReport {
    pub fn summary_line(&self) -> String {
        let corpus = self.corpus.as_ref().map_or_else(String::new, |c| {
            format!("; corpus {}: {} of {} files sent", c.source, c.files_sent, c.files)
        });
        format!(
            "fuzz {}{} seed {}: {} cases in {:.1}s ({:.0} cases/s){corpus}, {} finding(s){}",
            self.target,
            crate::probe::target::TlsSummary::note(self.tls.as_ref()),
            self.seed,
            self.cases,
            self.duration_s,
            self.cases_per_s,
            self.findings.len(),
            if self.interrupted { " (interrupted)" } else { "" }
        )
    }

    /// Writes `report.json`, `report.md` and one `finding-NNN.json` per finding into `folder`.
    pub fn write_all(&mut self, folder: &Path) -> io::Result<()> {
        for (i, finding) in self.findings.iter_mut().enumerate() {
            if finding.case.is_none() {
                continue;
            }
            let name = format!("finding-{:03}.json", i + 1);
            finding.file = Some(name.clone());
            let file =
                FindingFile { format: FINDING_FORMAT.into(), seed: self.seed, finding: finding.clone() };
            std::fs::write(folder.join(&name), serde_json::to_vec_pretty(&file).map_err(io::Error::other)?)?;
        }
        std::fs::write(
            folder.join("report.json"),
            serde_json::to_vec_pretty(self).map_err(io::Error::other)?,
        )?;
        let mut md = Vec::new();
        write_md(&mut md, self)?;
        std::fs::write(folder.join("report.md"), md)
    }
}

pub fn write_md<W: Write>(w: &mut W, r: &FuzzReport) -> io::Result<()> {
    writeln!(w, "# Fuzz: {}\n", if r.passed { "no findings" } else { "FINDINGS" })?;
    writeln!(
        w,
        "- target: `{}`; seed {}; {} workers; reference: {}",
        r.target,
        r.seed,
        r.workers,
        r.reference.as_deref().unwrap_or("none")
    )?;
    writeln!(
        w,
        "- {} cases in {:.1} s: **{:.0} cases/s**; {} liveness probes; {} server restarts",
        r.cases, r.duration_s, r.cases_per_s, r.liveness_probes, r.server_restarts
    )?;
    if let Some(c) = &r.corpus {
        writeln!(w, "- seed corpus `{}`: {} of {} files sent whole", c.source, c.files_sent, c.files)?;
    }
    if let Some(c) = &r.canaries {
        writeln!(
            w,
            "- canaries: {} published, {} received, {} damage",
            c.published,
            c.received,
            c.damage.len()
        )?;
    }
    if let Some(g) = &r.growth {
        writeln!(w, "- growth: {}", g.finding.as_deref().unwrap_or("none"))?;
    }
    for (note, cases) in &r.notes {
        writeln!(w, "- note (not a failure): `{note}` in {cases} case(s)")?;
    }
    writeln!(w, "\n## Findings\n")?;
    for f in &r.findings {
        writeln!(w, "### {} ({} occurrence(s))\n", f.name, f.occurrences)?;
        if let Some(file) = &f.file {
            writeln!(w, "Replay: `openframe-harness fuzz --replay {file}`\n")?;
        }
        if !f.rule.is_empty() {
            writeln!(w, "Rule: PROTOCOL.md {}\n", f.rule)?;
        }
        for (label, text) in [("Sent", &f.sent), ("Received", &f.received), ("Expected", &f.expected)] {
            writeln!(w, "**{label}:**\n\n```\n{}\n```\n", text.replace("```", "'''"))?;
        }
    }
    if r.findings.is_empty() {
        writeln!(w, "None.\n")?;
    }
    writeln!(w, "## Coverage\n\n| reached | cases |\n|---|---|")?;
    for (k, v) in &r.coverage {
        writeln!(w, "| `{k}` | {v} |")?;
    }
    Ok(())
}
