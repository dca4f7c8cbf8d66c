//! What each counter of `report.json` means to a reader: a short description, and whether a
//! count above zero is a failure of the target (the HTML report marks those; `compare` refuses
//! to let them grow from zero). One table, so the formats cannot disagree.

/// How a counter is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CounterKind {
    /// How much happened (published, delivered, opened); scales with load and duration.
    Volume,
    /// Something the target got wrong; zero in a clean run.
    Failure,
    /// Expected in some scenarios and wrong in others (auth storms, slow consumers), or a
    /// detail of the oracle; shown, never judged on its own.
    Context,
}

/// Every counter of [`crate::results::model::Counters`], in its order: name, kind, description.
pub const COUNTERS: &[(&str, CounterKind, &str)] = &[
    (
        "connections_opened",
        CounterKind::Volume,
        "connections that reached connection_established or an auth answer",
    ),
    ("connections_failed", CounterKind::Failure, "connection attempts refused, timed out or not upgraded"),
    ("auth_rejected", CounterKind::Context, "connections refused with AUTH_ERROR and 1008"),
    ("events_published", CounterKind::Volume, "events published and accepted by the target"),
    ("events_expected", CounterKind::Volume, "(subscriber, event) pairs the target had to deliver"),
    ("events_delivered", CounterKind::Volume, "events received by subscribers"),
    ("events_missing", CounterKind::Failure, "expected deliveries that never arrived"),
    ("events_duplicated", CounterKind::Failure, "events one subscriber received more than once"),
    (
        "events_out_of_order",
        CounterKind::Failure,
        "events received after a later event of the same publisher",
    ),
    (
        "filter_violations",
        CounterKind::Failure,
        "events received although the subscriber's filters exclude them",
    ),
    (
        "events_after_unsubscribe",
        CounterKind::Failure,
        "events published after unsubscription_confirmed that still arrived",
    ),
    ("protocol_violations", CounterKind::Failure, "server messages that break PROTOCOL.md"),
    ("unexpected_closes", CounterKind::Failure, "connections closed without a reason the scenario explains"),
    ("slow_consumer_closes", CounterKind::Context, "connections cut as slow consumers (1013)"),
    ("events_uncertain", CounterKind::Context, "events published around a (un)subscribe, so not judged"),
    (
        "foreign_events",
        CounterKind::Context,
        "events from other sources (heartbeat, other runs), validated only",
    ),
    ("publish_acks", CounterKind::Volume, "publish_ack / 202 answers received"),
    ("publish_errors", CounterKind::Failure, "publishes the target refused"),
    (
        "server_reported_deliveries",
        CounterKind::Volume,
        "deliveries the target said it queued (sum over acks)",
    ),
    ("subscribe_failures", CounterKind::Failure, "subscribes answered with an error or not at all"),
    ("reconnects", CounterKind::Volume, "reconnects made by churn"),
    ("resubscribes", CounterKind::Volume, "unsubscribe + subscribe cycles made by churn"),
    ("auth_unexpected_rejections", CounterKind::Failure, "valid tokens the target refused"),
    ("auth_accepted_invalid", CounterKind::Failure, "invalid tokens the target accepted"),
    ("tls_handshakes", CounterKind::Volume, "TLS handshakes the clients completed (wss:// targets)"),
    ("tls_resumed", CounterKind::Volume, "of those, handshakes that resumed an earlier session"),
];

/// The kind of counter `name` (`Context` for a name this table does not know).
pub fn kind_of(name: &str) -> CounterKind {
    COUNTERS.iter().find(|(n, _, _)| *n == name).map_or(CounterKind::Context, |(_, kind, _)| *kind)
}

/// The description of counter `name` (empty for a name this table does not know).
pub fn describe(name: &str) -> &'static str {
    COUNTERS.iter().find(|(n, _, _)| *n == name).map_or("", |(_, _, text)| text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::model::Counters;

    #[test]
    fn every_counter_is_described_in_order() {
        let names: Vec<&str> = Counters::default().iter().map(|(name, _)| name).collect();
        let described: Vec<&str> = COUNTERS.iter().map(|(name, _, _)| *name).collect();
        assert_eq!(names, described);
        assert_eq!(kind_of("events_missing"), CounterKind::Failure);
        assert_eq!(kind_of("slow_consumer_closes"), CounterKind::Context);
        assert_eq!(kind_of("nope"), CounterKind::Context);
    }
}
