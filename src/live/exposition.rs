//! `GET /metrics` of the live endpoint: the latest snapshot in the Prometheus text format,
//! encoded by `prometheus-client` on each scrape (nothing is kept between scrapes).
//!
//! Every series carries `scenario` and `run_id`, and `shard` in a sharded run, so the shards of
//! one run scraped together sum correctly; per-group series add `group`, latency histograms
//! are one family per metric (`openframe_harness_<metric>_latency_seconds`).

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet, prometheus_text};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};
use std::borrow::Cow;
use std::sync::Arc;

use super::snapshot::{LiveSnapshot, RunState};

/// The `Content-Type` of the exposition.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// Encodes `snapshot` as the live `/metrics` body.
pub fn render(snapshot: Arc<LiveSnapshot>) -> String {
    let mut labels: Vec<(Cow<'static, str>, Cow<'static, str>)> = vec![
        ("scenario".into(), snapshot.scenario.clone().into()),
        ("run_id".into(), snapshot.run_id.clone().into()),
    ];
    if let Some(shard) = &snapshot.shard {
        labels.push(("shard".into(), shard.clone().into()));
    }
    let mut registry = Registry::with_labels(labels.into_iter());
    registry.register_collector(Box::new(Snapshot(snapshot)));
    let mut out = String::with_capacity(8 * 1024);
    // Writing into a String cannot fail.
    let _ = prometheus_text::encode(&mut out, &registry);
    out
}

#[derive(Debug)]
struct Snapshot(Arc<LiveSnapshot>);

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = &self.0;
        for (name, value) in &s.counters {
            let counter = ConstCounter::new(*value);
            let name = format!("openframe_harness_{name}");
            let help = format!("The run's {name} counter of report.json, so far");
            counter.encode(encoder.encode_descriptor(&name, &help, None, counter.metric_type())?)?;
        }
        let mut clients = encoder.encode_descriptor(
            "openframe_harness_clients_connected",
            "Clients connected now, per group",
            None,
            MetricType::Gauge,
        )?;
        for (group, n) in &s.clients {
            let labels = [("group", group.as_str())];
            ConstGauge::new(*n as i64).encode(clients.encode_family(&labels)?)?;
        }
        let running = ConstGauge::new(i64::from(!matches!(s.state, RunState::Finished { .. })));
        running.encode(encoder.encode_descriptor(
            "openframe_harness_running",
            "1 while the run goes on, 0 once its report is written",
            None,
            running.metric_type(),
        )?)?;
        let elapsed = ConstGauge::new(s.elapsed_s);
        elapsed.encode(encoder.encode_descriptor(
            "openframe_harness_elapsed",
            "Seconds since the run started",
            Some(&Unit::Seconds),
            elapsed.metric_type(),
        )?)?;
        if let Some(stage) = &s.stage {
            let mut family = encoder.encode_descriptor(
                "openframe_harness_stage",
                "The current stage of the run (1 for the stage it is in)",
                None,
                MetricType::Gauge,
            )?;
            ConstGauge::new(1).encode(family.encode_family(&[("stage", stage.as_str())])?)?;
        }
        if let Some(step) = &s.step {
            let mut family = encoder.encode_descriptor(
                "openframe_harness_capacity_step",
                "The capacity step the search is at (1 for the step it is at)",
                None,
                MetricType::Gauge,
            )?;
            ConstGauge::new(1).encode(family.encode_family(&[("step", step.as_str())])?)?;
        }
        for (metric, buckets) in &s.latency {
            let name = format!("openframe_harness_{metric}_latency");
            let help = format!("{metric} latency of the run so far");
            let mut histogram =
                encoder.encode_descriptor(&name, &help, Some(&Unit::Seconds), MetricType::Histogram)?;
            histogram.encode_histogram::<NoLabelSet>(buckets.sum_s, buckets.count, &buckets.pairs(), None)?;
        }
        let lag = ConstGauge::new(s.loop_lag_max_us as f64 / 1e6);
        lag.encode(encoder.encode_descriptor(
            "openframe_harness_loop_lag_max",
            "The harness's worst event-loop lag so far",
            Some(&Unit::Seconds),
            lag.metric_type(),
        )?)?;
        let cpu = ConstCounter::new(s.harness_cpu_s);
        cpu.encode(encoder.encode_descriptor(
            "openframe_harness_cpu",
            "CPU time the harness used so far",
            Some(&Unit::Seconds),
            cpu.metric_type(),
        )?)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::snapshot::{LATENCY_BUCKETS_S, LatencyBuckets};
    use prometheus_parse::{Scrape, Value};

    #[test]
    fn every_family_parses_back_with_the_run_labels() {
        let mut fanout = LatencyBuckets::default();
        fanout.counts[3] = 5;
        fanout.counts[10] = 5;
        fanout.count = 11;
        fanout.sum_s = 0.5;
        let snapshot = LiveSnapshot {
            scenario: "fanout".into(),
            run_id: "r1".into(),
            shard: Some("1/2".into()),
            stage: Some("steady".into()),
            counters: vec![("events_delivered", 42), ("events_missing", 0)],
            clients: vec![("watchers".into(), 7), ("alerts".into(), 3)],
            latency: vec![("fanout".into(), fanout)],
            harness_cpu_s: 1.25,
            ..LiveSnapshot::default()
        };
        let text = render(Arc::new(snapshot));
        let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
        fn find<'a>(scrape: &'a Scrape, name: &'a str) -> impl Iterator<Item = &'a prometheus_parse::Sample> {
            scrape.samples.iter().filter(move |s| s.metric == name)
        }
        let delivered = find(&scrape, "openframe_harness_events_delivered_total").next().expect(&text);
        assert_eq!(delivered.value, Value::Counter(42.0));
        assert_eq!(delivered.labels.get("scenario"), Some("fanout"));
        assert_eq!(delivered.labels.get("run_id"), Some("r1"));
        assert_eq!(delivered.labels.get("shard"), Some("1/2"));
        let watchers = find(&scrape, "openframe_harness_clients_connected")
            .find(|s| s.labels.get("group") == Some("watchers"));
        assert_eq!(watchers.map(|s| s.value.clone()), Some(Value::Gauge(7.0)));
        let Value::Histogram(buckets) =
            &find(&scrape, "openframe_harness_fanout_latency_seconds").next().expect(&text).value
        else {
            panic!("not a histogram: {text}")
        };
        let at = |bound: f64| buckets.iter().find(|b| b.less_than == bound).map(|b| b.count);
        assert_eq!(at(LATENCY_BUCKETS_S[3]), Some(5.0), "cumulative");
        assert_eq!(at(LATENCY_BUCKETS_S[10]), Some(10.0), "cumulative");
        assert_eq!(at(f64::INFINITY), Some(11.0));
        assert!(
            text.contains("openframe_harness_fanout_latency_seconds_count{scenario=\"fanout\""),
            "{text}"
        );
        assert!(text.contains("openframe_harness_cpu_seconds_total"), "{text}");
        assert!(text.contains("openframe_harness_stage{"), "{text}");
    }
}
