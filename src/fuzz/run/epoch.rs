//! One epoch: the workers run until the cases or time are used up, the run is cancelled, or the
//! server under test dies (watched every 50 ms); their findings and counts go into the tally.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::worker::{Event, Worker};
use super::{FuzzPlan, Shared, Tally};
use crate::probe::Sut;

/// Findings kept at most (the rest only raise the occurrence counts they would have had).
const MAX_FINDINGS: usize = 10_000;

/// Runs one epoch; the server's death, when that is what ended it.
pub(super) async fn run_epoch(
    plan: &FuzzPlan,
    shared: &Arc<Shared>,
    sut: &mut Sut,
    reference: Option<&Sut>,
    cancel: &CancellationToken,
    tally: &mut Tally,
) -> Option<String> {
    let epoch = cancel.child_token();
    let (tx, mut rx) = mpsc::channel::<Event>(1024);
    let mut tasks = JoinSet::new();
    for slot in 0..shared.workers {
        let nonce = &shared.nonce;
        let exec = plan.executor(&sut.target, format!("{nonce}-{slot}"));
        let reference = reference.map(|r| plan.executor(&r.target, format!("{nonce}-r{slot}")));
        let worker = Worker::new(slot, plan, exec, reference, Arc::clone(shared), tx.clone(), epoch.clone());
        tasks.spawn(worker.run());
    }
    drop(tx);
    let mut died: Option<String> = None;
    let mut watch = tokio::time::interval(Duration::from_millis(50));
    loop {
        tokio::select! {
            event = rx.recv() => match event {
                Some(event) => take(event, tally),
                None => break,
            },
            _ = watch.tick() => {
                if died.is_none()
                    && let Some(death) = sut.death() {
                        died = Some(death);
                        epoch.cancel();
                    }
            }
            _ = cancel.cancelled(), if !tally.interrupted => {
                tally.interrupted = true;
                epoch.cancel();
            }
        }
    }
    while tasks.join_next().await.is_some() {}
    if died.is_none() && sut.is_bundled() {
        // The last cases may have killed it after the last look.
        tokio::time::sleep(Duration::from_millis(100)).await;
        died = sut.death();
    }
    died
}

fn take(event: Event, tally: &mut Tally) {
    match event {
        Event::Finding { index, case, mismatch } => {
            if tally.findings.len() < MAX_FINDINGS {
                tally.findings.push((index, case, mismatch));
            }
        }
        Event::Done { coverage, notes, probes } => {
            tally.probes += probes;
            for (k, v) in coverage {
                *tally.coverage.entry(k).or_insert(0) += v;
            }
            for (k, v) in notes {
                *tally.notes.entry(k).or_insert(0) += v;
            }
        }
    }
}
