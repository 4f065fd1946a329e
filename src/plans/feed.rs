//! Watched feeds (PLANS.md §4 "Data gaps", monitor the monitor), for every plan.
//!
//! Each feed has a period. Its clock starts at its first accepted message; `data_gap` fires
//! at exactly last arrival + period, once per silence; `data_resumed` comes with the next
//! message of that feed. The plans own their feeds' names, timers and reasons (in their
//! own words); the clock and the evidence live here, once.
//!
//! The two plans' evidence keys had drifted apart before they shared this module (coal:
//! `plant`, `period_days`, `silent_since`, `gap_until`; pollution: `period_hours`,
//! `resumed`). Notices stay byte-identical, so the evidence is written in the dialect of
//! the period's unit: [`Period::Days`] for coal's `*_gap_days`, [`Period::Hours`] for
//! pollution's `*_hours`.

use chrono::Duration;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::time::{days, fmt_ts, hours, Ts};

/// A feed's period, in the unit its config key states it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Period {
    /// `pollution.aqi_gap_hours`, `pollution.forecast_stale_hours`.
    Hours(f64),
    /// `coal.output_gap_days`, `coal.stock_gap_days`.
    Days(f64),
}

impl Period {
    pub fn duration(self) -> Duration {
        match self {
            Period::Hours(h) => hours(h),
            Period::Days(d) => days(d),
        }
    }
}

/// The clock of one watched feed that has had a message: when its last message arrived
/// and whether a `data_gap` was raised for the current silence. A feed that never had a
/// message has no clock (`Option<Clock>`), so neither a gap nor a resumption.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Clock {
    pub last: Ts,
    pub silent: bool,
}

impl Clock {
    /// A message of the feed at `now`: the new clock, whose gap timer is due at
    /// `now + period`, and the previous arrival when this message ends a silence
    /// (`data_resumed` goes first in the message, PLANS.md §4).
    pub fn arrive(prev: Option<Clock>, now: Ts) -> (Clock, Option<Ts>) {
        let resumed = prev.filter(|c| c.silent).map(|c| c.last);
        (
            Clock {
                last: now,
                silent: false,
            },
            resumed,
        )
    }

    /// The gap timer fired: the feed is silent until its next message. Returns the last
    /// arrival (the gap's evidence).
    pub fn fall_silent(&mut self) -> Ts {
        debug_assert!(
            !self.silent,
            "a data gap fires once per silence (PLANS.md §4)"
        );
        self.silent = true;
        self.last
    }
}

/// Which feed a gap notice is about.
#[derive(Debug, Clone, Copy)]
pub struct Watched<'a> {
    /// The feed's name in the evidence (`coal/stock`, `aqi`, ...).
    pub feed: &'a str,
    /// Coal's stock feeds are one per key plant (`None`: the output feed).
    pub plant: Option<&'a str>,
    pub period: Period,
}

/// `data_gap` evidence (typed; serialised at the notice).
#[derive(Serialize)]
#[serde(untagged)]
enum GapEvidence<'a> {
    Days {
        feed: &'a str,
        plant: Option<&'a str>,
        last_arrival: String,
        period_days: f64,
        silent_since: String,
        gap_until: String,
    },
    Hours {
        feed: &'a str,
        last_arrival: String,
        period_hours: f64,
    },
}

/// `data_resumed` evidence (typed; serialised at the notice).
#[derive(Serialize)]
#[serde(untagged)]
enum ResumedEvidence<'a> {
    Days {
        feed: &'a str,
        plant: Option<&'a str>,
        last_arrival: String,
    },
    Hours {
        feed: &'a str,
        last_arrival: String,
        resumed: String,
    },
}

impl Watched<'_> {
    /// The evidence of a `data_gap` after the last arrival `last`.
    pub fn gap_evidence(&self, last: Ts) -> Value {
        let ev = match self.period {
            Period::Days(d) => GapEvidence::Days {
                feed: self.feed,
                plant: self.plant,
                last_arrival: fmt_ts(last),
                period_days: d,
                silent_since: fmt_ts(last),
                gap_until: fmt_ts(last + self.period.duration()),
            },
            Period::Hours(h) => GapEvidence::Hours {
                feed: self.feed,
                last_arrival: fmt_ts(last),
                period_hours: h,
            },
        };
        to_value(ev)
    }

    /// The evidence of a `data_resumed` at `now` after the last arrival `last`.
    pub fn resumed_evidence(&self, last: Ts, now: Ts) -> Value {
        let ev = match self.period {
            Period::Days(_) => ResumedEvidence::Days {
                feed: self.feed,
                plant: self.plant,
                last_arrival: fmt_ts(last),
            },
            Period::Hours(_) => ResumedEvidence::Hours {
                feed: self.feed,
                last_arrival: fmt_ts(last),
                resumed: fmt_ts(now),
            },
        };
        to_value(ev)
    }
}

/// Strings, options and finite config numbers: serialising them cannot fail (a NaN
/// period would become `null`, as `json!` writes it).
fn to_value(ev: impl Serialize) -> Value {
    serde_json::to_value(ev).unwrap_or(Value::Null)
}

/// Serde for a pollution feed's `Option<Clock>` in the shape its snapshots always had,
/// `{"last": <ts or null>, "silent": bool}`, so stores written before keep restoring.
pub mod as_state {
    use super::*;
    use serde::{Deserializer, Serializer};

    #[derive(Default, Serialize, Deserialize)]
    struct State {
        last: Option<Ts>,
        silent: bool,
    }

    pub fn serialize<S: Serializer>(c: &Option<Clock>, s: S) -> Result<S::Ok, S::Error> {
        State {
            last: c.map(|c| c.last),
            silent: c.is_some_and(|c| c.silent),
        }
        .serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Clock>, D::Error> {
        let st = State::deserialize(d)?;
        Ok(st.last.map(|last| Clock {
            last,
            silent: st.silent,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::parse_ts;
    use serde_json::json;

    fn t(s: &str) -> Ts {
        parse_ts(s).unwrap()
    }

    #[test]
    fn a_message_after_a_silence_resumes_the_feed_once() {
        let t0 = t("2024-01-01T08:00:00+08:00");
        let (mut c, resumed) = Clock::arrive(None, t0);
        assert_eq!(resumed, None, "the clock starts at the first message");
        assert_eq!(c.fall_silent(), t0);
        let t1 = t("2024-01-02T09:00:00+08:00");
        let (c, resumed) = Clock::arrive(Some(c), t1);
        assert_eq!(resumed, Some(t0));
        let (_, resumed) = Clock::arrive(Some(c), t("2024-01-02T10:00:00+08:00"));
        assert_eq!(resumed, None, "a feed that was not silent does not resume");
    }

    /// The invariant is stated where it lives: a second gap in one silence is a bug.
    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "once per silence")]
    fn a_second_gap_in_one_silence_is_caught_at_the_source() {
        let (mut c, _) = Clock::arrive(None, t("2024-01-01T08:00:00+08:00"));
        c.fall_silent();
        c.fall_silent();
    }

    #[test]
    fn evidence_keys_follow_the_period_unit() {
        let last = t("2024-01-01T08:00:00+08:00");
        let coal = Watched {
            feed: "coal/output",
            plant: None,
            period: Period::Days(2.0),
        };
        assert_eq!(
            coal.gap_evidence(last),
            json!({"feed": "coal/output", "plant": null,
                "last_arrival": "2024-01-01T08:00:00+08:00", "period_days": 2.0,
                "silent_since": "2024-01-01T08:00:00+08:00",
                "gap_until": "2024-01-03T08:00:00+08:00"})
        );
        let air = Watched {
            feed: "aqi",
            plant: None,
            period: Period::Hours(3.0),
        };
        let now = t("2024-01-01T12:00:00+08:00");
        assert_eq!(
            air.gap_evidence(last),
            json!({"feed": "aqi", "last_arrival": "2024-01-01T08:00:00+08:00",
                "period_hours": 3.0})
        );
        assert_eq!(
            air.resumed_evidence(last, now),
            json!({"feed": "aqi", "last_arrival": "2024-01-01T08:00:00+08:00",
                "resumed": "2024-01-01T12:00:00+08:00"})
        );
        assert_eq!(
            coal.resumed_evidence(last, now),
            json!({"feed": "coal/output", "plant": null,
                "last_arrival": "2024-01-01T08:00:00+08:00"})
        );
    }

    #[test]
    fn pollution_snapshots_keep_their_shape() {
        #[derive(Serialize, Deserialize)]
        struct S {
            #[serde(with = "as_state")]
            f: Option<Clock>,
        }
        let none = serde_json::to_value(S { f: None }).unwrap();
        assert_eq!(none, json!({"f": {"last": null, "silent": false}}));
        let c = Clock {
            last: t("2024-01-01T08:00:00+08:00"),
            silent: true,
        };
        let v = serde_json::to_value(S { f: Some(c) }).unwrap();
        assert_eq!(v["f"]["silent"], json!(true));
        let back: S = serde_json::from_value(v).unwrap();
        assert_eq!(back.f, Some(c));
    }
}
