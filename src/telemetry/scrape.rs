//! Scraping: the metrics URL of each process (parsed by the `http` crate's `Uri`), one `GET` per
//! process per second through `hyper`'s HTTP/1 client over a plain or TLS stream, bounded by
//! [`SCRAPE_TIMEOUT`](super::SCRAPE_TIMEOUT) and [`MAX_BODY_BYTES`].
//!
//! It must not retry or wait past the timeout: a second without an answer is a second without
//! a sample, and the run goes on.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::join_all;
use http::Uri;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use prometheus_parse::Scrape;
use tokio::net::TcpStream;

use super::SCRAPE_TIMEOUT;
use super::sample::reduce;
use crate::results::server_sample::{ScrapeReport, ServerSample};
use crate::tls::client::server_name;
use crate::tls::stamped::StampedTcp;
use crate::tls::{ClientStream, ClientTls, ClientTlsOptions, Trust};

/// Largest exposition read, in bytes (the bundled server's is a few KiB).
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// Why one scrape gave no sample.
#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    #[error("invalid metrics URL {0:?}: expected http://HOST:PORT/PATH or https://HOST:PORT/PATH")]
    InvalidUrl(String),
    #[error("the scrape of {0} took longer than {SCRAPE_TIMEOUT:?}")]
    Slow(String),
    #[error("scraping {url}: cannot connect: {cause}")]
    Connect { url: String, cause: std::io::Error },
    #[error("scraping {url}: {cause}")]
    Tls { url: String, cause: crate::tls::TlsError },
    #[error("scraping {url}: {cause}")]
    Http { url: String, cause: hyper::Error },
    #[error("scraping {url}: the body is not readable text of at most {MAX_BODY_BYTES} bytes")]
    Body { url: String },
    #[error("scraping {url}: HTTP status {status}")]
    Status { url: String, status: u16 },
}

/// One process's metrics endpoint.
#[derive(Debug, Clone)]
pub struct MetricsUrl {
    /// As given (or derived), for messages.
    pub url: String,
    host: String,
    port: u16,
    authority: String,
    path_and_query: String,
    https: bool,
}

/// Parses an `http://` or `https://` metrics URL; without a path, `/metrics`.
pub fn parse_metrics_url(url: &str) -> Result<MetricsUrl, ScrapeError> {
    let invalid = || ScrapeError::InvalidUrl(url.to_owned());
    let uri: Uri = url.parse().map_err(|_| invalid())?;
    let https = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => return Err(invalid()),
    };
    let authority = uri.authority().ok_or_else(invalid)?;
    let host = authority.host().trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(invalid());
    }
    // `Uri` accepts any text after the colon; the port must be a number.
    let port = match authority.as_str().strip_prefix(authority.host()).and_then(|r| r.strip_prefix(':')) {
        Some(port) => port.parse::<u16>().map_err(|_| invalid())?,
        None if https => 443,
        None => 80,
    };
    let path_and_query = match uri.path_and_query().map(|p| p.as_str()) {
        None | Some("/") | Some("") => "/metrics".to_owned(),
        Some(path) => path.to_owned(),
    };
    Ok(MetricsUrl {
        url: url.to_owned(),
        host: host.to_owned(),
        port,
        authority: authority.as_str().to_owned(),
        path_and_query,
        https,
    })
}

/// The `/metrics` next to a WebSocket target's endpoint: `ws://h:p/v1/ws` → `http://h:p/metrics`.
pub fn metrics_url_next_to(ws_url: &str) -> Option<String> {
    crate::util::url::derive_http_url(ws_url).map(|origin| format!("{origin}/metrics"))
}

/// How the scrapes of a run went, shared with whoever reports them.
#[derive(Debug, Default)]
pub struct ScrapeCounts {
    /// Seconds with a sample.
    pub scraped: AtomicU64,
    /// Seconds skipped because a process answered slower than the timeout.
    pub skipped_slow: AtomicU64,
    /// Seconds without a sample because a scrape failed.
    pub failed: AtomicU64,
}

/// Scrapes every process of one target.
#[derive(Debug, Clone)]
pub struct Scraper {
    processes: Vec<MetricsUrl>,
    /// For `https://` endpoints.
    tls: Option<ClientTls>,
    counts: Arc<ScrapeCounts>,
}

impl Scraper {
    /// A scraper of these processes' metrics endpoints (one for a single server); `tls` checks
    /// an `https://` endpoint's certificate (the platform's roots when `None`).
    pub fn new(processes: Vec<MetricsUrl>, tls: Option<ClientTls>) -> Scraper {
        Scraper { processes, tls, counts: Arc::default() }
    }

    pub fn counts(&self) -> Arc<ScrapeCounts> {
        Arc::clone(&self.counts)
    }

    /// The URLs scraped, in order.
    pub fn urls(&self) -> impl Iterator<Item = &str> {
        self.processes.iter().map(|t| t.url.as_str())
    }

    /// How the scrapes went so far, for the report.
    pub fn report(&self) -> ScrapeReport {
        ScrapeReport {
            urls: self.urls().map(str::to_owned).collect(),
            scraped: self.counts.scraped.load(Relaxed),
            failed: self.counts.failed.load(Relaxed),
            skipped_slow: self.counts.skipped_slow.load(Relaxed),
            timeout_ms: SCRAPE_TIMEOUT.as_millis() as u64,
            // Known once the run's intervals are.
            rss_growth_pct: 0.0,
        }
    }

    /// One scrape of every process at once; the summed sample, or why there is none this
    /// second (counted in [`ScrapeCounts`]).
    pub async fn scrape(&self) -> Result<ServerSample, ScrapeError> {
        let results = join_all(self.processes.iter().map(|p| self.scrape_one(p, SCRAPE_TIMEOUT))).await;
        let mut samples = Vec::with_capacity(results.len());
        for result in results {
            match result {
                Ok(body) => samples.push(reduce(&parse(&body))),
                Err(error) => {
                    let counter = if matches!(error, ScrapeError::Slow(_)) {
                        &self.counts.skipped_slow
                    } else {
                        &self.counts.failed
                    };
                    counter.fetch_add(1, Relaxed);
                    return Err(error);
                }
            }
        }
        self.counts.scraped.fetch_add(1, Relaxed);
        Ok(ServerSample::sum(samples))
    }

    /// Whether the first process answers a scrape now (for an external target's `/metrics`
    /// next to its `/v1/ws`, which may not exist): tried with a longer deadline than a
    /// per-second scrape, and not counted.
    pub async fn answers(&self, wait: Duration) -> bool {
        let Some(first) = self.processes.first() else { return false };
        self.scrape_one(first, wait).await.is_ok()
    }

    /// The body of one `GET`, within `wait`.
    async fn scrape_one(&self, target: &MetricsUrl, wait: Duration) -> Result<String, ScrapeError> {
        match tokio::time::timeout(wait, self.get(target)).await {
            Ok(result) => result,
            Err(_) => Err(ScrapeError::Slow(target.url.clone())),
        }
    }

    async fn get(&self, target: &MetricsUrl) -> Result<String, ScrapeError> {
        let url = || target.url.clone();
        let tcp = TcpStream::connect((target.host.as_str(), target.port))
            .await
            .map_err(|cause| ScrapeError::Connect { url: url(), cause })?;
        let _ = tcp.set_nodelay(true);
        let tcp = StampedTcp::plain(tcp);
        let stream: ClientStream = if target.https {
            let tls = match &self.tls {
                Some(tls) => tls.clone(),
                None => ClientTls::new(&ClientTlsOptions { trust: Trust::Platform, insecure: false })
                    .map_err(|cause| ScrapeError::Tls { url: url(), cause })?,
            };
            let name = server_name(&target.host).map_err(|cause| ScrapeError::Tls { url: url(), cause })?;
            // The outer timeout bounds the handshake; this one only has to be longer.
            let (stream, _) = tls
                .handshake(tcp, &name, SCRAPE_TIMEOUT * 40)
                .await
                .map_err(|cause| ScrapeError::Tls { url: url(), cause })?;
            stream.into()
        } else {
            tcp.into()
        };
        let (mut sender, connection) = http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
            .await
            .map_err(|cause| ScrapeError::Http { url: url(), cause })?;
        let connection = tokio::spawn(connection);
        let request = http::Request::get(target.path_and_query.as_str())
            .header(http::header::HOST, target.authority.as_str())
            .header(http::header::ACCEPT, "text/plain; version=0.0.4")
            .body(Empty::new())
            .map_err(|_| ScrapeError::InvalidUrl(url()))?;
        let result = async {
            let response = sender
                .send_request(request)
                .await
                .map_err(|cause| ScrapeError::Http { url: url(), cause })?;
            let status = response.status().as_u16();
            let body = Limited::new(response.into_body(), MAX_BODY_BYTES)
                .collect()
                .await
                .map_err(|_| ScrapeError::Body { url: url() })?
                .to_bytes();
            if status != 200 {
                return Err(ScrapeError::Status { url: url(), status });
            }
            String::from_utf8(body.to_vec()).map_err(|_| ScrapeError::Body { url: url() })
        }
        .await;
        connection.abort();
        result
    }
}

/// The exposition's samples; lines the parser cannot read are skipped, not fatal.
fn parse(body: &str) -> Scrape {
    let lines = body.lines().map(|l| Ok(l.to_owned()));
    // Reading lines from a string cannot fail, so neither can this.
    Scrape::parse(lines).unwrap_or_else(|_| Scrape { docs: Default::default(), samples: Vec::new() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn metrics_urls_are_http_or_https() {
        let target = parse_metrics_url("http://127.0.0.1:9000/metrics").unwrap();
        assert_eq!(
            (target.authority.as_str(), target.path_and_query.as_str()),
            ("127.0.0.1:9000", "/metrics")
        );
        assert_eq!(parse_metrics_url("http://127.0.0.1:9000").unwrap().path_and_query, "/metrics");
        assert_eq!(parse_metrics_url("http://h:1/m?x=1").unwrap().path_and_query, "/m?x=1");
        assert_eq!(parse_metrics_url("https://h/m").unwrap().port, 443);
        assert_eq!(parse_metrics_url("http://[::1]:9/m").unwrap().host, "::1");
        for bad in ["ftp://h/metrics", "ws://h/metrics", "http://", "metrics", "http://h:x/"] {
            assert!(matches!(parse_metrics_url(bad), Err(ScrapeError::InvalidUrl(_))), "{bad}");
        }
    }

    #[test]
    fn the_metrics_next_to_a_websocket_endpoint() {
        assert_eq!(
            metrics_url_next_to("ws://127.0.0.1:8080/v1/ws").as_deref(),
            Some("http://127.0.0.1:8080/metrics")
        );
        assert_eq!(
            metrics_url_next_to("wss://example.test/v1/ws?x=1").as_deref(),
            Some("https://example.test/metrics")
        );
        assert_eq!(metrics_url_next_to("http://x/"), None);
    }

    fn scraper_of(addr: std::net::SocketAddr) -> Scraper {
        Scraper::new(vec![parse_metrics_url(&format!("http://{addr}/metrics")).unwrap()], None)
    }

    /// Answers each connection once with `response`, for `connections` connections.
    async fn answering(response: &'static str, connections: usize) -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            for _ in 0..connections {
                let Ok((mut socket, _)) = listener.accept().await else { return };
                let mut request = [0u8; 1024];
                let _ = socket.read(&mut request).await;
                let _ = socket.write_all(response.as_bytes()).await;
            }
        });
        addr
    }

    #[tokio::test]
    async fn a_scrape_reads_the_figures_and_counts_itself() {
        let body = "# TYPE openframe_connections_open gauge\nopenframe_connections_open 3\n\
                    process_resident_memory_bytes 4096\n";
        let response: &'static str = Box::leak(
            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
                .into_boxed_str(),
        );
        let scraper = scraper_of(answering(response, 1).await);
        let sample = scraper.scrape().await.unwrap();
        assert_eq!((sample.connections, sample.rss_bytes), (3, 4096));
        assert_eq!(scraper.counts().scraped.load(Relaxed), 1);
    }

    #[tokio::test]
    async fn a_refused_or_failing_scrape_is_counted_and_gives_no_sample() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let scraper = scraper_of(([127, 0, 0, 1], port).into());
        assert!(matches!(scraper.scrape().await, Err(ScrapeError::Connect { .. })));
        let not_found = scraper_of(answering("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", 1).await);
        assert!(matches!(not_found.scrape().await, Err(ScrapeError::Status { status: 404, .. })));
        let garbage = scraper_of(answering("SSH-2.0-OpenSSH\r\n\r\n", 1).await);
        assert!(matches!(garbage.scrape().await, Err(ScrapeError::Http { .. })));
        for s in [&scraper, &not_found, &garbage] {
            assert_eq!((s.counts().failed.load(Relaxed), s.counts().scraped.load(Relaxed)), (1, 0));
        }
    }

    #[tokio::test]
    async fn a_slow_scrape_is_skipped() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // Accepts and never answers.
        let hold = tokio::spawn(async move {
            let (_socket, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(5)).await;
        });
        let scraper = scraper_of(addr);
        let started = std::time::Instant::now();
        assert!(matches!(scraper.scrape().await, Err(ScrapeError::Slow(_))));
        assert!(started.elapsed() < Duration::from_secs(1));
        assert_eq!(scraper.counts().skipped_slow.load(Relaxed), 1);
        hold.abort();
    }
}
