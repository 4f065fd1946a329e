//! The plans' own words for what a notice is: the level as each plan names it (coal
//! 二级/一级预警 §4.2.1; pollution 黄色/橙色/红色预警, 臭氧重污染天气预警, 二氧化硫针对性管控
//! §3.2; weather 暴雨红色预警 …), the report names (pollution 初报/日报/终报 §4.3, coal
//! 首报/续报/终报 §5.1), and hazards (times as a duty officer reads them, 12月1日8时05分, are
//! [`crate::time::time_zh`]).
//!
//! The notice's codes (`plan`, `track`, `level`) are parsed once into [`Said`]; renderers
//! print what it says and never re-derive names from strings.

use crate::input::{Color, Hazard};
use crate::notice::{Kind, Notice, Plan};
use crate::plans::coal_supply::Level as CoalLevel;
use crate::plans::heavy_pollution::types::Lv;

pub use crate::levels::Tier;

/// A notice's level, typed: the plan that made the notice names it. Renderers print
/// [`Level::name_zh`] and [`Level::response_zh`] and never compose a level's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Level {
    None,
    /// Coal §4.2.1: 二级预警, 一级预警.
    Coal(CoalLevel),
    /// Pollution §3.2: 黄色/橙色/红色预警, 臭氧重污染天气预警, 二氧化硫针对性管控.
    Pollution(Lv),
    /// The call mechanism §二: the hazard's warning of a colour, 暴雨红色预警.
    Weather(Hazard, Color),
}

impl Level {
    /// The level code of `plan` on `track` (`L2`, `orange`, `so2`, `red`, `none`, …);
    /// `None` when the code is not one of that plan's.
    pub fn parse(plan: Plan, track: &str, code: &str) -> Option<Level> {
        if code == "none" {
            return Some(Level::None);
        }
        match plan {
            Plan::CoalSupply => match code {
                "L2" => Some(Level::Coal(CoalLevel::L2)),
                "L1" => Some(Level::Coal(CoalLevel::L1)),
                _ => None,
            },
            Plan::HeavyPollution => match code {
                "ozone" => Some(Level::Pollution(Lv::Ozone)),
                "so2" => Some(Level::Pollution(Lv::So2)),
                c => Lv::parse_graded(c).map(Level::Pollution),
            },
            Plan::SevereWeather => {
                Color::parse(code).map(|c| Level::Weather(Hazard::parse(track), c))
            }
        }
    }

    /// The level as its plan names it: 二级预警, 橙色预警, 二氧化硫针对性管控, 暴雨红色预警;
    /// 无预警 for none.
    pub fn name_zh(&self) -> String {
        match self {
            Level::None => "无预警".into(),
            Level::Coal(l) => l.warning_zh().into(),
            Level::Pollution(Lv::None) => "无预警".into(),
            Level::Pollution(l) => l.zh().into(),
            Level::Weather(h, c) => crate::plans::severe_weather::warning_zh(h, *c),
        }
    }

    /// The response that goes with it (coal §5.2 二级响应, pollution §4.1 三级应急响应);
    /// the one-level pollution tracks and weather warnings have none.
    pub fn response_zh(&self) -> Option<&'static str> {
        match self {
            Level::Coal(l) => l.response_zh(),
            Level::Pollution(l @ (Lv::Yellow | Lv::Orange | Lv::Red)) => Some(l.response_zh()),
            _ => None,
        }
    }
}

/// What a notice says it is, typed once from its codes: the accessor every renderer
/// reads a notice's plan, kind and level through.
#[derive(Debug, Clone)]
pub struct Said {
    pub plan: Plan,
    pub kind: Kind,
    /// The level the notice is about: a termination's is the level that ended.
    pub level: Level,
}

impl Said {
    pub fn of(n: &Notice) -> Said {
        let parse = |code: &str| Level::parse(n.plan, &n.track, code).unwrap_or(Level::None);
        let mut level = parse(&n.level);
        if level == Level::None {
            if let Some(p) = n.previous.as_deref() {
                level = parse(p);
            }
        }
        Said {
            plan: n.plan,
            kind: n.kind,
            level,
        }
    }

    /// The plan's name in a tag before a level: 煤炭保供, 重污染天气, 重大灾害性天气 (the
    /// call mechanism's "叫应" is said by the level's kind: 启动叫应, 叫应结束).
    pub fn plan_zh(&self) -> &'static str {
        match self.plan {
            Plan::CoalSupply => "煤炭保供",
            Plan::HeavyPollution => "重污染天气",
            Plan::SevereWeather => "重大灾害性天气",
        }
    }

    /// What the notice is, in the plan's words: pollution 发布/初报/日报 (§3.3, §4.3), the
    /// call mechanism 启动叫应/叫应结束; else [`Kind::name_zh`] (coal 启动, 首报/续报/终报 §5.1).
    pub fn kind_zh(&self) -> &'static str {
        let (p, w) = (
            self.plan == Plan::HeavyPollution,
            self.plan == Plan::SevereWeather,
        );
        match self.kind {
            Kind::Activate if w => "启动叫应",
            Kind::Activate if p => "发布",
            Kind::Escalate if w => "预警升级 重新叫应",
            Kind::Terminate if w => "叫应结束",
            Kind::ReportFirst if p => "初报",
            Kind::ReportFollowup if p => "日报",
            k => k.name_zh(),
        }
    }

    /// `【重污染天气 橙色预警】`; a proposal or reminder to end a warning whose level
    /// the notice does not carry: `【煤炭保供 预警解除】`.
    pub fn tag(&self) -> String {
        let level = match (self.kind, &self.level) {
            (Kind::Proposal | Kind::Reminder, Level::None) => "预警解除".to_string(),
            (_, l) => l.name_zh(),
        };
        format!("【{} {level}】", self.plan_zh())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_plan_names_its_own_levels_and_reports() {
        let n = |plan, track: &str, kind, level: &str| {
            let mut n = Notice::new(plan, track, kind, level);
            if level == "none" {
                n.previous = Some(match plan {
                    Plan::CoalSupply => "L1".into(),
                    Plan::HeavyPollution => "red".into(),
                    Plan::SevereWeather => "orange".into(),
                });
            }
            Said::of(&n)
        };
        let s = n(Plan::CoalSupply, "supply", Kind::ReportFirst, "L2");
        assert_eq!(
            (s.tag(), s.kind_zh()),
            ("【煤炭保供 二级预警】".into(), "首报")
        );
        let s = n(
            Plan::HeavyPollution,
            "graded",
            Kind::ReportFollowup,
            "orange",
        );
        assert_eq!(
            (s.tag(), s.kind_zh()),
            ("【重污染天气 橙色预警】".into(), "日报")
        );
        let s = n(Plan::HeavyPollution, "so2", Kind::Activate, "so2");
        assert_eq!(s.tag(), "【重污染天气 二氧化硫针对性管控】");
        let s = n(Plan::SevereWeather, "rainstorm", Kind::Terminate, "none");
        assert_eq!(
            (s.tag(), s.kind_zh()),
            ("【重大灾害性天气 暴雨橙色预警】".into(), "叫应结束")
        );
        let name = |plan, track, code| Level::parse(plan, track, code).unwrap().name_zh();
        assert_eq!(
            name(Plan::HeavyPollution, "ozone", "ozone"),
            "臭氧重污染天气预警"
        );
        assert_eq!(name(Plan::CoalSupply, "supply", "L2"), "二级预警");
        assert_eq!(
            name(Plan::SevereWeather, "thunderstorm_gale", "red"),
            "雷暴大风红色预警"
        );
        assert_eq!(name(Plan::HeavyPollution, "graded", "none"), "无预警");
        assert_eq!(Level::parse(Plan::CoalSupply, "supply", "red"), None);
        let s = n(Plan::CoalSupply, "supply", Kind::Terminate, "none");
        assert_eq!(s.level.response_zh(), Some("一级响应"));
        let s = n(Plan::HeavyPollution, "graded", Kind::Activate, "yellow");
        assert_eq!(s.level.response_zh(), Some("三级应急响应"));
    }
}
