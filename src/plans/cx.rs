//! What a plan sees while it handles one input or timer ([`Cx`]), and the engine state it
//! writes through: the timer table ([`Timers`], keyed by [`TimerKey`]) and the notice
//! counters ([`IdCounters`]). The engine owns these in its state and lends them to the
//! plans through a `Cx`; they live here, beside the plans, so that the plans do not import
//! the engine. Timers fire in the order PLANS.md §4 gives: by due time, then in the order
//! they were last armed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::PlanTimer;
use crate::config::{Config, RegionConfig};
use crate::notice::{Kind, Notice};
use crate::time::Ts;

/// A timer key: which region and which plan timer.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TimerKey {
    pub region: usize,
    pub timer: PlanTimer,
}

/// The timer table. Re-arming a key replaces its due time and its place in the order.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(from = "TimersRepr", into = "TimersRepr")]
pub struct Timers {
    seq: u64,
    /// (due, arm sequence) -> key.
    queue: BTreeMap<(Ts, u64), TimerKey>,
    /// key -> (due, arm sequence).
    armed: BTreeMap<TimerKey, (Ts, u64)>,
}

/// Snapshot form of [`Timers`]: JSON maps need string keys, so a list.
#[derive(Serialize, Deserialize)]
struct TimersRepr {
    seq: u64,
    armed: Vec<(TimerKey, Ts, u64)>,
}

impl From<Timers> for TimersRepr {
    fn from(t: Timers) -> Self {
        TimersRepr {
            seq: t.seq,
            armed: t
                .queue
                .into_iter()
                .map(|((due, s), k)| (k, due, s))
                .collect(),
        }
    }
}

impl From<TimersRepr> for Timers {
    fn from(r: TimersRepr) -> Self {
        let mut t = Timers {
            seq: r.seq,
            ..Default::default()
        };
        for (k, due, s) in r.armed {
            t.queue.insert((due, s), k.clone());
            t.armed.insert(k, (due, s));
        }
        t
    }
}

impl Timers {
    pub fn arm(&mut self, key: TimerKey, due: Ts) {
        self.seq += 1;
        let slot = (due, self.seq);
        // Re-arming (a feed's silence timer at every reading) moves the queue entry and
        // updates the key's slot in place: one map lookup instead of a remove and an
        // insert.
        if let Some(old) = self.armed.get_mut(&key) {
            let queued = self.queue.remove(old);
            *old = slot;
            self.queue.insert(slot, queued.unwrap_or(key));
        } else {
            self.queue.insert(slot, key.clone());
            self.armed.insert(key, slot);
        }
    }

    pub fn cancel(&mut self, key: &TimerKey) {
        if let Some(slot) = self.armed.remove(key) {
            self.queue.remove(&slot);
        }
    }

    pub fn due_of(&self, key: &TimerKey) -> Option<Ts> {
        self.armed.get(key).map(|(t, _)| *t)
    }

    /// Removes and returns the first timer due at or before `t`.
    pub(crate) fn pop_due(&mut self, t: Ts) -> Option<(Ts, TimerKey)> {
        let (&(due, seq), _) = self.queue.iter().next()?;
        if due > t {
            return None;
        }
        let key = self.queue.remove(&(due, seq)).expect("present");
        self.armed.remove(&key);
        Some((due, key))
    }

    pub(crate) fn first(&self) -> Option<(Ts, &TimerKey)> {
        self.queue.iter().next().map(|((t, _), k)| (*t, k))
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Changes whenever the table changes: every `arm` takes a new sequence number, and
    /// `cancel` and `pop_due` only remove entries. (Cheaper to compare than the table.)
    pub fn version(&self) -> (u64, usize) {
        (self.seq, self.queue.len())
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

/// Notice counters per `{plan}/{region}/{track}`: (notices, proposals).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct IdCounters(BTreeMap<String, (u64, u64)>);

impl IdCounters {
    /// How many notices were numbered in all: counters only grow, so this changes
    /// whenever they change.
    pub fn total(&self) -> u64 {
        self.0.values().map(|(n, p)| n + p).sum()
    }
}

/// What a plan sees while it handles one input or timer: the time, the configuration,
/// and ways to arm timers and emit notices.
pub struct Cx<'a> {
    pub now: Ts,
    pub cfg: &'a Config,
    pub region: &'a RegionConfig,
    region_idx: usize,
    timers: &'a mut Timers,
    ids: &'a mut IdCounters,
    out: &'a mut Vec<Notice>,
}

impl<'a> Cx<'a> {
    /// The context of region `region_idx` of `cfg` at `now`: timers armed go to `timers`,
    /// notices emitted to `out`, numbered by `ids` (the engine's state).
    pub(crate) fn new(
        now: Ts,
        cfg: &'a Config,
        region_idx: usize,
        timers: &'a mut Timers,
        ids: &'a mut IdCounters,
        out: &'a mut Vec<Notice>,
    ) -> Self {
        Cx {
            now,
            cfg,
            region: &cfg.regions[region_idx],
            region_idx,
            timers,
            ids,
            out,
        }
    }

    fn key(&self, t: impl Into<PlanTimer>) -> TimerKey {
        TimerKey {
            region: self.region_idx,
            timer: t.into(),
        }
    }

    /// Arms (or re-arms) a timer of this region.
    pub fn arm(&mut self, t: impl Into<PlanTimer>, due: Ts) {
        let k = self.key(t);
        self.timers.arm(k, due);
    }

    pub fn cancel(&mut self, t: impl Into<PlanTimer>) {
        let k = self.key(t);
        self.timers.cancel(&k);
    }

    /// Due time of an armed timer of this region.
    pub fn armed(&self, t: impl Into<PlanTimer>) -> Option<Ts> {
        self.timers.due_of(&self.key(t))
    }

    /// Emits a notice: fills `id`, `at` (now) and `region`, and returns the id.
    /// Proposals are counted apart (`.../proposal/{k}`), as CONTRACT.md defines.
    pub fn emit(&mut self, mut n: Notice) -> String {
        let base = format!("{}/{}/{}", n.plan.as_str(), self.region.id, n.track);
        let c = self.ids.0.entry(base.clone()).or_default();
        n.id = if n.kind == Kind::Proposal {
            c.1 += 1;
            format!("{base}/proposal/{}", c.1)
        } else {
            c.0 += 1;
            format!("{base}/{}", c.0)
        };
        if n.kind == Kind::Proposal {
            n.proposal_id = Some(n.id.clone());
        }
        n.at = self.now;
        n.region = self.region.id.clone();
        let id = n.id.clone();
        self.out.push(n);
        id
    }
}
