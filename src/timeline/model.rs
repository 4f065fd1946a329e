//! Notices and series -> what one picture shows: level runs per track, marks, the hourly
//! AQI, M and stock days. Times are Unix seconds; they are drawn in local time (+08:00).

use crate::config::Config;
use crate::input::Cause;
use crate::notice::{Kind, Notice};
use crate::plans::heavy_pollution::series::{sliding_means, stamp_of, Stamp};
use crate::time::{at_secs, Ts};
use crate::wording::{Level, Said};

use super::{RegionSeries, Span};

/// One band of the picture: a plan's track.
pub struct Track {
    /// The notices' `track`.
    pub track: &'static str,
    /// Its label in the picture.
    pub label: &'static str,
}

/// The bands, top to bottom: coal, pollution (graded, ozone, SO2), each weather hazard.
pub const TRACKS: [Track; 7] = [
    Track {
        track: "supply",
        label: "煤炭保供",
    },
    Track {
        track: "graded",
        label: "重污染 分级",
    },
    Track {
        track: "ozone",
        label: "重污染 臭氧",
    },
    Track {
        track: "so2",
        label: "二氧化硫管控",
    },
    Track {
        track: "rainstorm",
        label: "叫应 暴雨",
    },
    Track {
        track: "blizzard",
        label: "叫应 暴雪",
    },
    Track {
        track: "thunderstorm_gale",
        label: "叫应 雷暴大风",
    },
];

/// The row of a track name (track names are unique across plans).
pub fn row_of(track: &str) -> Option<usize> {
    TRACKS.iter().position(|t| t.track == track)
}

/// What a mark stands for. Declared in drawing order: later ones are drawn on top.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum MarkKind {
    Unreached,
    Overdue,
    Decision,
    Proposal,
    Move,
}

impl MarkKind {
    pub const ALL: [MarkKind; 5] = [
        MarkKind::Move,
        MarkKind::Proposal,
        MarkKind::Decision,
        MarkKind::Overdue,
        MarkKind::Unreached,
    ];

    /// The mark of a notice, if it has one.
    pub fn of(n: &Notice) -> Option<MarkKind> {
        match n.kind {
            k if k.is_move() => Some(MarkKind::Move),
            Kind::Proposal => Some(MarkKind::Proposal),
            Kind::CallUnreached => Some(MarkKind::Unreached),
            Kind::ReportOverdue => Some(MarkKind::Overdue),
            _ => None,
        }
    }

    /// Its meaning in the legend.
    pub fn legend(self) -> &'static str {
        match self {
            MarkKind::Move => "启动、升级、降级、解除",
            MarkKind::Proposal => "提请审批",
            MarkKind::Decision => "批准、驳回、确认、人工预警",
            MarkKind::Overdue => "逾期未报",
            MarkKind::Unreached => "叫应未到位",
        }
    }
}

/// A stretch of time at one level (never `none`: that is the band's background).
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    pub from: i64,
    pub to: i64,
    pub level: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Mark {
    pub t: i64,
    pub row: usize,
    pub kind: MarkKind,
    /// The mark's `<title>`: time, track, what happened and the notice or proposal id.
    pub title: String,
}

/// One hour of AQI (stamped with the end of its hour).
#[derive(Debug, Clone, PartialEq)]
pub struct HourValue {
    pub t: i64,
    pub value: f64,
    /// Primary pollutant(s), and 沙尘 / 烟花爆竹 when tagged.
    pub note: String,
}

/// Everything one picture shows.
pub struct Model {
    pub region_name: String,
    pub from: i64,
    pub to: i64,
    /// Per row of [`TRACKS`].
    pub bands: Vec<Vec<Run>>,
    /// In time order.
    pub marks: Vec<Mark>,
    /// Observed hours.
    pub obs: Vec<HourValue>,
    /// Hours with no observation, from the latest-issued forecast that lists them.
    pub fc: Vec<HourValue>,
    /// M(h) where valid (PLANS.md §2: at least 20 of the 24 hours).
    pub m: Vec<(i64, f64)>,
    /// Key plant -> readings (time, stock days) in time order: those in the span and the
    /// last one before it.
    pub stock: Vec<(String, Vec<(i64, f64)>)>,
    /// A plant's line breaks where it was silent longer than this (`coal.stock_gap_days`).
    pub stock_gap: i64,
    /// `coal.beyond_l1_stock_days` (PLANS.md §1 "Beyond level 1").
    pub beyond_l1_days: f64,
}

impl Model {
    pub fn new(
        cfg: &Config,
        region: &str,
        span: Span,
        notices: &[Notice],
        series: &RegionSeries,
    ) -> Model {
        let from = span.from.timestamp();
        // A picture of one instant still needs a width.
        let to = span.to.timestamp().max(from + 3600);
        let region_name = cfg
            .regions
            .iter()
            .find(|r| r.id == region)
            .map(|r| if r.name.is_empty() { &r.id } else { &r.name })
            .map_or(region.to_string(), |s| s.clone());
        let mine: Vec<&Notice> = notices.iter().filter(|n| n.region == region).collect();
        let mut marks = notice_marks(cfg, &mine, from, to);
        marks.extend(series.decisions.iter().filter_map(|d| {
            let t = d.at.timestamp();
            let row = row_of(&d.track)?;
            (from..=to).contains(&t).then(|| Mark {
                t,
                row,
                kind: MarkKind::Decision,
                title: format!("{} {} {}", when_zh(d.at), TRACKS[row].label, d.text),
            })
        }));
        marks.sort_by_key(|m| m.t);
        let (obs, fc, m) = air(series, from, to);
        Model {
            region_name,
            from,
            to,
            bands: bands(&mine, from, to),
            marks,
            obs,
            fc,
            m,
            stock: stock(series, from, to),
            stock_gap: (cfg.coal.stock_gap_days * 86400.0).round() as i64,
            beyond_l1_days: cfg.coal.beyond_l1_stock_days,
        }
    }
}

/// Level runs per track from the moves. Before the first move seen, a track is at that
/// move's `previous` (so a window that starts inside a warning shows it).
fn bands(notices: &[&Notice], from: i64, to: i64) -> Vec<Vec<Run>> {
    let mut out = vec![Vec::new(); TRACKS.len()];
    // Per row: (start of the current level, level), once known.
    let mut cur: Vec<Option<(i64, String)>> = vec![None; TRACKS.len()];
    for n in notices.iter().filter(|n| n.kind.is_move()) {
        let Some(row) = row_of(&n.track) else {
            continue;
        };
        let t = n.at.timestamp().clamp(from, to);
        if n.at.timestamp() > to {
            continue;
        }
        let (start, level) = cur[row]
            .take()
            .unwrap_or_else(|| (from, n.previous.clone().unwrap_or_else(|| "none".into())));
        if level != "none" && t > start {
            out[row].push(Run {
                from: start,
                to: t,
                level,
            });
        }
        cur[row] = Some((t, n.level.clone()));
    }
    for (row, c) in cur.into_iter().enumerate() {
        if let Some((start, level)) = c {
            if level != "none" && to > start {
                out[row].push(Run {
                    from: start,
                    to,
                    level,
                });
            }
        }
    }
    out
}

fn notice_marks(cfg: &Config, notices: &[&Notice], from: i64, to: i64) -> Vec<Mark> {
    notices
        .iter()
        .filter_map(|n| {
            let kind = MarkKind::of(n)?;
            let row = row_of(&n.track)?;
            let t = n.at.timestamp();
            (from..=to).contains(&t).then(|| Mark {
                t,
                row,
                kind,
                title: mark_title(cfg, n),
            })
        })
        .collect()
}

/// The `<title>` of a notice's mark, e.g. `2023年12月1日 09:00 重污染 分级 升级
/// 黄色预警→橙色预警（heavy_pollution/shuozhou/graded/7）`. Tests look marks up by it.
pub fn mark_title(cfg: &Config, n: &Notice) -> String {
    let label = row_of(&n.track).map_or(n.track.as_str(), |r| TRACKS[r].label);
    // What the notice is and its levels in the plans' own words (crate::wording).
    let kind = Said::of(n).kind_zh();
    let level =
        |code: &str| Level::parse(n.plan, &n.track, code).map_or(code.to_string(), |l| l.name_zh());
    let what = match n.kind {
        k if k.is_move() => format!(
            "{kind} {}→{}",
            level(n.previous.as_deref().unwrap_or("none")),
            level(&n.level)
        ),
        Kind::Proposal => format!("{kind} {}", level(&n.level)),
        Kind::CallUnreached => {
            let person = n.person.as_deref().unwrap_or_default();
            let name = cfg
                .contacts
                .iter()
                .find(|c| c.id == person)
                .map_or(person, |c| c.name.as_str());
            let channel = match n.channel.as_deref() {
                Some("wechat") => "企业微信",
                Some("phone") => "电话",
                _ => "",
            };
            format!(
                "{kind} {name}（{person}，{channel}第{}次）",
                n.attempt.unwrap_or_default()
            )
        }
        _ => {
            let units: Vec<&str> = n.evidence["units"]
                .as_array()
                .map(|a| a.iter().filter_map(|u| u.as_str()).collect())
                .unwrap_or_default();
            format!("{kind} {}", units.join("、"))
        }
    };
    let id = n.call_id.as_deref().unwrap_or(&n.id);
    format!("{} {label} {what}（{id}）", when_zh(n.at))
}

/// A level's short name in Chinese, as written in the bands.
pub fn level_short(level: &str) -> &str {
    match level {
        "L2" => "二级",
        "L1" => "一级",
        "blue" => "蓝色",
        "yellow" => "黄色",
        "orange" => "橙色",
        "red" => "红色",
        "ozone" => "臭氧",
        "so2" => "管控",
        "none" => "无",
        other => other,
    }
}

/// `2023年12月1日 09:00` (local time).
pub fn when_zh(t: Ts) -> String {
    t.format("%Y年%-m月%-d日 %H:%M").to_string()
}

/// Hourly AQI observed, forecast-only hours, and valid M over the span's stamps.
fn air(
    series: &RegionSeries,
    from: i64,
    to: i64,
) -> (Vec<HourValue>, Vec<HourValue>, Vec<(i64, f64)>) {
    let s0: Stamp = stamp_of(at_secs(from + 3599));
    let s1: Stamp = stamp_of(at_secs(to));
    let (mut obs, mut fc, mut m) = (Vec::new(), Vec::new(), Vec::new());
    if s1 < s0 {
        return (obs, fc, m);
    }
    let a = &series.air;
    for (&s, o) in a.obs.range(s0..=s1) {
        let mut note: Vec<&str> = o.primary.iter().map(|p| p.as_str()).collect();
        match o.cause {
            Some(Cause::Dust) => note.push("沙尘"),
            Some(Cause::Fireworks) => note.push("烟花爆竹"),
            None => {}
        }
        obs.push(HourValue {
            t: s * 3600,
            value: o.aqi,
            note: note.join(" "),
        });
    }
    for (&s, f) in a.fc.range(s0..=s1) {
        if !a.obs.contains_key(&s) {
            let note: Vec<&str> = f.primary.iter().map(|p| p.as_str()).collect();
            fc.push(HourValue {
                t: s * 3600,
                value: f.aqi,
                note: note.join(" "),
            });
        }
    }
    if !a.obs.is_empty() || !a.fc.is_empty() {
        let hours: Vec<_> = (s0 - 23..=s1).map(|s| a.hour(s)).collect();
        for (i, mean) in sliding_means(&hours).iter().enumerate() {
            if let Some(v) = mean.value() {
                m.push(((s0 + i as i64) * 3600, v));
            }
        }
    }
    (obs, fc, m)
}

fn stock(series: &RegionSeries, from: i64, to: i64) -> Vec<(String, Vec<(i64, f64)>)> {
    series
        .stock
        .iter()
        .map(|(plant, readings)| {
            let before = readings.range(..from).next_back();
            let pts: Vec<(i64, f64)> = before
                .into_iter()
                .chain(readings.range(from..=to))
                .map(|(&t, &d)| (t, d))
                .collect();
            (plant.clone(), pts)
        })
        .filter(|(_, pts)| !pts.is_empty())
        .collect()
}
