//! Measures the reference server's resident memory per idle, subscribed WebSocket connection.
//!
//! ```sh
//! cargo run --release --example conn_memory -- 5000
//! ```
//!
//! The server runs in a child process (this program re-executed with `--serve`), so the
//! clients' own memory is not counted; its RSS is read from `openframe_process_resident_memory_bytes`
//! on `/metrics`. The figure is (RSS after N connections − RSS after a warm-up of 200) / (N − 200),
//! each connection upgraded, past `connection_established`, subscribed to `devices` and `alerts`
//! with a filter, and then idle. The clients are raw sockets (`wire::RawSocket`), which hold no
//! buffer beyond what they have read.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use openframe_harness::protocol::jwt::{self, Claims, DEFAULT_DEV_SECRET};
use openframe_harness::server::{self, ServerConfig};
use openframe_harness::util::process;
use openframe_harness::wire::{OutFrame, RawSocket, upgrade_request};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const WARM_UP: usize = 200;
const WAIT: Duration = Duration::from_secs(10);

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let runtime = tokio::runtime::Runtime::new()?;
    if args.get(1).map(String::as_str) == Some("--serve") {
        return runtime.block_on(serve());
    }
    let connections: usize = args.get(1).map(|n| n.parse()).transpose()?.unwrap_or(5_000);
    if connections <= WARM_UP {
        bail!("measure more than {WARM_UP} connections");
    }
    process::raise_open_files_limit();
    let mut child = Command::new(std::env::current_exe()?)
        .arg("--serve")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("starting the server process")?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().context("child stdout")?).read_line(&mut line)?;
    let addr = line.trim().to_owned();
    let result = runtime.block_on(measure(&addr, connections));
    drop(child.stdin.take());
    let _ = child.wait();
    result
}

/// The child: the reference server on port 0, its address on stdout, until stdin closes.
async fn serve() -> anyhow::Result<()> {
    process::raise_open_files_limit();
    let config = ServerConfig { status_interval: None, ..ServerConfig::default() };
    let handle = server::start("127.0.0.1:0".parse()?, config).await?;
    println!("{}", handle.local_addr());
    let mut stdin = tokio::io::stdin();
    let mut sink = [0u8; 64];
    while stdin.read(&mut sink).await? > 0 {}
    handle.shutdown().await;
    Ok(())
}

async fn measure(addr: &str, connections: usize) -> anyhow::Result<()> {
    let token = jwt::mint(DEFAULT_DEV_SECRET.as_bytes(), &Claims::for_subject("memory", 3600, false));
    let baseline = server_rss(addr).await?;
    let mut sockets = Vec::with_capacity(connections);
    for _ in 0..WARM_UP {
        sockets.push(open(addr, &token).await?);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let warm = server_rss(addr).await?;
    for i in WARM_UP..connections {
        sockets.push(open(addr, &token).await.with_context(|| format!("connection {i}"))?);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let loaded = server_rss(addr).await?;
    let per_connection = (loaded.saturating_sub(warm)) as f64 / (connections - WARM_UP) as f64;
    println!("connections: {connections}");
    println!(
        "server RSS: idle {} KiB, after {WARM_UP} {} KiB, after {connections} {} KiB",
        baseline / 1024,
        warm / 1024,
        loaded / 1024
    );
    println!("per idle subscribed connection: {:.1} KiB", per_connection / 1024.0);
    drop(sockets);
    Ok(())
}

/// One raw connection, upgraded, established and subscribed.
async fn open(addr: &str, token: &str) -> anyhow::Result<RawSocket> {
    let bearer = format!("Bearer {token}");
    let request = upgrade_request(addr, "/v1/ws", &[("Authorization", &bearer)]);
    let (mut socket, response) = RawSocket::connect(addr, request.as_bytes(), WAIT).await?;
    if response.status != 101 {
        bail!("upgrade answered {}", response.status);
    }
    expect(&mut socket, "connection_established").await?;
    let subscribe = r#"{"type":"subscribe","topics":["devices","alerts"],"filters":{"severity":["high"]}}"#;
    socket.send(&OutFrame::text(subscribe)).await?;
    expect(&mut socket, "subscription_confirmed").await?;
    Ok(socket)
}

async fn expect(socket: &mut RawSocket, kind: &str) -> anyhow::Result<()> {
    match socket.read_text(WAIT).await? {
        Some(text) if text.contains(kind) => Ok(()),
        other => bail!("expected {kind}, got {other:?}"),
    }
}

/// The server's resident memory, from its `/metrics`.
async fn server_rss(addr: &str) -> anyhow::Result<u64> {
    let mut stream = TcpStream::connect(addr).await?;
    let request = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    response
        .lines()
        .find_map(|l| l.strip_prefix("openframe_process_resident_memory_bytes "))
        .and_then(|v| v.trim().parse().ok())
        .context("no openframe_process_resident_memory_bytes in /metrics")
}
