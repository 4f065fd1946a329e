//! The retry queue of the email and webhook sinks, without I/O: what to attempt next and
//! when, given the results so far. Time is an argument, never read here: a [`Mono`] is a
//! duration since an epoch the caller picks (the driver's start), so unit tests drive the
//! queue with explicit times. The I/O side, one driver for both sinks, is [`driver`].
//!
//! The rules (docs/daemon.md, Email and Webhooks):
//! - At most [`Queue::new`]'s `limit` attempts at once, and at most one per *lane* (the
//!   delivery's destination: one email address, one webhook), so a burst to several
//!   destinations goes out in parallel while each destination still receives its
//!   deliveries one after another, in order (except that a failed delivery is retried
//!   after those queued behind it, see the next rule). Due deliveries are started in the order they
//!   were queued (a retry that is due goes before what was queued after it); one whose lane
//!   is busy waits without holding back the other lanes.
//! - A delivery is retried on its own: one that fails goes back with its next try
//!   [`Backoff::after`] its failures in a row, and does not hold back the ones after it.
//! - There is no give-up: an undelivered delivery stays (the outbox keeps it too); a sink
//!   that keeps failing is reported degraded by `health` (the driver tells it each result).
//! - A delivery once delivered leaves the queue and is never attempted again; a delivery
//!   queued again while it is queued (same key) is attempted once, and never two attempts
//!   of it are in hand at once.
//! - After [`Queue::stop`] no attempt starts; those in hand may still report their results
//!   (an email the server accepted must be marked, or it is sent again after a restart).
//!
//! Cost: push, poll, a result and [`Queue::next_due`] are O(log n) in the deliveries
//! queued (a backlog of thousands of emails to a slow server is not scanned per attempt).

pub mod driver;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// A point in time: the duration since the caller's epoch (a monotonic clock's start).
pub type Mono = Duration;

/// How long to wait after failures in a row: `first`, doubling, at most `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
}

impl Backoff {
    /// Email: 2 s doubling to 5 min (a mail server down is usually down for a while).
    pub const EMAIL: Backoff = Backoff {
        first: Duration::from_secs(2),
        max: Duration::from_secs(300),
    };
    /// Webhooks: 2 s doubling to 60 s (calls go there, and calls are urgent).
    pub const WEBHOOK: Backoff = Backoff {
        first: Duration::from_secs(2),
        max: Duration::from_secs(60),
    };

    /// The wait before the next try after `failures` failed attempts in a row (>= 1).
    pub fn after(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(31);
        self.first
            .checked_mul(1 << doublings)
            .map_or(self.max, |d| d.min(self.max))
    }
}

/// Names an attempt handed out by [`Queue::poll`], for [`Queue::on_result`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ticket(u64);

/// One attempt to make now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt<T> {
    pub ticket: Ticket,
    pub item: T,
    /// Failed attempts so far (including those before a restart, from the outbox).
    pub failures: u32,
}

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The server took it (SMTP accepted; HTTP 2xx and, for WeCom, `errcode` 0).
    Delivered,
    /// Refused, timed out, unreachable: tried again later.
    Failed,
}

/// What the queue does next with the delivery of a finished attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Then {
    /// Delivered: gone from the queue.
    Done,
    /// Tried again after `wait` (its failures in a row are now `failures`).
    Retry { wait: Duration, failures: u32 },
    /// The ticket was not in hand (already reported): nothing changed.
    Unknown,
}

struct Entry<K, L, T> {
    key: K,
    lane: L,
    item: T,
    failures: u32,
    due: Mono,
}

/// The deliveries of one sink kind (all emails, or all webhooks), keyed by `K` (notice
/// id and outbox sink), each in a lane `L` (its destination) and carrying `T` (what the
/// driver needs to send it).
///
/// A queued entry is in exactly one of: `waiting` (not due at the last poll), `ready`
/// (due, not in hand) or `in_hand`.
pub struct Queue<K, L, T> {
    backoff: Backoff,
    limit: usize,
    /// By the order they were queued (ticket number).
    entries: BTreeMap<u64, Entry<K, L, T>>,
    keys: BTreeSet<K>,
    next: u64,
    /// Not due when last polled: by due time, then queue order.
    waiting: BTreeSet<(Mono, u64)>,
    /// Due and not in hand, per lane, in queue order.
    ready: BTreeMap<L, BTreeSet<u64>>,
    /// The first ready ticket of every lane that has one and no attempt in hand: what
    /// [`Queue::poll`] may start, in queue order.
    heads: BTreeSet<(u64, L)>,
    /// Lanes with an attempt in hand.
    busy: BTreeSet<L>,
    in_hand: BTreeSet<u64>,
    stopping: bool,
}

impl<K: Ord + Clone, L: Ord + Clone, T: Clone> Queue<K, L, T> {
    /// An empty queue that has at most `limit` (at least 1) attempts in hand at once.
    pub fn new(backoff: Backoff, limit: usize) -> Self {
        Queue {
            backoff,
            limit: limit.max(1),
            entries: BTreeMap::new(),
            keys: BTreeSet::new(),
            next: 0,
            waiting: BTreeSet::new(),
            ready: BTreeMap::new(),
            heads: BTreeSet::new(),
            busy: BTreeSet::new(),
            in_hand: BTreeSet::new(),
            stopping: false,
        }
    }

    /// Queues a delivery to the destination `lane`, due at once; `failures`: failed
    /// attempts it already had (the outbox's count after a restart; 0 for a new notice).
    /// False when `key` is queued.
    pub fn push(&mut self, key: K, lane: L, item: T, failures: u32, now: Mono) -> bool {
        if !self.keys.insert(key.clone()) {
            return false;
        }
        let entry = Entry {
            key,
            lane,
            item,
            failures,
            due: now,
        };
        self.entries.insert(self.next, entry);
        self.waiting.insert((now, self.next));
        self.next += 1;
        true
    }

    /// The next attempt to make at `now`: the first queued of those due whose lane has no
    /// attempt in hand. None when `limit` attempts are in hand, after [`Queue::stop`], or
    /// when nothing such is due. Call it until None to start every attempt that may start.
    pub fn poll(&mut self, now: Mono) -> Option<Attempt<T>> {
        if self.in_hand.len() >= self.limit || self.stopping {
            return None;
        }
        while let Some(&(due, n)) = self.waiting.first() {
            if due > now {
                break;
            }
            self.waiting.pop_first();
            self.make_ready(n);
        }
        let (n, lane) = self.heads.pop_first()?;
        if let Some(lane_ready) = self.ready.get_mut(&lane) {
            lane_ready.remove(&n);
            if lane_ready.is_empty() {
                self.ready.remove(&lane);
            }
        }
        self.busy.insert(lane);
        self.in_hand.insert(n);
        let e = self.entries.get(&n)?;
        Some(Attempt {
            ticket: Ticket(n),
            item: e.item.clone(),
            failures: e.failures,
        })
    }

    /// Entry `n` is due: into its lane's ready set, and the lane's head if it is first
    /// and the lane is free.
    fn make_ready(&mut self, n: u64) {
        let Some(lane) = self.entries.get(&n).map(|e| e.lane.clone()) else {
            return;
        };
        let lane_ready = self.ready.entry(lane.clone()).or_default();
        let before = lane_ready.first().copied();
        lane_ready.insert(n);
        if self.busy.contains(&lane) {
            return;
        }
        match before {
            Some(b) if b < n => {}
            Some(b) => {
                self.heads.remove(&(b, lane.clone()));
                self.heads.insert((n, lane));
            }
            None => {
                self.heads.insert((n, lane));
            }
        }
    }

    /// When [`Queue::poll`] may have something next (a past time when something is due
    /// already); None when it never will without a push or a result (empty, `limit`
    /// attempts in hand, every due delivery's lane busy and nothing waiting, or
    /// stopping). A delivery that becomes due while its lane is busy wakes the caller
    /// once, for nothing; it is then started when its lane's attempt ends.
    pub fn next_due(&self) -> Option<Mono> {
        if self.in_hand.len() >= self.limit || self.stopping {
            return None;
        }
        let head = self
            .heads
            .first()
            .and_then(|(n, _)| self.entries.get(n))
            .map(|e| e.due);
        let waiting = self.waiting.first().map(|&(due, _)| due);
        match (head, waiting) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The result of the attempt `ticket`, finished at `now`.
    pub fn on_result(&mut self, ticket: Ticket, outcome: Outcome, now: Mono) -> Then {
        if !self.in_hand.remove(&ticket.0) {
            return Then::Unknown;
        }
        let Some(e) = self.entries.get_mut(&ticket.0) else {
            return Then::Unknown;
        };
        let lane = e.lane.clone();
        let then = match outcome {
            Outcome::Delivered => {
                let key = e.key.clone();
                self.entries.remove(&ticket.0);
                self.keys.remove(&key);
                Then::Done
            }
            Outcome::Failed => {
                e.failures += 1;
                let wait = self.backoff.after(e.failures);
                e.due = now + wait;
                self.waiting.insert((e.due, ticket.0));
                Then::Retry {
                    wait,
                    failures: e.failures,
                }
            }
        };
        self.busy.remove(&lane);
        if let Some(&first) = self.ready.get(&lane).and_then(BTreeSet::first) {
            self.heads.insert((first, lane));
        }
        then
    }

    /// No attempt starts from now on; those in hand may still report their results.
    pub fn stop(&mut self) {
        self.stopping = true;
    }

    /// Whether [`Queue::stop`] was called.
    pub fn stopped(&self) -> bool {
        self.stopping
    }

    /// Whether an attempt is in hand (handed out, result not reported).
    pub fn in_hand(&self) -> bool {
        !self.in_hand.is_empty()
    }

    /// Deliveries queued (in hand included).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests;
