//! Preflight: what a run needs from this machine — open files per process, ephemeral ports per
//! source address, memory — computed from the plan before the first client connects. What can
//! be fixed is fixed (the soft open-file limit raised, client sockets spread over several
//! 127.0.0.0/8 source addresses for a loopback target, worker processes added); what cannot stops
//! the run with exit code 3 and the remedy, never half-way through a ramp.

use std::net::{IpAddr, Ipv4Addr};

use crate::scenario::Plan;
use crate::scenario::plan::TargetPlan;
use crate::util::process;

/// File descriptors kept free in every process for the runtime, logs and report files.
const FD_MARGIN: u64 = 256;
/// Share of the ephemeral port range one source address is given towards one server port.
/// connect() (Linux ≥ 4.6) looks for a free port among the even half of the range first and
/// only then among the odd half: once a source address's even ports are taken, every further
/// connect() scans all of them in the kernel first (bench-100k stalled at 4 × 14k connections,
/// both cores in `__inet_hash_connect`). So a source address is planned at most 45 % full.
const PORT_SHARE: f64 = 0.45;
/// Resident memory per client the estimate assumes for the harness and for the bundled server.
pub const HARNESS_BYTES_PER_CLIENT: u64 = 16 * 1024;
pub const SERVER_BYTES_PER_CLIENT: u64 = 16 * 1024;
/// What TLS adds at each end of a connection (rustls state and record buffers): tls-storm's
/// 3,500 connections peak at ~186 MiB over TLS and ~83 MiB over plain TCP, both ends in one process.
pub const TLS_BYTES_PER_END: u64 = 16 * 1024;

/// What this machine allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Machine {
    /// Soft open-file limit after raising it to the hard limit.
    pub open_files: u64,
    /// Size of the ephemeral port range.
    pub ephemeral_ports: u64,
    pub memory_available: u64,
}

impl Machine {
    /// Reads (and raises, where allowed) this machine's limits.
    pub fn read() -> Machine {
        Machine {
            open_files: process::raise_open_files_limit(),
            ephemeral_ports: ephemeral_ports().unwrap_or(28_232),
            memory_available: memory_available().unwrap_or(u64::MAX),
        }
    }
}

/// How the run will be laid out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// Worker processes (0: everything in this process).
    pub workers: u32,
    /// Source addresses client sockets are bound to, in turn (empty: the kernel chooses).
    pub sources: Vec<IpAddr>,
}

/// Why the run cannot be carried out on this machine as planned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PreflightError(pub String);

/// Decides the layout of `plan` on `machine`; `workers` is the `--workers` flag, if given.
pub fn check(plan: &Plan, machine: &Machine, workers: Option<u32>) -> Result<Layout, PreflightError> {
    let clients = plan.planned_clients();
    let sockets = clients + plan.publishers.len() as u64;
    let capacity = machine.open_files.saturating_sub(FD_MARGIN).max(1);
    let server_here = plan.bundled_in_process();
    let in_one_process = sockets * if server_here { 2 } else { 1 };
    let workers = match workers {
        Some(workers) => workers,
        None if in_one_process <= capacity => 0,
        None => sockets.div_ceil(capacity) as u32,
    };
    if workers > 0 && sockets.div_ceil(u64::from(workers)) > capacity {
        return Err(PreflightError(format!(
            "{workers} worker processes would hold {} sockets each, over the open-file limit of {}: \
             use --workers {} or more",
            sockets.div_ceil(u64::from(workers)),
            machine.open_files,
            sockets.div_ceil(capacity)
        )));
    }
    if let TargetPlan::Embedded { cluster_workers, .. } = plan.target {
        check_bundled_server(sockets, cluster_workers, workers, capacity, machine)?;
    }
    let sources = sources(plan, machine, sockets)?;
    let tls = if plan.uses_tls() { TLS_BYTES_PER_END } else { 0 };
    let bundled = matches!(plan.target, TargetPlan::Embedded { .. });
    let needed = clients * (HARNESS_BYTES_PER_CLIENT + tls)
        + if bundled { clients * (SERVER_BYTES_PER_CLIENT + tls) } else { 0 };
    if needed > machine.memory_available / 10 * 9 {
        return Err(PreflightError(format!(
            "{clients} clients need about {} MiB here and {} MiB are available: reduce the client counts \
             or spread the run over machines with --shard",
            needed >> 20,
            machine.memory_available >> 20
        )));
    }
    Ok(Layout { workers, sources })
}

/// The bundled server's share of the sockets: in this process (with the clients when there are
/// no workers), or spread over `cluster_workers` server processes, each allowed a tenth more
/// than its even share.
fn check_bundled_server(
    sockets: u64,
    cluster_workers: u32,
    workers: u32,
    capacity: u64,
    machine: &Machine,
) -> Result<(), PreflightError> {
    if cluster_workers > 1 {
        let per_process = with_reuseport_slack(sockets.div_ceil(u64::from(cluster_workers)));
        if per_process > capacity {
            return Err(PreflightError(format!(
                "the bundled server's {cluster_workers} processes would hold up to {per_process} sockets each, \
                 over the open-file limit of {}: set [target] cluster_workers = {} or more",
                machine.open_files,
                with_reuseport_slack(sockets).div_ceil(capacity)
            )));
        }
        return Ok(());
    }
    let server_sockets = if workers == 0 { sockets * 2 } else { sockets };
    if server_sockets > capacity {
        return Err(PreflightError(format!(
            "the bundled server would hold {sockets} sockets in this process ({server_sockets} with the \
             clients), over the open-file limit of {}: set [target] cluster_workers = {} (server processes \
             over a Redis broker started for the run), or point the scenario at an external server with --target",
            machine.open_files,
            with_reuseport_slack(sockets).div_ceil(capacity)
        )));
    }
    Ok(())
}

/// `sockets` plus a tenth: the kernel spreads a `SO_REUSEPORT` group's connections by hash, not
/// evenly.
fn with_reuseport_slack(sockets: u64) -> u64 {
    sockets * 11 / 10
}

/// Checks what this one process needs (its share of the sockets, and the bundled server's when
/// it runs here) and returns the source addresses its clients bind to.
pub fn for_this_process(
    plan: &Plan,
    machine: &Machine,
    shard: Option<(u32, u32)>,
) -> Result<Vec<IpAddr>, PreflightError> {
    let sockets = plan.planned_clients() + plan.publishers.len() as u64;
    let share = sockets.div_ceil(u64::from(shard.map_or(1, |(_, count)| count)));
    let embedded_here = shard.is_none() && plan.bundled_in_process();
    let needed = share * if embedded_here { 2 } else { 1 } + FD_MARGIN;
    if needed > machine.open_files {
        return Err(PreflightError(format!(
            "this process needs {needed} open files and the limit is {}: run with --workers {}",
            machine.open_files,
            sockets.div_ceil(machine.open_files.saturating_sub(FD_MARGIN).max(1))
        )));
    }
    sources(plan, machine, sockets)
}

/// Source addresses for `sockets` connections to the target's one address and port.
fn sources(plan: &Plan, machine: &Machine, sockets: u64) -> Result<Vec<IpAddr>, PreflightError> {
    let per_source = ((machine.ephemeral_ports as f64) * PORT_SHARE) as u64;
    if sockets <= per_source {
        return Ok(Vec::new());
    }
    let needed = sockets.div_ceil(per_source.max(1));
    if !targets_loopback(plan) {
        return Err(PreflightError(format!(
            "{sockets} connections to one server address and port need {needed} source addresses (one \
             reaches about {per_source} with the ephemeral port range of {} ports); this machine binds \
             only one for a remote target: split the run over machines with --shard",
            machine.ephemeral_ports
        )));
    }
    if needed > 250 {
        return Err(PreflightError(format!(
            "{sockets} connections need {needed} loopback source addresses; 250 at most"
        )));
    }
    Ok((1..=needed as u8).map(|last| IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))).collect())
}

/// The bundled server, or a target named by a loopback address (or `localhost`).
fn targets_loopback(plan: &Plan) -> bool {
    match &plan.target {
        TargetPlan::Embedded { .. } => true,
        TargetPlan::External { ws_url, .. } => {
            let host =
                ws_url.split("://").nth(1).unwrap_or_default().split(['/', '?']).next().unwrap_or_default();
            let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
            host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
        }
    }
}

fn ephemeral_ports() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut parts = text.split_whitespace().filter_map(|p| p.parse::<u64>().ok());
    let (low, high) = (parts.next()?, parts.next()?);
    Some(high.saturating_sub(low) + 1)
}

fn memory_available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    line.split_whitespace().nth(1)?.parse::<u64>().ok().map(|kib| kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MACHINE: Machine =
        Machine { open_files: 20_000, ephemeral_ports: 28_232, memory_available: 24 << 30 };

    fn plan(clients: u64, target: Option<&str>) -> Plan {
        plan_with(clients, &target.map_or(String::new(), |t| format!("target = \"{t}\"\n")))
    }

    /// A plan with `target` (TOML before `[auth]`) and one group of `clients`.
    fn plan_with(clients: u64, target: &str) -> Plan {
        let text = format!(
            "name = \"t\"\nduration = \"10s\"\n{target}[auth]\njwt_secret = \"s\"\n\
             [[clients]]\nname = \"c\"\ncount = {clients}\nramp = \"5s\"\ntopics = [\"alerts\"]\n"
        );
        crate::scenario::parse(&text, std::path::Path::new("t"), &Default::default()).unwrap()
    }

    #[test]
    fn a_small_run_fits_in_one_process() {
        assert_eq!(check(&plan(1_000, None), &MACHINE, None), Ok(Layout { workers: 0, sources: vec![] }));
    }

    #[test]
    fn the_bundled_server_and_its_clients_split_into_a_worker() {
        let layout = check(&plan(12_000, None), &MACHINE, None).unwrap();
        assert_eq!(layout.workers, 1, "server here, clients in one worker");
        let err = check(&plan(30_000, None), &MACHINE, None).unwrap_err();
        assert!(err.0.contains("cluster_workers = 2"), "{err}");
    }

    #[test]
    fn a_bundled_server_cluster_holds_its_share_in_each_server_process() {
        let layout = check(&plan_with(100_000, "[target]\ncluster_workers = 6\n"), &MACHINE, None).unwrap();
        assert_eq!(layout.workers, 6, "the clients alone need six processes");
        assert_eq!(layout.sources.len(), 8, "each at most the even half of the port range");
        let err = check(&plan_with(100_000, "[target]\ncluster_workers = 5\n"), &MACHINE, None).unwrap_err();
        assert!(err.0.contains("cluster_workers = 6"), "{err}");
    }

    #[test]
    fn many_clients_of_an_external_loopback_target_get_workers_and_source_addresses() {
        let layout = check(&plan(60_000, Some("ws://127.0.0.1:9000/v1/ws")), &MACHINE, None).unwrap();
        assert_eq!(layout.workers, 4);
        assert_eq!(layout.sources.len(), 5);
        assert_eq!(layout.sources[4], IpAddr::V4(Ipv4Addr::new(127, 0, 0, 5)));
    }

    #[test]
    fn a_remote_target_cannot_get_more_source_addresses() {
        let err = check(&plan(60_000, Some("ws://10.1.2.3:9000/v1/ws")), &MACHINE, None).unwrap_err();
        assert!(err.0.contains("--shard"), "{err}");
    }

    #[test]
    fn too_few_workers_or_too_little_memory_are_refused() {
        let err = check(&plan(60_000, Some("ws://127.0.0.1:1/v1/ws")), &MACHINE, Some(2)).unwrap_err();
        assert!(err.0.contains("--workers 4"), "{err}");
        let small = Machine { memory_available: 100 << 20, ..MACHINE };
        assert!(
            check(&plan(10_000, Some("ws://127.0.0.1:1/v1/ws")), &small, None).unwrap_err().0.contains("MiB")
        );
    }

    #[test]
    fn tls_connections_are_counted_with_their_buffers() {
        let small = Machine { memory_available: 100 << 20, ..MACHINE };
        assert!(check(&plan(4_000, Some("ws://127.0.0.1:1/v1/ws")), &small, None).is_ok());
        let err = check(&plan(4_000, Some("wss://127.0.0.1:1/v1/ws")), &small, None).unwrap_err();
        assert!(err.0.contains("MiB"), "{err}");
    }
}
