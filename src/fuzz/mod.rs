//! `fuzz`: generators, mutators, oracles, shrinking and replay; the seed corpus is
//! [`crate::corpus`].
//!
//! - [`model`]: what PROTOCOL.md requires for one message, and the judgement of an answer.

pub mod canary;
pub mod case;
pub mod exec;
pub mod generate;
pub mod growth;
pub mod model;
pub mod replay;
pub mod report;
pub mod run;
pub mod shrink;
