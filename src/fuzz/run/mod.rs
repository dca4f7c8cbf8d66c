//! The fuzzing run, in named steps: [`run`] starts the server under test (and the reference, in
//! differential mode) and the canaries, then runs **epochs** ([`epoch`]) of **workers**
//! ([`worker`]) that draw case indices from one counter (case `i` is always the same case for a
//! seed) and run them on kept connections with liveness probes. A server death ends an epoch;
//! [`triage`] finds the case that killed it and restarts the server. The **end** ([`finish`])
//! collects the canaries, checks growth, groups findings by signature and shrinks one
//! reproducer each ([`reproduce`]), and builds the report.

mod epoch;
mod finish;
mod reproduce;
mod triage;
mod worker;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use tokio_util::sync::CancellationToken;

use super::case::FuzzCase;
use super::exec::Executor;
use super::generate::GenConfig;
use super::report::{CorpusSummary, Finding, FuzzReport};
use crate::corpus::{Corpus, CorpusFile};
use crate::oracle::{Answer, Mismatch, expect_message};
use crate::probe::sut::BundledTls;
use crate::probe::{Credentials, StartError, Sut, SutSpec, Target};
use crate::protocol::jwt::DEFAULT_DEV_SECRET;
use crate::protocol::timestamp::format_rfc3339_millis;

pub(crate) use reproduce::{expected_of, rule_of};

/// When a run stops.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stop {
    Cases(u64),
    After(Duration),
}

/// A validated fuzzing run.
#[derive(Debug, Clone)]
pub struct FuzzPlan {
    pub sut: SutSpec,
    pub creds: Credentials,
    pub seed: u64,
    pub stop: Stop,
    /// Also run each case on a clean in-process reference server and compare.
    pub reference: bool,
    pub workers: usize,
    pub probe_every: u64,
    pub answer: Duration,
    pub extensions: bool,
    /// The seed corpus: its files are the first cases, and seeds for the mutated ones.
    pub corpus: Corpus,
    pub max_message_bytes: usize,
    pub canaries: bool,
    pub growth: bool,
    /// Findings shrunk (one per signature), and attempts per shrink.
    pub max_shrinks: usize,
    pub shrink_attempts: usize,
}

impl FuzzPlan {
    /// An executor for `target` with this plan's credentials, oracles and limits; `nonce` keeps
    /// its subjects and topics apart from every other executor's.
    pub fn executor(&self, target: &Target, nonce: String) -> Executor {
        Executor::new(
            target.clone(),
            self.creds.clone(),
            self.extensions,
            self.answer,
            self.max_message_bytes,
            nonce,
        )
    }

    pub fn new(sut: SutSpec, creds: Credentials, seed: u64, stop: Stop) -> FuzzPlan {
        FuzzPlan {
            sut,
            creds,
            seed,
            stop,
            reference: false,
            workers: 8,
            probe_every: 16,
            answer: Duration::from_secs(2),
            extensions: true,
            corpus: Corpus::embedded(),
            max_message_bytes: 64 * 1024,
            canaries: true,
            growth: true,
            max_shrinks: 12,
            shrink_attempts: 120,
        }
    }
}

/// What every worker of a run shares: the case generator's inputs, the limits, and the counters.
struct Shared {
    corpus: Arc<Vec<CorpusFile>>,
    gen_config: GenConfig,
    nonce: String,
    deadline: Option<Instant>,
    max_cases: u64,
    workers: usize,
    next: AtomicU64,
    done: AtomicU64,
    /// Cases done that were corpus files sent whole (the indices below the corpus's length).
    corpus_done: AtomicU64,
    /// Case index each worker is running (u64::MAX: none), for attributing a server's death.
    in_flight: Vec<AtomicU64>,
}

impl Shared {
    fn new(plan: &FuzzPlan, started: Instant) -> Shared {
        let workers = plan.workers.max(1);
        Shared {
            corpus: Arc::clone(&plan.corpus.files),
            gen_config: GenConfig {
                max_message_bytes: plan.max_message_bytes,
                extensions: plan.extensions,
                can_mint: plan.creds.secret().is_some(),
            },
            nonce: format!(
                "{:x}",
                plan.seed
                    ^ SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_millis()
                        as u64
            ),
            deadline: match plan.stop {
                Stop::After(d) => Some(started + d),
                Stop::Cases(_) => None,
            },
            max_cases: match plan.stop {
                Stop::Cases(n) => n,
                Stop::After(_) => u64::MAX,
            },
            workers,
            next: AtomicU64::new(0),
            done: AtomicU64::new(0),
            corpus_done: AtomicU64::new(0),
            in_flight: (0..workers).map(|_| AtomicU64::new(u64::MAX)).collect(),
        }
    }

    /// Whether the run has used its cases or its time.
    fn exhausted(&self) -> bool {
        self.next.load(Ordering::Relaxed) >= self.max_cases
            || self.deadline.is_some_and(|d| Instant::now() >= d)
    }
}

/// What the epochs found and counted, for the end of the run.
#[derive(Default)]
struct Tally {
    findings: Vec<(u64, FuzzCase, Mismatch)>,
    /// Findings about the run as a whole (no reproducer).
    other: Vec<Finding>,
    coverage: BTreeMap<String, u64>,
    notes: BTreeMap<String, u64>,
    probes: u64,
    restarts: u64,
    interrupted: bool,
}

/// The signature findings are grouped by: case kind, oracle and the expected answer's kind.
pub fn signature(case: &FuzzCase, mismatch: &Mismatch, max_bytes: usize) -> String {
    let expected = match case {
        FuzzCase::Message { payload, binary, publish_scope, .. } => {
            match expect_message(payload, *binary, *publish_scope, max_bytes).primary() {
                Answer::Error { code, .. } => format!("error {code}"),
                Answer::Confirmed { kind, .. } => (*kind).to_owned(),
                Answer::Close { code } => format!("close {code}"),
                Answer::PublishAck { .. } => "PublishAck".into(),
                Answer::Nothing => "Nothing".into(),
                Answer::AnyAnswer => "AnyAnswer".into(),
            }
        }
        FuzzCase::Frames { expect_close, .. } => format!("close {expect_close}"),
        FuzzCase::Handshake { token } => {
            if token.is_valid() {
                "accepted".into()
            } else {
                "AUTH_ERROR".into()
            }
        }
        FuzzCase::Sequence { .. } => "deliveries".into(),
    };
    format!("{} / {:?} / {expected}", case.kind(), mismatch.oracle)
}

/// Fuzzes the plan's target until its cases or time are used up (or `cancel`), then reports.
pub async fn run(plan: FuzzPlan, cancel: CancellationToken) -> Result<FuzzReport, StartError> {
    let mut sut = Sut::start_checked(plan.sut.clone(), plan.answer.max(Duration::from_secs(3))).await?;
    let reference = start_reference(&plan).await?;
    let started_at = format_rfc3339_millis(SystemTime::now());
    let started = Instant::now();
    let shared = Arc::new(Shared::new(&plan, started));
    let canaries = finish::Canaries::start(&plan, &sut.target, &shared.nonce);
    let mut tally = Tally::default();
    // Epochs: a server death ends one; the server is restarted and fuzzing goes on.
    loop {
        let epoch_start = tally.findings.len();
        let Some(death) =
            epoch::run_epoch(&plan, &shared, &mut sut, reference.as_ref(), &cancel, &mut tally).await
        else {
            break;
        };
        triage::after_death(&mut sut, &plan, &shared, death, epoch_start, &mut tally).await?;
        if tally.interrupted || shared.exhausted() {
            break;
        }
    }
    let fuzz_time = started.elapsed();
    let run = finish::Ran {
        started_at,
        fuzz_time,
        cases: shared.done.load(Ordering::Relaxed),
        workers: shared.workers,
        corpus: CorpusSummary {
            source: plan.corpus.source.to_string(),
            files: shared.corpus.len() as u64,
            files_sent: shared.corpus_done.load(Ordering::Relaxed),
        },
    };
    let report = finish::finish(&mut sut, &plan, &shared.nonce, canaries, tally, run).await;
    sut.stop().await;
    if let Some(r) = reference {
        r.stop().await;
    }
    Ok(report)
}

/// The clean in-process reference server of the differential mode.
async fn start_reference(plan: &FuzzPlan) -> Result<Option<Sut>, StartError> {
    if !plan.reference {
        return Ok(None);
    }
    let spec = SutSpec::Bundled {
        faults: Vec::new(),
        secret: plan.creds.secret().unwrap_or(DEFAULT_DEV_SECRET.as_bytes()).to_vec(),
        child_exe: None,
        tls: BundledTls::Off,
    };
    Ok(Some(Sut::start(spec).await?))
}
