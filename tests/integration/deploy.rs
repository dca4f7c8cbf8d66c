//! `deploy/k8s/`: the manifests validate against the Kubernetes API schemas (kubernetes-validate,
//! strict: unknown fields are errors), refer to each other consistently, and the commands they
//! run are accepted by this binary: the server Deployment's arguments start a cluster member, the
//! shard Job's script runs three shards, the merge Job's script merges them.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::common::processes::{BIN, SECRET, ServeProcess, counter, report};
use crate::common::tools::{Broker, crate_root, kubernetes_validate};

fn manifests() -> Vec<PathBuf> {
    let dir = crate_root().join("deploy/k8s");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

/// `kubernetes-validate --strict FILES`: (success, output).
fn validate(files: &[PathBuf]) -> (bool, String) {
    let out =
        Command::new(kubernetes_validate()).arg("--strict").args(files).output().expect("the validator runs");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// Every document of the manifests, as JSON (parsed by the validator's own PyYAML).
fn documents() -> Vec<Value> {
    let python = kubernetes_validate().with_file_name("python");
    let out = Command::new(python)
        .args([
            "-c",
            "import json, sys, yaml\n\
             docs = [d for f in sys.argv[1:] for d in yaml.safe_load_all(open(f)) if d]\n\
             json.dump(docs, sys.stdout)",
        ])
        .args(manifests())
        .output()
        .expect("python runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("JSON")
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in deploy/k8s"))
}

fn container(workload: &Value) -> &Value {
    &workload["spec"]["template"]["spec"]["containers"][0]
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

#[test]
fn deploy_the_manifests_validate_against_the_kubernetes_api_schemas() {
    let files = manifests();
    let (ok, output) = validate(&files);
    assert!(ok, "{output}");
    for resource in [
        "namespace/openframe",
        "secret/openframe-jwt",
        "deployment/openframe-redis",
        "service/openframe-redis",
        "deployment/openframe-server",
        "service/openframe",
        "configmap/openframe-scenario",
        "configmap/openframe-run",
        "persistentvolumeclaim/openframe-reports",
        "job/openframe-shards",
        "job/openframe-merge",
    ] {
        assert!(
            output.contains(&format!("passed for resource {resource} ")),
            "{resource} not validated:\n{output}"
        );
    }
    // The validator does reject what the API would: a misspelt field of the Indexed Job.
    let dir = tempfile::tempdir().unwrap();
    let shards = std::fs::read_to_string(crate_root().join("deploy/k8s/shards-job.yaml")).unwrap();
    let broken = dir.path().join("broken.yaml");
    std::fs::write(&broken, shards.replace("completionMode: Indexed", "completionmode: Indexed")).unwrap();
    let (ok, output) = validate(&[broken]);
    assert!(!ok && output.contains("completionmode"), "{output}");
}

#[test]
fn deploy_the_manifests_refer_to_each_other_consistently() {
    let docs = documents();
    let run = find(&docs, "ConfigMap", "openframe-run");
    let shards: u64 = run["data"]["SHARDS"].as_str().unwrap().parse().unwrap();
    let job = find(&docs, "Job", "openframe-shards");
    assert_eq!(job["spec"]["completionMode"], "Indexed");
    assert_eq!(
        (job["spec"]["completions"].as_u64(), job["spec"]["parallelism"].as_u64()),
        (Some(shards), Some(shards))
    );
    let script = strings(&container(job)["args"]).join("\n");
    assert!(script.contains(r#"--shard "$JOB_COMPLETION_INDEX/$SHARDS""#), "{script}");
    // Every name a workload refers to exists.
    for workload in docs.iter().filter(|d| d["kind"] == "Job" || d["kind"] == "Deployment") {
        let pod = &workload["spec"]["template"]["spec"];
        for volume in pod["volumes"].as_array().into_iter().flatten() {
            if let Some(claim) = volume["persistentVolumeClaim"]["claimName"].as_str() {
                find(&docs, "PersistentVolumeClaim", claim);
            }
            if let Some(map) = volume["configMap"]["name"].as_str() {
                find(&docs, "ConfigMap", map);
            }
        }
        for source in container(workload)["envFrom"].as_array().into_iter().flatten() {
            if let Some(map) = source["configMapRef"]["name"].as_str() {
                find(&docs, "ConfigMap", map);
            }
            if let Some(secret) = source["secretRef"]["name"].as_str() {
                find(&docs, "Secret", secret);
            }
        }
        assert_eq!(workload["metadata"]["namespace"], "openframe");
    }
    // The Services select their Deployments' pods, and the URLs name the Services.
    for (service, deployment) in [("openframe", "openframe-server"), ("openframe-redis", "openframe-redis")] {
        let selector = &find(&docs, "Service", service)["spec"]["selector"];
        let labels = &find(&docs, "Deployment", deployment)["spec"]["template"]["metadata"]["labels"];
        for (key, value) in selector.as_object().unwrap() {
            assert_eq!(&labels[key], value, "{service} selects {deployment}");
        }
    }
    let server_args = strings(&container(find(&docs, "Deployment", "openframe-server"))["args"]);
    let redis_port = find(&docs, "Service", "openframe-redis")["spec"]["ports"][0]["port"].as_u64().unwrap();
    assert!(server_args.contains(&format!("redis://openframe-redis:{redis_port}")), "{server_args:?}");
    let ws_port = find(&docs, "Service", "openframe")["spec"]["ports"][0]["port"].as_u64().unwrap();
    assert_eq!(run["data"]["TARGET"], format!("ws://openframe:{ws_port}/v1/ws"));
}

/// Runs a Job's `sh -c` script with `env`, the binary first on PATH.
fn run_script(script: &str, env: &[(&str, String)], dir: &Path) -> std::process::Output {
    let bin_dir = Path::new(BIN).parent().unwrap();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    Command::new("/bin/sh")
        .arg("-c")
        .arg(script)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("PATH", path)
        .current_dir(dir)
        .output()
        .expect("sh runs")
}

const SMALL: &str = r#"
name = "k8s-small"
duration = "4s"
seed = 3
[[clients]]
name = "all"
count = 12
topics = ["alerts"]
[[publishers]]
topic = "alerts"
rate = "30/s"
start_after = "1s"
[harness]
drain = "1s"
max_loop_lag = "1s"
[gates]
"counters.events_missing" = "== 0"
"#;

#[test]
fn deploy_the_commands_of_the_manifests_run_a_sharded_run_against_a_cluster_member() {
    let docs = documents();
    let dir = tempfile::tempdir().unwrap();
    // The scenario of the ConfigMap is valid: the run gets past it to the (unreachable) target.
    let shipped = dir.path().join("shipped.toml");
    let scenario_map = find(&docs, "ConfigMap", "openframe-scenario");
    std::fs::write(&shipped, scenario_map["data"]["scenario.toml"].as_str().unwrap()).unwrap();
    let out = Command::new(BIN)
        .args([
            "run",
            shipped.to_str().unwrap(),
            "--target",
            "ws://127.0.0.1:9/v1/ws",
            "--shard",
            "0/3",
            "-q",
        ])
        .env("OPENFRAME_JWT_SECRET", SECRET)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));

    // The server Deployment's arguments, on loopback and with this test's broker.
    let broker = Broker::start();
    let mut args = strings(&container(find(&docs, "Deployment", "openframe-server"))["args"]);
    assert_eq!(args.first().map(String::as_str), Some("serve"));
    args.remove(0);
    for (flag, value) in [("--addr", None), ("--broker", Some(broker.url()))] {
        let at = args.iter().position(|a| a == flag).unwrap_or_else(|| panic!("{flag} in {args:?}"));
        args.drain(at..=at + 1);
        if let Some(value) = value {
            args.extend([flag.to_owned(), value]);
        }
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = ServeProcess::start(&args);
    assert!(server.stderr_text().contains("cluster: broker"), "{}", server.stderr_text());

    // The shard Job's script, once per index, as the Job controller would run it.
    let scenario = dir.path().join("scenario.toml");
    std::fs::write(&scenario, SMALL).unwrap();
    let run = &find(&docs, "ConfigMap", "openframe-run")["data"];
    let start_at = SystemTime::now().duration_since(UNIX_EPOCH).unwrap() + Duration::from_secs(3);
    let env = |index: Option<u64>| {
        let mut env = vec![
            ("SHARDS", run["SHARDS"].as_str().unwrap().to_owned()),
            ("START_AT", start_at.as_secs().to_string()),
            ("RUN", "test-run".to_owned()),
            ("TARGET", server.target()),
            ("SCENARIO_FILE", scenario.to_string_lossy().into_owned()),
            ("REPORTS_DIR", dir.path().join("reports").to_string_lossy().into_owned()),
            ("OPENFRAME_JWT_SECRET", SECRET.to_owned()),
        ];
        if let Some(index) = index {
            env.push(("JOB_COMPLETION_INDEX", index.to_string()));
        }
        env
    };
    let shard_script = strings(&container(find(&docs, "Job", "openframe-shards"))["args"]).join("\n");
    let merge_script = strings(&container(find(&docs, "Job", "openframe-merge"))["args"]).join("\n");
    let shards: u64 = run["SHARDS"].as_str().unwrap().parse().unwrap();
    let (dir_path, shard_script) = (dir.path().to_path_buf(), shard_script.clone());
    let running: Vec<_> = (0..shards)
        .map(|i| {
            let (env, script, cwd) = (env(Some(i)), shard_script.clone(), dir_path.clone());
            std::thread::spawn(move || run_script(&script, &env, &cwd))
        })
        .collect();
    // Meanwhile the merge Job waits for them.
    let merging = {
        let (env, script, cwd) = (env(None), merge_script, dir_path.clone());
        std::thread::spawn(move || run_script(&script, &env, &cwd))
    };
    for (i, shard) in running.into_iter().enumerate() {
        let out = shard.join().unwrap();
        assert!(out.status.success(), "shard {i}: {}", String::from_utf8_lossy(&out.stderr));
        let code = std::fs::read_to_string(dir.path().join(format!("reports/test-run/shard-{i}/exit-code")))
            .unwrap();
        assert!(matches!(code.trim(), "0" | "4"), "shard {i} exited {code}");
    }
    let out = merging.join().unwrap();
    assert!(matches!(out.status.code(), Some(0 | 4)), "merge: {}", String::from_utf8_lossy(&out.stderr));
    let merged = report(&dir.path().join("reports/test-run/merged"));
    assert_eq!(merged["peak_clients"].as_u64(), Some(12));
    assert_eq!(counter(&merged, "events_missing"), 0, "{}", merged["counters"]);
    assert_eq!(counter(&merged, "foreign_events"), 0, "the shards shared a run id: {}", merged["counters"]);
    assert!(counter(&merged, "events_expected") > 500, "{}", merged["counters"]);

    // A start time already past is refused before anything runs.
    let mut late = env(Some(0));
    late.retain(|(k, _)| *k != "START_AT");
    late.push(("START_AT", "1000".to_owned()));
    let out = run_script(&shard_script, &late, dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("has passed"));
}
