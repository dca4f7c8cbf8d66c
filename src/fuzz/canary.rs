//! Collateral damage: a few canary subscribers stay connected through the whole run and
//! receive a steady stream of events from their own publisher. A canary that loses, repeats or
//! reorders an event, is disconnected, or sees an event later than the bound is damage, and a
//! finding, even if nothing crashed. Every canary connection, the publisher's too, reads for as
//! long as it is open.

use std::time::{Duration, Instant};

use serde_json::json;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::exec::open_established;
use crate::probe::{Credentials, End, Presented, Target};
use crate::wire::OutFrame;

/// Canary subscribers.
const SUBSCRIBERS: usize = 2;
/// Interval between canary events.
const PERIOD: Duration = Duration::from_millis(20);

/// What the canaries saw.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct CanaryReport {
    pub published: u64,
    pub received: u64,
    /// Each instance of damage, with the seconds into the run it was seen.
    pub damage: Vec<String>,
}

/// Runs the canaries until `stop`, then lets the subscribers drain; `None` when they cannot run
/// (no publish token).
pub async fn run(
    target: Target,
    creds: Credentials,
    marker: String,
    bound: Duration,
    stop: CancellationToken,
) -> Option<CanaryReport> {
    let publish_token = creds.token("canary", true)?;
    let token = creds.token("canary", false)?;
    let started = Instant::now();
    let mut subscribers = JoinSet::new();
    for n in 0..SUBSCRIBERS {
        let mut conn = open_established(&target, &Presented::bearer(&token), bound).await.ok()?;
        let subscribe =
            json!({"type": "subscribe", "topics": ["alerts"], "filters": {"device_id": [marker]}})
                .to_string();
        conn.exchange(&[OutFrame::text(subscribe.as_str())], bound).await;
        let (marker, stop) = (marker.clone(), stop.clone());
        subscribers.spawn(async move {
            let (mut next, mut received, mut damage) = (1u64, 0u64, Vec::new());
            let mut stopped_at: Option<Instant> = None;
            loop {
                if stop.is_cancelled() && stopped_at.is_none() {
                    stopped_at = Some(Instant::now());
                }
                if stopped_at.is_some_and(|at| at.elapsed() > bound) {
                    break;
                }
                match conn.next_message(Duration::from_millis(100)).await {
                    Ok(m) if m.is_event() && m.value["data"]["device_id"] == marker.as_str() => {
                        let seq = m.value["data"]["seq"].as_u64().unwrap_or(0);
                        let sent_ms = m.value["data"]["sent_ms"].as_u64().unwrap_or(0);
                        let late_ms = ((crate::protocol::jwt::unix_now_s() * 1000.0) as u64).saturating_sub(sent_ms);
                        if seq != next {
                            damage.push(format!("canary {n} at {:.1}s: event {seq} arrived where {next} was due", started.elapsed().as_secs_f64()));
                        }
                        if late_ms > bound.as_millis() as u64 {
                            damage.push(format!("canary {n} at {:.1}s: event {seq} arrived {late_ms} ms after it was published", started.elapsed().as_secs_f64()));
                        }
                        next = seq + 1;
                        received += 1;
                        if m.value["data"]["last"] == true {
                            break;
                        }
                    }
                    Ok(_) | Err(End::Silent) | Err(End::Open) => {}
                    Err(end) => {
                        damage.push(format!("canary {n} at {:.1}s: {}", started.elapsed().as_secs_f64(), end.describe()));
                        break;
                    }
                }
            }
            conn.close().await;
            (received, damage, next - 1)
        });
    }
    let mut publisher = open_established(&target, &Presented::bearer(&publish_token), bound).await.ok()?;
    let mut seq = 0u64;
    let mut damage = Vec::new();
    let mut tick = tokio::time::interval(PERIOD);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => {}
            // The publisher reads for as long as it is open: its acks and any error (its pings
            // are answered by the connection itself).
            answer = publisher.next_message(Duration::from_secs(1)) => match answer {
                Ok(m) if m.kind.as_deref() == Some("error") => {
                    damage.push(format!(
                        "canary publisher at {:.1}s: a publish was refused: {}",
                        started.elapsed().as_secs_f64(),
                        m.text
                    ));
                    continue;
                }
                Ok(_) | Err(End::Silent) => continue,
                Err(end) => {
                    damage.push(format!(
                        "canary publisher at {:.1}s: {}",
                        started.elapsed().as_secs_f64(),
                        end.describe()
                    ));
                    break;
                }
            },
        }
        seq += 1;
        let data = json!({"id": "c", "title": "canary", "severity": "low", "device_id": marker, "seq": seq,
            "sent_ms": (crate::protocol::jwt::unix_now_s() * 1000.0) as u64});
        let text =
            json!({"type": "publish", "topic": "alerts", "event": "alert_created", "data": data}).to_string();
        if !publisher.send_text(&text).await {
            damage.push(format!(
                "canary publisher at {:.1}s: connection lost",
                started.elapsed().as_secs_f64()
            ));
            break;
        }
    }
    seq += 1;
    let last = json!({"type": "publish", "topic": "alerts", "event": "alert_created",
        "data": {"id": "c", "title": "canary", "severity": "low", "device_id": marker, "seq": seq, "last": true,
                 "sent_ms": (crate::protocol::jwt::unix_now_s() * 1000.0) as u64}});
    publisher.send_text(&last.to_string()).await;
    let mut report = CanaryReport { published: seq, received: 0, damage };
    while let Some(joined) = subscribers.join_next().await {
        if let Ok((received, damage, last_seen)) = joined {
            report.received += received;
            report.damage.extend(damage);
            if last_seen < seq && report.damage.is_empty() {
                report.damage.push(format!("a canary saw events up to {last_seen} of {seq}"));
            }
        }
    }
    publisher.close().await;
    Some(report)
}
