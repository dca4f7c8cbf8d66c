//! A validating JSON scanner for the hot path: finds where each value of an object or array
//! ends, checking the grammar of RFC 8259 on the way, without building anything.
//!
//! The harness reads every message a target sends (a million a second is the aim); decoding
//! each into a tree, or skipping values through a general deserializer twice, cost more than
//! the socket work. This scanner walks the bytes once: strings are checked for escapes and
//! control characters, numbers for their grammar, containers for balance (at any depth, without
//! recursion). Its verdict must equal serde_json's when skipping a value; tests check that
//! against the JSONTestSuite corpus and generated documents.

use smallvec::SmallVec;

/// The input is not valid JSON (at this byte offset).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid JSON at byte {0}")]
pub struct Invalid(pub usize);

#[inline]
pub fn skip_whitespace(b: &[u8], mut at: usize) -> usize {
    while let Some(c) = b.get(at) {
        if !matches!(c, b' ' | b'\t' | b'\n' | b'\r') {
            break;
        }
        at += 1;
    }
    at
}

/// Scans the string starting at `b[at] == b'"'`; returns the offset just past its closing quote
/// and whether it has escapes.
#[inline]
pub fn scan_string(b: &[u8], at: usize) -> Result<(usize, bool), Invalid> {
    if b.get(at) != Some(&b'"') {
        return Err(Invalid(at));
    }
    let mut i = at + 1;
    let mut escaped = false;
    loop {
        // The common case: a run of plain characters.
        while let Some(&c) = b.get(i) {
            if c == b'"' || c == b'\\' || c < 0x20 {
                break;
            }
            i += 1;
        }
        match b.get(i) {
            Some(b'"') => return Ok((i + 1, escaped)),
            Some(b'\\') => {
                escaped = true;
                match b.get(i + 1) {
                    Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => i += 2,
                    Some(b'u') => {
                        let hex = b.get(i + 2..i + 6).ok_or(Invalid(i))?;
                        if !hex.iter().all(u8::is_ascii_hexdigit) {
                            return Err(Invalid(i));
                        }
                        i += 6;
                    }
                    _ => return Err(Invalid(i)),
                }
            }
            _ => return Err(Invalid(i)),
        }
    }
}

/// Scans the number at `b[at]`; returns the offset just past it.
#[inline]
fn scan_number(b: &[u8], at: usize) -> Result<usize, Invalid> {
    let digits = |mut i: usize| {
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        (i, i - start)
    };
    let mut i = at;
    if b.get(i) == Some(&b'-') {
        i += 1;
    }
    match b.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => i = digits(i).0,
        _ => return Err(Invalid(i)),
    }
    if b.get(i) == Some(&b'.') {
        let (end, n) = digits(i + 1);
        if n == 0 {
            return Err(Invalid(end));
        }
        i = end;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let (end, n) = digits(i);
        if n == 0 {
            return Err(Invalid(end));
        }
        i = end;
    }
    Ok(i)
}

/// Scans one value starting at `b[at]` (no leading whitespace); returns the offset just past it.
pub fn scan_value(b: &[u8], at: usize) -> Result<usize, Invalid> {
    match b.get(at) {
        Some(b'"') => scan_string(b, at).map(|(end, _)| end),
        Some(b'{' | b'[') => scan_container(b, at),
        Some(b't') => literal(b, at, b"true"),
        Some(b'f') => literal(b, at, b"false"),
        Some(b'n') => literal(b, at, b"null"),
        Some(b'-' | b'0'..=b'9') => scan_number(b, at),
        _ => Err(Invalid(at)),
    }
}

fn literal(b: &[u8], at: usize, word: &[u8]) -> Result<usize, Invalid> {
    if b.get(at..at + word.len()) == Some(word) { Ok(at + word.len()) } else { Err(Invalid(at)) }
}

/// Scans a whole array or object iteratively (no recursion, so no stack to exhaust).
fn scan_container(b: &[u8], at: usize) -> Result<usize, Invalid> {
    #[derive(PartialEq)]
    enum Expect {
        /// Just after an opener: a member/element or the closer.
        FirstOrClose,
        /// After a comma: a member/element.
        Next,
        /// After a member/element: a comma or the closer.
        CommaOrClose,
    }
    // One entry per open container: whether it is an object. Any depth is allowed (as
    // serde_json allows when skipping values); the stack lives on the heap only past 32 levels.
    let mut open: SmallVec<[bool; 32]> = SmallVec::new();
    open.push(b[at] == b'{');
    let mut i = at + 1;
    let mut expect = Expect::FirstOrClose;
    loop {
        i = skip_whitespace(b, i);
        let in_object = open.last().copied().unwrap_or(false);
        let closer = if in_object { b'}' } else { b']' };
        if expect != Expect::Next && b.get(i) == Some(&closer) {
            open.pop();
            i += 1;
            if open.is_empty() {
                return Ok(i);
            }
            expect = Expect::CommaOrClose;
            continue;
        }
        if expect == Expect::CommaOrClose {
            if b.get(i) != Some(&b',') {
                return Err(Invalid(i));
            }
            i += 1;
            expect = Expect::Next;
            continue;
        }
        if in_object {
            i = skip_whitespace(b, scan_string(b, i)?.0);
            if b.get(i) != Some(&b':') {
                return Err(Invalid(i));
            }
            i = skip_whitespace(b, i + 1);
        }
        match b.get(i) {
            Some(&c @ (b'{' | b'[')) => {
                open.push(c == b'{');
                i += 1;
                expect = Expect::FirstOrClose;
            }
            _ => {
                i = scan_value(b, i)?;
                expect = Expect::CommaOrClose;
            }
        }
    }
}

/// Whether `text` is exactly one JSON value (with optional surrounding whitespace).
pub fn is_valid(text: &str) -> bool {
    let b = text.as_bytes();
    let start = skip_whitespace(b, 0);
    scan_value(b, start).is_ok_and(|end| skip_whitespace(b, end) == b.len())
}

/// The elements of a JSON array, as raw text each; `None` when `text` is not one array.
pub fn array_items(text: &str) -> Option<Vec<&str>> {
    let b = text.as_bytes();
    let mut i = skip_whitespace(b, 0);
    if b.get(i) != Some(&b'[') {
        return None;
    }
    i = skip_whitespace(b, i + 1);
    let mut items = Vec::new();
    if b.get(i) == Some(&b']') {
        return (skip_whitespace(b, i + 1) == b.len()).then_some(items);
    }
    loop {
        let end = scan_value(b, i).ok()?;
        items.push(&text[i..end]);
        i = skip_whitespace(b, end);
        match b.get(i) {
            Some(b',') => i = skip_whitespace(b, i + 1),
            Some(b']') => return (skip_whitespace(b, i + 1) == b.len()).then_some(items),
            _ => return None,
        }
    }
}

/// `text` with every `\u` escape that decodes to no Unicode scalar value (a lone surrogate:
/// `\ud800` without a low half after it, or `\udc00` without a high half before it) replaced
/// by `\ufffd`; borrowed when there is none.
///
/// RFC 8259's grammar admits such escapes (its section 8.2 leaves what they mean to the receiver), and
/// a server may echo one that a client sent (a topic in an error `message`). Rust strings cannot
/// hold them, so a reader that judges by the grammar decodes them as U+FFFD.
pub fn replace_lone_surrogates(text: &str) -> std::borrow::Cow<'_, str> {
    let b = text.as_bytes();
    let hex_at = |at: usize| -> Option<u32> {
        let digits = b.get(at..at + 4).filter(|d| d.iter().all(u8::is_ascii_hexdigit))?;
        u32::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()
    };
    let unit_at = |at: usize| if b.get(at..at + 2) == Some(b"\\u") { hex_at(at + 2) } else { None };
    let mut lone: Vec<usize> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            i += 1;
            continue;
        }
        match unit_at(i) {
            Some(0xD800..=0xDBFF) if matches!(unit_at(i + 6), Some(0xDC00..=0xDFFF)) => i += 12,
            Some(0xD800..=0xDFFF) => {
                lone.push(i);
                i += 6;
            }
            Some(_) => i += 6,
            None => i += 2,
        }
    }
    if lone.is_empty() {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut from = 0;
    for at in lone {
        out.push_str(&text[from..at]);
        out.push_str("\\ufffd");
        from = at + 6;
    }
    out.push_str(&text[from..]);
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn lone_surrogate_escapes_become_the_replacement_character() {
        let cases = [
            (r#""\ude00""#, r#""\ufffd""#),
            (r#""a\ud800b""#, r#""a\ufffdb""#),
            (r#""\ud800\ud800\udc00""#, r#""\ufffd\ud800\udc00""#),
            (r#""\\ud800""#, r#""\\ud800""#),
            (r#""\ud83d\ude00""#, r#""\ud83d\ude00""#),
            (r#""\uDC00x""#, r#""\ufffdx""#),
        ];
        for (text, want) in cases {
            assert_eq!(replace_lone_surrogates(text), want, "{text}");
            assert!(serde_json::from_str::<String>(&replace_lone_surrogates(text)).is_ok(), "{text}");
        }
        assert!(matches!(replace_lone_surrogates(r#"{"a":"\u00e9"}"#), std::borrow::Cow::Borrowed(_)));
    }

    fn serde_accepts(text: &str) -> bool {
        serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok()
    }

    #[test]
    fn agrees_with_serde_json_on_hand_picked_documents() {
        for text in [
            "{}",
            "[]",
            "1",
            "-0.5e+3",
            "\"a\\u00e9\"",
            "true",
            "null",
            " {\"a\" : [1, {\"b\": []}] } ",
            "{\"a\":}",
            "[1,]",
            "{,}",
            "[01]",
            "1.",
            ".5",
            "\"\\x\"",
            "\"\t\"",
            "[1 2]",
            "{\"a\" 1}",
            "",
            "{\"a\":1}}",
            "tru",
            "[[[]]",
            "{\"a\":[1,{\"b\":2}],\"c\":\"d\"}",
            "-",
            "1e",
            "\"\\u12\"",
        ] {
            assert_eq!(is_valid(text), serde_accepts(text), "{text:?}");
        }
    }

    #[test]
    fn any_nesting_is_scanned_without_recursion() {
        let deep = |n: usize| "[{\"a\":".repeat(n) + "1" + &"}]".repeat(n);
        assert!(is_valid(&deep(100_000)));
        assert!(!is_valid(&"[".repeat(100_000)));
        assert_eq!(is_valid(&deep(500)), serde_accepts(&deep(500)));
    }

    #[test]
    fn agrees_with_serde_json_on_the_json_test_suite() {
        // The in-repo copy the binary embeds (`corpus/jsontestsuite/`).
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/jsontestsuite/test_parsing");
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let mut checked = 0;
        for entry in entries.flatten() {
            let Ok(text) = std::fs::read_to_string(entry.path()) else { continue };
            assert_eq!(is_valid(&text), serde_accepts(&text), "{}", entry.path().display());
            checked += 1;
        }
        assert!(checked > 250, "{checked}");
    }

    #[test]
    fn array_items_are_the_raw_elements() {
        assert_eq!(array_items(" [1, \"a\" ,{\"b\":[2]}] "), Some(vec!["1", "\"a\"", "{\"b\":[2]}"]));
        assert_eq!(array_items("[]"), Some(vec![]));
        assert_eq!(array_items("[1,]"), None);
        assert_eq!(array_items("{}"), None);
    }

    proptest! {
        #[test]
        fn agrees_with_serde_json_on_generated_text(text in "[\\[\\]{}:,\"a0-9.eE+\\- \\\\tnrul]{0,40}") {
            prop_assert_eq!(is_valid(&text), serde_accepts(&text), "{:?}", text);
        }

        #[test]
        fn agrees_with_serde_json_on_generated_json(value in arbitrary_json()) {
            let text = value.to_string();
            prop_assert!(is_valid(&text), "{}", text);
        }
    }

    fn arbitrary_json() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(serde_json::Value::from),
            ".*".prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(6, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..8).prop_map(serde_json::Value::from),
                prop::collection::btree_map(".*", inner, 0..8)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }
}
