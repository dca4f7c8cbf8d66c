//! The `system_status` heartbeat (PROTOCOL.md §3): every few seconds the server publishes its
//! own CPU and memory use to the `system_status` topic, like any other event (in a cluster,
//! every process publishes its own).

use std::sync::Arc;
use std::time::Duration;

use tokio::time::MissedTickBehavior;

use super::Shared;
use super::metrics::ServerMetrics;
use crate::protocol::server_message::event_json;
use crate::protocol::{ObjectView, Topic, timestamp};
use crate::util::process::{self, CpuSampler};

pub async fn heartbeat(shared: Arc<Shared>, interval: Duration) {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut cpu = CpuSampler::start();
    loop {
        tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let data = status_data(cpu.sample_percent());
        let Ok(view) = ObjectView::parse(&data) else { continue };
        let frame = event_json(Topic::SystemStatus, &data, &timestamp::now_rfc3339());
        match shared.cluster.as_deref() {
            // In a cluster every process's heartbeat reaches every subscriber, like any publish.
            Some(link) => {
                let sent = tokio::select! {
                    _ = shared.shutdown.cancelled() => return,
                    sent = link.publish(&frame, None) => sent,
                };
                if sent.is_err() {
                    return;
                }
                ServerMetrics::inc(&shared.metrics.events_published);
            }
            None => {
                shared.hub.publish(Topic::SystemStatus, &view, frame.into());
            }
        }
    }
}

/// The `data` of one heartbeat: `healthy` below 90 % CPU, `degraded` above.
fn status_data(cpu_percent: f64) -> String {
    let total = process::total_memory_bytes().max(1) as f64;
    let memory_percent = (process::rss_bytes() as f64 / total * 100.0).clamp(0.0, 100.0);
    let status = if cpu_percent < 90.0 { "healthy" } else { "degraded" };
    serde_json::json!({
        "status": status,
        "metrics": {
            "cpu_usage": (cpu_percent * 10.0).round() / 10.0,
            "memory_usage": (memory_percent * 10.0).round() / 10.0,
        }
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeat_data_is_a_valid_system_status_event() {
        for cpu in [0.0, 50.0, 99.9] {
            let data = status_data(cpu);
            let view = ObjectView::parse(&data).unwrap();
            assert_eq!(Topic::SystemStatus.validate_data(&view), Ok(()), "{data}");
        }
    }
}
