//! `fuzz`: placeholder until the fuzzer lands in this branch.

use crate::cli::FuzzArgs;
use crate::error::{BadInput, Outcome};

pub async fn execute(_args: FuzzArgs) -> anyhow::Result<Outcome> {
    Err(BadInput("fuzz is not built yet".into()).into())
}
