//! The latencies a run records, by name: the vocabulary `report.json`'s `latency_us` keys, the
//! recording histograms and the gates share. Must not know how they are recorded.

/// The latencies a run records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LatencyMetric {
    /// Intended publish time → receipt, per recipient.
    Fanout,
    /// Intended publish time → receipt at the last recipient, per event.
    Completion,
    /// `subscription_confirmed` (after a (re)subscribe or reconnect) → first event.
    FirstEvent,
    /// Start of connect → `connection_established`: the whole of the three below.
    Connect,
    /// TCP connect (SYN → established).
    TcpConnect,
    /// TLS handshake (ClientHello → finished), `wss://` only.
    TlsHandshake,
    /// Upgrade request sent → `connection_established` (101 and the first message).
    Upgrade,
    /// Subscribe sent → `subscription_confirmed`.
    Subscribe,
    /// Publish sent → `publish_ack` (or 202).
    PublishAck,
    /// How late publishers sent against their schedule.
    PublisherLag,
    /// How late the harness's own timers fired (its event-loop delay).
    LoopLag,
    /// Kernel receive stamp → the harness's read of it, per delivery (kernel timestamps only):
    /// how long data waited in a subscriber's receive queue.
    ReadDelay,
}

impl LatencyMetric {
    pub const ALL: [LatencyMetric; 12] = [
        LatencyMetric::Fanout,
        LatencyMetric::Completion,
        LatencyMetric::FirstEvent,
        LatencyMetric::Connect,
        LatencyMetric::TcpConnect,
        LatencyMetric::TlsHandshake,
        LatencyMetric::Upgrade,
        LatencyMetric::Subscribe,
        LatencyMetric::PublishAck,
        LatencyMetric::PublisherLag,
        LatencyMetric::LoopLag,
        LatencyMetric::ReadDelay,
    ];

    pub fn name(self) -> &'static str {
        match self {
            LatencyMetric::Fanout => "fanout",
            LatencyMetric::Completion => "completion",
            LatencyMetric::FirstEvent => "first_event",
            LatencyMetric::Connect => "connect",
            LatencyMetric::TcpConnect => "tcp_connect",
            LatencyMetric::TlsHandshake => "tls_handshake",
            LatencyMetric::Upgrade => "upgrade",
            LatencyMetric::Subscribe => "subscribe",
            LatencyMetric::PublishAck => "publish_ack",
            LatencyMetric::PublisherLag => "publisher_lag",
            LatencyMetric::LoopLag => "loop_lag",
            LatencyMetric::ReadDelay => "read_delay",
        }
    }

    pub fn from_name(name: &str) -> Option<LatencyMetric> {
        LatencyMetric::ALL.into_iter().find(|m| m.name() == name)
    }

    /// The metric's position in [`LatencyMetric::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}
