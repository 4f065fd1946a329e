//! How the coal track moves: escalation at the message (§4.2.1), the lift and downgrade
//! holds (§4.2.3, §5.3, §5.4), confirmation of a termination, response targets (§4.2.2(5),
//! §5.2.1(2), §5.2.2(1)), beyond level 1 (§5.3), reports (§5.1) and data gaps (PLANS.md §4).
//! Within one message: `data_resumed`, date-skip `data_gap`, the move, proposal, report,
//! `target_missed`, `beyond_level1` (PLANS.md §4).

use chrono::NaiveDate;
use serde_json::json;

use crate::input::{OutputReport, StockReport};
use crate::notice::{Kind, Plan};
use crate::plans::cx::Cx;
use crate::plans::feed::{Clock, Period, Watched};
use crate::plans::feedback;
use crate::time::{fmt_ts, hours, next_local_time, Ts};

use super::data::is_key;
use super::rules::{self, Conds};
use super::text::{self, clause, notice, recipients};
use super::{CoalSupply, Level, Timer};

/// How a termination came about (it changes its clause and reason).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum End<'a> {
    /// The lift hold ended (§4.2.3, §5.4).
    Hold,
    /// The authority confirmed the proposal (§5.4 "决定响应结束").
    Confirmed(&'a str),
    /// `manual none` with nothing else holding (§4.2.3 "谁启动、谁解除").
    Manual,
}

/// A report whose value is checked against a response target after the move.
pub enum Target {
    Output(OutputReport),
    Storage(f64),
}

impl CoalSupply {
    pub(super) fn on_stock(&mut self, cx: &mut Cx, r: &StockReport) {
        if !is_key(&cx.cfg.coal, &r.plant) {
            return; // §4.2.1 counts key power / heating plants only.
        }
        let period = watched(cx, Some(&r.plant)).period;
        let resumed = self.data.stock_feeds.arrive(&r.plant, cx.now);
        cx.arm(Timer::StockGap(r.plant.clone()), cx.now + period.duration());
        self.data.add_stock(r);
        if let Some(last) = resumed {
            let level = self.level_after(cx);
            self.resumed(cx, Some(&r.plant), last, level);
        }
        self.after_message(cx, None);
    }

    pub(super) fn on_output(&mut self, cx: &mut Cx, r: &OutputReport) {
        let period = watched(cx, None).period;
        let (clock, resumed) = Clock::arrive(self.data.output_feed, cx.now);
        self.data.output_feed = Some(clock);
        cx.arm(Timer::OutputGap, cx.now + period.duration());
        let skipped = self.data.add_output(r);
        if resumed.is_some() || !skipped.is_empty() {
            let level = self.level_after(cx);
            if let Some(last) = resumed {
                self.resumed(cx, None, last, level);
            }
            if !skipped.is_empty() {
                self.date_skip(cx, r, &skipped, level);
            }
        }
        self.after_message(cx, Some(Target::Output(r.clone())));
    }

    /// The level after this message's move (data notices come before the move but carry
    /// the level after it, CONTRACT.md "Notices"): a feed message only activates or
    /// escalates.
    fn level_after(&self, cx: &Cx) -> Level {
        let c = rules::conditions(&self.data, &cx.cfg.coal);
        let want = c.level();
        let cmdr = cx.cfg.coal.l1_by_commander;
        match self.level {
            // PLANS.md §5.1: L1 is the commander's; the office director activates L2.
            Level::None if cmdr => want.min(Level::L2),
            Level::None => want,
            Level::L2 if want == Level::L1 && !cmdr => want,
            Level::L1 if !cmdr && self.voided_termination_downgrades(cx, &c) => Level::L2,
            // PLANS.md §5.3: the message that closes the last gap lets a waiting hold move.
            l if self.waiting.lift
                && !self.gap_open()
                && !c.l2()
                && !cx.cfg.coal.require_confirmation
                && (!cmdr || l != Level::L1) =>
            {
                Level::None
            }
            Level::L1
                if self.waiting.downgrade && !self.gap_open() && c.l2() && !c.l1() && !cmdr =>
            {
                Level::L2
            }
            l => l,
        }
    }

    /// PLANS.md §5.1: a termination proposal made at L1, voided because an L2 condition
    /// and no L1 condition holds again, after no L1 condition held for the hold.
    fn voided_termination_downgrades(&self, cx: &Cx, c: &Conds) -> bool {
        self.level == Level::L1
            && self.pending_kind() == Some(Kind::Terminate)
            && c.l2()
            && !c.l1()
            && self
                .l1_clear_since
                .is_some_and(|t| cx.now - t >= hours(cx.cfg.coal.lift_hold_hours))
    }

    pub(super) fn pending_kind(&self) -> Option<Kind> {
        self.decisions.pending.as_ref().map(|p| p.decision.kind)
    }

    /// Everything after a data message or command changed the data: the move, then the
    /// target check, then beyond level 1.
    pub(super) fn after_message(&mut self, cx: &mut Cx, target: Option<Target>) {
        let c = rules::conditions(&self.data, &cx.cfg.coal);
        self.decide(cx, &c);
        self.resume_waiting(cx, &c);
        match target {
            Some(Target::Output(r)) => self.check_output_target(cx, &r),
            Some(Target::Storage(s)) => self.check_storage_target(cx, s),
            None => {}
        }
        self.check_beyond(cx);
    }

    /// §4.2.1 / §5.2: escalation is immediate at the message; then the holds.
    fn decide(&mut self, cx: &mut Cx, c: &Conds) {
        let want = c.level();
        let cmdr = cx.cfg.coal.l1_by_commander;
        match self.level {
            // PLANS.md §5.1: with `l1_by_commander`, L2 at once (the director's
            // authority) and the L1 proposal follows (in `make_move`, before the report).
            Level::None if want > Level::None => {
                let to = if cmdr { want.min(Level::L2) } else { want };
                self.make_move(cx, Kind::Activate, to, c, End::Hold)
            }
            Level::L2 if want == Level::L1 && !cmdr => {
                self.make_move(cx, Kind::Escalate, want, c, End::Hold)
            }
            _ => {}
        }
        if self.level != Level::None {
            self.update_holds(cx, c);
            self.escalation_proposal(cx, c);
        }
    }

    /// §4.2.3 / §5.4 lift hold and §5.3 downgrade hold: start when the conditions stop
    /// holding (at that message's arrival), cancelled silently by a message after which
    /// they hold again; a condition holding again also voids a pending proposal whose
    /// move the rules no longer give (PLANS.md §5.1).
    fn update_holds(&mut self, cx: &mut Cx, c: &Conds) {
        if c.l2() {
            cx.cancel(Timer::LiftHold);
            self.waiting.lift = false;
            if self.pending_kind() == Some(Kind::Terminate) {
                // PLANS.md §5.1: a voided termination leaves the level where the
                // conditions put it.
                let downgrade = self.voided_termination_downgrades(cx, c);
                self.decisions.void(cx, Timer::Reminder);
                if downgrade {
                    self.downgrade_end(cx, c);
                } else if self.level == Level::L1 && !c.l1() {
                    if let Some(t) = self.l1_clear_since {
                        self.downgrade_spent = false;
                        cx.arm(Timer::DowngradeHold, t + hours(cx.cfg.coal.lift_hold_hours));
                    }
                }
            }
        } else {
            // PLANS.md §5.1: a pending downgrade is voided at the message after which no
            // L2 condition holds either; the lift hold decides.
            if self.pending_kind() == Some(Kind::Downgrade) {
                self.decisions.void(cx, Timer::Reminder);
                self.downgrade_spent = true;
            }
            if self.decisions.rejected == Some(Level::L2) {
                self.decisions.rejected = None;
            }
            if self.decisions.pending.is_none()
                && !self.waiting.lift
                && cx.armed(Timer::LiftHold).is_none()
            {
                cx.arm(Timer::LiftHold, Self::now_plus_hold(cx));
            }
        }
        if self.level == Level::L1 {
            if c.l1() {
                cx.cancel(Timer::DowngradeHold);
                self.downgrade_spent = false;
                self.waiting.downgrade = false;
                self.l1_clear_since = None;
                if self.pending_kind() == Some(Kind::Downgrade) {
                    self.decisions.void(cx, Timer::Reminder);
                }
                if self.decisions.rejected == Some(Level::L2) {
                    self.decisions.rejected = None;
                }
            } else {
                self.l1_clear_since.get_or_insert(cx.now);
                if !self.downgrade_spent
                    && !self.waiting.downgrade
                    && self.pending_kind() != Some(Kind::Downgrade)
                    && cx.armed(Timer::DowngradeHold).is_none()
                {
                    cx.arm(Timer::DowngradeHold, Self::now_plus_hold(cx));
                }
            }
        }
    }

    /// PLANS.md §5.1: at L2 with an L1 condition, the escalation is proposed to the
    /// commander; when the L1 condition clears first, the proposal is voided and a
    /// rejected L1 may be proposed again.
    fn escalation_proposal(&mut self, cx: &mut Cx, c: &Conds) {
        if !cx.cfg.coal.l1_by_commander || self.level != Level::L2 {
            return;
        }
        if c.l1() {
            if self.decisions.wants(Level::L1, |p| p.level) {
                self.propose(cx, Kind::Escalate, Level::L1, true);
            }
        } else {
            if self.pending_kind() == Some(Kind::Escalate) {
                self.decisions.void(cx, Timer::Reminder);
            }
            if self.decisions.rejected == Some(Level::L1) {
                self.decisions.rejected = None;
            }
        }
    }

    /// A proposal (PLANS.md §5.1 to the commander, with one reminder; or §5.4 a
    /// termination to confirm, without one).
    pub(super) fn propose(&mut self, cx: &mut Cx, kind: Kind, to: Level, commander: bool) {
        let hold = cx.cfg.coal.lift_hold_hours;
        let from = self.level;
        let (sections, authority, reason) = match kind {
            Kind::Terminate => (
                "§4.2.3, §5.4",
                if commander {
                    text::COMMANDER
                } else {
                    text::authority(from)
                },
                format!(
                    "预警条件均已消除满{hold}小时,提请{}决定{}响应结束、解除预警",
                    if commander {
                        text::COMMANDER
                    } else {
                        text::authority(from)
                    },
                    from.name_zh()
                ),
            ),
            Kind::Downgrade => (
                "§5.3, §5.4",
                text::COMMANDER,
                format!(
                    "一级预警条件已消除满{hold}小时,仍符合二级预警条件,提请指挥长决定一级响应调整为二级响应"
                ),
            ),
            _ => (
                "§4.2.1, §5.2.2",
                text::COMMANDER,
                format!(
                    "符合一级预警条件:{},提请指挥长宣布启动一级响应",
                    rules::conditions(&self.data, &cx.cfg.coal).text()
                ),
            ),
        };
        let mut ev = json!({"proposed": kind.as_str(), "current": from.as_str(),
            "status": text::status(&self.data, cx.cfg)});
        if kind == Kind::Terminate {
            ev["hold_hours"] = json!(hold);
            ev["hold_started"] = json!(fmt_ts(cx.now - hours(hold)));
        }
        if commander {
            ev["proposed_kind"] = json!(kind.as_str());
            ev["level"] = json!(to.as_str());
            ev["commander"] = json!(true);
        }
        let n = notice(Kind::Proposal, to)
            .clause(clause(sections))
            .authority(authority)
            .reason(reason)
            .evidence(ev)
            .recipients(recipients(cx.cfg, &[]));
        let d = super::Proposed {
            kind,
            level: to,
            commander,
        };
        let reminder = commander.then_some(cx.cfg.coal.decision_reminder_hours);
        self.decisions.open(cx, d, Timer::Reminder, reminder);
        let id = cx.emit(n);
        self.decisions.named(id);
    }

    /// PLANS.md §5.1: one reminder when a commander's proposal is still pending.
    pub(super) fn remind(&mut self, cx: &mut Cx) {
        let Some(p) = self.decisions.pending.clone() else {
            return;
        };
        let n = notice(Kind::Reminder, p.decision.level)
            .clause(clause("§5.2.2, §5.4"))
            .authority(text::COMMANDER)
            .reason(format!(
                "决策提醒:{}提请指挥长决定的{}尚未决定,请指挥长决定",
                crate::time::time_zh(p.made),
                match p.decision.kind {
                    Kind::Terminate => "解除预警和响应".to_string(),
                    k => format!("{}至{}响应", k.name_zh(), p.decision.level.name_zh()),
                }
            ))
            .recipients(recipients(cx.cfg, &[]));
        cx.emit(p.reminder(n, p.decision.kind));
    }

    /// PLANS.md §5.3: whether a silence gap of a key plant's stock or of the output is
    /// open (a date-skip gap does not count).
    fn gap_open(&self) -> bool {
        self.data.output_feed.is_some_and(|f| f.silent) || self.data.stock_feeds.any_marked()
    }

    /// PLANS.md §5.3: a hold end waits while a gap is open.
    fn must_wait(&self, cx: &Cx) -> bool {
        cx.cfg.coal.hold_waits_for_data && self.gap_open()
    }

    /// PLANS.md §5.3: when the last open gap closes, a hold whose end has passed moves if
    /// the conditions still allow it.
    fn resume_waiting(&mut self, cx: &mut Cx, c: &Conds) {
        if self.gap_open() {
            return;
        }
        if std::mem::take(&mut self.waiting.downgrade) && self.level == Level::L1 && !c.l1() {
            self.downgrade_end(cx, c);
        }
        if std::mem::take(&mut self.waiting.lift) && self.level != Level::None && !c.l2() {
            self.lift_end(cx, c);
        }
    }

    /// Follow-up evidence of the report-back series (PLANS.md §5.2).
    fn feedback_evidence(&mut self, cx: &Cx, kind: Kind, ev: &mut serde_json::Value) {
        let Some(s) = &self.feedback else { return };
        match kind {
            Kind::ReportFollowup => s.followup(cx.cfg, &mut self.feedback_cursor, ev),
            Kind::ReportFinal => {
                // CONTRACT.md: final reports gain the feedback too; PLANS.md §5.2 the table.
                ev["statistics"] =
                    json!({"units": s.statistics(cx.cfg, Plan::CoalSupply, &self.feedback_cursor)});
                s.followup(cx.cfg, &mut self.feedback_cursor, ev);
            }
            _ => {}
        }
    }

    /// PLANS.md §5.2: a deadline: one `report_overdue` to the office naming the units
    /// that sent nothing since the previous one.
    pub(super) fn on_deadline(&mut self, cx: &mut Cx) {
        let Some(s) = self.feedback.as_mut() else {
            return;
        };
        let Some(due) = feedback::deadline_due(s, cx, Plan::CoalSupply, Timer::Feedback) else {
            return;
        };
        let n = notice(Kind::ReportOverdue, self.level)
            .clause(clause("§5.1"))
            .authority(text::OFFICE);
        let n = feedback::overdue(n, due, cx, &cx.cfg.coal.office_unit);
        cx.emit(n);
    }

    /// One of the four moves, then its report (§5.1): first at activation, follow-up at a
    /// level change, final at termination.
    fn make_move(&mut self, cx: &mut Cx, kind: Kind, to: Level, c: &Conds, end: End) {
        let from = self.level;
        debug_assert!(
            crate::plans::goes_the_right_way(kind, &from, &to),
            "coal {kind:?} from {from:?} to {to:?}"
        );
        let n = self.move_notice(cx, kind, (from, to), c, end);
        self.log_move(cx, kind, (from, to), &n.authority);
        cx.emit(n);
        // A pending proposal not behind this move is void (an approved one was taken).
        self.decisions.void(cx, Timer::Reminder);
        self.decisions.rejected = None;
        self.level = to;
        if to != Level::L1 {
            self.l1_clear_since = None;
            self.waiting.downgrade = false;
        }
        if kind != Kind::Terminate {
            // PLANS.md §5.1 / §4: the move, then the proposal, then the report.
            self.escalation_proposal(cx, c);
        }
        match kind {
            Kind::Activate => {
                cx.arm(
                    Timer::DailyReport,
                    next_local_time(cx.now, cx.cfg.report_time),
                );
                self.emit_report(cx, Kind::ReportFirst, to, c);
                // PLANS.md §5.2: the report-back series starts with the plan.
                if feedback::enabled(cx.cfg, Plan::CoalSupply) {
                    let s = feedback::Series::begin(cx.now);
                    self.feedback_cursor = s.cursor();
                    self.feedback = Some(s);
                    cx.arm(Timer::Feedback, feedback::first_deadline(cx.cfg, cx.now));
                }
            }
            Kind::Terminate => {
                // A terminated track's timers do not fire (PLANS.md §4).
                cx.cancel(Timer::LiftHold);
                cx.cancel(Timer::DowngradeHold);
                cx.cancel(Timer::DailyReport);
                cx.cancel(Timer::Feedback);
                self.cancel_gaps_due_now(cx);
                self.emit_report(cx, Kind::ReportFinal, from, c);
                self.feedback = None;
                self.waiting = super::Waiting::default();
                self.downgrade_spent = false;
                self.log.clear();
                self.last_report = None;
            }
            _ => {
                cx.cancel(Timer::DowngradeHold);
                self.downgrade_spent = false;
                self.emit_report(cx, Kind::ReportFollowup, to, c);
            }
        }
    }

    /// The episode's log (what the reports tell, §5.1): the move and who decided it; at a
    /// start or change of response, the units told their tasks and the 24-hour duty.
    fn log_move(&mut self, cx: &Cx, kind: Kind, (from, to): (Level, Level), authority: &str) {
        self.log.push(format!(
            "{} {}{}({})",
            crate::time::time_zh(cx.now),
            kind.name_zh(),
            if kind == Kind::Terminate {
                format!("{}响应", from.name_zh())
            } else {
                format!("{}响应", to.name_zh())
            },
            authority
        ));
        if kind != Kind::Terminate {
            self.log.push(format!(
                "通知{}个成员单位落实{}重点工作,市指挥部办公室和各成员单位实行24小时值班(§5.2.1(1))",
                text::units(&text::tasks(cx.cfg, to)).len(),
                if to == Level::L1 {
                    "§5.2.1、§5.2.2"
                } else {
                    "§5.2.1"
                }
            ));
        }
    }

    /// Data-gap timers due at this very instant belong to a track that terminated earlier
    /// at it: they must not fire (PLANS.md §4). Later ones keep watching the feeds.
    fn cancel_gaps_due_now(&mut self, cx: &mut Cx) {
        let mut feeds = vec![Timer::OutputGap];
        feeds.extend(
            self.data
                .stock_feeds
                .keys()
                .map(|p| Timer::StockGap(p.clone())),
        );
        for t in feeds {
            if cx.armed(t.clone()) == Some(cx.now) {
                cx.cancel(t);
            }
        }
    }

    fn move_notice(
        &self,
        cx: &Cx,
        kind: Kind,
        (from, to): (Level, Level),
        c: &Conds,
        end: End,
    ) -> crate::notice::Notice {
        let (sections, reason) = move_basis(cx, kind, (from, to), c, end);
        // §5.2.1 / §5.2.2 / §5.4: who starts, announces or ends the response.
        let auth = text::authority(if kind.is_move() && to > from {
            to
        } else {
            from
        });
        let (measures, rcpt) =
            text::measures(cx.cfg, if kind == Kind::Terminate { from } else { to });
        let plants: Vec<&str> =
            c.0.iter()
                .filter_map(|x| x.evidence["plant"].as_str())
                .collect();
        let mut ev = json!({"conditions": c.evidence(), "plants": plants,
            "status": text::status(&self.data, cx.cfg)});
        if kind == Kind::Activate || kind == Kind::Escalate {
            ev["duty"] = json!("市指挥部办公室和各成员单位实行24小时值班制度(§5.2.1(1))");
        }
        let measures = if kind == Kind::Terminate {
            Vec::new()
        } else {
            measures
        };
        let mut n = notice(kind, to)
            .previous(from.as_str())
            .clause(clause(sections))
            .authority(auth)
            .reason(reason)
            .evidence(ev)
            .measures(measures)
            .recipients(rcpt);
        n.proposal_id = self.approved.clone();
        n
    }

    fn emit_report(&mut self, cx: &mut Cx, kind: Kind, level: Level, c: &Conds) {
        let min_days = self.data.stocks.values().map(|s| s.days).reduce(f64::min);
        let trend = match self.last_report {
            _ if kind == Kind::ReportFinal => "供需基本恢复正常",
            None => "供应偏紧,持续监测",
            Some((l, _)) if level > l => "态势加剧,供应紧张程度上升",
            Some((l, _)) if level < l => "态势缓和,供应紧张程度下降",
            Some((_, Some(prev))) if min_days.is_some_and(|m| m < prev) => "库存下降,供需趋紧",
            Some((_, Some(prev))) if min_days.is_some_and(|m| m > prev) => "库存回升,供需趋缓",
            _ => "基本平稳",
        };
        self.last_report = Some((level, min_days));
        let r = text::Report {
            kind,
            level,
            now: cx.now,
            place: &cx.region.name,
            conds: c,
            trend,
            measures_taken: &self.log,
        };
        let mut n = text::report(&r, &self.data, cx.cfg);
        self.feedback_evidence(cx, kind, &mut n.evidence);
        cx.emit(n);
    }

    pub(super) fn on_daily_report(&mut self, cx: &mut Cx) {
        if self.level == Level::None {
            return;
        }
        cx.arm(
            Timer::DailyReport,
            next_local_time(cx.now, cx.cfg.report_time),
        );
        let c = rules::conditions(&self.data, &cx.cfg.coal);
        self.emit_report(cx, Kind::ReportFollowup, self.level, &c);
    }

    /// §4.2.3 / §5.4: the lift hold ended with no L2 condition (PLANS.md §5.3: during a
    /// silence gap it waits for the data).
    pub(super) fn on_lift_hold(&mut self, cx: &mut Cx) {
        let c = rules::conditions(&self.data, &cx.cfg.coal);
        if self.level == Level::None || c.l2() {
            return;
        }
        if self.must_wait(cx) {
            self.waiting.lift = true;
            return;
        }
        self.lift_end(cx, &c);
        self.check_beyond(cx);
    }

    /// The lift hold's move: terminate; or propose it — to the commander from L1 with
    /// `l1_by_commander` (PLANS.md §5.1; with `require_confirmation` as well this one
    /// proposal is the confirmation), else to the authority with `require_confirmation`.
    fn lift_end(&mut self, cx: &mut Cx, c: &Conds) {
        let commander = cx.cfg.coal.l1_by_commander && self.level == Level::L1;
        if commander || cx.cfg.coal.require_confirmation {
            self.propose(cx, Kind::Terminate, Level::None, commander);
        } else {
            self.make_move(cx, Kind::Terminate, Level::None, c, End::Hold);
        }
    }

    /// §5.3: at L1 the downgrade hold ended: down to L2 when an L2 condition holds; else
    /// nothing (the lift hold decides). PLANS.md §5.3: during a gap it waits.
    pub(super) fn on_downgrade_hold(&mut self, cx: &mut Cx) {
        let c = rules::conditions(&self.data, &cx.cfg.coal);
        if self.level != Level::L1 || c.l1() {
            return;
        }
        if self.must_wait(cx) {
            self.waiting.downgrade = true;
            return;
        }
        self.downgrade_end(cx, &c);
        self.check_beyond(cx);
    }

    /// The downgrade hold's move: L1 -> L2 (PLANS.md §5.1: proposed to the commander).
    fn downgrade_end(&mut self, cx: &mut Cx, c: &Conds) {
        if !c.l2() {
            self.downgrade_spent = true;
        } else if cx.cfg.coal.l1_by_commander {
            if self.decisions.wants(Level::L2, |p| p.level) {
                self.propose(cx, Kind::Downgrade, Level::L2, true);
            }
        } else {
            self.make_move(cx, Kind::Downgrade, Level::L2, c, End::Hold);
        }
    }

    /// `confirm` or `approve` naming the pending proposal makes its move now (§5.4,
    /// PLANS.md §5.1); anything else is refused and changes nothing.
    pub(super) fn on_confirm(&mut self, cx: &mut Cx, id: &str, by: &str) -> Result<(), String> {
        let Some(p) = self.decisions.take(cx, id, Timer::Reminder) else {
            return Err(format!("{id} is not a pending coal_supply proposal"));
        };
        let c = rules::conditions(&self.data, &cx.cfg.coal);
        let d = p.decision;
        if !by.is_empty() {
            let what = match d.kind {
                Kind::Terminate => "确认解除".to_string(),
                k => format!("决定{}{}响应", k.name_zh(), d.level.name_zh()),
            };
            self.log
                .push(format!("{} {by}{what}", crate::time::time_zh(cx.now)));
        }
        let end = End::Confirmed(by);
        self.approved = d.commander.then(|| id.to_string());
        match d.kind {
            Kind::Terminate => self.make_move(cx, Kind::Terminate, Level::None, &c, end),
            k => {
                self.make_move(cx, k, d.level, &c, end);
                self.update_holds(cx, &c);
            }
        }
        self.approved = None;
        self.check_beyond(cx);
        Ok(())
    }

    /// `reject` of the pending proposal: a termination keeps the response and a new lift
    /// hold starts now (§5.4); an escalation or downgrade is void and its level is not
    /// proposed again until the rules stop giving it (PLANS.md §5.1).
    pub(super) fn on_reject(&mut self, cx: &mut Cx, id: &str) -> Result<(), String> {
        let Some(p) = self.decisions.reject(cx, id, Timer::Reminder, |d| d.level) else {
            return Err(format!("{id} is not a pending coal_supply proposal"));
        };
        match p.decision.kind {
            Kind::Terminate => {
                self.decisions.rejected = None;
                cx.arm(Timer::LiftHold, Self::now_plus_hold(cx));
            }
            Kind::Downgrade => self.downgrade_spent = true,
            _ => {}
        }
        Ok(())
    }

    /// `manual none` while a manual level was in force (§4.2.3 "谁启动、谁解除"): terminate
    /// at once when nothing else holds; otherwise follow the remaining conditions.
    pub(super) fn manual_none(&mut self, cx: &mut Cx, reason: &str, by: &str) {
        let c = rules::conditions(&self.data, &cx.cfg.coal);
        if self.level != Level::None && !c.l2() {
            self.log.push(format!(
                "{} 市能源局解除人工预警({reason}{})",
                crate::time::time_zh(cx.now),
                if by.is_empty() {
                    String::new()
                } else {
                    format!(",{by}")
                }
            ));
            self.make_move(cx, Kind::Terminate, Level::None, &c, End::Manual);
            self.check_beyond(cx);
        } else {
            self.after_message(cx, None);
        }
    }

    /// §5.2.1(2) at L2 (the year's quota) and §5.2.2(1) at L1 (510,000 t), at the level
    /// after this message's move; one notice per report message, corrections included.
    fn check_output_target(&mut self, cx: &mut Cx, r: &OutputReport) {
        let coal = &cx.cfg.coal;
        let (target, sec) = match self.level {
            Level::L1 => (Some(coal.l1_output_target_t), "§5.2.2(1)"),
            Level::L2 => (rules::quota(coal, r.date), "§5.2.1(2)"),
            Level::None => (None, ""),
        };
        let missed = target.is_some_and(|t| r.output_t < t);
        self.data
            .record_l1(r.date, self.level == Level::L1 && missed);
        let Some(t) = target.filter(|_| missed) else {
            return;
        };
        let n = notice(Kind::TargetMissed, self.level)
            .clause(clause(sec))
            .authority("市能源局")
            .reason(format!(
                "{}响应目标未达:{}全市煤炭日产量{}吨,低于{}吨",
                self.level.name_zh(),
                crate::time::date_zh(r.date),
                r.output_t,
                t
            ))
            .evidence(json!({"date": r.date.to_string(), "output_t": r.output_t,
                "target_t": t, "shortfall_t": t - r.output_t}))
            .recipients(recipients(cx.cfg, &["市能源局"]));
        cx.emit(n);
    }

    /// §4.2.2(5): while any warning is active, storage at washing plants and loading
    /// stations not below 5,000,000 t (the lower bound of 500–750万吨).
    fn check_storage_target(&mut self, cx: &mut Cx, s: f64) {
        let t = cx.cfg.coal.storage_target_t;
        if self.level == Level::None || s >= t {
            return;
        }
        let n = notice(Kind::TargetMissed, self.level)
            .clause(clause("§4.2.2(5)"))
            .authority("市能源局")
            .reason(format!(
                "洗(选)煤厂、集装站煤炭库存{s}吨,低于{t}吨(不低于500—750万吨)"
            ))
            .evidence(json!({"storage_t": s, "target_t": t, "shortfall_t": t - s}))
            .recipients(recipients(cx.cfg, &["市能源局"]));
        cx.emit(n);
    }

    /// §5.3: one `beyond_level1` when the condition starts to hold, again only after it
    /// stopped holding.
    pub(super) fn check_beyond(&mut self, cx: &mut Cx) {
        let holds = self.level == Level::L1 && rules::beyond_holds(&self.data, &cx.cfg.coal);
        let ev = (holds && !self.beyond)
            .then(|| rules::beyond(&self.data, &cx.cfg.coal))
            .flatten();
        if let (Some(ev), false) = (ev, self.beyond) {
            let n = notice(Kind::BeyondLevel1, self.level)
                .clause(clause("§5.3"))
                .authority("指挥长(市长)向市应急救援总指挥部报告")
                .reason(format!(
                    "发生超出一级响应条件的情况({}),市指挥部办公室向指挥长报告,指挥长向市应急救援总指挥部报告,在做好一级响应重点工作基础上配合落实上级指挥部的指导意见",
                    beyond_zh(&ev)
                ))
                .evidence(serde_json::to_value(&ev).unwrap_or_default())
                .recipients(recipients(cx.cfg, &[text::HEADQUARTERS]));
            cx.emit(n);
        }
        self.beyond = holds;
    }

    /// PLANS.md §4: `data_resumed` with the next message of a feed that went silent.
    fn resumed(&mut self, cx: &mut Cx, plant: Option<&str>, last: Ts, level: Level) {
        let n = notice(Kind::DataResumed, level)
            .clause(clause("§4.1"))
            .authority(text::OFFICE)
            .reason(format!(
                "{}数据恢复报送(上次{})",
                feed_zh(plant),
                crate::time::time_zh(last)
            ))
            .evidence(watched(cx, plant).resumed_evidence(last, cx.now))
            .recipients(recipients(cx.cfg, &[]));
        cx.emit(n);
    }

    /// PLANS.md §4: an output date more than one day after the latest date reported.
    fn date_skip(&mut self, cx: &mut Cx, r: &OutputReport, skipped: &[NaiveDate], level: Level) {
        let shown: Vec<String> = skipped.iter().take(31).map(|d| d.to_string()).collect();
        let n = notice(Kind::DataGap, level)
            .clause(clause("§4.1"))
            .authority(text::OFFICE)
            .reason(format!(
                "全市煤炭日产量缺报{}天({}至{}),连续天数计算中断",
                skipped.len(),
                crate::time::date_zh(skipped[0]),
                crate::time::date_zh(skipped[skipped.len() - 1])
            ))
            .evidence(json!({"feed": "coal/output", "date": r.date.to_string(),
                "missing_dates": shown, "missing_count": skipped.len()}))
            .recipients(recipients(cx.cfg, &[]));
        cx.emit(n);
    }

    /// PLANS.md §4: a feed silent for its period (`data_gap` once per silence).
    pub(super) fn on_gap(&mut self, cx: &mut Cx, plant: Option<String>) {
        let plant = plant.as_deref();
        // The timer is armed only by a message of the feed, which starts its clock.
        let last = match plant {
            Some(p) => self.data.stock_feeds.fall_silent(p),
            None => self.data.output_feed.as_mut().map(Clock::fall_silent),
        };
        let Some(last) = last else { return };
        let w = watched(cx, plant);
        let n = notice(Kind::DataGap, self.level)
            .clause(clause("§4.1"))
            .authority(text::OFFICE)
            .reason(format!(
                "{}自{}起{}天未报送",
                feed_zh(plant),
                crate::time::time_zh(last),
                gap_days(cx, plant)
            ))
            .evidence(w.gap_evidence(last))
            .recipients(recipients(cx.cfg, &[]));
        cx.emit(n);
    }
}

fn beyond_zh(ev: &rules::Beyond) -> String {
    let mut parts = Vec::new();
    for p in &ev.plants_below {
        match p {
            rules::Below::Plant { plant, stock_days } => {
                parts.push(format!("重点企业{plant}库存{stock_days:.2}天"))
            }
            rules::Below::Aggregate { stock_days, .. } => {
                parts.push(format!("重点企业合计库存{stock_days:.2}天"))
            }
        }
    }
    if !parts.is_empty() {
        // The limit as the evidence writes it ("7.0"), as the text always had it.
        parts = vec![format!(
            "{},低于{}天",
            parts.join("、"),
            serde_json::Value::from(ev.stock_days_limit)
        )];
    }
    let dates = ev.l1_target_missed_dates.len();
    if dates > 0 {
        parts.push(format!("全市煤炭日产量连续{dates}天低于一级响应目标"));
    }
    parts.join(";")
}

/// The clause sections and the Chinese reason of a move.
fn move_basis(
    cx: &Cx,
    kind: Kind,
    (from, to): (Level, Level),
    c: &Conds,
    end: End,
) -> (&'static str, String) {
    let hold = cx.cfg.coal.lift_hold_hours;
    let (f, t) = (from.name_zh(), to.name_zh());
    match (kind, end) {
        // §4.2.1 the warning, §5.2.1 / §5.2.2 the response it opens.
        (Kind::Activate | Kind::Escalate, _) => (
            if to == Level::L1 {
                "§4.2.1, §5.2.2"
            } else {
                "§4.2.1, §5.2.1"
            },
            format!(
                "符合预警条件:{},{}{t}预警和{t}应急响应",
                c.text(),
                if kind == Kind::Activate {
                    "启动"
                } else {
                    "升级为"
                }
            ),
        ),
        // §5.3 响应调整 (PLANS.md downgrade hold).
        (Kind::Downgrade, _) => (
            "§5.3, §4.2.3",
            format!(
                "一级预警条件已消除满{hold}小时,仍{},一级响应调整为二级响应",
                c.text()
            ),
        ),
        // §4.2.3 谁启动、谁解除.
        (_, End::Manual) => (
            "§4.2.3",
            format!(
                "市能源局解除人工预警(谁启动、谁解除),且无其他预警条件,{f}预警立即解除,{f}响应结束"
            ),
        ),
        // §5.4 决定响应结束.
        (_, End::Confirmed(by)) => (
            "§4.2.3, §5.4",
            format!(
                "预警条件均已消除满{hold}小时,经{}确认,{f}预警解除,{f}响应结束",
                if by.is_empty() {
                    text::authority(from)
                } else {
                    by
                }
            ),
        ),
        (_, End::Hold) => (
            "§4.2.3, §5.4",
            format!("预警条件均已消除满{hold}小时,{f}预警解除,{f}响应结束"),
        ),
    }
}

/// PLANS.md §4: a key plant's stock feed (`coal.stock_gap_days`) or the output feed
/// (`coal.output_gap_days`); its name is the topic suffix (the plant is in
/// `evidence.plant`).
fn watched<'a>(cx: &Cx, plant: Option<&'a str>) -> Watched<'a> {
    Watched {
        feed: if plant.is_some() {
            "coal/stock"
        } else {
            "coal/output"
        },
        plant,
        period: Period::Days(gap_days(cx, plant)),
    }
}

fn gap_days(cx: &Cx, plant: Option<&str>) -> f64 {
    if plant.is_some() {
        cx.cfg.coal.stock_gap_days
    } else {
        cx.cfg.coal.output_gap_days
    }
}

fn feed_zh(plant: Option<&str>) -> String {
    match plant {
        Some(p) => format!("重点企业{p}煤炭库存"),
        None => "全市煤炭日产量".to_string(),
    }
}
