//! The one integration test binary: real servers on port 0, real WebSocket clients.

mod capacity;
mod cli;
mod cluster;
mod common;
mod conform;
mod deploy;
mod docs;
mod fuzz;
mod html;
mod layering;
mod live;
mod pings;
mod properties;
mod reports;
mod runner;
mod server;
mod shards;
mod stages;
mod stamps;
mod tls;
