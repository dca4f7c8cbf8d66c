//! The nesting depth of a JSON text, counted over brackets outside strings, without parsing it.
//!
//! The reference server uses it for its deep-nesting faults, the oracle to tell nesting deep
//! enough to be implementation-defined (RFC 8259 section 9). It does no I/O and judges nothing.

/// Nesting depth of `text`: the most brackets open at once, outside strings.
pub fn json_depth(text: &str) -> usize {
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for b in text.bytes() {
        match (in_string, escaped, b) {
            (true, true, _) => escaped = false,
            (true, false, b'\\') => escaped = true,
            (true, false, b'"') => in_string = false,
            (true, false, _) => {}
            (false, _, b'"') => in_string = true,
            (false, _, b'[' | b'{') => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            (false, _, b']' | b'}') => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_ignores_brackets_in_strings() {
        assert_eq!(json_depth(r#"{"a":[[1]],"b":"[[[[["}"#), 3);
        assert_eq!(json_depth("1"), 0);
    }
}
