//! `openframe-harness`: parse the command line, set up logging and the runtime, run the
//! command from the library, map the result to CLI.md's exit code.

use std::process::ExitCode;

use clap::Parser;
use openframe_harness::cli::Cli;
use openframe_harness::commands;
use openframe_harness::commands::outcome::exit_code_for;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_env("OPENFRAME_LOG").unwrap_or_else(|_| EnvFilter::new("warn")))
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::from(3);
        }
    };
    let result = runtime.block_on(commands::execute(cli));
    // An aborted command leaves its threads behind; they must not hold the exit up.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(outcome) => outcome.into(),
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(exit_code_for(&error))
        }
    }
}
