//! A borrowed, allocation-light view of a JSON object's top-level members.
//!
//! Event `data` is read twice per delivery in the harness (validation, then the oracle's own
//! fields) and once per publish in the server (validation, then filter routing). Building a
//! `serde_json::Value` tree for each would allocate per member; this view keeps each member as
//! the raw JSON text it came as and interprets it only when asked.

use std::borrow::Cow;

use smallvec::SmallVec;

use super::json_scan::{scan_string, scan_value, skip_whitespace};

/// A value of an event's `data` field as far as filtering can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldValue<'a> {
    Str(Cow<'a, str>),
    /// Present, but not a string: never equal to a listed value.
    NotAString,
}

impl FieldValue<'_> {
    /// The same value, borrowing instead of owning.
    pub fn as_borrowed(&self) -> FieldValue<'_> {
        match self {
            FieldValue::Str(s) => FieldValue::Str(Cow::Borrowed(s)),
            FieldValue::NotAString => FieldValue::NotAString,
        }
    }
}

/// The text of one valid JSON value, as it appeared in its document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Raw<'a>(&'a str);

impl<'a> Raw<'a> {
    /// The value's JSON text.
    pub fn get(&self) -> &'a str {
        self.0
    }
}

/// The members of one JSON object, in document order, each as raw JSON.
#[derive(Debug, Clone, Default)]
pub struct ObjectView<'a> {
    members: SmallVec<[(Cow<'a, str>, Raw<'a>); 8]>,
}

/// The input was not a JSON object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a JSON object")]
pub struct NotAnObject;

impl<'a> ObjectView<'a> {
    /// Parses `json`, which must be one JSON object (with optional surrounding whitespace).
    /// One validating pass over the bytes; member values are kept as raw text.
    pub fn parse(json: &'a str) -> Result<ObjectView<'a>, NotAnObject> {
        let b = json.as_bytes();
        let mut i = skip_whitespace(b, 0);
        if b.get(i) != Some(&b'{') {
            return Err(NotAnObject);
        }
        let mut members = SmallVec::new();
        i = skip_whitespace(b, i + 1);
        if b.get(i) == Some(&b'}') {
            i += 1;
        } else {
            loop {
                let (key_end, escaped) = scan_string(b, i).map_err(|_| NotAnObject)?;
                let key_text = &json[i..key_end];
                let key = if escaped {
                    Cow::Owned(serde_json::from_str::<String>(key_text).map_err(|_| NotAnObject)?)
                } else {
                    Cow::Borrowed(&key_text[1..key_text.len() - 1])
                };
                i = skip_whitespace(b, key_end);
                if b.get(i) != Some(&b':') {
                    return Err(NotAnObject);
                }
                i = skip_whitespace(b, i + 1);
                let value_end = scan_value(b, i).map_err(|_| NotAnObject)?;
                members.push((key, Raw(&json[i..value_end])));
                i = skip_whitespace(b, value_end);
                match b.get(i) {
                    Some(b',') => i = skip_whitespace(b, i + 1),
                    Some(b'}') => {
                        i += 1;
                        break;
                    }
                    _ => return Err(NotAnObject),
                }
            }
        }
        if skip_whitespace(b, i) != b.len() {
            return Err(NotAnObject);
        }
        Ok(ObjectView { members })
    }

    /// The raw value of member `key`; the last one when the key is repeated (as `serde_json::Value` does).
    pub fn get(&self, key: &str) -> Option<Raw<'a>> {
        self.members.iter().rev().find(|(k, _)| k == key).map(|(_, v)| *v)
    }

    /// Member `key` as a string, when it is one.
    pub fn get_str(&self, key: &str) -> Option<Cow<'a, str>> {
        self.get(key).and_then(raw_str)
    }

    /// Member `key` as a number, when it is one.
    pub fn get_f64(&self, key: &str) -> Option<f64> {
        self.get(key).and_then(raw_f64)
    }

    /// Member `key` as filtering sees it (PROTOCOL.md §4).
    pub fn filter_value(&self, key: &str) -> Option<FieldValue<'a>> {
        let raw = self.get(key)?;
        Some(raw_str(raw).map_or(FieldValue::NotAString, FieldValue::Str))
    }

    /// Iterates members in document order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Raw<'a>)> {
        self.members.iter().map(|(k, v)| (&**k, *v))
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }
}

/// A raw JSON value as its array's elements, when it is an array.
pub fn raw_array(raw: Raw<'_>) -> Option<Vec<Raw<'_>>> {
    super::json_scan::array_items(raw.0).map(|items| items.into_iter().map(Raw).collect())
}

/// A raw JSON value as a string, borrowed when it has no escapes.
pub fn raw_str(raw: Raw<'_>) -> Option<Cow<'_, str>> {
    let text = raw.get();
    if !text.starts_with('"') {
        return None;
    }
    // A raw value is valid JSON, so a quoted string without escapes is its own content.
    let inner = &text[1..text.len() - 1];
    if !inner.as_bytes().contains(&b'\\') {
        return Some(Cow::Borrowed(inner));
    }
    if let Ok(s) = serde_json::from_str::<&str>(text) {
        return Some(Cow::Borrowed(s));
    }
    serde_json::from_str::<String>(text).ok().map(Cow::Owned)
}

/// A raw JSON value as a string, reading RFC 8259's grammar: like [`raw_str`], but an escape
/// that decodes to no Unicode scalar value (a lone surrogate) reads as U+FFFD instead of making
/// the value "not a string". For judging what a server sent, which may echo a client's own
/// implementation-defined input; the server's own reading of client input stays [`raw_str`].
pub fn raw_str_lossy(raw: Raw<'_>) -> Option<Cow<'_, str>> {
    raw_str(raw).or_else(|| {
        let text = raw.get();
        if !text.starts_with('"') {
            return None;
        }
        let cleaned = super::json_scan::replace_lone_surrogates(text);
        serde_json::from_str::<String>(&cleaned).ok().map(Cow::Owned)
    })
}

/// A raw JSON value as a number.
pub fn raw_f64(raw: Raw<'_>) -> Option<f64> {
    let text = raw.get();
    match text.as_bytes().first() {
        Some(b'-' | b'0'..=b'9') => serde_json::from_str::<f64>(text).ok(),
        _ => None,
    }
}

/// A raw JSON value as an unsigned integer.
pub fn raw_u64(raw: Raw<'_>) -> Option<u64> {
    let text = raw.get();
    // Valid JSON digits only (no sign, fraction or exponent) parse as they are.
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_are_kept_raw_and_in_order() {
        let view = ObjectView::parse(r#"{"a": "x", "b": {"c": [1, 2]}, "n": 12.5}"#).unwrap();
        let keys: Vec<_> = view.iter().map(|(k, _)| k.to_owned()).collect();
        assert_eq!(keys, ["a", "b", "n"]);
        assert_eq!(view.get("b").unwrap().get(), r#"{"c": [1, 2]}"#);
        assert_eq!(view.get_str("a").as_deref(), Some("x"));
        assert_eq!(view.get_f64("n"), Some(12.5));
        assert_eq!(view.get_str("n"), None);
    }

    #[test]
    fn raw_values_are_read_without_a_second_parse_when_they_can_be() {
        let view = ObjectView::parse(r#"{"s":"plain","e":"a\"b","n":18446744073709551615,"f":1.5,"neg":-1,"big":18446744073709551616}"#).unwrap();
        assert!(matches!(view.get_str("s"), Some(Cow::Borrowed("plain"))));
        assert_eq!(view.get_str("e").as_deref(), Some("a\"b"));
        assert_eq!(view.get("n").and_then(raw_u64), Some(u64::MAX));
        for key in ["f", "neg", "big", "s"] {
            assert_eq!(view.get(key).and_then(raw_u64), None, "{key}");
        }
    }

    #[test]
    fn the_last_of_a_repeated_key_wins() {
        let view = ObjectView::parse(r#"{"a": "1", "a": "2"}"#).unwrap();
        assert_eq!(view.get_str("a").as_deref(), Some("2"));
    }

    #[test]
    fn escaped_keys_and_strings_are_decoded() {
        let view = ObjectView::parse(r#"{"\u0061": "\u0078"}"#).unwrap();
        assert_eq!(view.get_str("a").as_deref(), Some("x"));
    }

    #[test]
    fn anything_but_one_object_is_refused() {
        for bad in ["[1]", "1", "\"s\"", "{} {}", "{", "{\"a\":}"] {
            assert_eq!(ObjectView::parse(bad).unwrap_err(), NotAnObject, "{bad}");
        }
    }
}
