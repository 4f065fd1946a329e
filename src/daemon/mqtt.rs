//! One face over rumqttc's MQTT 3.1.1 and MQTT 5 clients, and the connection settings
//! (URL, TLS, credentials with secrets from files or `${ENV}`, read by src/secret.rs)
//! from `[mqtt]`.
//!
//! rumqttc traps handled here (STACK-NOTES.md): the event loop is polled by its own task;
//! packet size limits are raised so that an oversized message is rejected by us with a
//! reason instead of disconnecting the client; v5 sessions get an expiry so that a
//! persistent session survives a disconnect; keep-alive is clamped to what each version
//! accepts.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use rumqttc::v5 as r5;

use crate::config::MqttConfig;
use crate::secret::{expand_env, redact_url, secret};

/// Largest packet the client accepts: well above `max_payload_bytes`, which is enforced
/// by rejecting (an over-limit packet would make rumqttc drop the connection, and the
/// broker would redeliver it forever to a persistent session).
pub const MAX_PACKET: usize = 256 * 1024 * 1024;

/// Resolved connection settings (`Debug` hides the password).
#[derive(Clone)]
pub struct Settings {
    pub host: String,
    pub port: u16,
    /// `Some` for mqtts: the CA bundle (PEM), or `None` inside for the system roots.
    pub tls: Option<Option<Vec<u8>>>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub client_id: String,
    /// 4 (3.1.1) or 5.
    pub protocol: u8,
    pub keep_alive: Duration,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls.is_some())
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("client_id", &self.client_id)
            .field("protocol", &self.protocol)
            .finish()
    }
}

impl Settings {
    /// Settings from `[mqtt]`; `default_id` when no client id is configured.
    pub fn from_config(m: &MqttConfig, default_id: &str) -> anyhow::Result<Settings> {
        let url = expand_env(&m.url)?;
        let shown = redact_url(&url);
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| anyhow::anyhow!("mqtt.url: expected mqtt://host:port, got {shown:?}"))?;
        let tls = match scheme {
            "mqtt" | "tcp" => None,
            "mqtts" | "ssl" => Some(match &m.ca_file {
                Some(p) => Some(read(p)?),
                None => None,
            }),
            other => anyhow::bail!("mqtt.url: unknown scheme {other:?} (mqtt or mqtts)"),
        };
        let authority = rest.split(['/', '?']).next().unwrap_or("");
        // `user:password@host:port`: the credentials are used (unless given apart) and
        // never shown.
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let (url_user, url_password) = match userinfo {
            Some(u) => match u.split_once(':') {
                Some((n, p)) => (Some(n.to_string()), Some(p.to_string())),
                None => (Some(u.to_string()), None),
            },
            None => (None, None),
        };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => (
                h.to_string(),
                p.parse()
                    .map_err(|_| anyhow::anyhow!("mqtt.url: bad port in {shown:?}"))?,
            ),
            None => (
                hostport.to_string(),
                if tls.is_some() { 8883 } else { 1883 },
            ),
        };
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        if !matches!(m.protocol, 4 | 5) {
            anyhow::bail!("mqtt.protocol: 4 (3.1.1) or 5, got {}", m.protocol);
        }
        Ok(Settings {
            host,
            port,
            tls,
            username: m
                .username
                .as_deref()
                .map(expand_env)
                .transpose()?
                .or(url_user),
            password: secret(m.password.as_deref(), m.password_file.as_deref())?.or(url_password),
            client_id: match &m.client_id {
                Some(id) => expand_env(id)?,
                None => default_id.to_string(),
            },
            protocol: m.protocol,
            keep_alive: Duration::from_secs(m.keep_alive_s),
        })
    }

    /// Plain local settings (the embedded broker).
    pub fn local(port: u16, client_id: &str) -> Settings {
        Settings {
            host: "127.0.0.1".into(),
            port,
            tls: None,
            username: None,
            password: None,
            client_id: client_id.into(),
            protocol: 4,
            keep_alive: Duration::from_secs(30),
        }
    }
}

fn read(p: &PathBuf) -> anyhow::Result<Vec<u8>> {
    std::fs::read(p).map_err(|e| anyhow::anyhow!("mqtt.ca_file {}: {e}", p.display()))
}

fn transport(s: &Settings) -> rumqttc::Transport {
    match &s.tls {
        None => rumqttc::Transport::tcp(),
        Some(None) => rumqttc::Transport::tls_with_default_config(),
        Some(Some(ca)) => rumqttc::Transport::tls_with_config(rumqttc::TlsConfiguration::Simple {
            ca: ca.clone(),
            alpn: None,
            client_auth: None,
        }),
    }
}

/// What the event loop reported, the same for both protocol versions.
#[derive(Debug)]
pub enum Ev {
    ConnAck {
        session_present: bool,
    },
    Message(InMsg),
    PubAck(u16),
    /// A publish request left the client with this packet id (0 for QoS 0).
    OutPublish(u16),
    /// Our own DISCONNECT went out.
    OutDisconnect,
    Other,
}

/// An incoming message and what is needed to acknowledge it.
#[derive(Debug)]
pub struct InMsg {
    pub topic: String,
    pub payload: Vec<u8>,
    pub pkid: u16,
    pub dup: bool,
    /// Set by the broker on a retained message sent because of a (re)subscription.
    pub retain: bool,
    pub token: AckToken,
}

/// What is kept of a received packet to acknowledge it later (manual acks): its packet id
/// and QoS, all rumqttc's `ack` reads; the ack builds a packet without topic or payload
/// from them. (The received packet's payload is a slice of the connection's read buffer:
/// a token that kept it kept that buffer allocated until the ack; a boxed empty packet
/// per message was an allocation per message.)
#[derive(Debug, Clone, Copy)]
pub enum AckToken {
    V4 { pkid: u16, qos: rumqttc::QoS },
    V5 { pkid: u16, qos: r5::mqttbytes::QoS },
}

impl AckToken {
    fn v4(p: &rumqttc::Publish) -> AckToken {
        AckToken::V4 {
            pkid: p.pkid,
            qos: p.qos,
        }
    }

    fn v5(p: &r5::mqttbytes::v5::Publish) -> AckToken {
        AckToken::V5 {
            pkid: p.pkid,
            qos: p.qos,
        }
    }
}

/// A client handle (clonable, cheap).
#[derive(Clone)]
pub enum Client {
    V4(rumqttc::AsyncClient),
    V5(r5::AsyncClient),
}

/// The event loop; must be polled continuously by one task.
pub enum EventLoop {
    V4(Box<rumqttc::EventLoop>),
    V5(Box<r5::EventLoop>),
}

/// A last will: published (QoS 1) by the broker when the connection is lost without a
/// DISCONNECT.
#[derive(Debug, Clone)]
pub struct Will {
    pub topic: String,
    pub payload: Vec<u8>,
    pub retain: bool,
}

/// Connects lazily (the first poll connects). `clean`: start a fresh session;
/// `manual_acks`: incoming QoS 1 messages are acked only through [`Client::ack`].
pub fn client(
    s: &Settings,
    client_id: &str,
    clean: bool,
    manual_acks: bool,
) -> (Client, EventLoop) {
    client_with_will(s, client_id, clean, manual_acks, None)
}

/// [`client`] with a last will.
pub fn client_with_will(
    s: &Settings,
    client_id: &str,
    clean: bool,
    manual_acks: bool,
    will: Option<&Will>,
) -> (Client, EventLoop) {
    const CAP: usize = 1024;
    if s.protocol == 5 {
        let mut o = r5::MqttOptions::new(client_id, &s.host, s.port);
        o.set_transport(transport(s))
            .set_keep_alive(s.keep_alive.max(Duration::from_secs(5)))
            .set_clean_start(clean)
            .set_manual_acks(manual_acks)
            .set_max_packet_size(Some(MAX_PACKET as u32))
            .set_request_channel_capacity(CAP);
        if !clean {
            // Without an expiry a v5 session ends with the connection.
            o.set_session_expiry_interval(Some(u32::MAX));
        }
        if let Some(w) = will {
            o.set_last_will(r5::mqttbytes::v5::LastWill::new(
                &w.topic,
                w.payload.clone(),
                r5::mqttbytes::QoS::AtLeastOnce,
                w.retain,
                None,
            ));
        }
        if let Some(u) = &s.username {
            o.set_credentials(u, s.password.clone().unwrap_or_default());
        }
        o.set_network_options(network());
        let (c, e) = r5::AsyncClient::new(o, CAP);
        (Client::V5(c), EventLoop::V5(Box::new(e)))
    } else {
        let mut o = rumqttc::MqttOptions::new(client_id, &s.host, s.port);
        let ka = if s.keep_alive.is_zero() {
            s.keep_alive
        } else {
            s.keep_alive.max(Duration::from_secs(1))
        };
        o.set_transport(transport(s))
            .set_keep_alive(ka)
            .set_clean_session(clean)
            .set_manual_acks(manual_acks)
            .set_max_packet_size(MAX_PACKET, MAX_PACKET)
            .set_request_channel_capacity(CAP);
        if let Some(w) = will {
            o.set_last_will(rumqttc::LastWill::new(
                &w.topic,
                w.payload.clone(),
                rumqttc::QoS::AtLeastOnce,
                w.retain,
            ));
        }
        if let Some(u) = &s.username {
            o.set_credentials(u, s.password.clone().unwrap_or_default());
        }
        let (c, mut e) = rumqttc::AsyncClient::new(o, CAP);
        e.set_network_options(network());
        (Client::V4(c), EventLoop::V4(Box::new(e)))
    }
}

/// TCP_NODELAY: a notice, its proof and an acknowledgement are small writes that must
/// go out at once, not wait (Nagle) for the broker to acknowledge the previous one.
fn network() -> rumqttc::NetworkOptions {
    let mut n = rumqttc::NetworkOptions::new();
    n.set_tcp_nodelay(true);
    n
}

impl EventLoop {
    /// The next event; an error means the connection is down (poll again to reconnect,
    /// after a backoff).
    pub async fn poll(&mut self) -> Result<Ev, Lost> {
        match self {
            EventLoop::V4(e) => {
                use rumqttc::{Event, Outgoing, Packet};
                Ok(match e.poll().await.map_err(Lost::v4)? {
                    Event::Incoming(Packet::ConnAck(c)) => Ev::ConnAck {
                        session_present: c.session_present,
                    },
                    Event::Incoming(Packet::Publish(p)) => Ev::Message(InMsg {
                        token: AckToken::v4(&p),
                        payload: p.payload.to_vec(),
                        pkid: p.pkid,
                        dup: p.dup,
                        retain: p.retain,
                        topic: p.topic,
                    }),
                    Event::Incoming(Packet::PubAck(a)) => Ev::PubAck(a.pkid),
                    Event::Outgoing(Outgoing::Publish(id)) => Ev::OutPublish(id),
                    Event::Outgoing(Outgoing::Disconnect) => Ev::OutDisconnect,
                    _ => Ev::Other,
                })
            }
            EventLoop::V5(e) => {
                use r5::mqttbytes::v5::Packet;
                use r5::Event;
                use rumqttc::Outgoing;
                Ok(match e.poll().await.map_err(Lost::v5)? {
                    Event::Incoming(Packet::ConnAck(c)) => Ev::ConnAck {
                        session_present: c.session_present,
                    },
                    Event::Incoming(Packet::Publish(p)) => Ev::Message(InMsg {
                        topic: String::from_utf8_lossy(&p.topic).into_owned(),
                        payload: p.payload.to_vec(),
                        pkid: p.pkid,
                        dup: p.dup,
                        retain: p.retain,
                        token: AckToken::v5(&p),
                    }),
                    Event::Incoming(Packet::PubAck(a)) => Ev::PubAck(a.pkid),
                    Event::Outgoing(Outgoing::Publish(id)) => Ev::OutPublish(id),
                    Event::Outgoing(Outgoing::Disconnect) => Ev::OutDisconnect,
                    _ => Ev::Other,
                })
            }
        }
    }
}

/// The request channel is full (the event loop is behind); try again later.
#[derive(Debug)]
pub struct Busy;

impl Client {
    /// Queues a publish without waiting. QoS 1 when `qos1`, else 0.
    pub fn try_publish(
        &self,
        topic: &str,
        qos1: bool,
        retain: bool,
        payload: Vec<u8>,
    ) -> Result<(), Busy> {
        match self {
            Client::V4(c) => {
                let q = if qos1 {
                    rumqttc::QoS::AtLeastOnce
                } else {
                    rumqttc::QoS::AtMostOnce
                };
                c.try_publish(topic, q, retain, payload).map_err(|_| Busy)
            }
            Client::V5(c) => {
                let q = if qos1 {
                    r5::mqttbytes::QoS::AtLeastOnce
                } else {
                    r5::mqttbytes::QoS::AtMostOnce
                };
                c.try_publish(topic, q, retain, payload).map_err(|_| Busy)
            }
        }
    }

    /// Acknowledges a received message.
    pub async fn ack(&self, t: &AckToken) {
        let r = match (self, *t) {
            (Client::V4(c), AckToken::V4 { pkid, qos }) => {
                let mut p = rumqttc::Publish::new(String::new(), qos, Vec::new());
                p.pkid = pkid;
                c.ack(&p).await.map_err(|e| e.to_string())
            }
            (Client::V5(c), AckToken::V5 { pkid, qos }) => {
                let mut p = r5::mqttbytes::v5::Publish::new(String::new(), qos, Vec::new(), None);
                p.pkid = pkid;
                c.ack(&p).await.map_err(|e| e.to_string())
            }
            _ => Err("ack token of the other protocol version".into()),
        };
        if let Err(e) = r {
            tracing::warn!(error = %e, "could not queue an ack");
        }
    }

    /// Subscribes to every topic with QoS 1.
    pub fn try_subscribe_all(&self, topics: &[String]) -> Result<(), Busy> {
        match self {
            Client::V4(c) => c
                .try_subscribe_many(
                    topics.iter().map(|t| {
                        rumqttc::SubscribeFilter::new(t.clone(), rumqttc::QoS::AtLeastOnce)
                    }),
                )
                .map_err(|_| Busy),
            Client::V5(c) => c
                .try_subscribe_many(topics.iter().map(|t| {
                    r5::mqttbytes::v5::Filter::new(t.clone(), r5::mqttbytes::QoS::AtLeastOnce)
                }))
                .map_err(|_| Busy),
        }
    }

    /// Sends DISCONNECT (the event loop must keep being polled for it to go out).
    pub fn try_disconnect(&self) {
        let _ = match self {
            Client::V4(c) => c.try_disconnect().map_err(|e| e.to_string()),
            Client::V5(c) => c.try_disconnect().map_err(|e| e.to_string()),
        };
    }
}

/// Why a connection went down.
#[derive(Debug)]
pub struct Lost {
    pub error: String,
    /// The broker said another client took our client id (MQTT 5 DISCONNECT 0x8E).
    /// MQTT 3.1.1 has no reason: the broker just closes the connection.
    pub taken_over: bool,
}

impl std::fmt::Display for Lost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.error)
    }
}

impl Lost {
    fn v4(e: rumqttc::ConnectionError) -> Lost {
        Lost {
            error: e.to_string(),
            taken_over: false,
        }
    }

    fn v5(e: r5::ConnectionError) -> Lost {
        let taken_over = matches!(
            &e,
            r5::ConnectionError::MqttState(r5::StateError::ServerDisconnect {
                reason_code: r5::mqttbytes::v5::DisconnectReasonCode::SessionTakenOver,
                ..
            })
        );
        Lost {
            error: e.to_string(),
            taken_over,
        }
    }
}

/// A connection that stayed up this long resets the backoff when it drops.
pub const STABLE: Duration = Duration::from_secs(10);

/// Reconnect backoff: 100 ms doubling to 10 s. It is reset only by a connection that
/// stayed up for [`STABLE`]: a broker that accepts us and drops us at once (another
/// client took our client id, each knocking the other off) does not get a reconnect
/// every 100 ms.
pub struct Backoff {
    next: Duration,
    up_since: Option<Instant>,
}

/// How a lost connection is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// The broker said so (MQTT 5).
    TakenOver,
    /// Dropped this soon after the broker accepted it: with MQTT 3.1.1, what a takeover
    /// looks like.
    ShortLived(Duration),
    /// Anything else (broker down, network).
    Other,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            next: Duration::from_millis(100),
            up_since: None,
        }
    }
}

impl Backoff {
    /// The broker accepted the connection (CONNACK) at `now`.
    pub fn connected(&mut self, now: Instant) {
        self.up_since = Some(now);
    }

    /// The connection was lost at `now`: how to read it and how long to wait.
    pub fn lost_at(&mut self, now: Instant, taken_over: bool) -> (Cause, Duration) {
        let up = self
            .up_since
            .take()
            .map(|t| now.saturating_duration_since(t));
        let cause = match up {
            _ if taken_over => Cause::TakenOver,
            Some(up) if up < STABLE => Cause::ShortLived(up),
            Some(_) => {
                self.next = Duration::from_millis(100);
                Cause::Other
            }
            None => Cause::Other,
        };
        let d = self.next;
        self.next = (self.next * 2).min(Duration::from_secs(10));
        (cause, d)
    }

    /// The connection `conn` of `client_id` was lost now: logs the cause (a takeover as
    /// an error) and returns the delay before reconnecting.
    pub fn lost(&mut self, conn: &str, client_id: &str, e: &Lost) -> Duration {
        let (cause, d) = self.lost_at(crate::clock::monotonic().into_std(), e.taken_over);
        let retry_in_ms = d.as_millis() as u64;
        match cause {
            Cause::TakenOver => tracing::error!(
                error = %e, client_id, retry_in_ms,
                "{conn} connection lost: another client took our client id (two daemons with one client id?)"
            ),
            Cause::ShortLived(up) => tracing::error!(
                error = %e, client_id, retry_in_ms, up_ms = up.as_millis() as u64,
                "{conn} connection lost right after the broker accepted it: another client with our client id? (the broker gave no reason: mosquitto gives none, MQTT 3.1.1 has none)"
            ),
            Cause::Other => {
                tracing::warn!(error = %e, client_id, retry_in_ms, "{conn} connection lost")
            }
        }
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_from_url_and_secrets() {
        let dir = std::env::temp_dir().join(format!("yingji-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("pw");
        std::fs::write(&f, "s3cret\n").unwrap();
        std::env::set_var("YINGJI_TEST_MQTT_USER", "ops");
        let m = MqttConfig {
            url: "mqtts://broker.example.org".into(),
            username: Some("${YINGJI_TEST_MQTT_USER}".into()),
            password_file: Some(f),
            protocol: 5,
            ..Default::default()
        };
        let s = Settings::from_config(&m, "yingji-shuozhou").unwrap();
        assert_eq!((s.host.as_str(), s.port), ("broker.example.org", 8883));
        assert_eq!(s.username.as_deref(), Some("ops"));
        assert_eq!(s.password.as_deref(), Some("s3cret"));
        assert_eq!(s.client_id, "yingji-shuozhou");
        assert!(matches!(s.tls, Some(None)));
        let m = MqttConfig {
            url: "mqtt://10.0.0.1:1884".into(),
            ..Default::default()
        };
        let s = Settings::from_config(&m, "x").unwrap();
        assert_eq!(
            (s.host.as_str(), s.port, s.tls.is_none()),
            ("10.0.0.1", 1884, true)
        );
        let bad = MqttConfig {
            url: "http://x".into(),
            ..Default::default()
        };
        assert!(Settings::from_config(&bad, "x").is_err());
        assert!(expand_env("${YINGJI_TEST_NOT_SET_ANYWHERE}").is_err());
    }

    #[test]
    fn backoff_grows_across_short_connections_and_resets_after_a_stable_one() {
        let t0 = crate::clock::monotonic().into_std();
        let ms = Duration::from_millis;
        let mut b = Backoff::default();
        // Broker down: every attempt fails before a CONNACK.
        assert_eq!(b.lost_at(t0, false), (Cause::Other, ms(100)));
        assert_eq!(b.lost_at(t0, false), (Cause::Other, ms(200)));
        // Accepted, then knocked off at once, again and again: the delay keeps growing.
        let mut delays = Vec::new();
        for i in 0..8u32 {
            let at = t0 + Duration::from_secs(i.into());
            b.connected(at);
            let (cause, d) = b.lost_at(at + ms(50), i % 2 == 0);
            let want = if i % 2 == 0 {
                Cause::TakenOver
            } else {
                Cause::ShortLived(ms(50))
            };
            assert_eq!(cause, want);
            delays.push(d.as_millis());
        }
        assert_eq!(delays, [400, 800, 1600, 3200, 6400, 10000, 10000, 10000]);
        // A connection that lived long enough starts over at 100 ms.
        b.connected(t0);
        assert_eq!(b.lost_at(t0 + STABLE, false), (Cause::Other, ms(100)));
        // A takeover after a long connection is still a takeover, logged as one.
        b.connected(t0);
        assert_eq!(
            b.lost_at(t0 + STABLE * 2, true),
            (Cause::TakenOver, ms(200))
        );
    }

    /// Issue 9 item 8: credentials in the URL are used, never shown.
    #[test]
    fn url_credentials_are_taken_and_never_shown() {
        let m = MqttConfig {
            url: "mqtt://ops:MQTTSECRET@10.0.0.1:1884".into(),
            ..Default::default()
        };
        let s = Settings::from_config(&m, "x").unwrap();
        assert_eq!((s.host.as_str(), s.port), ("10.0.0.1", 1884));
        assert_eq!(s.username.as_deref(), Some("ops"));
        assert_eq!(s.password.as_deref(), Some("MQTTSECRET"));
        assert!(!format!("{s:?}").contains("MQTTSECRET"), "{s:?}");
        for bad in [
            "mqtx://ops:MQTTSECRET@h",
            "mqtt://ops:MQTTSECRET@h:port",
            "ops:MQTTSECRET@h",
        ] {
            let m = MqttConfig {
                url: bad.into(),
                ..Default::default()
            };
            let e = Settings::from_config(&m, "x").unwrap_err().to_string();
            assert!(!e.contains("MQTTSECRET"), "{e}");
        }
    }
}
