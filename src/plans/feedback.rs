//! PLANS.md §5.2 "Assignments and reports back" (37号 §4.3, 33号 §5.1), shared by the coal
//! and pollution plans: one deadline series per region and plan, the reports units send
//! back, the units overdue at each deadline, and what follow-up and final reports show.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::config::Config;
use crate::input::UnitReport;
use crate::notice::{Notice, Plan};
use crate::plans::cx::Cx;
use crate::plans::PlanTimer;
use crate::time::{fmt_ts, next_local_time, Ts};

/// One accepted `report`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Received {
    pub at: Ts,
    pub report: UnitReport,
}

/// The deadline series of one plan in one region: from the plan becoming active until it
/// is no longer active.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Series {
    pub start: Ts,
    /// Every accepted report of the series, in arrival order.
    pub reports: Vec<Received>,
    /// Each deadline passed, with the units overdue at it (config order).
    pub deadlines: Vec<(Ts, Vec<String>)>,
    /// Units that reported since the previous deadline (for the first: since the start).
    pub since: BTreeSet<String>,
}

/// Where a track's reports stand in the series: what its response has seen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// First report and deadline of the track's response (for `report_final`).
    pub reports_base: usize,
    pub deadlines_base: usize,
    /// Reports already shown in a follow-up.
    pub shown: usize,
}

/// Whether any unit reports on `plan`: without one there is no series (the built-in
/// default, so configurations without `[[unit]]` behave as before).
pub fn enabled(cfg: &Config, plan: Plan) -> bool {
    cfg.units.iter().any(|u| u.reports_on(plan))
}

/// The first deadline of a series started at `start`: the first `feedback_time` strictly
/// after it that lies at least `feedback_grace_hours` after it.
pub fn first_deadline(cfg: &Config, start: Ts) -> Ts {
    let grace = crate::time::hours(cfg.feedback_grace_hours);
    let mut d = next_local_time(start, cfg.feedback_time);
    while d - start < grace {
        d = next_local_time(d, cfg.feedback_time);
    }
    d
}

/// The deadline after the one at `now`.
pub fn next_deadline(cfg: &Config, now: Ts) -> Ts {
    next_local_time(now, cfg.feedback_time)
}

impl Series {
    pub fn begin(start: Ts) -> Series {
        Series {
            start,
            reports: Vec::new(),
            deadlines: Vec::new(),
            since: BTreeSet::new(),
        }
    }

    /// A cursor for a track whose response starts now.
    pub fn cursor(&self) -> Cursor {
        Cursor {
            reports_base: self.reports.len(),
            deadlines_base: self.deadlines.len(),
            shown: self.reports.len(),
        }
    }

    pub fn add(&mut self, at: Ts, r: &UnitReport) {
        self.since.insert(r.unit.clone());
        self.reports.push(Received {
            at,
            report: r.clone(),
        });
    }

    /// A deadline passes: the units of `plan` that sent nothing since the previous one, in
    /// config order (empty when every unit reported).
    pub fn deadline(&mut self, cfg: &Config, plan: Plan, now: Ts) -> Vec<String> {
        let overdue: Vec<String> = cfg
            .units
            .iter()
            .filter(|u| u.reports_on(plan) && !self.since.contains(&u.name))
            .map(|u| u.name.clone())
            .collect();
        self.since.clear();
        self.deadlines.push((now, overdue.clone()));
        overdue
    }

    /// `evidence.feedback` and `evidence.overdue_units` of a follow-up report; moves the
    /// cursor past the reports shown.
    pub fn followup(&self, cfg: &Config, cur: &mut Cursor, ev: &mut Value) {
        let new = &self.reports[cur.shown.min(self.reports.len())..];
        let feedback: Vec<Value> = cfg
            .units
            .iter()
            .filter_map(|u| {
                let list: Vec<Value> = new
                    .iter()
                    .filter(|r| r.report.unit == u.name)
                    .map(|r| {
                        json!({"at": fmt_ts(r.at), "time": fmt_ts(r.at), "by": r.report.by,
                            "text": r.report.text, "enterprises": r.report.enterprises,
                            "cut_pct": r.report.cut_pct})
                    })
                    .collect();
                (!list.is_empty()).then(|| json!({"unit": u.name, "reports": list}))
            })
            .collect();
        cur.shown = self.reports.len();
        let overdue = self.deadlines[cur.deadlines_base.min(self.deadlines.len())..]
            .last()
            .map(|(_, u)| u.clone())
            .unwrap_or_default();
        set(ev, "feedback", json!(feedback));
        set(ev, "overdue_units", json!(overdue));
    }

    /// `statistics.units` of a final report: per unit of `plan`, the reports received and
    /// deadlines missed within the track's response.
    pub fn statistics(&self, cfg: &Config, plan: Plan, cur: &Cursor) -> Value {
        let reports = &self.reports[cur.reports_base.min(self.reports.len())..];
        let deadlines = &self.deadlines[cur.deadlines_base.min(self.deadlines.len())..];
        let rows: Vec<Value> = cfg
            .units
            .iter()
            .filter(|u| u.reports_on(plan))
            .map(|u| {
                json!({"unit": u.name,
                    "reports": reports.iter().filter(|r| r.report.unit == u.name).count(),
                    "deadlines_missed": deadlines.iter().filter(|(_, o)| o.contains(&u.name)).count()})
            })
            .collect();
        json!(rows)
    }
}

/// The office of a plan (PLANS.md §5.2): the contacts of `office_unit` (by name or alias)
/// whose `plans` include the plan, in file order.
pub fn office(cfg: &Config, plan: Plan, office_unit: &str) -> Vec<String> {
    let unit = cfg.unit(office_unit);
    cfg.contacts
        .iter()
        .filter(|c| {
            (c.unit == office_unit || unit.is_some_and(|u| u.named(&c.unit)))
                && c.plans.contains(&plan)
        })
        .map(|c| c.id.clone())
        .collect()
}

/// A deadline of the series: records it, arms `timer` for the next one, and returns the
/// overdue units with the start of their period (`None` when every unit reported).
pub fn deadline_due<T: Into<PlanTimer>>(
    series: &mut Series,
    cx: &mut Cx,
    plan: Plan,
    timer: T,
) -> Option<(Vec<String>, Ts)> {
    let since = series.deadlines.last().map_or(series.start, |d| d.0);
    let units = series.deadline(cx.cfg, plan, cx.now);
    cx.arm(timer, next_deadline(cx.cfg, cx.now));
    (!units.is_empty()).then_some((units, since))
}

/// The `report_overdue` notice (its plan, track, level, clause and authority are the
/// plan's): the overdue units, to the office.
pub fn overdue(n: Notice, (units, since): (Vec<String>, Ts), cx: &Cx, office_unit: &str) -> Notice {
    let reason = format!(
        "截至{},{}未报送{}以来的落实情况",
        crate::time::time_zh(cx.now),
        units.join("、"),
        crate::time::time_zh(since)
    );
    let plan = n.plan;
    n.reason(reason)
        .evidence(json!({"units": units, "since": fmt_ts(since), "deadline": fmt_ts(cx.now)}))
        .recipients(office(cx.cfg, plan, office_unit))
}

fn set(ev: &mut Value, key: &str, v: Value) {
    if let Value::Object(m) = ev {
        m.insert(key.to_string(), v);
    }
}
