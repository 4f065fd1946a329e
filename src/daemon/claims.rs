//! One owner per region: several daemons may share one (clustered) broker, each with its
//! own regions, client id and store. At start a daemon claims each of its regions with a
//! retained message on `{root}/_yingji/owner/{region}` (who it is), sent on a connection
//! of its own whose last will clears it: the claim lives exactly as long as the daemon's
//! connection. A daemon that finds a live claim of another instance refuses to start.
//!
//! No consensus of our own: the broker orders the claims. The check per region:
//! subscribe to the owner topic and to a probe topic of this connection, publish a probe,
//! and when the probe comes back every retained claim has been seen (the broker sends
//! retained messages at the subscription, before it handles the later probe). A claim of
//! another instance refuses; none (or our own, left by our previous run) is claimed.
//! Two daemons starting at the same instant both claim; each then sees both claims in the
//! broker's order, and the one whose claim the other's overwrote gives way (exits 2).
//!
//! The instance id is kept in the store (one daemon per store, see lock.rs), so a
//! restarted daemon recognises its own claim when its will has not fired yet.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::daemon::mqtt::{self, Backoff, Client, Ev, Settings, Will};
use crate::daemon::store::Store;

/// The retained claim of `region`.
pub fn owner_topic(cfg: &Config, region: &str) -> String {
    format!("{}/_yingji/owner/{region}", cfg.topic_root)
}

/// The instance id of the daemon that owns this store (made at its first start).
pub fn instance_id(store: &mut Store) -> anyhow::Result<String> {
    store.meta_or_insert("instance_id", || {
        Ok(crate::daemon::ack::random_hex()?[..16].to_string())
    })
}

/// What a claim says (JSON, retained on the owner topic).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Owner {
    pub instance: String,
    pub client_id: String,
    pub pid: u32,
    /// When it claimed (RFC 3339).
    pub since: String,
}

/// A region another live daemon owns.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "region {region} is owned by another live yingji (instance {}, client id {}, pid {}, since {}; \
     retained on {topic}). If that daemon is gone for good, clear its claim: \
     mosquitto_pub -r -n -q 1 -t '{topic}'",
    owner.instance, owner.client_id, owner.pid, owner.since
)]
pub struct Refused {
    pub region: String,
    pub topic: String,
    pub owner: Owner,
}

enum Report {
    Claimed(String),
    Refused(Refused),
}

/// The claims of this daemon, held while it runs.
pub struct Claims {
    regions: usize,
    reports: mpsc::UnboundedReceiver<Report>,
    held: Vec<Held>,
}

/// Whether our claim is (meant to be) retained, and whether the claims are being released.
/// Under one lock, so that a claim racing a release is either cleared by it or not made:
/// publishes are queued in order on the connection.
#[derive(Default)]
struct Hold {
    holding: bool,
    releasing: bool,
}

/// One region's claim connection.
struct Held {
    client: Client,
    topic: String,
    hold: Arc<Mutex<Hold>>,
    /// The connection is up.
    up: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

/// Starts claiming every configured region (one connection each, with its will).
pub fn start(cfg: &Config, s: &Settings, instance: &str) -> Claims {
    let (tx, reports) = mpsc::unbounded_channel();
    let mut held = Vec::new();
    for r in &cfg.regions {
        let topic = owner_topic(cfg, &r.id);
        let client_id = format!("{}-owner-{}", s.client_id, r.id);
        let will = Will {
            topic: topic.clone(),
            payload: Vec::new(),
            retain: true,
        };
        let (client, ev) = mqtt::client_with_will(s, &client_id, true, false, Some(&will));
        let hold = Arc::new(Mutex::new(Hold::default()));
        let up = Arc::new(AtomicBool::new(false));
        let task = RegionClaim {
            hold: Arc::clone(&hold),
            up: Arc::clone(&up),
            region: r.id.clone(),
            probe: format!("{}/_yingji/probe/{client_id}", cfg.topic_root),
            topic: topic.clone(),
            client_id,
            client: client.clone(),
            me: Owner {
                instance: instance.to_string(),
                client_id: s.client_id.clone(),
                pid: std::process::id(),
                since: crate::time::fmt_ts(crate::clock::now()),
            },
            nonce: format!("{instance}-{}", std::process::id()),
            state: State::Connecting,
            reports: tx.clone(),
        };
        held.push(Held {
            client,
            topic,
            hold,
            up,
            task: tokio::spawn(task.run(ev)),
        });
    }
    Claims {
        regions: cfg.regions.len(),
        reports,
        held,
    }
}

impl Claims {
    /// Waits until every region is claimed (`Ok(true)`), one is refused (`Err`), or
    /// `within` passed (`Ok(false)`: the broker did not answer; the claims are made when
    /// it does, and a refusal then stops the daemon through [`Claims::contested`]).
    pub async fn first_check(&mut self, within: Duration) -> Result<bool, Refused> {
        let mut claimed = std::collections::BTreeSet::new();
        let wait = async {
            while claimed.len() < self.regions {
                match self.reports.recv().await {
                    Some(Report::Claimed(r)) => {
                        claimed.insert(r);
                    }
                    Some(Report::Refused(r)) => return Err(r),
                    None => return Ok(false),
                }
            }
            Ok(true)
        };
        tokio::time::timeout(within, wait)
            .await
            .unwrap_or(Ok(false))
    }

    /// Resolves when a region is refused or contested after the start.
    pub async fn contested(&mut self) -> Refused {
        loop {
            match self.reports.recv().await {
                Some(Report::Refused(r)) => return r,
                Some(Report::Claimed(_)) => {}
                None => std::future::pending::<()>().await,
            }
        }
    }

    /// Clears the claims it holds (an empty retained message) and disconnects (which
    /// suppresses the wills: a refused region's will must not clear its owner's claim).
    pub async fn release(self) {
        for h in &self.held {
            let mut hold = h.hold.lock().expect("claim lock");
            hold.releasing = true;
            if hold.holding {
                let _ = h.client.try_publish(&h.topic, true, true, Vec::new());
            }
            drop(hold);
            h.client.try_disconnect();
        }
        for h in self.held {
            if !h.up.load(Ordering::SeqCst) {
                // Broker down: the will clears the claim when the broker notices.
                h.task.abort();
                continue;
            }
            if tokio::time::timeout(Duration::from_secs(2), h.task)
                .await
                .is_err()
            {
                tracing::warn!("a region claim connection did not close in time");
            }
        }
    }
}

#[derive(Debug, PartialEq)]
enum State {
    Connecting,
    /// Subscribed, probe sent: the claim retained on the topic, if any.
    Checking(Option<Owner>),
    /// Our claim is published; `seen_own` once it came back (claims of others before it
    /// were overwritten by ours, claims after it contest ours).
    Held {
        seen_own: bool,
    },
    Refused,
}

struct RegionClaim {
    region: String,
    topic: String,
    probe: String,
    client_id: String,
    client: Client,
    me: Owner,
    nonce: String,
    state: State,
    hold: Arc<Mutex<Hold>>,
    up: Arc<AtomicBool>,
    reports: mpsc::UnboundedSender<Report>,
}

impl RegionClaim {
    async fn run(mut self, mut ev: mqtt::EventLoop) {
        let mut backoff = Backoff::default();
        loop {
            match ev.poll().await {
                Ok(Ev::ConnAck { .. }) => {
                    self.up.store(true, Ordering::SeqCst);
                    backoff.connected(crate::clock::monotonic().into_std());
                    self.on_connack();
                }
                Ok(Ev::Message(m)) => self.on_message(&m.topic, &m.payload),
                Ok(Ev::OutDisconnect) => return,
                Ok(_) => {}
                Err(e) => {
                    self.up.store(false, Ordering::SeqCst);
                    let d = backoff.lost("region claim", &self.client_id, &e);
                    tokio::time::sleep(d).await;
                }
            }
        }
    }

    fn on_connack(&mut self) {
        if self.state == State::Refused {
            return;
        }
        // After a reconnect our will may have cleared the claim: check and claim again.
        self.state = State::Checking(None);
        let topics = [self.topic.clone(), self.probe.clone()];
        if self.client.try_subscribe_all(&topics).is_err()
            || self
                .client
                .try_publish(&self.probe, true, false, self.nonce.clone().into_bytes())
                .is_err()
        {
            tracing::error!(region = %self.region, "could not queue the region claim check");
        }
    }

    fn on_message(&mut self, topic: &str, payload: &[u8]) {
        if topic == self.probe {
            if payload != self.nonce.as_bytes() {
                return;
            }
            if let State::Checking(found) = &self.state {
                match found {
                    Some(o) if o.instance != self.me.instance => {
                        let o = o.clone();
                        self.refuse(o);
                    }
                    _ => self.claim(),
                }
            }
            return;
        }
        if topic != self.topic {
            return;
        }
        let owner: Option<Owner> = if payload.is_empty() {
            None
        } else {
            match serde_json::from_slice(payload) {
                Ok(o) => Some(o),
                Err(e) => {
                    tracing::warn!(region = %self.region, error = %e, "unreadable region claim ignored");
                    return;
                }
            }
        };
        let ours = owner.as_ref().map(|o| o.instance == self.me.instance);
        match (&mut self.state, owner, ours) {
            (State::Checking(found), o, _) => *found = o,
            (State::Held { seen_own }, _, Some(true)) => *seen_own = true,
            (State::Held { seen_own: true }, Some(o), Some(false)) => {
                tracing::error!(region = %self.region, other = %o.client_id, "another daemon claimed this region after us");
                self.refuse(o);
            }
            (State::Held { seen_own: true }, None, _) => {
                tracing::warn!(region = %self.region, "our region claim was cleared: claiming it again");
                self.claim();
            }
            _ => {}
        }
    }

    fn claim(&mut self) {
        let body = serde_json::to_vec(&self.me).expect("serialisable");
        let mut hold = self.hold.lock().expect("claim lock");
        if hold.releasing {
            return;
        }
        if self
            .client
            .try_publish(&self.topic, true, true, body)
            .is_err()
        {
            tracing::error!(region = %self.region, "could not queue the region claim");
            return;
        }
        hold.holding = true;
        drop(hold);
        if matches!(self.state, State::Checking(_)) {
            tracing::info!(region = %self.region, topic = %self.topic, instance = %self.me.instance, "region claimed");
            let _ = self.reports.send(Report::Claimed(self.region.clone()));
        }
        self.state = State::Held { seen_own: false };
    }

    fn refuse(&mut self, owner: Owner) {
        self.state = State::Refused;
        self.hold.lock().expect("claim lock").holding = false;
        let _ = self.reports.send(Report::Refused(Refused {
            region: self.region.clone(),
            topic: self.topic.clone(),
            owner,
        }));
    }
}
