//! Measures the reference server's resident memory per idle, subscribed WebSocket connection,
//! and which heap allocations it is made of.
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
//!
//! The child counts its live heap allocations (a counting global allocator in front of the
//! system's) and reports them when asked on its stdin (`stats`), so the output also splits the
//! per-connection cost into live heap bytes and allocations by size class, and glibc's view
//! (`mallinfo2`: in use, free inside the heap) shows what the heap holds beyond that. The
//! counting itself costs two relaxed atomic adds per allocation and no memory per allocation.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use openframe_harness::protocol::jwt::{self, Claims, DEFAULT_DEV_SECRET};
use openframe_harness::server::{self, ServerConfig};
use openframe_harness::util::process;
use openframe_harness::wire::{OutFrame, RawSocket, upgrade_request};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const WARM_UP: usize = 200;
const WAIT: Duration = Duration::from_secs(10);

#[global_allocator]
static ALLOCATOR: counting::Counting = counting::Counting;

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
    let mut server = Child {
        stdin: child.stdin.take().context("child stdin")?,
        stdout: BufReader::new(child.stdout.take().context("child stdout")?),
    };
    let mut line = String::new();
    server.stdout.read_line(&mut line)?;
    let addr = line.trim().to_owned();
    let result = runtime.block_on(measure(&addr, connections, &mut server));
    drop(server);
    let _ = child.wait();
    result
}

/// The child's pipes: `stats` on its stdin, one line of [`counting::Snapshot`] back.
struct Child {
    stdin: std::process::ChildStdin,
    stdout: BufReader<std::process::ChildStdout>,
}

impl Child {
    fn heap(&mut self) -> anyhow::Result<counting::Snapshot> {
        writeln!(self.stdin, "stats")?;
        let mut line = String::new();
        self.stdout.read_line(&mut line)?;
        counting::Snapshot::parse(&line).with_context(|| format!("bad stats line {line:?}"))
    }
}

/// The child: the reference server on port 0, its address on stdout, a heap snapshot for every
/// `stats` line on stdin, until stdin closes.
async fn serve() -> anyhow::Result<()> {
    process::raise_open_files_limit();
    let config = ServerConfig { status_interval: None, ..ServerConfig::default() };
    let handle = server::start("127.0.0.1:0".parse()?, config).await?;
    println!("{}", handle.local_addr());
    let mut stdin = tokio::io::BufReader::new(tokio::io::stdin());
    let mut line = String::new();
    while stdin.read_line(&mut line).await? > 0 {
        if line.trim() == "stats" {
            println!("{}", counting::Snapshot::take());
        }
        line.clear();
    }
    handle.shutdown().await;
    Ok(())
}

async fn measure(addr: &str, connections: usize, server: &mut Child) -> anyhow::Result<()> {
    let token = jwt::mint(DEFAULT_DEV_SECRET.as_bytes(), &Claims::for_subject("memory", 3600, false));
    let baseline = server_rss(addr).await?;
    let mut sockets = Vec::with_capacity(connections);
    for _ in 0..WARM_UP {
        sockets.push(open(addr, &token).await?);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let warm = server_rss(addr).await?;
    let warm_heap = server.heap()?;
    for i in WARM_UP..connections {
        sockets.push(open(addr, &token).await.with_context(|| format!("connection {i}"))?);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let loaded = server_rss(addr).await?;
    let loaded_heap = server.heap()?;
    let measured = (connections - WARM_UP) as f64;
    let per_connection = (loaded.saturating_sub(warm)) as f64 / measured;
    println!("connections: {connections}");
    println!(
        "server RSS: idle {} KiB, after {WARM_UP} {} KiB, after {connections} {} KiB",
        baseline / 1024,
        warm / 1024,
        loaded / 1024
    );
    loaded_heap.print_growth(&warm_heap, measured);
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

/// Live heap allocations by size class, counted by a global allocator in front of `System`.
mod counting {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::fmt;
    use std::sync::atomic::{AtomicI64, Ordering::Relaxed};

    /// Size classes: ≤ 16 B, ≤ 32 B, … ≤ 64 KiB, larger.
    const CLASSES: usize = 14;

    static LIVE_COUNT: [AtomicI64; CLASSES] = [const { AtomicI64::new(0) }; CLASSES];
    static LIVE_BYTES: [AtomicI64; CLASSES] = [const { AtomicI64::new(0) }; CLASSES];

    fn class(size: usize) -> usize {
        let bits = size.max(16).next_power_of_two().trailing_zeros() as usize;
        (bits - 4).min(CLASSES - 1)
    }

    fn class_name(class: usize) -> String {
        match class {
            c if c == CLASSES - 1 => format!("> {} KiB", (16usize << (c - 1)) / 1024),
            c if (16usize << c) >= 1024 => format!("≤ {} KiB", (16usize << c) / 1024),
            c => format!("≤ {} B", 16usize << c),
        }
    }

    fn count(size: usize, sign: i64) {
        let class = class(size);
        LIVE_COUNT[class].fetch_add(sign, Relaxed);
        LIVE_BYTES[class].fetch_add(sign * size as i64, Relaxed);
    }

    pub struct Counting;

    // SAFETY: every call is forwarded to `System` unchanged; the counters have no effect on it.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            // SAFETY: the caller's contract is passed on as is.
            let ptr = unsafe { System.alloc(layout) };
            if !ptr.is_null() {
                count(layout.size(), 1);
            }
            ptr
        }

        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            // SAFETY: the caller's contract is passed on as is.
            let ptr = unsafe { System.alloc_zeroed(layout) };
            if !ptr.is_null() {
                count(layout.size(), 1);
            }
            ptr
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: the caller's contract is passed on as is.
            unsafe { System.dealloc(ptr, layout) };
            count(layout.size(), -1);
        }

        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            // SAFETY: the caller's contract is passed on as is.
            let moved = unsafe { System.realloc(ptr, layout, new_size) };
            if !moved.is_null() {
                count(layout.size(), -1);
                count(new_size, 1);
            }
            moved
        }
    }

    /// The live allocations at one moment, and glibc's in-use and free heap bytes.
    #[derive(Debug, Clone, PartialEq)]
    pub struct Snapshot {
        count: [i64; CLASSES],
        bytes: [i64; CLASSES],
        malloc_in_use: i64,
        malloc_free: i64,
    }

    impl Snapshot {
        pub fn take() -> Snapshot {
            // SAFETY: mallinfo2 only reads the allocator's statistics.
            let info = unsafe { libc::mallinfo2() };
            Snapshot {
                count: std::array::from_fn(|c| LIVE_COUNT[c].load(Relaxed)),
                bytes: std::array::from_fn(|c| LIVE_BYTES[c].load(Relaxed)),
                malloc_in_use: i64::try_from(info.uordblks + info.hblkhd).unwrap_or(i64::MAX),
                malloc_free: i64::try_from(info.fordblks).unwrap_or(i64::MAX),
            }
        }

        /// Reads what `Display` wrote.
        pub fn parse(line: &str) -> Option<Snapshot> {
            let numbers: Vec<i64> = line.split_whitespace().map(str::parse).collect::<Result<_, _>>().ok()?;
            if numbers.len() != 2 * CLASSES + 2 {
                return None;
            }
            Some(Snapshot {
                count: std::array::from_fn(|c| numbers[c]),
                bytes: std::array::from_fn(|c| numbers[CLASSES + c]),
                malloc_in_use: numbers[2 * CLASSES],
                malloc_free: numbers[2 * CLASSES + 1],
            })
        }

        /// Prints what grew from `before` to `self`, divided by `per` (the connections added).
        pub fn print_growth(&self, before: &Snapshot, per: f64) {
            let total = |s: &Snapshot| (s.count.iter().sum::<i64>(), s.bytes.iter().sum::<i64>());
            let ((count_after, bytes_after), (count_before, bytes_before)) = (total(self), total(before));
            println!(
                "live heap per connection: {:.0} B in {:.1} allocations; glibc in use {:.0} B, free in the heap {:.0} B",
                (bytes_after - bytes_before) as f64 / per,
                (count_after - count_before) as f64 / per,
                (self.malloc_in_use - before.malloc_in_use) as f64 / per,
                (self.malloc_free - before.malloc_free) as f64 / per,
            );
            for class in 0..CLASSES {
                let count = (self.count[class] - before.count[class]) as f64 / per;
                let bytes = (self.bytes[class] - before.bytes[class]) as f64 / per;
                if count.abs() >= 0.05 {
                    println!("  {:>9}: {count:5.1} allocations, {bytes:6.0} B", class_name(class));
                }
            }
        }
    }

    impl fmt::Display for Snapshot {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            for n in self.count.iter().chain(&self.bytes) {
                write!(f, "{n} ")?;
            }
            write!(f, "{} {}", self.malloc_in_use, self.malloc_free)
        }
    }
}
