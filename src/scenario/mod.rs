//! Scenario files (`scenarios/*.toml`): parsing with file:line:column errors, and the
//! validated [`Plan`] the runner executes.
//!
//! - [`model`]: the file as written (serde, unknown keys refused, typed values);
//! - [`plan`]: the validated plan and its defaults (gate conditions are parsed with
//!   [`crate::report::gates`]);
//! - [`stages`]: load over time — named stages, count and rate curves.

pub mod model;
pub mod plan;
pub mod stages;
pub mod values;

use std::ops::Range;
use std::path::{Path, PathBuf};

pub use plan::{Overrides, Plan};

/// A scenario that cannot be run as written (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("cannot read scenario {path}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}:{line}:{column}: {message}")]
    Invalid { path: PathBuf, line: usize, column: usize, message: String },
}

/// Reads, parses and validates a scenario file.
pub fn load(path: &Path, overrides: &Overrides) -> Result<Plan, ScenarioError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| ScenarioError::Read { path: path.into(), source })?;
    parse(&text, path, overrides)
}

/// Parses and validates scenario `text`; `path` names it in errors.
pub fn parse(text: &str, path: &Path, overrides: &Overrides) -> Result<Plan, ScenarioError> {
    let invalid = |span: Option<Range<usize>>, message: String| {
        let (line, column) = line_column(text, span.map_or(0, |s| s.start));
        ScenarioError::Invalid { path: path.into(), line, column, message }
    };
    let file: model::ScenarioFile =
        toml::from_str(text).map_err(|e| invalid(e.span(), e.message().trim().to_owned()))?;
    plan::build(file, text, overrides).map_err(|e| invalid(Some(e.span), e.message))
}

/// 1-based line and column (in characters) of byte `offset`.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(text: &str) -> String {
        parse(text, Path::new("s.toml"), &Overrides::default()).unwrap_err().to_string()
    }

    const MINIMAL: &str =
        "name = \"t\"\nduration = \"10s\"\n[[clients]]\nname = \"c\"\ncount = 3\ntopics = [\"alerts\"]\n";

    #[test]
    fn a_minimal_scenario_plans_with_defaults() {
        let plan = parse(MINIMAL, Path::new("s.toml"), &Overrides::default()).unwrap();
        assert_eq!(plan.groups[0].count, 3);
        assert_eq!(plan.target_name(), "embedded");
        assert_eq!(plan.harness.drain, std::time::Duration::from_secs(2));
    }

    #[test]
    fn unknown_keys_are_refused_with_their_position() {
        let e = error(&format!("{MINIMAL}colour = \"red\"\n"));
        assert!(e.starts_with("s.toml:7:1: unknown field `colour`"), "{e}");
    }

    #[test]
    fn wrong_types_and_bad_values_name_what_was_expected() {
        let e = error("name = \"t\"\nduration = 10\n");
        assert!(e.starts_with("s.toml:2:12:") && e.contains("duration string"), "{e}");
        let e = error(&MINIMAL.replace("count = 3", "count = 0"));
        assert!(e.starts_with("s.toml:5:9:") && e.contains("positive integer"), "{e}");
        let e = error(&MINIMAL.replace("[\"alerts\"]", "[\"weather\"]"));
        assert!(e.starts_with("s.toml:6:10:") && e.contains("unknown topic \"weather\""), "{e}");
    }

    #[test]
    fn impossible_filters_and_gates_are_refused() {
        let e = error(&format!("{MINIMAL}filters = {{ status = [\"online\"] }}\n"));
        assert!(e.starts_with("s.toml:7:11:") && e.contains("Invalid filter key: status"), "{e}");
        let e = error(&format!("{MINIMAL}[gates]\n\"latency.fanout.p98\" = \"< 1ms\"\n"));
        assert!(e.starts_with("s.toml:8:1:") && e.contains("unknown metric"), "{e}");
        let e = error(&format!("{MINIMAL}[gates]\n\"latency.fanout.p99\" = \"about 1ms\"\n"));
        assert!(e.starts_with("s.toml:8:24:"), "{e}");
    }

    #[test]
    fn publishers_need_a_window_and_valid_mixes() {
        let publisher =
            "[[publishers]]\ntopic = \"alerts\"\nrate = \"10/s\"\nseverity_mix = { urgent = 1 }\n";
        let e = error(&format!("{MINIMAL}{publisher}"));
        assert!(e.contains("\"urgent\" is not a severity of alerts"), "{e}");
        let short = MINIMAL.replace("10s", "2s");
        let e = error(&format!("{short}[[publishers]]\ntopic = \"alerts\"\nrate = \"10/s\"\n"));
        assert!(e.contains("window is empty"), "{e}");
    }

    #[test]
    fn unnamed_publishers_of_one_topic_get_names_of_their_own_and_named_ones_must_differ() {
        let unnamed = "[[publishers]]\ntopic = \"alerts\"\nrate = \"10/s\"\n";
        let plan = parse(&format!("{MINIMAL}{unnamed}{unnamed}"), Path::new("s.toml"), &Overrides::default())
            .unwrap();
        let names: Vec<&str> = plan.publishers.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["alerts-publisher", "alerts-publisher-2"]);
        let named = "[[publishers]]\nname = \"a\"\ntopic = \"alerts\"\nrate = \"10/s\"\n";
        let e = error(&format!("{MINIMAL}{named}{named}"));
        assert!(e.contains("two publishers are named \"a\""), "{e}");
    }

    #[test]
    fn cluster_workers_is_for_the_bundled_server_and_bounded() {
        let cluster = format!("{MINIMAL}[target]\ncluster_workers = 3\nfaults = [\"drop=0.1\"]\n");
        let plan = parse(&cluster, Path::new("s.toml"), &Overrides::default()).unwrap();
        assert!(!plan.bundled_in_process());
        let plan::TargetPlan::Embedded { cluster_workers, fault_specs, .. } = &plan.target else {
            panic!("{:?}", plan.target)
        };
        assert_eq!((*cluster_workers, fault_specs.as_slice()), (3, ["drop=0.1".to_owned()].as_slice()));
        let e = error(&format!("{MINIMAL}[target]\ncluster_workers = 0\n"));
        assert!(e.contains("cluster_workers must be between 1 and 64, got 0"), "{e}");
        let e = error(&format!("{MINIMAL}[target]\nurl = \"ws://h/v1/ws\"\ncluster_workers = 2\n"));
        assert!(e.contains("bundled server only"), "{e}");
        assert!(parse(MINIMAL, Path::new("s.toml"), &Overrides::default()).unwrap().bundled_in_process());
    }

    #[test]
    fn tls_keys_belong_to_the_target_they_apply_to() {
        let tls = format!("{MINIMAL}[target]\ntls = true\n");
        let plan = parse(&tls, Path::new("s.toml"), &Overrides::default()).unwrap();
        assert!(matches!(plan.target, plan::TargetPlan::Embedded { tls: true, .. }));
        let e = error(&format!("{MINIMAL}[target]\nurl = \"wss://h/v1/ws\"\ntls = true\n"));
        assert!(e.contains("bundled server only"), "{e}");
        let e = error(&format!("{MINIMAL}[target]\nca_cert = \"ca.pem\"\n"));
        assert!(e.contains("ca_cert (--ca-cert) is for an external wss:// target"), "{e}");
        let external =
            format!("{MINIMAL}[target]\nurl = \"wss://h/v1/ws\"\nca_cert = \"ca.pem\"\ninsecure = true\n");
        let overrides = Overrides { jwt_secret: Some("s".into()), ..Overrides::default() };
        let plan = parse(&external, Path::new("s.toml"), &overrides).unwrap();
        assert_eq!(plan.tls, plan::TlsPlan { ca_cert: Some("ca.pem".into()), insecure: true });
        // A target on the command line replaces the file's bundled server, its settings included.
        let worker = Overrides { target: Some("wss://127.0.0.1:1/v1/ws".into()), ..overrides };
        let plan = parse(&tls, Path::new("s.toml"), &worker).unwrap();
        assert!(matches!(plan.target, plan::TargetPlan::External { .. }));
    }

    const STAGED: &str = "name = \"t\"\n\
        [[stages]]\nname = \"up\"\nduration = \"10s\"\nclients = { c = \"0..100\" }\npublishers = { p = \"10/s\" }\n\
        [[stages]]\nname = \"spike\"\nduration = \"5s\"\nclients = { c = 400 }\npublishers = { p = \"10/s..50/s\" }\n\
        [[stages]]\nname = \"down\"\nduration = \"10s\"\nclients = { c = \"100..0\" }\npublishers = { p = \"..0/s\" }\n\
        [[clients]]\nname = \"c\"\ntopics = [\"alerts\"]\n\
        [[publishers]]\nname = \"p\"\ntopic = \"alerts\"\n";

    #[test]
    fn stages_make_a_timeline_of_counts_and_rates() {
        let plan = parse(STAGED, Path::new("s.toml"), &Overrides::default()).unwrap();
        let names: Vec<&str> = plan.stages.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["up", "spike", "down"]);
        assert_eq!(plan.duration, std::time::Duration::from_secs(25));
        let group = &plan.groups[0];
        assert_eq!(group.count, 400, "the peak");
        let s = std::time::Duration::from_secs;
        // Client 50 ramps in at 5 s, stays through the spike and leaves halfway down.
        assert_eq!(group.windows(50), [(s(5), Some(s(20)))]);
        // Spike-only clients are on for the spike.
        assert_eq!(group.windows(300), [(s(10), Some(s(15)))]);
        // The publisher: 100 events, a ramp of 150, then down from 50/s to 0 over what is left
        // of the window (the last 2 s are the drain).
        let publisher = &plan.publishers[0];
        assert_eq!(publisher.stop, s(23));
        let down = 50.0 * 8.0 - 0.5 * 5.0 * 8.0 * 8.0;
        assert_eq!(publisher.planned_events(), (100.0 + 150.0 + down) as u64);
        // --duration stretches every stage alike.
        let longer = Overrides { duration: Some(s(50)), ..Overrides::default() };
        let plan = parse(STAGED, Path::new("s.toml"), &longer).unwrap();
        assert_eq!((plan.stages[1].start, plan.stages[1].end), (s(20), s(30)));
        // A scenario without stages has one, named after it.
        let plan = parse(MINIMAL, Path::new("s.toml"), &Overrides::default()).unwrap();
        assert_eq!(plan.stages.len(), 1);
        assert_eq!((plan.stages[0].name.as_str(), plan.stages[0].end), ("t", s(10)));
    }

    #[test]
    fn bad_stages_are_refused_where_they_are_written() {
        let e = error(&STAGED.replace("duration = \"5s\"", "duration = \"0s\""));
        assert!(e.starts_with("s.toml:7:1:") && e.contains("stage \"spike\" is empty"), "{e}");
        let e = error(&STAGED.replace("name = \"spike\"", "name = \"spike\"\nstart = \"8s\""));
        assert!(e.starts_with("s.toml:9:9:") && e.contains("overlaps stage \"up\""), "{e}");
        let e = error(&STAGED.replace("name = \"spike\"", "name = \"spike\"\nstart = \"12s\""));
        assert!(e.contains("leaving a gap"), "{e}");
        let e = error(&STAGED.replace("\"100..0\"", "\"100..-5\""));
        assert!(e.starts_with("s.toml:15:17:") && e.contains("cannot be negative"), "{e}");
        let e = error(&STAGED.replace("clients = { c = 400 }", "clients = { c = -4 }"));
        assert!(e.starts_with("s.toml:10:17:") && e.contains("cannot be negative"), "{e}");
        let e = error(&STAGED.replace("clients = { c = 400 }", "clients = { dashboards = 400 }"));
        assert!(e.starts_with("s.toml:10:13:") && e.contains("names no client group \"dashboards\""), "{e}");
        let e = error(&STAGED.replace("publishers = { p = \"..0/s\" }", "publishers = { q = \"1/s\" }"));
        assert!(e.contains("names no publisher \"q\""), "{e}");
        let e = error(&format!("duration = \"30s\"\n{STAGED}"));
        assert!(e.starts_with("s.toml:1:12:") && e.contains("not both"), "{e}");
        let e = error(&STAGED.replace("topics = [\"alerts\"]", "topics = [\"alerts\"]\nramp = \"5s\""));
        assert!(e.contains("shaped by the stages"), "{e}");
        let e = error(&format!("{STAGED}[gates]\n\"stages.spiek.latency.fanout.p99\" = \"< 250ms\"\n"));
        assert!(
            e.starts_with("s.toml:24:1:")
                && e.contains("unknown stage \"spiek\"")
                && e.contains("up, spike, down"),
            "{e}"
        );
        let e = error(&format!("{STAGED}[gates]\n\"stages.spike.latency.fanout.p98\" = \"< 250ms\"\n"));
        assert!(e.contains("unknown metric"), "{e}");
        let gate = format!("{STAGED}[gates]\n\"stages.spike.latency.fanout.p99\" = \"< 250ms\"\n");
        let plan = parse(&gate, Path::new("s.toml"), &Overrides::default()).unwrap();
        assert_eq!(plan.gates[0].expr(), "stages.spike.latency.fanout.p99 < 250ms");
        let e = error("name = \"t\"\n[[clients]]\nname = \"c\"\ncount = 3\ntopics = [\"alerts\"]\n");
        assert!(e.contains("missing `duration`"), "{e}");
    }

    #[test]
    fn every_shipped_scenario_loads() {
        let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        let mut loaded = 0;
        for entry in std::fs::read_dir(folder).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                load(&path, &Overrides::default()).unwrap_or_else(|e| panic!("{e}"));
                loaded += 1;
            }
        }
        assert!(loaded >= 10, "{loaded}");
    }

    #[test]
    fn command_line_overrides_are_part_of_the_plan() {
        let threads = Overrides { threads: Some(500), ..Overrides::default() };
        let plan =
            parse(&format!("{MINIMAL}[harness]\nthreads = 2\n"), Path::new("s.toml"), &threads).unwrap();
        assert_eq!(plan.harness.threads, 64, "--threads wins over the file, within 1..=64");
        let sharded = Overrides { sharded: true, ..Overrides::default() };
        let e = parse(MINIMAL, Path::new("s.toml"), &sharded).unwrap_err().to_string();
        assert!(e.contains("--shard needs an external target"), "{e}");
        let external = Overrides {
            target: Some("ws://127.0.0.1:1/v1/ws".into()),
            jwt_secret: Some("s".into()),
            ..sharded
        };
        assert!(parse(MINIMAL, Path::new("s.toml"), &external).is_ok());
    }

    #[test]
    fn every_scenario_has_the_default_gates_unless_it_gates_the_metric_itself() {
        let plan = parse(MINIMAL, Path::new("s.toml"), &Overrides::default()).unwrap();
        let defaults: Vec<String> = plan.gates.iter().filter(|g| g.default).map(|g| g.expr()).collect();
        assert_eq!(defaults.len(), crate::report::gates::DEFAULT_GATES.len());
        assert!(defaults.contains(&"counters.connections_failed == 0".to_owned()), "{defaults:?}");
        let waived = format!("{MINIMAL}[gates]\n\"counters.events_missing\" = \">= 0\"\n");
        let plan = parse(&waived, Path::new("s.toml"), &Overrides::default()).unwrap();
        let missing: Vec<_> = plan.gates.iter().filter(|g| g.metric == "counters.events_missing").collect();
        assert_eq!(missing.len(), 1);
        assert!(!missing[0].default && missing[0].expr() == "counters.events_missing >= 0");
    }

    #[test]
    fn line_and_column_count_characters() {
        assert_eq!(line_column("ab\ncdé\nx", 8), (3, 1));
        assert_eq!(line_column("ab\ncdé", 5), (2, 3));
    }
}
