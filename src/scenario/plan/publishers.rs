//! A publisher's plan: its topic, content mix, rate split over its connections and its
//! publishing window. Knows nothing of client groups or the target.

use std::ops::Range;
use std::time::Duration;

use super::{PlanError, Via};
use crate::protocol::Topic;
use crate::protocol::topic::{DEVICE_STATUSES, SEVERITIES, SYSTEM_STATUSES};
use crate::scenario::model::PublisherSpec;
use crate::scenario::stages::Curve;

#[derive(Debug, Clone, PartialEq)]
pub struct PublisherPlan {
    /// Index among all publisher connections; carried in every event it sends.
    pub index: u32,
    pub name: String,
    pub topic: Topic,
    /// Events per second over the publisher's window (constant, or per stage).
    pub rate: Curve,
    pub via: Via,
    /// The field the mix chooses (`severity` or `status`) and its weighted values.
    pub mix: Vec<(&'static str, u32)>,
    pub device_ids: u64,
    pub payload_bytes: usize,
    /// Publishing window, relative to the start of the run.
    pub start: Duration,
    pub stop: Duration,
}

impl PublisherPlan {
    /// Events this publisher sends at most (the area under its rate over its window).
    pub fn planned_events(&self) -> u64 {
        self.rate.area().ceil() as u64
    }

    /// Its highest rate.
    pub fn peak_rate_per_s(&self) -> f64 {
        self.rate.peak()
    }
}

/// What a publisher's window is made of.
#[derive(Debug, Clone, Copy)]
pub(super) struct Window {
    /// When every client group without stages is connected (plus a second).
    pub settled: Duration,
    pub duration: Duration,
    pub drain: Duration,
}

/// Each publisher's name, in order: as written, or its default (`alerts-publisher`; the second
/// unnamed publisher of a topic is `alerts-publisher-2`, and so on).
pub(super) fn names_of<'a>(specs: impl IntoIterator<Item = &'a PublisherSpec>) -> Vec<String> {
    let mut unnamed_per_topic: Vec<(Topic, usize)> = Vec::new();
    specs
        .into_iter()
        .map(|spec| {
            if let Some(name) = &spec.name {
                return name.clone();
            }
            let topic = spec.topic.0;
            let seen = match unnamed_per_topic.iter_mut().find(|(t, _)| *t == topic) {
                Some((_, n)) => {
                    *n += 1;
                    *n
                }
                None => {
                    unnamed_per_topic.push((topic, 1));
                    1
                }
            };
            if seen == 1 { format!("{topic}-publisher") } else { format!("{topic}-publisher-{seen}") }
        })
        .collect()
}

pub(super) fn publisher(
    spec: &PublisherSpec,
    name: &str,
    span: Range<usize>,
    first_index: usize,
    window: Window,
    staged: Option<&Curve>,
) -> Result<Vec<PublisherPlan>, PlanError> {
    let Window { settled, duration, drain } = window;
    let topic = spec.topic.0;
    let error = |message: String| PlanError::at(span.clone(), format!("publisher {name:?}: {message}"));
    let (field, values, given) = match topic {
        Topic::Alerts => {
            if spec.status_mix.is_some() {
                return Err(error(
                    "`status_mix` applies to devices and system_status; alerts take `severity_mix`".into(),
                ));
            }
            ("severity", SEVERITIES, spec.severity_mix.as_ref())
        }
        Topic::Devices | Topic::SystemStatus => {
            if spec.severity_mix.is_some() {
                return Err(error(format!("`severity_mix` applies to alerts; {topic} takes `status_mix`")));
            }
            let values = if topic == Topic::Devices { DEVICE_STATUSES } else { SYSTEM_STATUSES };
            ("status", values, spec.status_mix.as_ref())
        }
    };
    let mix: Vec<(&'static str, u32)> = match given {
        None => values.iter().map(|v| (*v, 1)).collect(),
        Some(spanned) => {
            let mut mix = Vec::new();
            for (value, weight) in spanned.get_ref() {
                let known = values.iter().find(|v| **v == value).ok_or_else(|| {
                    PlanError::at(
                        spanned.span(),
                        format!(
                            "publisher {name:?}: {value:?} is not a {field} of {topic} (expected one of {})",
                            values.join(", ")
                        ),
                    )
                })?;
                mix.push((*known, *weight));
            }
            if mix.iter().all(|(_, w)| *w == 0) {
                return Err(PlanError::at(
                    spanned.span(),
                    format!("publisher {name:?}: the mix's weights add up to 0"),
                ));
            }
            mix
        }
    };
    let connections = spec.connections.map_or(1, |c| c.0);
    if staged.is_some() && spec.start_after.is_some() {
        return Err(error(
            "it is shaped by the stages: `start_after` does not apply (give it \"0/s\" in the stages before)"
                .into(),
        ));
    }
    let start = match staged {
        Some(_) => Duration::ZERO,
        None => spec.start_after.map_or(settled, |d| d.0),
    };
    let stop = duration.saturating_sub(spec.stop_before_end.map_or(drain, |d| d.0));
    if start >= stop {
        return Err(error(format!(
            "its window is empty: it starts at {start:?} and must stop by {stop:?} (duration minus the drain); \
             lengthen `duration` or set `start_after`"
        )));
    }
    let rate = match (staged, spec.rate) {
        (Some(curve), _) => curve.clipped(start, stop),
        (None, Some(rate)) => Curve::constant(start, stop, rate.0),
        (None, None) => {
            return Err(error("needs a `rate` (or a stage that names it in `publishers`)".into()));
        }
    };
    let rate = rate.scaled(1.0 / connections as f64);
    Ok((0..connections)
        .map(|i| PublisherPlan {
            index: (first_index as u64 + i) as u32,
            name: if connections == 1 { name.to_owned() } else { format!("{name}#{i}") },
            topic,
            rate: rate.clone(),
            via: spec.via,
            mix: mix.clone(),
            device_ids: spec.device_ids.map_or(100, |c| c.0),
            payload_bytes: spec.payload_bytes.unwrap_or(0),
            start,
            stop,
        })
        .collect())
}
