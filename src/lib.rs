//! # openframe-harness
//!
//! Load-testing and protocol-fuzzing harness for the OpenFrame WebSocket API, with the
//! reference server it tests against by default.
//!
//! - [`conform`]: the named conformance cases of PROTOCOL.md, their runner and reports.
//! - [`corpus`]: the JSONTestSuite seed corpus, built into the binary (or `--corpus DIR`), for
//!   conform and fuzz alike.
//! - [`fuzz`]: protocol fuzzing: generators, mutators, oracles, shrinking, replay.
//! - [`probe`]: the checking client both share: targets, the server under test, observed answers.
//! - [`oracle`]: what PROTOCOL.md allows a server to answer to a message, and the one judge of it.
//! - [`protocol`]: messages, topics, filters, tokens and their validation; shared by everything.
//! - [`scenario`]: scenario files and the validated plan a run executes.
//! - [`live`]: `run --live`: the run so far as `/metrics`, server-sent events and a live page.
//! - [`metrics`]: latency histograms, per-shard statistics, the aggregator, live progress.
//! - [`report`]: report folders and formats.
//! - [`runner`]: the scenario runner: shards of clients and publishers, the delivery oracle.
//! - [`server`]: the bundled reference server (embeddable; `openframe-harness serve`).
//! - [`telemetry`]: the target's own Prometheus metrics, scraped once a second during a run.
//! - [`tls`]: TLS for server, runner and probe: trust, SNI and ALPN, resumption, failures.
//! - [`util`]: durations and process statistics.
//! - [`wire`]: raw RFC 6455 frames and a hand-written upgrade, for the suite and the fuzzer.
//! - [`cli`], [`commands`]: the command line, one module per subcommand, and (`commands::outcome`) the exit codes.
pub mod cli;
pub mod commands;
pub mod conform;
pub mod corpus;
pub mod fuzz;
pub mod live;
pub mod metrics;
pub mod oracle;
pub mod probe;
pub mod protocol;
pub mod report;
pub mod results;
pub mod runner;
pub mod scenario;
pub mod server;
pub mod telemetry;
pub mod tls;
pub mod util;
pub mod wire;
