//! What publishers send: event `data` derived deterministically from (seed, publisher, seq).
//!
//! Because any participant can recompute the content of event `seq` of publisher `p`, a
//! subscriber that sees a gap knows exactly which of the skipped events its filters admit,
//! without anyone storing the events. [`AdmissionTable`] precomputes that per (publisher,
//! filter) as prefix counts, so "how many admitted events in [a, b)" is two array reads.
//!
//! Every event carries the harness's own fields: `of_run` (this run), `of_pub`, `of_seq`,
//! `of_t` (intended send time, µs since the Unix epoch) and `of_acked` (how many of the
//! publisher's events the target had acknowledged when it was sent; subscribers in other
//! processes learn the publisher's progress from it). PROTOCOL.md §3 requires `data` to arrive
//! unchanged, so they come back as sent.

use std::fmt::Write;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use crate::protocol::data::{ObjectView, raw_u64};
use crate::protocol::timestamp::format_rfc3339_millis;
use crate::protocol::{FieldValue, Filters, Topic};
use crate::scenario::plan::PublisherPlan;
use crate::util::mix::mix64;

/// How one publisher's events look.
#[derive(Debug, Clone)]
pub struct ContentModel {
    pub publisher: u32,
    pub topic: Topic,
    seed: u64,
    run_id: u32,
    /// (value, cumulative weight) of the mixed field.
    mix: Vec<(&'static str, u64)>,
    mix_total: u64,
    device_ids: u64,
    payload_bytes: usize,
}

impl ContentModel {
    pub fn new(plan: &PublisherPlan, seed: u64, run_id: u32) -> ContentModel {
        let mut cumulative = 0;
        let mix = plan
            .mix
            .iter()
            .map(|(value, weight)| {
                cumulative += u64::from(*weight);
                (*value, cumulative)
            })
            .collect();
        ContentModel {
            publisher: plan.index,
            topic: plan.topic,
            seed,
            run_id,
            mix,
            mix_total: cumulative.max(1),
            device_ids: plan.device_ids.max(1),
            payload_bytes: plan.payload_bytes,
        }
    }

    /// The mixed field's value (`severity` or `status`) of event `seq`.
    pub fn mixed_value(&self, seq: u64) -> &'static str {
        let pick = mix64(self.seed, self.publisher, seq) % self.mix_total;
        self.mix.iter().find(|(_, cumulative)| pick < *cumulative).map_or("", |(v, _)| v)
    }

    fn device(&self, seq: u64) -> u64 {
        (mix64(self.seed, self.publisher, seq) >> 17) % self.device_ids
    }

    /// Event `seq`'s value of `key`, as filtering sees it. Only the keys a subscribe may
    /// filter on (PROTOCOL.md §3: `status`, `id`, `severity`, `device_id`) are answered.
    pub fn field(&self, seq: u64, key: &str) -> Option<FieldValue<'static>> {
        let string = |s: String| Some(FieldValue::Str(s.into()));
        match (self.topic, key) {
            (Topic::Alerts, "severity") | (Topic::Devices | Topic::SystemStatus, "status") => {
                Some(FieldValue::Str(self.mixed_value(seq).into()))
            }
            (Topic::Alerts, "id") => string(format!("a-{}-{seq}", self.publisher)),
            (Topic::Alerts, "device_id") | (Topic::Devices, "id") => {
                string(format!("d-{}", self.device(seq)))
            }
            _ => None,
        }
    }

    /// Event `seq`'s `data` JSON, stamped with its intended send time and the publisher's acks so far.
    pub fn data_json(&self, seq: u64, intended_us: u64, acked: u64) -> String {
        let mut out = String::with_capacity(160 + self.payload_bytes);
        let mixed = self.mixed_value(seq);
        let p = self.publisher;
        let _ = match self.topic {
            Topic::Alerts => write!(
                out,
                r#"{{"id":"a-{p}-{seq}","title":"harness alert","severity":"{mixed}","device_id":"d-{}""#,
                self.device(seq)
            ),
            Topic::Devices => {
                let seen = format_rfc3339_millis(UNIX_EPOCH + Duration::from_micros(intended_us));
                write!(out, r#"{{"id":"d-{}","status":"{mixed}","last_seen":"{seen}""#, self.device(seq))
            }
            Topic::SystemStatus => {
                write!(out, r#"{{"status":"{mixed}","metrics":{{"cpu_usage":50,"memory_usage":50}}"#)
            }
        };
        let _ = write!(
            out,
            r#","of_run":{},"of_pub":{p},"of_seq":{seq},"of_t":{intended_us},"of_acked":{acked}"#,
            self.run_id
        );
        if self.payload_bytes > out.len() + 10 {
            let pad = self.payload_bytes - out.len() - 10;
            out.push_str(r#","pad":""#);
            out.extend(std::iter::repeat_n('x', pad));
            out.push('"');
        }
        out.push('}');
        out
    }
}

/// The harness's own fields of a received event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HarnessTag {
    pub publisher: u32,
    pub seq: u64,
    pub intended_us: u64,
    /// The publisher's events `0..acked` had been answered when this one was sent.
    pub acked: u64,
}

/// The tag of an event from this run (`run_id`), or `None` for anyone else's event.
pub fn read_tag(data: &ObjectView<'_>, run_id: u32) -> Option<HarnessTag> {
    let run = data.get("of_run").and_then(raw_u64)?;
    if run != u64::from(run_id) {
        return None;
    }
    Some(HarnessTag {
        publisher: u32::try_from(data.get("of_pub").and_then(raw_u64)?).ok()?,
        seq: data.get("of_seq").and_then(raw_u64)?,
        intended_us: data.get("of_t").and_then(raw_u64)?,
        acked: data.get("of_acked").and_then(raw_u64)?,
    })
}

/// Which of a publisher's events a filter admits, as prefix counts.
#[derive(Debug, Clone)]
pub enum AdmissionTable {
    /// No filter: every event.
    All,
    /// `prefix[k]` = admitted events among seqs `0..k`.
    Prefix(Arc<[u32]>),
}

impl AdmissionTable {
    /// Computes the table for `events` events of `content` under `filters`.
    pub fn build(content: &ContentModel, filters: &Filters, events: u64) -> AdmissionTable {
        if filters.is_empty() {
            return AdmissionTable::All;
        }
        let mut prefix = Vec::with_capacity(events as usize + 1);
        let mut admitted = 0u32;
        prefix.push(0);
        for seq in 0..events {
            if filters.admits(|key| content.field(seq, key)) {
                admitted += 1;
            }
            prefix.push(admitted);
        }
        AdmissionTable::Prefix(prefix.into())
    }

    /// Admitted events among seqs `from..to` (clamped to the table).
    #[inline]
    pub fn count(&self, from: u64, to: u64) -> u64 {
        if to <= from {
            return 0;
        }
        match self {
            AdmissionTable::All => to - from,
            AdmissionTable::Prefix(prefix) => {
                let last = prefix.len() as u64 - 1;
                let (from, to) = (from.min(last) as usize, to.min(last) as usize);
                u64::from(prefix[to] - prefix[from])
            }
        }
    }

    #[inline]
    pub fn admits(&self, seq: u64) -> bool {
        self.count(seq, seq + 1) == 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::plan::Via;

    fn plan(topic: Topic, mix: Vec<(&'static str, u32)>) -> PublisherPlan {
        PublisherPlan {
            index: 3,
            name: "p".into(),
            topic,
            rate: crate::scenario::stages::Curve::constant(Duration::ZERO, Duration::from_secs(1), 10.0),
            via: Via::WebSocket,
            mix,
            device_ids: 10,
            payload_bytes: 300,
            start: Duration::ZERO,
            stop: Duration::from_secs(1),
        }
    }

    #[test]
    fn generated_events_are_valid_and_carry_their_tag() {
        for topic in Topic::ALL {
            let mix = match topic {
                Topic::Alerts => vec![("high", 1), ("low", 3)],
                Topic::Devices => vec![("online", 1)],
                Topic::SystemStatus => vec![("healthy", 1)],
            };
            let model = ContentModel::new(&plan(topic, mix), 42, 7);
            for seq in 0..50 {
                let json = model.data_json(seq, 1_700_000_000_000_000 + seq, seq / 2);
                let view = ObjectView::parse(&json).unwrap();
                assert_eq!(topic.validate_data(&view), Ok(()), "{json}");
                let tag = read_tag(&view, 7).unwrap();
                assert_eq!((tag.publisher, tag.seq, tag.acked), (3, seq, seq / 2));
                assert!(read_tag(&view, 8).is_none());
                assert!(json.len() >= 290 && json.len() <= 320, "{}", json.len());
            }
        }
    }

    #[test]
    fn the_field_model_agrees_with_the_generated_json() {
        let model = ContentModel::new(&plan(Topic::Alerts, vec![("high", 1), ("low", 1)]), 1, 1);
        for seq in 0..100 {
            let json = model.data_json(seq, 5, 0);
            let view = ObjectView::parse(&json).unwrap();
            for key in ["severity", "status", "id", "device_id"] {
                assert_eq!(view.filter_value(key), model.field(seq, key), "{key}");
            }
        }
    }

    #[test]
    fn mixes_follow_their_weights() {
        let model = ContentModel::new(&plan(Topic::Alerts, vec![("high", 1), ("low", 3)]), 9, 1);
        let high = (0..10_000).filter(|s| model.mixed_value(*s) == "high").count();
        assert!((2_200..2_800).contains(&high), "{high}");
    }

    #[test]
    fn admission_tables_count_exactly() {
        let model = ContentModel::new(&plan(Topic::Alerts, vec![("high", 1), ("low", 1)]), 5, 1);
        let filters = Filters::new([("severity", vec!["high"])]);
        let table = AdmissionTable::build(&model, &filters, 1000);
        let by_hand =
            |from: u64, to: u64| (from..to).filter(|s| model.mixed_value(*s) == "high").count() as u64;
        for (from, to) in [(0, 1000), (10, 20), (500, 501), (7, 7), (900, 2000)] {
            assert_eq!(table.count(from, to), by_hand(from, to.min(1000)), "{from}..{to}");
        }
        assert_eq!(AdmissionTable::All.count(3, 10), 7);
        assert!(AdmissionTable::All.admits(5));
    }
}
