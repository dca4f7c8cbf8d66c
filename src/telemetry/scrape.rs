//! Scraping: the metrics URL of each process, one `GET` per process per second through the
//! probe's HTTP client, bounded by [`SCRAPE_TIMEOUT`](super::SCRAPE_TIMEOUT).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use futures_util::future::join_all;
use prometheus_parse::Scrape;

use super::SCRAPE_TIMEOUT;
use super::sample::{ServerSample, reduce};
use crate::probe::http::{HttpError, request};
use crate::probe::target::Target;
use crate::tls::ClientTls;

/// Why one scrape gave no sample.
#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    #[error("invalid metrics URL {0:?}: expected http://HOST:PORT/PATH or https://HOST:PORT/PATH")]
    InvalidUrl(String),
    #[error("the scrape of {0} took longer than {SCRAPE_TIMEOUT:?}")]
    Slow(String),
    #[error("scraping {url}: {source}")]
    Http { url: String, source: HttpError },
    #[error("scraping {url}: HTTP status {status}")]
    Status { url: String, status: u16 },
}

/// Parses an `http://` or `https://` metrics URL into what the probe's client needs; an
/// `https://` one uses `tls` (the platform's roots when `None`).
pub fn parse_metrics_url(url: &str, tls: Option<ClientTls>) -> Result<Target, ScrapeError> {
    let invalid = || ScrapeError::InvalidUrl(url.to_owned());
    let as_ws = if let Some(rest) = url.strip_prefix("http://") {
        format!("ws://{rest}")
    } else if let Some(rest) = url.strip_prefix("https://") {
        format!("wss://{rest}")
    } else {
        return Err(invalid());
    };
    let mut target = Target::parse(&as_ws, tls).map_err(|_| invalid())?;
    if !url.trim_start_matches("https://").trim_start_matches("http://").contains('/') {
        target.path = "/metrics".to_owned();
    }
    target.url = url.to_owned();
    Ok(target)
}

/// The `/metrics` next to a WebSocket target's endpoint: `ws://h:p/v1/ws` → `http://h:p/metrics`.
pub fn metrics_url_next_to(ws_url: &str) -> Option<String> {
    let (scheme, rest) = if let Some(rest) = ws_url.strip_prefix("ws://") {
        ("http", rest)
    } else {
        ("https", ws_url.strip_prefix("wss://")?)
    };
    let authority = rest.split(['/', '?']).next().filter(|a| !a.is_empty())?;
    Some(format!("{scheme}://{authority}/metrics"))
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
    processes: Vec<Target>,
    counts: Arc<ScrapeCounts>,
}

impl Scraper {
    /// A scraper of these processes' metrics endpoints (one for a single server).
    pub fn new(processes: Vec<Target>) -> Scraper {
        Scraper { processes, counts: Arc::default() }
    }

    pub fn counts(&self) -> Arc<ScrapeCounts> {
        Arc::clone(&self.counts)
    }

    /// The URLs scraped, in order.
    pub fn urls(&self) -> impl Iterator<Item = &str> {
        self.processes.iter().map(|t| t.url.as_str())
    }

    /// One scrape of every process at once; the summed sample, or why there is none this
    /// second (counted in [`ScrapeCounts`]).
    pub async fn scrape(&self) -> Result<ServerSample, ScrapeError> {
        let results = join_all(self.processes.iter().map(scrape_one)).await;
        let mut samples = Vec::with_capacity(results.len());
        for result in results {
            match result {
                Ok(sample) => samples.push(sample),
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
        matches!(request(first, "GET", &first.request_path(None), &[], "", wait).await, Ok(r) if r.status == 200)
    }
}

async fn scrape_one(target: &Target) -> Result<ServerSample, ScrapeError> {
    let url = || target.url.clone();
    let path = target.request_path(None);
    let response = match request(target, "GET", &path, &[], "", SCRAPE_TIMEOUT).await {
        Ok(response) => response,
        Err(HttpError::Timeout(_)) => return Err(ScrapeError::Slow(url())),
        Err(source) => return Err(ScrapeError::Http { url: url(), source }),
    };
    if response.status != 200 {
        return Err(ScrapeError::Status { url: url(), status: response.status });
    }
    // Reading lines from a string cannot fail; the parser skips lines that are not samples.
    let scrape = Scrape::parse(response.body.lines().map(|l| Ok(l.to_owned())))
        .map_err(|e| ScrapeError::Http { url: url(), source: HttpError::Io { addr: url(), source: e } })?;
    Ok(reduce(&scrape))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_urls_are_http_or_https() {
        let target = parse_metrics_url("http://127.0.0.1:9000/metrics", None).unwrap();
        assert_eq!((target.authority.as_str(), target.path.as_str()), ("127.0.0.1:9000", "/metrics"));
        assert_eq!(parse_metrics_url("http://127.0.0.1:9000", None).unwrap().path, "/metrics");
        assert_eq!(parse_metrics_url("http://h:1/m?x=1", None).unwrap().request_path(None), "/m?x=1");
        assert!(matches!(parse_metrics_url("ftp://h/metrics", None), Err(ScrapeError::InvalidUrl(_))));
        assert!(matches!(parse_metrics_url("ws://h/metrics", None), Err(ScrapeError::InvalidUrl(_))));
        assert!(matches!(parse_metrics_url("http://", None), Err(ScrapeError::InvalidUrl(_))));
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

    #[tokio::test]
    async fn a_refused_scrape_is_counted_and_gives_no_sample() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let scraper =
            Scraper::new(vec![parse_metrics_url(&format!("http://127.0.0.1:{port}/metrics"), None).unwrap()]);
        assert!(scraper.scrape().await.is_err());
        assert_eq!(scraper.counts().failed.load(Relaxed), 1);
        assert_eq!(scraper.counts().scraped.load(Relaxed), 0);
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
        let scraper = Scraper::new(vec![parse_metrics_url(&format!("http://{addr}/metrics"), None).unwrap()]);
        let started = std::time::Instant::now();
        assert!(matches!(scraper.scrape().await, Err(ScrapeError::Slow(_))));
        assert!(started.elapsed() < Duration::from_secs(1));
        assert_eq!(scraper.counts().skipped_slow.load(Relaxed), 1);
        hold.abort();
    }
}
