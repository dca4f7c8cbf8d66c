//! `fuzz`: generators, mutators, oracles, shrinking and replay; the seed corpus is
//! [`crate::corpus`].
//!
//! - [`case`], [`generate`]: what a case is, and the cases a seed makes;
//! - [`exec`]: one case against a target, judged by [`crate::oracle`] (the rule book `conform`
//!   uses too);
//! - [`run`]: the run in named steps (workers, epochs, triage of a server's death, the end);
//! - [`canary`], [`growth`], [`shrink`], [`replay`], [`report`]: the run's other oracles,
//!   reproducers and output.
//!
//! Imports `probe`, `oracle`, `protocol` and `wire`; never `conform` or `runner`.

pub mod canary;
pub mod case;
pub mod exec;
pub mod generate;
pub mod growth;
pub mod replay;
pub mod report;
pub mod run;
pub mod shrink;
