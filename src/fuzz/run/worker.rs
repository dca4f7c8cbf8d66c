//! One worker of an epoch: claims the next case index, generates the case, runs it on its kept
//! connections (and on the reference, in differential mode), reports findings, and probes
//! liveness every `probe_every` cases or after a disruptive one.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{FuzzPlan, Shared};
use crate::fuzz::case::FuzzCase;
use crate::fuzz::exec::{Executor, Ran};
use crate::fuzz::generate::generate;
use crate::oracle::{Mismatch, Oracle};

/// What a worker reports to its epoch.
pub(super) enum Event {
    Finding { index: u64, case: FuzzCase, mismatch: Mismatch },
    Done { coverage: BTreeMap<String, u64>, notes: BTreeMap<String, u64>, probes: u64 },
}

pub(super) struct Worker {
    /// Its slot in `Shared::in_flight`.
    slot: usize,
    exec: Executor,
    reference: Option<Executor>,
    shared: Arc<Shared>,
    tx: mpsc::Sender<Event>,
    epoch: CancellationToken,
    seed: u64,
    probe_every: u64,
    coverage: BTreeMap<String, u64>,
    notes: BTreeMap<String, u64>,
    probes: u64,
    since_probe: u64,
    /// Cases since the last probe, the last one blamed when a probe fails.
    recent: Vec<(u64, FuzzCase)>,
}

impl Worker {
    pub(super) fn new(
        slot: usize,
        plan: &FuzzPlan,
        exec: Executor,
        reference: Option<Executor>,
        shared: Arc<Shared>,
        tx: mpsc::Sender<Event>,
        epoch: CancellationToken,
    ) -> Worker {
        Worker {
            slot,
            exec,
            reference,
            shared,
            tx,
            epoch,
            seed: plan.seed,
            probe_every: plan.probe_every.max(1),
            coverage: BTreeMap::new(),
            notes: BTreeMap::new(),
            probes: 0,
            since_probe: 0,
            recent: Vec::new(),
        }
    }

    /// Runs cases until the epoch ends or the run's cases or time are used up.
    pub(super) async fn run(mut self) {
        while let Some(index) = self.claim() {
            if !self.one_case(index).await {
                break;
            }
        }
        self.exec.reset().await;
        let done = Event::Done { coverage: self.coverage, notes: self.notes, probes: self.probes };
        let _ = self.tx.send(done).await;
    }

    /// The next case index, unless the epoch or the run is over.
    fn claim(&self) -> Option<u64> {
        if self.epoch.is_cancelled() || self.shared.deadline.is_some_and(|d| Instant::now() >= d) {
            return None;
        }
        let index = self.shared.next.fetch_add(1, Ordering::Relaxed);
        (index < self.shared.max_cases).then_some(index)
    }

    /// Runs case `index`; `false` when the epoch ended while it ran.
    async fn one_case(&mut self, index: u64) -> bool {
        self.shared.in_flight[self.slot].store(index, Ordering::Relaxed);
        let case = generate(self.seed, index, &self.shared.corpus, &self.shared.gen_config);
        let ran = tokio::select! {
            ran = self.exec.run(&case) => ran,
            _ = self.epoch.cancelled() => return false,
        };
        self.shared.done.fetch_add(1, Ordering::Relaxed);
        if index < self.shared.corpus.len() as u64 {
            self.shared.corpus_done.fetch_add(1, Ordering::Relaxed);
        }
        self.count(&ran);
        let mismatch = match ran.mismatch.clone() {
            Some(m) => Some(m),
            None => self.compare_with_reference(&case, &ran).await,
        };
        if let Some(mismatch) = mismatch {
            let _ = self.tx.send(Event::Finding { index, case: case.clone(), mismatch }).await;
            self.exec.reset().await;
        }
        self.recent.push((index, case));
        self.probe_if_due(index, ran.disruptive).await;
        true
    }

    fn count(&mut self, ran: &Ran) {
        for key in &ran.covered {
            *self.coverage.entry(key.clone()).or_insert(0) += 1;
        }
        for note in &ran.notes {
            *self.notes.entry((*note).to_owned()).or_insert(0) += 1;
        }
    }

    /// Differential mode: the reference's normalized answer must equal the target's.
    async fn compare_with_reference(&mut self, case: &FuzzCase, ran: &Ran) -> Option<Mismatch> {
        let reference = self.reference.as_mut()?;
        let theirs = reference.run(case).await;
        (!ran.ambiguous && theirs.mismatch.is_none() && theirs.normal != ran.normal).then(|| {
            Mismatch::new(
                Oracle::Difference,
                format!("target answered {:?}; the reference answered {:?}", ran.normal, theirs.normal),
            )
        })
    }

    async fn probe_if_due(&mut self, index: u64, disruptive: bool) {
        self.since_probe += 1;
        if self.since_probe < self.probe_every && !disruptive {
            return;
        }
        self.since_probe = 0;
        self.probes += 1;
        if let Err(lost) = self.exec.probe(&format!("{index}")).await {
            // Blame the most recent case; shrinking confirms it.
            if let Some((index, case)) = self.recent.last().cloned() {
                let _ = self.tx.send(Event::Finding { index, case, mismatch: lost }).await;
            }
            self.exec.reset().await;
        }
        self.recent.clear();
    }
}
