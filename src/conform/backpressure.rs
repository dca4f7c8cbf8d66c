//! PROTOCOL.md §5 rule 5: a subscriber that stops reading is cut off with 1013 while the
//! publisher and the other subscribers carry on.

use std::time::{Duration, Instant};

use serde_json::json;
use tokio::net::TcpStream;

use super::case::{Case, Ctx, Failure, Needs};
use super::data::alert;
use crate::probe::conn::{is_established, secure, upgrade_request};
use crate::probe::{Conn, End, Presented, Upgrade};
use crate::wire::{OutFrame, RawSocket};

const SLOW: &str = "Slow consumers: every connection has a bounded outbound queue (default 4,096 messages). When it is full \
the server does not block the publisher and does not grow memory: it sends {\"type\":\"error\",\"code\":\"CONNECTION_ERROR\",\
\"message\":\"slow consumer\",…} when it can and closes with code 1013 within 1 s of the overflow, waiting at most 1 s more for \
the close handshake (a client that is not reading may therefore see 1006). Other subscribers are not delayed by it. (§5.5)";

/// Events published per round; the last of each carries an id, and its ack tells whether the
/// slow subscriber still had room.
const ROUND: u64 = 500;
/// Upper bound on events published before giving up on an overflow.
const MAX_EVENTS: u64 = 40_000;

pub fn cases() -> Vec<Case> {
    vec![
        Case::new(
            "backpressure.slow_consumer_closed_1013_others_unaffected",
            "backpressure",
            SLOW,
            |cx| async move { slow_consumer(&cx).await },
        )
        .needs(Needs::Publish),
    ]
}

/// A connection whose socket has a tiny receive buffer, so the server's queue for it fills fast.
async fn tiny_buffer_conn(cx: &Ctx) -> Result<Conn, Failure> {
    let fail = |e: String| Failure::new("upgrade with a small receive buffer", e, "connection_established");
    let addr = tokio::net::lookup_host(&cx.target.authority)
        .await
        .map_err(|e| fail(e.to_string()))?
        .next()
        .ok_or_else(|| fail("no address".into()))?;
    let socket = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, None)
        .map_err(|e| fail(e.to_string()))?;
    let _ = socket.set_recv_buffer_size(4096);
    socket.connect(&addr.into()).map_err(|e| fail(e.to_string()))?;
    socket.set_nonblocking(true).map_err(|e| fail(e.to_string()))?;
    let stream = TcpStream::from_std(socket.into()).map_err(|e| fail(e.to_string()))?;
    let stream = secure(stream, &cx.target, cx.answer_wait).await.map_err(|e| fail(e.to_string()))?;
    let request = upgrade_request(&cx.target, &Presented::bearer(&cx.token(false)?));
    let (sock, response) = RawSocket::upgrade(stream, request.as_bytes(), cx.answer_wait)
        .await
        .map_err(|e| fail(e.to_string()))?;
    let Upgrade::Switched(mut conn) = Conn::after_upgrade(sock, response) else {
        return Err(fail("refused".into()));
    };
    match conn.next_message(cx.answer_wait).await {
        Ok(m) if is_established(&m) => Ok(conn),
        other => Err(fail(format!("{other:?}"))),
    }
}

async fn slow_consumer(cx: &Ctx) -> Result<(), Failure> {
    let marker = cx.marker("slow");
    let subscribe =
        json!({"type": "subscribe", "topics": ["alerts"], "filters": {"device_id": [marker]}}).to_string();
    let confirm = |obs: &crate::probe::Observation| {
        obs.answers.iter().any(|a| a.kind.as_deref() == Some("subscription_confirmed"))
    };
    let mut slow = tiny_buffer_conn(cx).await?;
    let mut healthy = cx.connect(false).await?;
    for conn in [&mut slow, &mut healthy] {
        let obs = conn.exchange(&[OutFrame::text(subscribe.as_str())], cx.answer_wait).await;
        if !confirm(&obs) {
            return Err(Failure::new(subscribe.clone(), obs.describe(), "subscription_confirmed"));
        }
    }
    // From here the slow subscriber does not read until the publisher is done.
    slow.stop_reading();
    // The healthy subscriber reads everything, concurrently, until it has seen the last event.
    let reader_marker = marker.clone();
    let reader = tokio::spawn(async move {
        let (mut next, mut in_order, mut last_gap) = (0u64, true, Duration::ZERO);
        let mut at = Instant::now();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            match healthy.next_message(Duration::from_secs(5)).await {
                Ok(m) if m.is_event() && m.value["data"]["marker"] == reader_marker.as_str() => {
                    in_order &= m.value["data"]["seq"].as_u64() == Some(next);
                    next += 1;
                    last_gap = last_gap.max(at.elapsed());
                    at = Instant::now();
                    if m.value["data"]["last"] == true {
                        break;
                    }
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        healthy.close().await;
        (next, in_order, last_gap)
    });
    let mut publisher = cx.connect(true).await?;
    let pad = "x".repeat(1024);
    let (mut seq, mut overflowed, mut slowest_round) = (0u64, false, Duration::ZERO);
    while seq < MAX_EVENTS && !overflowed {
        let started = Instant::now();
        let frames: Vec<OutFrame> = (0..ROUND)
            .map(|i| {
                let mut data = alert(&marker, seq + i, "low");
                data["pad"] = pad.as_str().into();
                let mut message =
                    json!({"type": "publish", "topic": "alerts", "event": "alert_created", "data": data});
                if i == ROUND - 1 {
                    message["id"] = format!("round-{seq}").into();
                }
                OutFrame::text(message.to_string())
            })
            .collect();
        seq += ROUND;
        let obs = publisher.exchange(&frames, cx.answer_wait * 2).await;
        slowest_round = slowest_round.max(started.elapsed());
        let ack = obs.answers.iter().find(|a| a.kind.as_deref() == Some("publish_ack"));
        let Some(ack) = ack else {
            return Err(Failure::new(
                format!("{ROUND} publishes, the last with an id"),
                obs.describe(),
                "a publish_ack; the publisher is never blocked",
            ));
        };
        overflowed = ack.value["delivered"].as_u64() == Some(1);
    }
    let mut last = alert(&marker, seq, "low");
    last["last"] = true.into();
    let last_text =
        json!({"type": "publish", "topic": "alerts", "event": "alert_created", "data": last, "id": "last"})
            .to_string();
    publisher.exchange(&[OutFrame::text(last_text.as_str())], cx.answer_wait).await;
    let published = seq + 1;
    // Now the slow subscriber reads what it was sent: events, maybe the error, then the close.
    let read_started = Instant::now();
    let (seen, end) = slow.read_until_closed(Duration::from_secs(5)).await;
    let slow_error = seen.iter().any(|m| m.is_error("CONNECTION_ERROR"));
    let bad_messages: Vec<&str> = seen
        .iter()
        .filter(|m| !m.is_event() && !m.is_error("CONNECTION_ERROR"))
        .map(|m| m.text.as_str())
        .collect();
    let (healthy_got, healthy_in_order, healthy_gap) = reader.await.unwrap_or((0, false, Duration::MAX));
    publisher.close().await;
    let sent = format!(
        "two subscribers of alerts filtered to one device_id, one with a 4 KiB receive buffer that stops reading; \
         {published} alerts of ~1 KiB published in rounds of {ROUND}"
    );
    let received = format!(
        "overflow seen in acks: {overflowed}; slow subscriber: {} events, CONNECTION_ERROR: {slow_error}, then {} ({:.1}s of reading), \
         other messages {bad_messages:?}; healthy subscriber: {healthy_got}/{published} events, in order: {healthy_in_order}, \
         longest gap {healthy_gap:?}; slowest publish round {slowest_round:?}",
        seen.len() - usize::from(slow_error),
        end.describe(),
        read_started.elapsed().as_secs_f64()
    );
    let closed_ok = matches!(end, End::Closed(Some(1013)) | End::Closed(None));
    let ok =
        overflowed && closed_ok && bad_messages.is_empty() && healthy_got == published && healthy_in_order;
    if ok {
        Ok(())
    } else {
        Err(Failure::new(
            sent,
            received,
            "the slow subscriber is closed with 1013 (or 1006) after its queue overflows (seen as delivered dropping to 1); \
             the publisher keeps getting acks; the healthy subscriber gets every event in order",
        ))
    }
}
