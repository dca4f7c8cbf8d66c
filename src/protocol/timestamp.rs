//! RFC 3339 timestamps: writing them (server messages, reports) and checking them (every
//! `timestamp` the harness receives, `last_seen` in device events).
//!
//! Hand-written because it runs once per received event in the harness: no allocation when
//! checking, one small `String` when writing.

use std::time::{SystemTime, UNIX_EPOCH};

/// Formats `time` as RFC 3339 UTC with millisecond precision: `2024-03-20T10:00:00.123Z`.
pub fn format_rfc3339_millis(time: SystemTime) -> String {
    let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since_epoch.as_secs();
    let millis = since_epoch.subsec_millis();
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// The current time as RFC 3339 UTC.
pub fn now_rfc3339() -> String {
    format_rfc3339_millis(SystemTime::now())
}

/// Whether `s` is an RFC 3339 `date-time` (any offset).
pub fn is_rfc3339(s: &str) -> bool {
    parse_offset(s).is_some()
}

/// Whether `s` is an RFC 3339 `date-time` in UTC (`Z`, `+00:00` or `-00:00`).
pub fn is_rfc3339_utc(s: &str) -> bool {
    parse_offset(s) == Some(0)
}

/// Parses the date-time and returns its offset from UTC in minutes.
fn parse_offset(s: &str) -> Option<i32> {
    let b = s.as_bytes();
    if b.len() < 20 {
        return None;
    }
    let year = digits(&b[0..4])?;
    let month = digits(&b[5..7])?;
    let day = digits(&b[8..10])?;
    let hour = digits(&b[11..13])?;
    let minute = digits(&b[14..16])?;
    let second = digits(&b[17..19])?;
    let separators_ok =
        b[4] == b'-' && b[7] == b'-' && matches!(b[10], b'T' | b't') && b[13] == b':' && b[16] == b':';
    let in_range = (1..=12).contains(&month)
        && day >= 1
        && day <= days_in_month(year, month)
        && hour <= 23
        && minute <= 59
        && second <= 60;
    if !separators_ok || !in_range {
        return None;
    }
    let mut rest = &b[19..];
    if rest.first() == Some(&b'.') {
        let fraction_len = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if fraction_len == 0 {
            return None;
        }
        rest = &rest[1 + fraction_len..];
    }
    match rest {
        [b'Z' | b'z'] => Some(0),
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let hours = digits(&[*h1, *h2])?;
            let minutes = digits(&[*m1, *m2])?;
            if hours > 23 || minutes > 59 {
                return None;
            }
            let offset = (hours * 60 + minutes) as i32;
            Some(if *sign == b'-' { -offset } else { offset })
        }
        _ => None,
    }
}

fn digits(b: &[u8]) -> Option<u32> {
    b.iter().try_fold(0u32, |acc, c| c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0')))
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 to (year, month, day), after Howard Hinnant's `civil_from_days`.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_known_instants() {
        let t = UNIX_EPOCH + Duration::from_millis(1_710_928_800_123);
        assert_eq!(format_rfc3339_millis(t), "2024-03-20T10:00:00.123Z");
        assert_eq!(format_rfc3339_millis(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let leap_day = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(format_rfc3339_millis(leap_day), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn what_it_writes_it_accepts() {
        assert!(is_rfc3339_utc(&now_rfc3339()));
    }

    #[test]
    fn accepts_the_forms_of_rfc_3339() {
        for ok in [
            "2024-03-20T10:00:00Z",
            "2024-03-20T10:00:00.123456Z",
            "2024-03-20t10:00:00z",
            "2024-02-29T23:59:60+00:00",
            "2024-03-20T10:00:00-00:00",
        ] {
            assert!(is_rfc3339_utc(ok), "{ok}");
        }
        assert!(is_rfc3339("2024-03-20T10:00:00+05:30"));
        assert!(!is_rfc3339_utc("2024-03-20T10:00:00+05:30"));
    }

    #[test]
    fn rejects_what_is_not_rfc_3339() {
        for bad in [
            "",
            "2024-03-20",
            "2024-03-20T10:00:00",
            "2023-02-29T10:00:00Z",
            "2024-13-01T10:00:00Z",
            "2024-03-20T24:00:00Z",
            "2024-03-20T10:00:00.Z",
            "2024-03-20T10:00:00+0000",
            "2024/03/20T10:00:00Z",
            "２024-03-20T10:00:00Z",
        ] {
            assert!(!is_rfc3339(bad), "{bad}");
        }
    }
}
