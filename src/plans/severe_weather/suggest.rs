//! Suggestions from raw readings (PLANS.md §4 "Suggestions from raw readings"), with the
//! thresholds of CMA Order No. 16 (气象灾害预警信号发布与传播办法): rainstorm orange 3 h >=
//! 50 mm, red 3 h >= 100 mm; blizzard red 6 h >= 15 mm. Suggestions go to the met bureau
//! and never start calls: the plan's trigger remains the issued warning (§二).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{SevereWeather, MET_BUREAU};
use crate::input::{Color, Hazard, WeatherObs};
use crate::notice::{Kind, Notice, Plan};
use crate::plans::cx::Cx;
use crate::time::{at_secs, fmt_ts};

const CLAUSE: &str = "中国气象局令第16号 气象灾害预警信号发布与传播办法 附件 (PLANS.md §4)";

/// Readings are kept this long behind a station's latest stamp (the longest window is 6 h).
const KEEP_SECS: i64 = 24 * 3600;

/// One hourly reading, in micrometres so that sums are exact.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hour {
    pub rain_um: i64,
    pub snow_um: i64,
}

/// Readings per station and the colour last suggested per station and hazard.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Suggestions {
    /// station -> hour stamp (Unix seconds) -> reading.
    pub obs: BTreeMap<String, BTreeMap<i64, Hour>>,
    /// station -> hazard -> colour recorded (only when suggested). Serialized keyed by the
    /// hazard's code, in the codes' string order (`Hazard`'s `Ord`).
    pub recorded: BTreeMap<String, BTreeMap<Hazard, Color>>,
}

/// A rule of CMA Order No. 16 on a sum over `hours` hours.
struct Rule {
    hazard: Hazard,
    hours: i64,
    /// (colour, threshold in micrometres), highest first.
    levels: &'static [(Color, i64)],
}

const RULES: [Rule; 2] = [
    Rule {
        hazard: Hazard::Rainstorm,
        hours: 3,
        levels: &[(Color::Red, 100_000), (Color::Orange, 50_000)],
    },
    Rule {
        hazard: Hazard::Blizzard,
        hours: 6,
        levels: &[(Color::Red, 15_000)],
    },
];

impl Rule {
    fn value(&self, h: &Hour) -> i64 {
        if self.hazard == Hazard::Rainstorm {
            h.rain_um
        } else {
            h.snow_um
        }
    }

    /// The start of the window ending at `t`: it holds the stamps in (from, t].
    fn from(&self, t: i64) -> i64 {
        t - self.hours * 3600
    }
}

/// Each rule's sum over its window (t − N h, t]; a missing hour counts as 0. At most 6
/// readings, so the sums are taken afresh, in integers (exact), in one walk back from t
/// (one search of the map for both rules). Saturating: an absurd reading (the input sets
/// no upper bound) must not overflow; readings are never negative, so the order in which
/// they are added does not change a saturated sum.
fn window_sums(hours: &BTreeMap<i64, Hour>, t: i64) -> [i64; RULES.len()] {
    let oldest = RULES.iter().map(|r| r.from(t)).min().unwrap_or(t);
    let mut sums = [0i64; RULES.len()];
    for (&s, h) in hours.range(..=t).rev() {
        if s <= oldest {
            break;
        }
        for (sum, rule) in sums.iter_mut().zip(&RULES) {
            if s > rule.from(t) {
                *sum = sum.saturating_add(rule.value(h));
            }
        }
    }
    sums
}

fn um(mm: Option<f64>) -> i64 {
    (mm.unwrap_or(0.0) * 1000.0).round() as i64
}

fn mm(um: i64) -> f64 {
    um as f64 / 1000.0
}

/// Drops from the front of a station's hours what lies `KEEP_SECS` or more behind its
/// latest stamp.
fn prune_behind_latest(hours: &mut BTreeMap<i64, Hour>) {
    let Some(&latest) = hours.keys().next_back() else {
        return;
    };
    while let Some(e) = hours.first_entry() {
        if *e.key() > latest - KEEP_SECS {
            break;
        }
        e.remove();
    }
}

impl SevereWeather {
    /// At each observation: update the station's hours, then each rule in order.
    pub(super) fn on_obs(&mut self, cx: &mut Cx, o: &WeatherObs) {
        let t = o.ts.timestamp();
        let hour = Hour {
            rain_um: um(o.rain_mm),
            snow_um: um(o.snow_mm),
        };
        // A second observation for a stamp replaces the first. The station's key is
        // cloned only the first time it reports. Each rule's sum over its window comes
        // from the one map lookup.
        let sums = match self.suggest.obs.get_mut(&o.station) {
            Some(hours) => {
                hours.insert(t, hour);
                window_sums(hours, t)
            }
            None => {
                let hours = BTreeMap::from([(t, hour)]);
                let sums = window_sums(&hours, t);
                self.suggest.obs.insert(o.station.clone(), hours);
                sums
            }
        };
        for (rule, sum) in RULES.iter().zip(sums) {
            self.apply_rule(cx, rule, &o.station, t, sum);
        }
        // Pruned after the rules, so a late reading counts in its own window. The map is
        // ordered: drop from the front what lies KEEP_SECS or more behind the latest.
        if let Some(hours) = self.suggest.obs.get_mut(&o.station) {
            prune_behind_latest(hours);
        }
    }

    /// Applies `rule` whose window (t − N h, t] sums to `sum` (see [`window_sums`]).
    fn apply_rule(&mut self, cx: &mut Cx, rule: &Rule, station: &str, t: i64, sum: i64) {
        let reached = rule.levels.iter().find(|(_, th)| sum >= *th).copied();
        let rec = self
            .suggest
            .recorded
            .get(station)
            .and_then(|m| m.get(&rule.hazard))
            .copied();
        match reached {
            Some((c, th)) if Some(c) > rec => {
                let active = self
                    .tracks
                    .get(&rule.hazard)
                    .and_then(|tr| tr.highest_active());
                if matches!(active, Some(a) if a >= c) {
                    return;
                }
                let from = rule.from(t);
                let listed: Vec<(i64, i64)> = self.suggest.obs[station]
                    .range(from + 1..=t)
                    .map(|(s, h)| (*s, rule.value(h)))
                    .collect();
                self.record_suggested(station, &rule.hazard, Some(c));
                let n = suggestion(rule, station, c, th, sum, &listed, from, t, active);
                cx.emit(n);
            }
            // The record drops to the colour the sum still reaches (possibly none).
            _ if reached.map(|r| r.0) < rec => {
                self.record_suggested(station, &rule.hazard, reached.map(|r| r.0))
            }
            _ => {}
        }
    }

    /// Sets (or clears) the colour recorded for a station and hazard; a station with no
    /// record left is dropped.
    fn record_suggested(&mut self, station: &str, hazard: &Hazard, c: Option<Color>) {
        let recorded = &mut self.suggest.recorded;
        match c {
            Some(c) => match recorded.get_mut(station) {
                Some(records) => {
                    records.insert(hazard.clone(), c);
                }
                None => {
                    let records = BTreeMap::from([(hazard.clone(), c)]);
                    recorded.insert(station.to_string(), records);
                }
            },
            None => {
                if let Some(records) = recorded.get_mut(station) {
                    records.remove(hazard);
                    if records.is_empty() {
                        recorded.remove(station);
                    }
                }
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn suggestion(
    rule: &Rule,
    station: &str,
    c: Color,
    th: i64,
    sum: i64,
    window: &[(i64, i64)],
    from: i64,
    t: i64,
    active: Option<Color>,
) -> Notice {
    let what = if rule.hazard == Hazard::Rainstorm {
        "降雨量"
    } else {
        "降雪量(雪水当量)"
    };
    let reason = format!(
        "站点 {station} 过去{}小时{what}累计 {:.1} 毫米(≥{:.0} 毫米),达到{}{}预警信号标准,\
         建议{MET_BUREAU}研判发布{}{}预警;建议不启动叫应,叫应以正式发布的预警为准",
        rule.hours,
        mm(sum),
        mm(th),
        rule.hazard.name_zh(),
        c.name_zh(),
        rule.hazard.name_zh(),
        c.name_zh(),
    );
    let hours: BTreeMap<String, f64> = window
        .iter()
        .map(|(s, v)| (fmt_ts(at_secs(*s)), mm(*v)))
        .collect();
    Notice::new(
        Plan::SevereWeather,
        rule.hazard.as_str(),
        Kind::Suggestion,
        c.as_str(),
    )
    .clause(CLAUSE)
    .authority(MET_BUREAU)
    .reason(reason)
    .evidence(json!({
        "station": station, "window_hours": rule.hours,
        "window_start": fmt_ts(at_secs(from)), "window_end": fmt_ts(at_secs(t)),
        "sum_mm": mm(sum), "threshold_mm": mm(th), "hours": hours,
        "active_warning": active.map(Color::as_str),
    }))
    .recipients(vec![MET_BUREAU.to_string()])
}
