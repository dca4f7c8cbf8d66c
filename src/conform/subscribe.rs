//! PROTOCOL.md §4 subscribe and unsubscribe: confirmations, `id` echo, deduplication, every
//! shape error (INVALID_MESSAGE) and meaning error (SUBSCRIPTION_ERROR), and a valid request
//! right after an error on the same connection.

use super::case::{Case, send_expect};
use crate::oracle::{Answer, Expectation};
use crate::protocol::ErrorCode::{InvalidMessage, SubscriptionError};

const CONFIRM: &str = "On success the answer is {\"type\": \"subscription_confirmed\", \"topics\": […], \"id\": \"req-1\", \
\"timestamp\": \"…\"} with the topics in the order first given, duplicates removed. `id` (optional, string ≤ 128 chars): \
echoed in the answer. (§4)";
const SHAPE: &str = "`INVALID_MESSAGE` for a shape error: `topics` missing or not an array, a topic not a string, `filters` \
not an object (`null` counts as absent), a filter value not an array, an element of it not a string, `id` not a string or \
longer than 128 characters; … the connection stays open. `id` is echoed when the request had one. (§4, §6)";
const MEANING: &str = "`SUBSCRIPTION_ERROR` for a meaning error: `topics` empty, an unknown topic, a filter key that is not a \
filterable field of any listed topic, an empty value array, a value outside the field's set (a value is valid when it is in \
the set of at least one listed topic that has the field). Connection open; `id` echoed. (§4, §6)";
const BOTH: &str = "When a message has both kinds of error, the shape error is the one answered. (§4)";
const UNSUB: &str = "unsubscribe: same validation of `topics` as subscribe. Unsubscribing a topic the connection does not hold \
is not an error. *Extension:* the answer is {\"type\":\"unsubscription_confirmed\",\"topics\":[…],\"id\":…,\"timestamp\":…} (§4)";
const AFTER_ERROR: &str = "The server never closes a connection because of a bad message, except as this table says (§6); \
a valid request after an error is answered normally.";

/// A case that sends `text` on a fresh connection and wants `want`.
fn one(name: &str, rule: &'static str, text: &'static str, want: Expectation) -> Case {
    Case::new(name, "subscribe", rule, move |cx| {
        let want = want.clone();
        async move {
            let mut conn = cx.connect(false).await?;
            let result = send_expect(&cx, &mut conn, text, want).await.map(drop);
            conn.close().await;
            result
        }
    })
}

fn shape(name: &str, text: &'static str, id: Option<&'static str>) -> Case {
    one(&format!("subscribe.shape.{name}"), SHAPE, text, Expectation::error(InvalidMessage, id).under("§4"))
}

fn meaning(name: &str, text: &'static str, id: Option<&'static str>) -> Case {
    one(&format!("subscribe.meaning.{name}"), MEANING, text, Expectation::error(SubscriptionError, id))
}

const ID_128: &str = concat!(
    r#"{"type":"subscribe","topics":["alerts"],"id":""#,
    "iiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiii",
    r#""}"#
);
const ID_129: &str = concat!(
    r#"{"type":"subscribe","topics":["alerts"],"id":""#,
    "iiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiii",
    r#""}"#
);
const ID_128_VALUE: &str = "iiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiii";

pub fn cases() -> Vec<Case> {
    let confirmed =
        |topics: &[&str], id: Option<&str>| Expectation::confirmed("subscription_confirmed", topics, id);
    let unconfirmed =
        |topics: &[&str], id: Option<&str>| Expectation::confirmed("unsubscription_confirmed", topics, id);
    vec![
        one(
            "subscribe.confirm_echoes_id",
            CONFIRM,
            r#"{"type":"subscribe","topics":["devices","alerts"],"id":"req-1"}"#,
            confirmed(&["devices", "alerts"], Some("req-1")),
        ),
        one(
            "subscribe.confirm_without_id",
            CONFIRM,
            r#"{"type":"subscribe","topics":["alerts"]}"#,
            confirmed(&["alerts"], None),
        ),
        one(
            "subscribe.duplicates_removed_first_order_kept",
            CONFIRM,
            r#"{"type":"subscribe","topics":["system_status","alerts","system_status","devices","alerts"],"id":"d"}"#,
            confirmed(&["system_status", "alerts", "devices"], Some("d")),
        ),
        one(
            "subscribe.with_valid_filters",
            CONFIRM,
            r#"{"type":"subscribe","topics":["alerts"],"filters":{"severity":["high","critical"],"device_id":["d-1"]},"id":"f"}"#,
            confirmed(&["alerts"], Some("f")),
        ),
        one(
            "subscribe.filters_null_counts_as_absent",
            SHAPE,
            r#"{"type":"subscribe","topics":["alerts"],"filters":null,"id":"n"}"#,
            confirmed(&["alerts"], Some("n")),
        ),
        one(
            "subscribe.status_value_of_any_listed_topic",
            MEANING,
            r#"{"type":"subscribe","topics":["devices","system_status"],"filters":{"status":["healthy","online"]},"id":"s"}"#,
            confirmed(&["devices", "system_status"], Some("s")),
        ),
        one(
            "subscribe.id_of_128_chars_is_echoed",
            CONFIRM,
            ID_128,
            confirmed(&["alerts"], Some(ID_128_VALUE)),
        ),
        one(
            "subscribe.unicode_id_is_echoed",
            CONFIRM,
            r#"{"type":"subscribe","topics":["alerts"],"id":"r\u00e9q-\ud83d\ude00"}"#,
            confirmed(&["alerts"], Some("réq-😀")),
        ),
        shape("topics_missing", r#"{"type":"subscribe","id":"r"}"#, Some("r")),
        shape("topics_not_an_array", r#"{"type":"subscribe","topics":"alerts","id":"r"}"#, Some("r")),
        shape("topics_null", r#"{"type":"subscribe","topics":null,"id":"r"}"#, Some("r")),
        shape("topic_not_a_string", r#"{"type":"subscribe","topics":["alerts",1],"id":"r"}"#, Some("r")),
        shape(
            "filters_not_an_object",
            r#"{"type":"subscribe","topics":["alerts"],"filters":["severity"],"id":"r"}"#,
            Some("r"),
        ),
        shape(
            "filters_a_string",
            r#"{"type":"subscribe","topics":["alerts"],"filters":"severity","id":"r"}"#,
            Some("r"),
        ),
        shape(
            "filter_value_not_an_array",
            r#"{"type":"subscribe","topics":["alerts"],"filters":{"severity":"high"},"id":"r"}"#,
            Some("r"),
        ),
        shape(
            "filter_element_not_a_string",
            r#"{"type":"subscribe","topics":["alerts"],"filters":{"severity":["high",2]},"id":"r"}"#,
            Some("r"),
        ),
        shape("id_not_a_string", r#"{"type":"subscribe","topics":["alerts"],"id":7}"#, None),
        // §6 "`id` is echoed when the request had one": an over-long id may be echoed or not.
        one(
            "subscribe.shape.id_longer_than_128",
            SHAPE,
            ID_129,
            Expectation::error(InvalidMessage, None).under("§4").or(Expectation::by(
                Answer::Error { code: InvalidMessage, id: Some(format!("{ID_128_VALUE}i")) },
                "§6",
            )),
        ),
        meaning("topics_empty", r#"{"type":"subscribe","topics":[],"id":"r"}"#, Some("r")),
        meaning("unknown_topic", r#"{"type":"subscribe","topics":["weather"],"id":"r"}"#, Some("r")),
        meaning(
            "unknown_topic_among_known",
            r#"{"type":"subscribe","topics":["alerts","weather"],"id":"r"}"#,
            Some("r"),
        ),
        meaning("topic_wrong_case", r#"{"type":"subscribe","topics":["Alerts"],"id":"r"}"#, Some("r")),
        meaning(
            "filter_key_not_filterable",
            r#"{"type":"subscribe","topics":["alerts"],"filters":{"title":["x"]},"id":"r"}"#,
            Some("r"),
        ),
        meaning(
            "filter_key_of_an_unlisted_topic",
            r#"{"type":"subscribe","topics":["devices"],"filters":{"severity":["high"]},"id":"r"}"#,
            Some("r"),
        ),
        meaning(
            "filter_value_array_empty",
            r#"{"type":"subscribe","topics":["alerts"],"filters":{"severity":[]},"id":"r"}"#,
            Some("r"),
        ),
        meaning(
            "filter_value_outside_the_set",
            r#"{"type":"subscribe","topics":["alerts"],"filters":{"severity":["urgent"]},"id":"r"}"#,
            Some("r"),
        ),
        meaning(
            "status_value_of_another_topic",
            r#"{"type":"subscribe","topics":["devices"],"filters":{"status":["healthy"]},"id":"r"}"#,
            Some("r"),
        ),
        meaning("without_id_no_id_in_error", r#"{"type":"subscribe","topics":["weather"]}"#, None),
        one(
            "subscribe.shape_error_wins_over_meaning_error",
            BOTH,
            r#"{"type":"subscribe","topics":["weather"],"filters":["x"],"id":"r"}"#,
            Expectation::error(InvalidMessage, Some("r")),
        ),
        one(
            "subscribe.shape_error_wins_even_when_found_later",
            BOTH,
            r#"{"type":"subscribe","topics":[],"filters":{"severity":[1]},"id":"r"}"#,
            Expectation::error(InvalidMessage, Some("r")),
        ),
        one(
            "unsubscribe.not_held_is_not_an_error",
            UNSUB,
            r#"{"type":"unsubscribe","topics":["devices"],"id":"u"}"#,
            unconfirmed(&["devices"], Some("u")),
        ),
        one(
            "unsubscribe.unknown_topic",
            UNSUB,
            r#"{"type":"unsubscribe","topics":["weather"],"id":"u"}"#,
            Expectation::error(SubscriptionError, Some("u")),
        ),
        one(
            "unsubscribe.topics_empty",
            UNSUB,
            r#"{"type":"unsubscribe","topics":[],"id":"u"}"#,
            Expectation::error(SubscriptionError, Some("u")),
        ),
        one(
            "unsubscribe.topics_missing",
            UNSUB,
            r#"{"type":"unsubscribe","id":"u"}"#,
            Expectation::error(InvalidMessage, Some("u")),
        ),
        one(
            "unsubscribe.topic_not_a_string",
            UNSUB,
            r#"{"type":"unsubscribe","topics":[null],"id":"u"}"#,
            Expectation::error(InvalidMessage, Some("u")),
        ),
        Case::new(
            "subscribe.valid_request_right_after_an_error",
            "subscribe",
            AFTER_ERROR,
            |cx| async move {
                let mut conn = cx.connect(false).await?;
                let errors: [(&str, Expectation); 3] = [
                    ("not json", Expectation::error(InvalidMessage, None)),
                    (
                        r#"{"type":"subscribe","topics":["weather"],"id":"e"}"#,
                        Expectation::error(SubscriptionError, Some("e")),
                    ),
                    (r#"{"type":"nonsense","id":"x"}"#, Expectation::error(InvalidMessage, Some("x"))),
                ];
                for (text, want) in errors {
                    send_expect(&cx, &mut conn, text, want).await?;
                    let valid = r#"{"type":"subscribe","topics":["alerts"],"id":"ok"}"#;
                    send_expect(
                        &cx,
                        &mut conn,
                        valid,
                        Expectation::confirmed("subscription_confirmed", &["alerts"], Some("ok")),
                    )
                    .await?;
                }
                conn.close().await;
                Ok(())
            },
        ),
        Case::new("subscribe.pipelined_requests_answered_in_order", "subscribe", CONFIRM, |cx| async move {
            let mut conn = cx.connect(false).await?;
            let texts: Vec<String> = (0..20)
                .map(|i| format!(r#"{{"type":"subscribe","topics":["alerts"],"id":"p{i}"}}"#))
                .collect();
            let frames: Vec<_> = texts.iter().map(|t| crate::wire::OutFrame::text(t.as_str())).collect();
            let observation = conn.exchange(&frames, cx.answer_wait).await;
            conn.close().await;
            let ids: Vec<Option<&str>> = observation.answers.iter().map(|a| a.id.as_deref()).collect();
            let want: Vec<Option<String>> = (0..20).map(|i| Some(format!("p{i}"))).collect();
            if ids == want.iter().map(|s| s.as_deref()).collect::<Vec<_>>()
                && observation.end == crate::probe::End::Open
            {
                Ok(())
            } else {
                Err(super::case::Failure::new(
                    "20 subscribes p0..p19 in one write",
                    observation.describe(),
                    "20 confirmations, ids p0..p19 in order",
                ))
            }
        }),
    ]
}
