//! The server as one process of many: `serve --broker redis://…` joins every process that names
//! the same broker (and channel prefix) into one logical server.
//!
//! Every event a process accepts (a `publish` message, `POST /v1/events`, its own heartbeat) goes
//! to one Redis pub/sub channel, `<prefix>:events`, over the process's one publishing connection.
//! Every process, the accepting one included, fans out only what comes back on its one
//! subscribing connection, through the same [`Hub`](super::hub::Hub) a single process uses. Never
//! directly: one path per event is what makes the rules of PROTOCOL.md §5 hold across processes
//! (docs/ARCHITECTURE.md, "The server as a cluster", gives the argument):
//!
//! - Redis executes commands one at a time and appends each published message to every
//!   subscribing connection's output in that order, so every process sees one sequence of events,
//!   in which the events of one publisher connection keep their order (§5 rule 2);
//! - each process receives each event once, and the hub queues it once per matching connection
//!   (rule 1); losing the subscription would lose events silently, so the process stops instead
//!   (fail-stop: [`Shared::fail`]);
//! - a `publish_ack` (or the 202 of `POST /v1/events`) is sent when the event came back to the
//!   accepting process, with the number of its own connections it was queued to; by then Redis
//!   has handed the event to every process;
//! - an unsubscribe first passes a barrier: a message to the process's own barrier channel, sent
//!   after the unsubscribe was read and received after everything Redis had already handed to
//!   this process, so an event acknowledged before the unsubscribe still reaches the subscriber
//!   (rule 3); a client's Close frame is held back ([`close_gate`]) and passes the same barrier,
//!   so a client that closes is sent what it was owed first.

pub mod close_gate;
pub mod envelope;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use parking_lot::Mutex;
use redis::aio::{MultiplexedConnection, PubSubStream};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tracing::{debug, warn};

use super::Shared;
use super::hub::Outbox;
use super::metrics::ServerMetrics;
use crate::protocol::server_message::publish_ack_json;

/// Messages waiting for the publishing connection; a connection that publishes faster than the
/// broker takes them waits (back-pressure on that publisher only).
const OUTGOING_QUEUE: usize = 16 * 1024;
/// Messages sent to the broker in one pipeline.
const PIPELINE_BATCH: usize = 256;
/// Longest wait for the broker: connecting, answering a pipeline, returning a barrier or an event.
pub const BROKER_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the broker is and which channels this logical server uses.
#[derive(Clone)]
pub struct BrokerConfig {
    /// `redis://HOST:PORT[/DB]` (`redis://:PASSWORD@HOST:PORT` with a password).
    pub url: String,
    /// Channel names begin with it, so that several logical servers can share one broker.
    pub prefix: String,
}

impl BrokerConfig {
    pub fn new(url: impl Into<String>) -> BrokerConfig {
        BrokerConfig { url: url.into(), prefix: "openframe".to_owned() }
    }

    /// The URL without a password, for messages.
    pub fn display_url(&self) -> String {
        match self.url.split_once("://").and_then(|(scheme, rest)| Some((scheme, rest.split_once('@')?.1))) {
            Some((scheme, host)) => format!("{scheme}://…@{host}"),
            None => self.url.clone(),
        }
    }
}

impl std::fmt::Debug for BrokerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerConfig")
            .field("url", &self.display_url())
            .field("prefix", &self.prefix)
            .finish()
    }
}

/// Why the broker could not be joined.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BrokerError(String);

/// The broker link is gone; the server is stopping (fail-stop).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the broker link is down")]
pub struct LinkDown;

/// Who waits for an event to come back from the broker, and what to give them.
#[derive(Debug)]
pub enum AckTo {
    /// A `publish` message with an `id`: queue its `publish_ack` to the connection.
    Message { outbox: Outbox, id: String },
    /// `POST /v1/events`: the handler waits for the delivery count.
    Http(oneshot::Sender<u64>),
}

#[derive(Debug)]
enum Outgoing {
    Event(Vec<u8>),
    Barrier(u64),
}

/// This process's side of the broker.
#[derive(Debug)]
pub struct ClusterLink {
    /// Identifies this process in envelopes (random).
    origin: u64,
    events_channel: String,
    barrier_channel: String,
    outgoing: mpsc::Sender<Outgoing>,
    /// Tickets for acks and barriers; 0 means "nobody waits".
    next_ticket: AtomicU64,
    acks: Mutex<HashMap<u64, AckTo>>,
    barriers: Mutex<HashMap<u64, oneshot::Sender<()>>>,
    display_url: String,
}

/// The broker connections, made before the server's state exists; [`ClusterLink::spawn`] runs them.
pub struct Connected {
    publisher: MultiplexedConnection,
    messages: PubSubStream,
    outgoing: mpsc::Receiver<Outgoing>,
}

impl std::fmt::Debug for Connected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Connected")
    }
}

impl ClusterLink {
    /// Connects to the broker and subscribes, so that nothing published after this returns is
    /// missed by this process.
    pub async fn connect(config: &BrokerConfig) -> Result<(Arc<ClusterLink>, Connected), BrokerError> {
        let display_url = config.display_url();
        let fail = |what: &str, error: &dyn std::fmt::Display| {
            BrokerError(format!(
                "cannot {what} the broker at {display_url}: {error} (is a Redis server running there? \
                 e.g. `redis-server --port 6379 --save '' --appendonly no`)"
            ))
        };
        let client = redis::Client::open(config.url.as_str()).map_err(|e| fail("use", &e))?;
        let connection_config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(BROKER_TIMEOUT))
            .set_response_timeout(Some(BROKER_TIMEOUT));
        let publisher = client
            .get_multiplexed_async_connection_with_config(&connection_config)
            .await
            .map_err(|e| fail("connect to", &e))?;
        let origin = loop {
            let origin = rand::random::<u64>();
            if origin != 0 {
                break origin;
            }
        };
        let events_channel = format!("{}:events", config.prefix);
        let barrier_channel = format!("{}:barrier:{origin:016x}", config.prefix);
        let subscribe = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&[events_channel.as_str(), barrier_channel.as_str()]).await?;
            Ok::<_, redis::RedisError>(pubsub.into_on_message())
        };
        let messages = match tokio::time::timeout(BROKER_TIMEOUT, subscribe).await {
            Ok(Ok(messages)) => messages,
            Ok(Err(error)) => return Err(fail("subscribe at", &error)),
            Err(_) => return Err(fail("subscribe at", &"no answer in time")),
        };
        let (tx, rx) = mpsc::channel(OUTGOING_QUEUE);
        let link = ClusterLink {
            origin,
            events_channel,
            barrier_channel,
            outgoing: tx,
            next_ticket: AtomicU64::new(1),
            acks: Mutex::default(),
            barriers: Mutex::default(),
            display_url,
        };
        Ok((Arc::new(link), Connected { publisher, messages, outgoing: rx }))
    }

    /// Runs the publishing and the receiving side until shutdown or until the broker fails.
    pub fn spawn(self: &Arc<Self>, connected: Connected, shared: &Arc<Shared>) {
        let Connected { publisher, messages, outgoing } = connected;
        shared.tracker.spawn(Arc::clone(self).send_loop(publisher, outgoing, Arc::clone(shared)));
        shared.tracker.spawn(Arc::clone(self).receive_loop(messages, Arc::clone(shared)));
    }

    /// This process's id in envelopes.
    pub fn origin(&self) -> u64 {
        self.origin
    }

    /// The broker, without a password.
    pub fn broker(&self) -> &str {
        &self.display_url
    }

    /// Sends a serialized event frame to every process; `ack` is answered when it comes back here.
    pub async fn publish(&self, frame: &str, ack: Option<AckTo>) -> Result<(), LinkDown> {
        let ticket = match ack {
            Some(ack) => {
                let ticket = self.next_ticket.fetch_add(1, Ordering::Relaxed);
                self.acks.lock().insert(ticket, ack);
                ticket
            }
            None => 0,
        };
        let sent = self.outgoing.send(Outgoing::Event(envelope::encode(self.origin, ticket, frame))).await;
        if sent.is_err() {
            self.acks.lock().remove(&ticket);
            return Err(LinkDown);
        }
        Ok(())
    }

    /// Resolves once every event the broker had handed to this process before the call has
    /// been fanned out to the local hub.
    pub async fn barrier(&self) -> Result<(), LinkDown> {
        let ticket = self.next_ticket.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.barriers.lock().insert(ticket, tx);
        if self.outgoing.send(Outgoing::Barrier(ticket)).await.is_err() {
            self.barriers.lock().remove(&ticket);
            return Err(LinkDown);
        }
        match tokio::time::timeout(BROKER_TIMEOUT, rx).await {
            Ok(Ok(())) => Ok(()),
            _ => {
                self.barriers.lock().remove(&ticket);
                Err(LinkDown)
            }
        }
    }

    /// Sends what the server's tasks queued, in queue order, one pipeline at a time.
    async fn send_loop(
        self: Arc<Self>,
        mut connection: MultiplexedConnection,
        mut outgoing: mpsc::Receiver<Outgoing>,
        shared: Arc<Shared>,
    ) {
        let mut batch = Vec::with_capacity(PIPELINE_BATCH);
        loop {
            let received = tokio::select! {
                _ = shared.shutdown.cancelled() => return,
                received = outgoing.recv_many(&mut batch, PIPELINE_BATCH) => received,
            };
            if received == 0 {
                return;
            }
            let mut pipe = redis::pipe();
            for message in batch.drain(..) {
                match message {
                    Outgoing::Event(payload) => pipe.publish(&self.events_channel, payload).ignore(),
                    Outgoing::Barrier(ticket) => pipe.publish(&self.barrier_channel, ticket).ignore(),
                };
            }
            let sent = tokio::select! {
                _ = shared.shutdown.cancelled() => return,
                sent = pipe.exec_async(&mut connection) => sent,
            };
            if let Err(error) = sent {
                return self.fail(
                    &shared,
                    format!("publishing to the broker at {} failed: {error}", self.display_url),
                );
            }
            ServerMetrics::add(&shared.metrics.broker_messages_sent, received as u64);
        }
    }

    /// Fans out every event the broker hands to this process, in the broker's order.
    async fn receive_loop(self: Arc<Self>, mut messages: PubSubStream, shared: Arc<Shared>) {
        loop {
            let message = tokio::select! {
                _ = shared.shutdown.cancelled() => return,
                message = messages.next() => message,
            };
            if let Some(lag) = shared.config.faults.broker_lag {
                tokio::select! {
                    _ = shared.shutdown.cancelled() => return,
                    _ = tokio::time::sleep(lag) => {}
                }
            }
            let Some(message) = message else {
                return self.fail(
                    &shared,
                    format!(
                        "lost the subscription at the broker {}: events published from now on \
                         would be missed, so this process stops",
                        self.display_url
                    ),
                );
            };
            let payload = message.get_payload_bytes();
            if message.get_channel_name() == self.barrier_channel {
                self.pass_barrier(payload);
            } else {
                self.deliver(payload, &shared);
            }
        }
    }

    /// Fans one envelope out to the local hub and answers whoever waits for it here.
    fn deliver(&self, payload: &[u8], shared: &Shared) {
        let metrics = &shared.metrics;
        let Some(envelope) = envelope::decode(payload) else {
            return refuse(metrics, "not an envelope", payload);
        };
        let Ok(frame) = Utf8Bytes::try_from(Bytes::copy_from_slice(envelope.frame)) else {
            return refuse(metrics, "frame is not UTF-8", payload);
        };
        let Some((topic, data)) = envelope::event_parts(frame.as_str()) else {
            return refuse(metrics, "frame is not an event", payload);
        };
        ServerMetrics::inc(&metrics.broker_events_received);
        let delivered = shared.hub.fan_out(topic, &data, frame.clone());
        if envelope.origin != self.origin || envelope.ticket == 0 {
            return;
        }
        let Some(ack) = self.acks.lock().remove(&envelope.ticket) else { return };
        match ack {
            AckTo::Message { outbox, id } => {
                outbox.offer(Utf8Bytes::from(publish_ack_json(&id, delivered)));
            }
            AckTo::Http(answer) => {
                let _ = answer.send(delivered);
            }
        }
    }

    fn pass_barrier(&self, payload: &[u8]) {
        let ticket = std::str::from_utf8(payload).ok().and_then(|t| t.parse::<u64>().ok());
        if let Some(waiter) = ticket.and_then(|t| self.barriers.lock().remove(&t)) {
            let _ = waiter.send(());
        }
    }

    /// Stops the whole server: without the broker it can no longer keep §5.
    fn fail(&self, shared: &Shared, reason: String) {
        // Waiters learn it from their dropped senders.
        self.acks.lock().clear();
        self.barriers.lock().clear();
        shared.fail(reason);
    }
}

fn refuse(metrics: &ServerMetrics, why: &str, payload: &[u8]) {
    ServerMetrics::inc(&metrics.broker_messages_refused);
    let start = String::from_utf8_lossy(&payload[..payload.len().min(80)]).into_owned();
    if metrics.broker_messages_refused.load(Ordering::Relaxed) <= 10 {
        warn!(why, start, "refused a broker message");
    } else {
        debug!(why, start, "refused a broker message");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_never_shows() {
        let config = BrokerConfig::new("redis://:s3cret@10.0.0.1:6379/0");
        assert_eq!(config.display_url(), "redis://…@10.0.0.1:6379/0");
        assert!(!format!("{config:?}").contains("s3cret"));
        assert_eq!(BrokerConfig::new("redis://127.0.0.1:6379").display_url(), "redis://127.0.0.1:6379");
    }
}
