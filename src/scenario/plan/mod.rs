//! The validated plan a run executes (STYLE rule 3): enums instead of optional keys, defaults
//! applied, every cross-field rule checked. The runner never sees the TOML.
//!
//! [`build`] walks the file in order and hands each part to its own module: [`target`] (what the
//! run talks to, how it authenticates), [`groups`] (client groups), [`publishers`], [`capacity`]
//! (a capacity search and the plan of each of its steps); the checks that span parts (group and
//! publisher names unique, gates naming known groups and stages, the timeline of
//! [`crate::scenario::stages`]) stay here.

use std::ops::Range;
use std::time::Duration;

pub mod capacity;
mod groups;
mod publishers;
mod target;

pub use capacity::{CapacityPlan, Vary};
pub use groups::{Arrival, Churn, GroupPlan, Stall};
pub use publishers::PublisherPlan;
pub use target::read_tokens;

use super::model::ScenarioFile;
use super::stages::{StagePlan, Timeline};
/// Parsed once in the file's model and used as they are.
pub use super::values::{Credential, Via};
use crate::report::gates::Gate;
use crate::server::Faults;
use publishers::Window;

/// A problem in the scenario, at a byte range of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanError {
    pub span: Range<usize>,
    pub message: String,
}

impl PlanError {
    fn at(span: Range<usize>, message: impl Into<String>) -> PlanError {
        PlanError { span, message: message.into() }
    }
}

/// Values given on the command line, which win over the file (CLI.md).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub target: Option<String>,
    pub seed: Option<u64>,
    pub duration: Option<Duration>,
    pub jwt_secret: Option<String>,
    pub token_file: Option<Vec<String>>,
    /// `--tls` / `--no-tls`: the bundled server over TLS or plain.
    pub tls: Option<bool>,
    /// `--ca-cert FILE`.
    pub ca_cert: Option<std::path::PathBuf>,
    /// `--insecure`.
    pub insecure: bool,
    /// `--threads N`: the run's threads, instead of the file's or one per core.
    pub threads: Option<usize>,
    /// `--shard I/N`: this process runs one share of a run whose shards must share one server.
    pub sharded: bool,
    /// `--no-target-metrics`: the target's own metrics are not scraped.
    pub no_target_metrics: bool,
    /// `--target-metrics-url` (a parent to its first worker process): scrape these instead.
    pub target_metrics_urls: Vec<String>,
    /// `--fault SPEC`: faults for the bundled server, added to the file's `[target] faults`.
    pub faults: Vec<String>,
    /// `--find-capacity`: the run is the file's `[capacity]` search (which it must have).
    pub find_capacity: bool,
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub name: String,
    pub description: String,
    /// From the start of the run to the clients' final close.
    pub duration: Duration,
    /// The run's named stages, in order, covering it from 0 to `duration` (a scenario without
    /// `[[stages]]` has one, named after it).
    pub stages: Vec<StagePlan>,
    pub seed: u64,
    pub target: TargetPlan,
    /// How the clients check a TLS target's certificate.
    pub tls: TlsPlan,
    pub credentials: CredentialSource,
    pub token_ttl: Duration,
    pub groups: Vec<GroupPlan>,
    /// One per publisher connection.
    pub publishers: Vec<PublisherPlan>,
    pub gates: Vec<Gate>,
    pub harness: HarnessPlan,
    /// Where the target's own Prometheus metrics are scraped from, once a second.
    pub target_metrics: TargetMetrics,
    /// The scenario file's text, kept for the report.
    pub source: String,
    /// `[capacity]`: the run is a capacity search; this plan is its first step's.
    pub capacity: Option<CapacityPlan>,
    /// Deliveries of events intended before this time (since the run's start) are left out of
    /// the fan-out and completion latency: a capacity step's warm-up. Zero for any other run.
    pub judged_from: Duration,
}

/// Where `intervals[].server` comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetMetrics {
    /// The bundled server's processes; for an external target, the `/metrics` next to its
    /// `/v1/ws` when it answers.
    Default,
    /// `[target] metrics_url`, or the URLs a parent hands its worker processes (one per
    /// server process): http or https.
    Urls(Vec<String>),
    /// `--no-target-metrics`: not scraped.
    Off,
}

#[derive(Debug, Clone, PartialEq)]
pub enum TargetPlan {
    /// The bundled server, started for the run: in-process, or as a cluster of `serve`
    /// processes over a Redis broker when `cluster_workers` > 1.
    Embedded {
        faults: Faults,
        /// `faults` as written (`serve --fault SPEC`), for a cluster's processes.
        fault_specs: Vec<String>,
        queue: Option<usize>,
        socket_send_buffer: Option<u32>,
        /// Over TLS, with a certificate generated at start that the clients trust.
        tls: bool,
        /// Server processes; 1: the server runs inside the harness's own process.
        cluster_workers: u32,
    },
    External {
        ws_url: String,
        http_url: String,
    },
}

/// The clients' certificate checks, for a `wss://` target.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsPlan {
    /// Trust only the CA certificates in this file (default: the platform's roots, or the
    /// generated CA of the bundled server).
    pub ca_cert: Option<std::path::PathBuf>,
    /// Skip certificate verification.
    pub insecure: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialSource {
    /// Mint tokens with this HS256 secret.
    Secret(Vec<u8>),
    /// Use these tokens, round robin (publishers need the `publish` scope).
    Tokens(Vec<String>),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HarnessPlan {
    pub threads: usize,
    pub max_loop_lag: Duration,
    pub drain: Duration,
    pub connect_timeout: Duration,
    /// `[harness] live`: the live endpoint's address.
    pub live: Option<std::net::SocketAddr>,
    /// Time frames by the kernel's receive stamps (`timestamps = "kernel"`, the default).
    pub kernel_stamps: bool,
    /// `faults = ["stall=LENGTH/EVERY"]`: the subscribers' threads stop for `length` every `every`.
    pub stall: Option<HarnessStall>,
}

/// A self-test of the harness: its subscriber threads block, as an overloaded loop would.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HarnessStall {
    pub length: Duration,
    pub every: Duration,
}

impl Plan {
    pub fn planned_clients(&self) -> u64 {
        self.groups.iter().map(|g| g.count).sum()
    }

    /// Whether the clients connect over TLS (the bundled server with `tls`, or a `wss://` URL).
    pub fn uses_tls(&self) -> bool {
        match &self.target {
            TargetPlan::Embedded { tls, .. } => *tls,
            TargetPlan::External { ws_url, .. } => ws_url.starts_with("wss://"),
        }
    }

    /// Whether the bundled server runs inside this process (it shares the harness's CPU,
    /// memory and open files).
    pub fn bundled_in_process(&self) -> bool {
        matches!(self.target, TargetPlan::Embedded { cluster_workers: 1, .. })
    }

    /// `embedded` or the target URL, as the report names it (the `tls` section says whether
    /// the bundled server spoke TLS).
    pub fn target_name(&self) -> String {
        match &self.target {
            TargetPlan::Embedded { .. } => "embedded".to_owned(),
            TargetPlan::External { ws_url, .. } => ws_url.clone(),
        }
    }
}

/// `[harness] faults`: at most one `stall=LENGTH/EVERY`, the stall shorter than its period.
fn harness_stall(faults: &[toml::Spanned<String>]) -> Result<Option<HarnessStall>, PlanError> {
    let mut stall = None;
    for fault in faults {
        let expected = || {
            PlanError::at(
                fault.span(),
                format!(
                    "[harness] fault {:?}: expected stall=LENGTH/EVERY with LENGTH shorter than EVERY, \
                     e.g. \"stall=200ms/2s\"",
                    fault.get_ref()
                ),
            )
        };
        let spec = fault.get_ref().trim().strip_prefix("stall=").ok_or_else(expected)?;
        let (length, every) = spec.split_once('/').ok_or_else(expected)?;
        let length = crate::util::duration::parse_duration(length.trim()).map_err(|_| expected())?;
        let every = crate::util::duration::parse_duration(every.trim()).map_err(|_| expected())?;
        if length.is_zero() || length >= every {
            return Err(expected());
        }
        if stall.is_some() {
            return Err(PlanError::at(fault.span(), "[harness] faults: give at most one stall"));
        }
        stall = Some(HarnessStall { length, every });
    }
    Ok(stall)
}

/// The run's timeline and length: the `[[stages]]`, or one stage of `duration` named after the
/// scenario. `--duration` stretches or shrinks every stage alike.
fn timeline(
    file: &ScenarioFile,
    overrides: &Overrides,
    whole: &Range<usize>,
) -> Result<(Timeline, Duration), PlanError> {
    if file.stages.is_empty() {
        let Some(written) = &file.duration else {
            return Err(PlanError::at(
                whole.clone(),
                "missing `duration`: expected `duration = \"30s\"` or a timeline of [[stages]]",
            ));
        };
        let duration = overrides.duration.unwrap_or(written.get_ref().0);
        let stage = StagePlan { name: file.name.clone(), start: Duration::ZERO, end: duration };
        return Ok((Timeline { stages: vec![stage], ..Timeline::default() }, duration));
    }
    if let Some(written) = &file.duration {
        return Err(PlanError::at(
            written.span(),
            "give `duration` or [[stages]], not both: the stages say how long the run is",
        ));
    }
    let initial_count = |name: &str| {
        file.clients
            .iter()
            .find(|g| g.get_ref().name == name)
            .map(|g| g.get_ref().count.map_or(0.0, |c| c.0 as f64))
    };
    let names = publishers::names_of(file.publishers.iter().map(toml::Spanned::get_ref));
    let initial_rate = |name: &str| {
        names.iter().position(|n| n == name).map(|i| file.publishers[i].get_ref().rate.map_or(0.0, |r| r.0))
    };
    let mut timeline = Timeline::build(&file.stages, initial_count, initial_rate)
        .map_err(|(span, message)| PlanError::at(span, message))?;
    if let Some(duration) = overrides.duration {
        timeline.scaled_in_time(duration.as_secs_f64() / timeline.end().as_secs_f64());
    }
    let end = timeline.end();
    Ok((timeline, end))
}

/// Builds the plan from a parsed file. `whole` is the file's full span, for errors that
/// belong to no single value.
pub fn build(file: ScenarioFile, source: &str, overrides: &Overrides) -> Result<Plan, PlanError> {
    let whole = 0..source.len().min(1);
    if file.name.trim().is_empty() {
        return Err(PlanError::at(whole, "`name` must not be empty"));
    }
    let searching = file.capacity.is_some();
    let (timeline, duration) = match &file.capacity {
        // A step's duration follows from its own timeline (`capacity::CapacityPlan::step`); until
        // then the groups and publishers are checked against one long enough for any.
        Some(table) => {
            let problem = if file.duration.is_some() {
                Some(
                    "`duration` does not apply with a [capacity] table: each step lasts from its clients' \
                      arrival through its warm-up and step_duration, then the drain",
                )
            } else if !file.stages.is_empty() {
                Some("[[stages]] and [capacity] do not go together: each capacity step holds one load")
            } else if overrides.duration.is_some() {
                Some("--duration does not apply to a capacity search: set [capacity] step_duration")
            } else if overrides.sharded {
                Some("a capacity search cannot be sharded (--shard): each step runs its whole load here")
            } else {
                None
            };
            if let Some(problem) = problem {
                return Err(PlanError::at(table.span(), problem));
            }
            let duration = Duration::from_secs(86_400);
            let stage = StagePlan { name: file.name.clone(), start: Duration::ZERO, end: duration };
            (Timeline { stages: vec![stage], ..Timeline::default() }, duration)
        }
        None => {
            if overrides.find_capacity {
                return Err(PlanError::at(
                    whole,
                    "--find-capacity needs a [capacity] table in the scenario (vary, from, to, step_duration)",
                ));
            }
            timeline(&file, overrides, &whole)?
        }
    };
    if duration < Duration::from_secs(1) {
        return Err(PlanError::at(whole, "`duration` must be at least 1s"));
    }
    let harness = HarnessPlan {
        threads: overrides
            .threads
            .or(file.harness.threads.map(|c| c.0 as usize))
            .unwrap_or_else(crate::util::process::cpu_count)
            .clamp(1, 64),
        max_loop_lag: file.harness.max_loop_lag.map_or(Duration::from_millis(25), |d| d.0),
        drain: file.harness.drain.map_or(Duration::from_secs(2), |d| d.0),
        connect_timeout: file.harness.connect_timeout.map_or(Duration::from_secs(10), |d| d.0),
        kernel_stamps: match &file.harness.timestamps {
            None => true,
            Some(mode) => match mode.get_ref().as_str() {
                "kernel" => true,
                "user" => false,
                other => {
                    return Err(PlanError::at(
                        mode.span(),
                        format!("[harness] timestamps = {other:?}: expected \"kernel\" or \"user\""),
                    ));
                }
            },
        },
        stall: harness_stall(&file.harness.faults)?,
        live: match &file.harness.live {
            None => None,
            Some(addr) => Some(crate::util::url::parse_socket_addr(addr.get_ref()).ok_or_else(|| {
                PlanError::at(
                    addr.span(),
                    format!("live must be HOST:PORT, e.g. 127.0.0.1:0, got {:?}", addr.get_ref()),
                )
            })?),
        },
    };
    let (target, tls, metrics_url) = target::target(file.target, overrides)?;
    let target_metrics = match metrics_url {
        _ if overrides.no_target_metrics => TargetMetrics::Off,
        _ if !overrides.target_metrics_urls.is_empty() => {
            TargetMetrics::Urls(overrides.target_metrics_urls.clone())
        }
        Some(url) => TargetMetrics::Urls(vec![url]),
        None => TargetMetrics::Default,
    };
    let (auth, auth_span) = match file.auth {
        Some(auth) => (auth.get_ref().clone(), auth.span()),
        None => (Default::default(), whole.clone()),
    };
    let credentials = target::credentials(&auth, auth_span, overrides, &target)?;
    let mut groups = Vec::with_capacity(file.clients.len());
    for spec in &file.clients {
        let load = timeline.counts.get(&spec.get_ref().name);
        let group = groups::group(spec.get_ref(), spec.span(), duration, load)?;
        if groups.iter().any(|g: &GroupPlan| g.name == group.name) {
            return Err(PlanError::at(spec.span(), format!("two client groups are named {:?}", group.name)));
        }
        if matches!(group.credential, Credential::Expired)
            && !matches!(credentials, CredentialSource::Secret(_))
        {
            return Err(PlanError::at(
                spec.span(),
                "credential = \"expired\" needs [auth] jwt_secret to sign with",
            ));
        }
        groups.push(group);
    }
    let settled = groups::settled(&groups);
    let mut publishers = Vec::new();
    let publisher_names = publishers::names_of(file.publishers.iter().map(toml::Spanned::get_ref));
    let mut publisher_ranges: Vec<(String, std::ops::Range<usize>)> = Vec::new();
    for (spec, name) in file.publishers.iter().zip(&publisher_names) {
        if publisher_ranges.iter().any(|(n, _)| n == name) {
            return Err(PlanError::at(
                spec.span(),
                format!("two publishers are named {name:?}: give each a `name`"),
            ));
        }
        if searching && spec.get_ref().stop_before_end.is_some() {
            return Err(PlanError::at(
                spec.span(),
                "`stop_before_end` does not apply in a capacity search: every publisher stops when a step's \
                 measured window ends",
            ));
        }
        let window = Window { settled, duration, drain: harness.drain };
        let staged = timeline.rates.get(name);
        let first = publishers.len();
        publishers.extend(publishers::publisher(
            spec.get_ref(),
            name,
            spec.span(),
            publishers.len(),
            window,
            staged,
        )?);
        publisher_ranges.push((name.clone(), first..publishers.len()));
    }
    if matches!(&credentials, CredentialSource::Tokens(tokens) if tokens.is_empty()) {
        return Err(PlanError::at(whole, "the token file holds no tokens"));
    }
    let mut gates = Vec::new();
    for (metric, condition) in &file.gates {
        let group_names: Vec<&str> = groups.iter().map(|g| g.name.as_str()).collect();
        let stage_names: Vec<&str> = timeline.stages.iter().map(|s| s.name.as_str()).collect();
        let gate = Gate::parse_in(metric.get_ref(), condition.get_ref(), &group_names, &stage_names)
            .map_err(|message| {
                let span = if message.starts_with("unknown") { metric.span() } else { condition.span() };
                PlanError::at(span, message)
            })?;
        if gate.is_capacity() && !searching {
            return Err(PlanError::at(
                metric.span(),
                format!(
                    "{}: capacity gates judge a capacity search; the scenario has no [capacity] table",
                    gate.metric
                ),
            ));
        }
        gates.push(gate);
    }
    gates.extend(Gate::defaults(&gates));
    let token_ttl = auth.token_ttl.map_or(duration + Duration::from_secs(600), |d| d.0);
    let capacity = match &file.capacity {
        None => None,
        Some(table) => {
            let names = capacity::Names {
                groups: file
                    .clients
                    .iter()
                    .map(|g| (g.get_ref().name.as_str(), g.get_ref().ramp.is_some()))
                    .collect(),
                publishers: publisher_ranges,
                starts: file
                    .publishers
                    .iter()
                    .flat_map(|p| {
                        let start = p.get_ref().start_after.map(|d| d.0);
                        std::iter::repeat_n(start, p.get_ref().connections.map_or(1, |c| c.0 as usize))
                    })
                    .collect(),
            };
            Some((capacity::capacity(table, names)?, table.span()))
        }
    };
    let plan = Plan {
        name: file.name,
        description: file.description,
        duration,
        stages: timeline.stages,
        seed: overrides.seed.or(file.seed).unwrap_or_else(rand::random),
        target,
        tls,
        credentials,
        token_ttl,
        groups,
        publishers,
        gates,
        harness,
        target_metrics,
        source: source.to_owned(),
        capacity: None,
        judged_from: Duration::ZERO,
    };
    match capacity {
        None => Ok(plan),
        Some((capacity, span)) => {
            capacity.check_windows(&plan, span)?;
            // The first step's plan, with every gate (`capacity.…` ones too) and the search.
            let mut first = capacity.step(&plan, capacity.from);
            first.gates = plan.gates;
            first.capacity = Some(capacity);
            Ok(first)
        }
    }
}
