//! Reports (§4.3 初报 / 日报 / 终报 with the 应急响应统计表, §4.5) and the response
//! episode they describe; data-gap notices (PLANS.md §4).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::notice::{Kind, Notice, Plan};
use crate::plans::feed::{Period, Watched};
use crate::time::{fmt_ts, Ts};

use super::series::{ts_of, View};
use super::types::{clause, Lv, TrackId};

/// The office that reports to the province (§4.3).
pub const OFFICE: &str = "市重污染天气应急指挥部办公室";
pub const PROVINCE_OFFICE: &str = "山西省重污染天气应急指挥部办公室";

/// One response episode, from activation to lifting: what the statistics table needs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Episode {
    pub start: Option<Ts>,
    /// Each level with the time it began.
    pub segments: Vec<(Lv, Ts)>,
    /// Highest observed hourly AQI and its stamp.
    pub peak_aqi: Option<(f64, Ts)>,
    /// Highest valid 24 h mean on the track, its stamp and primary pollutant.
    pub peak_m: Option<(f64, Ts, String)>,
    pub causes: BTreeSet<String>,
}

impl Episode {
    pub fn begin(level: Lv, at: Ts) -> Episode {
        Episode {
            start: Some(at),
            segments: vec![(level, at)],
            ..Default::default()
        }
    }

    /// Peaks over the last 24 observed hours and M(h0) of the track.
    pub fn observe(&mut self, v: &View, track: TrackId) {
        for s in v.h0 - 23..=v.h0 {
            let h = v.s(s);
            if h.observed && !h.dust && !self.peak_aqi.is_some_and(|(a, _)| h.aqi <= a) {
                self.peak_aqi = Some((h.aqi, ts_of(s)));
            }
        }
        let m = v.m(v.h0);
        if m.ozone() == (track == TrackId::Ozone) {
            if let Some(x) = m.value() {
                if !self.peak_m.as_ref().is_some_and(|(p, _, _)| x <= *p) {
                    self.peak_m = Some((x, ts_of(v.h0), m.primary.as_str().to_string()));
                }
            }
        }
    }

    /// 应急响应统计表 (§4.3): start, end, time at each level, peaks, primary, causes.
    pub fn table(&self, end: Ts) -> Value {
        let mut rows = Vec::new();
        let mut hours: Vec<(Lv, f64)> = Vec::new();
        for (i, (lv, from)) in self.segments.iter().enumerate() {
            let to = self.segments.get(i + 1).map_or(end, |s| s.1);
            let h = (to - *from).num_seconds() as f64 / 3600.0;
            rows.push(
                json!({"level": lv.as_str(), "from": fmt_ts(*from), "to": fmt_ts(to),
                             "hours": h}),
            );
            match hours.iter_mut().find(|(l, _)| l == lv) {
                Some((_, t)) => *t += h,
                None => hours.push((*lv, h)),
            }
        }
        let by_level: serde_json::Map<String, Value> = hours
            .into_iter()
            .map(|(l, h)| (l.as_str().to_string(), json!(h)))
            .collect();
        json!({
            "start": self.start.map(fmt_ts),
            "end": fmt_ts(end),
            "levels": rows,
            "hours_by_level": by_level,
            "peak_aqi": self.peak_aqi.map(|(a, t)| json!({"aqi": a, "ts": fmt_ts(t)})),
            "peak_m": self.peak_m.as_ref().map(|(m, t, p)| json!({"m": m, "ts": fmt_ts(*t), "primary": p})),
            "primary": self.peak_m.as_ref().map(|(_, _, p)| p.clone()),
            "causes": self.causes.iter().collect::<Vec<_>>(),
        })
    }

    fn primary(&self) -> String {
        self.peak_m
            .as_ref()
            .map_or_else(|| "PM2.5".to_string(), |(_, _, p)| p.clone())
    }
}

fn report(track: TrackId, kind: Kind, level: Lv) -> Notice {
    Notice::new(Plan::HeavyPollution, track.as_str(), kind, level.as_str())
        .clause(clause("§4.3"))
        .authority(OFFICE)
        .recipients(vec![PROVINCE_OFFICE.to_string()])
}

/// 初报: level, time, primary pollutant (§4.3).
pub fn first(track: TrackId, level: Lv, ep: &Episode, now: Ts, primary: &str) -> Notice {
    let mut n = report(track, Kind::ReportFirst, level).reason(format!(
        "初报:{}于{}发布,启动{},主要污染物{primary}",
        level.zh(),
        crate::time::time_zh(now),
        level.response_zh()
    ));
    n.evidence = json!({"level": level.as_str(), "response": level.response(),
                        "issued": fmt_ts(now), "primary": primary,
                        "causes": ep.causes.iter().collect::<Vec<_>>()});
    n
}

/// 日报: level changes, measures, effect (§4.3).
pub fn daily(track: TrackId, level: Lv, ep: &Episode, now: Ts) -> Notice {
    let changes: Vec<Value> = ep
        .segments
        .iter()
        .map(|(l, t)| json!({"level": l.as_str(), "from": fmt_ts(*t)}))
        .collect();
    let mut n = report(track, Kind::ReportFollowup, level).reason(format!(
        "日报:截至{},{}持续中({}),自{}启动以来级别变化{}次,主要污染物{}",
        crate::time::time_zh(now),
        level.zh(),
        level.response_zh(),
        ep.start.map(crate::time::time_zh).unwrap_or_default(),
        ep.segments.len().saturating_sub(1),
        ep.primary()
    ));
    n.evidence = json!({"level": level.as_str(), "response": level.response(),
                        "level_changes": changes, "statistics": ep.table(now)});
    n
}

/// 终报 with the 应急响应统计表 (§4.3).
pub fn final_report(track: TrackId, ended: Lv, ep: &Episode, now: Ts) -> Notice {
    let mut n = report(track, Kind::ReportFinal, ended).reason(format!(
        "终报:{}于{}解除,应急响应终止(自{}启动),主要污染物{},详见应急响应统计表",
        ended.zh(),
        crate::time::time_zh(now),
        ep.start.map(crate::time::time_zh).unwrap_or_default(),
        ep.primary()
    ));
    n.evidence = json!({"level": ended.as_str(), "statistics": ep.table(now)});
    n
}

/// The two monitored feeds (PLANS.md §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Feed {
    Aqi,
    Forecast,
}

impl Feed {
    pub fn as_str(self) -> &'static str {
        match self {
            Feed::Aqi => "aqi",
            Feed::Forecast => "forecast",
        }
    }
    fn zh(self) -> &'static str {
        match self {
            Feed::Aqi => "空气质量小时监测数据",
            Feed::Forecast => "空气质量预报",
        }
    }
}

fn gap_notice(kind: Kind, level: Lv) -> Notice {
    Notice::new(Plan::HeavyPollution, "graded", kind, level.as_str())
        .clause(clause("§3.1.1"))
        .authority(OFFICE)
}

impl Feed {
    /// The feed as the shared rule sees it (PLANS.md §4).
    fn watched(self, period_h: f64) -> Watched<'static> {
        Watched {
            feed: self.as_str(),
            plant: None,
            period: Period::Hours(period_h),
        }
    }
}

pub fn data_gap(feed: Feed, level: Lv, last: Ts, period_h: f64, now: Ts) -> Notice {
    let mut n = gap_notice(Kind::DataGap, level).reason(format!(
        "{}自{}起已中断{period_h}小时(至{}),请核查监测预报数据传输",
        feed.zh(),
        crate::time::time_zh(last),
        crate::time::time_zh(now)
    ));
    n.evidence = feed.watched(period_h).gap_evidence(last);
    n
}

pub fn data_resumed(feed: Feed, level: Lv, last: Ts, period_h: f64, now: Ts) -> Notice {
    let mut n = gap_notice(Kind::DataResumed, level).reason(format!(
        "{}已于{}恢复(上次收到{})",
        feed.zh(),
        crate::time::time_zh(now),
        crate::time::time_zh(last)
    ));
    n.evidence = feed.watched(period_h).resumed_evidence(last, now);
    n
}
