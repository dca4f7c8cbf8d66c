//! The run's counters in words, once: the delivery sentence, the connections sentence and a
//! capacity search's one sentence, which both `report.md` and the summary `run` prints on stderr
//! show. Formatting the frame around them (Markdown bold, indentation) is the caller's; this
//! module only says what the numbers are.

use super::numbers::{format_int, trim_number};
use crate::results::model::Counters;
use crate::results::model::{CapacityReport, LimitedBy};

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

/// What a capacity search found, in one sentence (with the remedy when the harness was the
/// limit).
pub fn capacity(c: &CapacityReport) -> String {
    let load = |value: f64| format!("{} {}", trim_number(value, 2), c.unit);
    let deliveries = c
        .highest_passing_deliveries_per_s
        .map_or(String::new(), |d| format!(" ({} deliveries/s)", format_int(d.round() as u64)));
    let steps = format!("{} steps of {}", c.steps.len(), c.vary);
    let gate = c.failing_gate.as_deref().map_or(String::new(), |g| format!(" {g}"));
    match (c.limited_by, c.highest_passing, c.first_failing) {
        (LimitedBy::Gate, Some(high), Some(fail)) => format!(
            "The capacity is {}{deliveries}: every gate held there, and {} failed{gate} ({steps}).",
            load(high),
            load(fail)
        ),
        (LimitedBy::Gate, None, fail) => format!(
            "The capacity is below the range: the first step, {}, already failed{gate} ({steps}).",
            load(fail.unwrap_or(c.from))
        ),
        (LimitedBy::Gate | LimitedBy::Range, Some(high), _) => format!(
            "The capacity is at least {}{deliveries}: every step up to the top of the range passed \
             (raise the range's top to find the limit; {steps}).",
            load(high)
        ),
        (LimitedBy::Harness, high, _) => format!(
            "The capacity is at least {}{deliveries}, and the harness, not the target, was the limit: {} ({steps}).",
            high.map_or_else(|| "unknown".to_owned(), load),
            c.remedy.as_deref().unwrap_or("give the load generator more room")
        ),
        (LimitedBy::Interrupted, high, fail) => format!(
            "The capacity search was interrupted after {steps}: {} passed, {} failed so far.",
            high.map_or_else(|| "no load".to_owned(), load),
            fail.map_or_else(|| "none".to_owned(), load)
        ),
        (LimitedBy::Range, None, _) => format!("The capacity search measured nothing ({steps})."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_capacity_search_is_one_sentence_for_each_way_it_ends() {
        let mut c = CapacityReport::template();
        c.vary = "publishers.alerts.rate".into();
        c.unit = "events/s".into();
        c.highest_passing = Some(1_050.0);
        c.highest_passing_deliveries_per_s = Some(209_871.4);
        c.first_failing = Some(1_100.0);
        c.failing_gate = Some("latency.fanout.p99 < 100ms".into());
        let gate = capacity(&c);
        assert_eq!(
            gate,
            "The capacity is 1050 events/s (209,871 deliveries/s): every gate held there, and 1100 events/s \
             failed latency.fanout.p99 < 100ms (0 steps of publishers.alerts.rate)."
        );
        c.limited_by = LimitedBy::Harness;
        c.remedy = Some("the generator was the limit".into());
        assert!(capacity(&c).contains("at least 1050 events/s") && capacity(&c).contains("the generator"));
        c.limited_by = LimitedBy::Range;
        assert!(capacity(&c).contains("at least 1050 events/s (209,871 deliveries/s): every step"));
        c.limited_by = LimitedBy::Gate;
        c.highest_passing = None;
        assert!(capacity(&c).contains("below the range: the first step, 1100 events/s, already failed"));
        c.limited_by = LimitedBy::Interrupted;
        assert!(capacity(&c).contains("interrupted"));
    }

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
