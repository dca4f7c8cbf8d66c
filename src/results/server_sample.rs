//! What the target's own metrics said at one second (`intervals[].server` of `report.json`):
//! data only. `telemetry` fills it from scrapes; the report writers and the live page read it.

use serde::{Deserialize, Serialize};

/// The server's figures at one second: totals over every process of the target, and for a
/// cluster the same figures per process (in the order the processes were given).
///
/// Counters are as the server reports them (since it started); a figure the target does not
/// export is 0.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ServerSample {
    /// Open WebSocket connections.
    pub connections: u64,
    /// Subscriptions held, all topics.
    pub subscriptions: u64,
    pub events_published: u64,
    /// Event deliveries the server queued to subscribers.
    pub events_delivered: u64,
    pub slow_consumer_disconnects: u64,
    pub auth_failures: u64,
    pub protocol_errors: u64,
    /// CPU time (user + system) the server's processes used since they started, in seconds.
    pub cpu_s: f64,
    /// Resident memory of the server's processes, in bytes.
    pub rss_bytes: u64,
    /// One sample per process when the target has more than one (a cluster); empty otherwise.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub processes: Vec<ServerSample>,
}

impl ServerSample {
    /// The sum over `processes`, keeping them as the per-process series (a single process is
    /// returned as it is).
    pub fn sum(mut processes: Vec<ServerSample>) -> ServerSample {
        if processes.len() == 1 {
            return processes.pop().unwrap_or_default();
        }
        let mut total = ServerSample::default();
        for p in &processes {
            total.connections += p.connections;
            total.subscriptions += p.subscriptions;
            total.events_published += p.events_published;
            total.events_delivered += p.events_delivered;
            total.slow_consumer_disconnects += p.slow_consumer_disconnects;
            total.auth_failures += p.auth_failures;
            total.protocol_errors += p.protocol_errors;
            total.cpu_s += p.cpu_s;
            total.rss_bytes += p.rss_bytes;
        }
        total.processes = processes;
        total
    }
}

/// How the scrapes of the target's metrics went over a run (`server_metrics` of `report.json`):
/// a failed or slow scrape is counted here and costs the run nothing else.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ScrapeReport {
    /// What was scraped: one URL per server process.
    pub urls: Vec<String>,
    /// Seconds with a sample (every process answered within the timeout).
    pub scraped: u64,
    /// Seconds without one because a scrape failed (refused, not HTTP, not 200).
    pub failed: u64,
    /// Seconds skipped because a process answered slower than the timeout.
    pub skipped_slow: u64,
    /// The timeout of one scrape, in milliseconds.
    pub timeout_ms: u64,
    /// How much the target's resident memory grew over the run, in percent (as
    /// `harness.rss_growth_pct`, from `intervals[].server.rss_bytes`).
    pub rss_growth_pct: f64,
}

impl ScrapeReport {
    /// The scrapes of several shards of one run: their counts added (the URLs of the first).
    pub fn merge(parts: &[&ScrapeReport]) -> Option<ScrapeReport> {
        let first = parts.first()?;
        Some(ScrapeReport {
            urls: first.urls.clone(),
            scraped: parts.iter().map(|p| p.scraped).sum(),
            failed: parts.iter().map(|p| p.failed).sum(),
            skipped_slow: parts.iter().map(|p| p.skipped_slow).sum(),
            timeout_ms: first.timeout_ms,
            rss_growth_pct: parts.iter().map(|p| p.rss_growth_pct).fold(0.0, f64::max),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_is_summed_and_keeps_each_process() {
        let one = ServerSample { connections: 2, cpu_s: 1.0, rss_bytes: 10, ..ServerSample::default() };
        let two = ServerSample { connections: 3, cpu_s: 0.5, rss_bytes: 20, ..ServerSample::default() };
        let total = ServerSample::sum(vec![one.clone(), two.clone()]);
        assert_eq!((total.connections, total.cpu_s, total.rss_bytes), (5, 1.5, 30));
        assert_eq!(total.processes, vec![one.clone(), two]);
        assert_eq!(ServerSample::sum(vec![one.clone()]), one, "one process has no per-process list");
    }
}
