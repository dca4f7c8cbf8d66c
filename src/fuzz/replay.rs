//! `fuzz --replay FILE`: runs one saved finding again against the target, with the same
//! oracles (and the server's death, when the harness started it), and says whether it still
//! reproduces.

use std::path::Path;
use std::time::{Instant, SystemTime};

use super::report::{FINDING_FORMAT, Finding, FindingFile, FuzzReport};
use super::run::{FuzzPlan, expected_of, rule_of};
use crate::oracle::{Mismatch, Oracle};
use crate::probe::{StartError, Sut};
use crate::protocol::timestamp::format_rfc3339_millis;

#[derive(Debug, thiserror::Error)]
pub enum ReplayFileError {
    #[error("reading {path}: {cause}")]
    Read { path: String, cause: std::io::Error },
    #[error("{path} is not a finding file ({FINDING_FORMAT}): {detail}")]
    Invalid { path: String, detail: String },
}

pub fn load(path: &Path) -> Result<FindingFile, ReplayFileError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| ReplayFileError::Read { path: path.display().to_string(), cause: source })?;
    let file: FindingFile = serde_json::from_str(&text)
        .map_err(|e| ReplayFileError::Invalid { path: path.display().to_string(), detail: e.to_string() })?;
    if file.format != FINDING_FORMAT || file.finding.case.is_none() {
        return Err(ReplayFileError::Invalid {
            path: path.display().to_string(),
            detail: "wrong format or no case".into(),
        });
    }
    Ok(file)
}

/// Runs the finding's case once; the report has the finding again if it reproduced.
pub async fn replay(plan: FuzzPlan, file: FindingFile, name: &str) -> Result<FuzzReport, StartError> {
    let mut sut = Sut::start(plan.sut.clone()).await?;
    let started_at = format_rfc3339_millis(SystemTime::now());
    let started = Instant::now();
    let case = file.finding.case.clone().unwrap_or(super::case::FuzzCase::Sequence { steps: Vec::new() });
    let mut exec = plan.executor(&sut.target, "replay".into());
    let ran = exec.run(&case).await;
    exec.reset().await;
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let mismatch = match sut.death() {
        Some(death) => Some(Mismatch::new(Oracle::ServerDied, death)),
        None => match ran.mismatch {
            Some(m) => Some(m),
            None => exec.probe("replay").await.err(),
        },
    };
    let findings: Vec<Finding> = mismatch
        .map(|m| Finding {
            name: format!("replay of {name}"),
            verdict: "fail".into(),
            oracle: m.oracle,
            signature: file.finding.signature.clone(),
            rule: rule_of(&case, plan.max_message_bytes),
            sent: case.describe(),
            received: m.detail,
            expected: expected_of(&case, plan.max_message_bytes),
            occurrences: 1,
            case_index: file.finding.case_index,
            case: Some(case.clone()),
            original_case: file.finding.original_case.clone(),
            file: None,
        })
        .into_iter()
        .collect();
    let label = sut.label.clone();
    let tls = sut.target.tls_summary();
    sut.stop().await;
    Ok(FuzzReport {
        schema_version: 1,
        kind: "fuzz",
        target: label,
        seed: file.seed,
        interrupted: false,
        passed: findings.is_empty(),
        started_at,
        duration_s: started.elapsed().as_secs_f64(),
        cases: 1,
        cases_per_s: 1.0 / started.elapsed().as_secs_f64().max(1e-9),
        workers: 1,
        reference: None,
        tls,
        liveness_probes: 1,
        server_restarts: 0,
        coverage: ran.covered.into_iter().map(|k| (k, 1)).collect(),
        corpus: None,
        notes: ran.notes.iter().map(|n| ((*n).to_owned(), 1)).collect(),
        canaries: None,
        growth: None,
        findings,
        replayed: Some(name.to_owned()),
    })
}
