//! Filter semantics (PROTOCOL.md §4) against a model written straight from the text: "a filter
//! key applies to an event only when the event's `data` has that field; the event is delivered
//! when, for every filter key that applies, `data[key]` is one of the listed values".

use std::sync::Arc;

use openframe_harness::protocol::{Filters, ObjectView, Topic};
use openframe_harness::server::Faults;
use openframe_harness::server::hub::{Hub, Outbox};
use openframe_harness::server::metrics::ServerMetrics;
use proptest::prelude::*;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Utf8Bytes;

const KEYS: &[&str] = &["severity", "status", "id", "device_id", "x"];
const VALUES: &[&str] = &["high", "low", "online", "d-1", "", "é"];

/// (key, values) pairs as a subscribe lists them; a key may repeat (the last one counts).
fn filter_pairs() -> impl Strategy<Value = Vec<(String, Vec<String>)>> {
    let value = prop::sample::select(VALUES).prop_map(str::to_owned);
    let key = prop::sample::select(KEYS).prop_map(str::to_owned);
    prop::collection::vec((key, prop::collection::vec(value, 0..4)), 0..4)
}

/// A data field's value: a listed string, an unlisted one, or not a string at all.
fn field_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => prop::sample::select(VALUES).prop_map(|s| json!(s)),
        1 => "[a-z]{0,3}".prop_map(|s| json!(s)),
        1 => Just(json!(null)),
        1 => any::<i32>().prop_map(|n| json!(n)),
        1 => Just(json!(["high"])),
        1 => Just(json!({"severity": "high"})),
    ]
}

/// `data` members in document order; a key may repeat (JSON's last one counts).
fn data_members() -> impl Strategy<Value = Vec<(String, Value)>> {
    let key = prop::sample::select(KEYS).prop_map(str::to_owned);
    prop::collection::vec((key, field_value()), 0..6)
}

fn data_text(members: &[(String, Value)]) -> String {
    let body: Vec<String> = members.iter().map(|(k, v)| format!("{}:{v}", Value::from(k.as_str()))).collect();
    format!("{{{}}}", body.join(","))
}

/// The model: the last values of each key; a key applies when `data` has it; an applying key
/// passes when the last `data[key]` is a string equal to one of its values.
fn model_admits(pairs: &[(String, Vec<String>)], members: &[(String, Value)]) -> bool {
    pairs.iter().map(|(k, _)| k).all(|key| {
        let values = &pairs.iter().rev().find(|(k, _)| k == key).unwrap().1;
        match members.iter().rev().find(|(k, _)| k == key) {
            None => true,
            Some((_, Value::String(s))) => values.contains(s),
            Some(_) => false,
        }
    })
}

proptest! {
    #[test]
    fn filter_decision_equals_the_model(pairs in filter_pairs(), members in data_members()) {
        let filters = Filters::new(pairs.clone());
        let text = data_text(&members);
        let data = ObjectView::parse(&text).expect("an object");
        prop_assert_eq!(filters.admits_data(&data), model_admits(&pairs, &members), "{}", text);
    }

    #[test]
    fn filters_survive_their_json_form(pairs in filter_pairs()) {
        let filters = Filters::new(pairs);
        let json = filters.to_json();
        let back: Vec<(String, Vec<String>)> = json
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::from_value(v.clone()).unwrap()))
            .collect();
        prop_assert_eq!(Filters::new(back), filters);
    }

    #[test]
    fn hub_delivers_to_exactly_the_subscribers_the_model_admits(
        subscribers in prop::collection::vec(filter_pairs(), 1..8),
        members in data_members(),
    ) {
        let hub = Hub::new(Arc::new(ServerMetrics::default()), Faults::default());
        let mut queues = Vec::new();
        for (conn, pairs) in subscribers.iter().enumerate() {
            let (outbox, rx) = Outbox::new(4);
            hub.subscribe(conn as u64, &[Topic::Alerts], &Filters::new(pairs.clone()), &outbox);
            queues.push(rx);
        }
        let text = data_text(&members);
        let delivered = hub.publish(Topic::Alerts, &ObjectView::parse(&text).unwrap(), Utf8Bytes::from(text.clone()));
        let expected: Vec<bool> = subscribers.iter().map(|pairs| model_admits(pairs, &members)).collect();
        let got: Vec<bool> = queues.iter_mut().map(|rx| rx.try_recv().is_ok()).collect();
        prop_assert_eq!(&got, &expected);
        prop_assert_eq!(delivered, expected.iter().filter(|e| **e).count() as u64);
    }
}
