//! A small independent OpenFrame server for replaying findings against a second correct
//! implementation of PROTOCOL.md, one that checks in another order than the bundled server:
//! a publish's shape before its scope, and a lone surrogate escape in a topic kept as the raw
//! escape text (and echoed so in the error `message`). It ignores filters and validates only
//! what the replayed cases and the liveness probe need; it shares no code with the bundled
//! server's protocol module.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};

const STAMP: &str = "2024-03-20T10:00:00.000Z";
const TOPICS: [(&str, &str); 3] =
    [("devices", "device_update"), ("alerts", "alert_created"), ("system_status", "system_status")];

/// Connection id → (its outbound queue, the topics it holds).
type Peers = Arc<Mutex<HashMap<u64, (mpsc::UnboundedSender<String>, Vec<String>)>>>;

/// Starts the stub on a free loopback port; its `ws://` URL. It runs until the test ends.
pub async fn spawn() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("ws://{}/v1/ws", listener.local_addr().expect("addr"));
    let peers: Peers = Arc::default();
    tokio::spawn(async move {
        let mut next = 0u64;
        while let Ok((tcp, _)) = listener.accept().await {
            next += 1;
            tokio::spawn(serve(tcp, next, Arc::clone(&peers)));
        }
    });
    url
}

async fn serve(tcp: TcpStream, me: u64, peers: Peers) {
    let mut scope = false;
    // tungstenite's callback type fixes the (large) error response.
    #[allow(clippy::result_large_err)]
    let callback = |request: &Request, response: Response| {
        scope = request
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(has_publish_scope);
        Ok(response)
    };
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tcp, callback).await else { return };
    let established =
        json!({"type": "connection_established", "session_id": format!("stub-{me}"), "timestamp": STAMP});
    if ws.send(Message::text(established.to_string())).await.is_err() {
        return;
    }
    let (tx, mut rx) = mpsc::unbounded_channel();
    peers.lock().unwrap().insert(me, (tx.clone(), Vec::new()));
    loop {
        tokio::select! {
            out = rx.recv() => match out {
                Some(text) => if ws.send(Message::text(text)).await.is_err() { break },
                None => break,
            },
            message = ws.next() => match message {
                Some(Ok(Message::Text(text))) => {
                    for answer in answer(text.as_str(), scope, me, &peers) {
                        let _ = tx.send(answer);
                    }
                }
                Some(Ok(Message::Binary(_))) => {
                    let _ = tx.send(error("INVALID_MESSAGE", "binary frames are not supported", None));
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => break,
            },
        }
    }
    peers.lock().unwrap().remove(&me);
}

fn has_publish_scope(token: &str) -> bool {
    let claims = token.split('.').nth(1).and_then(|p| URL_SAFE_NO_PAD.decode(p).ok());
    let claims: Option<Value> = claims.and_then(|c| serde_json::from_slice(&c).ok());
    claims.and_then(|c| c["scope"].as_str().map(|s| s.split(' ').any(|s| s == "publish"))).unwrap_or(false)
}

/// An `error`; escapes of surrogates in `message` (kept as raw text when read) are written raw.
fn error(code: &str, message: &str, id: Option<&str>) -> String {
    let mut value = json!({"type": "error", "code": code, "message": message, "timestamp": STAMP});
    if let Some(id) = id {
        value["id"] = id.into();
    }
    value.to_string().replace("\\\\ud", "\\ud")
}

/// The answers to one text message.
fn answer(text: &str, scope: bool, me: u64, peers: &Peers) -> Vec<String> {
    // This implementation keeps an escape of a surrogate as its raw text.
    let lenient = text.replace("\\ud", "\\\\ud");
    let Ok(Value::Object(message)) = serde_json::from_str::<Value>(&lenient) else {
        return vec![error("INVALID_MESSAGE", "message must be a JSON object", None)];
    };
    let (id, id_ok) = match message.get("id") {
        None => (None, true),
        Some(Value::String(id)) if id.chars().count() <= 128 => (Some(id.as_str()), true),
        Some(_) => (None, false),
    };
    let invalid = |why: &str| vec![error("INVALID_MESSAGE", why, id)];
    match message.get("type").and_then(Value::as_str) {
        Some(kind @ ("subscribe" | "unsubscribe")) => {
            if !id_ok {
                return invalid("bad id");
            }
            let Some(topics) = message.get("topics").and_then(Value::as_array) else {
                return invalid("`topics` must be an array");
            };
            let Some(topics) = topics.iter().map(Value::as_str).collect::<Option<Vec<&str>>>() else {
                return invalid("every topic must be a string");
            };
            if topics.is_empty() {
                return vec![error("SUBSCRIPTION_ERROR", "no topics", id)];
            }
            if let Some(unknown) = topics.iter().find(|t| !TOPICS.iter().any(|(name, _)| name == *t)) {
                return vec![error("SUBSCRIPTION_ERROR", &format!("Invalid topic: {unknown}"), id)];
            }
            let mut held = peers.lock().unwrap();
            if let Some((_, subscribed)) = held.get_mut(&me) {
                if kind == "subscribe" {
                    subscribed.extend(topics.iter().map(|t| t.to_string()));
                } else {
                    subscribed.retain(|t| !topics.contains(&t.as_str()));
                }
            }
            let kind =
                if kind == "subscribe" { "subscription_confirmed" } else { "unsubscription_confirmed" };
            let mut confirmed = json!({"type": kind, "topics": topics, "timestamp": STAMP});
            if let Some(id) = id {
                confirmed["id"] = id.into();
            }
            vec![confirmed.to_string()]
        }
        // Shape and meaning first, scope last.
        Some("publish") => {
            if !id_ok {
                return invalid("bad id");
            }
            let topic = message.get("topic").and_then(Value::as_str);
            let Some((topic, event)) = TOPICS.iter().find(|(name, _)| Some(*name) == topic) else {
                return invalid("unknown topic");
            };
            if message.get("event").and_then(Value::as_str) != Some(event) {
                return invalid("wrong event");
            }
            let Some(data) = message.get("data").filter(|d| d.is_object()) else {
                return invalid("`data` must be an object");
            };
            if !scope {
                return vec![error("PERMISSION_ERROR", "no publish scope", id)];
            }
            let frame =
                json!({"type": "event", "topic": topic, "event": event, "data": data, "timestamp": STAMP});
            let mut delivered = 0u64;
            for (queue, held) in peers.lock().unwrap().values() {
                if held.iter().any(|t| t == topic) && queue.send(frame.to_string()).is_ok() {
                    delivered += 1;
                }
            }
            id.map(|id| {
                json!({"type": "publish_ack", "id": id, "delivered": delivered, "timestamp": STAMP})
                    .to_string()
            })
            .into_iter()
            .collect()
        }
        _ => invalid("unknown type"),
    }
}
