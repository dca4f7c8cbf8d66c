//! The project's own documents against the code and against the shared spec they restate.
//!
//! - Every section reference (the section sign followed by `N` or `N.M`) in `src/**/*.rs` and
//!   `tests/**/*.rs` names a heading of `docs/PROTOCOL.md`; references to RFC sections
//!   (`RFC 6455` followed by a section) are not PROTOCOL.md's and are left out.
//! - When `../shared/spec` is next to the crate: every section number of its PROTOCOL.md
//!   (headings, and the bold numbered rules of a section, cited as `N.M`) is a heading of
//!   `docs/PROTOCOL.md`, and every exit code and every `report.json` field name of its CLI.md
//!   appears in `docs/CLI.md`. A lone clone has no `../shared`: those tests say so and return.
//!
//! This file must not write the section sign literally (it scans itself): it uses [`SECTION`].

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The section sign.
const SECTION: char = '\u{a7}';

fn crate_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// `../shared/spec` next to the crate, or `None` (after saying so) when it is absent.
fn shared_spec(test: &str) -> Option<PathBuf> {
    let dir = crate_root().join("../shared/spec");
    if dir.join("PROTOCOL.md").is_file() && dir.join("CLI.md").is_file() {
        Some(dir)
    } else {
        eprintln!("{test}: skipped: ../shared absent (no {})", dir.display());
        None
    }
}

/// A dotted section number at the start of `text` (`5`, `5.2`), without a trailing dot.
fn leading_number(text: &str) -> Option<String> {
    let mut end = 0;
    let bytes = text.as_bytes();
    while end < bytes.len() {
        let digit = bytes[end].is_ascii_digit();
        let inner_dot = end > 0 && bytes[end] == b'.' && bytes.get(end + 1).is_some_and(u8::is_ascii_digit);
        if !(digit || inner_dot) {
            break;
        }
        end += 1;
    }
    (end > 0).then(|| text[..end].to_owned())
}

/// The numbers of a Markdown document's headings (`## 5. Ordering` → `5`, `### 5.2 Order` → `5.2`).
fn heading_numbers(markdown: &str) -> BTreeSet<String> {
    let mut numbers = BTreeSet::new();
    let mut in_fence = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence || !line.starts_with('#') {
            continue;
        }
        let title = line.trim_start_matches('#').trim_start();
        if let Some(number) = leading_number(title) {
            numbers.insert(number);
        }
    }
    numbers
}

/// Heading numbers, plus `N.M` for the M-th bold numbered rule (`M. **…**`) of section N: how
/// the shared PROTOCOL.md numbers the rules of its §5.
fn section_numbers_with_rules(markdown: &str) -> BTreeSet<String> {
    let mut numbers = heading_numbers(markdown);
    let mut section: Option<String> = None;
    for line in markdown.lines() {
        if line.starts_with("## ") {
            section = leading_number(line.trim_start_matches('#').trim_start());
            continue;
        }
        let (Some(section), Some(rule)) = (&section, leading_number(line)) else { continue };
        if !rule.contains('.') && line[rule.len()..].starts_with(". **") {
            numbers.insert(format!("{section}.{rule}"));
        }
    }
    numbers
}

/// The section numbers a line of code cites, leaving out those of an RFC (`RFC 6455 ` before the sign).
fn cited_sections(line: &str) -> Vec<String> {
    let mut cited = Vec::new();
    for (at, _) in line.match_indices(SECTION) {
        let before = line[..at].trim_end();
        let digits = before.len() - before.trim_end_matches(|c: char| c.is_ascii_digit()).len();
        if digits > 0 && before[..before.len() - digits].trim_end().ends_with("RFC") {
            continue;
        }
        if let Some(number) = leading_number(&line[at + SECTION.len_utf8()..]) {
            cited.push(number);
        }
    }
    cited
}

fn rust_files(dir: &Path, files: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

#[test]
fn the_reference_finder_skips_rfc_sections_and_keeps_protocol_ones() {
    let s = SECTION;
    let line = format!("see {s}5.2 and {s}3. then RFC 6455 {s}5.5.1, (RFC 6455 {s}8.1), {s}2–{s}6 and {s}99");
    assert_eq!(cited_sections(&line), ["5.2", "3", "2", "6", "99"]);
    let headings =
        heading_numbers("# Title\n## 1. Transport\n```\n## 9. not a heading\n```\n### 5.2 Order\n");
    assert_eq!(headings.into_iter().collect::<Vec<_>>(), ["1", "5.2"]);
    let rules = section_numbers_with_rules("## 5. Delivery\n\n1. **Once:** …\n2. **Order:** …\n- 3. no\n");
    assert_eq!(rules.into_iter().collect::<Vec<_>>(), ["5", "5.1", "5.2"]);
}

#[test]
fn every_section_the_code_cites_exists_in_docs_protocol_md() {
    let root = crate_root();
    let sections = heading_numbers(&read(&root.join("docs/PROTOCOL.md")));
    assert!(sections.contains("1") && sections.contains("7"), "docs/PROTOCOL.md headings: {sections:?}");
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    rust_files(&root.join("tests"), &mut files);
    files.sort();
    let mut cited = 0;
    let mut missing = Vec::new();
    for file in &files {
        for (index, line) in read(file).lines().enumerate() {
            for section in cited_sections(line) {
                cited += 1;
                if !sections.contains(&section) {
                    let shown = file.strip_prefix(&root).unwrap_or(file).display();
                    missing.push(format!("{shown}:{}: {SECTION}{section}", index + 1));
                }
            }
        }
    }
    assert!(cited > 100, "only {cited} section references found in src/ and tests/: is the scan broken?");
    assert!(
        missing.is_empty(),
        "{} section reference(s) name no heading of docs/PROTOCOL.md (it has {:?}):\n  {}",
        missing.len(),
        sections,
        missing.join("\n  ")
    );
}

#[test]
fn every_section_of_the_shared_protocol_exists_in_docs_protocol_md() {
    let Some(shared) = shared_spec("every_section_of_the_shared_protocol_exists_in_docs_protocol_md") else {
        return;
    };
    let theirs = section_numbers_with_rules(&read(&shared.join("PROTOCOL.md")));
    let ours = heading_numbers(&read(&crate_root().join("docs/PROTOCOL.md")));
    assert!(theirs.len() >= 7, "the shared PROTOCOL.md parsed into {theirs:?}");
    let missing: Vec<_> = theirs.difference(&ours).collect();
    assert!(
        missing.is_empty(),
        "sections of ../shared/spec/PROTOCOL.md missing from docs/PROTOCOL.md: {missing:?}"
    );
}

/// The first cells that are numbers of the tables under the heading whose title contains
/// `heading`, up to the next heading of the same or a higher level.
fn table_codes(markdown: &str, heading: &str) -> BTreeSet<u16> {
    let mut codes = BTreeSet::new();
    let mut level = None;
    for line in markdown.lines() {
        if line.starts_with('#') {
            let depth = line.len() - line.trim_start_matches('#').len();
            match level {
                Some(l) if depth <= l => level = None,
                _ if line.contains(heading) => level = Some(depth),
                _ => {}
            }
            continue;
        }
        if level.is_some()
            && let Some(cell) = line.strip_prefix('|').and_then(|rest| rest.split('|').next())
            && let Ok(code) = cell.trim().parse::<u16>()
        {
            codes.insert(code);
        }
    }
    codes
}

/// Numbers written right after `exits ` (`… and exits 130.`).
fn prose_exit_codes(markdown: &str) -> BTreeSet<u16> {
    markdown
        .match_indices("exits ")
        .filter_map(|(at, word)| {
            let rest = &markdown[at + word.len()..];
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        })
        .collect()
}

#[test]
fn every_exit_code_of_the_shared_cli_is_in_docs_cli_md() {
    let Some(shared) = shared_spec("every_exit_code_of_the_shared_cli_is_in_docs_cli_md") else { return };
    let text = read(&shared.join("CLI.md"));
    let mut theirs = table_codes(&text, "Exit codes");
    theirs.extend(prose_exit_codes(&text));
    assert!(theirs.len() >= 6, "the shared CLI.md's exit codes parsed into {theirs:?}");
    let ours = table_codes(&read(&crate_root().join("docs/CLI.md")), "Exit codes");
    let missing: Vec<_> = theirs.difference(&ours).collect();
    assert!(
        missing.is_empty(),
        "exit codes of ../shared/spec/CLI.md missing from the exit-code table of docs/CLI.md: {missing:?} (it has {ours:?})"
    );
}

/// The bodies of the fenced code blocks tagged `lang`.
fn fenced_blocks(markdown: &str, lang: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        let fence = line.trim_start().strip_prefix("```");
        match (&mut current, fence) {
            (None, Some(tag)) if tag.trim() == lang => current = Some(String::new()),
            (Some(_), Some(_)) => blocks.extend(current.take()),
            (Some(body), None) => {
                body.push_str(line);
                body.push('\n');
            }
            _ => {}
        }
    }
    blocks
}

fn collect_keys(value: &serde_json::Value, keys: &mut BTreeSet<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, inner) in map {
                keys.insert(key.clone());
                collect_keys(inner, keys);
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|item| collect_keys(item, keys)),
        _ => {}
    }
}

/// The identifiers written as code in a Markdown text: in fenced blocks, in inline backtick
/// spans, and in double-quoted strings inside either.
fn code_words(markdown: &str) -> BTreeSet<String> {
    let mut code = String::new();
    let mut prose = String::new();
    let mut in_fence = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
        } else if in_fence {
            code.push_str(line);
            code.push('\n');
        } else {
            prose.push_str(line);
            prose.push('\n');
        }
    }
    for span in prose.split('`').skip(1).step_by(2) {
        code.push_str(span);
        code.push('\n');
    }
    code.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| !word.is_empty())
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_report_field_of_the_shared_cli_is_in_docs_cli_md() {
    let Some(shared) = shared_spec("every_report_field_of_the_shared_cli_is_in_docs_cli_md") else { return };
    let mut theirs = BTreeSet::new();
    let blocks = fenced_blocks(&read(&shared.join("CLI.md")), "json");
    assert!(!blocks.is_empty(), "no ```json blocks in ../shared/spec/CLI.md");
    for block in &blocks {
        let value: serde_json::Value = serde_json::from_str(block).unwrap_or_else(|e| {
            panic!("a ```json block of ../shared/spec/CLI.md is not JSON ({e}):\n{block}")
        });
        collect_keys(&value, &mut theirs);
    }
    assert!(theirs.contains("events_missing") && theirs.contains("schema_version"), "parsed {theirs:?}");
    let ours = code_words(&read(&crate_root().join("docs/CLI.md")));
    let missing: Vec<_> = theirs.iter().filter(|key| !ours.contains(*key)).collect();
    assert!(
        missing.is_empty(),
        "report.json fields of ../shared/spec/CLI.md not written as code in docs/CLI.md: {missing:?}"
    );
}
