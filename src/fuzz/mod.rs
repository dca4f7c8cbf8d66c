//! `fuzz`: generators, mutators, oracles, shrinking, corpus and replay.
//!
//! - [`corpus`]: the JSONTestSuite seed corpus and what each file must get;
//! - [`model`]: what PROTOCOL.md requires for one message, and the judgement of an answer.

pub mod corpus;
pub mod model;
pub mod case;
pub mod exec;
pub mod generate;
pub mod canary;
pub mod shrink;
pub mod growth;
pub mod report;
pub mod run;
pub mod replay;
