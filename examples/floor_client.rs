//! The floor of the load-generator comparison (`bench/compare-tools.sh`): the least a WebSocket
//! client can do for the benchmark's workload, so the other tools' costs have something to be
//! measured against.
//!
//! ```sh
//! TOKEN=$(cargo run --release -q -- token)
//! cargo run --release --example floor_client -- --url ws://127.0.0.1:8080/v1/ws --token "$TOKEN" \
//!     --clients 1000 --ramp-s 10 --duration-s 48
//! ```
//!
//! It opens `--clients` connections spread evenly over `--ramp-s` seconds (the token in the
//! `Authorization` header, tungstenite buffers of a few KiB), waits for `connection_established`,
//! subscribes to `alerts`, and from `subscription_confirmed` on counts every text frame without
//! parsing it. After `--duration-s` seconds from its start every connection closes and one JSON
//! line with the counts goes to stdout. It judges nothing and measures no latency: it is a floor,
//! not a harness. One thread (tokio's current-thread runtime); every wait is bounded.

use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep_until, timeout};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Time allowed for a connect, an answer the protocol promises, or a close.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);
const SUBSCRIBE: &str = r#"{"type":"subscribe","topics":["alerts"],"id":"floor"}"#;

#[derive(Debug, Parser)]
#[command(about = "Counts broadcast events on N WebSocket connections; the floor of bench/compare-tools.sh")]
struct Args {
    /// The server's WebSocket URL, e.g. ws://127.0.0.1:8080/v1/ws.
    #[arg(long)]
    url: String,
    /// A valid token for the server (sent as `Authorization: Bearer`).
    #[arg(long)]
    token: String,
    /// Connections to open.
    #[arg(long, default_value_t = 1000)]
    clients: u64,
    /// Seconds over which the connections are opened, evenly spread.
    #[arg(long, default_value_t = 10.0)]
    ramp_s: f64,
    /// Seconds from the start after which every connection closes.
    #[arg(long, default_value_t = 30.0)]
    duration_s: f64,
}

type Ws = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// What one connection saw.
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    /// Upgraded and got `connection_established`.
    established: u64,
    /// Got `subscription_confirmed`.
    subscribed: u64,
    /// Text frames after `subscription_confirmed` (with one subscription to `alerts` and the
    /// server's heartbeat off, these are the broadcast events).
    events: u64,
    /// Could not connect, or the first message was not `connection_established`.
    failed: u64,
    /// Subscribed, and the server closed (or the stream broke) before the end.
    closed_early: u64,
}

impl std::ops::AddAssign for Counts {
    fn add_assign(&mut self, o: Counts) {
        self.established += o.established;
        self.subscribed += o.subscribed;
        self.events += o.events;
        self.failed += o.failed;
        self.closed_early += o.closed_early;
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(args.clients > 0, "--clients must be at least 1");
    anyhow::ensure!(args.ramp_s >= 0.0 && args.duration_s > args.ramp_s, "need 0 <= --ramp-s < --duration-s");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let (counts, elapsed) = runtime.block_on(run(&args))?;
    println!(
        r#"{{"tool":"floor","clients":{},"established":{},"subscribed":{},"events":{},"failed":{},"closed_early":{},"sustained":{},"elapsed_s":{:.3}}}"#,
        args.clients,
        counts.established,
        counts.subscribed,
        counts.events,
        counts.failed,
        counts.closed_early,
        counts.subscribed.saturating_sub(counts.closed_early),
        elapsed.as_secs_f64()
    );
    Ok(())
}

async fn run(args: &Args) -> anyhow::Result<(Counts, Duration)> {
    let mut request = args.url.as_str().into_client_request().context("invalid --url")?;
    let authorization =
        HeaderValue::from_str(&format!("Bearer {}", args.token)).context("invalid --token")?;
    request.headers_mut().insert("authorization", authorization);
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(args.duration_s);
    let mut tasks = JoinSet::new();
    for i in 0..args.clients {
        let at = start + Duration::from_secs_f64(args.ramp_s * i as f64 / args.clients as f64);
        tasks.spawn(client(request.clone(), at, end));
    }
    let mut total = Counts::default();
    while let Some(counts) = tasks.join_next().await {
        total += counts.context("a client task failed")?;
    }
    Ok((total, start.elapsed()))
}

/// One connection from `at` to `end`.
async fn client(
    request: tokio_tungstenite::tungstenite::handshake::client::Request,
    at: Instant,
    end: Instant,
) -> Counts {
    let mut counts = Counts::default();
    sleep_until(at).await;
    let config = WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_write_buffer_size(64 * 1024);
    let connected =
        timeout(ANSWER_TIMEOUT, tokio_tungstenite::connect_async_with_config(request, Some(config), true))
            .await;
    let Ok(Ok((mut ws, _))) = connected else {
        counts.failed = 1;
        return counts;
    };
    let first = timeout(ANSWER_TIMEOUT, next_text(&mut ws)).await.ok().flatten();
    if !first.is_some_and(|text| text.contains("\"connection_established\"")) {
        counts.failed = 1;
        return counts;
    }
    counts.established = 1;
    if ws.send(Message::Text(SUBSCRIBE.into())).await.is_err() {
        // Established, never subscribed: counted in neither `subscribed` nor `closed_early`.
        return counts;
    }
    let deadline = sleep_until(end);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            _ = &mut deadline => break,
            message = ws.next() => match message {
                Some(Ok(Message::Text(text))) => {
                    if counts.subscribed == 1 {
                        counts.events += 1;
                    } else if text.contains("\"subscription_confirmed\"") {
                        counts.subscribed = 1;
                    }
                }
                Some(Ok(Message::Close(_)) | Err(_)) | None => {
                    counts.closed_early = counts.subscribed;
                    return counts;
                }
                Some(Ok(_)) => {}
            },
        }
    }
    let _ = timeout(CLOSE_TIMEOUT, ws.close(None)).await;
    counts
}

/// The next text message, skipping control frames; `None` when the connection ends.
async fn next_text(ws: &mut Ws) -> Option<Utf8Bytes> {
    loop {
        match ws.next().await? {
            Ok(Message::Text(text)) => return Some(text),
            Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => continue,
            _ => return None,
        }
    }
}
