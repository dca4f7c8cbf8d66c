//! The reference server's counters and their Prometheus text rendering (`GET /metrics`, §7).
//!
//! Counters are plain atomics bumped once per connection, per request or per publish (never
//! once per delivered event: a publish adds its whole delivery count at once).

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

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
}

impl ServerMetrics {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }

    /// Renders every metric in the Prometheus text exposition format (version 0.0.4).
    pub fn render(&self, gauges: &Gauges) -> String {
        let mut out = String::with_capacity(2048);
        let counters: [(&str, &str, &AtomicU64); 18] = [
            (
                "openframe_connections_opened_total",
                "WebSocket connections accepted",
                &self.connections_opened,
            ),
            (
                "openframe_connections_rejected_limit_total",
                "Connections refused at the connection limit",
                &self.connections_rejected_limit,
            ),
            (
                "openframe_auth_failures_total",
                "Connections refused for an invalid or missing token",
                &self.auth_failures,
            ),
            ("openframe_messages_received_total", "Client messages received", &self.messages_received),
            (
                "openframe_protocol_errors_total",
                "Error answers and protocol closes caused by client input",
                &self.protocol_errors,
            ),
            ("openframe_events_published_total", "Events accepted for publishing", &self.events_published),
            (
                "openframe_events_delivered_total",
                "Event deliveries queued to subscribers",
                &self.events_delivered,
            ),
            (
                "openframe_events_dropped_full_queue_total",
                "Deliveries refused because a subscriber queue was full",
                &self.events_dropped_full_queue,
            ),
            (
                "openframe_slow_consumer_disconnects_total",
                "Connections closed as slow consumers (1013)",
                &self.slow_consumer_disconnects,
            ),
            (
                "openframe_ping_timeouts_total",
                "Connections closed for not answering pings (1001)",
                &self.ping_timeouts,
            ),
            (
                "openframe_tokens_expired_total",
                "Connections closed because their token expired",
                &self.tokens_expired,
            ),
            (
                "openframe_http_publishes_total",
                "Events published through POST /v1/events",
                &self.http_publishes,
            ),
            (
                "openframe_broker_messages_sent_total",
                "Cluster mode: events and barriers sent to the broker",
                &self.broker_messages_sent,
            ),
            (
                "openframe_broker_events_received_total",
                "Cluster mode: events received from the broker and fanned out by this process",
                &self.broker_events_received,
            ),
            (
                "openframe_broker_messages_refused_total",
                "Cluster mode: broker messages that were not a valid event envelope",
                &self.broker_messages_refused,
            ),
            ("openframe_tls_handshakes_total", "TLS handshakes completed", &self.tls_handshakes),
            (
                "openframe_tls_resumed_total",
                "TLS handshakes that resumed an earlier session",
                &self.tls_resumed,
            ),
            (
                "openframe_tls_handshake_failures_total",
                "TLS handshakes that failed or missed the handshake deadline",
                &self.tls_handshake_failures,
            ),
        ];
        write_metric(&mut out, "openframe_connections_open", "Open WebSocket connections", "gauge");
        let _ = writeln!(out, "openframe_connections_open {}", self.connections_open.load(Relaxed));
        write_metric(&mut out, "openframe_subscriptions", "Subscriptions held, per topic", "gauge");
        for (topic, count) in gauges.subscriptions {
            let _ = writeln!(out, "openframe_subscriptions{{topic=\"{topic}\"}} {count}");
        }
        for (name, help, counter) in counters {
            write_metric(&mut out, name, help, "counter");
            let _ = writeln!(out, "{name} {}", counter.load(Relaxed));
        }
        write_metric(
            &mut out,
            "openframe_process_resident_memory_bytes",
            "Resident memory of the server process",
            "gauge",
        );
        let _ = writeln!(out, "openframe_process_resident_memory_bytes {}", gauges.rss_bytes);
        out
    }
}

fn write_metric(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}.\n# TYPE {name} {kind}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family_with_help_and_type() {
        let metrics = ServerMetrics::default();
        ServerMetrics::add(&metrics.events_delivered, 7);
        let gauges = Gauges {
            subscriptions: [(Topic::Devices, 1), (Topic::Alerts, 2), (Topic::SystemStatus, 0)],
            rss_bytes: 10,
        };
        let text = metrics.render(&gauges);
        assert!(text.contains("openframe_events_delivered_total 7\n"));
        assert!(text.contains("openframe_subscriptions{topic=\"alerts\"} 2\n"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap();
            assert!(text.contains(&format!("# TYPE {name} ")), "{name} has no TYPE line");
        }
    }
}
