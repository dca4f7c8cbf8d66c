//! The command line (CLI.md): clap definitions only. Values are parsed here; what they mean is
//! decided by each command's module when it builds its plan.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::util::duration::parse_duration;
use crate::util::fraction::parse_fraction;

/// Load-testing and protocol-fuzzing harness for the OpenFrame WebSocket API.
///
/// Exit codes: 0 passed, 1 a check failed, 2 bad input, 3 could not run, 4 measurements not
/// trustworthy (the harness was the bottleneck), 130 interrupted.
#[derive(Debug, Parser)]
#[command(name = "openframe-harness", version, about, long_about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the bundled reference server (PROTOCOL.md) until SIGINT/SIGTERM.
    Serve(ServeArgs),
    /// Run a load scenario (scenarios/*.toml) and write its report folder.
    ///
    /// Without a target (flag or file) the bundled reference server is started in-process.
    Run(RunArgs),
    /// Combine the reports of the shards of one run into one report (histograms merged exactly,
    /// counters added, gates judged again on the merged data).
    Merge(MergeArgs),
    /// Render a finished run's report.json again: report.html, report.md, junit.xml, *.hlog.
    Report(ReportArgs),
    /// Compare a run with a baseline: every latency percentile, throughput and counter side by
    /// side (Markdown on stdout); exit 1 when one is worse by more than the bound and the noise.
    ///
    /// A figure regresses when it is worse than the baseline by more than the largest of
    /// --max-regression × baseline, --min-delta (latency only), and 3 standard errors of the
    /// noise: the per-second spread and sampling error within the runs, and, given several
    /// baseline runs, the spread between them. Failure counters (missing, duplicated, …) at zero
    /// must stay zero. Percentiles with fewer than 10 samples beyond them, min and max are shown
    /// but not judged. Exit 4 when a run's measurements cannot be trusted, 2 on unreadable input.
    Compare(CompareArgs),
    /// Print a signed HS256 token for a target that uses a shared secret.
    Token(TokenArgs),
    /// Run the named conformance cases of PROTOCOL.md against a target.
    Conform(ConformArgs),
    /// Fuzz a target's protocol handling with oracles; findings are saved as replayable files.
    Fuzz(FuzzArgs),
}

/// How a client checks a `wss://` target's certificate (run, conform, fuzz).
#[derive(Debug, Clone, Default, Args)]
pub struct TlsArgs {
    /// PEM file of the CA that signed the target's certificate (a private CA), or of the
    /// target's self-signed certificate itself, as `curl --cacert` [default: the platform's root
    /// certificates].
    #[arg(long, value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
    /// Do not verify the target's TLS certificate at all. Printed as a warning and recorded in
    /// the report.
    #[arg(long)]
    pub insecure: bool,
}

/// The server to check and how to get tokens for it (conform, fuzz).
#[derive(Debug, Clone, Args)]
pub struct CheckTargetArgs {
    /// ws:// or wss:// URL of the server to check [default: the bundled reference server, started in-process].
    #[arg(long, value_name = "URL")]
    pub target: Option<String>,
    #[command(flatten)]
    pub tls: TlsArgs,
    /// Start the bundled server with TLS (wss://, a certificate generated at start that the
    /// checks trust); not with --target.
    #[arg(long, conflicts_with = "target")]
    pub bundled_tls: bool,
    #[command(flatten)]
    pub secret: SecretArgs,
    /// Tokens to use, one per line, for a target whose secret is unknown; cases that need to mint
    /// special tokens are then skipped with that reason.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Break the bundled server on purpose (repeatable; see `serve --help`); not with --target.
    #[arg(long = "fault", value_name = "SPEC")]
    pub faults: Vec<String>,
    /// Run the bundled server as a child process, so that a crash is seen as the process dying
    /// (implied by --fault crash-on-deep-nesting).
    #[arg(long)]
    pub child_server: bool,
    /// A JSONTestSuite folder (holding test_parsing/) to send instead of the corpus built into the
    /// binary [default: the built-in copy of nst/JSONTestSuite, 318 files].
    #[arg(long, value_name = "DIR")]
    pub corpus: Option<PathBuf>,
    /// The target's largest client message in bytes.
    #[arg(long, default_value_t = 64 * 1024, value_name = "BYTES")]
    pub max_message_size: usize,
    /// Report folder [default: reports/<name>-<UTC time>/].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ConformArgs {
    #[command(flatten)]
    pub check: CheckTargetArgs,
    /// Skip the cases that check extensions of PROTOCOL.md, which a third-party server need not implement.
    #[arg(long)]
    pub no_extensions: bool,
    /// Run only the cases whose name contains this text.
    #[arg(long, value_name = "TEXT")]
    pub only: Option<String>,
    /// The target's handshake deadline (slowloris case) [default: 10s; 2s for the bundled server].
    #[arg(long, value_parser = parse_duration)]
    pub handshake_timeout: Option<Duration>,
}

#[derive(Debug, Args)]
pub struct FuzzArgs {
    #[command(flatten)]
    pub check: CheckTargetArgs,
    /// Seed of the case generator; the same seed generates the same cases [default: from the clock, printed].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Stop after this long.
    #[arg(long, value_parser = parse_duration, conflicts_with = "cases")]
    pub duration: Option<Duration>,
    /// Stop after this many cases [default: 20000 unless --duration].
    #[arg(long)]
    pub cases: Option<u64>,
    /// Also send each case to a reference server and report any difference in the normalized answers.
    #[arg(long, value_name = "embedded")]
    pub reference: Option<String>,
    /// Rerun one saved finding instead of fuzzing.
    #[arg(long, value_name = "FILE")]
    pub replay: Option<PathBuf>,
    /// Concurrent fuzzing connections.
    #[arg(long, default_value_t = 8)]
    pub workers: usize,
    /// A fresh client's liveness probe runs after every this many cases of a worker (1: after each case).
    #[arg(long, default_value_t = 16)]
    pub probe_every: u64,
    /// How long an answer may take before the case counts as a hang.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub answer_timeout: Duration,
    /// Skip the checks of extensions of PROTOCOL.md.
    #[arg(long)]
    pub no_extensions: bool,
}

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The shards' report.json files (or their report folders).
    #[arg(required = true, num_args = 1..)]
    pub reports: Vec<PathBuf>,
    /// Folder for the merged report.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A run's report.json, or the report folder holding it.
    pub path: PathBuf,
    /// Formats to write (repeatable or comma-separated).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "html")]
    pub format: Vec<ReportFormat>,
    /// Folder to write into [default: the folder of report.json].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// A format `report` renders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    /// report.html: the page with charts.
    Html,
    /// report.md: short, for a pull request or $GITHUB_STEP_SUMMARY.
    Md,
    /// junit.xml: one testcase per gate.
    Junit,
    /// <metric>.hlog: HdrHistogram interval logs (HistogramLogAnalyzer).
    Hlog,
    /// Every format above.
    All,
}

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// BASELINE… CURRENT: one or more baseline runs (report.json files, report folders, or a
    /// folder of baseline runs such as reports/baselines/smoke/), then the run to judge. With
    /// several baseline runs their median is the baseline and their spread is measured noise.
    #[arg(required = true, num_args = 2.., value_name = "REPORT")]
    pub reports: Vec<PathBuf>,
    /// Largest worsening allowed, relative to the baseline: 10% or 0.1.
    #[arg(long, default_value = "10%", value_parser = parse_fraction, value_name = "PCT")]
    pub max_regression: f64,
    /// Latency changes up to this are noise whatever their ratio.
    #[arg(long, default_value = "1ms", value_parser = parse_duration, value_name = "DURATION")]
    pub min_delta: Duration,
}

/// The shared secret used to verify or mint tokens.
#[derive(Debug, Clone, Args)]
pub struct SecretArgs {
    /// HS256 shared secret [default for `serve`: the development secret "openframe-dev-secret"].
    #[arg(long, env = "OPENFRAME_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
}

/// How a command that connects gets its tokens; the flag wins over a scenario's `[auth]`.
#[derive(Debug, Clone, Args)]
pub struct CredentialArgs {
    #[command(flatten)]
    pub secret: SecretArgs,
    /// File with one token per line, for a target whose secret is unknown.
    #[arg(long, value_name = "FILE", conflicts_with = "jwt_secret")]
    pub token_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The scenario file.
    pub scenario: PathBuf,
    /// Target URL (ws:// or wss://…/v1/ws), overriding the scenario's.
    #[arg(long)]
    pub target: Option<String>,
    #[command(flatten)]
    pub tls: TlsArgs,
    /// Start the bundled server with TLS (a certificate generated at start, trusted by the run's
    /// clients), whatever the scenario's `[target] tls` says.
    #[arg(long, conflicts_with_all = ["no_bundled_tls", "target"])]
    pub bundled_tls: bool,
    /// Start the bundled server without TLS, whatever the scenario's `[target] tls` says.
    #[arg(long, conflicts_with = "target")]
    pub no_bundled_tls: bool,
    /// Break the bundled server on purpose (repeatable), added to the scenario's `[target]
    /// faults`: the faults of `serve --fault` (e.g. throttle=N: at most N event frames per second
    /// in total). Not with an external target.
    #[arg(long = "fault", value_name = "SPEC", conflicts_with = "target")]
    pub faults: Vec<String>,
    /// Run the scenario's `[capacity]` search: the highest load at which every gate holds (a
    /// scenario with a `[capacity]` table searches without the flag).
    #[arg(long)]
    pub find_capacity: bool,
    /// Report folder [default: reports/<scenario>-<UTC time>/].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Seed for everything random, overriding the scenario's.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Length of the run, overriding the scenario's (e.g. 30s, 5m).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    #[command(flatten)]
    pub credentials: CredentialArgs,
    /// No progress lines.
    #[arg(long, short)]
    pub quiet: bool,
    /// Split the clients over this many worker processes [default: as many as the open-file
    /// limit requires, 0 when the run fits in one process].
    #[arg(long)]
    pub workers: Option<u32>,
    /// Run only shard I of N of the scenario (every N-th client of each group and publisher);
    /// combine the shards' reports with `merge`.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<crate::runner::ShardOf>,
    /// When the run starts (all shards of a run must share it): RFC 3339 (2026-01-01T10:00:00Z)
    /// or seconds since the Unix epoch.
    #[arg(long, value_name = "TIME", value_parser = parse_start_at, requires = "shard")]
    pub start_at: Option<u64>,
    /// Client threads in this process [default: the scenario's, else one per CPU].
    #[arg(long)]
    pub threads: Option<usize>,
    /// Shared run id of the shards of one run (set by the parent of worker processes).
    #[arg(long, hide = true)]
    pub run_id: Option<u32>,
    /// Shared-memory publisher board of local worker processes (set by their parent).
    #[arg(long, hide = true)]
    pub board: Option<PathBuf>,
    /// Progress as JSON lines on stdout (for a parent of worker processes).
    #[arg(long, hide = true)]
    pub progress_json: bool,
    /// Serve /metrics (Prometheus), /events and a live page on ADDR during the run
    /// [default: the scenario's `[harness] live`]; 127.0.0.1:0 picks a free port.
    #[arg(long, value_name = "ADDR")]
    pub live: Option<String>,
    /// Do not scrape the target's own metrics (`intervals[].server`) during the run.
    #[arg(long)]
    pub no_target_metrics: bool,
    /// Scrape this URL for the target's metrics (repeatable: one per server process); for a
    /// parent's first worker process.
    #[arg(long, hide = true, value_name = "URL")]
    pub target_metrics_url: Vec<String>,
}

/// RFC 3339 or Unix seconds, to microseconds since the epoch.
fn parse_start_at(text: &str) -> Result<u64, String> {
    if let Some(us) = crate::protocol::timestamp::parse_rfc3339_utc(text) {
        return Ok(us);
    }
    match text.parse::<f64>() {
        Ok(seconds) if seconds > 0.0 && seconds.is_finite() => Ok((seconds * 1e6) as u64),
        _ => Err(format!(
            "invalid start time {text:?}: expected RFC 3339 UTC (2026-01-01T10:00:00Z) or Unix seconds"
        )),
    }
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    #[command(flatten)]
    pub secret: SecretArgs,
    /// Break the server on purpose (repeatable): drop=F, duplicate=F, reorder=F, delay=F:DUR,
    /// ignore-filters, ignore-unsubscribe, broker-lag=DUR, wrong-unknown-topic-code, close-on-bad-json,
    /// accept-expired-tokens, accept-alg-none, no-id-echo, no-error-timestamp,
    /// crash-on-deep-nesting, hang-on-deep-nesting.
    #[arg(long = "fault", value_name = "SPEC")]
    pub faults: Vec<String>,
    /// Largest client message in bytes, after its fragments are joined; larger closes with 1009.
    #[arg(long, default_value_t = 64 * 1024, value_name = "BYTES")]
    pub max_message_size: usize,
    /// Time a new connection has to complete the WebSocket upgrade.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub handshake_timeout: Duration,
    /// Interval of the server's pings; two unanswered pings close the connection with 1001.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub ping_interval: Duration,
    /// Interval of the system_status heartbeat event; 0s turns it off.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub status_interval: Duration,
    /// Outbound queue bound per connection, in messages; overflow closes it with 1013.
    #[arg(long, default_value_t = 4096)]
    pub queue: usize,
    /// Connections beyond this get CONNECTION_ERROR and close 1013.
    #[arg(long, default_value_t = 1_000_000)]
    pub max_connections: usize,
    /// Kernel send buffer per connection in bytes (SO_SNDBUF) [default: the OS's autotuning].
    #[arg(long, value_name = "BYTES")]
    pub socket_send_buffer: Option<u32>,
    /// Run this many server processes on the one address (SO_REUSEPORT: the kernel spreads
    /// connections over them). More than one needs --broker. Limits such as --max-connections
    /// apply to each process.
    #[arg(long, default_value_t = 1, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=256))]
    pub workers: u32,
    /// Redis pub/sub broker (redis://HOST:PORT) that makes this process one of a cluster: every
    /// process started with the same broker and prefix, on any machine, is one logical server.
    #[arg(long, value_name = "URL", env = "OPENFRAME_BROKER", hide_env_values = true)]
    pub broker: Option<String>,
    /// Prefix of the broker's channel names; logical servers sharing a broker need different ones.
    #[arg(long, default_value = "openframe", value_name = "TEXT")]
    pub broker_prefix: String,
    /// Set by `serve --workers N` for its children: this is worker I (listen with SO_REUSEPORT,
    /// serve a second, own address too, and report both on stdout).
    #[arg(long, hide = true, value_name = "I", conflicts_with = "workers")]
    pub worker: Option<u32>,
    /// Serve wss:// and https:// with this PEM certificate chain (leaf first); needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The token's subject (`sub`).
    #[arg(long, default_value = "harness-user")]
    pub sub: String,
    /// Space-separated scopes; `publish` allows publishing.
    #[arg(long)]
    pub scope: Option<String>,
    /// How long the token stays valid.
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    pub ttl: Duration,
    #[command(flatten)]
    pub secret: SecretArgs,
}
