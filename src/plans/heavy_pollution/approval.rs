//! Rule 6 (approval, §3.3.2 "重污染天气预警信息发布(调整、解除)审批表") and the moves
//! themselves (notice, measures, reports, episode bookkeeping).

use serde_json::{json, Value};

use crate::config::Config;
use crate::notice::{Kind, Notice, Plan};
use crate::plans::cx::Cx;
use crate::time::{floor_hour, fmt_ts, next_local_time};

use super::graded::lead_hours;
use super::measures;
use super::reports::{self, Episode, OFFICE};
use super::series::{stamp_of, ts_of, View};
use super::types::{clause, Decision, TrackId};
use super::{HeavyPollution, Timer};

/// Who receives warnings (§3.3.2 "预警信息发布对象"), plus contacts subscribed to the plan.
fn recipients(cfg: &Config) -> Vec<String> {
    let mut r: Vec<String> = [
        "市政府有关部门",
        "各县(市、区)人民政府",
        "朔州经济开发区管委会",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    r.extend(
        cfg.contacts
            .iter()
            .filter(|c| c.plans.contains(&Plan::HeavyPollution))
            .map(|c| c.id.clone()),
    );
    r
}

fn set(ev: &mut Value, key: &str, v: Value) {
    if let Value::Object(m) = ev {
        m.insert(key.to_string(), v);
    }
}

impl HeavyPollution {
    /// Applies a track's rule outcome: at once, or as a proposal under rule 6.
    pub(super) fn decide(
        &mut self,
        cx: &mut Cx,
        t: TrackId,
        d: Option<Decision>,
        view: &View,
        out: &mut Vec<Notice>,
    ) {
        let needs_approval = cx.cfg.pollution.require_approval && t != TrackId::So2;
        match d {
            Some(d) if !needs_approval || d.province => {
                // Province-triggered moves skip approval (rule 6).
                self.do_move(cx, t, d, view, out, None)
            }
            Some(d) => self.propose(cx, t, d, out),
            None => {
                // No move: the pending proposal is voided silently; a rejected level may
                // be proposed again (rule 6).
                self.track(t).decisions.no_move(cx, Timer::Reminder(t));
            }
        }
    }

    fn void(&mut self, cx: &mut Cx, t: TrackId) {
        self.track(t).decisions.void(cx, Timer::Reminder(t));
    }

    /// Rule 6: one pending proposal per track; the same level proposes nothing new, another
    /// level supersedes it; a rejected level is not proposed again.
    fn propose(&mut self, cx: &mut Cx, t: TrackId, d: Decision, out: &mut Vec<Notice>) {
        if !self.track(t).decisions.wants(d.level, |p| p.level) {
            return;
        }
        let mut n = Notice::new(
            Plan::HeavyPollution,
            t.as_str(),
            Kind::Proposal,
            d.level.as_str(),
        )
        .clause(clause("§3.3.2"))
        .authority(OFFICE)
        .reason(format!(
            "{},请按《重污染天气预警信息发布(调整、解除)审批表》报市政府签发。依据:{}",
            proposed_zh(&d),
            d.reason
        ))
        .evidence(
            json!({"proposed_kind": d.kind.as_str(), "level": d.level.as_str(),
                             "previous": d.previous.as_str(), "rules": d.evidence}),
        )
        .recipients(vec!["市人民政府".to_string()]);
        n.text = Some(d.reason.clone());
        let h = cx.cfg.pollution.reminder_hours;
        self.track(t)
            .decisions
            .open(cx, d, Timer::Reminder(t), Some(h));
        out.push(n);
    }

    /// The 2-hour reminder of a still pending proposal (rule 6, §3.3.2 "于2小时内").
    pub(super) fn remind(&mut self, cx: &mut Cx, t: TrackId) {
        let Some(p) = self.track(t).decisions.pending.clone() else {
            return;
        };
        let n = Notice::new(
            Plan::HeavyPollution,
            t.as_str(),
            Kind::Reminder,
            p.decision.level.as_str(),
        )
        .clause(clause("§3.3.2"))
        .authority(OFFICE)
        .reason(format!(
            "审批提醒:{}提交的审批({})尚未签发",
            crate::time::time_zh(p.made),
            proposed_zh(&p.decision)
        ))
        .recipients(vec!["市人民政府".to_string()]);
        cx.emit(p.reminder(n, p.decision.kind));
    }

    /// Takes the pending proposal with this id from its track (rule 6), remembering its
    /// level as rejected when `rejected`; `Err` when no track has it pending.
    fn take_pending(
        &mut self,
        cx: &mut Cx,
        pid: &str,
        rejected: bool,
    ) -> Result<(TrackId, super::Pending), String> {
        for t in [TrackId::Graded, TrackId::Ozone] {
            let d = &mut self.track(t).decisions;
            let taken = if rejected {
                d.reject(cx, pid, Timer::Reminder(t), |d| d.level)
            } else {
                d.take(cx, pid, Timer::Reminder(t))
            };
            if let Some(p) = taken {
                return Ok((t, p));
            }
        }
        Err(format!(
            "no pending heavy-pollution proposal {pid:?} in region {} (unknown, or already approved, rejected, superseded or voided)",
            cx.region.id
        ))
    }

    /// `approve`: the proposed move happens now, to the proposed level (rule 6).
    pub(super) fn approve(&mut self, cx: &mut Cx, pid: &str, by: &str) -> Result<(), String> {
        let (t, p) = self.take_pending(cx, pid, false)?;
        let h0 = stamp_of(floor_hour(cx.now));
        let view = View::new(&self.series, h0, i64::from(cx.cfg.pollution.horizon_hours));
        let mut out = Vec::new();
        let mut d = p.decision;
        set(
            &mut d.evidence,
            "approved",
            json!({"proposal_id": pid, "by": by,
                                                 "proposed": fmt_ts(p.made)}),
        );
        self.do_move(cx, t, d, &view, &mut out, Some(pid));
        self.flush(cx, out);
        Ok(())
    }

    /// `reject`: voids the proposal; its level is not proposed again for now (rule 6).
    pub(super) fn reject(
        &mut self,
        cx: &mut Cx,
        pid: &str,
        _by: &str,
        _reason: &str,
    ) -> Result<(), String> {
        self.take_pending(cx, pid, true)?;
        Ok(())
    }

    /// Makes a move: the notice (with measures), then the report (§4.3), and the
    /// track's bookkeeping. A pending proposal not behind this move is voided.
    pub(super) fn do_move(
        &mut self,
        cx: &mut Cx,
        t: TrackId,
        d: Decision,
        view: &View,
        out: &mut Vec<Notice>,
        approved: Option<&str>,
    ) {
        debug_assert!(
            self.track_ref(t).level == d.previous
                && crate::plans::goes_the_right_way(d.kind, &d.previous, &d.level),
            "{t:?} {:?} from {:?} (track at {:?}) to {:?}",
            d.kind,
            d.previous,
            self.track_ref(t).level,
            d.level
        );
        self.void(cx, t);
        let now = cx.now;
        let mut ev = d.evidence.clone();
        set(&mut ev, "response", json!(d.level.response()));
        set(&mut ev, "causes", json!(d.causes));
        let mut n = Notice::new(Plan::HeavyPollution, t.as_str(), d.kind, d.level.as_str())
            .previous(d.previous.as_str())
            .clause(d.clause.clone())
            .authority(if d.province {
                "山西省重污染天气应急指挥部(生态环境部)通报,市重污染天气应急指挥部办公室发布"
            } else {
                "市重污染天气应急指挥部办公室(报市政府签发)"
            })
            .recipients(recipients(cx.cfg));
        n.proposal_id = approved.map(str::to_string);
        let mut reason = d.reason.clone();
        if d.kind == Kind::Activate {
            // §3.3.1: 提前24小时发布; under 24 h is an urgent release (紧急发布).
            let start = d.expected_start.unwrap_or(view.h0);
            let lead = lead_hours(floor_hour(now), start);
            set(&mut ev, "expected_start", json!(fmt_ts(ts_of(start))));
            set(&mut ev, "lead_hours", json!(lead));
            n.urgent = Some(lead < 24);
            reason = format!(
                "{reason}(提前{lead}小时{})",
                if lead < 24 { ",紧急发布" } else { "" }
            );
        }
        if d.kind != Kind::Terminate {
            n.measures = measures::for_level(cx.cfg, d.level);
        }
        if !d.causes.is_empty() {
            reason = format!("{reason};涉及原因:{}", causes_zh(&d.causes));
        }
        n.reason = reason;
        n.evidence = ev;
        out.push(n);
        self.book(cx, t, &d, view, out);
    }

    /// Level, episode, reports and timers after a move.
    fn book(&mut self, cx: &mut Cx, t: TrackId, d: &Decision, view: &View, out: &mut Vec<Notice>) {
        let now = cx.now;
        let reported = t != TrackId::So2;
        let st = self.track(t);
        st.decisions.rejected = None;
        let ended = st.level;
        st.level = d.level;
        match d.kind {
            Kind::Activate => {
                let mut ep = Episode::begin(d.level, now);
                ep.causes.extend(d.causes.iter().cloned());
                ep.observe(view, t);
                if reported {
                    let primary = d
                        .evidence
                        .pointer("/highest_at/primary")
                        .and_then(Value::as_str)
                        .unwrap_or("PM2.5");
                    out.push(reports::first(t, d.level, &ep, now, primary));
                    cx.arm(Timer::Daily(t), next_local_time(now, cx.cfg.report_time));
                }
                st.episode = Some(ep);
                if reported {
                    self.feedback_begin(cx, t);
                }
            }
            Kind::Terminate => {
                let ep = st.episode.take().unwrap_or_default();
                if reported {
                    let mut n = reports::final_report(t, ended, &ep, now);
                    if let Some(s) = &self.feedback {
                        let mut cur = self.track_ref(t).feedback;
                        n.evidence["statistics"]["units"] =
                            s.statistics(cx.cfg, Plan::HeavyPollution, &cur);
                        s.followup(cx.cfg, &mut cur, &mut n.evidence);
                    }
                    out.push(n);
                    self.feedback_end(cx);
                }
                cx.cancel(Timer::Daily(t));
                cx.cancel(Timer::Reminder(t));
            }
            _ => {
                if let Some(ep) = st.episode.as_mut() {
                    ep.segments.push((d.level, now));
                    ep.causes.extend(d.causes.iter().cloned());
                }
            }
        }
    }
}

fn causes_zh(c: &[String]) -> String {
    c.iter()
        .map(|x| match x.as_str() {
            "dust" => "沙尘天气(不计入预警,§1.3)",
            "fireworks" => "燃放烟花爆竹(§3.3.2)",
            other => other,
        })
        .collect::<Vec<_>>()
        .join("、")
}

/// What a proposal proposes, in the plan's words: 拟发布黄色预警, 拟将黄色预警调整为橙色预警,
/// 拟解除橙色预警 (§3.3.2 "发布(调整、解除)").
fn proposed_zh(d: &Decision) -> String {
    match d.kind {
        Kind::Activate => format!("拟发布{}", d.level.zh()),
        Kind::Terminate => format!("拟解除{}", d.previous.zh()),
        _ => format!("拟将{}调整为{}", d.previous.zh(), d.level.zh()),
    }
}
