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
mod token;

use crate::cli::{Cli, Command};
use outcome::Outcome;

/// Runs the command line's subcommand.
pub async fn execute(cli: Cli) -> anyhow::Result<Outcome> {
    match cli.command {
        Command::Serve(args) => serve::execute(args).await,
        Command::Run(args) => run::execute(args).await,
        Command::Merge(args) => merge::execute(args),
        Command::Report(args) => report::execute(args),
        Command::Compare(args) => compare::execute(args),
        Command::Token(args) => token::execute(args),
        Command::Conform(args) => conform::execute(args).await,
        Command::Fuzz(args) => fuzz::execute(args).await,
    }
}
