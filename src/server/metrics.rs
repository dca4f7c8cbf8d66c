//! The reference server's counters and their Prometheus text rendering (`GET /metrics`, §7).
//!
//! Counters are plain atomics bumped once per connection, per request or per publish (never
//! once per delivered event: a publish adds its whole delivery count at once). A scrape reads
//! them into an owned copy that `prometheus-client` encodes (the library writes the format; the
//! hot path never touches the library). Besides the `openframe_*` families the process exports
//! the standard `process_cpu_seconds_total` and `process_resident_memory_bytes`, which `run`'s
//! telemetry reads from every process of a cluster.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, prometheus_text};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};

use crate::protocol::Topic;

#[derive(Debug, Default)]
pub struct ServerMetrics {
    pub connections_opened: AtomicU64,
    pub connections_open: AtomicU64,
    pub connections_rejected_limit: AtomicU64,
    pub auth_failures: AtomicU64,
    pub messages_received: AtomicU64,
    pub protocol_errors: AtomicU64,
    pub events_published: AtomicU64,
    pub events_delivered: AtomicU64,
    pub events_dropped_full_queue: AtomicU64,
    pub slow_consumer_disconnects: AtomicU64,
    pub ping_timeouts: AtomicU64,
    pub tokens_expired: AtomicU64,
    pub http_publishes: AtomicU64,
    /// Cluster mode: messages (events and barriers) sent to the broker.
    pub broker_messages_sent: AtomicU64,
    /// Cluster mode: events received from the broker and fanned out here.
    pub broker_events_received: AtomicU64,
    /// Cluster mode: broker messages that were not envelopes of a valid event.
    pub broker_messages_refused: AtomicU64,
    /// TLS handshakes completed (server started with TLS).
    pub tls_handshakes: AtomicU64,
    /// Of those, abbreviated handshakes that resumed an earlier session.
    pub tls_resumed: AtomicU64,
    /// TLS handshakes that failed or did not finish within the handshake deadline.
    pub tls_handshake_failures: AtomicU64,
}

/// A snapshot the renderer needs besides the counters.
pub struct Gauges {
    pub subscriptions: [(Topic, usize); 3],
    pub rss_bytes: u64,
    /// CPU time (user + system) of the server's process, in seconds.
    pub cpu_s: f64,
}

impl ServerMetrics {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }

    /// Renders every metric in the Prometheus text exposition format (version 0.0.4), through
    /// `prometheus-client`: the counters are read once into a [`Collected`] copy, which the
    /// library encodes, so a scrape never holds anything the connections use.
    pub fn render(&self, gauges: &Gauges) -> String {
        let collected = Collected {
            counters: self.counters().map(|(name, help, counter)| (name, help, counter.load(Relaxed))),
            connections_open: self.connections_open.load(Relaxed),
            subscriptions: gauges.subscriptions,
            rss_bytes: gauges.rss_bytes,
            cpu_s: gauges.cpu_s,
        };
        let mut registry = Registry::default();
        registry.register_collector(Box::new(collected));
        let mut out = String::with_capacity(4096);
        // Writing into a String cannot fail; the library's own errors are formatting errors.
        let _ = prometheus_text::encode(&mut out, &registry);
        out
    }

    /// Every counter as (name without `_total`, help, atomic); the library appends `_total`.
    fn counters(&self) -> [(&'static str, &'static str, &AtomicU64); 18] {
        [
            ("openframe_connections_opened", "WebSocket connections accepted", &self.connections_opened),
            (
                "openframe_connections_rejected_limit",
                "Connections refused at the connection limit",
                &self.connections_rejected_limit,
            ),
            (
                "openframe_auth_failures",
                "Connections refused for an invalid or missing token",
                &self.auth_failures,
            ),
            ("openframe_messages_received", "Client messages received", &self.messages_received),
            (
                "openframe_protocol_errors",
                "Error answers and protocol closes caused by client input",
                &self.protocol_errors,
            ),
            ("openframe_events_published", "Events accepted for publishing", &self.events_published),
            ("openframe_events_delivered", "Event deliveries queued to subscribers", &self.events_delivered),
            (
                "openframe_events_dropped_full_queue",
                "Deliveries refused because a subscriber queue was full",
                &self.events_dropped_full_queue,
            ),
            (
                "openframe_slow_consumer_disconnects",
                "Connections closed as slow consumers (1013)",
                &self.slow_consumer_disconnects,
            ),
            (
                "openframe_ping_timeouts",
                "Connections closed for not answering pings (1001)",
                &self.ping_timeouts,
            ),
            (
                "openframe_tokens_expired",
                "Connections closed because their token expired",
                &self.tokens_expired,
            ),
            ("openframe_http_publishes", "Events published through POST /v1/events", &self.http_publishes),
            (
                "openframe_broker_messages_sent",
                "Cluster mode: events and barriers sent to the broker",
                &self.broker_messages_sent,
            ),
            (
                "openframe_broker_events_received",
                "Cluster mode: events received from the broker and fanned out by this process",
                &self.broker_events_received,
            ),
            (
                "openframe_broker_messages_refused",
                "Cluster mode: broker messages that were not a valid event envelope",
                &self.broker_messages_refused,
            ),
            ("openframe_tls_handshakes", "TLS handshakes completed", &self.tls_handshakes),
            ("openframe_tls_resumed", "TLS handshakes that resumed an earlier session", &self.tls_resumed),
            (
                "openframe_tls_handshake_failures",
                "TLS handshakes that failed or missed the handshake deadline",
                &self.tls_handshake_failures,
            ),
        ]
    }
}

/// The values of one scrape, owned, as the library's [`Collector`] encodes them.
#[derive(Debug)]
struct Collected {
    counters: [(&'static str, &'static str, u64); 18],
    connections_open: u64,
    subscriptions: [(Topic, usize); 3],
    rss_bytes: u64,
    cpu_s: f64,
}

impl Collector for Collected {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let open = ConstGauge::new(self.connections_open as i64);
        open.encode(encoder.encode_descriptor(
            "openframe_connections_open",
            "Open WebSocket connections",
            None,
            open.metric_type(),
        )?)?;
        let mut family = encoder.encode_descriptor(
            "openframe_subscriptions",
            "Subscriptions held, per topic",
            None,
            MetricType::Gauge,
        )?;
        for (topic, count) in self.subscriptions {
            let labels = [("topic", topic.name())];
            ConstGauge::new(count as i64).encode(family.encode_family(&labels)?)?;
        }
        for (name, help, value) in self.counters {
            let counter = ConstCounter::new(value);
            counter.encode(encoder.encode_descriptor(name, help, None, counter.metric_type())?)?;
        }
        let rss = ConstGauge::new(self.rss_bytes as i64);
        // The name the project's docs and tests have used since the first round, and the
        // standard process-exporter names that dashboards and `run`'s telemetry read.
        rss.encode(encoder.encode_descriptor(
            "openframe_process_resident_memory_bytes",
            "Resident memory of the server process",
            None,
            rss.metric_type(),
        )?)?;
        rss.encode(encoder.encode_descriptor(
            "process_resident_memory",
            "Resident memory size in bytes",
            Some(&Unit::Bytes),
            rss.metric_type(),
        )?)?;
        let cpu = ConstCounter::new(self.cpu_s);
        cpu.encode(encoder.encode_descriptor(
            "process_cpu",
            "Total user and system CPU time spent in seconds",
            Some(&Unit::Seconds),
            cpu.metric_type(),
        )?)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered() -> String {
        let metrics = ServerMetrics::default();
        ServerMetrics::add(&metrics.events_delivered, 7);
        ServerMetrics::inc(&metrics.connections_open);
        let gauges = Gauges {
            subscriptions: [(Topic::Devices, 1), (Topic::Alerts, 2), (Topic::SystemStatus, 0)],
            rss_bytes: 10,
            cpu_s: 1.5,
        };
        metrics.render(&gauges)
    }

    #[test]
    fn renders_every_family_with_help_and_type() {
        let text = rendered();
        assert!(text.contains("openframe_events_delivered_total 7\n"), "{text}");
        assert!(text.contains("openframe_connections_open 1\n"), "{text}");
        assert!(text.contains("openframe_subscriptions{topic=\"alerts\"} 2\n"), "{text}");
        assert!(text.contains("process_resident_memory_bytes 10\n"), "{text}");
        assert!(text.contains("openframe_process_resident_memory_bytes 10\n"), "{text}");
        assert!(text.contains("process_cpu_seconds_total 1.5\n"), "{text}");
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap();
            assert!(text.contains(&format!("# TYPE {name} ")), "{name} has no TYPE line");
            assert!(text.contains(&format!("# HELP {name} ")), "{name} has no HELP line");
        }
    }

    #[test]
    fn a_parser_reads_back_every_counter() {
        let text = rendered();
        let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
        let metrics = ServerMetrics::default();
        for (name, _, _) in metrics.counters() {
            let total = format!("{name}_total");
            let sample = scrape.samples.iter().find(|s| s.metric == total);
            assert!(matches!(sample.map(|s| &s.value), Some(prometheus_parse::Value::Counter(_))), "{total}");
        }
    }
}
