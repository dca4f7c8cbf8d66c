//! One module per subcommand: each turns its parsed arguments into a plan, runs it through the
//! library and says how it came out. `main.rs` only maps the result to an exit code.

mod check;
mod compare;
mod conform;
mod fuzz;
mod merge;
pub mod outcome;
mod report;
mod run;
mod serve;
pub mod shutdown;
mod token;

use crate::cli::{Cli, Command};
use outcome::Outcome;
use shutdown::{Shutdown, run_until_aborted};

/// Runs the command line's subcommand. The long-running ones get the one [`Shutdown`]: the first
/// SIGINT or SIGTERM drains them, a second aborts.
pub async fn execute(cli: Cli) -> anyhow::Result<Outcome> {
    const FINISH_REPORT: Option<&str> = Some("interrupted: finishing the report");
    match cli.command {
        Command::Merge(args) => merge::execute(args),
        Command::Report(args) => report::execute(args),
        Command::Compare(args) => compare::execute(args),
        Command::Token(args) => token::execute(args),
        Command::Serve(args) => {
            // A worker's supervisor speaks for it.
            let on_drain =
                args.worker.is_none().then_some("shutting down: closing every connection with 1001");
            long_running(on_drain, |shutdown| serve::execute(args, shutdown)).await
        }
        Command::Run(args) => {
            // So does a worker process's coordinating parent.
            let on_drain =
                (!args.progress_json).then_some("interrupted: stopping the clients and writing the report");
            long_running(on_drain, |shutdown| run::execute(args, shutdown)).await
        }
        Command::Conform(args) => {
            long_running(FINISH_REPORT, |shutdown| conform::execute(args, shutdown)).await
        }
        Command::Fuzz(args) => long_running(FINISH_REPORT, |shutdown| fuzz::execute(args, shutdown)).await,
    }
}

/// Installs the signal handlers and runs `command` with them until it finishes or is aborted.
async fn long_running<F, Fut>(on_drain: Option<&'static str>, command: F) -> anyhow::Result<Outcome>
where
    F: FnOnce(Shutdown) -> Fut,
    Fut: Future<Output = anyhow::Result<Outcome>>,
{
    let shutdown = Shutdown::listen(on_drain)?;
    run_until_aborted(&shutdown, command(shutdown.clone())).await
}
