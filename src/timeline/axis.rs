//! The time axis: Unix seconds mapped linearly onto the plot, with ticks on whole local
//! (+08:00) hours, days or months, labelled in Chinese.

use std::ops::Range;

use chrono::{Datelike, NaiveDate, Timelike};
use plotters::coord::ranged1d::{KeyPointHint, NoDefaultFormatting, Ranged, ValueFormatter};

use crate::time::{at_secs, day_start};

const HOUR: i64 = 3600;
const DAY: i64 = 86400;
/// Local time is UTC+8.
const OFFSET: i64 = 8 * HOUR;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Secs(i64),
    Months(u32),
}

#[derive(Debug, Clone)]
pub struct TimeAxis {
    from: i64,
    to: i64,
    step: Step,
    ticks: Vec<i64>,
}

impl TimeAxis {
    /// An axis over [from, to] with at most `max_ticks` ticks, the finest step that fits.
    pub fn new(from: i64, to: i64, max_ticks: usize) -> TimeAxis {
        let secs = [
            600,
            1800,
            HOUR,
            2 * HOUR,
            3 * HOUR,
            6 * HOUR,
            12 * HOUR,
            DAY,
            2 * DAY,
            7 * DAY,
            14 * DAY,
        ];
        for s in secs {
            let ticks = sec_ticks(from, to, s);
            if ticks.len() <= max_ticks {
                return TimeAxis {
                    from,
                    to,
                    step: Step::Secs(s),
                    ticks,
                };
            }
        }
        let mut months = 1;
        loop {
            let ticks = month_ticks(from, to, months);
            if ticks.len() <= max_ticks || months >= 120 {
                return TimeAxis {
                    from,
                    to,
                    step: Step::Months(months),
                    ticks,
                };
            }
            months = match months {
                1 => 2,
                2 => 3,
                3 => 6,
                m => m + 12 - m % 12,
            };
        }
    }

    /// Pixel column of `t` on a plot `width` pixels wide (as `map` places it).
    pub fn column(&self, t: i64, width: i32) -> i32 {
        self.map(&t, (0, width))
    }
}

/// Multiples of `step` in local time within [from, to]; week steps fall on Mondays.
fn sec_ticks(from: i64, to: i64, step: i64) -> Vec<i64> {
    // 1970-01-05 (day 4) was a Monday.
    let phase = if step % (7 * DAY) == 0 { 4 * DAY } else { 0 };
    let local = from + OFFSET - phase;
    let first = local.div_euclid(step) * step + if local.rem_euclid(step) == 0 { 0 } else { step };
    let first = first - OFFSET + phase;
    (0..)
        .map(|i| first + i * step)
        .take_while(|&t| t <= to)
        .take(10_000)
        .collect()
}

/// First days of months (local), every `k` months counted from January.
fn month_ticks(from: i64, to: i64, k: u32) -> Vec<i64> {
    let d = at_secs(from).date_naive();
    let (mut y, mut m) = (d.year(), d.month0());
    let mut out = Vec::new();
    loop {
        if m % k == 0 {
            let t =
                day_start(NaiveDate::from_ymd_opt(y, m + 1, 1).expect("valid date")).timestamp();
            if t > to {
                break;
            }
            if t >= from {
                out.push(t);
            }
        }
        m += 1;
        if m == 12 {
            m = 0;
            y += 1;
        }
    }
    out
}

impl Ranged for TimeAxis {
    type FormatOption = NoDefaultFormatting;
    type ValueType = i64;

    fn map(&self, v: &i64, limit: (i32, i32)) -> i32 {
        let f = (*v - self.from) as f64 / (self.to - self.from).max(1) as f64;
        limit.0 + (f * f64::from(limit.1 - limit.0)).round() as i32
    }

    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<i64> {
        // Grid lines on the ticks only: no light lines in between.
        if hint.weight().allow_light_points() {
            return Vec::new();
        }
        self.ticks.clone()
    }

    fn range(&self) -> Range<i64> {
        self.from..self.to
    }
}

impl ValueFormatter<i64> for TimeAxis {
    /// `08:00` within a day, `12月2日` at midnight or for day steps, `2月` (`2024年1月` in
    /// January) for month steps.
    fn format_ext(&self, v: &i64) -> String {
        let t = at_secs(*v);
        match self.step {
            Step::Months(_) if t.month() == 1 => format!("{}年1月", t.year()),
            Step::Months(_) => format!("{}月", t.month()),
            Step::Secs(s) if s < DAY && (t.hour(), t.minute()) != (0, 0) => {
                t.format("%H:%M").to_string()
            }
            Step::Secs(_) => format!("{}月{}日", t.month(), t.day()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::parse_ts;

    fn secs(s: &str) -> i64 {
        parse_ts(s).unwrap().timestamp()
    }

    fn labels(a: &TimeAxis) -> Vec<String> {
        a.ticks.iter().map(|t| a.format_ext(t)).collect()
    }

    #[test]
    fn three_days_tick_on_local_hours() {
        let a = TimeAxis::new(
            secs("2023-12-01T08:05:00+08:00"),
            secs("2023-12-04T08:00:00+08:00"),
            14,
        );
        assert_eq!(a.step, Step::Secs(6 * HOUR));
        assert_eq!(
            labels(&a)[..4],
            ["12:00", "18:00", "12月2日", "06:00"].map(String::from)
        );
    }

    #[test]
    fn a_year_ticks_on_months_with_the_year_at_january() {
        let a = TimeAxis::new(
            secs("2023-11-01T00:00:00+08:00"),
            secs("2024-10-31T00:00:00+08:00"),
            14,
        );
        assert_eq!(a.step, Step::Months(1));
        let l = labels(&a);
        assert_eq!(l[..3], ["11月", "12月", "2024年1月"].map(String::from));
        assert_eq!(l.len(), 12);
    }

    #[test]
    fn weeks_fall_on_mondays() {
        let a = TimeAxis::new(
            secs("2023-11-01T00:00:00+08:00"),
            secs("2024-01-20T00:00:00+08:00"),
            14,
        );
        assert_eq!(a.step, Step::Secs(7 * DAY));
        assert_eq!(labels(&a)[0], "11月6日"); // a Monday
    }
}
