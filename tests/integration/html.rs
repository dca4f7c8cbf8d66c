//! `report.html` in a real browser: headless Chromium opens the page rendered from a real
//! run's report.json, and the page's own render check (see `src/report/html/check.js`) says
//! for each chart how many series it drew, inside the plot or not. Skipped, saying so, when
//! Chromium is not installed (`.ci/run` installs it).

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
    let check = dom
        .split(r#"<pre id="render-check""#)
        .nth(1)
        .and_then(|rest| rest.split_once('>'))
        .and_then(|(attributes, rest)| Some((attributes, rest.split("</pre>").next()?)))
        .expect("the page holds the render check");
    assert!(check.0.contains(&format!(r#"data-charts="{}""#, CHARTS.len())), "{}", check.0);
    for id in CHARTS {
        let line = check.1.lines().find(|l| l.starts_with(&format!("chart {id} "))).unwrap_or_else(|| {
            panic!("no render check for chart {id}: the script did not run?\n{}", check.1)
        });
        let field = |name: &str| -> u64 {
            let value = line.split(' ').find_map(|part| part.strip_prefix(&format!("{name}=")));
            value.and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("{name} in {line}"))
        };
        assert!(field("series") >= 1, "{line}");
        assert_eq!(field("drawn"), field("series"), "every series of {id} has a size: {line}");
        assert_eq!(field("outside"), 0, "{id} stays inside its plot: {line}");
        assert!(field("ticks") >= 4, "{id} has labelled axes: {line}");
        assert!(field("width") >= 300 && field("height") >= 120, "{id} is laid out: {line}");
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
