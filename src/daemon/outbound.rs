//! MQTT out: notices (QoS 1) and CAP alerts (QoS 1) from the outbox, retained state
//! documents (QoS 1) and rejections (QoS 0), in the order they were made.
//!
//! A notice's delivery to a sink is marked in the store only when the broker
//! acknowledged it (PUBACK). The connection uses a clean session: after a reconnect,
//! everything not acknowledged is sent again by us, in order (rumqttc's own
//! retransmission is off, so it cannot add a second copy).
//!
//! Packet ids: rumqttc reports `Outgoing::Publish(pkid)` for each publish request in
//! the order the requests were queued, so the n-th such event belongs to the n-th item
//! handed over.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

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

struct Item {
    order: u64,
    out: Out,
    /// A tracked notice's payload, rendered once when submitted (its proof is of these
    /// bytes).
    rendered: Option<Vec<u8>>,
}

impl Item {
    fn qos1(&self) -> bool {
        match &self.out {
            Out::Tracked { .. } => true,
            Out::Plain { qos1, .. } => *qos1,
        }
    }
}

struct State {
    cfg: Arc<Config>,
    /// This instance's echo key and proof topic (echo.rs).
    echo_key: Vec<u8>,
    proof_topic: String,
    store: Store,
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

/// Handle on the publishing side.
#[derive(Clone)]
pub struct Publisher {
    state: Arc<Mutex<State>>,
    task: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl Publisher {
    /// Starts the output connection; `store` is its own connection to the database.
    pub fn start(cfg: Arc<Config>, s: &Settings, store: Store, echo_key: Vec<u8>) -> Publisher {
        let id = format!("{}-out", s.client_id);
        let (client, ev) = mqtt::client(s, &id, true, false);
        let state = Arc::new(Mutex::new(State {
            echo_key,
            proof_topic: echo::proof_topic(&cfg, &s.client_id),
            cfg,
            store,
            client,
            connected: false,
            next_order: 0,
            waiting: VecDeque::new(),
            handed: VecDeque::new(),
            inflight: BTreeMap::new(),
        }));
        let task = tokio::spawn(run(Arc::clone(&state), ev, id));
        Publisher {
            state,
            task: Arc::new(Mutex::new(Some(task))),
        }
    }

    /// Queues messages, in order. Each notice goes after its proof (echo.rs).
    pub fn submit(&self, outs: impl IntoIterator<Item = Out>) {
        let mut st = self.state.lock().expect("publisher lock");
        for out in outs {
            let rendered = match &out {
                Out::Tracked { notice, sink } => {
                    let payload = echo::payload(&st.cfg, &st.store, notice, *sink);
                    let p = echo::proof(&st.echo_key, *sink, &notice.id, &payload);
                    let proof = Out::Plain {
                        topic: st.proof_topic.clone(),
                        payload: p.into_bytes(),
                        qos1: true,
                        retain: false,
                    };
                    st.queue(proof, None);
                    Some(payload)
                }
                Out::Plain { .. } => None,
            };
            st.queue(out, rendered);
        }
        st.pump();
    }

    /// Tracked deliveries not yet acknowledged, plus QoS 1 messages still queued.
    pub fn unfinished(&self) -> usize {
        let st = self.state.lock().expect("publisher lock");
        st.waiting.iter().filter(|i| i.qos1()).count()
            + st.handed.iter().filter(|i| i.qos1()).count()
            + st.inflight.len()
    }

    /// Waits (at most `within`) until everything QoS 1 is acknowledged, then disconnects.
    pub async fn flush_and_stop(&self, within: Duration) {
        let deadline = crate::clock::monotonic() + within;
        let connected = || self.state.lock().expect("publisher lock").connected;
        // With the broker down nothing can be flushed: do not wait for it.
        while self.unfinished() > 0 && connected() && crate::clock::monotonic() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let left = self.unfinished();
        if left > 0 {
            tracing::warn!(
                left,
                "stopping with deliveries not acknowledged; they are sent after the restart"
            );
        }
        self.state
            .lock()
            .expect("publisher lock")
            .client
            .try_disconnect();
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

impl State {
    fn queue(&mut self, out: Out, rendered: Option<Vec<u8>>) {
        let order = self.next_order;
        self.next_order += 1;
        self.waiting.push_back(Item {
            order,
            out,
            rendered,
        });
    }

    fn render(&self, item: &Item) -> (String, Vec<u8>, bool, bool) {
        let payload = |notice: &Notice, sink: MqttSink| match &item.rendered {
            Some(p) => p.clone(),
            None => echo::payload(&self.cfg, &self.store, notice, sink),
        };
        match &item.out {
            Out::Tracked { notice, sink } => {
                let topic = match sink {
                    MqttSink::Notice => render::notice_topic(&self.cfg, notice),
                    MqttSink::Cap => render::cap_topic(&self.cfg, notice),
                };
                (topic, payload(notice, *sink), true, false)
            }
            Out::Plain {
                topic,
                payload,
                qos1,
                retain,
            } => (topic.clone(), payload.clone(), *qos1, *retain),
        }
    }

    /// Hands waiting items to rumqttc while connected and its channel has room.
    fn pump(&mut self) {
        while self.connected {
            let Some(item) = self.waiting.front() else {
                break;
            };
            let (topic, payload, qos1, retain) = self.render(item);
            if self
                .client
                .try_publish(&topic, qos1, retain, payload)
                .is_err()
            {
                break;
            }
            let item = self.waiting.pop_front().expect("front exists");
            self.handed.push_back(item);
        }
    }

    /// After a (re)connect: everything QoS 1 not acknowledged goes again, in order.
    fn requeue(&mut self) {
        let mut all: Vec<Item> = self.handed.drain(..).collect();
        all.extend(std::mem::take(&mut self.inflight).into_values());
        all.extend(self.waiting.drain(..));
        // Drop what the broker already proved it has (our echo subscription saw it), and
        // the proof just before it (submit): a proof without its echo would hold the input
        // session's acks for echo::PROOF_HOLD.
        let store = &self.store;
        let delivered: std::collections::BTreeSet<u64> = all
            .iter()
            .filter(|i| match &i.out {
                Out::Tracked { notice, sink } => store
                    .is_delivered(&notice.id, &Sink::from(*sink))
                    .unwrap_or(false),
                Out::Plain { .. } => false,
            })
            .map(|i| i.order)
            .collect();
        let proof_topic = &self.proof_topic;
        all.retain(|i| match &i.out {
            Out::Tracked { .. } => !delivered.contains(&i.order),
            Out::Plain { topic, .. } if topic == proof_topic => !delivered.contains(&(i.order + 1)),
            Out::Plain { qos1, .. } => *qos1,
        });
        all.sort_by_key(|i| i.order);
        self.waiting = all.into();
    }

    fn on_event(&mut self, ev: Ev) {
        match ev {
            Ev::ConnAck { .. } => {
                self.connected = true;
                metrics::set(&metrics::METRICS.mqtt_out_up, true);
                self.requeue();
                tracing::info!(queued = self.waiting.len(), "output connection up");
            }
            Ev::OutPublish(pkid) => {
                if let Some(item) = self.handed.pop_front() {
                    if item.qos1() {
                        self.inflight.insert(pkid, item);
                    }
                }
            }
            Ev::PubAck(pkid) => {
                if let Some(Item {
                    out: Out::Tracked { notice, sink },
                    ..
                }) = self.inflight.remove(&pkid)
                {
                    metrics::inc(&metrics::METRICS.mqtt_delivered, 1);
                    if let Err(e) =
                        self.store
                            .mark_delivered(&notice.id, &sink.into(), clock::now())
                    {
                        tracing::error!(error = %e, id = %notice.id, "could not mark a delivery");
                    }
                }
            }
            _ => {}
        }
        self.pump();
    }
}

async fn run(state: Arc<Mutex<State>>, mut ev: mqtt::EventLoop, client_id: String) {
    let mut backoff = Backoff::default();
    loop {
        match ev.poll().await {
            Ok(Ev::OutDisconnect) => break,
            Ok(e) => {
                if matches!(e, Ev::ConnAck { .. }) {
                    backoff.connected(crate::clock::monotonic().into_std());
                }
                state.lock().expect("publisher lock").on_event(e);
            }
            Err(e) => {
                state.lock().expect("publisher lock").connected = false;
                metrics::set(&metrics::METRICS.mqtt_out_up, false);
                let d = backoff.lost("output", &client_id, &e);
                tokio::time::sleep(d).await;
            }
        }
    }
}
