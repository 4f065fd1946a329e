//! Time in the core: instants are `chrono::DateTime<FixedOffset>` normalised to
//! China Standard Time (UTC+8, Asia/Shanghai has had no DST since 1991), so that
//! "a day" and "an hour stamp" are computed in the plans' own zone (PLANS.md preamble);
//! and times and dates as a duty officer reads them (`time_zh`: 12月1日8时05分).
//!
//! Nothing here reads a clock.

use chrono::{DateTime, Datelike, Duration, FixedOffset, NaiveDate, NaiveTime, TimeZone, Timelike};

/// An instant, always carried with the +08:00 offset.
pub type Ts = DateTime<FixedOffset>;

/// The plans' zone: UTC+8.
pub fn cst() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).expect("valid offset")
}

/// Parses an RFC 3339 timestamp (any offset) and normalises it to +08:00.
pub fn parse_ts(s: &str) -> Result<Ts, String> {
    if let Some(t) = parse_plain(s.as_bytes()) {
        return Ok(t);
    }
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&cst()))
        .map_err(|e| format!("not an RFC 3339 time with offset ({e}): {s:?}"))
}

/// The form nearly every message uses, `YYYY-MM-DDTHH:MM:SS+HH:MM` or `…Z`, read
/// directly (chrono's general parser was a tenth of a replay: two times per message).
/// `None` for anything else, and for any field out of range: chrono then parses it (or
/// says what is wrong), so the result is always chrono's (a unit test compares them).
fn parse_plain(b: &[u8]) -> Option<Ts> {
    // Two ASCII digits at `i`.
    let d2 = |i: usize| -> Option<u32> {
        let (hi, lo) = (b[i].wrapping_sub(b'0'), b[i + 1].wrapping_sub(b'0'));
        (hi < 10 && lo < 10).then(|| u32::from(hi) * 10 + u32::from(lo))
    };
    let offset = match (b.len(), b.get(19)) {
        (20, Some(b'Z')) => 0,
        (25, Some(b'+')) if b[22] == b':' => {
            let (h, m) = (d2(20)?, d2(23)?);
            if h > 23 || m > 59 {
                return None;
            }
            (h * 3600 + m * 60) as i64
        }
        _ => return None,
    };
    if [b[4], b[7], b[10], b[13], b[16]] != [b'-', b'-', b'T', b':', b':'] {
        return None;
    }
    let (h, mi, sec) = (d2(11)?, d2(14)?, d2(17)?);
    // A leap second (or 24:00) is chrono's to read or refuse.
    if h > 23 || mi > 59 || sec > 59 {
        return None;
    }
    // chrono checks the calendar (month lengths, leap years). The offset is taken off the
    // time of day, moving the date at most one day either way: no count of days since the
    // epoch and back.
    let date = NaiveDate::from_ymd_opt((d2(0)? * 100 + d2(2)?) as i32, d2(5)?, d2(8)?)?;
    let secs = i64::from(h * 3600 + mi * 60 + sec) - offset;
    let (date, secs) = if secs < 0 {
        (date.pred_opt()?, secs + 86_400)
    } else {
        (date, secs)
    };
    let time = NaiveTime::from_num_seconds_from_midnight_opt(secs as u32, 0)?;
    Some(DateTime::from_naive_utc_and_offset(
        date.and_time(time),
        cst(),
    ))
}

/// Parses a `YYYY-MM-DD` date.
pub fn parse_date(s: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| format!("not a YYYY-MM-DD date: {s:?}"))
}

/// `t` rounded down to the whole hour (the stamp of the latest hour that has ended).
pub fn floor_hour(t: Ts) -> Ts {
    let secs = t.timestamp();
    let floored = secs - secs.rem_euclid(3600);
    at_secs(floored)
}

/// The instant `secs` seconds after the Unix epoch, in +08:00.
pub fn at_secs(secs: i64) -> Ts {
    cst().timestamp_opt(secs, 0).single().expect("in range")
}

/// The local (UTC+8) calendar date of `t`.
pub fn local_date(t: Ts) -> NaiveDate {
    t.with_timezone(&cst()).date_naive()
}

/// 00:00 local time of date `d`.
pub fn day_start(d: NaiveDate) -> Ts {
    cst()
        .from_local_datetime(&d.and_time(NaiveTime::MIN))
        .single()
        .expect("fixed offset")
}

/// The instant of local time `hm` on date `d`.
pub fn at_local(d: NaiveDate, hm: NaiveTime) -> Ts {
    cst()
        .from_local_datetime(&d.and_time(hm))
        .single()
        .expect("fixed offset")
}

/// The first instant strictly after `t` whose local time-of-day is `hm`.
pub fn next_local_time(t: Ts, hm: NaiveTime) -> Ts {
    let today = at_local(local_date(t), hm);
    if today > t {
        today
    } else {
        today + Duration::days(1)
    }
}

/// `h` hours as a duration, to the millisecond (config periods are decimal hours).
pub fn hours(h: f64) -> Duration {
    Duration::milliseconds((h * 3_600_000.0).round() as i64)
}

/// `d` days as a duration, to the millisecond (config periods are decimal days).
pub fn days(d: f64) -> Duration {
    Duration::milliseconds((d * 86_400_000.0).round() as i64)
}

/// RFC 3339 text with +08:00 (seconds precision unless sub-second parts exist: then 3, 6
/// or 9 digits, as few as hold them, like chrono's `to_rfc3339`).
///
/// Written digit by digit: chrono's formatter was about 900 instructions a time, and the
/// daemon formats one per journaled input (docs/performance.md). A year outside
/// 0000–9999 or a leap second goes to chrono (a unit test compares the two).
pub fn fmt_ts(t: Ts) -> String {
    let local = t.with_timezone(&cst()).naive_local();
    let (year, nanos) = (local.year(), local.nanosecond());
    if !(0..=9999).contains(&year) || nanos >= 1_000_000_000 {
        return fmt_ts_chrono(t);
    }
    let (frac, digits) = match nanos {
        0 => (0, 0),
        n if n % 1_000_000 == 0 => (n / 1_000_000, 3),
        n if n % 1_000 == 0 => (n / 1_000, 6),
        n => (n, 9),
    };
    let mut b = [0u8; 35];
    let put = |b: &mut [u8], at: usize, width: usize, mut v: u32| {
        for i in (at..at + width).rev() {
            b[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(&mut b, 0, 4, year as u32);
    b[4] = b'-';
    put(&mut b, 5, 2, local.month());
    b[7] = b'-';
    put(&mut b, 8, 2, local.day());
    b[10] = b'T';
    put(&mut b, 11, 2, local.hour());
    b[13] = b':';
    put(&mut b, 14, 2, local.minute());
    b[16] = b':';
    put(&mut b, 17, 2, local.second());
    let mut len = 19;
    if digits > 0 {
        b[len] = b'.';
        put(&mut b, len + 1, digits, frac);
        len += 1 + digits;
    }
    b[len..len + 6].copy_from_slice(b"+08:00");
    len += 6;
    String::from_utf8(b[..len].to_vec()).expect("ASCII digits and separators")
}

/// [`fmt_ts`] by chrono's formatters, for what it does not write itself.
fn fmt_ts_chrono(t: Ts) -> String {
    let t = t.with_timezone(&cst());
    if t.nanosecond() == 0 {
        t.format("%Y-%m-%dT%H:%M:%S%:z").to_string()
    } else {
        t.to_rfc3339()
    }
}

/// A time as people read it: `12月1日8时05分`.
pub fn time_zh(t: Ts) -> String {
    let t = t.with_timezone(&cst());
    format!(
        "{}月{}日{}时{:02}分",
        t.month(),
        t.day(),
        t.hour(),
        t.minute()
    )
}

/// A date as people read it: `12月1日`.
pub fn date_zh(d: NaiveDate) -> String {
    format!("{}月{}日", d.month(), d.day())
}

/// Serde helper: serialise a `Ts` with [`fmt_ts`].
pub mod serde_ts {
    use super::*;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &Ts, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&fmt_ts(*t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Ts, D::Error> {
        let s = String::deserialize(d)?;
        parse_ts(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The direct reading of the usual form gives chrono's instant, and leaves to chrono
    /// (and its reasons) every string it does not read: other offsets' signs, fractions,
    /// lowercase separators, out-of-range fields (a leap second, 24:00, 30 February).
    #[test]
    fn the_plain_form_reads_as_chrono_reads_it() {
        let chrono_ts = |s: &str| DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&cst()));
        let mut rng = crate::testing::Rng(0x2545_F491_4F6C_DD1D);
        let mut below = |k: u64| rng.below(k);
        let mut read = 0;
        for _ in 0..20_000 {
            let offset = match below(4) {
                0 => "Z".to_string(),
                _ => format!("+{:02}:{:02}", below(26), below(62)),
            };
            let s = format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{offset}",
                below(10_000),
                below(14),
                below(33),
                below(26),
                below(62),
                below(62)
            );
            // Read directly: chrono's instant. Not read (a leap second, say): chrono's.
            match parse_plain(s.as_bytes()) {
                Some(t) => {
                    assert_eq!(Some(t), chrono_ts(&s).ok(), "{s}");
                    read += 1;
                }
                None => assert_eq!(parse_ts(&s).ok(), chrono_ts(&s).ok(), "{s}"),
            }
        }
        assert!(read > 1_000, "the direct reading was exercised ({read})");
        for s in [
            "2024-02-29T23:59:59+08:00",
            "1900-02-29T12:00:00Z",
            "2023-1a-01T08:00:00+08:00",
            "2023-12-01T08:00:0 +08:00",
            "2023-12-01T08:00:00+0a:00",
            "/023-12-01T08:00:00Z",
            "2000-02-29T12:00:00Z",
            "1970-01-01T07:59:59+08:00",
            "0000-03-01T00:00:00Z",
            "2023-02-29T00:00:00+08:00",
            "2023-12-01T24:00:00+08:00",
            "2016-12-31T23:59:60Z",
            "2023-12-01T08:00:00-00:00",
            "2023-12-01T08:00:00-05:00",
            "2023-12-01t08:00:00z",
            "2023-12-01 08:00:00+08:00",
            "2023-12-01T08:00:00.5+08:00",
            "2023-12-01T08:00:00+0800",
            "0000-01-01T00:00:00+23:59",
            "9999-12-31T23:59:59Z",
            "２023-12-01T08:00:00+08:00",
        ] {
            let fast = parse_plain(s.as_bytes());
            assert!(fast.is_none() || fast == chrono_ts(s).ok(), "{s}");
            assert_eq!(
                parse_ts(s).ok(),
                chrono_ts(s).ok(),
                "{s}: parse_ts reads as chrono does"
            );
        }
        assert_eq!(
            parse_ts("2023-02-29T00:00:00+08:00").unwrap_err(),
            format!(
                "not an RFC 3339 time with offset ({}): \"2023-02-29T00:00:00+08:00\"",
                chrono_ts("2023-02-29T00:00:00+08:00").unwrap_err()
            )
        );
    }

    /// The digit-by-digit formatting writes what chrono's formatters write, for instants
    /// of every year chrono can hold and sub-second parts of 0, 3, 6 and 9 digits.
    #[test]
    fn times_format_as_chrono_formats_them() {
        let mut rng = crate::testing::Rng(0x9E37_79B9_7F4A_7C15);
        let mut below = |k: u64| rng.below(k);
        let year = |y| {
            NaiveDate::from_ymd_opt(y, 1, 1)
                .unwrap()
                .and_time(NaiveTime::MIN)
                .and_utc()
                .timestamp()
        };
        let (lo, hi) = (year(-100), year(10_100));
        let mut direct = 0;
        for _ in 0..50_000 {
            let secs = lo + below((hi - lo) as u64) as i64;
            let nanos = match below(5) {
                0 => 0,
                1 => below(1_000) as u32 * 1_000_000,
                2 => below(1_000_000) as u32 * 1_000,
                3 => below(1_000_000_000) as u32,
                // A leap second (chrono holds one at a minute's last second): chrono's
                // to write.
                _ => 1_000_000_000 + below(1_000_000_000) as u32,
            };
            let secs = if nanos >= 1_000_000_000 {
                secs - secs.rem_euclid(60) + 59
            } else {
                secs
            };
            let t = DateTime::from_timestamp(secs, nanos)
                .unwrap()
                .with_timezone(&cst());
            assert_eq!(fmt_ts(t), fmt_ts_chrono(t), "{secs} s {nanos} ns");
            let year = t.naive_local().year();
            direct += usize::from((0..=9999).contains(&year) && nanos < 1_000_000_000);
        }
        assert!(
            direct > 10_000,
            "the direct writing was exercised ({direct})"
        );
        for s in [
            "0000-01-01T00:00:00+08:00",
            "9999-12-31T23:59:59.999999999+08:00",
            "2023-12-01T08:00:00.5+08:00",
            "2023-12-01T08:00:00.000001+08:00",
            "2023-12-01T08:00:00.000000001+08:00",
            "2016-12-31T23:59:60.5Z",
        ] {
            let t = parse_ts(s).unwrap();
            assert_eq!(fmt_ts(t), fmt_ts_chrono(t), "{s}");
        }
        assert_eq!(
            fmt_ts(parse_ts("2023-12-01T08:00:00.5+08:00").unwrap()),
            "2023-12-01T08:00:00.500+08:00"
        );
    }

    #[test]
    fn normalises_offsets_to_cst() {
        let t = parse_ts("2023-12-01T00:30:00Z").unwrap();
        assert_eq!(fmt_ts(t), "2023-12-01T08:30:00+08:00");
        assert_eq!(local_date(t), NaiveDate::from_ymd_opt(2023, 12, 1).unwrap());
    }

    #[test]
    fn floor_hour_and_next_local_time() {
        let t = parse_ts("2023-12-01T08:59:59+08:00").unwrap();
        assert_eq!(fmt_ts(floor_hour(t)), "2023-12-01T08:00:00+08:00");
        let eight = NaiveTime::from_hms_opt(8, 0, 0).unwrap();
        assert_eq!(
            fmt_ts(next_local_time(t, eight)),
            "2023-12-02T08:00:00+08:00"
        );
        let early = parse_ts("2023-12-01T07:59:59+08:00").unwrap();
        assert_eq!(
            fmt_ts(next_local_time(early, eight)),
            "2023-12-01T08:00:00+08:00"
        );
        let exact = parse_ts("2023-12-01T08:00:00+08:00").unwrap();
        assert_eq!(
            fmt_ts(next_local_time(exact, eight)),
            "2023-12-02T08:00:00+08:00"
        );
    }

    #[test]
    fn rejects_missing_offset() {
        assert!(parse_ts("2023-12-01T08:00:00").is_err());
    }

    #[test]
    fn times_read_as_month_day_hour_minute() {
        let t = parse_ts("2023-12-01T00:05:09Z").unwrap();
        assert_eq!(time_zh(t), "12月1日8时05分");
        assert_eq!(date_zh(local_date(t)), "12月1日");
    }
}
