//! Subscription filters and their semantics (PROTOCOL.md §4, "Filter semantics").
//!
//! A filter key applies to an event only when the event's `data` has that field; the event
//! passes when, for every key that applies, `data[key]` is one of the listed strings. The server
//! uses this to route events; the harness uses the same function to decide which events a
//! subscriber must, and must not, receive.

use std::borrow::Cow;

use serde_json::Value;

use super::data::ObjectView;

/// A value of an event's `data` field as far as filtering can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldValue<'a> {
    Str(Cow<'a, str>),
    /// Present, but not a string: never equal to a listed value.
    NotAString,
}

impl FieldValue<'_> {
    /// The same value, borrowing instead of owning.
    pub fn as_borrowed(&self) -> FieldValue<'_> {
        match self {
            FieldValue::Str(s) => FieldValue::Str(Cow::Borrowed(s)),
            FieldValue::NotAString => FieldValue::NotAString,
        }
    }
}

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
    pub fn new<K, V>(pairs: impl IntoIterator<Item = (K, Vec<V>)>) -> Filters
    where
        K: Into<Box<str>>,
        V: Into<Box<str>>,
    {
        let mut entries: Vec<Entry> = Vec::new();
        for (key, values) in pairs {
            let key = key.into();
            let mut unique: Vec<Box<str>> = Vec::with_capacity(values.len());
            for value in values {
                let value = value.into();
                if !unique.contains(&value) {
                    unique.push(value);
                }
            }
            entries.retain(|(k, _)| *k != key);
            entries.push((key, unique.into_boxed_slice()));
        }
        entries.sort_by(|a, b| a.0.cmp(&b.0));
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
}
