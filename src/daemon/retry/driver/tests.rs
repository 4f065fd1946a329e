//! The driver against a real store, with a sink that records its attempts. The runtime's
//! clock is paused: it jumps to the next due time when every task waits, so the backoff
//! is followed on virtual time, without sleeps.

use super::*;
use crate::notice::{Kind, Plan};
use std::collections::VecDeque;
use std::sync::LazyLock;
use tokio::sync::Notify;

/// A sink whose attempts answer from a script (`Ok` when it runs out), each reported on
/// `seen` with its time since the test's start; attempts from the `gate`'s number on
/// (counted from 0) wait for its notification before they answer.
struct Scripted {
    name: String,
    answers: Mutex<VecDeque<Result<(), String>>>,
    seen: mpsc::UnboundedSender<(String, Duration)>,
    gate: Option<(usize, Arc<Notify>)>,
    made: std::sync::atomic::AtomicUsize,
    epoch: tokio::time::Instant,
}

impl Transport for Scripted {
    const KIND: SinkKind = SinkKind::Webhook;
    const SENT: &'static str = "test delivered";
    const NOT_SENT: &'static str = "test not delivered";

    fn health_name(&self, _: &Delivery) -> String {
        self.name.clone()
    }

    fn grace(&self) -> Duration {
        Duration::from_secs(30)
    }

    /// Counters of their own: the daemon's metrics are not touched by these tests.
    fn counters(&self) -> (&'static Counter, &'static Counter) {
        static MADE: LazyLock<Counter> = LazyLock::new(Counter::default);
        static FAILED: LazyLock<Counter> = LazyLock::new(Counter::default);
        (&MADE, &FAILED)
    }

    async fn attempt(&self, d: &Delivery) -> Result<(), String> {
        let at = clock::monotonic() - self.epoch;
        let _ = self.seen.send((d.sink.to_string(), at));
        let made = self.made.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if let Some((from, g)) = &self.gate {
            if made >= *from {
                g.notified().await;
            }
        }
        let next = self.answers.lock().unwrap().pop_front();
        next.unwrap_or(Ok(()))
    }
}

type Seen = mpsc::UnboundedReceiver<(String, Duration)>;

/// The webhook sink of this name.
fn hook(name: &str) -> Sink {
    Sink::Webhook(name.into())
}

/// A store holding one notice with deliveries to the webhooks `sinks`, and its path (the driver opens
/// its own connection, as in the daemon).
fn store(name: &str, sinks: &[&str]) -> (Store, std::path::PathBuf, Arc<Notice>) {
    let dir = std::env::temp_dir().join(format!("yingji-retry-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let path = dir.join("yingji.db");
    let mut s = Store::open(&path).unwrap();
    let mut n = Notice::new(Plan::CoalSupply, "supply", Kind::Activate, "L2").reason("一");
    n.id = "coal_supply/shuozhou/supply/1".into();
    n.region = "shuozhou".into();
    let sinks: Vec<Sink> = sinks.iter().map(|s| hook(s)).collect();
    let tx = s.begin().unwrap();
    tx.outbox(&n, &sinks).unwrap();
    tx.commit().unwrap();
    (s, path, Arc::new(n))
}

type Gate = Option<(usize, Arc<Notify>)>;

fn sink(name: &str, answers: &[Result<(), String>], gate: Gate) -> (Scripted, Seen) {
    let (tx, rx) = mpsc::unbounded_channel();
    let s = Scripted {
        name: name.into(),
        answers: Mutex::new(answers.iter().cloned().collect()),
        seen: tx,
        gate,
        made: Default::default(),
        epoch: clock::monotonic(),
    };
    (s, rx)
}

fn delivery(n: &Arc<Notice>, sink: &str) -> Delivery {
    Delivery {
        notice: Arc::clone(n),
        sink: hook(sink),
    }
}

fn failures_in_row(name: &str) -> u64 {
    health::sinks_json()[name]["failures_in_row"]
        .as_u64()
        .unwrap_or(0)
}

#[tokio::test(start_paused = true)]
async fn failures_follow_the_backoff_degrade_the_sink_and_the_delivery_is_marked_once() {
    let (store, db, n) = store("backoff", &["a"]);
    let fail = || Err("refused".to_string());
    // The fourth attempt waits for the gate: the three failures before it are recorded.
    let gate = Arc::new(Notify::new());
    let answers = [fail(), fail(), fail()];
    let (s, mut seen) = sink("test:backoff", &answers, Some((3, Arc::clone(&gate))));
    let d = Driver::start(
        s,
        Backoff::WEBHOOK,
        Store::open(&db).unwrap(),
        vec![(delivery(&n, "a"), 0)],
    );
    let mut times = Vec::new();
    for _ in 0..4 {
        times.push(seen.recv().await.unwrap().1.as_secs());
    }
    assert_eq!(times, [0, 2, 6, 14], "2 s, 4 s, 8 s after each failure");
    assert_eq!(
        failures_in_row("test:backoff"),
        3,
        "degraded after 3 in a row"
    );
    assert!(health::problems()
        .iter()
        .any(|p| p.contains("test:backoff")));
    assert_eq!(store.pending(SinkKind::Webhook).unwrap()[0].attempts, 3);
    gate.notify_one();
    d.stop().await;
    assert_eq!(
        failures_in_row("test:backoff"),
        0,
        "recovered by the success"
    );
    assert!(store.is_delivered(&n.id, &hook("a")).unwrap());
    assert!(store.pending(SinkKind::Webhook).unwrap().is_empty());
    assert!(seen.try_recv().is_err(), "never attempted again");
}

#[tokio::test(start_paused = true)]
async fn a_failure_is_recorded_in_the_outbox_and_a_restart_continues_its_backoff() {
    let (store, db, n) = store("count", &["a"]);
    let (s, mut seen) = sink("test:count", &[Err("HTTP 500".into())], None);
    let d = Driver::start(
        s,
        Backoff::WEBHOOK,
        Store::open(&db).unwrap(),
        vec![(delivery(&n, "a"), 0)],
    );
    seen.recv().await.unwrap();
    d.stop().await;
    let p = store.pending(SinkKind::Webhook).unwrap();
    assert_eq!(
        (p.len(), p[0].attempts),
        (1, 1),
        "left in the outbox, counted"
    );
    // The next start: due at once, and its next failure waits 4 s, not 2 s.
    let pending = vec![(delivery(&n, "a"), p[0].attempts)];
    let (s, mut seen) = sink("test:count", &[Err("HTTP 500".into())], None);
    let d = Driver::start(s, Backoff::WEBHOOK, Store::open(&db).unwrap(), pending);
    assert_eq!(seen.recv().await.unwrap().1, Duration::ZERO);
    assert_eq!(seen.recv().await.unwrap().1, Duration::from_secs(4));
    d.stop().await;
    assert!(store.is_delivered(&n.id, &hook("a")).unwrap());
}

#[tokio::test(start_paused = true)]
async fn stop_lets_the_attempts_in_hand_finish_and_starts_no_other() {
    let (store, db, n) = store("stop", &["a", "b"]);
    let gate = Arc::new(Notify::new());
    let (s, mut seen) = sink("test:stop", &[], Some((0, Arc::clone(&gate))));
    // A second notice to "a": its lane is busy with the first, so it waits.
    let mut later = (*n).clone();
    later.id = "coal_supply/shuozhou/supply/2".into();
    let later = Arc::new(later);
    let pending = vec![
        (delivery(&n, "a"), 0),
        (delivery(&n, "b"), 0),
        (delivery(&later, "a"), 0),
    ];
    let d = Driver::start(s, Backoff::WEBHOOK, Store::open(&db).unwrap(), pending);
    let mut started = vec![seen.recv().await.unwrap().0, seen.recv().await.unwrap().0];
    started.sort();
    assert_eq!(
        started,
        ["webhook:a", "webhook:b"],
        "two destinations at once"
    );
    // The stop begins while both are in hand; the servers answer afterwards.
    tokio::join!(d.stop(), async { gate.notify_waiters() });
    for sink in ["a", "b"] {
        assert!(
            store.is_delivered(&n.id, &hook(sink)).unwrap(),
            "the attempt in hand to {sink} was let finish and marked"
        );
    }
    assert!(
        seen.try_recv().is_err(),
        "no attempt started after the stop (the second notice to a waits for the next start)"
    );
}

#[tokio::test(start_paused = true)]
async fn a_destination_never_has_two_attempts_in_hand() {
    let (_store, db, n) = store("order", &["a"]);
    let gate = Arc::new(Notify::new());
    // Every attempt waits for the gate: one destination never has two in hand.
    let (s, mut seen) = sink("test:order", &[], Some((0, Arc::clone(&gate))));
    let notices: Vec<Arc<Notice>> = (1..=3)
        .map(|i| {
            let mut m = (*n).clone();
            m.id = format!("coal_supply/shuozhou/supply/{i}");
            Arc::new(m)
        })
        .collect();
    let pending = notices.iter().map(|m| (delivery(m, "a"), 0)).collect();
    let d = Driver::start(s, Backoff::WEBHOOK, Store::open(&db).unwrap(), pending);
    seen.recv().await.unwrap();
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(
            seen.try_recv().is_err(),
            "the next waits for the one in hand"
        );
        gate.notify_one();
        seen.recv().await.unwrap();
    }
    gate.notify_one();
    d.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_delivery_queued_again_while_queued_is_attempted_once() {
    let (store, db, n) = store("twice", &["a", "b"]);
    let (s, mut seen) = sink("test:twice", &[], None);
    let d = Driver::start(
        s,
        Backoff::WEBHOOK,
        Store::open(&db).unwrap(),
        vec![(delivery(&n, "a"), 0)],
    );
    d.submit(Arc::clone(&n), hook("a"));
    d.submit(Arc::clone(&n), hook("b"));
    assert_eq!(seen.recv().await.unwrap().0, "webhook:a");
    assert_eq!(seen.recv().await.unwrap().0, "webhook:b");
    d.stop().await;
    assert!(seen.try_recv().is_err(), "a once");
    assert!(store.pending(SinkKind::Webhook).unwrap().is_empty());
}
