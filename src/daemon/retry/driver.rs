//! The I/O side of the retry queue, one for both the email and the webhook sinks: a task on
//! the daemon's runtime that queues new deliveries, sleeps until the next one is due, makes
//! each attempt through its [`Transport`], and records the result where it belongs: the outbox
//! (marked delivered, or its failed attempts counted), the health registry (degraded after
//! failures in a row), the metrics and the log. The queue's rules are in `retry.rs`.
//!
//! Shutdown ([`Driver::stop`]): no new attempt starts; the attempt in hand is let finish
//! (at most the transport's [`Transport::grace`]), so a delivery the server accepted is marked and
//! not sent again after the restart. What is left stays in the outbox for the next start.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::{Attempt, Backoff, Mono, Outcome, Queue, Then};
use crate::clock;
use crate::daemon::health;
use crate::daemon::metrics;
use crate::daemon::sink::{Sink, SinkKind};
use crate::daemon::store::Store;
use crate::notice::Notice;
use prometheus_client::metrics::counter::Counter;

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
    /// Whether an attempt is in hand (for the log at stop).
    busy: Arc<AtomicBool>,
    kind: SinkKind,
}

/// The queue and what the driver's task owns.
struct Run<S> {
    sink: S,
    store: Store,
    queue: Queue<(String, Sink), Delivery>,
    epoch: tokio::time::Instant,
    busy: Arc<AtomicBool>,
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
        let busy = Arc::new(AtomicBool::new(false));
        let mut run = Run {
            sink,
            store,
            queue: Queue::new(backoff),
            epoch: clock::monotonic(),
            busy: Arc::clone(&busy),
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

    /// Stops: no new attempt; the one in hand finishes (at most the sink's grace, plus a
    /// second), because aborting it after the server accepted would send it again after
    /// the restart. Returns once the driver's task ended.
    pub async fn stop(&self) {
        self.stop.send_replace(true);
        let task = self.task.lock().expect("task lock").take();
        if let Some(mut t) = task {
            let wait = self.grace + Duration::from_secs(1);
            if self.busy.load(Ordering::SeqCst) {
                tracing::info!(
                    sink = self.kind.as_str(),
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

/// The driver's task: attempts what is due, one at a time, else waits for a new delivery,
/// the next due time or the stop.
async fn drive<S: Transport>(
    mut run: Run<S>,
    mut rx: mpsc::UnboundedReceiver<Delivery>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        while let Ok(d) = rx.try_recv() {
            run.push(d, 0);
        }
        if *stop.borrow_and_update() {
            run.queue.stop();
        }
        if let Some(a) = run.queue.poll(run.now()) {
            run.attempt(a).await;
            continue;
        }
        if run.queue.stopped() {
            return;
        }
        let wake = run.queue.next_due().map(|d| run.epoch + d);
        tokio::select! {
            m = rx.recv() => match m {
                Some(d) => run.push(d, 0),
                None => return,
            },
            _ = tokio::time::sleep_until(wake.unwrap_or(run.epoch)), if wake.is_some() => {}
            changed = stop.changed() => if changed.is_err() {
                return;
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
        let now = self.now();
        if !self.queue.push(key, d, failures, now) {
            tracing::debug!("a delivery already queued was queued again: attempted once");
        }
    }

    /// Makes one attempt and records its result.
    async fn attempt(&mut self, a: Attempt<Delivery>) {
        self.busy.store(true, Ordering::SeqCst);
        let result = self.sink.attempt(&a.item).await;
        self.busy.store(false, Ordering::SeqCst);
        let outcome = match result {
            Ok(()) => Outcome::Delivered,
            Err(_) => Outcome::Failed,
        };
        let then = self.queue.on_result(a.ticket, outcome, self.now());
        let d = &a.item;
        let health = self.sink.health_name(d);
        match result {
            Ok(()) => {
                tracing::info!(id = %d.notice.id, sink = %d.sink, "{}", S::SENT);
                metrics::inc(self.sink.counters().0, 1);
                health::sink_ok(&health);
                if let Err(e) = self
                    .store
                    .mark_delivered(&d.notice.id, &d.sink, clock::now())
                {
                    tracing::error!(error = %e, id = %d.notice.id, sink = %d.sink, "could not mark a delivery made");
                }
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
