//! One proposal life cycle for decisions reserved to named people (PLANS.md §2 rule 6 and
//! §5.1), shared by the pollution tracks and the coal track: one pending proposal per
//! track; the same level proposes nothing new; another level supersedes it; it is voided
//! silently (its reminder cancelled) when the rules no longer give its move; `reject`
//! voids it and its level is not proposed again until the rules stop giving it.

use serde::{Deserialize, Serialize};

use serde_json::json;

use crate::notice::{Kind, Notice};
use crate::plans::cx::Cx;
use crate::plans::PlanTimer;
use crate::time::{fmt_ts, Ts};

/// A proposal waiting for `approve` / `reject` (or `confirm`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pending<D> {
    /// Filled when the proposal notice is emitted.
    pub id: String,
    pub decision: D,
    pub made: Ts,
}

impl<D> Pending<D> {
    /// The reminder of this proposal (rule 6, PLANS.md §5.1): `n` (the plan's clause,
    /// authority, reason and recipients) with the proposal's id and evidence.
    pub fn reminder(&self, n: Notice, kind: Kind) -> Notice {
        let mut n = n.evidence(json!({"proposal_id": self.id, "made": fmt_ts(self.made),
            "proposed_kind": kind.as_str()}));
        n.proposal_id = Some(self.id.clone());
        n
    }
}

/// The decision state of one track.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decisions<D, L> {
    pub pending: Option<Pending<D>>,
    /// A rejected level, not proposed again until the rules stop giving it.
    pub rejected: Option<L>,
}

impl<D, L> Default for Decisions<D, L> {
    fn default() -> Self {
        Decisions {
            pending: None,
            rejected: None,
        }
    }
}

impl<D, L: PartialEq + Copy> Decisions<D, L> {
    /// Whether a move to `level` should be proposed now: not when that level was
    /// rejected, nor when it is already pending. A proposal of another level supersedes
    /// the pending one (the caller then calls [`Decisions::open`]).
    pub fn wants(&mut self, level: L, level_of: impl Fn(&D) -> L) -> bool {
        if self.rejected == Some(level) {
            return false;
        }
        self.rejected = None;
        !self
            .pending
            .as_ref()
            .is_some_and(|p| level_of(&p.decision) == level)
    }

    /// Records a new pending proposal (superseding any other, whose reminder is
    /// cancelled) and arms its reminder `reminder_hours` from now, when it has one.
    pub fn open<T: Into<PlanTimer> + Clone>(
        &mut self,
        cx: &mut Cx,
        decision: D,
        reminder: T,
        reminder_hours: Option<f64>,
    ) {
        cx.cancel(reminder.clone());
        self.pending = Some(Pending {
            id: String::new(),
            decision,
            made: cx.now,
        });
        if let Some(h) = reminder_hours {
            cx.arm(reminder, cx.now + crate::time::hours(h));
        }
    }

    /// Sets the id of the pending proposal once its notice is emitted.
    pub fn named(&mut self, id: String) {
        if let Some(p) = self.pending.as_mut() {
            p.id = id;
        }
    }

    /// Voids the pending proposal silently and cancels its reminder.
    pub fn void(&mut self, cx: &mut Cx, reminder: impl Into<PlanTimer>) -> Option<Pending<D>> {
        let p = self.pending.take();
        if p.is_some() {
            cx.cancel(reminder);
        }
        p
    }

    /// The rules give no move: the pending proposal is voided and a rejected level may be
    /// proposed again.
    pub fn no_move(&mut self, cx: &mut Cx, reminder: impl Into<PlanTimer>) {
        self.void(cx, reminder);
        self.rejected = None;
    }

    /// Whether `id` names the pending proposal.
    pub fn is_pending(&self, id: &str) -> bool {
        self.pending.as_ref().is_some_and(|p| p.id == id)
    }

    /// `approve` / `confirm`: takes the pending proposal named `id`.
    pub fn take(
        &mut self,
        cx: &mut Cx,
        id: &str,
        reminder: impl Into<PlanTimer>,
    ) -> Option<Pending<D>> {
        if !self.is_pending(id) {
            return None;
        }
        self.void(cx, reminder)
    }

    /// `reject`: voids the proposal named `id` and remembers its level.
    pub fn reject(
        &mut self,
        cx: &mut Cx,
        id: &str,
        reminder: impl Into<PlanTimer>,
        level_of: impl Fn(&D) -> L,
    ) -> Option<Pending<D>> {
        let p = self.take(cx, id, reminder)?;
        self.rejected = Some(level_of(&p.decision));
        Some(p)
    }
}
