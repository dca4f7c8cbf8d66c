//! # openframe-harness
//!
//! Load-testing and protocol-fuzzing harness for the OpenFrame WebSocket API, with the
//! reference server it tests against by default.
//!
//! - [`protocol`]: messages, topics, filters, tokens and their validation; shared by everything.
pub mod protocol;
