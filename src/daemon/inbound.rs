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
use crate::daemon::{http, CoreEvent};

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
    let mut topics = input_topics(cfg);
    topics.extend(echo_topics(cfg));
    let marker = marker_topic(cfg, &s.client_id);
    topics.push(marker.clone());
    let nonce = format!(
        "{}-{}",
        std::process::id(),
        crate::clock::now().timestamp_millis()
    );
    let mut marker_sent = false;
    let cfg = Arc::new(cfg.clone());
    let closed = Arc::new(AtomicBool::new(false));
    let (ack_tx, mut ack_rx) = mpsc::unbounded_channel::<AckToken>();
    let c = client.clone();
    let stale_acks = ack_tx.clone();
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
                    http::set(&http::METRICS.mqtt_in_up, true);
                    tracing::info!(%host, port, session_present, topics = topics.len(), "input connection up; subscribing");
                    if c.try_subscribe_all(&topics).is_err() {
                        tracing::error!("could not queue the subscriptions");
                    }
                    if !marker_sent {
                        // Queued after SUBSCRIBE: comes back after the echoes queued
                        // for this session while the daemon was away.
                        marker_sent = c
                            .try_publish(&marker, true, false, nonce.clone().into_bytes())
                            .is_ok();
                    }
                }
                Ok(Ev::Message(m)) => {
                    if shut.load(Ordering::SeqCst) {
                        continue;
                    }
                    if m.topic == marker {
                        if m.payload == nonce.as_bytes() {
                            tracing::info!("echoes of earlier publications drained");
                            if core.send(CoreEvent::Drained).is_err() {
                                break;
                            }
                        }
                        let _ = stale_acks.send(m.token);
                        continue;
                    }
                    if let Some(sink) = echo_sink(&cfg, &m.topic) {
                        let id = echo_id(sink, &m.payload);
                        if core.send(CoreEvent::Echo(id, sink, m.token)).is_err() {
                            break;
                        }
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
                    http::set(&http::METRICS.mqtt_in_up, false);
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
