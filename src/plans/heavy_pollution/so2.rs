//! The SO2 track (§3.2.3 "当预测SO₂小时浓度超过150微克/立方米时,采取针对性应急管控措施"):
//! active while any stamp in [h0-24h, h0+H] has SO2 > 150 µg/m³ (PLANS.md §2, local
//! default for the end). No approval, no reports.

use serde_json::json;

use crate::notice::Kind;
use crate::time::fmt_ts;

use super::series::{ts_of, Stamp, View};
use super::types::{clause, Decision, Lv};

/// SO2 threshold of §3.2.3, µg/m³.
pub const SO2_LIMIT: f64 = 150.0;

/// Stamps in [h0-24h, h0+H] whose SO2 is above the limit.
fn hot_stamps(v: &View) -> Vec<(Stamp, f64)> {
    (v.h0 - 24..=v.h0 + v.horizon)
        .filter_map(|s| v.s(s).so2.filter(|&x| x > SO2_LIMIT).map(|x| (s, x)))
        .collect()
}

pub fn decide_so2(v: &View, active: Lv) -> Option<Decision> {
    let hot = hot_stamps(v);
    // Most evaluations change nothing: decide first, build the evidence (and its
    // formatted times) only for a notice.
    if matches!(
        (active, hot.is_empty()),
        (Lv::None, true) | (Lv::So2, false)
    ) {
        return None;
    }
    let max = hot.iter().map(|&(_, x)| x).fold(f64::MIN, f64::max);
    let mk = |kind, level, reason: String, start: Option<Stamp>| Decision {
        kind,
        level,
        previous: active,
        clause: clause("§3.2.3 §4.2.5"),
        reason,
        evidence: so2_evidence(v, &hot),
        expected_start: start,
        province: false,
        causes: Vec::new(),
    };
    match (active, hot.first()) {
        (Lv::None, Some(&(first, _))) => Some(mk(
            Kind::Activate,
            Lv::So2,
            format!(
                "SO2小时浓度超过150微克/立方米(最高{max}微克/立方米,首个小时{}),采取二氧化硫针对性应急管控措施",
                crate::time::time_zh(ts_of(first))
            ),
            Some(first),
        )),
        (Lv::So2, None) => Some(mk(
            Kind::Terminate,
            Lv::None,
            format!("{}前24小时至未来预测时段内SO2小时浓度均不超过150微克/立方米,结束二氧化硫针对性管控", crate::time::time_zh(ts_of(v.h0))),
            None,
        )),
        _ => None,
    }
}

/// Numbers behind an SO2 decision, for `evidence`.
fn so2_evidence(v: &View, hot: &[(Stamp, f64)]) -> serde_json::Value {
    json!({
        "h0": fmt_ts(ts_of(v.h0)),
        "window": [fmt_ts(ts_of(v.h0 - 24)), fmt_ts(ts_of(v.h0 + v.horizon))],
        "limit_ug_m3": SO2_LIMIT,
        "hours_above": hot.iter().map(|&(s, x)| json!({"ts": fmt_ts(ts_of(s)), "so2_ug_m3": x}))
            .collect::<Vec<_>>(),
    })
}
