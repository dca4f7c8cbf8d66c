//! Runs a catalogue: decides which cases are skipped (extensions off, tokens that cannot be
//! minted), starts the timer-bound cases in the background, runs the rest one after another
//! (so event counts are not disturbed by other cases), each within a time bound, and stops
//! early on cancellation.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::case::{Case, CaseResult, Ctx, Needs};
use super::report::{CaseReport, Verdict};
use crate::probe::Credentials;

/// Longest a single case may take before it fails as hung.
const CASE_BOUND: Duration = Duration::from_secs(30);

/// The verdicts, in catalogue order; `interrupted` when cancelled before the end.
pub struct RunResult {
    pub cases: Vec<CaseReport>,
    pub interrupted: bool,
}

/// Why `case` cannot run here, if it cannot.
fn skip_reason(case: &Case, cx: &Ctx) -> Option<Verdict> {
    if case.extension && !cx.extensions {
        return Some(Verdict::SkippedExtension);
    }
    let has_publish = cx.creds.token("conform", true).is_some();
    match (case.needs, &cx.creds) {
        (Needs::Secret, Credentials::Tokens(_)) => Some(Verdict::Skipped {
            reason:
                "needs tokens minted with the target's secret (--jwt-secret); only --token-file was given"
                    .into(),
        }),
        (Needs::Publish, _) if !has_publish => {
            Some(Verdict::Skipped { reason: "the token file has no token with the `publish` scope".into() })
        }
        _ => None,
    }
}

pub async fn run(catalogue: Vec<Case>, cx: Arc<Ctx>, cancel: CancellationToken) -> RunResult {
    let mut results: Vec<Option<CaseReport>> = vec![None; catalogue.len()];
    let mut background = JoinSet::new();
    let mut foreground = Vec::new();
    for (index, case) in catalogue.iter().enumerate() {
        if let Some(verdict) = skip_reason(case, &cx) {
            results[index] = Some(CaseReport::new(case, verdict, Duration::ZERO));
        } else if case.background {
            let (case, cx) = (case.clone(), Arc::clone(&cx));
            background.spawn(async move { (index, run_one(&case, cx).await) });
        } else {
            foreground.push(index);
        }
    }
    let mut interrupted = false;
    for index in foreground {
        let case = &catalogue[index];
        tokio::select! {
            report = run_one(case, Arc::clone(&cx)) => results[index] = Some(report),
            _ = cancel.cancelled() => { interrupted = true; break; }
        }
    }
    loop {
        tokio::select! {
            joined = background.join_next() => match joined {
                Some(Ok((index, report))) => results[index] = Some(report),
                Some(Err(_)) => {}
                None => break,
            },
            _ = cancel.cancelled() => { interrupted = true; background.abort_all(); break; }
        }
    }
    let cases = results
        .into_iter()
        .zip(&catalogue)
        .filter_map(|(report, case)| match report {
            Some(report) => Some(report),
            None if interrupted => None,
            None => Some(CaseReport::new(
                case,
                Verdict::Skipped { reason: "the case task failed".into() },
                Duration::ZERO,
            )),
        })
        .collect();
    RunResult { cases, interrupted }
}

async fn run_one(case: &Case, cx: Arc<Ctx>) -> CaseReport {
    let started = Instant::now();
    let result = tokio::time::timeout(CASE_BOUND, (case.run)(cx)).await;
    let verdict = match result {
        Ok(CaseResult::Pass) => Verdict::Pass,
        Ok(CaseResult::Fail(failure)) => Verdict::Fail(failure),
        Ok(CaseResult::Skip(reason)) => Verdict::Skipped { reason },
        Err(_) => Verdict::Fail(super::case::Failure::new(
            "-",
            format!("the case did not finish within {CASE_BOUND:?}"),
            "an answer in bounded time",
        )),
    };
    CaseReport::new(case, verdict, started.elapsed())
}
