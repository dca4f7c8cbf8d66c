//! The comparison as Markdown: readable in a terminal, and ready for `$GITHUB_STEP_SUMMARY` or a
//! pull-request comment. Regressions come first, then every figure side by side.

use std::io::{self, Write};

use super::{Bound, Comparison, Conclusion, Row, Unit, Verdict};
use crate::report::numbers::{format_count, format_int, format_latency, trim_number};

pub fn write_comparison<W: Write>(w: &mut W, comparison: &Comparison) -> io::Result<()> {
    let c = &comparison.current;
    let regressions: Vec<&Row> = comparison.regressions().collect();
    let headline = match comparison.conclusion() {
        Conclusion::NotJudged => "NOT JUDGED (a run cannot be trusted)".to_owned(),
        Conclusion::Regressed => {
            format!("REGRESSION ({} of {} judged figures)", regressions.len(), comparison.judged())
        }
        Conclusion::NoRegression => format!("no regression ({} figures judged)", comparison.judged()),
    };
    writeln!(w, "## openframe-harness compare `{}`: {headline}\n", c.scenario)?;
    let baseline = match comparison.baselines.as_slice() {
        [b] => format!("baseline `{}` (started {}, on {})", b.label, b.started_at, b.hostname),
        runs => format!(
            "the median of {} baseline runs ({})",
            runs.len(),
            runs.iter().map(|b| format!("`{}`", b.label)).collect::<Vec<_>>().join(", ")
        ),
    };
    writeln!(w, "Current `{}` (started {}, on {}) against {baseline}.", c.label, c.started_at, c.hostname)?;
    let o = &comparison.options;
    writeln!(
        w,
        "A figure regresses when it is worse than the baseline by more than the largest of {} % of the \
         baseline, {} (latency only), and {} standard errors of the noise: the per-second spread and \
         sampling error of both runs and the spread between baseline runs; failure counters at zero \
         must stay zero.",
        trim_number(o.max_regression * 100.0, 2),
        format_latency(o.min_delta_us),
        trim_number(o.noise_sigmas, 1)
    )?;
    for reason in &comparison.untrusted {
        writeln!(w, "\n> **Not judged:** {reason}")?;
    }
    for note in &comparison.notes {
        writeln!(w, "\n> **Note:** {note}")?;
    }
    if !regressions.is_empty() {
        let title = if comparison.untrusted.is_empty() {
            "Regressions"
        } else {
            "Would be regressions, were the runs trustworthy"
        };
        writeln!(w, "\n**{title}:**\n")?;
        for row in &regressions {
            writeln!(
                w,
                "- `{}`: {} → {} ({}; allowed {})",
                row.metric,
                value(row.unit, row.baseline),
                value(row.unit, row.current),
                change(row),
                allowed(row)
            )?;
        }
    }
    writeln!(w, "\n| figure | baseline | current | change | allowed worsening | verdict |")?;
    writeln!(w, "|---|---:|---:|---:|---|---|")?;
    for row in &comparison.rows {
        writeln!(
            w,
            "| `{}` | {} | {} | {} | {} | {} |",
            row.metric,
            value(row.unit, row.baseline),
            value(row.unit, row.current),
            change(row),
            allowed(row),
            verdict(&row.verdict)
        )?;
    }
    Ok(())
}

fn value(unit: Unit, v: f64) -> String {
    match unit {
        Unit::Micros => format_latency(v),
        Unit::PerSecond => format!("{}/s", format_count(v)),
        Unit::Count => format_int(v.max(0.0).round() as u64),
    }
}

/// `+38.2 %`, or `+3` for counts, or `new` when the baseline was zero.
fn change(row: &Row) -> String {
    let delta = row.current - row.baseline;
    if row.unit == Unit::Count {
        return if delta == 0.0 { "0".into() } else { format!("{delta:+.0}") };
    }
    if row.baseline == 0.0 {
        return if row.current == 0.0 { "0".into() } else { "new".into() };
    }
    format!("{:+.1} %", 100.0 * delta / row.baseline)
}

fn allowed(row: &Row) -> String {
    let Some((amount, bound)) = row.allowance else { return String::new() };
    let sign = if row.unit == Unit::PerSecond { '−' } else { '+' };
    let why = match bound {
        Bound::Relative => "bound",
        Bound::Floor => "floor",
        Bound::Noise => "noise",
        Bound::Runs => "runs",
        Bound::Zero => return "none: must stay 0".into(),
    };
    let amount = match row.unit {
        Unit::Micros => format_latency(amount),
        Unit::PerSecond => format!("{}/s", format_count(amount)),
        Unit::Count => trim_number(amount, 1),
    };
    format!("{sign}{amount} ({why})")
}

fn verdict(verdict: &Verdict) -> String {
    match verdict {
        Verdict::Regressed => "❌ REGRESSION".into(),
        Verdict::Improved => "✅ better".into(),
        Verdict::Within => "ok".into(),
        Verdict::NotJudged(why) => format!("not judged: {why}"),
    }
}
