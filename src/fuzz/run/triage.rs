//! After the server under test died: the findings its death explains are dropped, the case that
//! killed it is looked for among the suspects (each run alone against the restarted server),
//! and the server is started again for the next epoch.

use std::sync::atomic::Ordering;

use super::finish::plain_finding;
use super::reproduce::kills;
use super::{FuzzPlan, Shared, Tally};
use crate::corpus::CorpusFile;
use crate::fuzz::case::FuzzCase;
use crate::fuzz::generate::{GenConfig, generate};
use crate::oracle::{Mismatch, Oracle};
use crate::probe::Sut;
use crate::probe::sut::SutError;

/// What failed on connections while the server was dying: explained by its death.
const CONNECTION_LEVEL: [Oracle; 6] = [
    Oracle::LivenessLost,
    Oracle::UnexpectedClose,
    Oracle::Hang,
    Oracle::WrongCloseCode,
    Oracle::NotClosed,
    Oracle::MissingAnswer,
];

/// Most suspects taken from the findings of the dying epoch (besides each worker's last case).
const MAX_SUSPECTS_FROM_FINDINGS: usize = 16;

/// Triage of a death that ended the epoch whose findings start at `epoch_start`.
pub(super) async fn after_death(
    sut: &mut Sut,
    plan: &FuzzPlan,
    shared: &Shared,
    death: String,
    epoch_start: usize,
    tally: &mut Tally,
) -> Result<(), SutError> {
    let suspects = suspects(shared, epoch_start, tally);
    tally.restarts += 1;
    sut.restart().await?;
    match find_killer(sut, plan, &suspects, &shared.corpus, &shared.gen_config).await {
        Some((index, case)) => tally.findings.push((index, case, Mismatch::new(Oracle::ServerDied, death))),
        None => tally.other.push(plain_finding(
            Oracle::ServerDied,
            format!("{death}; cases in flight: {suspects:?}"),
            "the server keeps running, whatever the input (§6)",
        )),
    }
    tally.restarts += 1;
    sut.restart().await?;
    Ok(())
}

/// The last case of each worker, and the cases whose connections died with the server; the
/// connection-level findings of the epoch are dropped from the tally.
fn suspects(shared: &Shared, epoch_start: usize, tally: &mut Tally) -> Vec<u64> {
    let tail = tally.findings.split_off(epoch_start.min(tally.findings.len()));
    let mut suspects: Vec<u64> = shared
        .in_flight
        .iter()
        .map(|a| a.swap(u64::MAX, Ordering::Relaxed))
        .filter(|&i| i != u64::MAX)
        .collect();
    suspects.extend(
        tail.iter()
            .filter(|(_, _, m)| CONNECTION_LEVEL.contains(&m.oracle))
            .map(|(i, _, _)| *i)
            .take(MAX_SUSPECTS_FROM_FINDINGS),
    );
    suspects.sort_unstable();
    suspects.dedup();
    tally.findings.extend(tail.into_iter().filter(|(_, _, m)| !CONNECTION_LEVEL.contains(&m.oracle)));
    suspects
}

/// Runs each suspect alone against the restarted server; the first after which it dies.
async fn find_killer(
    sut: &mut Sut,
    plan: &FuzzPlan,
    suspects: &[u64],
    corpus: &[CorpusFile],
    config: &GenConfig,
) -> Option<(u64, FuzzCase)> {
    for &index in suspects {
        let case = generate(plan.seed, index, corpus, config);
        if kills(sut, plan, &case).await {
            return Some((index, case));
        }
    }
    None
}
