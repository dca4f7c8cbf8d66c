//! Durations as people write them on the command line and in scenarios: `250ms`, `30s`, `5m`,
//! `1h`, `1.5s`, `500us`; and back, for reports and progress lines.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {input:?}: expected a number and a unit (us, ms, s, m, h), e.g. 250ms, 30s, 5m")]
pub struct DurationError {
    input: String,
}

/// Parses `250ms`, `30s`, `1.5s`, `5m`, `1h`, `500us`.
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    let error = || DurationError { input: input.to_owned() };
    let s = input.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or_else(error)?;
    let (number, unit) = s.split_at(split);
    let number: f64 = number.parse().map_err(|_| error())?;
    let seconds_per_unit = match unit.trim() {
        "us" | "µs" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        _ => return Err(error()),
    };
    Duration::try_from_secs_f64(number * seconds_per_unit).map_err(|_| error())
}

/// Writes a duration compactly with a unit chosen for it: `850us`, `3.1ms`, `2.50s`, `5m 0s`.
pub fn format_duration(d: Duration) -> String {
    let us = d.as_micros();
    if us < 1_000 {
        format!("{us}us")
    } else if us < 1_000_000 {
        format!("{:.1}ms", us as f64 / 1e3)
    } else if us < 60_000_000 {
        format!("{:.2}s", d.as_secs_f64())
    } else {
        format!("{}m {}s", d.as_secs() / 60, d.as_secs() % 60)
    }
}

/// Formats microseconds the way reports show latency.
pub fn format_micros(us: u64) -> String {
    format_duration(Duration::from_micros(us))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_unit() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("500us"), Ok(Duration::from_micros(500)));
        assert_eq!(parse_duration(" 2s "), Ok(Duration::from_secs(2)));
    }

    #[test]
    fn refuses_what_is_not_a_duration() {
        for bad in ["", "30", "s", "10 parsecs", "-1s", "1..2s", "1e3s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn formats_with_a_fitting_unit() {
        assert_eq!(format_micros(850), "850us");
        assert_eq!(format_micros(3_100), "3.1ms");
        assert_eq!(format_micros(2_500_000), "2.50s");
        assert_eq!(format_duration(Duration::from_secs(300)), "5m 0s");
    }
}
