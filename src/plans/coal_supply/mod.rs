//! Coal-supply plan — 朔州市煤炭保供应急预案 (朔政办发〔2023〕33号), PLANS.md §1.
//!
//! One track, `supply`, with levels `L2` (二级) and `L1` (一级). Files:
//! - `data.rs`: the latest data the rules read, and the watched feeds (PLANS.md §4);
//! - `rules.rs`: the warning conditions of §4.2.1 and the beyond-level-1 condition (§5.3);
//! - `text.rs`: clauses, authorities, member-unit tasks, recipients, reports (§5.1);
//! - `flow.rs`: moves, holds (§4.2.3, §5.4), proposals, targets, data gaps.

mod data;
mod flow;
mod rules;
#[cfg(test)]
mod tests;
pub mod text;

use serde::{Deserialize, Serialize};

use crate::config::{Config, RegionConfig};
use crate::input::{Command, Input, ManualLevel};
use crate::plans::cx::Cx;
use crate::plans::feedback;
use crate::plans::proposal::Decisions;
use crate::time::{hours, Ts};

pub use text::{default_tasks, EVERY_UNIT};

/// The plan's only track.
pub const TRACK: &str = "supply";

pub use crate::levels::CoalLevel as Level;

/// Timers of this plan.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Timer {
    /// §4.2.3 / §5.4: no L2 condition has held for `lift_hold_hours`.
    LiftHold,
    /// §5.3: at L1, no L1 condition has held for `lift_hold_hours`.
    DowngradeHold,
    /// §5.1 daily follow-up report at `report_time`.
    DailyReport,
    /// PLANS.md §4: the output feed is silent for `output_gap_days`.
    OutputGap,
    /// PLANS.md §4: a key plant's stock feed is silent for `stock_gap_days`.
    StockGap(String),
    /// PLANS.md §5.1: a commander's proposal still pending after
    /// `decision_reminder_hours`.
    Reminder,
    /// PLANS.md §5.2: a report-back deadline (`feedback_time`).
    Feedback,
}

impl Timer {
    pub fn describe(&self) -> String {
        match self {
            Timer::LiftHold => "lift hold ends (terminate)".into(),
            Timer::DowngradeHold => "downgrade hold ends".into(),
            Timer::DailyReport => "daily follow-up report".into(),
            Timer::OutputGap => "output feed silent (data gap)".into(),
            Timer::StockGap(p) => format!("stock feed of {p} silent (data gap)"),
            Timer::Reminder => "decision reminder".into(),
            Timer::Feedback => "report-back deadline".into(),
        }
    }
}

/// State of the plan in one region.
/// Snapshots taken before a field existed restore with its default.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct CoalSupply {
    data: data::Data,
    level: Level,
    /// Moves and measures of the current episode ("已经采取的措施", §5.1).
    log: Vec<String>,
    /// The pending proposal (§5.4 `require_confirmation`, PLANS.md §5.1 the commander's
    /// L1 decisions) and a rejected level: the life cycle shared with pollution rule 6.
    decisions: Decisions<Proposed, Level>,
    /// At L1: since when no L1 condition has held (PLANS.md §5.1 voided termination).
    l1_clear_since: Option<Ts>,
    /// PLANS.md §5.3: holds whose end passed during a silence gap, waiting for the data.
    waiting: Waiting,
    /// PLANS.md §5.2: the report-back series while the plan is active.
    feedback: Option<feedback::Series>,
    feedback_cursor: feedback::Cursor,
    /// While a commander's proposal is being carried out: its id, for the move notice.
    #[serde(skip)]
    approved: Option<String>,
    /// At L1: the downgrade hold ended while no L2 condition held (the lift hold decides).
    downgrade_spent: bool,
    /// Whether the beyond-level-1 condition held after the last evaluation (§5.3).
    beyond: bool,
    /// Level and lowest stock days at the last report, for the trend (发展趋势).
    last_report: Option<(Level, Option<f64>)>,
}

/// What a pending coal proposal asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposed {
    /// `Escalate` (to L1), `Downgrade` (to L2) or `Terminate`.
    pub kind: crate::notice::Kind,
    pub level: Level,
    /// A PLANS.md §5.1 proposal to the commander (it has a reminder).
    pub commander: bool,
}

/// PLANS.md §5.3: hold ends that wait for data.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Waiting {
    pub lift: bool,
    pub downgrade: bool,
}

impl CoalSupply {
    pub fn new(_cfg: &Config, _region: &RegionConfig) -> Self {
        Self::default()
    }

    /// The current level (`none` when idle).
    pub fn level(&self) -> Level {
        self.level
    }

    /// The id of the proposal waiting for a decision, if any (the console lists it).
    pub fn pending_proposal(&self) -> Option<&str> {
        self.decisions.pending.as_ref().map(|p| p.id.as_str())
    }

    /// Handles one message of this plan; `Err(reason)` refuses it (and changes nothing).
    pub fn on_input(&mut self, cx: &mut Cx, input: &Input) -> Result<(), String> {
        match input {
            Input::CoalStock(r) => self.on_stock(cx, r),
            Input::CoalOutput(r) => self.on_output(cx, r),
            Input::CoalPrice(r) => {
                self.data.add_price(&cx.cfg.coal, r);
                self.after_message(cx, None);
            }
            Input::CoalStorage(r) => {
                self.data.storage = Some((r.ts, r.storage_t));
                self.after_message(cx, Some(flow::Target::Storage(r.storage_t)));
            }
            Input::Cmd(Command::Manual { level, reason, by }) => {
                self.on_manual(cx, *level, reason, by)
            }
            Input::Cmd(Command::Confirm { proposal_id, by })
            | Input::Cmd(Command::Approve { proposal_id, by }) => {
                self.on_confirm(cx, proposal_id, by)?
            }
            Input::Cmd(Command::Reject { proposal_id, .. }) => self.on_reject(cx, proposal_id)?,
            Input::Cmd(Command::Report(r)) => {
                // PLANS.md §5.2: only while the plan is active; never moves the track.
                let Some(s) = self.feedback.as_mut() else {
                    return Err(format!(
                        "coal_supply has no report-back deadlines running in region {} (no coal warning is active)",
                        cx.region.id
                    ));
                };
                s.add(cx.now, r);
            }
            _ => {}
        }
        Ok(())
    }

    pub fn on_timer(&mut self, cx: &mut Cx, timer: Timer) {
        match timer {
            Timer::LiftHold => self.on_lift_hold(cx),
            Timer::DowngradeHold => self.on_downgrade_hold(cx),
            Timer::DailyReport => self.on_daily_report(cx),
            Timer::OutputGap => self.on_gap(cx, None),
            Timer::StockGap(p) => self.on_gap(cx, Some(p)),
            Timer::Reminder => self.remind(cx),
            Timer::Feedback => self.on_deadline(cx),
        }
    }

    fn on_manual(&mut self, cx: &mut Cx, level: ManualLevel, reason: &str, by: &str) {
        let l = match level {
            ManualLevel::L2 => Level::L2,
            ManualLevel::L1 => Level::L1,
            ManualLevel::None => {
                if self.data.manual.is_some() {
                    self.data.manual = None;
                    self.manual_none(cx, reason, by);
                }
                return;
            }
        };
        self.data.manual = Some(l);
        self.log.push(format!(
            "{} 市能源局人工发布{}预警({reason}{})",
            crate::time::time_zh(cx.now),
            l.name_zh(),
            if by.is_empty() {
                String::new()
            } else {
                format!(",{by}")
            }
        ));
        self.after_message(cx, None);
    }

    pub(crate) fn now_plus_hold(cx: &Cx) -> Ts {
        cx.now + hours(cx.cfg.coal.lift_hold_hours)
    }
}
