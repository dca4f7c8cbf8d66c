//! The validated plan a run executes (STYLE rule 3): enums instead of optional keys, defaults
//! applied, every cross-field rule checked. The runner never sees the TOML.

use std::ops::Range;
use std::time::Duration;

use super::model::{ClientGroupSpec, PublisherSpec, RangeValue, ScenarioFile, TargetSpec};
/// Parsed once in the file's model and used as they are.
pub use super::model::{Credential, Via};
use crate::protocol::client::{ClientMessage, parse_client_message, subscribe_json};
use crate::protocol::topic::{DEVICE_STATUSES, SEVERITIES, SYSTEM_STATUSES};
use crate::protocol::{Filters, Topic};
use crate::report::gates::Gate;
use crate::server::Faults;

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
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub name: String,
    pub description: String,
    /// From the start of the run to the clients' final close.
    pub duration: Duration,
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
    /// The scenario file's text, kept for the report.
    pub source: String,
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
pub enum Arrival {
    AllAtOnce,
    /// Connections spread evenly over this time.
    Ramp(Duration),
    /// Connections per second.
    Rate(f64),
}

impl Arrival {
    /// When client `i` of `count` connects, after the group's start.
    pub fn offset(self, i: u64, count: u64) -> Duration {
        match self {
            Arrival::AllAtOnce => Duration::ZERO,
            Arrival::Ramp(ramp) => ramp.mul_f64(i as f64 / count.max(1) as f64),
            Arrival::Rate(rate) => Duration::from_secs_f64(i as f64 / rate),
        }
    }

    /// When the last client of `count` connects.
    pub fn span(self, count: u64) -> Duration {
        self.offset(count.saturating_sub(1), count)
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Churn {
    pub reconnect_every: Option<(Duration, Duration)>,
    pub resubscribe_every: Option<(Duration, Duration)>,
    pub resubscribe_pause: Duration,
}

/// A slow consumer: stops reading for a while.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stall {
    pub after: Duration,
    pub length: Duration,
    pub socket_buffer_bytes: Option<u32>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GroupPlan {
    pub name: String,
    pub count: u64,
    pub arrival: Arrival,
    pub start_after: Duration,
    pub topics: Vec<Topic>,
    pub filters: Filters,
    pub churn: Churn,
    pub credential: Credential,
    pub token_in_query: bool,
    pub stall: Option<Stall>,
}

impl GroupPlan {
    /// When the group's last client has connected.
    pub fn ready_at(&self) -> Duration {
        self.start_after + self.arrival.span(self.count)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct PublisherPlan {
    /// Index among all publisher connections; carried in every event it sends.
    pub index: u32,
    pub name: String,
    pub topic: Topic,
    pub rate_per_s: f64,
    pub via: Via,
    /// The field the mix chooses (`severity` or `status`) and its weighted values.
    pub mix: Vec<(&'static str, u32)>,
    pub device_ids: u64,
    pub payload_bytes: usize,
    /// Publishing window, relative to the start of the run.
    pub start: Duration,
    pub stop: Duration,
}

impl PublisherPlan {
    /// Events this publisher sends at most (its window × rate).
    pub fn planned_events(&self) -> u64 {
        ((self.stop.saturating_sub(self.start)).as_secs_f64() * self.rate_per_s).ceil() as u64
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HarnessPlan {
    pub threads: usize,
    pub max_loop_lag: Duration,
    pub drain: Duration,
    pub connect_timeout: Duration,
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

/// Builds the plan from a parsed file. `whole` is the file's full span, for errors that
/// belong to no single value.
pub fn build(file: ScenarioFile, source: &str, overrides: &Overrides) -> Result<Plan, PlanError> {
    let whole = 0..source.len().min(1);
    if file.name.trim().is_empty() {
        return Err(PlanError::at(whole, "`name` must not be empty"));
    }
    let duration = overrides.duration.unwrap_or(file.duration.0);
    if duration < Duration::from_secs(1) {
        return Err(PlanError::at(whole, "`duration` must be at least 1s"));
    }
    let harness = HarnessPlan {
        threads: file
            .harness
            .threads
            .map_or_else(crate::util::process::cpu_count, |c| c.0 as usize)
            .clamp(1, 64),
        max_loop_lag: file.harness.max_loop_lag.map_or(Duration::from_millis(25), |d| d.0),
        drain: file.harness.drain.map_or(Duration::from_secs(2), |d| d.0),
        connect_timeout: file.harness.connect_timeout.map_or(Duration::from_secs(10), |d| d.0),
    };
    let (target, tls) = target(file.target, overrides)?;
    let (auth, auth_span) = match file.auth {
        Some(auth) => (auth.get_ref().clone(), auth.span()),
        None => (Default::default(), whole.clone()),
    };
    let credentials = credentials(&auth, auth_span, overrides, &target)?;
    let mut groups = Vec::with_capacity(file.clients.len());
    for spec in &file.clients {
        let group = group(spec.get_ref(), spec.span(), duration)?;
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
    let settled =
        groups.iter().filter(|g| g.credential.is_valid()).map(GroupPlan::ready_at).max().unwrap_or_default()
            + Duration::from_secs(1);
    let mut publishers = Vec::new();
    for spec in &file.publishers {
        publishers.extend(publisher(
            spec.get_ref(),
            spec.span(),
            publishers.len(),
            settled,
            duration,
            harness.drain,
        )?);
    }
    if matches!(&credentials, CredentialSource::Tokens(tokens) if tokens.is_empty()) {
        return Err(PlanError::at(whole, "the token file holds no tokens"));
    }
    let mut gates = Vec::new();
    for (metric, condition) in &file.gates {
        let group_names: Vec<&str> = groups.iter().map(|g| g.name.as_str()).collect();
        let gate = Gate::parse(metric.get_ref(), condition.get_ref(), &group_names).map_err(|message| {
            let span = if message.starts_with("unknown metric") { metric.span() } else { condition.span() };
            PlanError::at(span, message)
        })?;
        gates.push(gate);
    }
    let token_ttl = auth.token_ttl.map_or(duration + Duration::from_secs(600), |d| d.0);
    Ok(Plan {
        name: file.name,
        description: file.description,
        duration,
        seed: overrides.seed.or(file.seed).unwrap_or_else(rand::random),
        target,
        tls,
        credentials,
        token_ttl,
        groups,
        publishers,
        gates,
        harness,
        source: source.to_owned(),
    })
}

/// Server processes a scenario may ask the bundled server to run as.
const MAX_CLUSTER_WORKERS: u32 = 64;

fn target(
    spec: Option<toml::Spanned<TargetSpec>>,
    overrides: &Overrides,
) -> Result<(TargetPlan, TlsPlan), PlanError> {
    let span = spec.as_ref().map_or(0..1, |s| s.span());
    let table = match spec.map(toml::Spanned::into_inner) {
        None => Default::default(),
        Some(TargetSpec::Url(url)) => super::model::TargetTable { url: Some(url), ..Default::default() },
        Some(TargetSpec::Table(table)) => table,
    };
    let tls = TlsPlan {
        ca_cert: overrides.ca_cert.clone().or_else(|| table.ca_cert.as_ref().map(Into::into)),
        insecure: overrides.insecure || table.insecure.unwrap_or(false),
    };
    let url = overrides.target.clone().or(table.url);
    let Some(ws_url) = url else {
        let faults =
            Faults::parse_all(&table.faults).map_err(|e| PlanError::at(span.clone(), e.to_string()))?;
        if tls.ca_cert.is_some() {
            return Err(PlanError::at(
                span,
                "ca_cert (--ca-cert) is for an external wss:// target; the bundled server's generated \
                 certificate is trusted by the run's clients already",
            ));
        }
        let cluster_workers = table.cluster_workers.unwrap_or(1);
        if !(1..=MAX_CLUSTER_WORKERS).contains(&cluster_workers) {
            return Err(PlanError::at(
                span,
                format!("cluster_workers must be between 1 and {MAX_CLUSTER_WORKERS}, got {cluster_workers}"),
            ));
        }
        let embedded = TargetPlan::Embedded {
            faults,
            fault_specs: table.faults.clone(),
            cluster_workers,
            queue: table.queue,
            socket_send_buffer: table.socket_send_buffer,
            tls: overrides.tls.or(table.tls).unwrap_or(false),
        };
        return Ok((embedded, tls));
    };
    // A target given on the command line replaces the file's, bundled-server settings included
    // (worker processes get the parent's bundled server this way).
    let bundled_only = !table.faults.is_empty()
        || table.cluster_workers.is_some()
        || table.queue.is_some()
        || table.socket_send_buffer.is_some()
        || table.tls.is_some();
    if (bundled_only && overrides.target.is_none()) || overrides.tls.is_some() {
        return Err(PlanError::at(
            span,
            "[target] faults, queue, socket_send_buffer, cluster_workers and tls (--tls) apply to the bundled server only, \
             not to an external url (whose scheme, ws:// or wss://, says whether it uses TLS)",
        ));
    }
    let http_url = match table.http_url {
        Some(http) => http,
        None => crate::util::url::derive_http_url(&ws_url).ok_or_else(|| {
            PlanError::at(span.clone(), format!("target {ws_url:?} is not a ws:// or wss:// URL"))
        })?,
    };
    Ok((TargetPlan::External { ws_url, http_url }, tls))
}

fn credentials(
    auth: &super::model::AuthSpec,
    span: Range<usize>,
    overrides: &Overrides,
    target: &TargetPlan,
) -> Result<CredentialSource, PlanError> {
    if let Some(secret) = &overrides.jwt_secret {
        return Ok(CredentialSource::Secret(secret.clone().into_bytes()));
    }
    if let Some(tokens) = &overrides.token_file {
        return Ok(CredentialSource::Tokens(tokens.clone()));
    }
    let given = [auth.jwt_secret.is_some(), auth.tokens_file.is_some(), auth.token_env.is_some()];
    if given.iter().filter(|g| **g).count() > 1 {
        return Err(PlanError::at(span, "[auth] takes one of jwt_secret, tokens_file, token_env"));
    }
    if let Some(secret) = &auth.jwt_secret {
        return Ok(CredentialSource::Secret(secret.clone().into_bytes()));
    }
    if let Some(path) = &auth.tokens_file {
        let text = std::fs::read_to_string(path).map_err(|e| {
            PlanError::at(span.clone(), format!("cannot read [auth] tokens_file {path:?}: {e}"))
        })?;
        return Ok(CredentialSource::Tokens(read_tokens(&text)));
    }
    if let Some(var) = &auth.token_env {
        let token = std::env::var(var).map_err(|_| {
            PlanError::at(span.clone(), format!("[auth] token_env: environment variable {var} is not set"))
        })?;
        return Ok(CredentialSource::Tokens(vec![token.trim().to_owned()]));
    }
    match target {
        TargetPlan::Embedded { .. } => {
            Ok(CredentialSource::Secret(crate::protocol::jwt::DEFAULT_DEV_SECRET.as_bytes().to_vec()))
        }
        TargetPlan::External { .. } => match std::env::var("OPENFRAME_JWT_SECRET") {
            Ok(secret) => Ok(CredentialSource::Secret(secret.into_bytes())),
            Err(_) => Err(PlanError::at(
                span,
                "an external target needs credentials: [auth] jwt_secret / tokens_file / token_env, \
                 --jwt-secret, --token-file or OPENFRAME_JWT_SECRET",
            )),
        },
    }
}

/// One token per line; blank lines and `#` comments are skipped.
pub fn read_tokens(text: &str) -> Vec<String> {
    text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(str::to_owned).collect()
}

fn group(spec: &ClientGroupSpec, span: Range<usize>, duration: Duration) -> Result<GroupPlan, PlanError> {
    let error = |message: String| PlanError::at(span.clone(), message);
    if spec.name.trim().is_empty() {
        return Err(error("a client group needs a non-empty `name`".into()));
    }
    let arrival = match (spec.ramp, spec.arrival_rate) {
        (Some(_), Some(_)) => {
            return Err(error(format!("group {:?}: give `ramp` or `arrival_rate`, not both", spec.name)));
        }
        (Some(ramp), None) => Arrival::Ramp(ramp.0),
        (None, Some(rate)) => Arrival::Rate(rate.0),
        (None, None) => Arrival::AllAtOnce,
    };
    let credential = spec.credential;
    let mut topics: Vec<Topic> = Vec::new();
    for t in &spec.topics {
        if !topics.contains(&t.0) {
            topics.push(t.0);
        }
    }
    if credential.is_valid() && topics.is_empty() {
        return Err(error(format!("group {:?}: `topics` must name at least one topic", spec.name)));
    }
    let filters = match &spec.filters {
        None => Filters::default(),
        Some(spanned) => {
            let filters = Filters::new(spanned.get_ref().iter().map(|(k, v)| (k.as_str(), v.clone())));
            // The protocol core's own subscribe validation: one definition of the rule.
            let message = subscribe_json(&topics, &filters, None);
            match parse_client_message(&message, false) {
                Ok(ClientMessage::Subscribe(_)) => filters,
                Ok(_) => filters,
                Err(rejection) => {
                    return Err(PlanError::at(
                        spanned.span(),
                        format!("group {:?}: invalid filters: {}", spec.name, rejection.message),
                    ));
                }
            }
        }
    };
    let range = |r: Option<RangeValue>| r.map(|RangeValue(low, high)| (low, high));
    let default_pause = Duration::from_millis(200);
    let churn = spec.churn.as_ref().map_or(
        Churn { reconnect_every: None, resubscribe_every: None, resubscribe_pause: default_pause },
        |c| Churn {
            reconnect_every: range(c.reconnect_every),
            resubscribe_every: range(c.resubscribe_every),
            resubscribe_pause: c.resubscribe_pause.map_or(default_pause, |d| d.0),
        },
    );
    let stall = spec.read.as_ref().map(|r| Stall {
        after: r.stall_after.0,
        length: r.stall_for.0,
        socket_buffer_bytes: r.socket_buffer_bytes,
    });
    let plan = GroupPlan {
        name: spec.name.clone(),
        count: spec.count.0,
        arrival,
        start_after: spec.start_after.map_or(Duration::ZERO, |d| d.0),
        topics,
        filters,
        churn,
        credential,
        token_in_query: spec.token_in_query,
        stall,
    };
    if plan.ready_at() >= duration {
        return Err(error(format!(
            "group {:?} is still connecting when the run ends ({:?} of {:?}): shorten its ramp or lengthen `duration`",
            spec.name,
            plan.ready_at(),
            duration
        )));
    }
    Ok(plan)
}

fn publisher(
    spec: &PublisherSpec,
    span: Range<usize>,
    first_index: usize,
    settled: Duration,
    duration: Duration,
    drain: Duration,
) -> Result<Vec<PublisherPlan>, PlanError> {
    let topic = spec.topic.0;
    let name = spec.name.clone().unwrap_or_else(|| format!("{topic}-publisher"));
    let error = |message: String| PlanError::at(span.clone(), format!("publisher {name:?}: {message}"));
    let (field, values, given) = match topic {
        Topic::Alerts => {
            if spec.status_mix.is_some() {
                return Err(error(
                    "`status_mix` applies to devices and system_status; alerts take `severity_mix`".into(),
                ));
            }
            ("severity", SEVERITIES, spec.severity_mix.as_ref())
        }
        Topic::Devices | Topic::SystemStatus => {
            if spec.severity_mix.is_some() {
                return Err(error(format!("`severity_mix` applies to alerts; {topic} takes `status_mix`")));
            }
            let values = if topic == Topic::Devices { DEVICE_STATUSES } else { SYSTEM_STATUSES };
            ("status", values, spec.status_mix.as_ref())
        }
    };
    let mix: Vec<(&'static str, u32)> = match given {
        None => values.iter().map(|v| (*v, 1)).collect(),
        Some(spanned) => {
            let mut mix = Vec::new();
            for (value, weight) in spanned.get_ref() {
                let known = values.iter().find(|v| **v == value).ok_or_else(|| {
                    PlanError::at(
                        spanned.span(),
                        format!(
                            "publisher {name:?}: {value:?} is not a {field} of {topic} (expected one of {})",
                            values.join(", ")
                        ),
                    )
                })?;
                mix.push((*known, *weight));
            }
            if mix.iter().all(|(_, w)| *w == 0) {
                return Err(PlanError::at(
                    spanned.span(),
                    format!("publisher {name:?}: the mix's weights add up to 0"),
                ));
            }
            mix
        }
    };
    let connections = spec.connections.map_or(1, |c| c.0);
    let start = spec.start_after.map_or(settled, |d| d.0);
    let stop = duration.saturating_sub(spec.stop_before_end.map_or(drain, |d| d.0));
    if start >= stop {
        return Err(error(format!(
            "its window is empty: it starts at {start:?} and must stop by {stop:?} (duration minus the drain); \
             lengthen `duration` or set `start_after`"
        )));
    }
    let rate_per_s = spec.rate.0 / connections as f64;
    Ok((0..connections)
        .map(|i| PublisherPlan {
            index: (first_index as u64 + i) as u32,
            name: if connections == 1 { name.clone() } else { format!("{name}#{i}") },
            topic,
            rate_per_s,
            via: spec.via,
            mix: mix.clone(),
            device_ids: spec.device_ids.map_or(100, |c| c.0),
            payload_bytes: spec.payload_bytes.unwrap_or(0),
            start,
            stop,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrival_offsets_spread_clients() {
        assert_eq!(Arrival::Ramp(Duration::from_secs(10)).offset(5, 10), Duration::from_secs(5));
        assert_eq!(Arrival::Rate(100.0).offset(50, 1000), Duration::from_millis(500));
        assert_eq!(Arrival::AllAtOnce.span(1000), Duration::ZERO);
    }

    #[test]
    fn token_files_skip_blanks_and_comments() {
        assert_eq!(read_tokens("a\n\n# c\n b \n"), ["a", "b"]);
    }
}
