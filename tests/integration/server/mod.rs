//! The reference server against PROTOCOL.md, one test (at least) per rule, named after it.

mod auth;
mod delivery;
mod errors;
mod ops;
mod publish;
mod subscribe;
mod topics;
mod transport;
