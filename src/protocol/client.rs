//! Client → server messages (PROTOCOL.md §4): parsing with the exact error each mistake earns,
//! and the writers the harness uses to send them.
//!
//! The server calls [`parse_client_message`] on every text frame; the conformance suite and the
//! fuzzer call it to know which answer a given input must get. Shape errors (`INVALID_MESSAGE`)
//! are found before meaning errors (`SUBSCRIPTION_ERROR`), as §4 requires.

use std::borrow::Cow;

use super::codes::ErrorCode;
use super::data::{ObjectView, Raw, raw_array, raw_str};
use super::envelope::{Frame, envelope};
use super::filter::Filters;
use super::topic::{FieldRule, Topic};

/// Longest `id` a request may carry, in characters.
pub const MAX_ID_CHARS: usize = 128;

/// A valid client message.
// One lives per received message and is matched at once; boxing `Publish` would cost an
// allocation per publish on the server's hot path for no saving.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum ClientMessage<'a> {
    Subscribe(Subscribe),
    Unsubscribe(Unsubscribe),
    Publish(Publish<'a>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe {
    /// In the order first given, duplicates removed.
    pub topics: Vec<Topic>,
    pub filters: Filters,
    pub id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsubscribe {
    pub topics: Vec<Topic>,
    pub id: Option<String>,
}

/// A valid publish, borrowing its `data` from the received text.
#[derive(Debug, Clone)]
pub struct Publish<'a> {
    pub topic: Topic,
    /// `data` exactly as the publisher wrote it; it is forwarded unchanged (§3).
    pub data_json: Raw<'a>,
    pub data: ObjectView<'a>,
    pub id: Option<String>,
}

/// The `error` answer a message earns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub code: ErrorCode,
    pub message: Cow<'static, str>,
    /// The request's `id`, when it had a valid one.
    pub id: Option<String>,
}

impl Rejection {
    fn new(code: ErrorCode, message: impl Into<Cow<'static, str>>, id: Option<String>) -> Self {
        Rejection { code, message: message.into(), id }
    }
}

/// Why a frame that is not text is refused (§1).
pub fn binary_frame_rejection() -> Rejection {
    Rejection::new(ErrorCode::InvalidMessage, "binary frames are not supported", None)
}

/// Parses and validates one client text message. `may_publish` is whether the connection's
/// token has the `publish` scope.
pub fn parse_client_message(text: &str, may_publish: bool) -> Result<ClientMessage<'_>, Rejection> {
    let object = parse_object(text)?;
    let id = parse_id(&object);
    let echo = id.clone().unwrap_or(None);
    let invalid = |message: &'static str| Rejection::new(ErrorCode::InvalidMessage, message, echo.clone());
    let kind = object.get("type").ok_or_else(|| invalid("missing `type`"))?;
    let kind = raw_str(kind).ok_or_else(|| invalid("`type` must be a string"))?;
    match &*kind {
        "subscribe" => {
            let id = id.map_err(&invalid)?;
            parse_subscribe(&object, id).map(ClientMessage::Subscribe)
        }
        "unsubscribe" => {
            let id = id.map_err(&invalid)?;
            let topics = parse_topics(&object, &id)?;
            Ok(ClientMessage::Unsubscribe(Unsubscribe { topics, id }))
        }
        "publish" if !may_publish => Err(Rejection::new(
            ErrorCode::PermissionError,
            "publishing requires a token with the `publish` scope",
            echo,
        )),
        "publish" => {
            let id = id.map_err(invalid)?;
            parse_publish_fields(&object, id).map(ClientMessage::Publish)
        }
        _ => Err(Rejection::new(
            ErrorCode::InvalidMessage,
            format!("unknown message type: {}", truncate(&kind, 64)),
            echo,
        )),
    }
}

/// Parses the body of `POST /v1/events`: `{"topic", "event", "data"}` under the publish rules.
pub fn parse_publish_body(text: &str) -> Result<Publish<'_>, Rejection> {
    let object = parse_object(text)?;
    parse_publish_fields(&object, None)
}

fn parse_object(text: &str) -> Result<ObjectView<'_>, Rejection> {
    ObjectView::parse(text).map_err(|_| {
        let message = if super::json_scan::is_valid(text) {
            "message must be a JSON object"
        } else {
            "message is not valid JSON"
        };
        Rejection::new(ErrorCode::InvalidMessage, message, None)
    })
}

/// `Ok(None)`: no id. `Ok(Some)`: a valid id. `Err`: an id of the wrong shape.
fn parse_id(object: &ObjectView<'_>) -> Result<Option<String>, &'static str> {
    let Some(raw) = object.get("id") else {
        return Ok(None);
    };
    match raw_str(raw) {
        Some(id) if id.chars().count() <= MAX_ID_CHARS => Ok(Some(id.into_owned())),
        Some(_) => Err("`id` must be at most 128 characters"),
        None => Err("`id` must be a string"),
    }
}

fn parse_subscribe(object: &ObjectView<'_>, id: Option<String>) -> Result<Subscribe, Rejection> {
    // Shape first: every INVALID_MESSAGE cause is found before any SUBSCRIPTION_ERROR cause.
    let names = topic_names(object, &id)?;
    let filters = filter_entries(object, &id)?;
    let topics = resolve_topics(&names, &id)?;
    let filters = Filters::new(filters);
    validate_filters(&filters, &topics, &id)?;
    Ok(Subscribe { topics, filters, id })
}

fn parse_topics(object: &ObjectView<'_>, id: &Option<String>) -> Result<Vec<Topic>, Rejection> {
    let names = topic_names(object, id)?;
    resolve_topics(&names, id)
}

/// The `topics` array as strings, or the shape error it has.
fn topic_names<'a>(object: &ObjectView<'a>, id: &Option<String>) -> Result<Vec<Cow<'a, str>>, Rejection> {
    let shape = |m: &'static str| Rejection::new(ErrorCode::InvalidMessage, m, id.clone());
    let raw = object.get("topics").ok_or_else(|| shape("missing `topics`"))?;
    let items = raw_array(raw).ok_or_else(|| shape("`topics` must be an array"))?;
    items.into_iter().map(|item| raw_str(item).ok_or_else(|| shape("every topic must be a string"))).collect()
}

/// Known topics in first-given order without duplicates, or the meaning error.
fn resolve_topics(names: &[Cow<'_, str>], id: &Option<String>) -> Result<Vec<Topic>, Rejection> {
    if names.is_empty() {
        return Err(Rejection::new(ErrorCode::SubscriptionError, "`topics` must not be empty", id.clone()));
    }
    let mut topics = Vec::with_capacity(names.len());
    for name in names {
        let topic = Topic::from_name(name).ok_or_else(|| {
            Rejection::new(
                ErrorCode::SubscriptionError,
                format!("Invalid topic: {}", truncate(name, 64)),
                id.clone(),
            )
        })?;
        if !topics.contains(&topic) {
            topics.push(topic);
        }
    }
    Ok(topics)
}

type FilterEntries<'a> = Vec<(Cow<'a, str>, Vec<Cow<'a, str>>)>;

/// The `filters` object as (key, values), or the shape error it has. Absent and `null` are empty.
fn filter_entries<'a>(object: &ObjectView<'a>, id: &Option<String>) -> Result<FilterEntries<'a>, Rejection> {
    let shape = |m: &'static str| Rejection::new(ErrorCode::InvalidMessage, m, id.clone());
    let Some(raw) = object.get("filters").filter(|raw| raw.get() != "null") else {
        return Ok(Vec::new());
    };
    let filters = ObjectView::parse(raw.get()).map_err(|_| shape("`filters` must be an object"))?;
    filters
        .iter()
        .map(|(key, raw)| {
            let items =
                raw_array(raw).ok_or_else(|| shape("every filter value must be an array of strings"))?;
            let values = items
                .into_iter()
                .map(|item| {
                    raw_str(item).ok_or_else(|| shape("every filter value must be an array of strings"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok((Cow::Owned(key.to_owned()), values))
        })
        .collect()
}

fn validate_filters(filters: &Filters, topics: &[Topic], id: &Option<String>) -> Result<(), Rejection> {
    let meaning = |m: String| Rejection::new(ErrorCode::SubscriptionError, m, id.clone());
    for (key, values) in filters.iter() {
        let rules: Vec<FieldRule> = topics.iter().filter_map(|t| t.filterable_field(key)).collect();
        if rules.is_empty() {
            return Err(meaning(format!("Invalid filter key: {}", truncate(key, 64))));
        }
        if values.is_empty() {
            return Err(meaning(format!("filter `{key}` must list at least one value")));
        }
        for value in values {
            let allowed = rules.iter().any(|rule| match rule {
                FieldRule::OneOf(set) => set.contains(&&**value),
                _ => true,
            });
            if !allowed {
                return Err(meaning(format!("Invalid value for filter `{key}`: {}", truncate(value, 64))));
            }
        }
    }
    Ok(())
}

fn parse_publish_fields<'a>(object: &ObjectView<'a>, id: Option<String>) -> Result<Publish<'a>, Rejection> {
    let invalid = |m: Cow<'static, str>| Rejection::new(ErrorCode::InvalidMessage, m, id.clone());
    let topic_name =
        object.get("topic").and_then(raw_str).ok_or_else(|| invalid("`topic` must be a string".into()))?;
    let topic = Topic::from_name(&topic_name)
        .ok_or_else(|| invalid(format!("Invalid topic: {}", truncate(&topic_name, 64)).into()))?;
    match object.get("event").and_then(raw_str) {
        Some(kind) if kind == topic.event_kind() => {}
        _ => {
            return Err(invalid(
                format!("`event` must be \"{}\" for topic {topic}", topic.event_kind()).into(),
            ));
        }
    }
    let data_json = object.get("data").ok_or_else(|| invalid("missing `data`".into()))?;
    let data = ObjectView::parse(data_json.get()).map_err(|_| invalid("`data` must be an object".into()))?;
    topic.validate_data(&data).map_err(|e| invalid(e.to_string().into()))?;
    Ok(Publish { topic, data_json, data, id })
}

fn truncate(s: &str, max_chars: usize) -> &str {
    match s.char_indices().nth(max_chars) {
        Some((at, _)) => &s[..at],
        None => s,
    }
}

/// Writes a subscribe message.
pub fn subscribe_json(topics: &[Topic], filters: &Filters, id: Option<&str>) -> String {
    let mut message = serde_json::json!({"type": "subscribe", "topics": topic_list(topics)});
    if !filters.is_empty() {
        message["filters"] = filters.to_json();
    }
    if let Some(id) = id {
        message["id"] = id.into();
    }
    message.to_string()
}

/// Writes an unsubscribe message.
pub fn unsubscribe_json(topics: &[Topic], id: Option<&str>) -> String {
    let mut message = serde_json::json!({"type": "unsubscribe", "topics": topic_list(topics)});
    if let Some(id) = id {
        message["id"] = id.into();
    }
    message.to_string()
}

/// Writes a publish message around `data_json`, which must be a JSON object.
pub fn publish_json(topic: Topic, data_json: &str, id: Option<&str>) -> String {
    envelope(Frame::Publish { id }, topic, data_json)
}

fn topic_list(topics: &[Topic]) -> Vec<&'static str> {
    topics.iter().map(|t| t.name()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reject(text: &str) -> Rejection {
        parse_client_message(text, true).expect_err(text)
    }

    fn code(text: &str) -> ErrorCode {
        reject(text).code
    }

    #[test]
    fn a_valid_subscribe_is_parsed_with_topics_deduplicated_in_order() {
        let text = r#"{"type":"subscribe","topics":["alerts","devices","alerts"],"filters":{"severity":["high"]},"id":"r1"}"#;
        let Ok(ClientMessage::Subscribe(sub)) = parse_client_message(text, false) else { panic!() };
        assert_eq!(sub.topics, [Topic::Alerts, Topic::Devices]);
        assert_eq!(sub.id.as_deref(), Some("r1"));
        assert_eq!(sub.filters, Filters::new([("severity", vec!["high"])]));
    }

    #[test]
    fn null_filters_count_as_absent() {
        let text = r#"{"type":"subscribe","topics":["alerts"],"filters":null}"#;
        assert!(
            matches!(parse_client_message(text, false), Ok(ClientMessage::Subscribe(s)) if s.filters.is_empty())
        );
    }

    #[test]
    fn shape_errors_are_invalid_message() {
        for text in [
            "not json",
            "[1,2]",
            r#"{"topics":["alerts"]}"#,
            r#"{"type":7}"#,
            r#"{"type":"dance"}"#,
            r#"{"type":"subscribe"}"#,
            r#"{"type":"subscribe","topics":"alerts"}"#,
            r#"{"type":"subscribe","topics":[1]}"#,
            r#"{"type":"subscribe","topics":["alerts"],"filters":[]}"#,
            r#"{"type":"subscribe","topics":["alerts"],"filters":{"severity":"high"}}"#,
            r#"{"type":"subscribe","topics":["alerts"],"filters":{"severity":[1]}}"#,
            r#"{"type":"subscribe","topics":["alerts"],"id":5}"#,
        ] {
            assert_eq!(code(text), ErrorCode::InvalidMessage, "{text}");
        }
        let long_id = format!(r#"{{"type":"subscribe","topics":["alerts"],"id":"{}"}}"#, "x".repeat(129));
        assert_eq!(code(&long_id), ErrorCode::InvalidMessage);
    }

    #[test]
    fn meaning_errors_are_subscription_error_with_the_id_echoed() {
        for text in [
            r#"{"type":"subscribe","topics":[],"id":"q"}"#,
            r#"{"type":"subscribe","topics":["foo"],"id":"q"}"#,
            r#"{"type":"subscribe","topics":["alerts"],"filters":{"status":["online"]},"id":"q"}"#,
            r#"{"type":"subscribe","topics":["alerts"],"filters":{"severity":[]},"id":"q"}"#,
            r#"{"type":"subscribe","topics":["alerts"],"filters":{"severity":["urgent"]},"id":"q"}"#,
            r#"{"type":"unsubscribe","topics":["foo"],"id":"q"}"#,
        ] {
            let rejection = reject(text);
            assert_eq!(rejection.code, ErrorCode::SubscriptionError, "{text}");
            assert_eq!(rejection.id.as_deref(), Some("q"), "{text}");
        }
        assert_eq!(reject(r#"{"type":"subscribe","topics":["foo"]}"#).message, "Invalid topic: foo");
    }

    #[test]
    fn a_shape_error_wins_over_a_meaning_error() {
        assert_eq!(
            code(r#"{"type":"subscribe","topics":["foo"],"filters":{"x":"y"}}"#),
            ErrorCode::InvalidMessage
        );
        assert_eq!(code(r#"{"type":"subscribe","topics":[],"id":1}"#), ErrorCode::InvalidMessage);
    }

    #[test]
    fn status_values_are_judged_against_every_listed_topic_with_the_field() {
        let ok = r#"{"type":"subscribe","topics":["devices","system_status"],"filters":{"status":["healthy","online"]}}"#;
        assert!(parse_client_message(ok, false).is_ok());
        let bad = r#"{"type":"subscribe","topics":["devices"],"filters":{"status":["healthy"]}}"#;
        assert_eq!(code(bad), ErrorCode::SubscriptionError);
    }

    #[test]
    fn a_filter_key_of_any_listed_topic_is_accepted() {
        let text = r#"{"type":"subscribe","topics":["devices","alerts"],"filters":{"severity":["high"],"id":["d-1"]}}"#;
        assert!(parse_client_message(text, false).is_ok());
    }

    #[test]
    fn publish_needs_the_scope_then_a_valid_event() {
        let text = r#"{"type":"publish","topic":"alerts","event":"alert_created","data":{"id":"a","title":"t","severity":"low","device_id":"d","seq":1},"id":"p"}"#;
        let denied = parse_client_message(text, false).unwrap_err();
        assert_eq!((denied.code, denied.id.as_deref()), (ErrorCode::PermissionError, Some("p")));
        let Ok(ClientMessage::Publish(publish)) = parse_client_message(text, true) else { panic!() };
        assert_eq!(publish.topic, Topic::Alerts);
        assert!(publish.data_json.get().contains(r#""seq":1"#));
        for bad in [
            r#"{"type":"publish","topic":"nope","event":"x","data":{}}"#,
            r#"{"type":"publish","topic":"alerts","event":"device_update","data":{}}"#,
            r#"{"type":"publish","topic":"alerts","event":"alert_created","data":{"id":"a"}}"#,
            r#"{"type":"publish","topic":"alerts","event":"alert_created"}"#,
        ] {
            assert_eq!(code(bad), ErrorCode::InvalidMessage, "{bad}");
        }
    }

    #[test]
    fn writers_produce_what_the_parser_accepts() {
        let filters = Filters::new([("severity", vec!["high"])]);
        let text = subscribe_json(&[Topic::Alerts], &filters, Some("x"));
        assert!(
            matches!(parse_client_message(&text, false), Ok(ClientMessage::Subscribe(s)) if s.filters == filters)
        );
        let text = unsubscribe_json(&[Topic::Alerts], None);
        assert!(matches!(parse_client_message(&text, false), Ok(ClientMessage::Unsubscribe(_))));
        let data = r#"{"id":"a","title":"t","severity":"low","device_id":"d"}"#;
        let text = publish_json(Topic::Alerts, data, Some("p\"1"));
        let Ok(ClientMessage::Publish(p)) = parse_client_message(&text, true) else { panic!("{text}") };
        assert_eq!(p.data_json.get(), data);
        assert_eq!(p.id.as_deref(), Some("p\"1"));
    }
}
