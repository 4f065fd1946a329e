//! Heavy-pollution weather plan — 朔州市重污染天气应急预案 (朔政办发〔2023〕37号), PLANS.md §2.
//!
//! - `series`: S, M, C(X,N), primary pollutant of a window (§3.2.1).
//! - `graded`: Level(h), rules 1–5 for the graded track, the ozone track (§3.2.2).
//! - `so2`: the SO2 track (§3.2.3).
//! - `approval`: rule 6 (审批表, §3.3.2) and the moves themselves.
//! - `reports`: 初报 / 日报 / 终报 (§4.3) and data-gap notices (PLANS.md §4).
//! - `measures`: the plan's measures per level (§4.2), quoted, as data.
//!
//! Only air messages move tracks; timers give reports, reminders and data gaps.

mod approval;
mod graded;
pub mod measures;
mod reports;
pub mod series;
mod so2;
pub mod types;

#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};

use crate::config::{Config, RegionConfig};
use crate::input::{Command, Input, ProvinceAction, ProvinceNotice};
use crate::notice::{Kind, Notice, Plan};
use crate::plans::cx::Cx;
use crate::time::{floor_hour, Ts};

use crate::plans::feed::{Clock, Period};
use crate::plans::feedback::{self, Cursor};
use crate::plans::proposal::Decisions;
use graded::Floor;
use reports::{Episode, Feed};
use series::{stamp_of, Series};
use types::{Decision, Lv, TrackId};

/// Timers of this plan.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Timer {
    /// A feed silent for its period (PLANS.md §4).
    Gap(Feed),
    /// The pending proposal of a track still pending after `reminder_hours` (rule 6).
    Reminder(TrackId),
    /// The daily report of an active track at `report_time` (§4.3).
    Daily(TrackId),
    /// A report-back deadline (PLANS.md §5.2, §4.3 "每日报送").
    Feedback,
}

impl Timer {
    pub fn describe(&self) -> String {
        match self {
            Timer::Gap(f) => format!("data gap of the {} feed", f.as_str()),
            Timer::Reminder(t) => format!("approval reminder, {} track", t.as_str()),
            Timer::Daily(t) => format!("daily report, {} track", t.as_str()),
            Timer::Feedback => "report-back deadline".into(),
        }
    }
}

/// A proposal waiting for `approve` / `reject` (rule 6).
pub type Pending = crate::plans::proposal::Pending<Decision>;

/// One track's state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrackState {
    pub level: Lv,
    pub episode: Option<Episode>,
    /// The pending proposal and a rejected level (rule 6, the shared life cycle); flattened
    /// so snapshots keep their `pending` / `rejected` keys.
    #[serde(flatten)]
    pub decisions: Decisions<Decision, Lv>,
    /// Where this track's reports stand in the report-back series (PLANS.md §5.2).
    pub feedback: Cursor,
}

/// State of the plan in one region.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct HeavyPollution {
    pub series: Series,
    pub floor: Option<Floor>,
    pub graded: TrackState,
    pub ozone: TrackState,
    pub so2: TrackState,
    /// The watched feeds (PLANS.md §4); snapshots keep their `{last, silent}` shape.
    #[serde(with = "crate::plans::feed::as_state")]
    pub aqi_feed: Option<Clock>,
    #[serde(with = "crate::plans::feed::as_state")]
    pub forecast_feed: Option<Clock>,
    /// The report-back deadline series (PLANS.md §5.2): runs while `graded` or `ozone`
    /// is active.
    pub feedback: Option<feedback::Series>,
}

impl HeavyPollution {
    pub fn new(_cfg: &Config, _region: &RegionConfig) -> Self {
        Self::default()
    }

    /// The ids of the proposals waiting for approval (rule 6), by track (the console
    /// lists them).
    pub fn pending_proposals(&self) -> Vec<&str> {
        [&self.graded, &self.ozone, &self.so2]
            .into_iter()
            .filter_map(|t| t.decisions.pending.as_ref().map(|p| p.id.as_str()))
            .collect()
    }

    pub(crate) fn track(&mut self, t: TrackId) -> &mut TrackState {
        match t {
            TrackId::Graded => &mut self.graded,
            TrackId::Ozone => &mut self.ozone,
            TrackId::So2 => &mut self.so2,
        }
    }

    pub(crate) fn track_ref(&self, t: TrackId) -> &TrackState {
        match t {
            TrackId::Graded => &self.graded,
            TrackId::Ozone => &self.ozone,
            TrackId::So2 => &self.so2,
        }
    }

    fn feed(&mut self, f: Feed) -> &mut Option<Clock> {
        match f {
            Feed::Aqi => &mut self.aqi_feed,
            Feed::Forecast => &mut self.forecast_feed,
        }
    }

    /// Handles one message of this plan; `Err(reason)` refuses it (and changes nothing).
    pub fn on_input(&mut self, cx: &mut Cx, input: &Input) -> Result<(), String> {
        match input {
            Input::AirAqi(o) => {
                let resumed = self.feed_message(cx, Feed::Aqi);
                self.series.add_obs(o);
                self.evaluate(cx, false, resumed);
            }
            Input::AirForecast(f) => {
                let resumed = self.feed_message(cx, Feed::Forecast);
                self.series.add_forecast(f);
                self.evaluate(cx, false, resumed);
            }
            Input::AirProvince(p) => {
                self.apply_province(cx.now, p);
                self.evaluate(cx, true, None);
            }
            Input::Cmd(Command::Approve { proposal_id, by }) => {
                return self.approve(cx, proposal_id, by)
            }
            Input::Cmd(Command::Reject {
                proposal_id,
                by,
                reason,
            }) => return self.reject(cx, proposal_id, by, reason),
            Input::Cmd(Command::Report(r)) => {
                // PLANS.md §5.2: only while a deadline series runs; never moves a track.
                let Some(s) = self.feedback.as_mut() else {
                    return Err(format!(
                        "heavy_pollution has no report-back deadlines running in region {} (neither the graded nor the ozone track is active)",
                        cx.region.id
                    ));
                };
                s.add(cx.now, r);
            }
            Input::Cmd(Command::Confirm { proposal_id, .. }) => {
                return Err(format!(
                "{proposal_id}: heavy-pollution proposals are approved or rejected, not confirmed"
            ))
            }
            _ => {}
        }
        Ok(())
    }

    pub fn on_timer(&mut self, cx: &mut Cx, timer: Timer) {
        match timer {
            Timer::Gap(f) => {
                // PLANS.md §4: once per silence, at exactly last arrival + period.
                let period = Self::period(cx.cfg, f);
                // The timer is armed only by a message of the feed, which starts its clock.
                let Some(clock) = self.feed(f).as_mut() else {
                    return;
                };
                let last = clock.fall_silent();
                let n = reports::data_gap(f, self.graded.level, last, period, cx.now);
                cx.emit(n);
            }
            Timer::Reminder(t) => self.remind(cx, t),
            Timer::Feedback => self.on_deadline(cx),
            Timer::Daily(t) => {
                let st = self.track(t);
                if st.level == Lv::None {
                    return;
                }
                let ep = st.episode.clone().unwrap_or_default();
                let mut n = reports::daily(t, st.level, &ep, cx.now);
                if let Some(s) = &self.feedback {
                    let mut cur = self.track_ref(t).feedback;
                    n.evidence["statistics"]["units"] =
                        s.statistics(cx.cfg, Plan::HeavyPollution, &cur);
                    s.followup(cx.cfg, &mut cur, &mut n.evidence);
                    self.track(t).feedback = cur;
                }
                let st = self.track(t);
                // §4.3 日报: "采取的应急响应措施" — the level's measures in force.
                n.measures = measures::for_level(cx.cfg, st.level);
                cx.emit(n);
                let next = crate::time::next_local_time(cx.now, cx.cfg.report_time);
                cx.arm(Timer::Daily(t), next);
                Self::deadline_after_reports(cx);
            }
        }
    }

    /// PLANS.md §5.2: the series starts when `graded` or `ozone` becomes active while
    /// neither was; a track joining a running series starts its own cursor.
    pub(crate) fn feedback_begin(&mut self, cx: &mut Cx, t: TrackId) {
        if self.feedback.is_none() && feedback::enabled(cx.cfg, Plan::HeavyPollution) {
            self.feedback = Some(feedback::Series::begin(cx.now));
            cx.arm(Timer::Feedback, feedback::first_deadline(cx.cfg, cx.now));
        }
        if let Some(s) = &self.feedback {
            let cur = s.cursor();
            self.track(t).feedback = cur;
        }
        Self::deadline_after_reports(cx);
    }

    /// PLANS.md §4 / §5.2: at one instant a `report_overdue` comes after the reports, so
    /// the deadline is re-armed (same due time) after any daily report timer is armed.
    fn deadline_after_reports(cx: &mut Cx) {
        if let Some(due) = cx.armed(Timer::Feedback) {
            cx.arm(Timer::Feedback, due);
        }
    }

    /// The series ends when neither `graded` nor `ozone` is active.
    pub(crate) fn feedback_end(&mut self, cx: &mut Cx) {
        if self.graded.level == Lv::None && self.ozone.level == Lv::None {
            self.feedback = None;
            cx.cancel(Timer::Feedback);
        }
    }

    /// A deadline: one `report_overdue` to the office naming the units that sent
    /// nothing since the previous one (PLANS.md §5.2), on `graded` when it is active.
    fn on_deadline(&mut self, cx: &mut Cx) {
        let Some(s) = self.feedback.as_mut() else {
            return;
        };
        let Some(due) = feedback::deadline_due(s, cx, Plan::HeavyPollution, Timer::Feedback) else {
            return;
        };
        let t = if self.graded.level != Lv::None {
            TrackId::Graded
        } else {
            TrackId::Ozone
        };
        let level = self.track(t).level;
        let n = Notice::new(
            Plan::HeavyPollution,
            t.as_str(),
            Kind::ReportOverdue,
            level.as_str(),
        )
        .clause(types::clause("§4.3"))
        .authority(reports::OFFICE);
        let n = feedback::overdue(n, due, cx, &cx.cfg.pollution.office_unit);
        cx.emit(n);
    }

    /// PLANS.md §4: the feeds' periods, in hours.
    fn period(cfg: &Config, f: Feed) -> f64 {
        match f {
            Feed::Aqi => cfg.pollution.aqi_gap_hours,
            Feed::Forecast => cfg.pollution.forecast_stale_hours,
        }
    }

    /// Arms the feed's gap clock; returns the feed and its last arrival when the message
    /// ends a silence (`data_resumed` goes first in this message).
    fn feed_message(&mut self, cx: &mut Cx, f: Feed) -> Option<(Feed, Ts)> {
        let period = Self::period(cx.cfg, f);
        let slot = self.feed(f);
        let (clock, resumed) = Clock::arrive(*slot, cx.now);
        *slot = Some(clock);
        cx.arm(Timer::Gap(f), cx.now + Period::Hours(period).duration());
        resumed.map(|last| (f, last))
    }

    /// Rule 5: the province / ministry floor (§3.3.2, §3.5.1, §3.5.2).
    fn apply_province(&mut self, now: Ts, p: &ProvinceNotice) {
        let h0 = floor_hour(now);
        let level = p.level;
        match (p.action, level) {
            (ProvinceAction::Issue, Some(l)) => {
                self.floor = Some(Floor {
                    level: l,
                    start: p.start.unwrap_or(h0),
                    reference: p.reference.clone(),
                })
            }
            (ProvinceAction::Adjust, Some(l)) => {
                let start = p
                    .start
                    .or(self.floor.as_ref().map(|f| f.start))
                    .unwrap_or(h0);
                self.floor = Some(Floor {
                    level: l,
                    start,
                    reference: p
                        .reference
                        .clone()
                        .or_else(|| self.floor.as_ref().and_then(|f| f.reference.clone())),
                })
            }
            (ProvinceAction::Lift, _) => self.floor = None,
            _ => {}
        }
    }

    /// Evaluates every track at an air message (rules 1–6), then emits, in the order of
    /// PLANS.md §4: `data_resumed`, then graded, ozone, so2.
    fn evaluate(&mut self, cx: &mut Cx, province: bool, resumed: Option<(Feed, Ts)>) {
        let h0 = stamp_of(floor_hour(cx.now));
        self.series.prune(h0);
        // The view of the previous message, brought up to date (series.rs), given back
        // at the end.
        let cache = self
            .series
            .take_view(h0, i64::from(cx.cfg.pollution.horizon_hours));
        let view = cache.view(h0);
        for t in [TrackId::Graded, TrackId::Ozone] {
            if let Some(ep) = self.track(t).episode.as_mut() {
                ep.observe(&view, t);
            }
        }
        let mut out: Vec<Notice> = Vec::new();
        let hz = graded::horizon(&view);
        let floor = self.floor.as_ref();
        let d = graded::decide_graded(&view, &hz, self.graded.level, floor, province);
        self.decide(cx, TrackId::Graded, d, &view, &mut out);
        let d = graded::decide_ozone(&view, &hz, self.ozone.level, province);
        self.decide(cx, TrackId::Ozone, d, &view, &mut out);
        let d = so2::decide_so2(&view, self.so2.level);
        self.decide(cx, TrackId::So2, d, &view, &mut out);
        if let Some((f, last)) = resumed {
            let period = Self::period(cx.cfg, f);
            cx.emit(reports::data_resumed(
                f,
                self.graded.level,
                last,
                period,
                cx.now,
            ));
        }
        self.flush(cx, out);
        self.series.put_back(cache);
    }

    /// Emits buffered notices; a proposal's id becomes its track's pending id.
    fn flush(&mut self, cx: &mut Cx, out: Vec<Notice>) {
        for n in out {
            let prop = (n.kind == Kind::Proposal).then(|| n.track.clone());
            let id = cx.emit(n);
            if let Some(t) = prop.as_deref().and_then(TrackId::parse) {
                self.track(t).decisions.named(id);
            }
        }
    }
}
