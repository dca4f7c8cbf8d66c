//! `serve`: the bundled reference server in the foreground until SIGINT or SIGTERM (CLI.md).

use anyhow::Context;
use tokio::signal::unix::{SignalKind, signal};

use crate::cli::ServeArgs;
use crate::error::Outcome;
use crate::protocol::jwt::DEFAULT_DEV_SECRET;
use crate::server::{self, Faults, ServerConfig};
use crate::tls::ServerTls;

pub async fn execute(args: ServeArgs) -> anyhow::Result<Outcome> {
    let faults = Faults::parse_all(&args.faults)?;
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(ServerTls::from_pem_files(cert, key)?),
        _ => None,
    };
    let config = ServerConfig {
        jwt_secret: args.secret.jwt_secret.unwrap_or_else(|| DEFAULT_DEV_SECRET.to_owned()).into_bytes(),
        max_message_bytes: args.max_message_size,
        handshake_timeout: args.handshake_timeout,
        ping_interval: args.ping_interval,
        status_interval: Some(args.status_interval).filter(|d| !d.is_zero()),
        outbound_queue: args.queue,
        max_connections: args.max_connections,
        socket_send_buffer: args.socket_send_buffer,
        faults,
        tls,
        ..ServerConfig::default()
    };
    if !config.faults.is_empty() {
        eprintln!("WARNING: faults injected on purpose: {:?}", config.faults);
    }
    let mut terminate = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let handle = server::start(args.addr, config).await?;
    eprintln!("openframe reference server listening on {}", handle.ws_url());
    eprintln!(
        "  health: {0}/healthz   metrics: {0}/metrics   publish: POST {0}/v1/events",
        handle.http_url()
    );
    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
    eprintln!("shutting down: closing every connection with 1001");
    handle.shutdown().await;
    Ok(Outcome::Passed)
}
