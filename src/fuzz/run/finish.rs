//! The end of a run: the canaries' verdict, the growth check, findings grouped by signature
//! (one shrunk reproducer each), and the report.

use std::collections::HashMap;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::reproduce::{expected_of, rule_of, shrink_finding};
use super::{FuzzPlan, Tally, signature};
use crate::fuzz::canary::{self, CanaryReport};
use crate::fuzz::case::FuzzCase;
use crate::fuzz::growth;
use crate::fuzz::report::{CorpusSummary, Finding, FuzzReport};
use crate::oracle::{Mismatch, Oracle};
use crate::probe::{Sut, Target};

/// The canary subscribers, running beside the workers for the whole run.
pub(super) struct Canaries {
    stop: CancellationToken,
    task: Option<JoinHandle<Option<CanaryReport>>>,
}

impl Canaries {
    /// Starts them when the plan wants them (they publish, an extension).
    pub(super) fn start(plan: &FuzzPlan, target: &Target, nonce: &str) -> Canaries {
        let stop = CancellationToken::new();
        let task = (plan.canaries && plan.extensions).then(|| {
            let bound = plan.answer.max(Duration::from_secs(1));
            let run = canary::run(
                target.clone(),
                plan.creds.clone(),
                format!("canary-{nonce}"),
                bound,
                stop.clone(),
            );
            tokio::spawn(run)
        });
        Canaries { stop, task }
    }

    async fn finish(self) -> Option<CanaryReport> {
        self.stop.cancel();
        self.task?.await.ok().flatten()
    }
}

/// How the fuzzing part went, for the report.
pub(super) struct Ran {
    pub started_at: String,
    pub fuzz_time: Duration,
    pub cases: u64,
    pub workers: usize,
    pub corpus: CorpusSummary,
}

/// Collects the canaries, checks growth, groups and shrinks the findings, and builds the report.
pub(super) async fn finish(
    sut: &mut Sut,
    plan: &FuzzPlan,
    nonce: &str,
    canaries: Canaries,
    mut tally: Tally,
    ran: Ran,
) -> FuzzReport {
    let canary_report = canaries.finish().await;
    if let Some(report) = &canary_report
        && !report.damage.is_empty()
    {
        tally.other.push(plain_finding(
            Oracle::CanaryDamage,
            report.damage.iter().take(20).cloned().collect::<Vec<_>>().join("\n"),
            "canary subscribers lose no event, stay connected and receive within the bound while fuzzing (§5, §6)",
        ));
    }
    let growth_report = if plan.growth && !tally.interrupted {
        let mut exec = plan.executor(&sut.target, format!("{nonce}-g"));
        Some(growth::check(&mut exec, || sut.rss_bytes()).await)
    } else {
        None
    };
    if let Some(m) = growth_report.as_ref().and_then(growth::mismatch) {
        let expected = "repeating cases does not grow open connections or memory (§6)";
        tally.other.push(plain_finding(m.oracle, m.detail, expected));
    }
    let mut grouped = group(std::mem::take(&mut tally.findings), plan.max_message_bytes);
    for finding in grouped.iter_mut().take(plan.max_shrinks) {
        if tally.interrupted {
            break;
        }
        shrink_finding(sut, plan, finding, nonce).await;
    }
    grouped.append(&mut tally.other);
    let secs = ran.fuzz_time.as_secs_f64();
    FuzzReport {
        schema_version: 1,
        kind: "fuzz",
        target: sut.label.clone(),
        seed: plan.seed,
        interrupted: tally.interrupted,
        passed: grouped.is_empty() && !tally.interrupted,
        started_at: ran.started_at,
        duration_s: secs,
        cases: ran.cases,
        cases_per_s: ran.cases as f64 / secs.max(1e-9),
        workers: ran.workers,
        reference: plan.reference.then(|| "embedded".to_owned()),
        tls: sut.target.tls_summary(),
        liveness_probes: tally.probes,
        server_restarts: tally.restarts,
        coverage: tally.coverage,
        corpus: Some(ran.corpus),
        notes: tally.notes,
        canaries: canary_report,
        growth: growth_report,
        findings: grouped,
        replayed: None,
    }
}

/// A finding about the run as a whole (no reproducer).
pub(super) fn plain_finding(oracle: Oracle, detail: String, expected: &str) -> Finding {
    Finding {
        name: format!("{oracle:?}"),
        verdict: "fail".into(),
        oracle,
        signature: format!("{oracle:?}"),
        rule: oracle.rule().into(),
        sent: "(the fuzzing run as a whole)".into(),
        received: detail,
        expected: expected.into(),
        occurrences: 1,
        case_index: None,
        case: None,
        original_case: None,
        file: None,
    }
}

/// One finding per signature, the earliest case first, with how often each occurred.
fn group(findings: Vec<(u64, FuzzCase, Mismatch)>, max_bytes: usize) -> Vec<Finding> {
    let mut by_signature: HashMap<String, Finding> = HashMap::new();
    for (index, case, mismatch) in findings {
        let signature = signature(&case, &mismatch, max_bytes);
        let entry = by_signature.entry(signature.clone()).or_insert_with(|| Finding {
            name: signature.clone(),
            verdict: "fail".into(),
            oracle: mismatch.oracle,
            signature: signature.clone(),
            rule: rule_of(&case, max_bytes),
            sent: case.describe(),
            received: mismatch.detail.clone(),
            expected: expected_of(&case, max_bytes),
            occurrences: 0,
            case_index: Some(index),
            case: Some(case.clone()),
            original_case: Some(case.clone()),
            file: None,
        });
        entry.occurrences += 1;
        if Some(index) < entry.case_index {
            entry.case_index = Some(index);
            entry.case = Some(case.clone());
            entry.original_case = Some(case);
            entry.sent = entry.case.as_ref().map(FuzzCase::describe).unwrap_or_default();
            entry.received = mismatch.detail;
        }
    }
    let mut out: Vec<Finding> = by_signature.into_values().collect();
    out.sort_by(|a, b| a.signature.cmp(&b.signature));
    out
}
