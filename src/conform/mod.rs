//! `conform`: the named conformance cases of PROTOCOL.md against a target.
//!
//! - [`case`]: what a case is, its context, and the checks cases share (judged by
//!   [`crate::oracle`], the one rule book `fuzz` uses too);
//! - [`auth`], [`ops`], [`subscribe`], [`delivery`], [`backpressure`], [`invalid`], [`corpus`]: the
//!   catalogue, one file per area of PROTOCOL.md; [`data`]: the event data they publish;
//! - [`runner`]: skips, background cases, time bounds, cancellation;
//! - [`report`]: `report.json`, `report.md`, `junit.xml`.
//!
//! Entry point: [`run`] with a [`ConformPlan`]; the command line builds the plan.
//!
//! Imports `probe`, `oracle`, `protocol` and `wire`; never `fuzz` or `runner`.

pub mod auth;
pub mod backpressure;
pub mod case;
pub mod corpus;
pub mod data;
pub mod delivery;
pub mod invalid;
pub mod ops;
pub mod report;
pub mod runner;
pub mod subscribe;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio_util::sync::CancellationToken;

use crate::corpus::Corpus;
use crate::probe::sut::EMBEDDED_HANDSHAKE_TIMEOUT;
use crate::probe::{Credentials, StartError, Sut, SutSpec};
use crate::protocol::timestamp::format_rfc3339_millis;
use case::{Case, Ctx};
use report::ConformReport;

/// A validated conformance run.
#[derive(Debug, Clone)]
pub struct ConformPlan {
    pub sut: SutSpec,
    pub creds: Credentials,
    pub extensions: bool,
    /// The seed corpus: one case per file.
    pub corpus: Corpus,
    pub max_message_bytes: usize,
    /// The target's handshake deadline; the bundled server gets a short one.
    pub handshake_timeout: Duration,
    pub answer_wait: Duration,
    /// Run only cases whose name contains this.
    pub only: Option<String>,
}

impl ConformPlan {
    /// A plan against `sut` with PROTOCOL.md's defaults.
    pub fn new(sut: SutSpec, creds: Credentials) -> ConformPlan {
        let handshake_timeout = if matches!(sut, SutSpec::Bundled { .. }) {
            EMBEDDED_HANDSHAKE_TIMEOUT
        } else {
            Duration::from_secs(10)
        };
        ConformPlan {
            sut,
            creds,
            extensions: true,
            corpus: Corpus::embedded(),
            max_message_bytes: 64 * 1024,
            handshake_timeout,
            answer_wait: Duration::from_secs(3),
            only: None,
        }
    }
}

/// Every case, in report order.
pub fn catalogue(corpus: &Corpus) -> Vec<Case> {
    let mut cases = auth::cases();
    cases.extend(ops::cases());
    cases.extend(subscribe::cases());
    cases.extend(invalid::cases());
    cases.extend(invalid::nesting_cases());
    cases.extend(delivery::cases());
    cases.extend(backpressure::cases());
    cases.extend(delivery::http_cases());
    cases.extend(corpus::cases(corpus));
    cases
}

/// Runs the catalogue against the plan's target.
pub async fn run(plan: ConformPlan, cancel: CancellationToken) -> Result<ConformReport, StartError> {
    let sut = Sut::start_checked(plan.sut.clone(), plan.answer_wait).await?;
    let target = sut.target.clone();
    let started_at = format_rfc3339_millis(SystemTime::now());
    let started = Instant::now();
    let cx = Arc::new(Ctx {
        target,
        creds: plan.creds.clone(),
        extensions: plan.extensions,
        answer_wait: plan.answer_wait,
        quiet: Duration::from_millis(300),
        handshake_timeout: plan.handshake_timeout,
        max_message_bytes: plan.max_message_bytes,
        nonce: format!(
            "{:x}",
            SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_nanos()
                & 0xffff_ffff
        ),
    });
    let mut cases = catalogue(&plan.corpus);
    if let Some(only) = &plan.only {
        cases.retain(|c| c.name.contains(only.as_str()));
    }
    let result = runner::run(cases, cx, cancel).await;
    let label = sut.label.clone();
    let tls = sut.target.tls_summary();
    sut.stop().await;
    let mut report = ConformReport::new(
        label,
        plan.extensions,
        started_at,
        started.elapsed(),
        result.cases,
        result.interrupted,
    );
    report.tls = tls;
    Ok(report)
}
