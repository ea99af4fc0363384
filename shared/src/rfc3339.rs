//! Dates and times exactly as RFC 3339 section 5.6 writes them, which is what JSON Schema's
//! `date` and `date-time` formats (declared in `docs/openapi.yaml`) allow: what the document
//! allows is what these accept, no more. chrono's own parsers are laxer (`%Y-%m-%d` takes
//! `2026-1-1` and `+02026-01-01`; `parse_from_rfc3339` a space for the `T`, any leap second).

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveTime, TimeZone, Utc};

/// `full-date`: `YYYY-MM-DD`, a day that exists.
pub fn full_date(v: &str) -> Option<NaiveDate> {
    let b = v.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let year = i32::try_from(number(&b[0..4])?).ok()?;
    NaiveDate::from_ymd_opt(year, number(&b[5..7])?, number(&b[8..10])?)
}

/// `date-time`: a `full-date`, `T` (or `t`), `HH:MM:SS`, an optional fraction (`.` and at
/// least one digit; nanoseconds kept), then `Z` (or `z`) or `+HH:MM` / `-HH:MM` (at most
/// 23:59). A leap second (`:60`) only where it falls at 23:59:60 UTC.
pub fn date_time(v: &str) -> Option<DateTime<Utc>> {
    let date = full_date(v.get(..10)?)?;
    let b = v.get(10..)?.strip_prefix(['T', 't'])?.as_bytes();
    if b.len() < 9 || b[2] != b':' || b[5] != b':' {
        return None;
    }
    let (hour, minute, second) = (number(&b[0..2])?, number(&b[3..5])?, number(&b[6..8])?);
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut rest = &b[8..];
    let mut nanos = 0;
    if let Some(fraction) = rest.strip_prefix(b".") {
        let digits = fraction.iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        nanos = (0..9).fold(0, |n, i| {
            n * 10 + fraction[..digits].get(i).map_or(0, |c| u32::from(c - b'0'))
        });
        rest = &fraction[digits..];
    }
    let offset_minutes = match rest {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let (h, m) = (number(&[*h1, *h2])?, number(&[*m1, *m2])?);
            if h > 23 || m > 59 {
                return None;
            }
            let minutes = i32::try_from(h * 60 + m).ok()?;
            if *sign == b'-' { -minutes } else { minutes }
        }
        _ => return None,
    };
    let local_minutes = i32::try_from(hour * 60 + minute).ok()?;
    if second == 60 && (local_minutes - offset_minutes).rem_euclid(24 * 60) != 23 * 60 + 59 {
        return None;
    }
    // chrono writes a leap second as second 59 with 1 s or more of nanoseconds.
    let time = if second == 60 {
        NaiveTime::from_hms_nano_opt(hour, minute, 59, 1_000_000_000 + nanos)?
    } else {
        NaiveTime::from_hms_nano_opt(hour, minute, second, nanos)?
    };
    let offset = FixedOffset::east_opt(offset_minutes * 60)?;
    let local = offset.from_local_datetime(&date.and_time(time)).single()?;
    Some(local.with_timezone(&Utc))
}

/// The value of ASCII decimal digits (at most 4 here); `None` when one is not a digit.
fn number(digits: &[u8]) -> Option<u32> {
    digits.iter().try_fold(0u32, |n, c| {
        c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_dates() {
        assert_eq!(
            full_date("2024-02-29"),
            NaiveDate::from_ymd_opt(2024, 2, 29)
        );
        assert_eq!(full_date("0000-01-01"), NaiveDate::from_ymd_opt(0, 1, 1));
        for bad in [
            "",
            "2023-02-29",
            "2026-1-1",
            "2026-01-1",
            "+2026-01-01",
            "02026-01-01",
            "2026/01/01",
            " 2026-01-01",
            "2026-01-01 ",
            "2026-13-01",
            "2026-00-10",
            "2026-01-00",
            "20260101",
            "2026-01-01T00:00:00Z",
            "२०२६-01-01",
        ] {
            assert_eq!(full_date(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn date_times() {
        let utc = |s: &str| date_time(s).map(|t| t.to_rfc3339());
        assert_eq!(
            utc("2026-01-01T10:00:00Z").unwrap(),
            "2026-01-01T10:00:00+00:00"
        );
        assert_eq!(
            utc("2026-01-01t10:00:00z").unwrap(),
            "2026-01-01T10:00:00+00:00"
        );
        assert_eq!(
            utc("2026-01-01T10:00:00+01:30").unwrap(),
            "2026-01-01T08:30:00+00:00"
        );
        assert_eq!(
            utc("2026-01-01T00:00:00-23:59").unwrap(),
            "2026-01-01T23:59:00+00:00"
        );
        assert_eq!(
            utc("2026-01-01T10:00:00.123456789123Z").unwrap(),
            "2026-01-01T10:00:00.123456789+00:00"
        );
        assert_eq!(
            utc("2026-01-01T10:00:00.5Z").unwrap(),
            "2026-01-01T10:00:00.500+00:00"
        );
        assert!(date_time("2016-12-31T23:59:60Z").is_some());
        assert!(date_time("2016-12-31T15:59:60.5-08:00").is_some());
        for bad in [
            "",
            "2026-01-01",
            "2026-01-01 10:00:00Z",
            "2026-01-01T10:00:00",
            "2026-01-01T10:00Z",
            "2026-01-01T24:00:00Z",
            "2026-01-01T10:60:00Z",
            "2026-01-01T10:00:61Z",
            "2026-01-01T12:00:60Z",
            "2026-01-01T10:00:00.Z",
            "2026-01-01T10:00:00+24:00",
            "2026-01-01T10:00:00+01:60",
            "2026-01-01T10:00:00+0100",
            "2026-01-01T10:00:00+01",
            "2026-01-01T10:00:00Z ",
            "2026-1-01T10:00:00Z",
            "2026-02-30T10:00:00Z",
            "2026-01-01T1:00:00Z",
            "2026-01-01T10:00:00ZZ",
            "2026-01-01TT10:00:00Z",
        ] {
            assert_eq!(date_time(bad), None, "{bad:?}");
        }
    }
}
