//! MQTT in: subscribes to the input topics of every configured region with a stable
//! client id and a persistent session, resubscribes on every CONNACK, reconnects with
//! backoff, and hands each message to the core. Messages are acknowledged (manual acks)
//! only when the core says their journal transaction committed.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::daemon::core::Incoming;
use crate::daemon::mqtt::{self, AckToken, Backoff, Client, Ev, Settings};
use crate::daemon::{http, CoreEvent};

/// Every input topic of every configured region.
pub fn input_topics(cfg: &Config) -> Vec<String> {
    cfg.regions
        .iter()
        .flat_map(|r| {
            crate::input::TOPIC_SUFFIXES
                .iter()
                .map(move |s| format!("{}/{}/{s}", cfg.topic_root, r.id))
        })
        .collect()
}

/// Our own notice and CAP topics, subscribed on this persistent session: the broker
/// routing a notice back proves it accepted it, even when the daemon was killed before it
/// saw the PUBACK. On a restart these echoes are drained (up to a marker message) before
/// anything undelivered is sent again, so nothing is published twice.
pub fn echo_topics(cfg: &Config) -> Vec<String> {
    cfg.regions
        .iter()
        .flat_map(|r| {
            ["notice", "cap"]
                .into_iter()
                .map(move |k| format!("{}/{}/{k}/+", cfg.topic_root, r.id))
        })
        .collect()
}

/// The marker topic of this client id.
pub fn marker_topic(cfg: &Config, client_id: &str) -> String {
    format!("{}/_yingji/marker/{client_id}", cfg.topic_root)
}

/// Which sink an echo topic belongs to (`None`: not an echo).
fn echo_sink(cfg: &Config, topic: &str) -> Option<&'static str> {
    let rest = topic
        .strip_prefix(cfg.topic_root.as_str())?
        .strip_prefix('/')?;
    let mut parts = rest.split('/');
    let (_region, kind, _plan) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    match kind {
        "notice" => Some(crate::daemon::render::SINK_NOTICE),
        "cap" => Some(crate::daemon::render::SINK_CAP),
        _ => None,
    }
}

/// The notice id of an echoed notice (JSON) or CAP alert (XML).
pub fn echo_id(sink: &str, payload: &[u8]) -> Option<String> {
    if sink == crate::daemon::render::SINK_CAP {
        let x = std::str::from_utf8(payload).ok()?;
        let start = x.find("<identifier>")? + "<identifier>".len();
        let end = start + x[start..].find("</identifier>")?;
        return Some(
            x[start..end]
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&quot;", "\"")
                .replace("&apos;", "'")
                .replace("&amp;", "&"),
        );
    }
    let v: serde_json::Value = serde_json::from_slice(payload).ok()?;
    v.get("id")?.as_str().map(str::to_string)
}

/// What the core hands back to acknowledge a message: the packet, and the connection
/// (generation) it came on. Acks of an earlier connection are dropped: the broker
/// redelivers those messages, and acking by packet id on a new connection could
/// acknowledge a different message that reuses the id.
#[derive(Debug)]
pub struct InToken {
    gen: u64,
    token: AckToken,
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
    /// Weak: the ack task ends once the core (the strong sender) is gone and its acks sent.
    acks: mpsc::WeakUnboundedSender<InToken>,
    /// Connection generation: one more on every CONNACK.
    gen: Arc<AtomicU64>,
    closed: Arc<AtomicBool>,
    up: Arc<AtomicBool>,
    topics: Vec<String>,
    marker: String,
    /// This run's marker payload (a stale marker of an earlier run is only acked).
    nonce: String,
    marker_sent: bool,
    host: String,
    port: u16,
    client_id: String,
}

/// Whether the loop goes on.
enum Flow {
    Go,
    Stop,
}

impl Loop {
    fn on_connack(&mut self, session_present: bool) {
        self.up.store(true, Ordering::SeqCst);
        self.gen.fetch_add(1, Ordering::SeqCst);
        http::set(&http::METRICS.mqtt_in_up, true);
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

    fn on_message(&mut self, m: mqtt::InMsg) -> Flow {
        if self.closed.load(Ordering::SeqCst) {
            return Flow::Go;
        }
        let token = InToken {
            gen: self.gen.load(Ordering::SeqCst),
            token: m.token,
        };
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
        } else if let Some(sink) = echo_sink(&self.cfg, &m.topic) {
            CoreEvent::Echo(echo_id(sink, &m.payload), sink, token)
        } else {
            CoreEvent::Input(Incoming {
                topic: m.topic,
                payload: m.payload,
                pkid: m.pkid,
                dup: m.dup,
                arrived: Some(crate::clock::now()),
                token,
            })
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
                    if let Flow::Stop = self.on_message(m) {
                        break;
                    }
                }
                Ok(Ev::OutDisconnect) if closed => break,
                Ok(_) => {}
                Err(_) if closed => break,
                Err(e) => {
                    let d = backoff.lost("input", &self.client_id, &e);
                    http::set(&http::METRICS.mqtt_in_up, false);
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
    let mut topics = input_topics(cfg);
    topics.extend(echo_topics(cfg));
    topics.push(marker.clone());
    let closed = Arc::new(AtomicBool::new(false));
    let up = Arc::new(AtomicBool::new(false));
    let (ack_tx, mut ack_rx) = mpsc::unbounded_channel::<InToken>();
    let c = client.clone();
    let gen = Arc::new(AtomicU64::new(0));
    let current = Arc::clone(&gen);
    let acks = tokio::spawn(async move {
        while let Some(t) = ack_rx.recv().await {
            if t.gen == current.load(Ordering::SeqCst) {
                c.ack(&t.token).await;
            } else {
                tracing::debug!("ack of an earlier connection dropped (the broker redelivers)");
            }
        }
    });
    let lp = Loop {
        cfg: Arc::new(cfg.clone()),
        client: client.clone(),
        core,
        acks: ack_tx.downgrade(),
        gen,
        closed: Arc::clone(&closed),
        up: Arc::clone(&up),
        topics,
        marker,
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

    #[test]
    fn echo_topics_and_ids() {
        let cfg = Config::from_toml("").unwrap().config;
        assert_eq!(
            echo_sink(&cfg, "ers/shuozhou/notice/coal_supply"),
            Some("mqtt:notice")
        );
        assert_eq!(
            echo_sink(&cfg, "ers/shuozhou/cap/coal_supply"),
            Some("mqtt:cap")
        );
        assert_eq!(echo_sink(&cfg, "ers/shuozhou/air/aqi"), None);
        assert_eq!(echo_sink(&cfg, "ers/shuozhou/cmd"), None);
        assert!(!input_topics(&cfg)
            .iter()
            .any(|t| echo_sink(&cfg, t).is_some()));
        assert_eq!(
            echo_id("mqtt:notice", br#"{"id": "coal_supply/shuozhou/supply/3"}"#).as_deref(),
            Some("coal_supply/shuozhou/supply/3")
        );
        assert_eq!(
            echo_id(
                "mqtt:cap",
                b"<alert><identifier>a/b&amp;c</identifier></alert>"
            )
            .as_deref(),
            Some("a/b&c")
        );
        assert_eq!(echo_id("mqtt:notice", b"junk"), None);
    }
}
