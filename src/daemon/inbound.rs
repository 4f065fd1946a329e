//! MQTT in: subscribes to the input topics of every configured region with a stable
//! client id and a persistent session, resubscribes on every CONNACK, reconnects with
//! backoff, and hands each message to the core. Messages are acknowledged (manual acks)
//! only when the core says their journal transaction committed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::daemon::core::Incoming;
use crate::daemon::mqtt::{self, AckToken, Backoff, Client, Ev, Settings};
use crate::daemon::CoreEvent;

/// Input topics (CONTRACT.md "Input topics") under each region.
pub const INPUT_SUFFIXES: [&str; 10] = [
    "coal/stock",
    "coal/output",
    "coal/price",
    "coal/storage",
    "air/aqi",
    "air/forecast",
    "air/province",
    "weather/warning",
    "weather/obs",
    "cmd",
];

/// Every input topic of every configured region.
pub fn input_topics(cfg: &Config) -> Vec<String> {
    cfg.regions
        .iter()
        .flat_map(|r| {
            INPUT_SUFFIXES
                .iter()
                .map(move |s| format!("{}/{}/{s}", cfg.topic_root, r.id))
        })
        .collect()
}

/// The running input side.
pub struct Inbound {
    client: Client,
    /// Set when shutting down: further messages are neither handed on nor acked (the
    /// broker redelivers them to the persistent session next time).
    closed: Arc<AtomicBool>,
    events: JoinHandle<()>,
    acks: JoinHandle<()>,
}

/// Starts the input client; returns it and the sender the core acknowledges through.
pub fn start(
    cfg: &Config,
    s: &Settings,
    core: std::sync::mpsc::Sender<CoreEvent>,
) -> (Inbound, mpsc::UnboundedSender<AckToken>) {
    let (client, mut ev) = mqtt::client(s, &s.client_id, false, true);
    let topics = input_topics(cfg);
    let closed = Arc::new(AtomicBool::new(false));
    let (ack_tx, mut ack_rx) = mpsc::unbounded_channel::<AckToken>();
    let c = client.clone();
    let acks = tokio::spawn(async move {
        while let Some(t) = ack_rx.recv().await {
            c.ack(&t).await;
        }
    });
    let (c, shut) = (client.clone(), Arc::clone(&closed));
    let (host, port) = (s.host.clone(), s.port);
    let events = tokio::spawn(async move {
        let mut backoff = Backoff::default();
        loop {
            match ev.poll().await {
                Ok(Ev::ConnAck { session_present }) => {
                    backoff.reset();
                    tracing::info!(%host, port, session_present, topics = topics.len(), "input connection up; subscribing");
                    if c.try_subscribe_all(&topics).is_err() {
                        tracing::error!("could not queue the subscriptions");
                    }
                }
                Ok(Ev::Message(m)) => {
                    if shut.load(Ordering::SeqCst) {
                        continue;
                    }
                    let inc = Incoming {
                        topic: m.topic,
                        payload: m.payload,
                        pkid: m.pkid,
                        dup: m.dup,
                        token: m.token,
                    };
                    if core.send(CoreEvent::Input(inc)).is_err() {
                        break;
                    }
                }
                Ok(Ev::OutDisconnect) if shut.load(Ordering::SeqCst) => break,
                Ok(_) => {}
                Err(e) => {
                    if shut.load(Ordering::SeqCst) {
                        break;
                    }
                    let d = backoff.next_delay();
                    tracing::warn!(error = %e, retry_in_ms = d.as_millis() as u64, "input connection lost");
                    tokio::time::sleep(d).await;
                }
            }
        }
    });
    (
        Inbound {
            client,
            closed,
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
