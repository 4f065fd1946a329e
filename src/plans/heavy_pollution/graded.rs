//! The graded track (§3.2.1, §3.4, §3.5, rules 1–5) and the ozone track (§3.2.2):
//! Level(h) over the horizon and the move it gives.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::notice::Kind;
use crate::time::{fmt_ts, Ts};

use super::series::{stamp_of, ts_of, Stamp, View};
use super::types::{clause, Decision, Lv, TrackId};

/// A province / ministry floor (rule 5, §3.3.2, §3.5.1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Floor {
    pub level: Lv,
    /// Level(h) >= level for every stamp h >= start.
    pub start: Ts,
    pub reference: Option<String>,
}

impl Floor {
    fn applies(&self, h: Stamp) -> bool {
        ts_of(h) >= self.start
    }
}

/// Which M values belong to a track (§2: O3-primary means go to the ozone track).
fn on_track(v: &View, s: Stamp, track: TrackId) -> bool {
    v.m(s).ozone() == (track == TrackId::Ozone)
}

/// Run lengths of "M(s) > X on the track" ending at one stamp.
#[derive(Default)]
struct Run {
    r150: u32,
    r200: u32,
    /// Index (from h0-48) of the latest stamp with M > 300, at or before this one.
    last300: Option<usize>,
}

impl Run {
    /// The next stamp: its M is on this track or not, and above 150, 200, 300 or not.
    fn next(&mut self, j: usize, on: bool, above: [bool; 3]) {
        self.r150 = if on && above[0] { self.r150 + 1 } else { 0 };
        self.r200 = if on && above[1] { self.r200 + 1 } else { 0 };
        if on && above[2] {
            self.last300 = Some(j);
        }
    }
}

/// C(X, N) for a run of M > X: the last N-23 means are above X.
fn c(run: u32, n: u32) -> bool {
    run > n - 24
}

/// What the rules read off the horizon, for each h of h0..=h0+H: Level(h) of the graded
/// track without the floor (§3.2.1 table) and the ozone condition C(200,24) or C(150,48)
/// on the ozone track (§3.2.2). One pass along [h0-48, h0+H]: each M is on one track.
pub struct Horizon {
    pub graded: Vec<Lv>,
    pub ozone: Vec<bool>,
}

pub fn horizon(v: &View) -> Horizon {
    let n = v.horizon as usize + 1;
    let mut h = Horizon {
        graded: Vec::with_capacity(n),
        ozone: Vec::with_capacity(n),
    };
    let (mut g, mut o) = (Run::default(), Run::default());
    // M(h0-48+j) is `v.means[j]`.
    for (j, m) in v.means.iter().take(48 + n).enumerate() {
        let above = [150.0, 200.0, 300.0].map(|x| m.above(x));
        g.next(j, !m.ozone(), above);
        o.next(j, m.ozone(), above);
        if j < 48 {
            continue;
        }
        // red: C(200,72) and M(s) > 300 for some s in [h-48h, h] (§3.2.1(3), "且")
        let red300 = g.last300.is_some_and(|k| k + 48 >= j);
        h.graded.push(if c(g.r200, 72) && red300 {
            Lv::Red
        } else if c(g.r200, 48) || c(g.r150, 72) {
            Lv::Orange // §3.2.1(2)
        } else if c(g.r200, 24) || c(g.r150, 48) {
            Lv::Yellow // §3.2.1(1)
        } else {
            Lv::None
        });
        h.ozone.push(c(o.r200, 24) || c(o.r150, 48));
    }
    h
}

/// What the horizon shows for a track.
#[derive(Debug, Clone)]
pub struct Outlook {
    /// Highest level over the horizon (with the floor).
    pub highest: Lv,
    /// Highest level without the floor.
    pub raw_highest: Lv,
    /// First stamp at or above yellow (the expected start).
    pub first: Option<Stamp>,
    /// First stamp at the highest level.
    pub highest_at: Option<Stamp>,
}

/// `raw`: Level(h) without the floor ([`Horizon::graded`]).
pub fn graded_outlook(v: &View, raw: &[Lv], floor: Option<&Floor>) -> Outlook {
    let levels: Vec<Lv> = v
        .horizon_stamps()
        .zip(raw)
        .map(|(h, &l)| match floor {
            Some(f) if f.applies(h) => l.max(f.level),
            _ => l,
        })
        .collect();
    outlook_of(v, &levels, raw.iter().copied().max().unwrap_or(Lv::None))
}

/// `flags`: the ozone condition ([`Horizon::ozone`]).
pub fn ozone_outlook(v: &View, flags: &[bool]) -> Outlook {
    let levels: Vec<Lv> = flags
        .iter()
        .map(|&b| if b { Lv::Ozone } else { Lv::None })
        .collect();
    let raw = levels.iter().copied().max().unwrap_or(Lv::None);
    outlook_of(v, &levels, raw)
}

fn outlook_of(v: &View, levels: &[Lv], raw_highest: Lv) -> Outlook {
    let highest = levels.iter().copied().max().unwrap_or(Lv::None);
    let at = |pred: &dyn Fn(Lv) -> bool| {
        levels
            .iter()
            .position(|&l| pred(l))
            .map(|i| v.h0 + i as Stamp)
    };
    Outlook {
        highest,
        raw_highest,
        first: at(&|l| l > Lv::None),
        highest_at: if highest > Lv::None {
            at(&|l| l == highest)
        } else {
            None
        },
    }
}

/// S(h) <= 100 for every h of the next 36 hours (rule 3, §3.5.2 "优良…持续36小时以上").
pub fn good_next_36(v: &View) -> bool {
    (v.h0..v.h0 + 36).all(|h| v.s(h).good())
}

/// S known for all of the next 36 hours (rule 4, §3.5.1 "预测将持续36小时以上").
pub fn known_next_36(v: &View) -> bool {
    (v.h0..v.h0 + 36).all(|h| v.s(h).known)
}

/// `dust` / `fireworks` where they played a part in the track's means.
pub fn causes(v: &View, track: TrackId) -> Vec<String> {
    // A cause "played a part" when an hour tagged with it lies in the window of a mean of
    // this track that is above 150 (the lowest threshold of §3.2.1/§3.2.2).
    let stamps = v.h0 - 48..=v.h0 + v.horizon;
    let part = |flag: fn(&super::series::Mean) -> bool| {
        stamps
            .clone()
            .any(|s| on_track(v, s, track) && flag(v.m(s)) && v.m(s).above(150.0))
    };
    let mut out = Vec::new();
    if part(|m| m.dust) {
        out.push("dust".to_string()); // §1.3: excluded from M, but said (§3.3.2)
    }
    if part(|m| m.fireworks) {
        out.push("fireworks".to_string()); // §3.3.2 "燃放烟花爆竹…应予以说明"
    }
    out
}

/// Numbers behind an outlook, for `evidence`.
pub fn outlook_evidence(v: &View, o: &Outlook, floor: Option<&Floor>) -> Value {
    let m_at = |s: Option<Stamp>| {
        s.map(|s| {
            let m = v.m(s);
            json!({"ts": fmt_ts(ts_of(s)), "m": m.value(), "count": m.count,
                   "primary": m.primary.as_str()})
        })
    };
    json!({
        "h0": fmt_ts(ts_of(v.h0)),
        "horizon_hours": v.horizon,
        "highest": o.highest.as_str(),
        "highest_without_floor": o.raw_highest.as_str(),
        "first_warned": o.first.map(|s| fmt_ts(ts_of(s))),
        "highest_at": m_at(o.highest_at),
        "m_h0": m_at(Some(v.h0)),
        "floor": floor.map(|f| json!({"level": f.level.as_str(), "start": fmt_ts(f.start),
                                       "ref": f.reference})),
    })
}

/// Rules 1–4 for the graded track, in order; `province` = evaluated at a province
/// message.
pub fn decide_graded(
    v: &View,
    hz: &Horizon,
    active: Lv,
    floor: Option<&Floor>,
    province: bool,
) -> Option<Decision> {
    let o = graded_outlook(v, &hz.graded, floor);
    let mk = |kind, level, sections: &str, reason: String, by_floor: bool| Decision {
        kind,
        level,
        previous: active,
        clause: clause(sections),
        reason,
        evidence: outlook_evidence(v, &o, floor),
        expected_start: (kind == Kind::Activate).then_some(o.first).flatten(),
        province: province || by_floor,
        causes: causes(v, TrackId::Graded),
    };
    let (kind, level, sec, reason) = if active == Lv::None || o.highest > active {
        rule_1_2(v, &o, active, province)?
    } else if floor.is_none() && o.highest < Lv::Yellow && good_next_36(v) {
        // rule 3: lift (§3.5.2, §4.4.1); never while a province floor is in force
        let reason = format!(
            "{}起未来36小时空气质量均为优良(AQI<=100),且未来{}小时无预警条件,解除{},应急响应终止",
            crate::time::time_zh(ts_of(v.h0)),
            v.horizon,
            active.zh()
        );
        (Kind::Terminate, Lv::None, "§3.5.2 §4.4.1", reason)
    } else if o.highest < active && known_next_36(v) {
        // rule 4: downgrade to max(yellow, highest) (§3.5.1 "按高级别预警执行")
        let new = o.highest.max(Lv::Yellow);
        if new >= active {
            return None;
        }
        let reason = format!(
            "空气质量改善至{}启动条件以下,且预测持续36小时以上,由{}降为{}",
            active.zh(),
            active.zh(),
            new.zh()
        );
        // Reached only because of the floor when the data alone would go lower (rule 6).
        let by_floor = o.raw_highest.max(Lv::Yellow) < new;
        return Some(mk(Kind::Downgrade, new, "§3.5.1", reason, by_floor));
    } else {
        return None;
    };
    // Activation / escalation reached only because of the floor (rule 6).
    let by_floor = kind != Kind::Terminate && o.raw_highest < o.highest;
    Some(mk(kind, level, sec, reason, by_floor))
}

/// Rule 1 (activate at the highest level, §3.4 "按高级别启动") and rule 2 (escalate,
/// §3.4 "尽早采取升级措施", §3.5.1).
fn rule_1_2(
    v: &View,
    o: &Outlook,
    active: Lv,
    province: bool,
) -> Option<(Kind, Lv, &'static str, String)> {
    if active == Lv::None {
        // The first warned hour exists exactly when the outlook reaches a level.
        let (Some(first), true) = (o.first, o.highest >= Lv::Yellow) else {
            return None;
        };
        let h0 = crate::time::time_zh(ts_of(v.h0));
        let first = crate::time::time_zh(ts_of(first));
        let sec = if province { "§3.3.2" } else { "§3.2.1 §3.4" };
        let reason = format!(
            "{h0}起未来{}小时内预测(监测)空气质量达到{}条件,预计{first}开始,按高级别启动{}",
            v.horizon,
            o.highest.zh(),
            o.highest.response_zh()
        );
        return Some((Kind::Activate, o.highest, sec, reason));
    }
    let h0 = crate::time::time_zh(ts_of(v.h0));
    let sec = if province {
        "§3.3.2 §3.5.1"
    } else {
        "§3.4 §3.5.1"
    };
    let reason = format!(
        "{h0}起未来{}小时内空气质量达到{}条件,由{}升级为{},启动{}",
        v.horizon,
        o.highest.zh(),
        active.zh(),
        o.highest.zh(),
        o.highest.response_zh()
    );
    Some((Kind::Escalate, o.highest, sec, reason))
}

/// Rules 1 and 3 for the ozone track (§3.2.2, §3.5.2); no escalation or downgrade.
/// `province`: evaluated at a province message (rule 6: such a move skips approval).
pub fn decide_ozone(v: &View, hz: &Horizon, active: Lv, province: bool) -> Option<Decision> {
    let o = ozone_outlook(v, &hz.ozone);
    // Nothing to decide for most evaluations: wording and evidence only for a notice.
    // (Activation needs a warned hour; while active, only its absence can terminate.)
    if o.first.is_some() != (active == Lv::None) {
        return None;
    }
    let h0 = crate::time::time_zh(ts_of(v.h0));
    let mk = |kind, level, sections: &str, reason: String| Decision {
        kind,
        level,
        previous: active,
        clause: clause(sections),
        reason,
        evidence: outlook_evidence(v, &o, None),
        expected_start: if kind == Kind::Activate {
            o.first
        } else {
            None
        },
        province,
        causes: causes(v, TrackId::Ozone),
    };
    if active == Lv::None {
        let first = o.first?;
        let reason = format!(
            "{h0}起未来{}小时内预测以臭氧为首要污染物的AQI日均值>200或>150持续48小时,预计{}开始,启动臭氧重污染天气预警",
            v.horizon,
            crate::time::time_zh(ts_of(first))
        );
        return Some(mk(Kind::Activate, Lv::Ozone, "§3.2.2 §3.4", reason));
    }
    if o.first.is_none() && good_next_36(v) {
        let reason = format!(
            "{h0}起未来36小时空气质量均为优良(AQI<=100),且未来{}小时无臭氧预警条件,解除臭氧重污染天气预警",
            v.horizon
        );
        return Some(mk(Kind::Terminate, Lv::None, "§3.5.2 §4.4.1", reason));
    }
    None
}

/// Whole hours from h0 to the expected start, at least 0 (§3.3.1).
pub fn lead_hours(h0: Ts, expected: Stamp) -> i64 {
    (expected - stamp_of(h0)).max(0)
}
