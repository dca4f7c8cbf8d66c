//! PROTOCOL.md §3–§5 with events: publish scope, validation and `publish_ack`, filter
//! semantics, the subscription boundary, exactly-once, ordering, `data` passthrough, atomic
//! subscribes, reconnects, and `POST /v1/events`. Publishing is an extension, so every case
//! here is one.

use serde_json::{Value, json};

use super::case::{Case, Ctx, Failure, Needs, send_expect};
use super::data::alert;
use crate::oracle::Expectation;
use crate::probe::{Conn, http};
use crate::protocol::ErrorCode::{InvalidMessage, PermissionError, SubscriptionError};
use crate::wire::OutFrame;

const PUBLISH: &str = "publish (*extension*): allowed only when the connection's token has the `publish` scope; otherwise \
PERMISSION_ERROR. `topic` must be a known topic, `event` the topic's event kind, and `data` must carry the topic's required \
fields with valid values; otherwise `INVALID_MESSAGE` (also for an unknown topic). (§4)";
const ACK: &str = "When `id` is present the server answers {\"type\":\"publish_ack\",\"id\":\"p-1\",\"delivered\":N,\"timestamp\":…} \
where N is the number of connections the event was queued to; without `id` it sends no answer. (§4)";
const PASSTHROUGH: &str =
    "`data` is delivered unchanged: every field the publisher put in it, known or not, arrives as sent. (§3)";
const FILTERS: &str = "A filter key applies to an event only when the event's `data` has that field; the event is delivered \
when, for every filter key that applies, `data[key]` is one of the listed values. A topic subscribed without filters gets every \
event of the topic. The filters of a subscribe … replace any filters those topics had. (§4)";
const ONCE: &str = "Exactly once per subscriber: an event published while a connection holds a matching subscription is \
delivered to it once — never twice, also when it subscribed to the topic twice. (§5.1)";
const ORDER: &str =
    "Order: events from one publisher connection reach each subscriber in publish order. (§5.2)";
const BOUNDARY: &str = "Subscription boundary: an event published after a `subscription_confirmed` is sent reaches the \
subscriber; an event published after an `unsubscription_confirmed` is sent does not. (§5.3)";
const ATOMIC: &str = "A subscribe is atomic: when anything is invalid nothing changes. (§4)";
const RECONNECT: &str = "Subscriptions belong to a connection: a new connection starts with none (§4, §5); an event reaches \
only connections holding a matching subscription.";
const HTTP_PUBLISH: &str = "`POST /v1/events` with `Authorization: Bearer <token with publish scope>` and body \
{\"topic\":…, \"event\":…, \"data\":…} → `202 {\"delivered\": N}`; `401` bad token, `403` no scope, `400` invalid body. (§4)";

fn device(marker: &str, seq: u64, extra: Value) -> Value {
    let mut data = json!({"id": marker, "status": "online", "last_seen": "2024-03-20T10:00:00Z", "marker": marker, "seq": seq});
    if let (Some(map), Some(extra)) = (data.as_object_mut(), extra.as_object()) {
        map.extend(extra.clone());
    }
    data
}

fn publish_text(topic: &str, data: &Value, id: Option<&str>) -> String {
    let event = match topic {
        "devices" => "device_update",
        "alerts" => "alert_created",
        _ => "system_status",
    };
    let mut message = json!({"type": "publish", "topic": topic, "event": event, "data": data});
    if let Some(id) = id {
        message["id"] = id.into();
    }
    message.to_string()
}

/// A connection subscribed with `subscribe` (its answer checked).
async fn subscriber(cx: &Ctx, subscribe: Value) -> Result<Conn, Failure> {
    let mut conn = cx.connect(false).await?;
    subscribe_on(cx, &mut conn, subscribe).await?;
    Ok(conn)
}

async fn subscribe_on(cx: &Ctx, conn: &mut Conn, subscribe: Value) -> Result<(), Failure> {
    let text = subscribe.to_string();
    let observation = conn.exchange(&[OutFrame::text(text.as_str())], cx.answer_wait).await;
    let ok = observation.answers.len() == 1
        && observation.answers[0].kind.as_deref() == Some("subscription_confirmed");
    if ok { Ok(()) } else { Err(Failure::new(text, observation.describe(), "subscription_confirmed")) }
}

/// Publishes with an id and waits for the ack; returns `delivered`.
async fn publish(
    cx: &Ctx,
    publisher: &mut Conn,
    topic: &str,
    data: &Value,
    id: &str,
) -> Result<u64, Failure> {
    let text = publish_text(topic, data, Some(id));
    let observation = send_expect(cx, publisher, &text, Expectation::publish_ack(id, None)).await?;
    Ok(observation.answers[0].value["delivered"].as_u64().unwrap_or(0))
}

/// The `data` of events carrying `marker` that reach `conn`: everything pending, waiting up to the
/// answer bound for at least `min`, and listening a little longer when `linger` (to see ones that must not come).
async fn events(cx: &Ctx, conn: &mut Conn, marker: &str, min: usize, linger: bool) -> Vec<Value> {
    let pick = |obs: Vec<crate::probe::Received>| {
        obs.into_iter()
            .filter(|r| r.is_event() && r.value["data"]["marker"] == marker)
            .map(|r| r.value["data"].clone())
    };
    let mut got: Vec<Value> = pick(conn.sync(cx.answer_wait).await.events).collect();
    let deadline = std::time::Instant::now() + cx.answer_wait;
    while got.len() < min && std::time::Instant::now() < deadline {
        let (more, end) = conn.collect_for(cx.quiet).await;
        got.extend(pick(more));
        if end != crate::probe::End::Open {
            break;
        }
    }
    if linger {
        let (more, _) = conn.collect_for(cx.quiet).await;
        got.extend(pick(more));
    }
    got
}

fn seqs(events: &[Value]) -> Vec<u64> {
    events.iter().filter_map(|d| d["seq"].as_u64()).collect()
}

fn publish_case(name: &str, scope: bool, text: &'static str, want: Expectation) -> Case {
    Case::new(format!("publish.{name}"), "publish", PUBLISH, move |cx| {
        let want = want.clone();
        async move {
            let mut conn = cx.connect(scope).await?;
            send_expect(&cx, &mut conn, text, want).await?;
            conn.close().await;
            Ok(())
        }
    })
    .needs(if scope { Needs::Publish } else { Needs::Token })
    .extension()
}

fn invalid_publish(name: &str, text: &'static str) -> Case {
    publish_case(name, true, text, Expectation::error(InvalidMessage, Some("p")).under("§4"))
}

pub fn cases() -> Vec<Case> {
    let mut cases = vec![
        publish_case(
            "without_scope_is_permission_error",
            false,
            r#"{"type":"publish","topic":"alerts","event":"alert_created","data":{"id":"a","title":"t","severity":"low","device_id":"d"},"id":"p"}"#,
            Expectation::error(PermissionError, Some("p")),
        ),
        invalid_publish(
            "unknown_topic_is_invalid_message",
            r#"{"type":"publish","topic":"weather","event":"x","data":{},"id":"p"}"#,
        ),
        invalid_publish(
            "wrong_event_kind",
            r#"{"type":"publish","topic":"alerts","event":"device_update","data":{"id":"a","title":"t","severity":"low","device_id":"d"},"id":"p"}"#,
        ),
        invalid_publish(
            "missing_required_field",
            r#"{"type":"publish","topic":"alerts","event":"alert_created","data":{"id":"a","title":"t","severity":"low"},"id":"p"}"#,
        ),
        invalid_publish(
            "severity_outside_the_set",
            r#"{"type":"publish","topic":"alerts","event":"alert_created","data":{"id":"a","title":"t","severity":"urgent","device_id":"d"},"id":"p"}"#,
        ),
        invalid_publish(
            "required_field_wrong_type",
            r#"{"type":"publish","topic":"alerts","event":"alert_created","data":{"id":1,"title":"t","severity":"low","device_id":"d"},"id":"p"}"#,
        ),
        invalid_publish(
            "last_seen_not_rfc3339",
            r#"{"type":"publish","topic":"devices","event":"device_update","data":{"id":"d","status":"online","last_seen":"yesterday"},"id":"p"}"#,
        ),
        invalid_publish(
            "metrics_out_of_range",
            r#"{"type":"publish","topic":"system_status","event":"system_status","data":{"status":"healthy","metrics":{"cpu_usage":101,"memory_usage":5}},"id":"p"}"#,
        ),
        invalid_publish(
            "data_not_an_object",
            r#"{"type":"publish","topic":"alerts","event":"alert_created","data":[1],"id":"p"}"#,
        ),
        invalid_publish(
            "data_missing",
            r#"{"type":"publish","topic":"alerts","event":"alert_created","id":"p"}"#,
        ),
        invalid_publish(
            "topic_not_a_string",
            r#"{"type":"publish","topic":["alerts"],"event":"alert_created","data":{},"id":"p"}"#,
        ),
        publish_case(
            "without_id_gets_no_answer",
            true,
            r#"{"type":"publish","topic":"alerts","event":"alert_created","data":{"id":"a","title":"t","severity":"low","device_id":"conform-nobody"}}"#,
            Expectation::nothing(),
        ),
    ];
    cases.push(
        Case::new("publish.ack_counts_connections_queued_to", "publish", ACK, |cx| async move {
            let marker = cx.marker("ack");
            let filter = json!({"type": "subscribe", "topics": ["alerts"], "filters": {"device_id": [marker]}});
            let mut a = subscriber(&cx, filter.clone()).await?;
            let mut b = subscriber(&cx, filter).await?;
            let mut p = cx.connect(true).await?;
            let mut delivered = 0;
            for attempt in 0..3 {
                delivered = publish(&cx, &mut p, "alerts", &alert(&marker, attempt, "low"), "p-1").await?;
                if delivered == 2 {
                    break;
                }
                // A connection closed by an earlier case may still be leaving; look again.
                tokio::time::sleep(cx.quiet).await;
            }
            let got = (events(&cx, &mut a, &marker, 1, false).await.len(), events(&cx, &mut b, &marker, 1, false).await.len());
            for c in [a, b, p] {
                c.close().await;
            }
            if delivered == 2 && got.0 >= 1 && got.1 >= 1 {
                Ok(())
            } else {
                Err(Failure::new(
                    "two subscribers of alerts filtered to one device_id; publish one matching alert with id p-1",
                    format!("delivered {delivered}; events received {got:?}"),
                    "publish_ack delivered 2, and both subscribers get the event",
                ))
            }
        })
        .needs(Needs::Publish),
    );
    cases.extend(event_cases());
    cases
}

fn event_cases() -> Vec<Case> {
    vec![
        Case::new("delivery.data_passthrough_unknown_fields", "delivery", PASSTHROUGH, |cx| async move {
            let marker = cx.marker("passthrough");
            let mut sub = subscriber(&cx, json!({"type": "subscribe", "topics": ["alerts"]})).await?;
            let mut p = cx.connect(true).await?;
            let mut data = alert(&marker, 1, "high");
            data["extra"] = json!({"big": 18446744073709551615u64, "neg": -9007199254740993i64, "f": 2.5, "null": null,
                "list": [1, "two", {"three": [3]}], "text": "é \u{1F600} \" \\ \n", "empty": {}});
            publish(&cx, &mut p, "alerts", &data, "p").await?;
            let got = events(&cx, &mut sub, &marker, 1, false).await;
            sub.close().await;
            p.close().await;
            if got.len() == 1 && got[0] == data {
                Ok(())
            } else {
                Err(Failure::new(publish_text("alerts", &data, Some("p")), format!("{got:?}"), "exactly that `data`, unchanged"))
            }
        })
        .needs(Needs::Publish),
        filter_case(
            "delivery.filter_delivers_only_listed_values",
            json!({"alerts": true, "filters": {"severity": ["high", "critical"]}}),
            &[("alerts", "low", json!({})), ("alerts", "high", json!({})), ("alerts", "medium", json!({})), ("alerts", "critical", json!({}))],
            &[1, 3],
        ),
        filter_case(
            "delivery.filter_key_applies_only_when_the_field_is_present",
            json!({"devices": true, "alerts": true, "filters": {"severity": ["high"]}}),
            &[("devices", "", json!({})), ("devices", "", json!({"severity": "low"})), ("devices", "", json!({"severity": "high"})), ("alerts", "low", json!({}))],
            &[0, 2],
        ),
        filter_case(
            "delivery.filter_never_matches_a_non_string_field",
            json!({"devices": true, "alerts": true, "filters": {"device_id": ["MARK"]}}),
            &[("devices", "", json!({"device_id": 5})), ("devices", "", json!({})), ("devices", "", json!({"device_id": null})), ("alerts", "low", json!({}))],
            &[1, 3],
        ),
        Case::new("delivery.filters_are_replaced_by_a_later_subscribe", "delivery", FILTERS, |cx| async move {
            let marker = cx.marker("replace");
            let mut sub = cx.connect(false).await?;
            subscribe_on(&cx, &mut sub, json!({"type": "subscribe", "topics": ["alerts"], "filters": {"severity": ["high"], "device_id": [marker]}})).await?;
            subscribe_on(&cx, &mut sub, json!({"type": "subscribe", "topics": ["alerts"], "filters": {"severity": ["low"], "device_id": [marker]}})).await?;
            let mut p = cx.connect(true).await?;
            publish(&cx, &mut p, "alerts", &alert(&marker, 0, "high"), "p0").await?;
            publish(&cx, &mut p, "alerts", &alert(&marker, 1, "low"), "p1").await?;
            let mut got = seqs(&events(&cx, &mut sub, &marker, 1, true).await);
            subscribe_on(&cx, &mut sub, json!({"type": "subscribe", "topics": ["alerts"]})).await?;
            publish(&cx, &mut p, "alerts", &alert(&marker, 2, "high"), "p2").await?;
            got.extend(seqs(&events(&cx, &mut sub, &marker, 1, true).await));
            sub.close().await;
            p.close().await;
            if got == [1, 2] {
                Ok(())
            } else {
                Err(Failure::new(
                    "subscribe alerts severity [high]; subscribe alerts severity [low]; publish high (0), low (1); subscribe alerts without filters; publish high (2)",
                    format!("events with seq {got:?}"),
                    "seq [1, 2]: each subscribe replaces the filters, none means every event",
                ))
            }
        })
        .needs(Needs::Publish),
        Case::new("delivery.exactly_once_with_double_subscribe", "delivery", ONCE, |cx| async move {
            let marker = cx.marker("once");
            let mut sub = cx.connect(false).await?;
            subscribe_on(&cx, &mut sub, json!({"type": "subscribe", "topics": ["alerts", "alerts"]})).await?;
            subscribe_on(&cx, &mut sub, json!({"type": "subscribe", "topics": ["alerts"]})).await?;
            let mut p = cx.connect(true).await?;
            for seq in 0..5 {
                publish(&cx, &mut p, "alerts", &alert(&marker, seq, "low"), "p").await?;
            }
            let got = seqs(&events(&cx, &mut sub, &marker, 5, true).await);
            sub.close().await;
            p.close().await;
            if got == [0, 1, 2, 3, 4] { Ok(()) } else {
                Err(Failure::new("subscribe [alerts, alerts]; subscribe [alerts]; publish 5 alerts", format!("seq {got:?}"), "each event exactly once: [0, 1, 2, 3, 4]"))
            }
        })
        .needs(Needs::Publish),
        Case::new("delivery.order_from_one_publisher", "delivery", ORDER, |cx| async move {
            let marker = cx.marker("order");
            let mut sub = subscriber(&cx, json!({"type": "subscribe", "topics": ["alerts"], "filters": {"device_id": [marker]}})).await?;
            let mut p = cx.connect(true).await?;
            let frames: Vec<OutFrame> = (0..300).map(|seq| OutFrame::text(publish_text("alerts", &alert(&marker, seq, "low"), None))).collect();
            p.send_frames(&frames).await;
            let got = seqs(&events(&cx, &mut sub, &marker, 300, false).await);
            sub.close().await;
            p.close().await;
            if got == (0..300).collect::<Vec<u64>>() { Ok(()) } else {
                Err(Failure::new("300 publishes in one burst, seq 0..299", format!("{} events, first out of place at {:?}", got.len(), got.iter().enumerate().find(|(i, s)| *i as u64 != **s)), "all 300 in publish order"))
            }
        })
        .needs(Needs::Publish),
        Case::new("delivery.unsubscribe_boundary", "delivery", BOUNDARY, |cx| async move {
            let marker = cx.marker("boundary");
            let mut sub = subscriber(&cx, json!({"type": "subscribe", "topics": ["alerts"], "filters": {"device_id": [marker]}, "id": "s"})).await?;
            let mut p = cx.connect(true).await?;
            publish(&cx, &mut p, "alerts", &alert(&marker, 0, "low"), "p0").await?;
            let before = seqs(&events(&cx, &mut sub, &marker, 1, false).await);
            let unsub = r#"{"type":"unsubscribe","topics":["alerts"],"id":"u"}"#;
            send_expect(&cx, &mut sub, unsub, Expectation::confirmed("unsubscription_confirmed", &["alerts"], Some("u"))).await?;
            publish(&cx, &mut p, "alerts", &alert(&marker, 1, "low"), "p1").await?;
            let after = seqs(&events(&cx, &mut sub, &marker, 0, true).await);
            sub.close().await;
            p.close().await;
            if before == [0] && after.is_empty() { Ok(()) } else {
                Err(Failure::new("subscribe; publish 0; unsubscribe (confirmed); publish 1", format!("before unsubscribe {before:?}, after {after:?}"), "[0] before, nothing after"))
            }
        })
        .needs(Needs::Publish),
        Case::new("delivery.failed_subscribe_changes_nothing", "delivery", ATOMIC, |cx| async move {
            let marker = cx.marker("atomic");
            let mut sub = subscriber(&cx, json!({"type": "subscribe", "topics": ["alerts"], "filters": {"severity": ["high"], "device_id": [marker]}})).await?;
            let bad = [
                (r#"{"type":"subscribe","topics":["devices","weather"],"id":"b1"}"#.to_string(), SubscriptionError),
                (r#"{"type":"subscribe","topics":["alerts"],"filters":{"severity":["urgent"]},"id":"b2"}"#.to_string(), SubscriptionError),
                (r#"{"type":"subscribe","topics":["alerts","devices"],"filters":{"severity":"low"},"id":"b3"}"#.to_string(), InvalidMessage),
            ];
            for (text, code) in &bad {
                let id = serde_json::from_str::<Value>(text).ok().and_then(|v| v["id"].as_str().map(str::to_owned));
                send_expect(&cx, &mut sub, text, Expectation::error(*code, id.as_deref())).await?;
            }
            let mut p = cx.connect(true).await?;
            publish(&cx, &mut p, "devices", &device(&marker, 0, json!({})), "p0").await?;
            publish(&cx, &mut p, "alerts", &alert(&marker, 1, "low"), "p1").await?;
            publish(&cx, &mut p, "alerts", &alert(&marker, 2, "high"), "p2").await?;
            let got = seqs(&events(&cx, &mut sub, &marker, 1, true).await);
            sub.close().await;
            p.close().await;
            if got == [2] { Ok(()) } else {
                Err(Failure::new("subscribe alerts severity [high]; three invalid subscribes; publish device (0), alert low (1), alert high (2)", format!("seq {got:?}"), "[2]: the failed subscribes changed nothing"))
            }
        })
        .needs(Needs::Publish),
        Case::new("delivery.reconnect_does_not_restore_subscriptions", "delivery", RECONNECT, |cx| async move {
            let marker = cx.marker("reconnect");
            let old = subscriber(&cx, json!({"type": "subscribe", "topics": ["alerts", "devices"]})).await?;
            old.close().await;
            let mut fresh = cx.connect(false).await?;
            let mut p = cx.connect(true).await?;
            publish(&cx, &mut p, "alerts", &alert(&marker, 0, "low"), "p0").await?;
            publish(&cx, &mut p, "devices", &device(&marker, 1, json!({})), "p1").await?;
            let got = seqs(&events(&cx, &mut fresh, &marker, 0, true).await);
            fresh.close().await;
            p.close().await;
            if got.is_empty() { Ok(()) } else {
                Err(Failure::new("subscribe, close, reconnect with the same token, publish", format!("seq {got:?}"), "no events on the new connection"))
            }
        })
        .needs(Needs::Publish),
    ]
}

/// A filter case: subscribe with `spec` (topics flagged true, `filters` with MARK replaced by the
/// marker), publish `events` (topic, severity, extra fields) and expect the ones at `want`.
fn filter_case(
    name: &'static str,
    spec: Value,
    events_spec: &[(&'static str, &'static str, Value)],
    want: &'static [u64],
) -> Case {
    let events_spec = events_spec.to_vec();
    Case::new(name, "delivery", FILTERS, move |cx| {
        let (spec, events_spec) = (spec.clone(), events_spec.clone());
        async move {
            let marker = cx.marker(name);
            let topics: Vec<&str> = ["devices", "alerts"].into_iter().filter(|t| spec[*t] == true).collect();
            let filters: Value = serde_json::from_str(&spec["filters"].to_string().replace("MARK", &marker))
                .unwrap_or_default();
            let subscribe = json!({"type": "subscribe", "topics": topics, "filters": filters});
            let mut sub = subscriber(&cx, subscribe.clone()).await?;
            let mut p = cx.connect(true).await?;
            let mut sent = vec![subscribe.to_string()];
            for (seq, (topic, severity, extra)) in events_spec.iter().enumerate() {
                let data = if *topic == "alerts" {
                    alert(&marker, seq as u64, severity)
                } else {
                    device(&marker, seq as u64, extra.clone())
                };
                sent.push(publish_text(topic, &data, Some("p")));
                publish(&cx, &mut p, topic, &data, "p").await?;
            }
            let got = seqs(&events(&cx, &mut sub, &marker, want.len(), true).await);
            sub.close().await;
            p.close().await;
            if got == want {
                Ok(())
            } else {
                Err(Failure::new(
                    sent.join("\n"),
                    format!("events with seq {got:?}"),
                    format!("exactly the events with seq {want:?}"),
                ))
            }
        }
    })
    .needs(Needs::Publish)
}

pub fn http_cases() -> Vec<Case> {
    let case = |name: &str, scope: Option<bool>, body: &'static str, status: u16| {
        Case::new(format!("http.publish_{name}"), "publish", HTTP_PUBLISH, move |cx| async move {
            let token = match scope {
                Some(publish) => cx.token(publish)?,
                None => "not-a-jwt".to_owned(),
            };
            let auth = format!("Bearer {token}");
            let response = http::request(
                &cx.target,
                "POST",
                "/v1/events",
                &[("Authorization", &auth), ("Content-Type", "application/json")],
                body,
                cx.answer_wait,
            )
            .await
            .map_err(|e| Failure::new(body, e.to_string(), format!("HTTP {status}")))?;
            let body_ok = status != 202
                || serde_json::from_str::<Value>(&response.body)
                    .ok()
                    .is_some_and(|v| v["delivered"].is_u64());
            if response.status == status && body_ok {
                Ok(())
            } else {
                Err(Failure::new(
                    format!("POST /v1/events {body}"),
                    format!("HTTP {} {}", response.status, response.body),
                    format!("HTTP {status}"),
                ))
            }
        })
        .needs(if scope == Some(true) { Needs::Publish } else { Needs::Token })
        .extension()
    };
    vec![
        case(
            "accepted_202",
            Some(true),
            r#"{"topic":"alerts","event":"alert_created","data":{"id":"a","title":"t","severity":"low","device_id":"conform-http"}}"#,
            202,
        ),
        case(
            "bad_token_401",
            None,
            r#"{"topic":"alerts","event":"alert_created","data":{"id":"a","title":"t","severity":"low","device_id":"d"}}"#,
            401,
        ),
        case(
            "no_scope_403",
            Some(false),
            r#"{"topic":"alerts","event":"alert_created","data":{"id":"a","title":"t","severity":"low","device_id":"d"}}"#,
            403,
        ),
        case(
            "invalid_body_400",
            Some(true),
            r#"{"topic":"alerts","event":"alert_created","data":{"id":"a"}}"#,
            400,
        ),
    ]
}
