//! `serve`: the bundled reference server in the foreground until SIGINT or SIGTERM (CLI.md):
//! the first closes every connection with 1001, a second aborts ([`Shutdown`]).
//!
//! - alone: one process, one hub;
//! - `--broker URL`: one process of a cluster (`server::cluster`), with any number of others on
//!   any machines that name the same broker;
//! - `--workers N`: N such processes on one port, started and supervised by this one
//!   ([`supervisor`]); each child runs with the hidden `--worker I`.

mod supervisor;

use std::io::Write;

use anyhow::{Context, anyhow};
use tokio::net::TcpListener;

use super::shutdown::Shutdown;
use crate::cli::ServeArgs;
use crate::commands::outcome::Outcome;
use crate::protocol::jwt::DEFAULT_DEV_SECRET;
use crate::server::cluster::BrokerConfig;
use crate::server::{self, Faults, ServerConfig, ServerError, ServerHandle};
use crate::tls::ServerTls;
use crate::util::process;

pub async fn execute(args: ServeArgs, shutdown: Shutdown) -> anyhow::Result<Outcome> {
    if args.workers > 1 {
        return supervisor::run(args, shutdown).await;
    }
    // Every connection is a file descriptor: take all the kernel allows this process.
    let open_files = process::raise_open_files_limit();
    let config = config_from(&args)?;
    if !config.faults.is_empty() && args.worker.is_none_or(|i| i == 0) {
        eprintln!("WARNING: faults injected on purpose: {:?}", config.faults);
    }
    let handle = match args.worker {
        Some(index) => start_worker(&args, config, index).await?,
        None => {
            let handle = server::start(args.addr, config).await?;
            print_banner(&handle, open_files);
            handle
        }
    };
    tokio::select! {
        () = shutdown.draining() => {}
        _ = handle.stopping() => {}
    }
    let failure = handle.failure().map(str::to_owned);
    handle.shutdown().await;
    match failure {
        Some(reason) => Err(anyhow!("the server stopped: {reason}")),
        None => Ok(Outcome::Passed),
    }
}

/// The server's configuration from the flags.
fn config_from(args: &ServeArgs) -> anyhow::Result<ServerConfig> {
    Ok(ServerConfig {
        jwt_secret: args
            .secret
            .jwt_secret
            .clone()
            .unwrap_or_else(|| DEFAULT_DEV_SECRET.to_owned())
            .into_bytes(),
        max_message_bytes: args.max_message_size,
        handshake_timeout: args.handshake_timeout,
        ping_interval: args.ping_interval,
        status_interval: Some(args.status_interval).filter(|d| !d.is_zero()),
        outbound_queue: args.queue,
        max_connections: args.max_connections,
        socket_send_buffer: args.socket_send_buffer,
        faults: Faults::parse_all(&args.faults)?,
        tls: match (&args.tls_cert, &args.tls_key) {
            (Some(cert), Some(key)) => Some(ServerTls::from_pem_files(cert, key)?),
            _ => None,
        },
        broker: args
            .broker
            .as_ref()
            .map(|url| BrokerConfig { url: url.clone(), prefix: args.broker_prefix.clone() }),
        ..ServerConfig::default()
    })
}

fn print_banner(handle: &ServerHandle, open_files: u64) {
    eprintln!("openframe reference server listening on {}", handle.ws_url());
    eprintln!(
        "  open files: {open_files} (at most about that many connections; more processes: --workers N)"
    );
    if let Some(link) = handle.cluster() {
        eprintln!("  cluster: broker {}, process {:016x}", link.broker(), link.origin());
    }
    eprintln!(
        "  health: {0}/healthz   metrics: {0}/metrics   publish: POST {0}/v1/events",
        handle.http_url()
    );
}

/// A child of `serve --workers N`: listens on the shared address with `SO_REUSEPORT`, and on an
/// address of its own (same IP, a free port) so that its `/metrics` can be read and its
/// connections told apart. Reports `ready <own address>` on stdout for the parent.
async fn start_worker(args: &ServeArgs, config: ServerConfig, index: u32) -> anyhow::Result<ServerHandle> {
    let addr = args.addr;
    let shared_listener =
        server::bind_reuse_port(addr).map_err(|source| ServerError::Bind { addr, cause: source })?;
    let own_addr = std::net::SocketAddr::new(addr.ip(), 0);
    let own = TcpListener::bind(own_addr)
        .await
        .map_err(|source| ServerError::Bind { addr: own_addr, cause: source })?;
    let own_addr = own.local_addr().context("reading the worker's own address")?;
    let handle = server::start_on(shared_listener, config).await?;
    handle.serve_also(own);
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{} {own_addr}", supervisor::READY).context("reporting to the parent")?;
    stdout.flush().context("reporting to the parent")?;
    tracing::debug!(index, %own_addr, "worker ready");
    Ok(handle)
}
