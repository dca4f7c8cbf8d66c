//! The scenario runner: executes a [`Plan`] and returns its [`RunReport`].
//!
//! - [`content`]: deterministic event contents and admission tables;
//! - [`clock`]: the run's clock; [`schedule`]: publishers' open-model schedules;
//! - [`board`]: what publishers have had answered, read by the oracles;
//! - [`oracle`]: exact delivery judgement per (subscriber, publisher);
//! - [`credentials`], [`connect`]: tokens and connections;
//! - [`preflight`]: what the run needs from the machine, decided before it starts;
//! - [`client`], [`publisher`]: the simulated participants;
//! - [`context`], [`shard`]: shared state and the per-thread shards that run the participants;
//! - [`finish`]: turning the aggregated totals into the report;
//! - [`workers`]: splitting a run into local worker processes and merging their reports;
//! - [`live_feed`]: the live endpoint's snapshots and the target's telemetry, beside the run;
//! - [`capacity`]: a capacity search, each of its steps a run of its own.
//!
//! Flow: plan → (bundled server when there is no target) → preflight → shards (clients and
//! publishers) → aggregator (per-second intervals, progress) → finish (report, validity, gates).

pub mod board;
pub mod bundled;
pub mod capacity;
pub mod client;
pub mod clock;
pub mod connect;
pub mod content;
pub mod context;
pub mod credentials;
pub mod finish;
pub mod live_feed;
pub mod oracle;
pub mod preflight;
pub mod publisher;
pub mod schedule;
mod session;
pub mod shard;
mod stage_counts;
pub mod workers;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use board::PublisherBoard;
use bundled::{Bundled, Cluster, ClusterSpec};
use clock::{RunClock, Schedule};
use connect::{ConnectError, Connector};
use content::ContentModel;
use context::RunShared;
use credentials::Credentials;
use shard::ShardAssignment;

use crate::metrics::aggregator::{self, AggregatorConfig};
use crate::metrics::progress::Progress;
use crate::results::model::RunReport;
use crate::scenario::Plan;
use crate::scenario::plan::{CredentialSource, TargetPlan};
use crate::server::{self, ServerConfig};
use crate::tls::{ClientTls, ClientTlsOptions, GeneratedPki, TlsError, Trust};
use crate::util::process;

/// Why a run could not be carried out (exit code 3).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("target {target} is unreachable")]
    Unreachable { target: String, source: ConnectError },
    #[error("target {target}")]
    Tls { target: String, source: TlsError },
    #[error("cannot start the bundled server: {0}")]
    EmbeddedServer(#[from] server::ServerError),
    #[error("preflight: {0}")]
    Preflight(String),
    #[error("cannot start a shard thread: {0}")]
    Thread(std::io::Error),
    #[error("cannot map the shared publisher board: {0}")]
    Board(std::io::Error),
    #[error("workers: {0}")]
    Workers(String),
}

/// This process's part of a run split over processes or machines: shard `index` of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardOf {
    pub index: u32,
    pub count: u32,
}

impl std::str::FromStr for ShardOf {
    type Err = String;

    /// `I/N`, with `0 <= I < N`.
    fn from_str(s: &str) -> Result<ShardOf, String> {
        let error = || format!("invalid shard {s:?}: expected I/N with 0 <= I < N, e.g. 0/3");
        let (index, count) = s.split_once('/').ok_or_else(error)?;
        let index: u32 = index.trim().parse().map_err(|_| error())?;
        let count: u32 = count.trim().parse().map_err(|_| error())?;
        if count == 0 || index >= count {
            return Err(error());
        }
        Ok(ShardOf { index, count })
    }
}

/// How the run is driven from outside.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// No progress lines.
    pub quiet: bool,
    /// Cancelled on Ctrl-C: the run stops early and reports what it has.
    pub interrupt: CancellationToken,
    /// Run only this share of every client group and publisher.
    pub shard: Option<ShardOf>,
    /// When the run's clock starts (µs since the epoch); every shard of a run shares it.
    pub start_at_us: Option<u64>,
    /// Marks the run's events among everything the target sends; every shard shares it.
    pub run_id: Option<u32>,
    /// Shared-memory file of publisher acks, for worker processes on one machine.
    pub board: Option<std::path::PathBuf>,
    /// One JSON line per second on stdout instead of the progress line, for a coordinating parent.
    pub progress_json: bool,
    /// The live endpoint (`--live`), fed once a second.
    pub live: Option<Arc<crate::live::LiveServer>>,
    /// The capacity step this run is, as the live endpoint names it (`3: 40 events/s`).
    pub live_step: Option<String>,
}

/// Runs `plan` to its end (or its interruption) and reports.
pub async fn run(plan: Plan, options: RunOptions) -> Result<RunReport, RunError> {
    let embedded = start_embedded(&plan).await?;
    let result = run_against(plan, options, embedded.as_ref()).await;
    if let Some(embedded) = embedded {
        embedded.server.stop().await;
    }
    result
}

/// The bundled server of a run, and the PKI generated for it when it speaks TLS.
#[derive(Debug)]
pub(crate) struct EmbeddedServer {
    pub server: Bundled,
    pub pki: Option<GeneratedPki>,
}

async fn start_embedded(plan: &Plan) -> Result<Option<EmbeddedServer>, RunError> {
    let TargetPlan::Embedded { faults, fault_specs, queue, socket_send_buffer, tls, cluster_workers } =
        &plan.target
    else {
        return Ok(None);
    };
    let pki =
        if *tls { Some(GeneratedPki::new().map_err(|source| tls_error("embedded", source))?) } else { None };
    let jwt_secret = match &plan.credentials {
        CredentialSource::Secret(secret) => secret.clone(),
        CredentialSource::Tokens(_) => ServerConfig::default().jwt_secret,
    };
    if *cluster_workers > 1 {
        let mut serve_flags: Vec<String> =
            fault_specs.iter().flat_map(|spec| ["--fault".to_owned(), spec.clone()]).collect();
        if let Some(queue) = queue {
            serve_flags.extend(["--queue".to_owned(), queue.to_string()]);
        }
        if let Some(bytes) = socket_send_buffer {
            serve_flags.extend(["--socket-send-buffer".to_owned(), bytes.to_string()]);
        }
        let spec = ClusterSpec { workers: *cluster_workers, secret: jwt_secret, serve_flags };
        let cluster = Cluster::start(&spec, pki.as_ref()).await?;
        return Ok(Some(EmbeddedServer { server: Bundled::Cluster(Box::new(cluster)), pki }));
    }
    let server_tls = match &pki {
        Some(pki) => Some(pki.server_tls().map_err(|source| tls_error("embedded", source))?),
        None => None,
    };
    let config = ServerConfig {
        jwt_secret,
        faults: faults.clone(),
        outbound_queue: queue.unwrap_or(ServerConfig::default().outbound_queue),
        socket_send_buffer: *socket_send_buffer,
        tls: server_tls,
        ..ServerConfig::default()
    };
    let server = server::start("127.0.0.1:0".parse().expect("a valid address"), config).await?;
    Ok(Some(EmbeddedServer { server: Bundled::InProcess(server), pki }))
}

fn tls_error(target: &str, source: TlsError) -> RunError {
    RunError::Tls { target: target.to_owned(), source }
}

/// The clients' TLS settings: `None` when neither the WebSocket nor the HTTP URL uses TLS. The
/// bundled server's generated CA is trusted; otherwise `ca_cert`, or the platform's roots.
pub(crate) fn client_tls(
    plan: &Plan,
    embedded: Option<&EmbeddedServer>,
    ws_url: &str,
    http_url: &str,
) -> Result<Option<ClientTls>, RunError> {
    if !(ws_url.starts_with("wss://") || http_url.starts_with("https://")) {
        return Ok(None);
    }
    let trust = match (embedded.and_then(|e| e.pki.as_ref()), &plan.tls.ca_cert) {
        (Some(pki), _) => pki.trust(),
        (None, Some(path)) => Trust::CaFile(path.clone()),
        (None, None) => Trust::Platform,
    };
    let options = ClientTlsOptions { trust, insecure: plan.tls.insecure };
    ClientTls::new(&options).map(Some).map_err(|source| tls_error(ws_url, source))
}

/// A run's steps: reach the target, build what every thread shares, drive the threads to the
/// end (or the interruption) and write the report.
async fn run_against(
    plan: Plan,
    options: RunOptions,
    embedded: Option<&EmbeddedServer>,
) -> Result<RunReport, RunError> {
    let (connector, http_url) = reach_target(&plan, &options, embedded).await?;
    let scraper = live_feed::scraper_for(&plan, embedded, options.quiet).await;
    let scraped = scraper.clone();
    let run = Arc::new(shared_state(plan, &options, connector, http_url)?);
    let (totals, usage, interrupted) = drive(&run, &options, embedded, scraper).await?;
    Ok(finish::report(&run, totals, usage, interrupted, scraped.map(|s| s.report())))
}

/// Checks this process's sockets, then opens one connection the way every client will: a
/// certificate the clients would refuse stops the run here, as what it is (exit 3), instead of
/// as thousands of failed connections. Returns the connector and the target's HTTP URL.
async fn reach_target(
    plan: &Plan,
    options: &RunOptions,
    embedded: Option<&EmbeddedServer>,
) -> Result<(Connector, String), RunError> {
    let shard = options.shard.map(|s| (s.index, s.count));
    let sources = preflight::for_this_process(plan, &preflight::Machine::read(), shard)
        .map_err(|e| RunError::Preflight(e.0))?;
    let (ws_url, http_url) = match (&plan.target, embedded) {
        (TargetPlan::External { ws_url, http_url }, _) => (ws_url.clone(), http_url.clone()),
        (TargetPlan::Embedded { .. }, Some(e)) => (e.server.ws_url(), e.server.http_url()),
        (TargetPlan::Embedded { .. }, None) => {
            unreachable!("the bundled server is started for an embedded target")
        }
    };
    let tls = client_tls(plan, embedded, &ws_url, &http_url)?;
    let unreachable = |source| match source {
        ConnectError::Tls(source) => RunError::Tls { target: ws_url.clone(), source },
        source => RunError::Unreachable { target: ws_url.clone(), source },
    };
    let connector = Connector::new(&ws_url, plan.harness.connect_timeout, tls)
        .await
        .map_err(unreachable)?
        .with_sources(sources)
        .with_kernel_stamps(plan.harness.kernel_stamps);
    connector.open(&connector.session(), None, 0).await.map_err(unreachable)?;
    Ok((connector, http_url))
}

/// Everything the run's threads share: the clock and its start, the publishers' schedules and
/// contents, the publisher board, the groups and the credentials.
fn shared_state(
    plan: Plan,
    options: &RunOptions,
    connector: Connector,
    http_url: String,
) -> Result<RunShared, RunError> {
    let clock = RunClock::new();
    // Give the shards a moment to start before the first client is due.
    let start_us = options.start_at_us.unwrap_or_else(|| clock.now_us() + 200_000);
    let run_id = options.run_id.unwrap_or_else(|| rand::random::<u32>() & 0x7FFF_FFFF);
    let stage_starts: Vec<Duration> = plan.stages.iter().skip(1).map(|s| s.start).collect();
    let schedules: Arc<[Schedule]> = plan
        .publishers
        .iter()
        .map(|p| {
            Schedule::new(start_us, p.rate.clone(), p.planned_events())
                .with_stages(stage_starts.iter().copied())
        })
        .collect();
    let contents: Vec<ContentModel> =
        plan.publishers.iter().map(|p| ContentModel::new(p, plan.seed, run_id)).collect();
    let board = Arc::new(match &options.board {
        Some(path) => PublisherBoard::shared(plan.publishers.len(), path).map_err(RunError::Board)?,
        None => PublisherBoard::new(plan.publishers.len()),
    });
    let groups = RunShared::group_runtimes(&plan, &board, &schedules, &contents);
    let credentials = Credentials::new(plan.credentials.clone(), plan.token_ttl);
    Ok(RunShared {
        plan,
        run_id,
        clock,
        start_us,
        connector,
        http_url,
        credentials,
        board,
        schedules,
        contents,
        groups,
        stop: CancellationToken::new(),
    })
}

/// Starts the aggregator and one thread per shard, waits for the run's end or an interrupt,
/// stops the threads and returns the aggregated totals, what the run cost, and whether it was
/// interrupted.
async fn drive(
    run: &Arc<RunShared>,
    options: &RunOptions,
    embedded: Option<&EmbeddedServer>,
    scraper: Option<crate::telemetry::Scraper>,
) -> Result<(aggregator::Totals, finish::Usage, bool), RunError> {
    let assignments = assign(&run.plan, run.plan.harness.threads, options.shard);
    let shards = assignments.len();
    let (server_tx, server_rx) = tokio::sync::watch::channel(None);
    let scraping =
        scraper.map(|s| tokio::spawn(live_feed::scrape_each_second(s, server_tx, run.stop.clone())));
    let on_interval = options.live.clone().map(|live| {
        let shard = options.shard.map(|s| format!("{}/{}", s.index, s.count));
        let labels = live_feed::RunLabels::of(&run.plan, run.run_id, shard, options.live_step.clone());
        live_feed::interval_hook(live, labels)
    });
    let (reports_tx, reports_rx) = mpsc::channel(shards * 4);
    let aggregator_config = AggregatorConfig {
        shards,
        groups: run.plan.groups.len(),
        planned_clients: run.plan.planned_clients(),
        duration_s: run.plan.duration.as_secs_f64(),
        stages: run.plan.stages.iter().map(|s| (s.name.clone(), s.end.as_secs_f64())).collect(),
        progress: if options.progress_json {
            Progress::JsonLines
        } else if options.quiet {
            Progress::Off
        } else {
            Progress::Line
        },
        server: scraping.is_some().then_some(server_rx),
        on_interval,
    };
    let aggregator = tokio::spawn(aggregator::run(aggregator_config, reports_rx));
    let cpu_before = process::cpu_time();
    let wall_start = Instant::now();
    let mut threads = Vec::with_capacity(shards);
    for assignment in assignments {
        threads
            .push(shard::spawn(Arc::clone(run), assignment, reports_tx.clone()).map_err(RunError::Thread)?);
    }
    drop(reports_tx);

    let end = run.clock.instant_at(run.start_us) + run.plan.duration;
    let interrupted = tokio::select! {
        _ = tokio::time::sleep_until(end.into()) => false,
        _ = options.interrupt.cancelled() => true,
    };
    run.stop.cancel();
    let totals = aggregator.await.unwrap_or_default();
    if let Some(scraping) = scraping {
        let _ = scraping.await;
    }
    for thread in threads {
        let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    }
    let usage = finish::Usage {
        cpu: process::cpu_time().saturating_sub(cpu_before),
        wall: wall_start.elapsed(),
        server_in_process: embedded.is_some_and(|e| e.server.in_process()),
    };
    Ok((totals, usage, interrupted))
}

/// Deals clients to `shards` threads round robin, in connect order, and this process's
/// publishers to one more thread of their own; with `shard`, only this process's share (every
/// `count`-th client and publisher).
fn assign(plan: &Plan, shards: usize, shard: Option<ShardOf>) -> Vec<ShardAssignment> {
    let ShardOf { index: mine, count } = shard.unwrap_or(ShardOf { index: 0, count: 1 });
    let ours = |n: usize| n % count as usize == mine as usize;
    let mut assignments: Vec<ShardAssignment> =
        (0..shards).map(|index| ShardAssignment { index, ..ShardAssignment::default() }).collect();
    let mut clients: Vec<(usize, u64, Duration)> = plan
        .groups
        .iter()
        .enumerate()
        .flat_map(|(g, group)| (0..group.count).map(move |i| (g, i, group.first_join(i))))
        .collect();
    clients.sort_by_key(|(_, _, offset)| *offset);
    let clients = clients.into_iter().enumerate().filter(|(n, _)| ours(*n)).map(|(_, c)| c);
    for (n, client) in clients.enumerate() {
        assignments[n % shards].clients.push(client);
    }
    let publishers: Vec<usize> = (0..plan.publishers.len()).filter(|p| ours(*p)).collect();
    if !publishers.is_empty() {
        assignments.push(ShardAssignment { index: shards, publishers, ..ShardAssignment::default() });
    }
    assignments
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_parse_as_index_of_count() {
        assert_eq!("1/3".parse(), Ok(ShardOf { index: 1, count: 3 }));
        for bad in ["3/3", "0/0", "1", "a/b", "-1/2"] {
            assert!(bad.parse::<ShardOf>().is_err(), "{bad}");
        }
    }

    #[test]
    fn shards_split_every_group_and_publisher_without_overlap() {
        let text = "name = \"t\"\nduration = \"10s\"\n[[clients]]\nname = \"a\"\ncount = 10\ntopics = [\"alerts\"]\n\
                    [[clients]]\nname = \"b\"\ncount = 5\ntopics = [\"alerts\"]\n\
                    [[publishers]]\ntopic = \"alerts\"\nrate = \"1/s\"\nconnections = 3\n";
        let plan = crate::scenario::parse(text, std::path::Path::new("t"), &Default::default()).unwrap();
        let mut seen = std::collections::BTreeSet::new();
        let mut publishers = Vec::new();
        for index in 0..3 {
            for thread in assign(&plan, 2, Some(ShardOf { index, count: 3 })) {
                assert!(
                    thread.publishers.is_empty() || thread.clients.is_empty(),
                    "publishers have their own thread"
                );
                for (group, client, _) in thread.clients {
                    assert!(seen.insert((group, client)), "client given twice");
                }
                publishers.extend(thread.publishers);
            }
        }
        assert_eq!(seen.len(), 15);
        publishers.sort();
        assert_eq!(publishers, [0, 1, 2]);
    }
}
