//! Numbers as the reports print them: counts with separators or compact suffixes, latencies in
//! a unit that fits them. Shared by the HTML page, its charts and `compare`.

/// `168,946`.
pub fn format_int(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `0`, `750`, `1.5k`, `20k`, `1.2M`.
pub fn format_count(value: f64) -> String {
    let abs = value.abs();
    if abs >= 1e9 {
        format!("{}G", trim_number(value / 1e9, 1))
    } else if abs >= 1e6 {
        format!("{}M", trim_number(value / 1e6, 1))
    } else if abs >= 1e4 {
        format!("{}k", trim_number(value / 1e3, 1))
    } else if abs >= 10.0 || value.fract() == 0.0 {
        format!("{}", value.round())
    } else {
        trim_number(value, 2)
    }
}

/// Microseconds in the largest unit that keeps them at or above 1: `500µs`, `2ms`, `1.5s`
/// (at most three significant decimals).
pub fn format_latency(micros: f64) -> String {
    if micros >= 1e6 {
        format!("{}s", trim_number(micros / 1e6, 3))
    } else if micros >= 1e3 {
        format!("{}ms", trim_number(micros / 1e3, if micros >= 1e5 { 0 } else { 1 }))
    } else {
        format!("{}µs", trim_number(micros, 0))
    }
}

/// `value` with at most `decimals` decimals and no trailing zeros.
pub fn trim_number(value: f64, decimals: usize) -> String {
    let text = format!("{value:.decimals$}");
    if text.contains('.') { text.trim_end_matches('0').trim_end_matches('.').to_owned() } else { text }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_get_thousands_separators() {
        assert_eq!(format_int(0), "0");
        assert_eq!(format_int(999), "999");
        assert_eq!(format_int(168_946), "168,946");
        assert_eq!(format_int(1_234_567), "1,234,567");
    }

    #[test]
    fn counts_are_compact() {
        assert_eq!(format_count(0.0), "0");
        assert_eq!(format_count(750.0), "750");
        assert_eq!(format_count(33_787.0), "33.8k");
        assert_eq!(format_count(1_260_000.0), "1.3M");
        assert_eq!(format_count(0.5), "0.5");
    }

    #[test]
    fn latencies_take_the_largest_unit_above_one() {
        assert_eq!(format_latency(850.0), "850µs");
        assert_eq!(format_latency(44_200.0), "44.2ms");
        assert_eq!(format_latency(120_000.0), "120ms");
        assert_eq!(format_latency(1_730_000.0), "1.73s");
    }
}
