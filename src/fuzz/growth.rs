//! Growth: the same cases repeated many times must not make the server's open connections or
//! memory grow. Reads `/metrics` (open connections, resident memory) or the child process's
//! RSS; steady growth across rounds is a finding.

use std::time::Duration;

use super::case::{Framing, FuzzCase, TokenMutation};
use super::exec::Executor;
use crate::oracle::{Mismatch, Oracle};
use crate::probe::http;

/// Rounds of repetition, and cases per round.
const ROUNDS: usize = 5;
const PER_ROUND: usize = 150;

/// A sample of the server's cost.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Sample {
    pub connections_open: Option<f64>,
    pub rss_bytes: Option<f64>,
}

pub async fn sample(target: &crate::probe::Target, child_rss: Option<u64>, wait: Duration) -> Sample {
    let metrics =
        http::request(target, "GET", "/metrics", &[], "", wait).await.ok().filter(|r| r.status == 200);
    let text = metrics.map(|r| r.body).unwrap_or_default();
    Sample {
        connections_open: http::metric_value(&text, "openframe_connections_open"),
        rss_bytes: child_rss
            .map(|b| b as f64)
            .or_else(|| http::metric_value(&text, "openframe_process_resident_memory_bytes")),
    }
}

/// What the growth check saw.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct GrowthReport {
    pub samples: Vec<Sample>,
    pub finding: Option<String>,
}

/// Repeats connection churn, bad messages and subscribes; judges the samples.
pub async fn check(exec: &mut Executor, rss: impl Fn() -> Option<u64>) -> GrowthReport {
    let cases = [
        FuzzCase::Handshake { token: TokenMutation::Valid },
        FuzzCase::Handshake { token: TokenMutation::Missing },
        FuzzCase::Message {
            payload: b"not json".to_vec(),
            binary: false,
            framing: Framing::Whole,
            publish_scope: false,
        },
        FuzzCase::Message {
            payload: br#"{"type":"subscribe","topics":["alerts","devices"],"id":"g"}"#.to_vec(),
            binary: false,
            framing: Framing::Split(vec![5]),
            publish_scope: false,
        },
        FuzzCase::Message {
            payload: br#"{"type":"unsubscribe","topics":["alerts"]}"#.to_vec(),
            binary: false,
            framing: Framing::Whole,
            publish_scope: false,
        },
    ];
    let target = exec.target.clone();
    let wait = exec.answer;
    let mut report = GrowthReport::default();
    report.samples.push(sample(&target, rss(), wait).await);
    for round in 0..ROUNDS {
        for i in 0..PER_ROUND {
            exec.run(&cases[(round + i) % cases.len()]).await;
        }
        exec.reset().await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        report.samples.push(sample(&target, rss(), wait).await);
    }
    // Let closes settle before judging connections.
    for _ in 0..20 {
        let (first, last) = (report.samples[0], sample(&target, rss(), wait).await);
        if let (Some(a), Some(b)) = (first.connections_open, last.connections_open)
            && b <= a + 1.0
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let last = sample(&target, rss(), wait).await;
    report.samples.push(last);
    let first = report.samples[0];
    if let (Some(a), Some(b)) = (first.connections_open, last.connections_open)
        && b > a + 2.0
    {
        report.finding = Some(format!(
            "open connections grew from {a} to {b} after {} repeated cases that all closed their connections",
            ROUNDS * PER_ROUND
        ));
    }
    let rss: Vec<f64> =
        report.samples[1..report.samples.len() - 1].iter().filter_map(|s| s.rss_bytes).collect();
    if rss.len() == ROUNDS
        && rss.windows(2).all(|w| w[1] > w[0])
        && rss[ROUNDS - 1] - rss[0] > 64.0 * 1024.0 * 1024.0
    {
        report.finding = Some(format!(
            "resident memory grew in every round: {:?} MiB",
            rss.iter().map(|b| (b / 1048576.0) as u64).collect::<Vec<_>>()
        ));
    }
    report
}

pub fn mismatch(report: &GrowthReport) -> Option<Mismatch> {
    report.finding.as_ref().map(|f| Mismatch::new(Oracle::Growth, f.clone()))
}
