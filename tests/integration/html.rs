//! `report.html` in a real browser: headless Chromium opens the page rendered from a real
//! run's report.json, and the page's own render check (see `src/report/html/check.js`) says
//! for each chart how many series it drew, inside the plot or not; the same for the knee charts
//! of a capacity search. Skipped, saying so, when Chromium is not installed (`.ci/run` installs it).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_openframe-harness");

/// Every chart the page draws for a run with deliveries.
const CHARTS: &[&str] = &[
    "fanout-percentiles",
    "ts-clients",
    "ts-delivered",
    "ts-published",
    "ts-fanout",
    "ts-errors",
    "ts-loop-lag",
    "setup-percentiles",
];

/// `$CHROMIUM`, or the first Chromium on the usual paths.
pub fn chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("CHROMIUM").map(PathBuf::from) {
        return path.is_file().then_some(path);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .flat_map(|dir| ["chromium", "chromium-browser", "google-chrome"].map(|name| dir.join(name)))
        .chain([PathBuf::from("/usr/bin/chromium")])
        .find(|candidate| candidate.is_file())
}

/// Runs Chromium headless on `page` with `args`, killing it after two minutes.
fn headless(chromium: &Path, profile: &Path, args: &[&str], page: &Path) -> std::process::Output {
    let child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("chromium starts");
    let pid = child.id();
    let started = Instant::now();
    let watchdog = std::thread::spawn(move || {
        while started.elapsed() < Duration::from_secs(120) {
            std::thread::sleep(Duration::from_millis(200));
            // SAFETY: signal 0 only asks whether our own child is still there.
            if unsafe { libc::kill(pid as i32, 0) } != 0 {
                return false;
            }
        }
        // SAFETY: ending our own child process, which overran its time.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        true
    });
    let output = child.wait_with_output().expect("chromium finishes");
    assert!(!watchdog.join().unwrap(), "chromium took more than two minutes");
    output
}

/// The committed smoke baseline rendered to `dir/report.html` by `report --format html`.
fn render_baseline(dir: &Path) -> PathBuf {
    let baseline = Path::new(env!("CARGO_MANIFEST_DIR")).join("reports/baselines/smoke/run-1.json");
    std::fs::copy(&baseline, dir.join("report.json")).expect("the committed baseline exists");
    let out = Command::new(BIN).args(["report", "--format", "html"]).arg(dir).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    dir.join("report.html")
}

/// `capacity` of a real search (against `throttle=2000`) and its gates, added to the committed
/// smoke baseline and rendered to `dir/report.html`.
fn render_capacity_search(dir: &Path) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let baseline = std::fs::read_to_string(root.join("reports/baselines/smoke/run-1.json")).unwrap();
    let search = std::fs::read_to_string(root.join("tests/fixtures/capacity/throttle-2000.json")).unwrap();
    let mut report: serde_json::Value = serde_json::from_str(&baseline).unwrap();
    let search: serde_json::Value = serde_json::from_str(&search).unwrap();
    report["capacity"] = search["capacity"].clone();
    report["gates"] = search["gates"].clone();
    std::fs::write(dir.join("report.json"), report.to_string()).unwrap();
    let out = Command::new(BIN).args(["report", "--format", "html"]).arg(dir).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    dir.join("report.html")
}

/// The page's render check (the `#render-check` element's attributes and its lines) from the
/// DOM Chromium dumped.
fn render_check(dom: &str) -> (String, String) {
    let (attributes, lines) = dom
        .split(r#"<pre id="render-check""#)
        .nth(1)
        .and_then(|rest| rest.split_once('>'))
        .and_then(|(attributes, rest)| Some((attributes, rest.split("</pre>").next()?)))
        .expect("the page holds the render check");
    (attributes.to_owned(), lines.to_owned())
}

/// Asserts that chart `id` drew at least `series` series, each with a size, inside its plot,
/// with labelled axes, laid out at a readable size.
fn assert_drawn(lines: &str, id: &str, series: u64) {
    let line = lines
        .lines()
        .find(|l| l.starts_with(&format!("chart {id} ")))
        .unwrap_or_else(|| panic!("no render check for chart {id}: the script did not run?\n{lines}"));
    let field = |name: &str| -> u64 {
        let value = line.split(' ').find_map(|part| part.strip_prefix(&format!("{name}=")));
        value.and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("{name} in {line}"))
    };
    assert!(field("series") >= series, "{line}");
    assert_eq!(field("drawn"), field("series"), "every series of {id} has a size: {line}");
    assert_eq!(field("outside"), 0, "{id} stays inside its plot: {line}");
    assert!(field("ticks") >= 4, "{id} has labelled axes: {line}");
    assert!(field("width") >= 300 && field("height") >= 120, "{id} is laid out: {line}");
}

#[test]
fn chromium_draws_the_knee_of_a_capacity_search() {
    let _alone = crate::common::heavy_or_timed();
    let Some(chromium) = chromium() else {
        println!("SKIPPED: chromium not installed (set $CHROMIUM or apt-get install chromium; .ci/run does)");
        eprintln!("SKIPPED: chromium not installed; the capacity knee was not rendered in a browser");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let page = render_capacity_search(dir.path());
    let profile = dir.path().join("profile");
    let out = headless(&chromium, &profile, &["--virtual-time-budget=5000", "--dump-dom"], &page);
    assert!(out.status.success(), "chromium failed: {}", String::from_utf8_lossy(&out.stderr));
    let dom = String::from_utf8_lossy(&out.stdout);
    let (attributes, lines) = render_check(&dom);
    assert!(attributes.contains(&format!(r#"data-charts="{}""#, CHARTS.len() + 2)), "{attributes}");
    // Latency: p50, p99 and the failing steps from the knee; deliveries: delivered/s and the failing steps.
    assert_drawn(&lines, "capacity-latency", 3);
    assert_drawn(&lines, "capacity-deliveries", 2);
    for text in
        ["Capacity", "The capacity is 10 events/s (2,000 deliveries/s)", "failing steps", "capacity 2000/s"]
    {
        assert!(dom.contains(text), "{text}");
    }
}

#[test]
fn chromium_draws_every_chart_of_the_html_report() {
    let _alone = crate::common::heavy_or_timed();
    let Some(chromium) = chromium() else {
        println!("SKIPPED: chromium not installed (set $CHROMIUM or apt-get install chromium; .ci/run does)");
        eprintln!("SKIPPED: chromium not installed; the HTML report was not rendered in a browser");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let page = render_baseline(dir.path());
    let profile = dir.path().join("profile");
    let out = headless(&chromium, &profile, &["--virtual-time-budget=5000", "--dump-dom"], &page);
    assert!(out.status.success(), "chromium failed: {}", String::from_utf8_lossy(&out.stderr));
    let dom = String::from_utf8_lossy(&out.stdout);
    let (attributes, lines) = render_check(&dom);
    assert!(attributes.contains(&format!(r#"data-charts="{}""#, CHARTS.len())), "{attributes}");
    for id in CHARTS {
        assert_drawn(&lines, id, 1);
    }
    // And the page itself shows what a reader looks for first.
    for text in ["Summary and gates", "✓ pass", "Fan-out latency distribution", "Scenario file as run"] {
        assert!(dom.contains(text), "{text}");
    }
}

#[test]
fn chromium_screenshots_the_report_with_its_charts() {
    let _alone = crate::common::heavy_or_timed();
    let Some(chromium) = chromium() else {
        println!("SKIPPED: chromium not installed (set $CHROMIUM or apt-get install chromium; .ci/run does)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let page = render_baseline(dir.path());
    let shot = dir.path().join("report.png");
    let profile = dir.path().join("profile");
    let out = headless(
        &chromium,
        &profile,
        &["--window-size=1400,1400", &format!("--screenshot={}", shot.display())],
        &page,
    );
    assert!(out.status.success(), "chromium failed: {}", String::from_utf8_lossy(&out.stderr));
    let png = std::fs::read(&shot).expect("a screenshot was written");
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    // A blank 1400×1400 page compresses to a few kilobytes; text, tables and charts do not.
    assert!(png.len() > 50_000, "the screenshot is nearly empty: {} bytes", png.len());
}
