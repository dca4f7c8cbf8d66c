//! One publish fanned out by `server::hub::Hub::publish` to 1,000 and 10,000 in-memory
//! subscriber queues (`Outbox`): filter check and a non-blocking queue offer per subscriber,
//! no sockets. Queues are drained between iterations, outside the timed part.
//!
//! `cargo bench --bench fanout`

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use openframe_harness::protocol::server_message::event_json;
use openframe_harness::protocol::{Filters, ObjectView, Topic, timestamp};
use openframe_harness::server::Faults;
use openframe_harness::server::hub::{Hub, Outbox};
use openframe_harness::server::metrics::ServerMetrics;
use tokio::sync::mpsc::Receiver;
use tokio_tungstenite::tungstenite::Utf8Bytes;

const ALERT_DATA: &str =
    r#"{"id":"a-1","title":"Disk almost full","severity":"high","device_id":"d-17","seq":1,"sent_at_us":1}"#;

/// A hub with `n` alert subscribers: every fourth filters on severity (and admits this event).
fn hub_with(n: usize) -> (Hub, Vec<Receiver<Utf8Bytes>>) {
    let hub = Hub::new(Arc::new(ServerMetrics::default()), Faults::default());
    let filtered = Filters::new([("severity", vec!["high", "critical"])]);
    let receivers = (0..n)
        .map(|conn| {
            let (outbox, rx) = Outbox::new(64);
            let filters = if conn % 4 == 0 { filtered.clone() } else { Filters::default() };
            hub.subscribe(conn as u64, &[Topic::Alerts], &filters, &outbox);
            rx
        })
        .collect();
    (hub, receivers)
}

fn fanout(c: &mut Criterion) {
    let data = ObjectView::parse(ALERT_DATA).expect("valid data");
    let frame = Utf8Bytes::from(event_json(Topic::Alerts, ALERT_DATA, &timestamp::now_rfc3339()));
    let mut group = c.benchmark_group("hub_publish");
    group.sample_size(30).measurement_time(Duration::from_secs(4));
    for n in [1_000usize, 10_000] {
        let (hub, mut receivers) = hub_with(n);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, &n| {
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    let started = Instant::now();
                    let delivered = hub.publish(Topic::Alerts, &data, frame.clone());
                    timed += started.elapsed();
                    assert_eq!(delivered, n as u64);
                    receivers.iter_mut().for_each(|rx| while rx.try_recv().is_ok() {});
                }
                timed
            })
        });
    }
    group.finish();
}

criterion_group!(benches, fanout);
criterion_main!(benches);
