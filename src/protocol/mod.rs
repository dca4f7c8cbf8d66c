//! The OpenFrame protocol (PROTOCOL.md), shared by the reference server and the harness.
//!
//! One definition of each rule: the server judges client input with [`client`], the harness
//! judges server output with [`server_message`], and both route or check events with
//! [`filter`] and [`topic`]. Nothing here does I/O.

pub mod client;
pub mod codes;
pub mod data;
pub mod envelope;
pub mod filter;
pub mod json_depth;
pub mod json_scan;
pub mod jwt;
pub mod server_message;
pub mod timestamp;
pub mod topic;

pub use client::{ClientMessage, Publish, Rejection, Subscribe, Unsubscribe, parse_client_message};
pub use codes::{ErrorCode, close};
pub use data::FieldValue;
pub use data::ObjectView;
pub use filter::Filters;
pub use json_depth::json_depth;
pub use server_message::{ServerMessage, Violation, ViolationKind, parse_server_message};
pub use topic::Topic;
