//! MQTT out: notices (QoS 1) and CAP alerts (QoS 1) from the outbox, retained state
//! documents (QoS 1) and rejections (QoS 0), in the order they were made.
//!
//! A notice's delivery to a sink is marked in the store only when the broker
//! acknowledged it (PUBACK). The connection uses a clean session: after a reconnect,
//! everything not acknowledged is sent again by us, in order (rumqttc's own
//! retransmission is off, so it cannot add a second copy).
//!
//! Three parts, so that the core never waits on the connection: [`Publisher::submit`]
//! only puts the core's messages on a channel; the *feeder* task takes them in order,
//! renders each notice (a CAP alert reads its track's history from the store) and its
//! proof outside the connection's lock, queues both and hands them to rumqttc; the
//! *event* task polls the connection and, on a PUBACK, hands the acknowledged delivery
//! back to the feeder, which marks it in the store (after it has handed over what waits
//! to go out). The event task itself never touches the store while the connection is up,
//! so a delivery mark waiting for the core's write transaction never holds back the
//! socket.
//!
//! Packet ids: rumqttc reports `Outgoing::Publish(pkid)` for each publish request in
//! the order the requests were queued, so the n-th such event belongs to the n-th item
//! handed over.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use tokio::task::JoinHandle;

use crate::clock;
use crate::config::Config;
use crate::daemon::mqtt::{self, Backoff, Client, Ev, Settings};
use crate::daemon::sink::{MqttSink, Sink};
use crate::daemon::store::Store;
use crate::daemon::{echo, metrics, render};
use crate::notice::Notice;

/// Something to publish.
#[derive(Debug, Clone)]
pub enum Out {
    /// A notice to one MQTT sink of the outbox; marked delivered on PUBACK.
    Tracked { notice: Arc<Notice>, sink: MqttSink },
    /// Anything else (state, rejections).
    Plain {
        topic: String,
        payload: Vec<u8>,
        qos1: bool,
        retain: bool,
    },
}

impl Out {
    fn qos1(&self) -> bool {
        match self {
            Out::Tracked { .. } => true,
            Out::Plain { qos1, .. } => *qos1,
        }
    }
}

/// A message queued for the connection, rendered.
struct Item {
    order: u64,
    topic: String,
    payload: Vec<u8>,
    qos1: bool,
    retain: bool,
    /// The notice and MQTT sink whose delivery this is (marked on PUBACK).
    tracked: Option<(Arc<Notice>, MqttSink)>,
}

/// The connection's side: what waits, what is handed to rumqttc, what waits for PUBACK.
struct State {
    proof_topic: String,
    client: Client,
    connected: bool,
    next_order: u64,
    /// Not yet handed to rumqttc.
    waiting: VecDeque<Item>,
    /// Handed over, waiting for their packet id.
    handed: VecDeque<Item>,
    /// Sent with QoS 1, waiting for PUBACK, by packet id.
    inflight: BTreeMap<u16, Item>,
}

/// What the feeder and the event task share.
struct Shared {
    state: Mutex<State>,
    /// The publisher's own connection to the database: renders CAP alerts (reads) and
    /// marks deliveries.
    store: Mutex<Store>,
    /// QoS 1 messages submitted and not yet queued in `state` (read under its lock).
    submitted: AtomicUsize,
    /// Deliveries acknowledged by the broker and not yet marked in the store
    /// (incremented under the state lock, decremented once marked).
    marking: AtomicUsize,
}

impl Shared {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("publisher lock")
    }
}

/// What the feeder takes, in the order sent.
enum Feed {
    /// Messages to publish ([`Publisher::submit`]).
    Outs(Vec<Out>),
    /// Deliveries the broker acknowledged, to mark in the store.
    Acked(Vec<(Arc<Notice>, MqttSink)>),
}

/// Handle on the publishing side.
#[derive(Clone)]
pub struct Publisher {
    shared: Arc<Shared>,
    feed: UnboundedSender<Feed>,
    task: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl Publisher {
    /// Starts the output connection; `store` is its own connection to the database;
    /// what it renders for each notice goes into `rendered` for the echo check.
    pub fn start(
        cfg: Arc<Config>,
        s: &Settings,
        store: Store,
        echo_key: Vec<u8>,
        rendered: Arc<echo::Rendered>,
    ) -> Publisher {
        let id = format!("{}-out", s.client_id);
        let (client, ev) = mqtt::client(s, &id, true, false);
        let proof_topic = echo::proof_topic(&cfg, &s.client_id);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                proof_topic: proof_topic.clone(),
                client,
                connected: false,
                next_order: 0,
                waiting: VecDeque::new(),
                handed: VecDeque::new(),
                inflight: BTreeMap::new(),
            }),
            store: Mutex::new(store),
            submitted: AtomicUsize::new(0),
            marking: AtomicUsize::new(0),
        });
        let (feed, rx) = tokio::sync::mpsc::unbounded_channel();
        let feeder = Feeder {
            cfg,
            echo_key,
            rendered,
            proof_topic,
            shared: Arc::clone(&shared),
        };
        // A thread of its own: rendering and marking use SQLite, which may wait for the
        // core's write transaction; that must not hold a runtime worker.
        std::thread::Builder::new()
            .name("yingji-out".into())
            .spawn(move || feeder.run(rx))
            .expect("could not start the output thread");
        let task = tokio::spawn(run(Arc::clone(&shared), ev, feed.clone(), id));
        Publisher {
            shared,
            feed,
            task: Arc::new(Mutex::new(Some(task))),
        }
    }

    /// Queues messages, in order, without waiting: the feeder renders them and puts
    /// each notice after its proof (echo.rs).
    pub fn submit(&self, outs: impl IntoIterator<Item = Out>) {
        let outs: Vec<Out> = outs.into_iter().collect();
        if outs.is_empty() {
            return;
        }
        let qos1 = outs.iter().filter(|o| o.qos1()).count();
        self.shared.submitted.fetch_add(qos1, Ordering::SeqCst);
        if self.feed.send(Feed::Outs(outs)).is_err() {
            self.shared.submitted.fetch_sub(qos1, Ordering::SeqCst);
            tracing::error!("output thread gone: messages not queued (sent after the restart)");
        }
    }

    /// Tracked deliveries not yet acknowledged and marked, plus QoS 1 messages still
    /// queued.
    pub fn unfinished(&self) -> usize {
        let st = self.shared.state();
        // Both counters are read under the state lock: a message leaves `submitted` and
        // a delivery enters `marking` under it, so none is missed between the two.
        self.shared.submitted.load(Ordering::SeqCst)
            + self.shared.marking.load(Ordering::SeqCst)
            + st.waiting.iter().filter(|i| i.qos1).count()
            + st.handed.iter().filter(|i| i.qos1).count()
            + st.inflight.len()
    }

    /// Waits (at most `within`) until everything QoS 1 is acknowledged, then disconnects.
    pub async fn flush_and_stop(&self, within: Duration) {
        let deadline = crate::clock::monotonic() + within;
        let connected = || self.shared.state().connected;
        // With the broker down nothing can be flushed: do not wait for it.
        while self.unfinished() > 0 && connected() && crate::clock::monotonic() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Acknowledged deliveries still being marked need no broker: let them finish.
        while self.shared.marking.load(Ordering::SeqCst) > 0 && crate::clock::monotonic() < deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let left = self.unfinished();
        if left > 0 {
            tracing::warn!(
                left,
                "stopping with deliveries not acknowledged; they are sent after the restart"
            );
        }
        self.shared.state().client.try_disconnect();
        let task = self.task.lock().expect("task lock").take();
        if let (Some(t), false) = (&task, connected()) {
            t.abort();
            return;
        }
        if let Some(t) = task {
            if tokio::time::timeout(Duration::from_secs(2), t)
                .await
                .is_err()
            {
                tracing::warn!("output connection did not close in time");
            }
        }
    }
}

/// The feeder: renders what the core submits and queues it, marks what was acknowledged.
struct Feeder {
    cfg: Arc<Config>,
    /// This instance's echo key and proof topic (echo.rs).
    echo_key: Vec<u8>,
    proof_topic: String,
    shared: Arc<Shared>,
    /// What was published, for the core's echo check (echo.rs).
    rendered: Arc<echo::Rendered>,
}

/// Messages the feeder takes off its channel at most before it marks what was acked.
const FEED_BATCH: usize = 64;

impl Feeder {
    /// Until every sender is gone: what is submitted is queued and handed over first,
    /// then the acknowledged deliveries that came meanwhile are marked, in one
    /// transaction.
    fn run(self, mut rx: UnboundedReceiver<Feed>) {
        while let Some(first) = rx.blocking_recv() {
            let mut acked = Vec::new();
            let mut next = Some(first);
            let mut taken = 0;
            while let Some(msg) = next.take() {
                match msg {
                    Feed::Outs(outs) => self.queue(outs),
                    Feed::Acked(a) => acked.extend(a),
                }
                taken += 1;
                if taken < FEED_BATCH {
                    next = rx.try_recv().ok();
                }
            }
            if !acked.is_empty() {
                self.mark(acked);
            }
        }
    }

    fn queue(&self, outs: Vec<Out>) {
        for out in outs {
            let qos1 = out.qos1();
            let items = self.render(out);
            let mut st = self.shared.state();
            for item in items {
                st.queue(item);
            }
            if qos1 {
                self.shared.submitted.fetch_sub(1, Ordering::SeqCst);
            }
            st.pump();
        }
    }

    /// A message as it goes out: a notice rendered once (its proof is of these bytes),
    /// after its proof.
    fn render(&self, out: Out) -> Vec<Item> {
        let item = |topic, payload, qos1, retain, tracked| Item {
            order: 0,
            topic,
            payload,
            qos1,
            retain,
            tracked,
        };
        match out {
            Out::Tracked { notice, sink } => {
                let payload = {
                    let store = self.shared.store.lock().expect("publisher store lock");
                    echo::payload(&self.cfg, &store, &notice, sink)
                };
                let p = echo::proof(&self.echo_key, sink, &notice.id, &payload);
                self.rendered.put(&notice.id, sink, &payload);
                let topic = match sink {
                    MqttSink::Notice => render::notice_topic(&self.cfg, &notice),
                    MqttSink::Cap => render::cap_topic(&self.cfg, &notice),
                };
                vec![
                    item(self.proof_topic.clone(), p.into_bytes(), true, false, None),
                    item(topic, payload, true, false, Some((notice, sink))),
                ]
            }
            Out::Plain {
                topic,
                payload,
                qos1,
                retain,
            } => vec![item(topic, payload, qos1, retain, None)],
        }
    }

    fn mark(&self, acked: Vec<(Arc<Notice>, MqttSink)>) {
        let n = acked.len();
        let marks: Vec<(&str, Sink)> = acked
            .iter()
            .map(|(notice, sink)| (notice.id.as_str(), Sink::from(*sink)))
            .collect();
        let r = self
            .shared
            .store
            .lock()
            .expect("publisher store lock")
            .mark_all_delivered(&marks, clock::now());
        if let Err(e) = r {
            tracing::error!(error = %e, deliveries = n, "could not mark deliveries (sent again after a restart)");
        }
        self.shared.marking.fetch_sub(n, Ordering::SeqCst);
    }
}

impl State {
    fn queue(&mut self, mut item: Item) {
        item.order = self.next_order;
        self.next_order += 1;
        self.waiting.push_back(item);
    }

    /// Hands waiting items to rumqttc while connected and its channel has room.
    fn pump(&mut self) {
        while self.connected {
            let Some(item) = self.waiting.front() else {
                break;
            };
            if self
                .client
                .try_publish(&item.topic, item.qos1, item.retain, item.payload.clone())
                .is_err()
            {
                break;
            }
            let item = self.waiting.pop_front().expect("front exists");
            self.handed.push_back(item);
        }
    }

    /// After a (re)connect: everything QoS 1 not acknowledged goes again, in order.
    fn requeue(&mut self, store: &Mutex<Store>) {
        let mut all: Vec<Item> = self.handed.drain(..).collect();
        all.extend(std::mem::take(&mut self.inflight).into_values());
        all.extend(self.waiting.drain(..));
        // Drop what the broker already proved it has (our echo subscription saw it), and
        // the proof just before it (Feeder::render): a proof without its echo would hold
        // the input session's acks for echo::PROOF_HOLD.
        let delivered: std::collections::BTreeSet<u64> = {
            let store = store.lock().expect("publisher store lock");
            all.iter()
                .filter(|i| match &i.tracked {
                    Some((notice, sink)) => store
                        .is_delivered(&notice.id, &Sink::from(*sink))
                        .unwrap_or(false),
                    None => false,
                })
                .map(|i| i.order)
                .collect()
        };
        let proof_topic = &self.proof_topic;
        all.retain(|i| match &i.tracked {
            Some(_) => !delivered.contains(&i.order),
            None if i.topic == *proof_topic => !delivered.contains(&(i.order + 1)),
            None => i.qos1,
        });
        all.sort_by_key(|i| i.order);
        self.waiting = all.into();
    }

    /// Handles an event of the connection; returns the deliveries the broker just
    /// acknowledged (counted in `marking` until the feeder marked them).
    fn on_event(&mut self, ev: Ev, shared: &Shared) -> Vec<(Arc<Notice>, MqttSink)> {
        let mut acked = Vec::new();
        match ev {
            Ev::ConnAck { .. } => {
                self.connected = true;
                metrics::set(&metrics::METRICS.mqtt_out_up, true);
                self.requeue(&shared.store);
                tracing::info!(queued = self.waiting.len(), "output connection up");
            }
            Ev::OutPublish(pkid) => {
                if let Some(item) = self.handed.pop_front() {
                    if item.qos1 {
                        self.inflight.insert(pkid, item);
                    }
                }
            }
            Ev::PubAck(pkid) => {
                if let Some(Item {
                    tracked: Some(t), ..
                }) = self.inflight.remove(&pkid)
                {
                    metrics::inc(&metrics::METRICS.mqtt_delivered, 1);
                    shared.marking.fetch_add(1, Ordering::SeqCst);
                    acked.push(t);
                }
            }
            _ => {}
        }
        self.pump();
        acked
    }
}

async fn run(
    shared: Arc<Shared>,
    mut ev: mqtt::EventLoop,
    feed: UnboundedSender<Feed>,
    client_id: String,
) {
    let mut backoff = Backoff::default();
    loop {
        match ev.poll().await {
            Ok(Ev::OutDisconnect) => break,
            Ok(e) => {
                if matches!(e, Ev::ConnAck { .. }) {
                    backoff.connected(crate::clock::monotonic().into_std());
                }
                let acked = shared.state().on_event(e, &shared);
                if !acked.is_empty() {
                    let n = acked.len();
                    if feed.send(Feed::Acked(acked)).is_err() {
                        shared.marking.fetch_sub(n, Ordering::SeqCst);
                        tracing::error!("output thread gone: deliveries not marked (sent again after a restart)");
                    }
                }
            }
            Err(e) => {
                shared.state().connected = false;
                metrics::set(&metrics::METRICS.mqtt_out_up, false);
                let d = backoff.lost("output", &client_id, &e);
                tokio::time::sleep(d).await;
            }
        }
    }
}
