//! The retry queue of the email and webhook sinks, without I/O: what to attempt next and
//! when, given the results so far. Time is an argument, never read here: a [`Mono`] is a
//! duration since an epoch the caller picks (the driver's start), so unit tests drive the
//! queue with explicit times. The I/O side, one driver for both sinks, is [`driver`].
//!
//! The rules (docs/daemon.md, Email and Webhooks):
//! - One attempt at a time; due deliveries are attempted in the order they were queued
//!   (a retry that is due goes before what was queued after it).
//! - A delivery is retried on its own: one that fails goes back with its next try
//!   [`Backoff::after`] its failures in a row, and does not hold back the ones after it.
//! - There is no give-up: an undelivered delivery stays (the outbox keeps it too); a sink
//!   that keeps failing is reported degraded by `health` (the driver tells it each result).
//! - A delivery once delivered leaves the queue and is never attempted again; a delivery
//!   queued again while it is queued (same key) is attempted once.
//! - After [`Queue::stop`] no attempt starts; the one in hand may still report its result
//!   (an email the server accepted must be marked, or it is sent again after a restart).

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

struct Entry<K, T> {
    key: K,
    item: T,
    failures: u32,
    due: Mono,
}

/// The deliveries of one sink kind (all emails, or all webhooks), keyed by `K` (notice
/// id and outbox sink), each carrying `T` (what the driver needs to send it).
pub struct Queue<K, T> {
    backoff: Backoff,
    /// By the order they were queued (ticket number).
    entries: BTreeMap<u64, Entry<K, T>>,
    keys: BTreeSet<K>,
    next: u64,
    in_hand: Option<u64>,
    stopping: bool,
}

impl<K: Ord + Clone, T: Clone> Queue<K, T> {
    pub fn new(backoff: Backoff) -> Self {
        Queue {
            backoff,
            entries: BTreeMap::new(),
            keys: BTreeSet::new(),
            next: 0,
            in_hand: None,
            stopping: false,
        }
    }

    /// Queues a delivery, due at once; `failures`: failed attempts it already had (the
    /// outbox's count after a restart; 0 for a new notice). False when `key` is queued.
    pub fn push(&mut self, key: K, item: T, failures: u32, now: Mono) -> bool {
        if !self.keys.insert(key.clone()) {
            return false;
        }
        let entry = Entry {
            key,
            item,
            failures,
            due: now,
        };
        self.entries.insert(self.next, entry);
        self.next += 1;
        true
    }

    /// The next attempt to make at `now`: the first queued of those due. None while an
    /// attempt is in hand, after [`Queue::stop`], or when nothing is due.
    pub fn poll(&mut self, now: Mono) -> Option<Attempt<T>> {
        if self.in_hand.is_some() || self.stopping {
            return None;
        }
        let (&n, e) = self.entries.iter().find(|(_, e)| e.due <= now)?;
        self.in_hand = Some(n);
        Some(Attempt {
            ticket: Ticket(n),
            item: e.item.clone(),
            failures: e.failures,
        })
    }

    /// When [`Queue::poll`] has something next (may be past); None when it never will
    /// without a push or a result (empty, an attempt in hand, or stopping).
    pub fn next_due(&self) -> Option<Mono> {
        if self.in_hand.is_some() || self.stopping {
            return None;
        }
        self.entries.values().map(|e| e.due).min()
    }

    /// The result of the attempt `ticket`, finished at `now`.
    pub fn on_result(&mut self, ticket: Ticket, outcome: Outcome, now: Mono) -> Then {
        if self.in_hand != Some(ticket.0) {
            return Then::Unknown;
        }
        self.in_hand = None;
        let Some(e) = self.entries.get_mut(&ticket.0) else {
            return Then::Unknown;
        };
        match outcome {
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
                Then::Retry {
                    wait,
                    failures: e.failures,
                }
            }
        }
    }

    /// No attempt starts from now on; the one in hand may still report its result.
    pub fn stop(&mut self) {
        self.stopping = true;
    }

    /// Whether [`Queue::stop`] was called.
    pub fn stopped(&self) -> bool {
        self.stopping
    }

    /// Whether an attempt is in hand (handed out, result not reported).
    pub fn in_hand(&self) -> bool {
        self.in_hand.is_some()
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
