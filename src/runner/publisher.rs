//! Publishers: inject events on an open-model schedule (event `k` leaves at `start + k / rate`
//! whatever the server does; STYLE rule 10), over a WebSocket `publish` with an `id`, or
//! `POST /v1/events`, and record every answer on the board so subscribers' oracles know what
//! the target has certainly processed.

use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::time::{Instant, sleep_until};
use tokio_tungstenite::tungstenite::Message;

use super::connect::{ClientSession, Connected, WsStream};
use super::context::ShardCtx;
use crate::protocol::client::publish_json;
use crate::protocol::data::{ObjectView, raw_u64};
use crate::protocol::envelope::{Frame, envelope};
use crate::protocol::server_message::{ServerMessage, parse_server_message};
use crate::results::LatencyMetric;
use crate::scenario::plan::{Credential, Via};

const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs publisher `p` through its window.
pub async fn run(ctx: Rc<ShardCtx>, p: usize) {
    let plan = &ctx.run.plan.publishers[p];
    let start = ctx.run.clock.instant_at(ctx.run.schedules[p].start_us);
    // Connect a little ahead of the first event.
    tokio::select! {
        _ = ctx.run.stop.cancelled() => return,
        _ = sleep_until((start - Duration::from_millis(500)).into()) => {}
    }
    match plan.via {
        Via::WebSocket => publish_over_websocket(&ctx, p).await,
        Via::Http => publish_over_http(&ctx, p).await,
    }
}

/// The token a publisher presents: valid, with the `publish` scope.
fn publisher_token(ctx: &ShardCtx, p: usize) -> Option<String> {
    let name = &ctx.run.plan.publishers[p].name;
    ctx.run.credentials.token(Credential::Valid, name, true, p as u64)
}

/// Seqs sent and not yet answered, oldest first.
struct InFlight {
    p: usize,
    sent: VecDeque<(u64, Instant)>,
}

impl InFlight {
    /// Records the target's answer to `seq`: acked with `delivered`, or refused (`None`).
    fn answer(&mut self, ctx: &ShardCtx, seq: u64, delivered: Option<u64>, text: &str) {
        let Some(position) = self.sent.iter().position(|(s, _)| *s == seq) else {
            record_publisher_violation(
                ctx,
                "an answer to a publish that was not sent (or was answered before)",
                text,
            );
            return;
        };
        if position > 0 {
            record_publisher_violation(ctx, "publish answers out of order", text);
        }
        let (_, sent_at) = self.sent.drain(..=position).next_back().unwrap_or((seq, Instant::now()));
        let mut stats = ctx.stats.borrow_mut();
        let slot = ctx.publisher_slot();
        match delivered {
            Some(delivered) => {
                stats.histograms.record(LatencyMetric::PublishAck, sent_at.elapsed().as_micros() as u64);
                let c = &mut stats.counters[slot];
                c.publish_acks += 1;
                c.events_published += 1;
                c.server_reported_deliveries += delivered;
                let stage = ctx.run.schedules[self.p].stage_of(seq);
                if let Some(stage) = stats.stages.get_mut(stage) {
                    stage.counters.events_published += 1;
                }
            }
            None => {
                stats.counters[slot].publish_errors += 1;
                ctx.run.board.refuse(self.p, seq);
            }
        }
        ctx.run.board.set_answered(self.p, seq + 1);
    }
}

fn record_publisher_violation(ctx: &ShardCtx, detail: &str, text: &str) {
    ctx.stats.borrow_mut().counters[ctx.publisher_slot()].protocol_violations += 1;
    ctx.sample("protocol_violation", detail, text, "publishers");
}

/// Records a send: the lag against the schedule.
fn record_send(ctx: &ShardCtx, intended_us: u64) {
    let lag = ctx.run.clock.now_us().saturating_sub(intended_us);
    ctx.stats.borrow_mut().histograms.record(LatencyMetric::PublisherLag, lag);
}

async fn connect_websocket(ctx: &ShardCtx, p: usize) -> Option<WsStream> {
    let token = publisher_token(ctx, p);
    let session = ctx.run.connector.session();
    loop {
        let attempt = tokio::select! {
            _ = ctx.run.stop.cancelled() => return None,
            attempt = ctx.run.connector.connect(&session, token.as_deref(), false, None, p as u64) => attempt,
        };
        match attempt {
            Ok(Connected { mut ws, timings }) => {
                timings.record(&mut ctx.stats.borrow_mut(), ctx.publisher_slot());
                let first = tokio::time::timeout(ANSWER_TIMEOUT, ws.next()).await.ok().flatten();
                let text = match first {
                    Some(Ok(Message::Text(text))) => text,
                    _ => {
                        record_publisher_violation(ctx, "publisher got no connection_established", "");
                        return None;
                    }
                };
                if matches!(parse_server_message(&text), Ok(ServerMessage::ConnectionEstablished { .. })) {
                    ctx.stats.borrow_mut().counters[ctx.publisher_slot()].connections_opened += 1;
                    return Some(ws);
                }
                record_publisher_violation(
                    ctx,
                    "publisher's first message is not connection_established",
                    &text,
                );
                return None;
            }
            Err(error) => {
                ctx.stats.borrow_mut().counters[ctx.publisher_slot()].connections_failed += 1;
                ctx.sample("connection_failed", error.to_string(), "", "publishers");
                tokio::select! {
                    _ = ctx.run.stop.cancelled() => return None,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    }
}

async fn publish_over_websocket(ctx: &ShardCtx, p: usize) {
    let run = &ctx.run;
    let schedule = &run.schedules[p];
    let content = &run.contents[p];
    let Some(mut ws) = connect_websocket(ctx, p).await else { return };
    let mut in_flight = InFlight { p, sent: VecDeque::new() };
    let mut seq = 0;
    let mut lost = false;
    while seq < schedule.events && !lost {
        let intended_us = schedule.time_of(seq);
        let due = run.clock.instant_at(intended_us);
        tokio::select! {
            biased;
            _ = run.stop.cancelled() => break,
            message = ws.next() => lost = !on_answer(ctx, &mut in_flight, message),
            _ = sleep_until(due.into()) => {
                let data = content.data_json(seq, intended_us, run.board.answered(p));
                let text = publish_json(content.topic, &data, Some(&seq.to_string()));
                record_send(ctx, intended_us);
                in_flight.sent.push_back((seq, Instant::now()));
                lost = ws.send(Message::Text(text.into())).await.is_err();
                seq += 1;
            }
        }
    }
    // Collect the last answers, then leave.
    let deadline = Instant::now() + run.plan.harness.drain + Duration::from_secs(1);
    while !in_flight.sent.is_empty() && !lost {
        tokio::select! {
            _ = run.stop.cancelled() => break,
            _ = sleep_until(deadline) => break,
            message = ws.next() => lost = !on_answer(ctx, &mut in_flight, message),
        }
    }
    if lost {
        ctx.stats.borrow_mut().counters[ctx.publisher_slot()].unexpected_closes += 1;
        ctx.sample("unexpected_close", "the publisher's connection was closed", "", "publishers");
    }
    let _ = tokio::time::timeout(ANSWER_TIMEOUT, ws.close(None)).await;
}

/// Handles one message on a publisher connection; `false` when the connection is gone.
fn on_answer(
    ctx: &ShardCtx,
    in_flight: &mut InFlight,
    message: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
) -> bool {
    let text = match message {
        Some(Ok(Message::Text(text))) => text,
        Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return false,
        Some(Ok(_)) => return true,
    };
    match parse_server_message(&text) {
        Ok(ServerMessage::PublishAck { id, delivered }) => match id.parse::<u64>() {
            Ok(seq) => in_flight.answer(ctx, seq, Some(delivered), &text),
            Err(_) => {
                record_publisher_violation(ctx, "publish_ack with an id the publisher never used", &text)
            }
        },
        Ok(ServerMessage::Error { id: Some(id), .. }) if id.parse::<u64>().is_ok() => {
            ctx.sample("publish_refused", "the target refused a publish", &text, "publishers");
            in_flight.answer(ctx, id.parse().unwrap_or_default(), None, &text);
        }
        Ok(_) => record_publisher_violation(ctx, "unexpected message on a publisher connection", &text),
        Err(violation) => record_publisher_violation(ctx, &violation.detail, &text),
    }
    true
}

/// A keep-alive HTTP/1.1 connection for `POST /v1/events`.
struct HttpPublish {
    sender: SendRequest<Full<Bytes>>,
    authority: String,
    path: String,
    authorization: String,
}

impl HttpPublish {
    async fn open(ctx: &ShardCtx, p: usize, session: &ClientSession) -> Option<HttpPublish> {
        let (authority, base_path, secure) = split_http_url(&ctx.run.http_url)?;
        let stream = ctx.run.connector.open_http(session, &authority, secure).await.ok()?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await.ok()?;
        tokio::task::spawn_local(connection);
        let token = publisher_token(ctx, p).unwrap_or_default();
        Some(HttpPublish {
            sender,
            authority,
            path: format!("{}/v1/events", base_path.trim_end_matches('/')),
            authorization: format!("Bearer {token}"),
        })
    }

    /// Posts one event; the status and body.
    async fn post(&mut self, body: String) -> Option<(u16, Bytes)> {
        let request = http::Request::post(&self.path)
            .header(http::header::HOST, &self.authority)
            .header(http::header::AUTHORIZATION, &self.authorization)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .ok()?;
        let exchange = async {
            self.sender.ready().await.ok()?;
            let response = self.sender.send_request(request).await.ok()?;
            let status = response.status().as_u16();
            let body = response.into_body().collect().await.ok()?.to_bytes();
            Some((status, body))
        };
        tokio::time::timeout(ANSWER_TIMEOUT, exchange).await.ok().flatten()
    }
}

/// `http://host:port/prefix` → (`host:port`, `/prefix`, false); `https://` → (…, true).
fn split_http_url(url: &str) -> Option<(String, String, bool)> {
    let (rest, secure) = match url.strip_prefix("https://") {
        Some(rest) => (rest, true),
        None => (url.strip_prefix("http://")?, false),
    };
    let (authority, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
    let port = if secure { 443 } else { 80 };
    let authority =
        if authority.contains(':') { authority.to_owned() } else { format!("{authority}:{port}") };
    Some((authority, format!("/{path}"), secure))
}

async fn publish_over_http(ctx: &ShardCtx, p: usize) {
    let run = &ctx.run;
    let schedule = &run.schedules[p];
    let content = &run.contents[p];
    let mut connection = None;
    let session = ctx.run.connector.session();
    let mut in_flight = InFlight { p, sent: VecDeque::new() };
    for seq in 0..schedule.events {
        let intended_us = schedule.time_of(seq);
        tokio::select! {
            _ = run.stop.cancelled() => return,
            _ = sleep_until(run.clock.instant_at(intended_us).into()) => {}
        }
        if connection.is_none() {
            connection = HttpPublish::open(ctx, p, &session).await;
            if connection.is_none() {
                ctx.stats.borrow_mut().counters[ctx.publisher_slot()].connections_failed += 1;
                ctx.sample("connection_failed", format!("cannot open {}", run.http_url), "", "publishers");
                continue;
            }
        }
        let Some(http) = connection.as_mut() else { continue };
        let data = content.data_json(seq, intended_us, run.board.answered(p));
        let body = envelope(Frame::HttpBody, content.topic, &data);
        record_send(ctx, intended_us);
        in_flight.sent.push_back((seq, Instant::now()));
        match http.post(body).await {
            Some((202, body)) => {
                let text = String::from_utf8_lossy(&body);
                let delivered =
                    ObjectView::parse(&text).ok().and_then(|v| v.get("delivered").and_then(raw_u64));
                if delivered.is_none() {
                    record_publisher_violation(ctx, "202 without a numeric `delivered`", &text);
                }
                in_flight.answer(ctx, seq, Some(delivered.unwrap_or(0)), &text);
            }
            Some((status, body)) => {
                let text = String::from_utf8_lossy(&body);
                ctx.sample(
                    "publish_refused",
                    format!("POST /v1/events answered {status}"),
                    &text,
                    "publishers",
                );
                in_flight.answer(ctx, seq, None, &text);
            }
            None => {
                // No answer: the event may or may not have been processed, so it is never
                // counted as owed (refused) and the connection is reopened.
                in_flight.answer(ctx, seq, None, "");
                connection = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_urls_split_into_authority_and_path() {
        assert_eq!(
            split_http_url("http://127.0.0.1:8080"),
            Some(("127.0.0.1:8080".into(), "/".into(), false))
        );
        assert_eq!(split_http_url("http://host/api"), Some(("host:80".into(), "/api".into(), false)));
        assert_eq!(split_http_url("https://host"), Some(("host:443".into(), "/".into(), true)));
        assert_eq!(split_http_url("ftp://host"), None);
    }
}
