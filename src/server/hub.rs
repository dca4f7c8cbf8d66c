//! The hub: which connection holds which topic with which filters, and fan-out of an event
//! to the outbound queues of the matching connections (PROTOCOL.md §5).
//!
//! One index per topic, so a publish costs in proportion to that topic's subscribers. A publish
//! holds the topic's read lock only while it offers the already serialized frame to each
//! queue with a non-blocking `try_send`; no socket is ever written under a lock. Subscribe and
//! unsubscribe take the write lock, which orders them against publishes: an event is either
//! queued before the change or judged after it (the subscription boundary of §5 rule 3).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use indexmap::IndexMap;
use parking_lot::RwLock;
use smallvec::SmallVec;
use tokio::sync::{Notify, mpsc};
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::faults::Faults;
use super::metrics::ServerMetrics;
use crate::protocol::{FieldValue, Filters, ObjectView, Topic};

/// Identifies a connection for the lifetime of the server.
pub type ConnId = u64;

/// The sending side of a connection's bounded outbound queue.
///
/// When the queue is full the connection is a slow consumer (§5 rule 5): the outbox turns
/// *overflowed* for good, refuses every later frame (so the client never sees a gap followed by
/// more events) and wakes the connection task, which closes it with 1013.
#[derive(Debug, Clone)]
pub struct Outbox {
    tx: mpsc::Sender<Utf8Bytes>,
    overflow: Arc<Overflow>,
}

#[derive(Debug, Default)]
pub struct Overflow {
    overflowed: AtomicBool,
    notify: Notify,
}

impl Overflow {
    /// Resolves once the queue has overflowed.
    pub async fn wait(&self) {
        loop {
            let notified = self.notify.notified();
            if self.overflowed.load(Ordering::Acquire) {
                return;
            }
            notified.await;
        }
    }
}

impl Outbox {
    /// A queue of `capacity` frames: the outbox and the receiving end.
    pub fn new(capacity: usize) -> (Outbox, mpsc::Receiver<Utf8Bytes>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (Outbox { tx, overflow: Arc::default() }, rx)
    }

    /// Offers one frame; `false` when it was not queued.
    pub fn offer(&self, frame: Utf8Bytes) -> bool {
        if self.overflow.overflowed.load(Ordering::Relaxed) {
            return false;
        }
        match self.tx.try_send(frame) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.overflow.overflowed.store(true, Ordering::Release);
                self.overflow.notify.notify_one();
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    pub fn overflow(&self) -> Arc<Overflow> {
        Arc::clone(&self.overflow)
    }

    /// Whether the queue has overflowed (and so refuses every frame from now on).
    pub fn is_overflowed(&self) -> bool {
        self.overflow.overflowed.load(Ordering::Relaxed)
    }
}

#[derive(Debug)]
struct Subscription {
    filters: Filters,
    outbox: Outbox,
}

type TopicIndex = IndexMap<ConnId, Subscription>;

/// Routes events to subscribers.
#[derive(Debug)]
pub struct Hub {
    topics: [RwLock<TopicIndex>; 3],
    metrics: Arc<ServerMetrics>,
    faults: Faults,
}

impl Hub {
    pub fn new(metrics: Arc<ServerMetrics>, faults: Faults) -> Hub {
        Hub { topics: Default::default(), metrics, faults }
    }

    fn index(&self, topic: Topic) -> &RwLock<TopicIndex> {
        &self.topics[topic.index()]
    }

    /// Subscribes `conn` to `topics`, replacing the filters those topics had (§4).
    pub fn subscribe(&self, conn: ConnId, topics: &[Topic], filters: &Filters, outbox: &Outbox) {
        for &topic in topics {
            let subscription = Subscription { filters: filters.clone(), outbox: outbox.clone() };
            self.index(topic).write().insert(conn, subscription);
        }
    }

    /// Removes `conn` from `topics`; topics it does not hold are ignored.
    pub fn unsubscribe(&self, conn: ConnId, topics: &[Topic]) {
        if self.faults.ignore_unsubscribe {
            return;
        }
        for &topic in topics {
            self.index(topic).write().swap_remove(&conn);
        }
    }

    /// Publishes an event this process accepted: offers the serialized event `frame` to every
    /// subscriber of `topic` whose filters admit `data`. Returns how many queues took it
    /// (`publish_ack.delivered`).
    pub fn publish(&self, topic: Topic, data: &ObjectView<'_>, frame: Utf8Bytes) -> u64 {
        let delivered = self.fan_out(topic, data, frame);
        ServerMetrics::inc(&self.metrics.events_published);
        delivered
    }

    /// [`Hub::publish`] without counting the event as published here: for events of a cluster,
    /// which the process that accepted them counts.
    pub fn fan_out(&self, topic: Topic, data: &ObjectView<'_>, frame: Utf8Bytes) -> u64 {
        // Decode the event's string fields once, not once per subscriber.
        let fields: SmallVec<[(&str, FieldValue<'_>); 8]> = data
            .iter()
            .map(|(key, _)| (key, data.filter_value(key).unwrap_or(FieldValue::NotAString)))
            .collect();
        let lookup = |key: &str| fields.iter().rev().find(|(k, _)| *k == key).map(|(_, v)| v.as_borrowed());
        let index = self.index(topic).read();
        let (mut delivered, mut dropped) = (0u64, 0u64);
        for subscription in index.values() {
            let admitted = self.faults.ignore_filters || subscription.filters.admits(lookup);
            if !admitted {
                continue;
            }
            if subscription.outbox.offer(frame.clone()) {
                delivered += 1;
            } else if subscription.outbox.is_overflowed() {
                dropped += 1;
            }
        }
        drop(index);
        ServerMetrics::add(&self.metrics.events_delivered, delivered);
        ServerMetrics::add(&self.metrics.events_dropped_full_queue, dropped);
        delivered
    }

    /// Removes every subscription of a closing connection.
    pub fn disconnect(&self, conn: ConnId) {
        for topic in Topic::ALL {
            let mut index = self.index(topic).write();
            index.swap_remove(&conn);
        }
    }

    /// Subscriptions held per topic, for `/metrics`.
    pub fn subscription_counts(&self) -> [(Topic, usize); 3] {
        Topic::ALL.map(|topic| (topic, self.index(topic).read().len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub() -> Hub {
        Hub::new(Arc::default(), Faults::default())
    }

    fn publish(hub: &Hub, topic: Topic, data: &str) -> u64 {
        hub.publish(topic, &ObjectView::parse(data).unwrap(), Utf8Bytes::from(data))
    }

    #[test]
    fn an_event_reaches_only_subscribers_of_its_topic_whose_filters_admit_it() {
        let hub = hub();
        let (all, mut all_rx) = Outbox::new(8);
        let (high, mut high_rx) = Outbox::new(8);
        let (devices, mut devices_rx) = Outbox::new(8);
        hub.subscribe(1, &[Topic::Alerts], &Filters::default(), &all);
        hub.subscribe(2, &[Topic::Alerts], &Filters::new([("severity", vec!["high"])]), &high);
        hub.subscribe(3, &[Topic::Devices], &Filters::default(), &devices);
        assert_eq!(publish(&hub, Topic::Alerts, r#"{"severity":"low"}"#), 1);
        assert_eq!(publish(&hub, Topic::Alerts, r#"{"severity":"high"}"#), 2);
        assert_eq!(all_rx.try_recv().unwrap().as_str(), r#"{"severity":"low"}"#);
        assert_eq!(all_rx.try_recv().unwrap().as_str(), r#"{"severity":"high"}"#);
        assert_eq!(high_rx.try_recv().unwrap().as_str(), r#"{"severity":"high"}"#);
        assert!(high_rx.try_recv().is_err());
        assert!(devices_rx.try_recv().is_err());
    }

    #[test]
    fn subscribing_twice_delivers_once_with_the_new_filters() {
        let hub = hub();
        let (outbox, mut rx) = Outbox::new(8);
        hub.subscribe(1, &[Topic::Alerts], &Filters::new([("severity", vec!["high"])]), &outbox);
        hub.subscribe(1, &[Topic::Alerts], &Filters::default(), &outbox);
        assert_eq!(publish(&hub, Topic::Alerts, r#"{"severity":"low"}"#), 1);
        assert!(rx.try_recv().is_ok());
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn after_unsubscribe_nothing_arrives() {
        let hub = hub();
        let (outbox, mut rx) = Outbox::new(8);
        hub.subscribe(1, &[Topic::Alerts, Topic::Devices], &Filters::default(), &outbox);
        hub.unsubscribe(1, &[Topic::Alerts]);
        assert_eq!(publish(&hub, Topic::Alerts, "{}"), 0);
        assert_eq!(publish(&hub, Topic::Devices, "{}"), 1);
        assert!(rx.try_recv().is_ok());
        hub.disconnect(1);
        assert_eq!(hub.subscription_counts().map(|(_, n)| n), [0, 0, 0]);
    }

    #[tokio::test]
    async fn a_full_queue_overflows_for_good_and_wakes_its_connection() {
        let metrics = Arc::new(ServerMetrics::default());
        let hub = Hub::new(Arc::clone(&metrics), Faults::default());
        let (outbox, mut rx) = Outbox::new(2);
        let overflow = outbox.overflow();
        hub.subscribe(1, &[Topic::Alerts], &Filters::default(), &outbox);
        assert_eq!(publish(&hub, Topic::Alerts, "{}"), 1);
        assert_eq!(publish(&hub, Topic::Alerts, "{}"), 1);
        assert_eq!(publish(&hub, Topic::Alerts, "{}"), 0);
        rx.try_recv().unwrap();
        assert_eq!(publish(&hub, Topic::Alerts, "{}"), 0, "an overflowed queue takes nothing more");
        tokio::time::timeout(std::time::Duration::from_secs(1), overflow.wait()).await.unwrap();
        assert_eq!(metrics.events_dropped_full_queue.load(Ordering::Relaxed), 2, "every refusal is counted");
        assert_eq!(metrics.events_delivered.load(Ordering::Relaxed), 2);
    }
}
