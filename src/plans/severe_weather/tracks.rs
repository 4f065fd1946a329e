//! Hazard tracks (PLANS.md §3 "Triggers" and "How a call proceeds"): each hazard's level is
//! the colour of its highest active triggering warning; a change of level is a move.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{SevereWeather, DOC, MET_BUREAU};
use crate::input::{Color, Hazard, Warning, WarningAction};
use crate::notice::{Kind, Notice, Plan};
use crate::plans::cx::Cx;
use crate::time::fmt_ts;

/// One active warning of a hazard, tracked by its id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveWarning {
    pub color: Color,
    pub extreme: bool,
    pub text: Option<String>,
}

/// One hazard's track.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Track {
    /// Active warnings of this hazard (any colour: an update may raise one to a trigger).
    pub warnings: BTreeMap<String, ActiveWarning>,
    /// Colour of the highest active triggering warning; `None` when idle.
    pub level: Option<Color>,
    /// `call_id` of the current round (the track owns it until escalate or terminate).
    pub round: Option<String>,
    /// Rounds started since the track's activation, oldest first.
    pub episode: Vec<String>,
}

impl Track {
    /// The level the active warnings give (§二).
    pub fn computed_level(&self, hazard: &Hazard) -> Option<Color> {
        self.warnings
            .values()
            .map(|w| w.color)
            .filter(|c| triggers(hazard, *c))
            .max()
    }

    /// The highest colour of any active warning of this hazard (for suggestions, §4).
    pub fn highest_active(&self) -> Option<Color> {
        self.warnings.values().map(|w| w.color).max()
    }
}

/// §二: rainstorm orange or red; blizzard red; thunderstorm-gale red. Other hazards never.
pub fn triggers(hazard: &Hazard, c: Color) -> bool {
    match hazard {
        Hazard::Rainstorm => c >= Color::Orange,
        Hazard::Blizzard | Hazard::ThunderstormGale => c == Color::Red,
        Hazard::Other(_) => false,
    }
}

/// A warning as the call mechanism names it (65号 §二): 暴雨红色预警.
pub fn warning_zh(h: &Hazard, c: Color) -> String {
    format!("{}{}预警", h.name_zh(), c.name_zh())
}

/// The clause of §二 that names this hazard's trigger (an other hazard never triggers, see
/// [`triggers`]: it names §二 as a whole).
pub fn trigger_clause(h: &Hazard) -> String {
    match h {
        Hazard::Rainstorm => format!("{DOC} §二.1"),
        Hazard::Blizzard => format!("{DOC} §二.2"),
        Hazard::ThunderstormGale => format!("{DOC} §二.3"),
        Hazard::Other(_) => format!("{DOC} §二"),
    }
}

/// The trigger of §二 in the plan's words (empty for an other hazard, which never triggers).
fn trigger_zh(h: &Hazard) -> &'static str {
    match h {
        Hazard::Rainstorm => "暴雨橙色及以上预警",
        Hazard::Blizzard => "暴雪红色预警",
        Hazard::ThunderstormGale => "雷暴大风红色预警",
        Hazard::Other(_) => "",
    }
}

fn level_str(c: Option<Color>) -> &'static str {
    c.map_or("none", Color::as_str)
}

impl SevereWeather {
    /// A warning message: update the hazard's warnings, then move when the level changed.
    pub(super) fn on_warning(&mut self, cx: &mut Cx, w: &Warning) {
        // §二 / CONTRACT.md: other hazards are accepted and ignored.
        if matches!(w.hazard, Hazard::Other(_)) {
            return;
        }
        let hz = &w.hazard;
        let track = self.tracks.entry(hz.clone()).or_default();
        match (w.action, w.color) {
            (WarningAction::Lift, _) => {
                track.warnings.remove(&w.id);
            }
            // An issue adds the warning; an update changes its colour (an update of an id
            // never seen is taken as its issue).
            (_, Some(color)) => {
                track.warnings.insert(
                    w.id.clone(),
                    ActiveWarning {
                        color,
                        extreme: w.extreme,
                        text: w.text.clone(),
                    },
                );
            }
            (_, None) => return, // input parsing requires a colour for issue/update
        }
        let old = track.level;
        let new = track.computed_level(&w.hazard);
        // PLANS.md §3: a message that leaves the level unchanged makes no notice.
        if old == new {
            return;
        }
        track.level = new;
        match (old, new) {
            (None, Some(c)) => self.start_move(cx, hz, w, Kind::Activate, None, c),
            (Some(o), Some(c)) if c > o => self.start_move(cx, hz, w, Kind::Escalate, Some(o), c),
            (Some(o), Some(c)) => self.downgrade(cx, hz, w, o, c),
            (Some(o), None) => self.terminate(cx, hz, w, o),
            (None, None) => {}
        }
    }

    /// Activate or escalate: the move, then a new round started by this warning.
    fn start_move(
        &mut self,
        cx: &mut Cx,
        hz: &Hazard,
        w: &Warning,
        kind: Kind,
        old: Option<Color>,
        color: Color,
    ) {
        if kind == Kind::Escalate {
            // PLANS.md §3 "Upgrade": the old round's pending calls are cancelled.
            self.end_current_round(cx, hz, super::RoundStatus::Superseded);
        } else {
            self.tracks.entry(hz.clone()).or_default().episode.clear();
        }
        let extreme = self.is_extreme(cx, hz, w, color);
        let plan = self.plan_round(cx, hz, w, color, extreme);
        let verb = if kind == Kind::Activate {
            "启动叫应服务"
        } else {
            "预警升级,以新的预警内容重新叫应"
        };
        // §三: 1 the departments' responsible persons, 2 the city leaders in charge, 3 the
        // top leaders (extreme events).
        let whom: Vec<&str> = plan.tiers.iter().map(|t| t.called_zh()).collect();
        let reason = format!(
            "{MET_BUREAU}于{}发布{}{}预警(编号 {}),达到叫应服务启动标准({}),{verb};\
             叫应{}共{}人(第{}轮叫应)",
            crate::time::time_zh(w.ts),
            hz.name_zh(),
            color.name_zh(),
            w.id,
            trigger_zh(hz),
            whom.join("、"),
            plan.persons.len(),
            plan.number,
        );
        let clause = if extreme {
            format!("{}; {DOC} §三.3", trigger_clause(hz))
        } else {
            trigger_clause(hz)
        };
        let n = Notice::new(Plan::SevereWeather, hz.as_str(), kind, color.as_str())
            .previous(level_str(old))
            .clause(clause)
            .authority(MET_BUREAU)
            .reason(reason)
            .evidence(json!({
                "warning_id": w.id, "action": action_str(w.action), "hazard": hz.as_str(),
                "color": color.as_str(), "warning_ts": fmt_ts(w.ts), "extreme": extreme,
                "warning_extreme": w.extreme, "call_id": plan.call_id, "tiers": plan.tiers,
            }))
            .recipients(plan.persons.iter().map(|p| p.person.clone()).collect());
        cx.emit(n);
        self.start_round(cx, plan);
    }

    /// §三.3: a warning marked extreme, or (local default) a red rainstorm.
    fn is_extreme(&self, cx: &Cx, hz: &Hazard, w: &Warning, color: Color) -> bool {
        w.extreme
            || (*hz == Hazard::Rainstorm
                && color == Color::Red
                && cx.cfg.weather_call.red_rainstorm_is_extreme)
    }

    /// A downgrade that still triggers: notified to those already called; calls go on.
    fn downgrade(&mut self, cx: &mut Cx, hz: &Hazard, w: &Warning, old: Color, new: Color) {
        let called = self.called_in_episode(hz);
        let reason = format!(
            "{}预警由{}降为{}(编号 {} {}),仍达到叫应服务启动标准({}),叫应服务继续,\
             通报已叫应对象 {} 人",
            hz.name_zh(),
            old.name_zh(),
            new.name_zh(),
            w.id,
            action_zh(w.action),
            trigger_zh(hz),
            called.len()
        );
        let n = self.move_down(hz, w, (Kind::Downgrade, new.as_str()), old, reason, called);
        cx.emit(n);
    }

    /// A lift or a downgrade below the triggers: terminate, cancel every pending call.
    fn terminate(&mut self, cx: &mut Cx, hz: &Hazard, w: &Warning, old: Color) {
        let called = self.called_in_episode(hz);
        let now_level = self.tracks[hz].highest_active();
        let reason = format!(
            "{}预警{}(编号 {}),{},叫应服务结束,未完成的叫应全部取消",
            hz.name_zh(),
            action_zh(w.action),
            w.id,
            match now_level {
                Some(c) => format!(
                    "现有{}{}预警,低于叫应服务启动标准({})",
                    hz.name_zh(),
                    c.name_zh(),
                    trigger_zh(hz)
                ),
                None => format!("现已无{}预警", hz.name_zh()),
            },
        );
        let n = self.move_down(hz, w, (Kind::Terminate, "none"), old, reason, called);
        cx.emit(n);
        self.end_current_round(cx, hz, super::RoundStatus::Closed);
    }

    /// The notice of a warning that moved down (a downgrade, or the end of the service):
    /// the trigger clause, the met bureau's authority, notified to those already called.
    fn move_down(
        &self,
        hz: &Hazard,
        w: &Warning,
        (kind, level): (Kind, &str),
        old: Color,
        reason: String,
        called: Vec<String>,
    ) -> Notice {
        Notice::new(Plan::SevereWeather, hz.as_str(), kind, level)
            .previous(old.as_str())
            .clause(trigger_clause(hz))
            .authority(MET_BUREAU)
            .reason(reason)
            .evidence(self.move_evidence(hz, w))
            .recipients(called)
    }

    fn move_evidence(&self, hz: &Hazard, w: &Warning) -> serde_json::Value {
        let t = &self.tracks[hz];
        let active: BTreeMap<&String, &str> = t
            .warnings
            .iter()
            .map(|(id, a)| (id, a.color.as_str()))
            .collect();
        json!({
            "warning_id": w.id, "action": action_str(w.action), "hazard": hz.as_str(),
            "color": w.color.map(Color::as_str), "warning_ts": fmt_ts(w.ts),
            "active_warnings": active, "call_id": t.round,
        })
    }

    /// Persons called in the rounds since activation, in call order, once each.
    fn called_in_episode(&self, hz: &Hazard) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for id in &self.tracks[hz].episode {
            for p in &self.rounds[id].persons {
                if p.attempts > 0 && !out.contains(&p.person) {
                    out.push(p.person.clone());
                }
            }
        }
        out
    }
}

fn action_str(a: WarningAction) -> &'static str {
    match a {
        WarningAction::Issue => "issue",
        WarningAction::Update => "update",
        WarningAction::Lift => "lift",
    }
}

fn action_zh(a: WarningAction) -> &'static str {
    match a {
        WarningAction::Issue => "发布",
        WarningAction::Update => "变更",
        WarningAction::Lift => "解除",
    }
}
