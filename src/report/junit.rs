//! JUnit XML, the format CI systems show as test results: one `<testcase>` per gate
//! (`run`) or per conformance case (`conform`).

use std::io::{self, Write};

use super::markup::escape;

/// One test case of a JUnit suite.
#[derive(Debug, Clone)]
pub struct JunitCase {
    pub name: String,
    /// Groups cases in CI views (e.g. "gates", "auth").
    pub classname: String,
    pub time_s: f64,
    pub verdict: JunitVerdict,
}

#[derive(Debug, Clone)]
pub enum JunitVerdict {
    Passed,
    Failed { message: String, detail: String },
    Skipped { message: String },
}

/// Writes one `<testsuites>` document holding one suite.
pub fn write_junit<W: Write>(w: &mut W, suite: &str, time_s: f64, cases: &[JunitCase]) -> io::Result<()> {
    let failures = cases.iter().filter(|c| matches!(c.verdict, JunitVerdict::Failed { .. })).count();
    let skipped = cases.iter().filter(|c| matches!(c.verdict, JunitVerdict::Skipped { .. })).count();
    let suite = escape(suite);
    writeln!(w, r#"<?xml version="1.0" encoding="UTF-8"?>"#)?;
    writeln!(
        w,
        r#"<testsuites name="{suite}" tests="{}" failures="{failures}" skipped="{skipped}" time="{time_s:.3}">"#,
        cases.len()
    )?;
    writeln!(
        w,
        r#"  <testsuite name="{suite}" tests="{}" failures="{failures}" skipped="{skipped}" errors="0" time="{time_s:.3}">"#,
        cases.len()
    )?;
    for case in cases {
        let head = format!(
            r#"    <testcase name="{}" classname="{}" time="{:.3}""#,
            escape(&case.name),
            escape(&case.classname),
            case.time_s
        );
        match &case.verdict {
            JunitVerdict::Passed => writeln!(w, "{head}/>")?,
            JunitVerdict::Failed { message, detail } => {
                writeln!(w, "{head}>")?;
                writeln!(w, r#"      <failure message="{}">{}</failure>"#, escape(message), escape(detail))?;
                writeln!(w, "    </testcase>")?;
            }
            JunitVerdict::Skipped { message } => {
                writeln!(w, "{head}>")?;
                writeln!(w, r#"      <skipped message="{}"/>"#, escape(message))?;
                writeln!(w, "    </testcase>")?;
            }
        }
    }
    writeln!(w, "  </testsuite>")?;
    writeln!(w, "</testsuites>")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_counts_and_escapes() {
        let cases = vec![
            JunitCase {
                name: "p99 < 25ms".into(),
                classname: "gates".into(),
                time_s: 0.0,
                verdict: JunitVerdict::Passed,
            },
            JunitCase {
                name: "missing == 0".into(),
                classname: "gates".into(),
                time_s: 0.0,
                verdict: JunitVerdict::Failed {
                    message: "observed 3 & more".into(),
                    detail: "a\u{1}b".into(),
                },
            },
            JunitCase {
                name: "x".into(),
                classname: "c".into(),
                time_s: 0.0,
                verdict: JunitVerdict::Skipped { message: "extension".into() },
            },
        ];
        let mut out = Vec::new();
        write_junit(&mut out, "run", 1.5, &cases).unwrap();
        let xml = String::from_utf8(out).unwrap();
        assert!(xml.contains(r#"tests="3" failures="1" skipped="1""#));
        assert!(xml.contains("p99 &lt; 25ms"));
        assert!(xml.contains("observed 3 &amp; more"));
        assert!(xml.contains("a\u{FFFD}b"));
    }
}
