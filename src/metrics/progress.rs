//! The live progress line on stderr, once a second: clients up, events/s, fan-out p99 so far,
//! errors. On a terminal it rewrites one line; otherwise (CI logs) it prints plain lines with
//! no escape codes. `--quiet` turns it off.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};

use serde::{Deserialize, Serialize};

use crate::results::model::Counters;
use crate::results::server_sample::ServerSample;
use crate::util::duration::format_micros;

/// What one progress line shows.
#[derive(Debug, Clone, Default)]
pub struct ProgressLine {
    pub t_s: f64,
    pub duration_s: f64,
    pub clients: u64,
    pub planned_clients: u64,
    pub events_per_s: u64,
    pub fanout_p99_us: u64,
    pub missing: u64,
    pub errors: u64,
    /// The stage the second ended in, when the run has more than one.
    pub stage: Option<String>,
    /// In JSON lines only: what a parent's live endpoint needs of this worker's second.
    pub detail: Option<Box<WorkerSecond>>,
}

/// A worker process's second as its parent's live endpoint (`run --live`) reads it from the
/// JSON progress line: enough to serve the whole run's `/metrics` from one place.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WorkerSecond {
    /// The worker's counters so far (totals, not this second's).
    pub counters: Counters,
    /// Clients connected now, per client group (the plan's order).
    pub clients_by_group: Vec<u64>,
    /// This second's latency histograms by metric name, HdrHistogram V2 compressed, base64
    /// (as `intervals[].histograms`).
    pub histograms: BTreeMap<String, String>,
    /// The worker's CPU time so far, in seconds.
    pub cpu_s: f64,
    /// The target's metrics as the worker scraped them this second.
    pub server: Option<ServerSample>,
}

impl ProgressLine {
    pub fn render(&self) -> String {
        format!(
            "[{:>5.0}s/{:.0}s]{} clients {}/{}  events/s {}  fanout p99 {}  missing {}  errors {}",
            self.t_s,
            self.duration_s,
            self.stage.as_ref().map_or(String::new(), |stage| format!(" {stage}:")),
            self.clients,
            self.planned_clients,
            human_count(self.events_per_s),
            if self.fanout_p99_us == 0 { "-".to_owned() } else { format_micros(self.fanout_p99_us) },
            self.missing,
            self.errors,
        )
    }
}

/// The stage that holds the second ending at `t_s` of a timeline given as `(name, end_s)`;
/// `None` for a run of one stage (its name would say nothing the scenario's does not).
pub fn stage_at(stages: &[(String, f64)], t_s: f64) -> Option<String> {
    if stages.len() < 2 {
        return None;
    }
    let middle = t_s - 0.5;
    stages.iter().find(|(_, end_s)| middle < *end_s).or(stages.last()).map(|(name, _)| name.clone())
}

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    Off,
    /// One human line a second on stderr.
    Line,
    /// One JSON object a second on stdout, for a parent process that merges its workers.
    JsonLines,
}

impl Progress {
    pub fn show(&self, line: &ProgressLine) {
        match self {
            Progress::Off => {}
            Progress::JsonLines => {
                let json = serde_json::json!({
                    "t_s": line.t_s, "clients": line.clients, "events_per_s": line.events_per_s,
                    "fanout_p99_us": line.fanout_p99_us, "missing": line.missing, "errors": line.errors,
                    "stage": line.stage, "detail": line.detail,
                });
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{json}");
                let _ = out.flush();
            }
            Progress::Line => show_line(line),
        }
    }

    /// Ends the rewritten line so later output starts on its own line.
    pub fn finish(&self) {
        if *self == Progress::Line && std::io::stderr().is_terminal() {
            let _ = writeln!(std::io::stderr());
        }
    }
}

/// Prints a line on stderr; on a terminal it rewrites the previous one.
pub fn show_line(line: &ProgressLine) {
    {
        let terminal = std::io::stderr().is_terminal();
        let mut err = std::io::stderr().lock();
        let _ = if terminal {
            write!(err, "\r\x1b[2K{}", line.render())
        } else {
            writeln!(err, "{}", line.render())
        };
        let _ = err.flush();
    }
}

/// 1234 → "1.2k", 1_500_000 → "1.50M".
pub fn human_count(n: u64) -> String {
    match n {
        0..1_000 => n.to_string(),
        1_000..1_000_000 => format!("{:.1}k", n as f64 / 1e3),
        _ => format!("{:.2}M", n as f64 / 1e6),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_names_every_figure() {
        let line = ProgressLine {
            t_s: 12.0,
            duration_s: 30.0,
            clients: 4980,
            planned_clients: 5000,
            events_per_s: 1_020_000,
            fanout_p99_us: 3100,
            missing: 0,
            errors: 2,
            stage: None,
            detail: None,
        };
        assert_eq!(
            line.render(),
            "[   12s/30s] clients 4980/5000  events/s 1.02M  fanout p99 3.1ms  missing 0  errors 2"
        );
        assert!(!line.render().contains('\x1b'));
        let staged = ProgressLine { stage: Some("spike".into()), ..line };
        assert!(staged.render().starts_with("[   12s/30s] spike: clients 4980/5000"), "{}", staged.render());
    }

    #[test]
    fn the_stage_of_a_second_is_where_its_middle_falls() {
        let stages = [("up".to_owned(), 10.0), ("spike".to_owned(), 12.5), ("down".to_owned(), 20.0)];
        let at = |t| stage_at(&stages, t);
        assert_eq!(at(10.0).as_deref(), Some("up"));
        assert_eq!(at(12.0).as_deref(), Some("spike"));
        assert_eq!(at(13.0).as_deref(), Some("down"), "12–13 s: its middle is the spike's end");
        assert_eq!(at(25.0).as_deref(), Some("down"), "past the end: the last stage");
        assert_eq!(stage_at(&stages[..1], 5.0), None, "one stage is named by the scenario");
    }
}
