//! Inputs whose meaning RFC 8259 leaves to the implementation: duplicate keys, lone surrogate
//! escapes, numbers beyond double precision, very deep nesting, a byte-order mark. Such a
//! message only has to get *an* answer, in bounded time, on a connection left open (§6: the
//! server never panics or stops serving because of any input).

/// Nesting deeper than this is implementation-defined (JSONTestSuite's `i_structure_500_nested_arrays`).
pub const AMBIGUOUS_DEPTH: usize = 100;

/// Whether RFC 8259 leaves the meaning of `text` to the implementation.
pub fn is_ambiguous(text: &str) -> bool {
    if text.starts_with('\u{FEFF}') || crate::protocol::json_depth(text) > AMBIGUOUS_DEPTH {
        return true;
    }
    let parsed: Result<serde_json::Value, _> = serde_json::from_str(text);
    match parsed {
        // serde_json refuses lone surrogates and numbers beyond f64; other parsers accept them.
        Err(_) => has_lone_surrogate_escape(text) || has_huge_number(text),
        Ok(_) => has_duplicate_keys(text) || has_huge_number(text),
    }
}

fn has_lone_surrogate_escape(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    ["\\ud8", "\\ud9", "\\uda", "\\udb", "\\udc", "\\udd", "\\ude", "\\udf"].iter().any(|p| lower.contains(p))
}

/// Numbers other parsers may read differently: more than 15 significant digits or a large exponent.
fn has_huge_number(text: &str) -> bool {
    let (mut in_string, mut escaped, mut digits, mut exponent) = (false, false, 0usize, false);
    let mut exponent_value = 0u32;
    for b in text.bytes() {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => {
                in_string = true;
                digits = 0;
            }
            b'0'..=b'9' if exponent => {
                exponent_value = exponent_value.saturating_mul(10).saturating_add(u32::from(b - b'0'));
                if exponent_value > 300 {
                    return true;
                }
            }
            b'0'..=b'9' => {
                digits += 1;
                if digits > 15 {
                    return true;
                }
            }
            b'e' | b'E' => {
                exponent = true;
                exponent_value = 0;
                digits = 0;
            }
            b'.' | b'-' | b'+' => {}
            _ => {
                digits = 0;
                exponent = false;
            }
        }
    }
    false
}

/// Whether any object in `text` (already known to be valid JSON) repeats a key.
fn has_duplicate_keys(text: &str) -> bool {
    use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
    struct Dupes;
    impl<'de> Visitor<'de> for Dupes {
        type Value = bool;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("any JSON")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
            let (mut keys, mut dupes) = (std::collections::HashSet::new(), false);
            while let Some(key) = map.next_key::<String>()? {
                dupes |= !keys.insert(key);
                dupes |= map.next_value::<Nested>()?.0;
            }
            Ok(dupes)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
            let mut dupes = false;
            while let Some(Nested(d)) = seq.next_element()? {
                dupes |= d;
            }
            Ok(dupes)
        }
        fn visit_bool<E>(self, _: bool) -> Result<bool, E> {
            Ok(false)
        }
        fn visit_i64<E>(self, _: i64) -> Result<bool, E> {
            Ok(false)
        }
        fn visit_u64<E>(self, _: u64) -> Result<bool, E> {
            Ok(false)
        }
        fn visit_f64<E>(self, _: f64) -> Result<bool, E> {
            Ok(false)
        }
        fn visit_str<E>(self, _: &str) -> Result<bool, E> {
            Ok(false)
        }
        fn visit_unit<E>(self) -> Result<bool, E> {
            Ok(false)
        }
    }
    struct Nested(bool);
    impl<'de> serde::Deserialize<'de> for Nested {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Nested, D::Error> {
            d.deserialize_any(Dupes).map(Nested)
        }
    }
    let _ = IgnoredAny;
    let mut de = serde_json::Deserializer::from_str(text);
    de.deserialize_any(Dupes).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn implementation_defined_inputs_are_recognised() {
        for text in [
            r#"{"type":"subscribe","type":"unsubscribe","topics":["alerts"]}"#,
            r#"{"type":"subscribe","topics":["alerts"],"id":"\ud800"}"#,
            r#"{"type":"publish","topic":"alerts","data":{"n":1e400}}"#,
            r#"{"id":123456789012345678}"#,
            "\u{FEFF}{}",
        ] {
            assert!(is_ambiguous(text), "{text}");
        }
        for text in [
            r#"{"type":"subscribe","topics":["alerts"],"id":"\ud83d\ude00"}"#,
            r#"{"a":{"b":1},"c":{"b":2}}"#,
            "[1.5e10, 123456789012345]",
        ] {
            assert!(!is_ambiguous(text), "{text}");
        }
    }
}
