//! The one integration test binary: real servers on port 0, real WebSocket clients.

mod common;
mod conform;
mod fuzz;
mod server;
