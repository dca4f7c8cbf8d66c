//! A client group's plan: how its clients arrive, what they subscribe to, how they churn and
//! stall, checked against the run's duration. Knows nothing of publishers or the target.

use std::ops::Range;
use std::time::Duration;

use super::{Credential, PlanError};
use crate::protocol::client::{ClientMessage, parse_client_message, subscribe_json};
use crate::protocol::{Filters, Topic};
use crate::scenario::model::ClientGroupSpec;
use crate::scenario::stages::Curve;
use crate::scenario::values::RangeValue;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Arrival {
    AllAtOnce,
    /// Connections spread evenly over this time.
    Ramp(Duration),
    /// Connections per second.
    Rate(f64),
}

impl Arrival {
    /// When client `i` of `count` connects, after the group's start.
    pub fn offset(self, i: u64, count: u64) -> Duration {
        match self {
            Arrival::AllAtOnce => Duration::ZERO,
            Arrival::Ramp(ramp) => ramp.mul_f64(i as f64 / count.max(1) as f64),
            Arrival::Rate(rate) => Duration::from_secs_f64(i as f64 / rate),
        }
    }

    /// When the last client of `count` connects.
    pub fn span(self, count: u64) -> Duration {
        self.offset(count.saturating_sub(1), count)
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Churn {
    pub reconnect_every: Option<(Duration, Duration)>,
    pub resubscribe_every: Option<(Duration, Duration)>,
    pub resubscribe_pause: Duration,
}

/// A slow consumer: stops reading for a while.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stall {
    pub after: Duration,
    pub length: Duration,
    pub socket_buffer_bytes: Option<u32>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GroupPlan {
    pub name: String,
    pub count: u64,
    pub arrival: Arrival,
    pub start_after: Duration,
    pub topics: Vec<Topic>,
    pub filters: Filters,
    pub churn: Churn,
    pub credential: Credential,
    pub token_in_query: bool,
    pub stall: Option<Stall>,
    /// The group's client count over the run, when stages shape it (then `count` is its peak
    /// and `arrival` / `start_after` do not apply).
    pub load: Option<Curve>,
}

impl GroupPlan {
    /// When the group has all its clients (with stages: when it first reaches its peak).
    pub fn ready_at(&self) -> Duration {
        match &self.load {
            None => self.start_after + self.arrival.span(self.count),
            Some(load) => {
                let peak = load.peak();
                load.pieces()
                    .iter()
                    .find(|p| p.from.max(p.to) >= peak)
                    .map_or(Duration::ZERO, |p| if p.from >= peak { p.start } else { p.end })
            }
        }
    }

    /// When client `i` is on, relative to the run's start: `(join, leave)` windows, in order;
    /// `None`: until the run ends. Without stages, one window from its arrival on.
    pub fn windows(&self, i: u64) -> Vec<(Duration, Option<Duration>)> {
        match &self.load {
            None => vec![(self.start_after + self.arrival.offset(i, self.count), None)],
            Some(load) => load.above(i as f64),
        }
    }

    /// When client `i` first connects (a client the stages never call comes a year later: never).
    pub fn first_join(&self, i: u64) -> Duration {
        self.windows(i).first().map_or(Duration::from_secs(365 * 86_400), |w| w.0)
    }
}

/// When the load of a run may start: one second after the last client with a valid credential
/// is ready (publishers start then unless they say otherwise).
pub fn settled(groups: &[GroupPlan]) -> Duration {
    groups.iter().filter(|g| g.credential.is_valid()).map(GroupPlan::ready_at).max().unwrap_or_default()
        + Duration::from_secs(1)
}

pub(super) fn group(
    spec: &ClientGroupSpec,
    span: Range<usize>,
    duration: Duration,
    load: Option<&Curve>,
) -> Result<GroupPlan, PlanError> {
    let error = |message: String| PlanError::at(span.clone(), message);
    if spec.name.trim().is_empty() {
        return Err(error("a client group needs a non-empty `name`".into()));
    }
    let count = match (load, spec.count) {
        (Some(load), _) => {
            if spec.ramp.is_some() || spec.arrival_rate.is_some() || spec.start_after.is_some() {
                return Err(error(format!(
                    "group {:?} is shaped by the stages: `ramp`, `arrival_rate` and `start_after` do not apply \
                     (write the ramp as a stage value such as \"0..500\")",
                    spec.name
                )));
            }
            let peak = load.peak().ceil() as u64;
            if peak == 0 {
                return Err(error(format!("group {:?}: the stages never give it a client", spec.name)));
            }
            peak
        }
        (None, Some(count)) => count.0,
        (None, None) => {
            return Err(error(format!(
                "group {:?} needs a `count` (or a stage that names it in `clients`)",
                spec.name
            )));
        }
    };
    let arrival = match (spec.ramp, spec.arrival_rate) {
        (Some(_), Some(_)) => {
            return Err(error(format!("group {:?}: give `ramp` or `arrival_rate`, not both", spec.name)));
        }
        (Some(ramp), None) => Arrival::Ramp(ramp.0),
        (None, Some(rate)) => Arrival::Rate(rate.0),
        (None, None) => Arrival::AllAtOnce,
    };
    let credential = spec.credential;
    let mut topics: Vec<Topic> = Vec::new();
    for t in &spec.topics {
        if !topics.contains(&t.0) {
            topics.push(t.0);
        }
    }
    if credential.is_valid() && topics.is_empty() {
        return Err(error(format!("group {:?}: `topics` must name at least one topic", spec.name)));
    }
    let filters = match &spec.filters {
        None => Filters::default(),
        Some(spanned) => {
            let filters = Filters::new(spanned.get_ref().iter().map(|(k, v)| (k.as_str(), v.clone())));
            // The protocol core's own subscribe validation: one definition of the rule.
            let message = subscribe_json(&topics, &filters, None);
            match parse_client_message(&message, false) {
                Ok(ClientMessage::Subscribe(_)) => filters,
                Ok(_) => filters,
                Err(rejection) => {
                    return Err(PlanError::at(
                        spanned.span(),
                        format!("group {:?}: invalid filters: {}", spec.name, rejection.message),
                    ));
                }
            }
        }
    };
    let range = |r: Option<RangeValue>| r.map(|RangeValue(low, high)| (low, high));
    let default_pause = Duration::from_millis(200);
    let churn = spec.churn.as_ref().map_or(
        Churn { reconnect_every: None, resubscribe_every: None, resubscribe_pause: default_pause },
        |c| Churn {
            reconnect_every: range(c.reconnect_every),
            resubscribe_every: range(c.resubscribe_every),
            resubscribe_pause: c.resubscribe_pause.map_or(default_pause, |d| d.0),
        },
    );
    let stall = spec.read.as_ref().map(|r| Stall {
        after: r.stall_after.0,
        length: r.stall_for.0,
        socket_buffer_bytes: r.socket_buffer_bytes,
    });
    let plan = GroupPlan {
        name: spec.name.clone(),
        count,
        arrival,
        start_after: spec.start_after.map_or(Duration::ZERO, |d| d.0),
        topics,
        filters,
        churn,
        credential,
        token_in_query: spec.token_in_query,
        stall,
        load: load.cloned(),
    };
    if plan.load.is_none() && plan.ready_at() >= duration {
        return Err(error(format!(
            "group {:?} is still connecting when the run ends ({:?} of {:?}): shorten its ramp or lengthen `duration`",
            spec.name,
            plan.ready_at(),
            duration
        )));
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrival_offsets_spread_clients() {
        assert_eq!(Arrival::Ramp(Duration::from_secs(10)).offset(5, 10), Duration::from_secs(5));
        assert_eq!(Arrival::Rate(100.0).offset(50, 1000), Duration::from_millis(500));
        assert_eq!(Arrival::AllAtOnce.span(1000), Duration::ZERO);
    }
}
