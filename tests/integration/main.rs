//! The one integration test binary: real servers on port 0, real WebSocket clients.

mod cli;
mod common;
mod conform;
mod fuzz;
mod properties;
mod runner;
mod server;
mod tls;
