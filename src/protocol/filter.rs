//! Subscription filters and their semantics (PROTOCOL.md §4, "Filter semantics").
//!
//! A filter key applies to an event only when the event's `data` has that field; the event
//! passes when, for every key that applies, `data[key]` is one of the listed strings. The server
//! uses this to route events; the harness uses the same function to decide which events a
//! subscriber must, and must not, receive.

use std::collections::HashSet;

use serde_json::Value;

use super::data::{FieldValue, ObjectView};

/// One filter: a key and its allowed values.
type Entry = (Box<str>, Box<[Box<str>]>);

/// The filters a subscription holds for one topic. Empty means "every event of the topic".
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Filters {
    /// Sorted by key, each key once; values in the order given, duplicates removed.
    entries: Vec<Entry>,
}

impl Filters {
    /// Filters from (key, values) pairs. A repeated key keeps its last values, like a JSON object.
    ///
    /// Near-linear in the number of keys and values: a 64 KiB subscribe can carry thousands of
    /// either, and the server builds these before it validates them.
    pub fn new<K, V>(pairs: impl IntoIterator<Item = (K, Vec<V>)>) -> Filters
    where
        K: Into<Box<str>>,
        V: Into<Box<str>>,
    {
        let mut entries: Vec<Entry> = pairs
            .into_iter()
            .map(|(key, values)| (key.into(), unique_in_order(values.into_iter().map(Into::into).collect())))
            .collect();
        // Stable: a repeated key's entries keep their order, so the last given is the last of its run.
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        entries.reverse();
        entries.dedup_by(|later, kept| later.0 == kept.0);
        entries.reverse();
        Filters { entries }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// (key, values) pairs, sorted by key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[Box<str>])> {
        self.entries.iter().map(|(k, v)| (&**k, &**v))
    }

    /// Whether an event passes, reading its fields through `field`.
    pub fn admits<'a>(&self, field: impl Fn(&str) -> Option<FieldValue<'a>>) -> bool {
        self.entries.iter().all(|(key, allowed)| match field(key) {
            None => true,
            Some(FieldValue::Str(s)) => allowed.iter().any(|a| **a == *s),
            Some(FieldValue::NotAString) => false,
        })
    }

    /// Whether an event with this `data` passes.
    pub fn admits_data(&self, data: &ObjectView<'_>) -> bool {
        self.admits(|key| data.filter_value(key))
    }

    /// The filters as the JSON object a subscribe message carries.
    pub fn to_json(&self) -> Value {
        let map = self
            .entries
            .iter()
            .map(|(k, v)| (k.to_string(), Value::from(v.iter().map(|s| s.to_string()).collect::<Vec<_>>())))
            .collect();
        Value::Object(map)
    }
}

/// `values` without repeats, each first occurrence kept in place: a scan for the usual handful,
/// a hash set for long lists.
fn unique_in_order(values: Vec<Box<str>>) -> Box<[Box<str>]> {
    if values.len() <= 16 {
        let mut unique: Vec<Box<str>> = Vec::with_capacity(values.len());
        for value in values {
            if !unique.contains(&value) {
                unique.push(value);
            }
        }
        return unique.into_boxed_slice();
    }
    let mut seen = HashSet::with_capacity(values.len());
    let first: Vec<bool> = values.iter().map(|v| seen.insert(&**v)).collect();
    values.into_iter().zip(first).filter_map(|(value, first)| first.then_some(value)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn admits(filters: &Filters, data: Value) -> bool {
        let text = data.to_string();
        filters.admits_data(&ObjectView::parse(&text).unwrap())
    }

    #[test]
    fn empty_filters_admit_everything() {
        assert!(admits(&Filters::default(), json!({"severity": "low"})));
    }

    #[test]
    fn a_key_applies_only_when_the_event_has_the_field() {
        let f = Filters::new([("severity", vec!["high"])]);
        assert!(admits(&f, json!({"severity": "high"})));
        assert!(!admits(&f, json!({"severity": "low"})));
        assert!(admits(&f, json!({"status": "online"})));
    }

    #[test]
    fn every_applicable_key_must_match() {
        let f = Filters::new([("severity", vec!["high", "critical"]), ("device_id", vec!["d-1"])]);
        assert!(admits(&f, json!({"severity": "critical", "device_id": "d-1"})));
        assert!(!admits(&f, json!({"severity": "critical", "device_id": "d-2"})));
    }

    #[test]
    fn a_non_string_field_never_matches() {
        let f = Filters::new([("severity", vec!["1"])]);
        assert!(!admits(&f, json!({"severity": 1})));
        assert!(!admits(&f, json!({"severity": null})));
    }

    #[test]
    fn repeated_keys_keep_the_last_values_and_values_are_deduplicated() {
        let f = Filters::new([("a", vec!["x"]), ("a", vec!["y", "y"])]);
        assert_eq!(f.to_json(), json!({"a": ["y"]}));
    }

    #[test]
    fn long_value_lists_keep_first_occurrences_in_order() {
        let values: Vec<String> = (0..100).map(|i| (i % 40).to_string()).rev().collect();
        let f = Filters::new([("k", values.clone())]);
        let mut expected: Vec<String> = Vec::new();
        for v in values {
            if !expected.contains(&v) {
                expected.push(v);
            }
        }
        assert_eq!(f.to_json(), json!({"k": expected}));
    }

    /// Fastest of three builds of filters with `n` distinct keys and one key of `n` distinct values.
    fn build_time(n: usize) -> std::time::Duration {
        let names: Vec<String> = (0..n).map(|i| format!("v{i}")).collect();
        (0..3)
            .map(|_| {
                let started = std::time::Instant::now();
                let values = Filters::new([("k", names.clone())]);
                let keys = Filters::new(names.iter().map(|k| (k.clone(), vec!["x"])));
                let elapsed = started.elapsed();
                assert_eq!((values.iter().next().unwrap().1.len(), keys.iter().count()), (n, n));
                elapsed
            })
            .min()
            .unwrap_or_default()
    }

    #[test]
    fn building_is_near_linear_in_keys_and_values() {
        // A 64 KiB subscribe carries up to ~10,000 of either; quadratic work there stalled a
        // server worker for 100-300 ms per message. Four times the input must cost well under
        // the sixteen times a quadratic build would.
        let (small, large) = (build_time(4_000), build_time(16_000));
        let ratio = large.as_secs_f64() / small.as_secs_f64().max(1e-6);
        assert!(ratio < 8.0, "4x the input took {ratio:.1}x the time ({small:?} -> {large:?})");
    }

    #[test]
    fn keys_are_sorted_whatever_the_order_given() {
        let f = Filters::new([("b", vec!["1"]), ("a", vec!["2"]), ("c", vec!["3"])]);
        assert_eq!(f.iter().map(|(k, _)| k).collect::<Vec<_>>(), ["a", "b", "c"]);
    }
}
