//! MQTT in: subscribes to the input topics of every configured region with a stable
//! client id and a persistent session, resubscribes on every CONNACK, reconnects with
//! backoff, and hands each message to the core. Messages are acknowledged (manual acks)
//! only when the core says their journal transaction committed.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::daemon::core::Incoming;
use crate::daemon::mqtt::{self, AckToken, Backoff, Client, Ev, Settings};
use crate::daemon::sink::MqttSink;
use crate::daemon::{metrics, CoreEvent};

/// What the input session subscribes to (besides the marker and proof topics): with
/// `split_regions`, `{root}/{region}/#` for each configured region; else `{root}/#`, so
/// that inputs for unknown regions reach the daemon and are rejected with a reason.
/// (One filter, not `{root}/{region}/#` plus `{root}/+/{feed}`: MQTT 5 brokers deliver a
/// message once per matching subscription, and an input must not arrive twice.)
pub fn input_topics(cfg: &Config) -> Vec<String> {
    if cfg.mqtt.as_ref().is_some_and(|m| m.split_regions) {
        cfg.regions
            .iter()
            .map(|r| format!("{}/{}/#", cfg.topic_root, r.id))
            .collect()
    } else {
        vec![format!("{}/#", cfg.topic_root)]
    }
}

/// The marker topic of this client id.
pub fn marker_topic(cfg: &Config, client_id: &str) -> String {
    format!("{}/_yingji/marker/{client_id}", cfg.topic_root)
}

/// What a message on the input session is.
#[derive(Debug, PartialEq)]
enum Route {
    /// An input (or what claims to be one: `input::parse` rejects unknown feeds/regions).
    Input,
    /// One of our own notices or CAP alerts routed back (the sink it belongs to).
    Echo(MqttSink),
    /// Not ours to handle: our own outputs (state, rejected), `_`-prefixed segments
    /// (ops, other daemons' markers and proofs), other daemons' regions. Acked, nothing
    /// else: so a rejection can never loop.
    Ignore,
}

fn route(cfg: &Config, topic: &str) -> Route {
    let Some(rest) = topic
        .strip_prefix(cfg.topic_root.as_str())
        .and_then(|r| r.strip_prefix('/'))
    else {
        return Route::Ignore;
    };
    if rest.split('/').any(|p| p.starts_with('_')) {
        return Route::Ignore;
    }
    // The region, and what follows it (at most three segments matter): no allocation
    // per message.
    let mut parts = rest.split('/');
    let region = parts.next().unwrap_or("");
    let known = cfg.region_index(region).is_some();
    let output = match (parts.next(), parts.next(), parts.next()) {
        (Some("notice"), Some(_), None) => Some(Some(MqttSink::Notice)),
        (Some("cap"), Some(_), None) => Some(Some(MqttSink::Cap)),
        (Some("state"), ..) | (Some("rejected"), None, _) => Some(None),
        _ => None,
    };
    match (known, output) {
        (true, Some(Some(sink))) => Route::Echo(sink),
        (_, Some(_)) => Route::Ignore,
        (false, None) if cfg.mqtt.as_ref().is_some_and(|m| m.split_regions) => Route::Ignore,
        (_, None) => Route::Input,
    }
}

/// What the core hands back to acknowledge a message: the packet, and the connection
/// (generation) it came on. Acks of an earlier connection are dropped: the broker
/// redelivers those messages, and acking by packet id on a new connection could
/// acknowledge a different message that reuses the id.
#[derive(Debug)]
pub struct InToken {
    gen: u64,
    /// The message's place in its connection's arrival order (0, 1, …).
    seq: u64,
    token: AckToken,
    /// When it came off the network (monotonic, for the bench's timing line).
    received: std::time::Instant,
    /// Its place in the input connection's window to the core ([`IN_FLIGHT`]).
    permit: Option<OwnedSemaphorePermit>,
}

/// How many messages of the input connection may wait for the core (handed on, not yet
/// taken by the core). When the core is behind, the input task stops polling the
/// connection: rumqttc stops reading, the socket's buffers fill and TCP holds the broker
/// back, so a queue of any length waits in the broker, not in the daemon's memory. Two
/// core batches: the next one is ready while the core handles one.
pub const IN_FLIGHT: usize = 2 * crate::daemon::MAX_BATCH;

impl InToken {
    /// When the message came off the network.
    pub fn received(&self) -> std::time::Instant {
        self.received
    }

    /// The core took the message off its channel: its place in the window is free.
    /// Released on receipt, not on the ack, so that nothing the core holds back (an echo
    /// waiting for the drain, an input waiting for an earlier commit) can stop the input
    /// connection from reading what the core waits for (the marker).
    pub fn taken(&mut self) {
        self.permit = None;
    }
}

/// Puts acknowledgements back in arrival order. MQTT requires QoS 1 PUBACKs in the order
/// the PUBLISHes arrived (3.1.1 §4.6, 5.0 §4.6), and rumqttd (the embedded broker) drops a
/// connection on the first out-of-order PUBACK; the core acks an input only after its
/// journal commit, while an ignored message or an echo is done at once. Every message
/// handed on is acked eventually (inputs, rejected ones, echoes, proofs, markers, ignored),
/// so a gap only waits for an earlier message's commit.
#[derive(Debug, Default)]
struct AckOrder {
    gen: u64,
    next: u64,
    held: std::collections::BTreeMap<u64, AckToken>,
}

impl AckOrder {
    /// Takes one acknowledgement of connection `current`'s messages; returns those now
    /// due, in arrival order. Acks of an earlier connection are dropped (the broker
    /// redelivers those messages, and their packet ids may be reused).
    fn take(&mut self, t: InToken, current: u64) -> Vec<AckToken> {
        if t.gen != current {
            tracing::debug!("ack of an earlier connection dropped (the broker redelivers)");
            return Vec::new();
        }
        if t.gen != self.gen {
            *self = AckOrder {
                gen: t.gen,
                ..AckOrder::default()
            };
        }
        self.held.insert(t.seq, t.token);
        let mut due = Vec::new();
        while let Some(token) = self.held.remove(&self.next) {
            due.push(token);
            self.next += 1;
        }
        due
    }
}

/// The running input side.
pub struct Inbound {
    client: Client,
    /// Set when shutting down: further messages are neither handed on nor acked (the
    /// broker redelivers them to the persistent session next time).
    closed: Arc<AtomicBool>,
    /// The connection is up (a DISCONNECT can go out; otherwise there is nothing to wait for).
    up: Arc<AtomicBool>,
    events: JoinHandle<()>,
    acks: JoinHandle<()>,
}

/// The event-loop task's state.
struct Loop {
    cfg: Arc<Config>,
    client: Client,
    core: std::sync::mpsc::Sender<CoreEvent>,
    /// The window of messages handed to the core and not yet taken ([`IN_FLIGHT`]).
    window: Arc<Semaphore>,
    /// Weak: the ack task ends once the core (the strong sender) is gone and its acks sent.
    acks: mpsc::WeakUnboundedSender<InToken>,
    /// Connection generation: one more on every CONNACK.
    gen: Arc<AtomicU64>,
    /// The next message's place in this connection's arrival order.
    seq: u64,
    closed: Arc<AtomicBool>,
    up: Arc<AtomicBool>,
    topics: Vec<String>,
    marker: String,
    /// This instance's proof topic (see echo.rs).
    proof: String,
    /// This run's marker payload (a stale marker of an earlier run is only acked).
    nonce: String,
    marker_sent: bool,
    host: String,
    port: u16,
    client_id: String,
}

/// An input's payload parsed here, at its arrival, off the core's thread: during a
/// drain the core's thread is the daemon's bottleneck and parsing was about a sixth of
/// its time (docs/performance.md). Parsing is pure (`input::parse`), so this is the
/// message or rejection the core would make of it at that time. A panic leaves the
/// parsing to the core, which refuses the input behind its own panic boundary
/// (core/mod.rs `guarded_ingest`).
fn pre_parse(
    cfg: &Config,
    topic: &str,
    payload: &[u8],
    at: crate::time::Ts,
) -> Option<Result<crate::input::Message, crate::input::Rejection>> {
    std::panic::catch_unwind(|| crate::input::parse(cfg, topic, payload, at)).ok()
}

/// Whether the loop goes on.
enum Flow {
    Go,
    Stop,
}

impl Loop {
    fn on_connack(&mut self, session_present: bool) {
        self.up.store(true, Ordering::SeqCst);
        self.seq = 0;
        if self.gen.fetch_add(1, Ordering::SeqCst) == 0 {
            // The echo wait counts from here, not from the process start.
            let _ = self.core.send(CoreEvent::Connected);
        }
        metrics::set(&metrics::METRICS.mqtt_in_up, true);
        tracing::info!(host = %self.host, port = self.port, session_present, topics = self.topics.len(), "input connection up; subscribing");
        if self.client.try_subscribe_all(&self.topics).is_err() {
            tracing::error!("could not queue the subscriptions");
        }
        if !self.marker_sent {
            // Queued after SUBSCRIBE: comes back after the echoes queued for this
            // session while the daemon was away.
            let nonce = self.nonce.clone().into_bytes();
            self.marker_sent = self
                .client
                .try_publish(&self.marker, true, false, nonce)
                .is_ok();
        }
    }

    async fn on_message(&mut self, m: mqtt::InMsg) -> Flow {
        if self.closed.load(Ordering::SeqCst) {
            return Flow::Go;
        }
        let received = crate::clock::monotonic().into_std();
        let mut token = InToken {
            gen: self.gen.load(Ordering::SeqCst),
            seq: self.seq,
            token: m.token,
            received,
            permit: None,
        };
        self.seq += 1;
        let r = route(&self.cfg, &m.topic);
        let to_core = m.topic == self.proof || (m.topic != self.marker && r != Route::Ignore);
        if to_core {
            // Waits while the core is behind (backpressure); the ack path never waits
            // here (acks go core → ack task → client, none through this task's sends).
            match Arc::clone(&self.window).acquire_owned().await {
                Ok(p) => token.permit = Some(p),
                Err(_) => return Flow::Stop,
            }
        }
        let ev = if m.topic == self.marker {
            let ours = m.payload == self.nonce.as_bytes();
            if let Some(a) = self.acks.upgrade() {
                let _ = a.send(token);
            }
            if !ours {
                return Flow::Go;
            }
            tracing::info!("echoes of earlier publications drained");
            CoreEvent::Drained
        } else if m.topic == self.proof {
            CoreEvent::Proof(m.payload, token)
        } else {
            match r {
                Route::Echo(sink) => CoreEvent::Echo(sink, m.payload, token),
                Route::Ignore => {
                    tracing::debug!(topic = %m.topic, "not an input: acked and ignored");
                    if let Some(a) = self.acks.upgrade() {
                        let _ = a.send(token);
                    }
                    return Flow::Go;
                }
                Route::Input => {
                    let arrived = crate::clock::now();
                    let parsed = pre_parse(&self.cfg, &m.topic, &m.payload, arrived);
                    CoreEvent::Input(Incoming {
                        topic: m.topic,
                        payload: m.payload,
                        pkid: m.pkid,
                        dup: m.dup,
                        retained: m.retain,
                        arrived: Some(arrived),
                        parsed,
                        token,
                    })
                }
            }
        };
        match self.core.send(ev) {
            Ok(()) => Flow::Go,
            Err(_) => Flow::Stop,
        }
    }

    async fn run(mut self, mut ev: mqtt::EventLoop) {
        let mut backoff = Backoff::default();
        loop {
            let closed = self.closed.load(Ordering::SeqCst);
            match ev.poll().await {
                Ok(Ev::ConnAck { session_present }) => {
                    backoff.connected(crate::clock::monotonic().into_std());
                    self.on_connack(session_present);
                }
                Ok(Ev::Message(m)) => {
                    if let Flow::Stop = self.on_message(m).await {
                        break;
                    }
                }
                Ok(Ev::OutDisconnect) if closed => break,
                Ok(_) => {}
                Err(_) if closed => break,
                Err(e) => {
                    let d = backoff.lost("input", &self.client_id, &e);
                    metrics::set(&metrics::METRICS.mqtt_in_up, false);
                    self.up.store(false, Ordering::SeqCst);
                    tokio::time::sleep(d).await;
                }
            }
        }
    }
}

/// Starts the input client; returns it and the sender the core acknowledges through.
pub fn start(
    cfg: &Config,
    s: &Settings,
    core: std::sync::mpsc::Sender<CoreEvent>,
) -> (Inbound, mpsc::UnboundedSender<InToken>) {
    let (client, ev) = mqtt::client(s, &s.client_id, false, true);
    let marker = marker_topic(cfg, &s.client_id);
    let proof = crate::daemon::echo::proof_topic(cfg, &s.client_id);
    let mut topics = input_topics(cfg);
    if cfg.mqtt.as_ref().is_some_and(|m| m.split_regions) {
        topics.push(marker.clone());
        topics.push(proof.clone());
    }
    let closed = Arc::new(AtomicBool::new(false));
    let up = Arc::new(AtomicBool::new(false));
    let (ack_tx, mut ack_rx) = mpsc::unbounded_channel::<InToken>();
    let c = client.clone();
    let gen = Arc::new(AtomicU64::new(0));
    let current = Arc::clone(&gen);
    let acks = tokio::spawn(async move {
        let mut order = AckOrder::default();
        while let Some(t) = ack_rx.recv().await {
            for token in order.take(t, current.load(Ordering::SeqCst)) {
                c.ack(&token).await;
            }
        }
    });
    let lp = Loop {
        cfg: Arc::new(cfg.clone()),
        client: client.clone(),
        core,
        window: Arc::new(Semaphore::new(IN_FLIGHT)),
        acks: ack_tx.downgrade(),
        gen,
        seq: 0,
        closed: Arc::clone(&closed),
        up: Arc::clone(&up),
        topics,
        marker,
        proof,
        nonce: format!(
            "{}-{}",
            std::process::id(),
            crate::clock::now().timestamp_millis()
        ),
        marker_sent: false,
        host: s.host.clone(),
        port: s.port,
        client_id: s.client_id.clone(),
    };
    let events = tokio::spawn(lp.run(ev));
    (
        Inbound {
            client,
            closed,
            up,
            events,
            acks,
        },
        ack_tx,
    )
}

impl Inbound {
    /// Stops handing messages to the core (first step of a shutdown).
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
    }

    /// After the core has stopped (and dropped its ack sender): sends the last acks, then
    /// DISCONNECT.
    pub async fn disconnect(self) {
        self.close();
        if !self.up.load(Ordering::SeqCst) {
            // Broker down: no ack or DISCONNECT can go out; the session keeps the
            // unacknowledged messages for the next start.
            self.acks.abort();
            self.events.abort();
            return;
        }
        let _ = tokio::time::timeout(Duration::from_secs(2), self.acks).await;
        self.client.try_disconnect();
        if tokio::time::timeout(Duration::from_secs(2), self.events)
            .await
            .is_err()
        {
            tracing::warn!("input connection did not close in time");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tok(gen: u64, seq: u64) -> InToken {
        InToken {
            gen,
            seq,
            token: AckToken::V4 {
                pkid: seq as u16 + 1,
                qos: rumqttc::QoS::AtLeastOnce,
            },
            received: crate::clock::monotonic().into_std(),
            permit: None,
        }
    }

    fn pkids(v: Vec<AckToken>) -> Vec<u16> {
        v.into_iter()
            .map(|t| match t {
                AckToken::V4 { pkid, .. } | AckToken::V5 { pkid, .. } => pkid,
            })
            .collect()
    }

    /// Regression: an ignored message acked before an earlier input's journal commit made
    /// rumqttd drop the input connection ("out of order ack") after every notice.
    #[test]
    fn acks_go_out_in_arrival_order() {
        let mut o = AckOrder::default();
        assert!(o.take(tok(1, 1), 1).is_empty(), "waits for message 0");
        assert!(o.take(tok(1, 2), 1).is_empty());
        assert_eq!(pkids(o.take(tok(1, 0), 1)), vec![1, 2, 3]);
        assert_eq!(pkids(o.take(tok(1, 3), 1)), vec![4]);
        // An ack of an earlier connection is dropped; a new connection starts at 0.
        assert!(o.take(tok(1, 4), 2).is_empty());
        assert_eq!(pkids(o.take(tok(2, 0), 2)), vec![1]);
    }

    #[test]
    fn routes() {
        let cfg = Config::from_toml("").unwrap().config;
        assert_eq!(
            route(&cfg, "ers/shuozhou/notice/coal_supply"),
            Route::Echo(MqttSink::Notice)
        );
        assert_eq!(
            route(&cfg, "ers/shuozhou/cap/coal_supply"),
            Route::Echo(MqttSink::Cap)
        );
        assert_eq!(route(&cfg, "ers/shuozhou/air/aqi"), Route::Input);
        assert_eq!(route(&cfg, "ers/shuozhou/air/bogus"), Route::Input);
        assert_eq!(route(&cfg, "ers/nowhere/air/aqi"), Route::Input);
        for t in [
            "ers/shuozhou/notice",
            "ers/shuozhou/notice/coal_supply/x",
            "ers/shuozhou/cap",
            "ers/shuozhou/rejected/x",
            "ers/shuozhou",
            "ers/",
        ] {
            assert_eq!(route(&cfg, t), Route::Input, "{t}");
        }
        for t in [
            "ers/shuozhou/rejected",
            "ers/shuozhou/state",
            "ers/shuozhou/state/coal_supply/x",
            "ers/shuozhou/state/coal_supply",
            "ers/nowhere/notice/coal_supply",
            "ers/nowhere/rejected",
            "ers/_yingji/ops",
            "ers/_yingji/marker/x",
            "ers/shuozhou/_x/aqi",
            "other/shuozhou/air/aqi",
        ] {
            assert_eq!(route(&cfg, t), Route::Ignore, "{t}");
        }
        let split = Config::from_toml("[mqtt]\nsplit_regions = true\n")
            .unwrap()
            .config;
        assert_eq!(route(&split, "ers/nowhere/air/aqi"), Route::Ignore);
        assert_eq!(input_topics(&split), vec!["ers/shuozhou/#".to_string()]);
        assert_eq!(input_topics(&cfg), vec!["ers/#".to_string()]);
    }
}
