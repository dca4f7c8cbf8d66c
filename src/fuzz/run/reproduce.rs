//! Reproducers: whether a case still breaks the same oracle (or kills the server) on a fresh
//! connection, the shrinking of a finding to a smaller case that does, and what the case was
//! expected to earn, with the sections of PROTOCOL.md it rests on.

use std::time::Duration;

use super::FuzzPlan;
use crate::fuzz::case::FuzzCase;
use crate::fuzz::report::Finding;
use crate::fuzz::shrink;
use crate::oracle::upgrade::UpgradeAnswer;
use crate::oracle::{Oracle, expect_message};
use crate::probe::Sut;

/// What `case` must earn, with its rule, for reports.
pub(crate) fn expected_of(case: &FuzzCase, max_bytes: usize) -> String {
    match case {
        FuzzCase::Message { payload, binary, publish_scope, .. } => {
            let e = expect_message(payload, *binary, *publish_scope, max_bytes);
            format!("{}, the same whatever the framing; rule: PROTOCOL.md {}", e.describe(), e.rules())
        }
        FuzzCase::Frames { expect_close, .. } => format!("close {expect_close} (§1)"),
        FuzzCase::Handshake { token } => token.expected().describe().into(),
        FuzzCase::Sequence { .. } => "every event exactly once, in order, to exactly the connections whose subscriptions and filters match (§4, §5)".into(),
    }
}

/// The sections of PROTOCOL.md `case`'s expectation rests on.
pub(crate) fn rule_of(case: &FuzzCase, max_bytes: usize) -> String {
    match case {
        FuzzCase::Message { payload, binary, publish_scope, .. } => {
            expect_message(payload, *binary, *publish_scope, max_bytes).rules()
        }
        FuzzCase::Frames { .. } => "§1".into(),
        FuzzCase::Handshake { .. } => UpgradeAnswer::RULE.into(),
        FuzzCase::Sequence { .. } => "§4, §5".into(),
    }
}

/// Whether running `case` kills the (child) server; restarts it when it does.
pub(super) async fn kills(sut: &mut Sut, plan: &FuzzPlan, case: &FuzzCase) -> bool {
    let mut exec = plan.executor(&sut.target, "k".into());
    let _ = tokio::time::timeout(plan.answer * 2, exec.run(case)).await;
    exec.reset().await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    if sut.death().is_some() {
        let _ = sut.restart().await;
        return true;
    }
    false
}

/// Whether `case` still breaks the same oracle on a fresh connection.
async fn reproduces(sut: &mut Sut, plan: &FuzzPlan, case: &FuzzCase, oracle: Oracle, nonce: &str) -> bool {
    if oracle == Oracle::ServerDied {
        return kills(sut, plan, case).await;
    }
    let mut exec = plan.executor(&sut.target, format!("{nonce}-s"));
    let ran = exec.run(case).await;
    let result = match oracle {
        Oracle::LivenessLost => exec.probe("shrink").await.is_err(),
        _ => ran.mismatch.is_some_and(|m| m.oracle == oracle),
    };
    exec.reset().await;
    result
}

/// Shrinks the finding's case to a smaller one that still reproduces, and describes it again.
pub(super) async fn shrink_finding(sut: &mut Sut, plan: &FuzzPlan, finding: &mut Finding, nonce: &str) {
    let Some(case) = finding.case.clone() else { return };
    let oracle = finding.oracle;
    if oracle == Oracle::Difference || !reproduces(sut, plan, &case, oracle, nonce).await {
        return;
    }
    let sut_cell = tokio::sync::Mutex::new(&mut *sut);
    let (small, _) = shrink::shrink(case, plan.shrink_attempts, |candidate| {
        let sut_cell = &sut_cell;
        async move {
            let mut guard = sut_cell.lock().await;
            reproduces(&mut guard, plan, &candidate, oracle, nonce).await
        }
    })
    .await;
    let mut exec = plan.executor(&sut.target, format!("{nonce}-f"));
    let ran = exec.run(&small).await;
    exec.reset().await;
    if oracle == Oracle::ServerDied && sut.death().is_some() {
        let _ = sut.restart().await;
    }
    finding.sent = small.describe();
    if let Some(m) = ran.mismatch {
        finding.received = m.detail;
    }
    finding.expected = expected_of(&small, plan.max_message_bytes);
    finding.case = Some(small);
}
