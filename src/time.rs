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
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&cst()))
        .map_err(|e| format!("not an RFC 3339 time with offset ({e}): {s:?}"))
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

/// RFC 3339 text with +08:00 (seconds precision unless sub-second parts exist).
pub fn fmt_ts(t: Ts) -> String {
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
