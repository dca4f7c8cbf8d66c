//! Client-message validation (PROTOCOL.md §4, §6) under generated input: writers round-trip,
//! any text gets exactly one verdict, and a shape error always wins over meaning errors.

use openframe_harness::protocol::client::{MAX_ID_CHARS, subscribe_json, unsubscribe_json};
use openframe_harness::protocol::topic::FieldRule;
use openframe_harness::protocol::{
    ClientMessage, ErrorCode, Filters, Topic, parse_client_message, parse_server_message,
};
use proptest::prelude::*;
use serde_json::{Value, json};

fn topic() -> impl Strategy<Value = Topic> {
    prop::sample::select(Topic::ALL.to_vec())
}

/// A value valid for `key` given the listed topics: any string where a listed topic takes any
/// string, otherwise one of the union of the listed topics' sets (§4).
fn valid_value(topics: &[Topic], key: &'static str) -> BoxedStrategy<String> {
    let rules: Vec<FieldRule> = topics.iter().filter_map(|t| t.filterable_field(key)).collect();
    let mut set: Vec<&'static str> = Vec::new();
    for rule in &rules {
        match rule {
            FieldRule::OneOf(values) => set.extend(values.iter()),
            _ => return "\\PC{0,12}".boxed(),
        }
    }
    prop::sample::select(set).prop_map(str::to_owned).boxed()
}

/// A subscribe from valid parts: topics (with duplicates), filters on filterable keys of the
/// listed topics with valid values, and maybe an id of at most 128 characters.
fn valid_subscribe() -> impl Strategy<Value = (Vec<Topic>, Filters, Option<String>)> {
    prop::collection::vec(topic(), 1..5).prop_flat_map(|topics| {
        let mut keys: Vec<&'static str> =
            topics.iter().flat_map(|t| t.fields().iter().filter(|f| f.filterable).map(|f| f.name)).collect();
        keys.sort_unstable();
        keys.dedup();
        let entries: Vec<_> = keys
            .into_iter()
            .map(|key| {
                prop::option::of(prop::collection::vec(valid_value(&topics, key), 1..4))
                    .prop_map(move |v| (key, v))
            })
            .collect();
        let id = prop::option::of("\\PC{0,128}");
        (Just(topics), entries, id).prop_map(|(topics, entries, id)| {
            let pairs = entries.into_iter().filter_map(|(k, v)| v.map(|v| (k, v)));
            (topics, Filters::new(pairs), id)
        })
    })
}

fn dedup(topics: &[Topic]) -> Vec<Topic> {
    let mut out = Vec::new();
    for t in topics {
        if !out.contains(t) {
            out.push(*t);
        }
    }
    out
}

/// Arbitrary JSON, biased towards the protocol's own words so that near-valid messages occur.
fn json_value() -> impl Strategy<Value = Value> {
    const WORDS: &[&str] = &[
        "subscribe",
        "unsubscribe",
        "publish",
        "alerts",
        "devices",
        "system_status",
        "severity",
        "status",
        "high",
        "online",
        "healthy",
        "alert_created",
        "device_update",
    ];
    const KEYS: &[&str] =
        &["type", "topics", "filters", "id", "topic", "event", "data", "severity", "status"];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        "\\PC{0,10}".prop_map(Value::String),
        prop::sample::select(WORDS).prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        let key = prop_oneof![prop::sample::select(KEYS).prop_map(str::to_owned), "\\PC{0,6}"];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((key, inner), 0..6)
                .prop_map(|members| Value::Object(members.into_iter().collect())),
        ]
    })
}

/// A message object whose `type` is one of the client types, with arbitrary other members.
fn near_valid_message() -> impl Strategy<Value = String> {
    let kind = prop::sample::select(vec!["subscribe", "unsubscribe", "publish"]);
    (
        kind,
        prop::collection::vec(
            (prop::sample::select(vec!["topics", "filters", "id", "topic", "event", "data"]), json_value()),
            0..5,
        ),
    )
        .prop_map(|(kind, members)| {
            let mut object: serde_json::Map<String, Value> =
                members.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
            object.insert("type".into(), kind.into());
            Value::Object(object).to_string()
        })
}

/// The one verdict a text gets, checked for the rules every verdict obeys.
fn verdict(text: &str, may_publish: bool) -> Result<&'static str, ErrorCode> {
    let result = parse_client_message(text, may_publish);
    let declared_type = serde_json::from_str::<Value>(text).ok().and_then(|v| v.get("type").cloned());
    match result {
        Ok(message) => {
            let kind = match message {
                ClientMessage::Subscribe(_) => "subscribe",
                ClientMessage::Unsubscribe(_) => "unsubscribe",
                ClientMessage::Publish(_) => "publish",
            };
            assert_eq!(declared_type, Some(Value::from(kind)), "{text}");
            Ok(kind)
        }
        Err(rejection) => {
            assert!(!rejection.message.is_empty(), "empty error message for {text}");
            if let Some(id) = &rejection.id {
                let sent = serde_json::from_str::<Value>(text).ok().and_then(|v| v.get("id").cloned());
                assert_eq!(sent, Some(Value::from(id.as_str())), "echoed an id that was not sent: {text}");
                assert!(id.chars().count() <= MAX_ID_CHARS);
            }
            match rejection.code {
                ErrorCode::SubscriptionError => {
                    let t = declared_type.as_ref().and_then(Value::as_str);
                    assert!(matches!(t, Some("subscribe" | "unsubscribe")), "SUBSCRIPTION_ERROR for {text}");
                }
                ErrorCode::PermissionError => {
                    assert!(
                        !may_publish && declared_type == Some(json!("publish")),
                        "PERMISSION_ERROR for {text}"
                    )
                }
                ErrorCode::InvalidMessage => {}
                other => panic!("{other} is not an answer to a client message: {text}"),
            }
            Err(rejection.code)
        }
    }
}

/// Mistakes of meaning (SUBSCRIPTION_ERROR, §4), applied to a subscribe object.
fn meaning_error(message: &mut Value, which: u8) {
    match which % 5 {
        0 => message["topics"].as_array_mut().unwrap().push(json!("nope")),
        1 => message["topics"] = json!([]),
        2 => message["filters"]["colour"] = json!(["red"]),
        3 => message["filters"]["severity"] = json!([]),
        _ => message["filters"]["severity"] = json!(["urgent"]),
    }
}

/// Mistakes of shape (INVALID_MESSAGE, §4), applied to a subscribe object.
fn shape_error(message: &mut Value, which: u8) {
    match which % 10 {
        0 => message["topics"].as_array_mut().unwrap().push(json!(7)),
        1 => message["topics"] = json!("alerts"),
        2 => drop(message.as_object_mut().unwrap().remove("topics")),
        3 => message["filters"] = json!([]),
        4 => message["filters"] = json!("severity"),
        5 => message["filters"]["severity"] = json!("high"),
        6 => message["filters"]["device_id"] = json!(["d", 1]),
        7 => message["id"] = json!(5),
        8 => message["id"] = json!("x".repeat(MAX_ID_CHARS + 1)),
        _ => message["topics"] = json!(null),
    }
}

proptest! {
    #[test]
    fn a_subscribe_written_from_valid_parts_parses_back_to_the_same_parts((topics, filters, id) in valid_subscribe()) {
        let text = subscribe_json(&topics, &filters, id.as_deref());
        let Ok(ClientMessage::Subscribe(parsed)) = parse_client_message(&text, false) else {
            panic!("refused: {text}")
        };
        prop_assert_eq!(&parsed.topics, &dedup(&topics));
        prop_assert_eq!(&parsed.filters, &filters);
        prop_assert_eq!(&parsed.id, &id);
        let text = unsubscribe_json(&topics, id.as_deref());
        let Ok(ClientMessage::Unsubscribe(parsed)) = parse_client_message(&text, false) else {
            panic!("refused: {text}")
        };
        prop_assert_eq!(parsed.topics, dedup(&topics));
        prop_assert_eq!(parsed.id, id);
    }

    #[test]
    fn any_text_gets_exactly_one_verdict_and_never_panics(text in "\\PC{0,64}", may_publish in any::<bool>()) {
        prop_assert_eq!(verdict(&text, may_publish), verdict(&text, may_publish));
        let _ = parse_server_message(&text);
    }

    #[test]
    fn any_json_gets_exactly_one_verdict_and_never_panics(value in json_value(), may_publish in any::<bool>()) {
        let text = value.to_string();
        prop_assert_eq!(verdict(&text, may_publish), verdict(&text, may_publish));
        if !value.is_object() {
            prop_assert_eq!(verdict(&text, may_publish), Err(ErrorCode::InvalidMessage));
        }
        let _ = parse_server_message(&text);
    }

    #[test]
    fn near_valid_messages_get_exactly_one_verdict(text in near_valid_message(), may_publish in any::<bool>()) {
        prop_assert_eq!(verdict(&text, may_publish), verdict(&text, may_publish));
    }

    #[test]
    fn meaning_errors_alone_are_subscription_error(
        (topics, filters, id) in valid_subscribe(),
        meanings in prop::collection::vec(any::<u8>(), 1..4),
    ) {
        let mut message: Value = serde_json::from_str(&subscribe_json(&topics, &filters, id.as_deref())).unwrap();
        for which in meanings {
            meaning_error(&mut message, which);
        }
        let text = message.to_string();
        let rejection = parse_client_message(&text, false).expect_err(&text);
        prop_assert_eq!(rejection.code, ErrorCode::SubscriptionError, "{}", text);
        prop_assert_eq!(rejection.id, id);
    }

    #[test]
    fn a_shape_error_always_wins_over_meaning_errors(
        (topics, filters, id) in valid_subscribe(),
        meanings in prop::collection::vec(any::<u8>(), 0..4),
        shape in any::<u8>(),
    ) {
        let mut message: Value = serde_json::from_str(&subscribe_json(&topics, &filters, id.as_deref())).unwrap();
        for which in meanings {
            meaning_error(&mut message, which);
        }
        shape_error(&mut message, shape);
        let text = message.to_string();
        prop_assert_eq!(parse_client_message(&text, false).expect_err(&text).code, ErrorCode::InvalidMessage, "{}", text);
    }
}
