//! The run's counters in words, once: the delivery sentence and the connections sentence that
//! both `report.md` and the summary `run` prints on stderr show. Formatting the frame around them
//! (Markdown bold, indentation) is the caller's; this module only says what the numbers are.

use crate::results::model::Counters;

/// "N published, N expected, N delivered, N missing, …": everything the delivery oracle counted.
pub fn delivery(c: &Counters) -> String {
    format!(
        "{} published, {} expected, {} delivered, {} missing, {} duplicated, {} out of order, \
         {} filter violations, {} after unsubscribe, {} uncertain",
        c.events_published,
        c.events_expected,
        c.events_delivered,
        c.events_missing,
        c.events_duplicated,
        c.events_out_of_order,
        c.filter_violations,
        c.events_after_unsubscribe,
        c.events_uncertain
    )
}

/// "N opened, N failed, …; N protocol violations": what happened to the connections.
pub fn connections(c: &Counters) -> String {
    format!(
        "{} opened, {} failed, {} auth rejected, {} unexpected closes, {} slow-consumer closes; \
         {} protocol violations",
        c.connections_opened,
        c.connections_failed,
        c.auth_rejected,
        c.unexpected_closes,
        c.slow_consumer_closes,
        c.protocol_violations
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_oracle_counter_is_named() {
        let c = Counters {
            events_missing: 3,
            events_uncertain: 2,
            protocol_violations: 1,
            ..Counters::default()
        };
        assert!(delivery(&c).contains("3 missing") && delivery(&c).ends_with("2 uncertain"));
        assert!(connections(&c).ends_with("1 protocol violations"));
    }
}
