//! `fuzz`: generators, mutators, oracles, shrinking, corpus and replay.
//!
//! - [`corpus`]: the JSONTestSuite seed corpus and what each file must get;
//! - [`model`]: what PROTOCOL.md requires for one message, and the judgement of an answer.

pub mod canary;
pub mod case;
pub mod corpus;
pub mod exec;
pub mod generate;
pub mod growth;
pub mod model;
pub mod replay;
pub mod report;
pub mod run;
pub mod shrink;
