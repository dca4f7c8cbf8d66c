//! One WebSocket connection after the upgrade: authentication outcome, the message loop, the
//! outbound queue writer, liveness pings, token expiry and every way a connection ends.
//!
//! One task per connection, no split stream: the loop waits on inbound frames, the outbound
//! queue, the ping timer and the interrupts (shutdown, slow-consumer overflow, token expiry).
//! A write that blocks on a client that does not read is itself raced against the interrupts,
//! so a slow consumer is cut within the bound of §5 rule 5 whatever its socket does.

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant as StdInstant};

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior, sleep_until};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError, ProtocolError};
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_util::sync::CancellationToken;

use super::Shared;
use super::cluster::close_gate::CloseHold;
use super::cluster::{AckTo, BROKER_TIMEOUT, LinkDown};
use super::delay_line::DelayLine;
use super::faults::{DEEP_NESTING, FaultDice, WriteAction};
use super::hub::{ConnId, Outbox, Overflow};
use super::metrics::ServerMetrics;
use super::throttle::Throttle;
use crate::protocol::client::{Rejection, binary_frame_rejection};
use crate::protocol::jwt::{TokenError, VerifiedToken, unix_now_s};
use crate::protocol::server_message as out;
use crate::protocol::{ClientMessage, ErrorCode, Topic, close, json_depth, parse_client_message, timestamp};

/// How long the server waits for a close handshake, and at most for a last error message.
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// How every event frame the server writes begins (`server_message::event_json`).
const EVENT_PREFIX: &str = r#"{"type":"event""#;
/// Longest a `reorder` fault holds an event back when no later event comes to overtake it.
const HOLD_BACK_LIMIT: Duration = Duration::from_millis(20);
/// Frames taken from the outbound queue per write.
const WRITE_BATCH: usize = 128;

/// What the upgrade request's token and the connection count decided.
#[derive(Debug)]
pub enum Admission {
    Accepted(VerifiedToken),
    BadToken(TokenError),
    AtLimit,
}

/// Why a connection ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    PeerClosed,
    Shutdown,
    SlowConsumer,
    TokenExpired,
    PingTimeout,
    /// A framing, UTF-8 or size error: close with this code.
    Violation(u16),
    /// A fault asked for it.
    Faulted(u16),
    Hung,
}

/// Runs one upgraded connection to its end. In cluster mode `close_hold` holds the client's
/// Close frame back until the connection has everything it is owed (`cluster::close_gate`).
pub async fn run<S>(
    ws: WebSocketStream<S>,
    admission: Admission,
    shared: Arc<Shared>,
    close_hold: Option<Arc<CloseHold>>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let metrics = &shared.metrics;
    let mut ws = ws;
    match admission {
        Admission::BadToken(_) => {
            ServerMetrics::inc(&metrics.auth_failures);
            let error = error_frame(&shared, ErrorCode::AuthError, "Invalid token", None);
            close_with(&mut ws, Some(error), close::POLICY_VIOLATION, "invalid token").await;
        }
        Admission::AtLimit => {
            ServerMetrics::inc(&metrics.connections_rejected_limit);
            let error = error_frame(&shared, ErrorCode::ConnectionError, "server at connection limit", None);
            close_with(&mut ws, Some(error), close::TRY_AGAIN_LATER, "connection limit").await;
        }
        Admission::Accepted(token) => {
            let conn = shared.next_conn_id();
            ServerMetrics::inc(&metrics.connections_opened);
            let mut session = Session::new(conn, token, &shared);
            if let Some(hold) = close_hold {
                hold.arm();
                session.close_arrived = Some(CloseArrived::new(Arc::clone(&hold)));
                session.close_hold = Some(hold);
            }
            session.run(ws).await;
            shared.hub.disconnect(conn);
        }
    }
}

/// Cluster mode: what a message asks of the broker, done by the message loop before it reads on.
enum ClusterRequest {
    /// Send the event to every process; the ack (if any) is sent when it comes back here.
    Publish { frame: String, ack: Option<AckTo> },
    /// Pass the barrier, then unsubscribe and confirm.
    Unsubscribe { topics: Vec<Topic>, id: Option<String> },
}

/// The state of an accepted connection.
struct Session<'a> {
    conn: ConnId,
    token: VerifiedToken,
    shared: &'a Shared,
    outbox: Outbox,
    queue: mpsc::Receiver<Utf8Bytes>,
    interrupts: Interrupts,
    dice: FaultDice,
    held_back: Option<Utf8Bytes>,
    /// The `delay=F:D` fault: frames held, made on the first (boxed: most servers never delay).
    delayed: Option<Box<DelayLine>>,
    /// The `throttle=N` fault: whether the first frame of the write batch waits for its slot.
    pacing: Pacing,
    unanswered_pings: u32,
    /// Cluster mode: set by the message just read, carried out before the next is read. Boxed,
    /// so that a request's strings do not size every connection, cluster or not.
    cluster_request: Option<Box<ClusterRequest>>,
    /// Cluster mode: the client's Close frame, held back until what it is owed is written.
    close_hold: Option<Arc<CloseHold>>,
    /// Cluster mode: resolves when the held Close frame waits; `None` once it has.
    close_arrived: Option<CloseArrived>,
}

/// The `throttle=N` fault's state of a connection's writer. While the first frame of the batch
/// waits for its slot, the connection reads on (a Close, a ping's answer) but takes nothing more
/// from its queue, so the excess waits there as on a server that is out of capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pacing {
    /// No frame is waiting.
    Free,
    /// The batch's first frame may leave at this instant.
    Until(Instant),
    /// The batch's first frame has had its slot: it leaves without asking the bucket again.
    SlotCame,
}

/// Resolves once the client's Close frame is held (`CloseHold::close_arrived`). One boxed
/// future for the connection's life, polled through a pointer: inline in the message loop's
/// `select!`, its `Notified` would size every connection's task, cluster or not.
struct CloseArrived(Pin<Box<dyn Future<Output = ()> + Send>>);

impl CloseArrived {
    fn new(hold: Arc<CloseHold>) -> CloseArrived {
        CloseArrived(Box::pin(async move { hold.close_arrived().await }))
    }
}

/// What can cut a connection short at any await point: shutdown, slow-consumer overflow, token
/// expiry. One future for the connection's life, so waiting on it between messages registers
/// nothing anew with the runtime.
struct Interrupts(Pin<Box<dyn Future<Output = End> + Send>>);

impl Interrupts {
    fn new(shutdown: CancellationToken, overflow: Arc<Overflow>, expires_at: Option<Instant>) -> Interrupts {
        Interrupts(Box::pin(async move {
            let expiry = async {
                match expires_at {
                    Some(at) => sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => End::Shutdown,
                _ = overflow.wait() => End::SlowConsumer,
                _ = expiry => End::TokenExpired,
            }
        }))
    }

    /// Resolves when one of the interrupts fires; not to be awaited again after that.
    async fn fired(&mut self) -> End {
        self.0.as_mut().await
    }
}

impl<'a> Session<'a> {
    fn new(conn: ConnId, token: VerifiedToken, shared: &'a Shared) -> Session<'a> {
        let (outbox, queue) = Outbox::new(shared.config.outbound_queue);
        let expires_at = (!shared.config.faults.protocol.accept_expired_tokens).then(|| {
            let remaining = (token.expires_at_s - unix_now_s()).max(0.0);
            Instant::now() + Duration::from_secs_f64(remaining.min(1e9))
        });
        let interrupts = Interrupts::new(shared.shutdown.child_token(), outbox.overflow(), expires_at);
        Session {
            conn,
            token,
            shared,
            outbox,
            queue,
            interrupts,
            dice: FaultDice::new(conn),
            held_back: None,
            delayed: None,
            pacing: Pacing::Free,
            unanswered_pings: 0,
            cluster_request: None,
            close_hold: None,
            close_arrived: None,
        }
    }

    async fn run<S: AsyncRead + AsyncWrite + Unpin>(mut self, mut ws: WebSocketStream<S>) {
        let metrics = &self.shared.metrics;
        metrics.connections_open.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let session_id = format!("s-{:016x}", rand::random::<u64>());
        let established = Utf8Bytes::from(out::connection_established_json(&session_id));
        let end = match self.guarded(ws.send(Message::Text(established))).await {
            Ok(()) => self.message_loop(&mut ws).await,
            Err(end) => end,
        };
        self.finish(&mut ws, end).await;
        metrics.connections_open.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }

    async fn message_loop<S: AsyncRead + AsyncWrite + Unpin>(&mut self, ws: &mut WebSocketStream<S>) -> End {
        let period = self.shared.config.ping_interval;
        let mut ping = tokio::time::interval_at(Instant::now() + period, period);
        ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // Grown by `recv_many` as bursts need it: an idle connection does not hold 128 slots.
        let mut batch = Vec::new();
        loop {
            tokio::select! {
                biased;
                end = self.interrupts.fired() => return end,
                _ = ping.tick() => {
                    if self.unanswered_pings >= 2 {
                        ServerMetrics::inc(&self.shared.metrics.ping_timeouts);
                        return End::PingTimeout;
                    }
                    self.unanswered_pings += 1;
                    if let Err(end) = self.guarded(ws.send(Message::Ping(Default::default()))).await {
                        return end;
                    }
                }
                _ = hold_back_expired(self.held_back.is_some()), if self.held_back.is_some() => {
                    if let Some(held) = self.held_back.take()
                        && let Err(end) = self.guarded(ws.send(Message::Text(held))).await
                    {
                        return end;
                    }
                }
                _ = delay_due(&mut self.delayed), if self.delayed.as_ref().is_some_and(|line| !line.is_empty()) => {
                    if let Err(end) = self.write_due(ws).await {
                        return end;
                    }
                }
                _ = slot_came(self.pacing), if matches!(self.pacing, Pacing::Until(_)) => {
                    self.pacing = Pacing::SlotCame;
                    if let Err(end) = self.write_batch(ws, &mut batch).await {
                        return end;
                    }
                }
                _ = self.queue.recv_many(&mut batch, WRITE_BATCH), if self.pacing == Pacing::Free => {
                    if let Err(end) = self.write_batch(ws, &mut batch).await {
                        return end;
                    }
                }
                // The cluster paths are boxed: inline, their broker futures would make every
                // connection's task larger, cluster or not.
                _ = close_arrived(&mut self.close_arrived), if self.close_arrived.is_some() => {
                    // Resolved: not to be polled again.
                    self.close_arrived = None;
                    if let Err(end) = Box::pin(self.before_close(ws, &mut batch)).await {
                        return end;
                    }
                }
                inbound = ws.next() => {
                    let Some(inbound) = inbound else { return End::PeerClosed };
                    if let Some(end) = self.on_inbound(inbound) {
                        return end;
                    }
                    if let Some(request) = self.cluster_request.take()
                        && let Err(end) = Box::pin(self.through_broker(*request)).await
                    {
                        return end;
                    }
                }
            }
        }
    }

    /// Handles one inbound frame; `Some` when the connection must end.
    fn on_inbound(&mut self, inbound: Result<Message, WsError>) -> Option<End> {
        match inbound {
            Ok(Message::Text(text)) => self.on_text(&text),
            Ok(Message::Binary(_)) => {
                ServerMetrics::inc(&self.shared.metrics.messages_received);
                self.reject(binary_frame_rejection());
                None
            }
            Ok(Message::Pong(_)) => {
                self.unanswered_pings = 0;
                None
            }
            // Pings are answered by tungstenite; a close is answered by it and ends the stream.
            Ok(Message::Ping(_) | Message::Close(_) | Message::Frame(_)) => None,
            Err(error) => Some(classify_read_error(&error, &self.shared.metrics)),
        }
    }

    fn on_text(&mut self, text: &str) -> Option<End> {
        let shared = self.shared;
        ServerMetrics::inc(&shared.metrics.messages_received);
        let faults = &shared.config.faults.protocol;
        if (faults.crash_on_deep_nesting || faults.hang_on_deep_nesting) && json_depth(text) > DEEP_NESTING {
            if faults.crash_on_deep_nesting {
                eprintln!("fault crash-on-deep-nesting: aborting");
                std::process::abort();
            }
            return Some(End::Hung);
        }
        match parse_client_message(text, self.token.may_publish) {
            Ok(ClientMessage::Subscribe(subscribe)) => {
                shared.hub.subscribe(self.conn, &subscribe.topics, &subscribe.filters, &self.outbox);
                let id = self.echo(subscribe.id.as_deref());
                self.enqueue(out::subscription_confirmed_json(&subscribe.topics, id));
            }
            Ok(ClientMessage::Unsubscribe(unsubscribe)) if shared.cluster.is_some() => {
                let id = self.echo(unsubscribe.id.as_deref()).map(str::to_owned);
                self.cluster_request =
                    Some(Box::new(ClusterRequest::Unsubscribe { topics: unsubscribe.topics, id }));
            }
            Ok(ClientMessage::Unsubscribe(unsubscribe)) => {
                shared.hub.unsubscribe(self.conn, &unsubscribe.topics);
                let id = self.echo(unsubscribe.id.as_deref());
                self.enqueue(out::unsubscription_confirmed_json(&unsubscribe.topics, id));
            }
            Ok(ClientMessage::Publish(publish)) if shared.cluster.is_some() => {
                let frame =
                    out::event_json(publish.topic, publish.data_json.get(), &timestamp::now_rfc3339());
                let ack = self
                    .echo(publish.id.as_deref())
                    .map(|id| AckTo::Message { outbox: self.outbox.clone(), id: id.to_owned() });
                self.cluster_request = Some(Box::new(ClusterRequest::Publish { frame, ack }));
            }
            Ok(ClientMessage::Publish(publish)) => {
                let frame =
                    out::event_json(publish.topic, publish.data_json.get(), &timestamp::now_rfc3339());
                let delivered = shared.hub.publish(publish.topic, &publish.data, frame.into());
                if let Some(id) = self.echo(publish.id.as_deref()) {
                    self.enqueue(out::publish_ack_json(id, delivered));
                }
            }
            Err(mut rejection) => {
                if faults.wrong_unknown_topic_code && rejection.message.starts_with("Invalid topic") {
                    rejection.code = ErrorCode::InvalidMessage;
                }
                let not_json = rejection.message == "message is not valid JSON";
                self.reject(rejection);
                if not_json && faults.close_on_bad_json {
                    return Some(End::Faulted(close::PROTOCOL_ERROR));
                }
            }
        }
        None
    }

    /// Cluster mode: carries out what the last message asked of the broker. The connection reads
    /// nothing more meanwhile, so its requests keep their order (§5 rule 2). A broker that
    /// fails stops the whole server (fail-stop), so this connection ends as at shutdown.
    async fn through_broker(&mut self, request: ClusterRequest) -> Result<(), End> {
        let shared = self.shared;
        let Some(link) = shared.cluster.as_deref() else { return Ok(()) };
        match request {
            ClusterRequest::Publish { frame, ack } => {
                self.interruptible(link.publish(&frame, ack)).await?;
                ServerMetrics::inc(&shared.metrics.events_published);
            }
            ClusterRequest::Unsubscribe { topics, id } => {
                // Everything acknowledged before the unsubscribe was read must still arrive (§5
                // rule 3): pass every event the broker has handed to this process so far.
                self.interruptible(link.barrier()).await?;
                shared.hub.unsubscribe(self.conn, &topics);
                self.enqueue(out::unsubscription_confirmed_json(&topics, id.as_deref()));
            }
        }
        Ok(())
    }

    /// Cluster mode, the client's Close frame is held: pass a broker barrier (every event
    /// acknowledged before the Close was sent is then queued here), write the queue, then let
    /// the Close through.
    async fn before_close<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        ws: &mut WebSocketStream<S>,
        batch: &mut Vec<Utf8Bytes>,
    ) -> Result<(), End> {
        let Some(link) = self.shared.cluster.as_deref() else { return Ok(()) };
        self.interruptible(link.barrier()).await?;
        while let Ok(frame) = self.queue.try_recv() {
            batch.push(frame);
        }
        let mut written = self.write_batch(ws, batch).await;
        // Frames the delay fault holds are owed too: they leave before the Close.
        while written.is_ok()
            && let Some(last) = self.delayed.as_deref().and_then(DelayLine::last_due)
        {
            written = self.guarded(async { Ok(sleep_until(last).await) }).await;
            if written.is_ok() {
                written = self.write_due(ws).await;
            }
        }
        if let Some(hold) = &self.close_hold {
            hold.release();
        }
        written
    }

    /// Waits for the broker unless an interrupt fires first.
    async fn interruptible(&mut self, broker: impl Future<Output = Result<(), LinkDown>>) -> Result<(), End> {
        tokio::select! {
            biased;
            end = self.interrupts.fired() => Err(end),
            done = tokio::time::timeout(BROKER_TIMEOUT, broker) => match done {
                Ok(Ok(())) => Ok(()),
                _ => Err(End::Shutdown),
            },
        }
    }

    fn reject(&mut self, rejection: Rejection) {
        ServerMetrics::inc(&self.shared.metrics.protocol_errors);
        let id = self.echo(rejection.id.as_deref()).map(str::to_owned);
        let frame = error_frame(self.shared, rejection.code, &rejection.message, id.as_deref());
        self.outbox.offer(frame);
    }

    /// The id to echo, unless the `no-id-echo` fault is on.
    fn echo<'s>(&self, id: Option<&'s str>) -> Option<&'s str> {
        id.filter(|_| !self.shared.config.faults.protocol.no_id_echo)
    }

    /// Queues an answer behind the events already queued, so the FIFO order of §5 holds.
    fn enqueue(&mut self, text: String) {
        self.outbox.offer(Utf8Bytes::from(text));
    }

    async fn write_batch<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        ws: &mut WebSocketStream<S>,
        batch: &mut Vec<Utf8Bytes>,
    ) -> Result<(), End> {
        let shared = self.shared;
        let faults = &shared.config.faults;
        if !faults.affects_writes() {
            let write = async {
                for frame in batch.drain(..) {
                    ws.feed(Message::Text(frame)).await?;
                }
                ws.flush().await
            };
            return self.guarded(write).await;
        }
        let mut frames = std::mem::take(batch).into_iter();
        while let Some(frame) = frames.next() {
            // Delivery faults break events only; answers to requests stay correct.
            let is_event = frame.as_str().starts_with(EVENT_PREFIX);
            let pacing = std::mem::replace(&mut self.pacing, Pacing::Free);
            if is_event && let Some(at) = self.slot_later(pacing) {
                // This frame and those behind it wait; what was fed before it leaves now.
                batch.push(frame);
                batch.extend(frames);
                self.pacing = Pacing::Until(at);
                break;
            }
            let action = if is_event { self.dice.action(faults) } else { WriteAction::Write };
            match action {
                WriteAction::Write => self.emit(ws, frame).await?,
                WriteAction::Drop => {}
                WriteAction::Duplicate => {
                    self.emit(ws, frame.clone()).await?;
                    self.emit(ws, frame).await?;
                }
                WriteAction::HoldBack if self.held_back.is_none() => {
                    self.held_back = Some(frame);
                    continue;
                }
                WriteAction::HoldBack => self.emit(ws, frame).await?,
                WriteAction::Stall(stall) => {
                    // The writer goes on taking frames meanwhile (`DelayLine`): holds do not add up.
                    let line = self.delayed.get_or_insert_with(|| Box::new(DelayLine::new()));
                    line.hold(frame, Instant::now() + stall);
                }
            }
            if let Some(held) = self.held_back.take() {
                self.emit(ws, held).await?;
            }
        }
        self.guarded(ws.flush()).await
    }

    /// Writes `frame` now, unless the delay fault holds frames: then it waits behind them.
    async fn emit<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        ws: &mut WebSocketStream<S>,
        frame: Utf8Bytes,
    ) -> Result<(), End> {
        let frame = match self.delayed.as_deref_mut() {
            Some(line) => match line.queue_behind(frame) {
                Ok(()) => return Ok(()),
                Err(frame) => frame,
            },
            None => frame,
        };
        self.guarded(ws.feed(Message::Text(frame))).await
    }

    /// Writes the frames the delay fault held that are due now, in one batch.
    async fn write_due<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        ws: &mut WebSocketStream<S>,
    ) -> Result<(), End> {
        let mut due = Vec::new();
        if let Some(line) = self.delayed.as_deref_mut() {
            line.take_due(Instant::now(), &mut due);
        }
        for frame in due {
            self.guarded(ws.feed(Message::Text(frame))).await?;
        }
        self.guarded(ws.flush()).await
    }

    /// The `throttle=N` fault: reserves an event frame's slot in the server-wide bucket, unless
    /// `pacing` says it already came; `Some` when the slot lies ahead, and the frame must wait.
    fn slot_later(&self, pacing: Pacing) -> Option<Instant> {
        if pacing == Pacing::SlotCame {
            return None;
        }
        self.shared.throttle.as_ref().and_then(Throttle::reserve).map(Instant::from_std)
    }

    /// Runs a write, unless an interrupt fires first.
    async fn guarded(&mut self, write: impl Future<Output = Result<(), WsError>>) -> Result<(), End> {
        tokio::select! {
            biased;
            end = self.interrupts.fired() => Err(end),
            result = write => result.map_err(|e| classify_write_error(&e)),
        }
    }

    async fn finish<S: AsyncRead + AsyncWrite + Unpin>(&mut self, ws: &mut WebSocketStream<S>, end: End) {
        let shared = self.shared;
        // The server closes now: the client's answering Close must not be held back.
        if let Some(hold) = &self.close_hold {
            hold.release();
        }
        let (error, code, reason) = match end {
            End::PeerClosed => return,
            End::Hung => {
                // The hang fault: stop answering, hold the socket until shutdown.
                shared.shutdown.cancelled().await;
                return;
            }
            End::Shutdown => (
                Some(error_frame(shared, ErrorCode::ConnectionError, "server shutting down", None)),
                close::GOING_AWAY,
                "server shutting down",
            ),
            End::SlowConsumer => {
                ServerMetrics::inc(&shared.metrics.slow_consumer_disconnects);
                (
                    Some(error_frame(shared, ErrorCode::ConnectionError, "slow consumer", None)),
                    close::TRY_AGAIN_LATER,
                    "slow consumer",
                )
            }
            End::TokenExpired => {
                ServerMetrics::inc(&shared.metrics.tokens_expired);
                (
                    Some(error_frame(shared, ErrorCode::AuthError, "Token expired", None)),
                    close::POLICY_VIOLATION,
                    "token expired",
                )
            }
            End::PingTimeout => (None, close::GOING_AWAY, "ping timeout"),
            End::Violation(code) | End::Faulted(code) => (None, code, "protocol error"),
        };
        close_with(ws, error, code, reason).await;
    }
}

/// Resolves when a held Close frame waits (never without a hold).
async fn close_arrived(arrived: &mut Option<CloseArrived>) {
    match arrived {
        Some(arrived) => arrived.0.as_mut().await,
        None => std::future::pending().await,
    }
}

/// Resolves [`HOLD_BACK_LIMIT`] from now when a frame is held back, else never. The timer is
/// boxed: only the `reorder` fault holds frames back, and inline it would size every
/// connection's task.
async fn hold_back_expired(holding: bool) {
    if holding {
        Box::pin(tokio::time::sleep(HOLD_BACK_LIMIT)).await;
    } else {
        std::future::pending::<()>().await;
    }
}

/// Resolves when the delay fault's first held frame is due.
async fn delay_due(line: &mut Option<Box<DelayLine>>) {
    match line {
        Some(line) => line.head_due().await,
        None => std::future::pending::<()>().await,
    }
}

/// Resolves when the paced frame's slot comes (never while no frame waits). The timer is boxed:
/// only the `throttle` fault paces, and inline it would size every connection's task.
async fn slot_came(pacing: Pacing) {
    match pacing {
        Pacing::Until(at) => Box::pin(sleep_until(at)).await,
        Pacing::Free | Pacing::SlotCame => std::future::pending::<()>().await,
    }
}

/// An `error` frame, honouring the `no-error-timestamp` fault.
fn error_frame(shared: &Shared, code: ErrorCode, message: &str, id: Option<&str>) -> Utf8Bytes {
    let mut text = out::error_json(code, message, id);
    if shared.config.faults.protocol.no_error_timestamp
        && let Ok(serde_json::Value::Object(mut map)) = serde_json::from_str(&text)
    {
        map.remove("timestamp");
        text = serde_json::Value::Object(map).to_string();
    }
    Utf8Bytes::from(text)
}

/// Sends an optional last message and a close frame, then waits for the peer's close, all
/// within [`CLOSE_GRACE`] each.
async fn close_with<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocketStream<S>,
    last: Option<Utf8Bytes>,
    code: u16,
    reason: &'static str,
) {
    let send = async {
        if let Some(text) = last {
            ws.feed(Message::Text(text)).await?;
        }
        ws.close(Some(CloseFrame { code: code.into(), reason: reason.into() })).await
    };
    if !matches!(tokio::time::timeout(CLOSE_GRACE, send).await, Ok(Ok(()))) {
        return;
    }
    let deadline = StdInstant::now() + CLOSE_GRACE;
    let drain = async { while let Some(Ok(_)) = ws.next().await {} };
    let _ = tokio::time::timeout_at(deadline.into(), drain).await;
}

fn classify_read_error(error: &WsError, metrics: &ServerMetrics) -> End {
    let code = match error {
        // RFC 6455 §5.2: a 64-bit length must have its most significant bit clear; a frame that
        // claims such a length is malformed, not merely too big.
        WsError::Capacity(CapacityError::MessageTooLong { size, .. }) if *size as u64 > i64::MAX as u64 => {
            close::PROTOCOL_ERROR
        }
        WsError::Capacity(CapacityError::MessageTooLong { .. }) => close::MESSAGE_TOO_BIG,
        WsError::Utf8(_) => close::INVALID_PAYLOAD,
        WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => return End::PeerClosed,
        WsError::Protocol(_) | WsError::Capacity(_) => close::PROTOCOL_ERROR,
        _ => return End::PeerClosed,
    };
    ServerMetrics::inc(&metrics.protocol_errors);
    End::Violation(code)
}

fn classify_write_error(_error: &WsError) -> End {
    // A write fails only when the peer is gone or the stream is already closing.
    End::PeerClosed
}

/// Builds the server side of an upgraded stream, with `leftover` bytes the HTTP layer had
/// already read past the request.
pub async fn accept<S>(stream: S, leftover: Vec<u8>, shared: &Shared) -> WebSocketStream<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let config = Some(shared.config.websocket_config());
    if leftover.is_empty() {
        WebSocketStream::from_raw_socket(stream, Role::Server, config).await
    } else {
        WebSocketStream::from_partially_read(stream, leftover, Role::Server, config).await
    }
}
