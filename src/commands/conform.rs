//! `conform`: builds the plan from the flags, runs the catalogue, writes the report folder and
//! prints a summary (CLI.md).

use anyhow::Context;

use super::check::{corpus, sut_and_credentials};
use super::shutdown::Shutdown;
use crate::cli::ConformArgs;
use crate::commands::outcome::Outcome;
use crate::conform::{self, ConformPlan};
use crate::report::folder;

pub async fn execute(args: ConformArgs, shutdown: Shutdown) -> anyhow::Result<Outcome> {
    let (sut, creds) = sut_and_credentials(&args.check)?;
    let mut plan = ConformPlan::new(sut, creds);
    plan.extensions = !args.no_extensions;
    plan.corpus = corpus(&args.check)?;
    plan.max_message_bytes = args.check.max_message_size;
    plan.only = args.only;
    if let Some(timeout) = args.handshake_timeout {
        plan.handshake_timeout = timeout;
    }
    let report = conform::run(plan, shutdown.drain_token()).await?;
    let dir = folder::create(args.check.out.as_deref(), "conform").context("creating the report folder")?;
    report.write_all(&dir).with_context(|| format!("writing the report to {}", dir.display()))?;
    for case in report.cases.iter().filter(|c| c.verdict == "fail") {
        eprintln!("FAIL {}: expected {}", case.name, case.expected.as_deref().unwrap_or_default());
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
