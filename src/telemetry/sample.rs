//! What one scrape says about a server: the figures `report.json` keeps per second
//! (`intervals[].server`; the data type lives in `results/`), read from a parsed
//! exposition by metric name.

use prometheus_parse::{Scrape, Value};

use crate::results::server_sample::ServerSample;

/// Reduces one process's exposition to its sample. Series with labels (per topic) are summed.
pub fn reduce(scrape: &Scrape) -> ServerSample {
    let value = |names: &[&str]| -> f64 {
        names
            .iter()
            .map(|name| {
                scrape
                    .samples
                    .iter()
                    .filter(|s| s.metric == *name)
                    .filter_map(|s| match s.value {
                        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) if v.is_finite() => Some(v),
                        _ => None,
                    })
                    .fold(None, |sum: Option<f64>, v| Some(sum.unwrap_or(0.0) + v))
            })
            .find_map(|v| v)
            .unwrap_or(0.0)
    };
    let count = |names: &[&str]| value(names).max(0.0) as u64;
    ServerSample {
        connections: count(&["openframe_connections_open"]),
        subscriptions: count(&["openframe_subscriptions"]),
        events_published: count(&["openframe_events_published_total"]),
        events_delivered: count(&["openframe_events_delivered_total"]),
        slow_consumer_disconnects: count(&["openframe_slow_consumer_disconnects_total"]),
        auth_failures: count(&["openframe_auth_failures_total"]),
        protocol_errors: count(&["openframe_protocol_errors_total"]),
        cpu_s: value(&["process_cpu_seconds_total"]).max(0.0),
        rss_bytes: count(&["process_resident_memory_bytes", "openframe_process_resident_memory_bytes"]),
        processes: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Scrape {
        Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap()
    }

    #[test]
    fn reads_the_figures_by_name_and_sums_labelled_series() {
        let scrape = parse(
            "# TYPE openframe_connections_open gauge\nopenframe_connections_open 12\n\
             # TYPE openframe_subscriptions gauge\nopenframe_subscriptions{topic=\"alerts\"} 3\n\
             openframe_subscriptions{topic=\"device_update\"} 4\n\
             # TYPE openframe_events_delivered_total counter\nopenframe_events_delivered_total 900\n\
             # TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 2.25\n\
             # TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes 1048576\n\
             garbage line that is not a sample\n",
        );
        let sample = reduce(&scrape);
        assert_eq!(sample.connections, 12);
        assert_eq!(sample.subscriptions, 7);
        assert_eq!(sample.events_delivered, 900);
        assert_eq!(sample.cpu_s, 2.25);
        assert_eq!(sample.rss_bytes, 1_048_576);
        assert_eq!(sample.events_published, 0, "absent figures are 0");
    }

    #[test]
    fn falls_back_to_the_first_round_memory_name() {
        let sample = reduce(&parse("openframe_process_resident_memory_bytes 77\n"));
        assert_eq!(sample.rss_bytes, 77);
    }
}
