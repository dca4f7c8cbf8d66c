//! A connection past `connection_established`: subscribe, receive and judge every message with
//! the connection's delivery oracle, resubscribe, stall and close as the group says, until the
//! run stops, churn reconnects or the target cuts it. One loop over one timer (`Deadlines`).

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use tokio::time::{Instant, sleep, sleep_until};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

use super::connect::WsStream;
use super::content::read_tag;
use super::context::{GroupRuntime, ShardCtx};
use super::oracle::{ConnectionOracle, Judgement, Phase};
use super::stage_counts::StagedCounts;
use crate::protocol::client::{subscribe_json, unsubscribe_json};
use crate::protocol::{ObjectView, ServerMessage, Topic, ViolationKind, close, parse_server_message};
use crate::results::LatencyMetric;
use crate::scenario::plan::Stall;

/// Time to wait for an answer that must come (confirmation, auth verdict, close).
pub(super) const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// How a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum End {
    /// The run is over.
    Stop,
    /// Churn: close and connect again.
    Reconnect,
    /// The stages took the client away (a ramp-down, the end of a spike): closed with 1000,
    /// owed nothing from then on.
    Leave,
    /// The target closed it.
    Cut,
}

/// Where a subscribed connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Subscribing {
        id: u64,
    },
    Active,
    Unsubscribing {
        id: u64,
    },
    /// Unsubscribed; subscribing again after the group's pause.
    Unsubscribed,
    Closing {
        end: End,
    },
}

/// When a connection's timed actions are due; far in the future when not scheduled.
struct Deadlines {
    reconnect: Instant,
    /// The stages take the client away.
    leave: Instant,
    resubscribe: Instant,
    /// Subscribe again after an unsubscribe.
    resume: Instant,
    stall: Instant,
    /// Give up waiting for the answer to our close.
    close: Instant,
}

impl Deadlines {
    /// The earliest deadline that applies in `step`.
    fn next(&self, step: Step) -> Instant {
        match step {
            Step::Closing { .. } => self.close,
            Step::Active => self.reconnect.min(self.leave).min(self.stall).min(self.resubscribe),
            Step::Unsubscribed => self.reconnect.min(self.leave).min(self.stall).min(self.resume),
            Step::Subscribing { .. } | Step::Unsubscribing { .. } => {
                self.reconnect.min(self.leave).min(self.stall)
            }
        }
    }
}

/// A connection past `connection_established`.
pub(super) struct Session<'a> {
    ctx: &'a ShardCtx,
    g: &'a GroupRuntime,
    rng: &'a mut ChaCha8Rng,
    oracle: ConnectionOracle,
    step: Step,
    next_id: u64,
    request_sent: Instant,
    /// When the current subscription was confirmed, until its first event arrives.
    awaiting_first_event: Option<Instant>,
    slow_consumer_error: bool,
    stalled: bool,
    /// This connection replaces an earlier one of the same client.
    reconnected: bool,
    resubscribed: bool,
}

impl<'a> Session<'a> {
    pub(super) fn new(
        ctx: &'a ShardCtx,
        g: &'a GroupRuntime,
        rng: &'a mut ChaCha8Rng,
        reconnected: bool,
    ) -> Session<'a> {
        Session {
            ctx,
            g,
            rng,
            oracle: ConnectionOracle::new(g.publishers.len()),
            step: Step::Active,
            next_id: 1,
            request_sent: Instant::now(),
            awaiting_first_event: None,
            slow_consumer_error: false,
            stalled: false,
            reconnected,
            resubscribed: false,
        }
    }

    fn churn_deadline(&mut self, every: Option<(Duration, Duration)>) -> Option<Instant> {
        every.map(|(low, high)| Instant::now() + random_between(self.rng, low, high))
    }

    /// Runs the connection; the stages end it at `leave_at`, if given.
    pub(super) async fn run(mut self, ws: &mut WsStream, leave_at: Option<Instant>) -> End {
        let run = &self.ctx.run;
        let far = Instant::now() + Duration::from_secs(86_400 * 365);
        let subscribe = self.subscribe_message();
        if self.send(ws, subscribe).await.is_err() {
            return self.cut(None);
        }
        let mut deadlines = Deadlines {
            reconnect: self.churn_deadline(self.g.plan.churn.reconnect_every).unwrap_or(far),
            leave: leave_at.unwrap_or(far),
            resubscribe: far,
            resume: far,
            stall: far,
            close: far,
        };
        // One stop future and one timer for the connection's life: re-creating them per
        // message would register and drop them with tokio on every event received.
        let stop = run.stop.cancelled();
        tokio::pin!(stop);
        let timer = sleep_until(far);
        tokio::pin!(timer);
        let mut armed = far;
        let end = loop {
            let closing = matches!(self.step, Step::Closing { .. });
            let next = deadlines.next(self.step);
            if next != armed {
                timer.as_mut().reset(next);
                armed = next;
            }
            tokio::select! {
                biased;
                _ = &mut stop, if !closing => {
                    deadlines.close = self.begin_close(ws, End::Stop).await;
                }
                _ = &mut timer => {
                    let now = Instant::now();
                    if closing {
                        // No close answer in time: what was owed cannot be judged; count it as a cut.
                        break self.cut(None);
                    } else if now >= deadlines.leave {
                        deadlines.close = self.begin_close(ws, End::Leave).await;
                    } else if now >= deadlines.reconnect {
                        deadlines.close = self.begin_close(ws, End::Reconnect).await;
                    } else if self.step == Step::Active && now >= deadlines.resubscribe {
                        deadlines.resubscribe = far;
                        if self.unsubscribe(ws).await.is_err() {
                            break self.cut(None);
                        }
                    } else if self.step == Step::Unsubscribed && now >= deadlines.resume {
                        deadlines.resume = far;
                        let subscribe = self.subscribe_message();
                        if self.send(ws, subscribe).await.is_err() {
                            break self.cut(None);
                        }
                    } else if now >= deadlines.stall {
                        deadlines.stall = far;
                        self.stall(self.g.plan.stall).await;
                    }
                }
                message = ws.next() => {
                    let Some(message) = message else { break self.ended_without_close() };
                    match message {
                        Ok(Message::Text(text)) => self.on_text(&text, ws.get_ref().last_read_us()),
                        Ok(Message::Binary(data)) => {
                            self.violation(ViolationKind::BinaryFrame, "binary frame from the server (§1: application messages are UTF-8 JSON objects in text frames)", &format!("{} bytes", data.len()));
                        }
                        Ok(Message::Close(frame)) => break self.on_close(frame.map(|f| u16::from(f.code))),
                        Ok(_) => {}
                        Err(_) => break self.ended_without_close(),
                    };
                    match self.step {
                        Step::Active if deadlines.resubscribe == far => {
                            deadlines.resubscribe = self.churn_deadline(self.g.plan.churn.resubscribe_every).unwrap_or(far);
                            if deadlines.stall == far && !self.stalled {
                                deadlines.stall = self.g.plan.stall.map_or(far, |s| Instant::now() + s.after);
                            }
                        }
                        Step::Unsubscribed if deadlines.resume == far => {
                            deadlines.resume = Instant::now() + self.g.plan.churn.resubscribe_pause;
                        }
                        _ => {}
                    }
                }
            }
        };
        self.ctx.stats.borrow_mut().clients_connected[self.g.index] -= 1;
        end
    }

    /// Sends an unsubscribe: what is acked by now is owed until its confirmation arrives.
    async fn unsubscribe(&mut self, ws: &mut WsStream) -> Result<(), ()> {
        self.oracle.on_leave_sent(&self.g.facts, &self.g.publishers);
        let id = self.take_id();
        self.step = Step::Unsubscribing { id };
        self.request_sent = Instant::now();
        self.send(ws, unsubscribe_json(&self.g.plan.topics, Some(&id.to_string()))).await
    }

    fn take_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn subscribe_message(&mut self) -> String {
        let id = self.take_id();
        self.step = Step::Subscribing { id };
        self.request_sent = Instant::now();
        self.oracle.on_subscribe_sent();
        subscribe_json(&self.g.plan.topics, &self.g.plan.filters, Some(&id.to_string()))
    }

    async fn send(&mut self, ws: &mut WsStream, text: String) -> Result<(), ()> {
        tokio::time::timeout(ANSWER_TIMEOUT, ws.send(Message::Text(text.into())))
            .await
            .map_err(drop)?
            .map_err(drop)
    }

    /// Stops reading for the stall's length (the run's end still interrupts it).
    async fn stall(&mut self, stall: Option<Stall>) {
        let Some(stall) = stall else { return };
        self.stalled = true;
        tokio::select! {
            _ = self.ctx.run.stop.cancelled() => {}
            _ = sleep(stall.length) => {}
        }
    }

    /// Sends our close: what is acked by now is owed, and must arrive before the server's close.
    async fn begin_close(&mut self, ws: &mut WsStream, end: End) -> Instant {
        self.oracle.on_leave_sent(&self.g.facts, &self.g.publishers);
        self.step = Step::Closing { end };
        let frame = CloseFrame { code: close::NORMAL.into(), reason: "".into() };
        let _ = tokio::time::timeout(ANSWER_TIMEOUT, ws.close(Some(frame))).await;
        Instant::now() + ANSWER_TIMEOUT
    }

    /// `stamp_us`: when the read that completed this message reached the socket, by the kernel.
    fn on_text(&mut self, text: &str, stamp_us: Option<u64>) {
        let now_us = self.ctx.run.clock.now_us();
        self.ctx.stats.borrow_mut().bytes_received += text.len() as u64;
        let message = match parse_server_message(text) {
            Ok(message) => message,
            Err(violation) => {
                self.violation(violation.kind, &violation.detail, text);
                return;
            }
        };
        match message {
            ServerMessage::Event { topic, data, .. } => self.on_event(topic, &data, now_us, stamp_us, text),
            ServerMessage::SubscriptionConfirmed { topics, id } => match self.step {
                Step::Subscribing { id: expected }
                    if id.as_deref() == Some(expected.to_string().as_str()) =>
                {
                    if topics != self.g.plan.topics {
                        self.violation(
                            ViolationKind::WrongFieldType,
                            "confirmed topics differ from the subscribe's (§4.1: the topics in the order the request first named them, duplicates removed)",
                            text,
                        );
                    }
                    let mut stats = self.ctx.stats.borrow_mut();
                    stats
                        .histograms
                        .record(LatencyMetric::Subscribe, self.request_sent.elapsed().as_micros() as u64);
                    drop(stats);
                    self.oracle.on_subscribed(now_us, &self.g.facts, &self.g.publishers);
                    // Time to first event is measured for re-subscriptions and reconnects made
                    // while events flow, not for the first subscription before publishing starts.
                    if (self.resubscribed || self.reconnected) && self.ctx.run.publishing_since(now_us) {
                        self.awaiting_first_event = Some(Instant::now());
                    }
                    self.step = Step::Active;
                }
                // An answer to a request made before we began closing.
                Step::Closing { .. } => {}
                _ => self.unexpected("unexpected subscription_confirmed", text),
            },
            ServerMessage::UnsubscriptionConfirmed { id, .. } => match self.step {
                Step::Unsubscribing { id: expected }
                    if id.as_deref() == Some(expected.to_string().as_str()) =>
                {
                    self.left(now_us);
                    self.ctx.stats.borrow_mut().counters[self.g.index].resubscribes += 1;
                    self.resubscribed = true;
                    self.step = Step::Unsubscribed;
                }
                Step::Closing { .. } => {}
                _ => self.unexpected("unexpected unsubscription_confirmed", text),
            },
            ServerMessage::Error { code, message, id } => {
                let answers_request = match self.step {
                    Step::Subscribing { id: pending } | Step::Unsubscribing { id: pending } => {
                        id.as_deref() == Some(pending.to_string().as_str())
                    }
                    _ => false,
                };
                if code == "CONNECTION_ERROR" && message == "slow consumer" {
                    self.slow_consumer_error = true;
                } else if answers_request {
                    self.ctx.stats.borrow_mut().counters[self.g.index].subscribe_failures += 1;
                    self.ctx.sample(
                        "subscribe_refused",
                        format!("{code}: {message}"),
                        text,
                        &self.g.plan.name,
                    );
                } else if !matches!(self.step, Step::Closing { .. }) {
                    self.ctx.sample("error_received", format!("{code}: {message}"), text, &self.g.plan.name);
                }
            }
            ServerMessage::ConnectionEstablished { .. } | ServerMessage::PublishAck { .. } => {
                self.unexpected("a message a subscriber must never get", text);
            }
        }
    }

    /// The leave was answered at `now_us`: the oracle settles what was owed.
    fn left(&mut self, now_us: u64) {
        let mut guard = self.ctx.stats.borrow_mut();
        let stats = &mut *guard;
        let mut counts = StagedCounts {
            group: &mut stats.counters[self.g.index],
            stages: &mut stats.stages,
            schedules: &self.ctx.run.schedules,
        };
        self.oracle.on_left(now_us, &self.g.facts, &self.g.publishers, &mut counts);
    }

    /// `now_us`: when the event was read; `stamp_us`: when it reached the socket, by the kernel.
    fn on_event(
        &mut self,
        topic: Topic,
        data: &ObjectView<'_>,
        now_us: u64,
        stamp_us: Option<u64>,
        text: &str,
    ) {
        let run = &self.ctx.run;
        let Some(tag) = read_tag(data, run.run_id) else {
            self.ctx.stats.borrow_mut().counters[self.g.index].foreign_events += 1;
            return;
        };
        let p = tag.publisher as usize;
        let Some(content) = run.contents.get(p).filter(|c| c.topic == topic) else {
            self.violation(
                ViolationKind::UnknownTopic,
                "event on a topic its publisher does not publish to (§3: data arrives exactly as published, so its tag names the publisher)",
                text,
            );
            return;
        };
        if content.mixed_value(tag.seq) != mixed_field(topic, data).as_deref().unwrap_or_default() {
            self.violation(
                ViolationKind::InvalidEventData,
                "event data changed in transit (§3: `data` MUST arrive exactly as published)",
                text,
            );
        }
        let group = self.g.index;
        let mut guard = self.ctx.stats.borrow_mut();
        let stats = &mut *guard;
        let stage = run.schedules[p].stage_of(tag.seq);
        // The kernel's stamp is the truth when there is one; never later than now (the run's
        // clock and the kernel's realtime clock can differ by a slew).
        let arrived_us = stamp_us.map_or(now_us, |stamp| stamp.min(now_us));
        if stamp_us.is_some() {
            stats.histograms.record(LatencyMetric::ReadDelay, now_us - arrived_us);
        }
        // A capacity step's warm-up is left out of its latency; every delivery is still counted.
        let latency = run.judged(tag.intended_us).then(|| arrived_us.saturating_sub(tag.intended_us));
        stats.record_delivery(group, stage, latency);
        if let Some(slot) =
            self.ctx.completion.borrow_mut().get_mut(p).and_then(|v| v.get_mut(tag.seq as usize))
        {
            *slot = (*slot).max(arrived_us);
        }
        let Some(slot) = self.g.slot_of[p] else {
            stats.counters[group].filter_violations += 1;
            drop(guard);
            self.ctx.sample(
                "filter_violation",
                format!("event on topic {topic}, which this client never subscribed to"),
                text,
                &self.g.plan.name,
            );
            return;
        };
        if !self.g.plan.filters.admits_data(data) {
            stats.counters[group].filter_violations += 1;
            drop(guard);
            self.ctx.sample(
                "filter_violation",
                "event excluded by the subscription's filters",
                text,
                &self.g.plan.name,
            );
            return;
        }
        let mut counts = StagedCounts {
            group: &mut stats.counters[group],
            stages: &mut stats.stages,
            schedules: &run.schedules,
        };
        let judgement = self.oracle.on_event(slot, p, (tag.seq, tag.acked), &self.g.facts, &mut counts);
        let counts_as_first = matches!(judgement, Judgement::Expected | Judgement::Uncertain)
            && self.oracle.phase() == Phase::Active;
        if let Some(since) = self.awaiting_first_event.filter(|_| counts_as_first) {
            stats.histograms.record(LatencyMetric::FirstEvent, since.elapsed().as_micros() as u64);
            self.awaiting_first_event = None;
        }
        drop(guard);
        let kind = match judgement {
            Judgement::Duplicate => "duplicate",
            Judgement::OutOfOrder => "out_of_order",
            Judgement::AfterUnsubscribe => "after_unsubscribe",
            Judgement::Expected | Judgement::Uncertain => return,
        };
        self.ctx.sample(kind, format!("publisher {p} seq {}", tag.seq), text, &self.g.plan.name);
    }

    /// The target closed the connection with `code` while we were not closing.
    fn on_close(&mut self, code: Option<u16>) -> End {
        if let Step::Closing { end } = self.step {
            let now_us = self.ctx.run.clock.now_us();
            self.left(now_us);
            return end;
        }
        self.cut(code)
    }

    /// The stream ended without a close frame (1006).
    fn ended_without_close(&mut self) -> End {
        if let Step::Closing { end } = self.step {
            // Our close was sent and the server hung up: everything queued before it came first.
            let now_us = self.ctx.run.clock.now_us();
            self.left(now_us);
            return end;
        }
        self.cut(Some(close::ABNORMAL))
    }

    /// A close we did not ask for: a slow-consumer cut when the group stalls, else unexpected.
    fn cut(&mut self, code: Option<u16>) -> End {
        self.oracle.on_cut();
        let slow_group = self.g.plan.stall.is_some();
        let slow = slow_group
            && (self.slow_consumer_error
                || code == Some(close::TRY_AGAIN_LATER)
                || (self.stalled && code == Some(close::ABNORMAL)));
        let mut stats = self.ctx.stats.borrow_mut();
        if slow {
            stats.counters[self.g.index].slow_consumer_closes += 1;
        } else {
            stats.counters[self.g.index].unexpected_closes += 1;
            drop(stats);
            let detail = format!(
                "closed by the target with {}",
                code.map_or("no close frame".to_owned(), |c| c.to_string())
            );
            self.ctx.sample("unexpected_close", detail, "", &self.g.plan.name);
        }
        End::Cut
    }

    fn violation(&self, kind: ViolationKind, detail: &str, text: &str) {
        self.ctx.stats.borrow_mut().record_violation(self.g.index, kind);
        self.ctx.sample("protocol_violation", detail, text, &self.g.plan.name);
    }

    fn unexpected(&self, detail: &str, text: &str) {
        self.ctx.stats.borrow_mut().counters[self.g.index].protocol_violations += 1;
        self.ctx.sample("protocol_violation", detail, text, &self.g.plan.name);
    }
}

/// The value of the field the publisher's mix chooses (`severity` for alerts, else `status`).
fn mixed_field<'a>(topic: Topic, data: &ObjectView<'a>) -> Option<std::borrow::Cow<'a, str>> {
    data.get_str(if topic == Topic::Alerts { "severity" } else { "status" })
}

/// A uniform draw in `[low, high)`; `low` when the range is empty.
pub(super) fn random_between(rng: &mut ChaCha8Rng, low: Duration, high: Duration) -> Duration {
    if high <= low {
        low
    } else {
        Duration::from_secs_f64(rng.random_range(low.as_secs_f64()..high.as_secs_f64()))
    }
}
