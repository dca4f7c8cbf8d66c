//! `fuzz`: generators, mutators, oracles, shrinking, corpus and replay.
//!
//! - [`corpus`]: the JSONTestSuite seed corpus and what each file must get;
//! - [`model`]: what PROTOCOL.md requires for one message, and the judgement of an answer.

pub mod corpus;
pub mod model;
