//! The I/O side of the retry queue, one for both the email and the webhook sinks: a task on
//! the daemon's runtime that queues new deliveries, sleeps until the next one is due, makes
//! each attempt through its [`Transport`] (up to [`IN_FLIGHT`] at once, one per
//! destination: each attempt is a task of its own), and records the result where it
//! belongs: the outbox (marked delivered, or its failed attempts counted), the health
//! registry (degraded after failures in a row), the metrics and the log. The queue's rules
//! are in `retry.rs`.
//!
//! Shutdown ([`Driver::stop`]): no new attempt starts; the attempts in hand are let finish
//! (at most the transport's [`Transport::grace`]; they run at once), so a delivery the server
//! accepted is marked and not sent again after the restart. What is left stays in the
//! outbox for the next start.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};

use super::{Attempt, Backoff, Mono, Outcome, Queue, Then, Ticket};
use crate::clock;
use crate::daemon::health;
use crate::daemon::metrics;
use crate::daemon::sink::{Sink, SinkKind};
use crate::daemon::store::Store;
use crate::notice::Notice;
use prometheus_client::metrics::counter::Counter;

/// Attempts in hand at once, per driver (all emails, or all webhooks), at most one per
/// destination (retry.rs): a burst to several addresses or webhooks goes out in parallel
/// instead of one delivery after another.
pub const IN_FLIGHT: usize = 8;

/// One delivery: a notice to one outbox sink ([`Sink::Email`], [`Sink::Webhook`]).
#[derive(Debug, Clone)]
pub struct Delivery {
    pub notice: Arc<Notice>,
    pub sink: Sink,
}

/// The I/O of one kind of sink: one attempt at one delivery, and how its results are named
/// and counted.
pub trait Transport: Send + Sync + 'static {
    /// The sinks it delivers to (logs).
    const KIND: SinkKind;
    /// The log message of a delivery made, and of one not made (operators and tests look
    /// for them).
    const SENT: &'static str;
    const NOT_SENT: &'static str;

    /// The sink's name in the health registry for `d` (`email`, or `webhook:{name}`).
    fn health_name(&self, d: &Delivery) -> String;

    /// The longest one attempt can take (the sum of its deadlines): how long a stop waits
    /// for the attempt in hand.
    fn grace(&self) -> Duration;

    /// The metrics counters of deliveries made and of attempts failed.
    fn counters(&self) -> (&'static Counter, &'static Counter);

    /// One attempt; `Err` with a text for the log and the outbox when not delivered.
    fn attempt(&self, d: &Delivery) -> impl Future<Output = Result<(), String>> + Send;
}

/// Handle on a running driver.
#[derive(Clone)]
pub struct Driver {
    tx: mpsc::UnboundedSender<Delivery>,
    stop: Arc<watch::Sender<bool>>,
    task: Arc<Mutex<Option<JoinHandle<()>>>>,
    grace: Duration,
    /// Attempts in hand (for the log at stop).
    busy: Arc<AtomicUsize>,
    kind: SinkKind,
}

/// What an attempt's task returns (its ticket and delivery are kept in `started`).
type Done = Result<(), String>;

/// The queue and what the driver's task owns.
struct Run<S> {
    sink: Arc<S>,
    store: Store,
    /// Keyed by (notice id, sink), laned by the sink: one destination's deliveries go
    /// one after another, in the order queued.
    queue: Queue<(String, Sink), Sink, Delivery>,
    epoch: tokio::time::Instant,
    busy: Arc<AtomicUsize>,
    /// The attempts in hand, each a task.
    tasks: JoinSet<Done>,
    /// Deliveries made and not yet marked in the outbox: marked together, in one
    /// transaction, before the driver waits again ([`Run::flush_marks`]).
    marks: Vec<(String, Sink)>,
    /// The ticket and delivery of each task, for a task that panicked, by the task's id.
    started: BTreeMap<tokio::task::Id, (Ticket, Delivery)>,
}

impl Driver {
    /// Starts the driver of `sink` on the current runtime, with `pending` (deliveries the
    /// outbox still has, with their failed attempts so far) queued first, due at once.
    /// `store` is the driver's own connection to the database.
    pub fn start<S: Transport>(
        sink: S,
        backoff: Backoff,
        store: Store,
        pending: Vec<(Delivery, u32)>,
    ) -> Driver {
        let grace = sink.grace();
        let busy = Arc::new(AtomicUsize::new(0));
        let mut run = Run {
            sink: Arc::new(sink),
            store,
            queue: Queue::new(backoff, IN_FLIGHT),
            epoch: clock::monotonic(),
            busy: Arc::clone(&busy),
            tasks: JoinSet::new(),
            marks: Vec::new(),
            started: BTreeMap::new(),
        };
        for (d, failures) in pending {
            run.push(d, failures);
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(drive(run, rx, stop_rx));
        Driver {
            tx,
            stop: Arc::new(stop),
            task: Arc::new(Mutex::new(Some(task))),
            grace,
            busy,
            kind: S::KIND,
        }
    }

    /// Queues a delivery of `notice` to the outbox sink `sink`.
    pub fn submit(&self, notice: Arc<Notice>, sink: Sink) {
        let _ = self.tx.send(Delivery { notice, sink });
    }

    /// Stops: no new attempt; those in hand finish (at most the sink's grace, plus a
    /// second), because aborting one after the server accepted would send it again after
    /// the restart. Returns once the driver's task ended.
    pub async fn stop(&self) {
        self.stop.send_replace(true);
        let task = self.task.lock().expect("task lock").take();
        if let Some(mut t) = task {
            let wait = self.grace + Duration::from_secs(1);
            let in_hand = self.busy.load(Ordering::SeqCst);
            if in_hand > 0 {
                tracing::info!(
                    sink = self.kind.as_str(),
                    in_hand,
                    within_s = wait.as_secs(),
                    "stopping: waiting for the delivery attempt in hand"
                );
            }
            if tokio::time::timeout(wait, &mut t).await.is_err() {
                tracing::warn!(
                    wait_s = wait.as_secs(),
                    "a delivery attempt did not finish in time: abandoned (it may be sent again after the restart)"
                );
                t.abort();
                let _ = t.await;
            }
        }
    }
}

/// The driver's task: starts what is due (as many as the queue lets), records each result
/// as it comes, and waits for a new delivery, a result, the next due time or the stop.
/// After the stop (or once every handle is gone) it ends when no attempt is in hand.
async fn drive<S: Transport>(
    mut run: Run<S>,
    mut rx: mpsc::UnboundedReceiver<Delivery>,
    mut stop: watch::Receiver<bool>,
) {
    let mut open = true;
    loop {
        while let Ok(d) = rx.try_recv() {
            run.push(d, 0);
        }
        run.flush_marks();
        if *stop.borrow_and_update() || !open {
            run.queue.stop();
        }
        while let Some(a) = run.queue.poll(run.now()) {
            run.start(a);
        }
        if run.queue.stopped() && run.tasks.is_empty() {
            return;
        }
        let wake = run.queue.next_due().map(|d| run.epoch + d);
        let stopped = run.queue.stopped();
        tokio::select! {
            m = rx.recv(), if open && !stopped => match m {
                Some(d) => run.push(d, 0),
                None => open = false,
            },
            Some(done) = run.tasks.join_next_with_id(), if !run.tasks.is_empty() => {
                run.finish(done);
                // Every other attempt that ended meanwhile: their marks go together.
                while let Some(done) = run.tasks.try_join_next_with_id() {
                    run.finish(done);
                }
            }
            _ = tokio::time::sleep_until(wake.unwrap_or(run.epoch)), if wake.is_some() => {}
            changed = stop.changed(), if !stopped => if changed.is_err() {
                open = false;
            },
        }
    }
}

impl<S: Transport> Run<S> {
    fn now(&self) -> Mono {
        clock::monotonic().saturating_duration_since(self.epoch)
    }

    fn push(&mut self, d: Delivery, failures: u32) {
        let key = (d.notice.id.clone(), d.sink.clone());
        let lane = d.sink.clone();
        let now = self.now();
        if !self.queue.push(key, lane, d, failures, now) {
            tracing::debug!("a delivery already queued was queued again: attempted once");
        }
    }

    /// Starts one attempt, as a task of its own.
    fn start(&mut self, a: Attempt<Delivery>) {
        self.busy.fetch_add(1, Ordering::SeqCst);
        let sink = Arc::clone(&self.sink);
        let (ticket, d) = (a.ticket, a.item);
        let task = d.clone();
        let handle = self.tasks.spawn(async move { sink.attempt(&task).await });
        self.started.insert(handle.id(), (ticket, d));
    }

    /// An attempt's task ended: its result (a task that panicked failed) is recorded.
    fn finish(&mut self, done: Result<(tokio::task::Id, Done), tokio::task::JoinError>) {
        let id = match &done {
            Ok((id, _)) => *id,
            Err(e) => e.id(),
        };
        let Some((ticket, d)) = self.started.remove(&id) else {
            return;
        };
        self.busy.fetch_sub(1, Ordering::SeqCst);
        let result = match done {
            Ok((_, r)) => r,
            Err(e) => Err(format!("the attempt failed: {e}")),
        };
        self.record(ticket, &d, result);
    }

    /// Marks the deliveries made since the last call, in one transaction (one write
    /// transaction per delivery cost 12 % of the daemon's CPU in the live bench, and each
    /// took SQLite's write lock from the core's journal commits).
    fn flush_marks(&mut self) {
        if self.marks.is_empty() {
            return;
        }
        let marks = std::mem::take(&mut self.marks);
        let refs: Vec<(&str, Sink)> = marks
            .iter()
            .map(|(id, sink)| (id.as_str(), sink.clone()))
            .collect();
        if let Err(e) = self.store.mark_all_delivered(&refs, clock::now()) {
            tracing::error!(error = %e, deliveries = marks.len(), "could not mark deliveries made (sent again after a restart)");
        }
    }

    /// Records the result of one attempt.
    fn record(&mut self, ticket: Ticket, d: &Delivery, result: Result<(), String>) {
        let outcome = match result {
            Ok(()) => Outcome::Delivered,
            Err(_) => Outcome::Failed,
        };
        let then = self.queue.on_result(ticket, outcome, self.now());
        let health = self.sink.health_name(d);
        match result {
            Ok(()) => {
                tracing::info!(id = %d.notice.id, sink = %d.sink, "{}", S::SENT);
                metrics::inc(self.sink.counters().0, 1);
                health::sink_ok(&health);
                self.marks.push((d.notice.id.clone(), d.sink.clone()));
            }
            Err(e) => {
                let retry_in_s = match then {
                    Then::Retry { wait, .. } => wait.as_secs(),
                    Then::Done | Then::Unknown => 0,
                };
                tracing::warn!(id = %d.notice.id, sink = %d.sink, error = %e, retry_in_s, "{}", S::NOT_SENT);
                metrics::inc(self.sink.counters().1, 1);
                health::sink_failed(&health, &e);
                if let Err(err) = self.store.mark_failed(&d.notice.id, &d.sink, &e) {
                    tracing::error!(error = %err, id = %d.notice.id, sink = %d.sink, "could not record a failed attempt");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
