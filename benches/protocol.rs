//! The protocol core's per-message costs: parsing and validating client messages (the server,
//! once per received frame), validating server messages (the harness, once per received
//! event), and writing an event frame (the server, once per publish).
//!
//! `cargo bench --bench protocol`

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use openframe_harness::protocol::client::{publish_json, subscribe_json};
use openframe_harness::protocol::server_message::event_json;
use openframe_harness::protocol::{Filters, Topic, parse_client_message, parse_server_message, timestamp};

/// An alert `data` as the harness's publishers send it: the required fields plus its own.
const ALERT_DATA: &str = r#"{"id":"a-1842","title":"Disk almost full","severity":"high","device_id":"d-17","seq":1842,"sent_at_us":1710928800123456,"publisher":"p-3"}"#;

fn client_messages(c: &mut Criterion) {
    let filters = Filters::new([("severity", vec!["high", "critical"]), ("device_id", vec!["d-17"])]);
    let subscribe = subscribe_json(&[Topic::Alerts, Topic::Devices], &filters, Some("req-1"));
    let publish = publish_json(Topic::Alerts, ALERT_DATA, Some("p-1842"));
    let mut group = c.benchmark_group("parse_client_message");
    group.throughput(Throughput::Elements(1));
    group.bench_function("subscribe", |b| {
        b.iter(|| parse_client_message(black_box(&subscribe), false).is_ok())
    });
    group.bench_function("publish", |b| b.iter(|| parse_client_message(black_box(&publish), true).is_ok()));
    group.finish();
}

fn server_messages(c: &mut Criterion) {
    let event = event_json(Topic::Alerts, ALERT_DATA, &timestamp::now_rfc3339());
    let mut group = c.benchmark_group("parse_server_message");
    group.throughput(Throughput::Elements(1));
    group.bench_function("event", |b| b.iter(|| parse_server_message(black_box(&event)).is_ok()));
    group.finish();
}

fn serialization(c: &mut Criterion) {
    let stamp = timestamp::now_rfc3339();
    let mut group = c.benchmark_group("event_json");
    group.throughput(Throughput::Elements(1));
    group.bench_function("alert", |b| b.iter(|| event_json(Topic::Alerts, black_box(ALERT_DATA), &stamp)));
    group.finish();
}

criterion_group!(benches, client_messages, server_messages, serialization);
criterion_main!(benches);
