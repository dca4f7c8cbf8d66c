//! `fuzz`: builds the plan from the flags, fuzzes (or replays one finding), writes the report
//! folder with one replayable file per finding, and prints the summary (CLI.md).

use anyhow::Context;

use super::check::{corpus, sut_and_credentials};
use super::shutdown::Shutdown;
use crate::cli::FuzzArgs;
use crate::commands::outcome::{BadInput, Outcome};
use crate::fuzz::replay;
use crate::fuzz::run::{self, FuzzPlan, Stop};
use crate::report::folder;

pub async fn execute(args: FuzzArgs, shutdown: Shutdown) -> anyhow::Result<Outcome> {
    let (sut, creds) = sut_and_credentials(&args.check)?;
    if let Some(reference) = &args.reference
        && reference != "embedded"
    {
        return Err(BadInput(format!("--reference {reference:?}: only `embedded` is supported")).into());
    }
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    });
    let stop = match (args.duration, args.cases) {
        (Some(d), _) => Stop::After(d),
        (None, Some(n)) => Stop::Cases(n),
        (None, None) => Stop::Cases(20_000),
    };
    let mut plan = FuzzPlan::new(sut, creds, seed, stop);
    plan.reference = args.reference.is_some();
    plan.workers = args.workers.max(1);
    plan.probe_every = args.probe_every.max(1);
    plan.answer = args.answer_timeout;
    plan.extensions = !args.no_extensions;
    plan.corpus = corpus(&args.check)?;
    plan.max_message_bytes = args.check.max_message_size;
    let mut report = match &args.replay {
        Some(path) => {
            let file = replay::load(path).map_err(|e| BadInput(e.to_string()))?;
            replay::replay(plan, file, &path.display().to_string()).await?
        }
        None => {
            eprintln!("fuzz: seed {seed}");
            run::run(plan, shutdown.drain_token()).await?
        }
    };
    let dir = folder::create(args.check.out.as_deref(), "fuzz").context("creating the report folder")?;
    report.write_all(&dir).with_context(|| format!("writing the report to {}", dir.display()))?;
    for finding in &report.findings {
        eprintln!(
            "FINDING {} ({}x): {}",
            finding.name,
            finding.occurrences,
            finding.received.lines().next().unwrap_or_default()
        );
    }
    println!("{}", report.summary_line());
    println!("report: {}", dir.display());
    Ok(if report.interrupted {
        Outcome::Interrupted
    } else if report.passed {
        Outcome::Passed
    } else {
        Outcome::Failed
    })
}
