//! The fuzzing run: workers draw case indices from one counter (case `i` is always the same
//! case for a seed), run them on kept connections, probe liveness, and report findings; the run
//! watches a child server for death (restarting it), keeps canaries connected, checks growth at
//! the end, then shrinks one reproducer per finding signature.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::case::FuzzCase;
use super::exec::Executor;
use super::generate::{GenConfig, generate};
use super::model::{Expected, Mismatch, Oracle, expect_message};
use super::report::{CorpusSummary, Finding, FuzzReport};
use super::{canary, growth, shrink};
use crate::corpus::{Corpus, CorpusFile};
use crate::probe::conn::PreflightError;
use crate::probe::sut::{BundledTls, SutError};
use crate::probe::{Credentials, Sut, SutSpec, Target};
use crate::protocol::jwt::DEFAULT_DEV_SECRET;
use crate::protocol::timestamp::format_rfc3339_millis;

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

#[derive(Debug, thiserror::Error)]
pub enum FuzzError {
    #[error(transparent)]
    Server(#[from] SutError),
    #[error("target {url} is unreachable: {detail}")]
    Unreachable { url: String, detail: String },
    #[error("target {url}")]
    Tls { url: String, source: crate::tls::TlsError },
}

/// What a worker reports.
enum Event {
    Finding { index: u64, case: FuzzCase, mismatch: Mismatch },
    Done { coverage: BTreeMap<String, u64>, probes: u64 },
}

struct Counters {
    next: AtomicU64,
    done: AtomicU64,
    /// Cases done that were corpus files sent whole (the indices below the corpus's length).
    corpus_done: AtomicU64,
    /// Case index each worker is running (u64::MAX: none), for attributing a server's death.
    in_flight: Vec<AtomicU64>,
}

/// The signature findings are grouped by: case kind, oracle and the expected answer's kind.
pub fn signature(case: &FuzzCase, mismatch: &Mismatch, max_bytes: usize) -> String {
    let expected = match case {
        FuzzCase::Message { payload, binary, publish_scope, .. } => {
            match expect_message(payload, *binary, *publish_scope, max_bytes) {
                Expected::Error { code, .. } => format!("error {code}"),
                Expected::Confirmed { kind, .. } => kind,
                Expected::Close { code, .. } => format!("close {code}"),
                other => format!("{other:?}").split([' ', '{']).next().unwrap_or_default().to_owned(),
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

pub async fn run(plan: FuzzPlan, cancel: CancellationToken) -> Result<FuzzReport, FuzzError> {
    let mut sut = Sut::start(plan.sut.clone()).await?;
    if let Err(error) =
        crate::probe::conn::preflight(&sut.target, plan.answer.max(Duration::from_secs(3))).await
    {
        let url = sut.target.url.clone();
        sut.stop().await;
        return Err(match error {
            PreflightError::Tls(source) => FuzzError::Tls { url, source },
            PreflightError::Unreachable(e) => FuzzError::Unreachable { url, detail: e.to_string() },
        });
    }
    let reference = if plan.reference {
        let spec = SutSpec::Bundled {
            faults: Vec::new(),
            secret: plan.creds.secret().unwrap_or(DEFAULT_DEV_SECRET.as_bytes()).to_vec(),
            child_exe: None,
            tls: BundledTls::Off,
        };
        Some(Sut::start(spec).await?)
    } else {
        None
    };
    let corpus: Arc<Vec<CorpusFile>> = Arc::clone(&plan.corpus.files);
    let gen_config = Arc::new(GenConfig {
        max_message_bytes: plan.max_message_bytes,
        extensions: plan.extensions,
        can_mint: plan.creds.secret().is_some(),
    });
    let nonce = format!(
        "{:x}",
        plan.seed
            ^ SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_millis() as u64
    );
    let started_at = format_rfc3339_millis(SystemTime::now());
    let started = Instant::now();
    let deadline = match plan.stop {
        Stop::After(d) => Some(started + d),
        Stop::Cases(_) => None,
    };
    let max_cases = match plan.stop {
        Stop::Cases(n) => n,
        Stop::After(_) => u64::MAX,
    };
    let workers = plan.workers.max(1);
    let counters = Arc::new(Counters {
        next: AtomicU64::new(0),
        done: AtomicU64::new(0),
        corpus_done: AtomicU64::new(0),
        in_flight: (0..workers).map(|_| AtomicU64::new(u64::MAX)).collect(),
    });
    let canary_stop = CancellationToken::new();
    let canaries = (plan.canaries && plan.extensions).then(|| {
        let (target, creds, bound) =
            (sut.target.clone(), plan.creds.clone(), plan.answer.max(Duration::from_secs(1)));
        tokio::spawn(canary::run(target, creds, format!("canary-{nonce}"), bound, canary_stop.clone()))
    });
    let mut findings: Vec<(u64, FuzzCase, Mismatch)> = Vec::new();
    let mut other_findings: Vec<Finding> = Vec::new();
    let mut coverage: BTreeMap<String, u64> = BTreeMap::new();
    let (mut probes, mut restarts) = (0u64, 0u64);
    let mut interrupted = false;
    // Epochs: a server death ends one; the server is restarted and fuzzing goes on.
    loop {
        let epoch = cancel.child_token();
        let epoch_start = findings.len();
        let (tx, mut rx) = mpsc::channel::<Event>(1024);
        let mut tasks = JoinSet::new();
        for w in 0..workers {
            let mut exec = plan.executor(&sut.target, format!("{nonce}-{w}"));
            let mut ref_exec = reference.as_ref().map(|r| plan.executor(&r.target, format!("{nonce}-r{w}")));
            let (tx, epoch, counters, corpus, gen_config) = (
                tx.clone(),
                epoch.clone(),
                Arc::clone(&counters),
                Arc::clone(&corpus),
                Arc::clone(&gen_config),
            );
            let (seed, probe_every, max_bytes) = (plan.seed, plan.probe_every.max(1), plan.max_message_bytes);
            tasks.spawn(async move {
                let (mut coverage, mut since_probe, mut probes) = (BTreeMap::new(), 0u64, 0u64);
                let mut recent: Vec<(u64, FuzzCase)> = Vec::new();
                while !epoch.is_cancelled() && deadline.is_none_or(|d| Instant::now() < d) {
                    let index = counters.next.fetch_add(1, Ordering::Relaxed);
                    if index >= max_cases {
                        break;
                    }
                    counters.in_flight[w].store(index, Ordering::Relaxed);
                    let case = generate(seed, index, &corpus, &gen_config);
                    let ran = tokio::select! {
                        ran = exec.run(&case) => ran,
                        _ = epoch.cancelled() => break,
                    };
                    counters.done.fetch_add(1, Ordering::Relaxed);
                    if index < corpus.len() as u64 {
                        counters.corpus_done.fetch_add(1, Ordering::Relaxed);
                    }
                    for key in &ran.covered {
                        *coverage.entry(key.clone()).or_insert(0u64) += 1;
                    }
                    let mut mismatch = ran.mismatch.clone();
                    if let (Some(ref_exec), None) = (ref_exec.as_mut(), &mismatch) {
                        let theirs = ref_exec.run(&case).await;
                        if !ran.ambiguous && theirs.mismatch.is_none() && theirs.normal != ran.normal {
                            mismatch = Some(Mismatch::new(
                                Oracle::Difference,
                                format!(
                                    "target answered {:?}; the reference answered {:?}",
                                    ran.normal, theirs.normal
                                ),
                            ));
                        }
                    }
                    if let Some(mismatch) = mismatch {
                        let _ = tx.send(Event::Finding { index, case: case.clone(), mismatch }).await;
                        exec.reset().await;
                    }
                    recent.push((index, case));
                    since_probe += 1;
                    if since_probe >= probe_every || ran.disruptive {
                        since_probe = 0;
                        probes += 1;
                        if let Err(lost) = exec.probe(&format!("{index}")).await {
                            // Blame the most recent case; shrinking confirms it.
                            if let Some((index, case)) = recent.last().cloned() {
                                let _ = tx.send(Event::Finding { index, case, mismatch: lost }).await;
                            }
                            exec.reset().await;
                        }
                        recent.clear();
                    }
                    let _ = max_bytes;
                }
                exec.reset().await;
                let _ = tx.send(Event::Done { coverage, probes }).await;
            });
        }
        drop(tx);
        let mut died: Option<String> = None;
        let mut watch = tokio::time::interval(Duration::from_millis(50));
        let mut open = true;
        while open {
            tokio::select! {
                event = rx.recv() => match event {
                    Some(Event::Finding { index, case, mismatch }) => {
                        if findings.len() < 10_000 {
                            findings.push((index, case, mismatch));
                        }
                    }
                    Some(Event::Done { coverage: c, probes: p }) => {
                        probes += p;
                        for (k, v) in c {
                            *coverage.entry(k).or_insert(0) += v;
                        }
                    }
                    None => open = false,
                },
                _ = watch.tick() => {
                    if died.is_none()
                        && let Some(death) = sut.death() {
                            died = Some(death);
                            epoch.cancel();
                        }
                }
                _ = cancel.cancelled(), if !interrupted => {
                    interrupted = true;
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
        let Some(death) = died else { break };
        // What failed on connections while the server was dying is explained by its death.
        let connection_level = [
            Oracle::LivenessLost,
            Oracle::UnexpectedClose,
            Oracle::Hang,
            Oracle::WrongCloseCode,
            Oracle::NotClosed,
            Oracle::MissingAnswer,
        ];
        let tail = findings.split_off(epoch_start.min(findings.len()));
        // Suspects: the last case of each worker, and the cases whose connections died with it.
        let mut suspects: Vec<u64> = counters
            .in_flight
            .iter()
            .map(|a| a.swap(u64::MAX, Ordering::Relaxed))
            .filter(|&i| i != u64::MAX)
            .collect();
        suspects.extend(
            tail.iter().filter(|(_, _, m)| connection_level.contains(&m.oracle)).map(|(i, _, _)| *i).take(16),
        );
        suspects.sort_unstable();
        suspects.dedup();
        findings.extend(tail.into_iter().filter(|(_, _, m)| !connection_level.contains(&m.oracle)));
        restarts += 1;
        sut.restart().await?;
        let culprit = find_killer(&mut sut, &plan, &suspects, &corpus, &gen_config).await;
        match culprit {
            Some((index, case)) => findings.push((index, case, Mismatch::new(Oracle::ServerDied, death))),
            None => other_findings.push(plain_finding(
                Oracle::ServerDied,
                format!("{death}; cases in flight: {suspects:?}"),
                "the server keeps running, whatever the input (§6)",
            )),
        }
        restarts += 1;
        sut.restart().await?;
        if interrupted
            || counters.next.load(Ordering::Relaxed) >= max_cases
            || deadline.is_some_and(|d| Instant::now() >= d)
        {
            break;
        }
    }
    let fuzz_time = started.elapsed();
    let cases = counters.done.load(Ordering::Relaxed);
    canary_stop.cancel();
    let canary_report = match canaries {
        Some(task) => task.await.ok().flatten(),
        None => None,
    };
    if let Some(report) = &canary_report
        && !report.damage.is_empty()
    {
        other_findings.push(plain_finding(Oracle::CanaryDamage, report.damage.iter().take(20).cloned().collect::<Vec<_>>().join("\n"), "canary subscribers lose no event, stay connected and receive within the bound while fuzzing (§5, §6)"));
    }
    let mut exec = plan.executor(&sut.target, format!("{nonce}-g"));
    let growth_report = if plan.growth && !interrupted {
        Some(growth::check(&mut exec, || sut.rss_bytes()).await)
    } else {
        None
    };
    if let Some(m) = growth_report.as_ref().and_then(growth::mismatch) {
        other_findings.push(plain_finding(
            m.oracle,
            m.detail,
            "repeating cases does not grow open connections or memory",
        ));
    }
    let mut grouped = group(findings, plan.max_message_bytes);
    for finding in grouped.iter_mut().take(plan.max_shrinks) {
        if interrupted {
            break;
        }
        shrink_finding(&mut sut, &plan, finding, &nonce).await;
    }
    grouped.extend(other_findings);
    let label = sut.label.clone();
    let tls = sut.target.tls_summary();
    sut.stop().await;
    if let Some(r) = reference {
        r.stop().await;
    }
    Ok(FuzzReport {
        schema_version: 1,
        kind: "fuzz",
        target: label,
        seed: plan.seed,
        interrupted,
        passed: grouped.is_empty() && !interrupted,
        started_at,
        duration_s: fuzz_time.as_secs_f64(),
        cases,
        cases_per_s: cases as f64 / fuzz_time.as_secs_f64().max(1e-9),
        workers,
        reference: plan.reference.then(|| "embedded".to_owned()),
        tls,
        liveness_probes: probes,
        server_restarts: restarts,
        coverage,
        corpus: Some(CorpusSummary {
            source: plan.corpus.source.to_string(),
            files: corpus.len() as u64,
            files_sent: counters.corpus_done.load(Ordering::Relaxed),
        }),
        canaries: canary_report,
        growth: growth_report,
        findings: grouped,
        replayed: None,
    })
}

fn plain_finding(oracle: Oracle, detail: String, expected: &str) -> Finding {
    Finding {
        name: format!("{oracle:?}"),
        verdict: "fail".into(),
        oracle,
        signature: format!("{oracle:?}"),
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

pub fn expected_of(case: &FuzzCase, max_bytes: usize) -> String {
    match case {
        FuzzCase::Message { payload, binary, publish_scope, .. } => {
            let e = expect_message(payload, *binary, *publish_scope, max_bytes);
            format!("{}, the same whatever the framing; rule: {}", e.describe(), e.rule())
        }
        FuzzCase::Frames { expect_close, .. } => format!("close {expect_close} (§1)"),
        FuzzCase::Handshake { token } if token.is_valid() => "connection_established (§2)".into(),
        FuzzCase::Handshake { .. } => "one AUTH_ERROR \"Invalid token\" with a timestamp, then close 1008 (§2)".into(),
        FuzzCase::Sequence { .. } => "every event exactly once, in order, to exactly the connections whose subscriptions and filters match (§4, §5)".into(),
    }
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

/// Whether running `case` kills the (child) server; restarts it when it does.
async fn kills(sut: &mut Sut, plan: &FuzzPlan, case: &FuzzCase) -> bool {
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

async fn shrink_finding(sut: &mut Sut, plan: &FuzzPlan, finding: &mut Finding, nonce: &str) {
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
