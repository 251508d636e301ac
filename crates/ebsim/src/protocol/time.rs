//! Wall-clock times as the Query protocol writes and reads them (ISO-8601, UTC).

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Formats epoch milliseconds as `2024-01-02T03:04:05.123Z`, the form the service emits.
pub fn format_iso(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z", sod / 3600, (sod % 3600) / 60, sod % 60)
}

/// Parses a timestamp as the service accepts it, into epoch milliseconds: ISO 8601 in the extended
/// form (`2024-01-02T03:04:05Z`, what botocore and the SDKs send, with any fraction length) or the
/// basic form (`20240102T030405Z`, what einaregilsson/beanstalk-deploy sends), with `Z`, an offset
/// (`+01:00`, `+0100`, `+01`) or no zone (UTC); or epoch seconds.
pub fn parse_iso(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<f64>() {
        return secs.is_finite().then(|| (secs * 1000.0).round() as i64);
    }
    let (date, rest) = s.split_once(['T', 't', ' '])?;
    let (y, mo, d, extended) = match date.len() {
        10 if date.as_bytes()[4] == b'-' && date.as_bytes()[7] == b'-' => {
            (digits(date, 0..4)?, digits(date, 5..7)?, digits(date, 8..10)?, true)
        }
        8 => (digits(date, 0..4)?, digits(date, 4..6)?, digits(date, 6..8)?, false),
        _ => return None,
    };
    // The time has the same form as the date: ISO 8601 does not mix basic and extended.
    let (h, mi, se, rest) = if extended {
        let t = rest.get(0..8)?;
        if t.as_bytes()[2] != b':' || t.as_bytes()[5] != b':' {
            return None;
        }
        (digits(t, 0..2)?, digits(t, 3..5)?, digits(t, 6..8)?, &rest[8..])
    } else {
        let t = rest.get(0..6)?;
        (digits(t, 0..2)?, digits(t, 2..4)?, digits(t, 4..6)?, &rest[6..])
    };
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut rest = rest;
    let mut millis = 0i64;
    if let Some(frac) = rest.strip_prefix(['.', ',']) {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return None;
        }
        let mut scaled = String::from(&frac[..n.min(3)]);
        while scaled.len() < 3 {
            scaled.push('0');
        }
        millis = scaled.parse().ok()?;
        rest = &frac[n..];
    }
    let offset_min = zone_offset_minutes(rest, extended)?;
    let days = days_from_civil(y, mo, d);
    let secs = days * 86_400 + h * 3600 + mi * 60 + se - offset_min * 60;
    Some(secs * 1000 + millis)
}

/// The number in `s[range]`, all ASCII digits; `None` when the range does not fall on characters.
fn digits(s: &str, range: std::ops::Range<usize>) -> Option<i64> {
    let part = s.get(range)?;
    if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    part.parse().ok()
}

/// `Z`, `±HH`, `±HH:MM` (extended) or `±HHMM` (basic), or nothing (UTC), in minutes east of UTC.
fn zone_offset_minutes(zone: &str, extended: bool) -> Option<i64> {
    if zone.is_empty() || zone.eq_ignore_ascii_case("z") {
        return Some(0);
    }
    let sign = match zone.as_bytes()[0] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let body = &zone[1..];
    let (h, m) = match body.len() {
        2 => (digits(body, 0..2)?, 0),
        5 if extended && body.as_bytes()[2] == b':' => (digits(body, 0..2)?, digits(body, 3..5)?),
        4 => (digits(body, 0..2)?, digits(body, 2..4)?),
        _ => return None,
    };
    (h <= 23 && m <= 59).then_some(sign * (h * 60 + m))
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        4 | 6 | 9 | 11 => 30,
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        _ => 31,
    }
}

// Howard Hinnant's days-from-civil algorithm (proleptic Gregorian calendar).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_milliseconds() {
        assert_eq!(format_iso(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_iso(1_704_164_645_123), "2024-01-02T03:04:05.123Z");
    }

    #[test]
    fn parses_any_fraction_length() {
        let want = 1_704_164_645_123;
        assert_eq!(parse_iso("2024-01-02T03:04:05.123Z"), Some(want));
        assert_eq!(parse_iso("2024-01-02T03:04:05.123000Z"), Some(want));
        assert_eq!(parse_iso("2024-01-02T03:04:05.1234567Z"), Some(want));
        assert_eq!(parse_iso("2024-01-02T03:04:05Z"), Some(want - 123));
        assert_eq!(parse_iso("2024-01-02T03:04:05.1Z"), Some(want - 23));
        assert_eq!(parse_iso("2024-01-02T04:04:05.123+01:00"), Some(want));
        assert_eq!(parse_iso("1704164645.123"), Some(want));
    }

    #[test]
    fn parses_the_basic_form_and_offsets() {
        // einaregilsson/beanstalk-deploy: `toISOString()` without `-`, `:` and the milliseconds.
        assert_eq!(parse_iso("20261201T224747Z"), parse_iso("2026-12-01T22:47:47Z"));
        assert_eq!(parse_iso("20261201T224747Z"), Some(1_796_165_267_000));
        let want = 1_704_164_645_123;
        assert_eq!(parse_iso("20240102T030405.123Z"), Some(want));
        assert_eq!(parse_iso("20240102T030405,123456Z"), Some(want));
        assert_eq!(parse_iso("20240102T040405.123+0100"), Some(want));
        assert_eq!(parse_iso("20240102T000405.123-03"), Some(want));
        assert_eq!(parse_iso("2024-01-02T00:04:05.123-03:00"), Some(want));
        assert_eq!(parse_iso("2024-01-02T05:34:05.123+02:30"), Some(want));
        assert_eq!(parse_iso("2024-01-02T03:04:05.123"), Some(want));
        assert_eq!(parse_iso("2024-02-29T00:00:00Z"), Some(1_709_164_800_000));
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "yesterday",
            "",
            "2024-13-02T03:04:05Z",
            "2024-01-02T03:04:05.Z",
            "2024-01-02T03:04:05Q",
            "2023-02-29T00:00:00Z",
            "2024-04-31T00:00:00Z",
            "2024-01-02T24:00:00Z",
            "2024-01-02T030405Z",
            "20240102T03:04:05Z",
            "20240102T0304Z",
            "2024-01-02T03:04:05+1:00",
            "2024-01-02T03:04:05+01:0",
            "2024-01-02T03:04:05+25:00",
            "20240102T030405+01:00",
            "2024-1-02T03:04:05Z",
            "+2024-01-02T03:04:05Z",
            "NaN",
            "inf",
            "2024-01-0éT03:04:05Z",
            "2024-01-02T03:0é:05Z",
            "20240102T0304é5Z",
            "2024-01-02T03:04:05+0é:00",
        ] {
            assert_eq!(parse_iso(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn round_trips() {
        for ms in [0, 951_782_400_000, 1_709_210_096_789, 4_102_444_799_999] {
            assert_eq!(parse_iso(&format_iso(ms)), Some(ms));
        }
    }
}
