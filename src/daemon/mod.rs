//! `yingji run`: the long-running service around the same engine that replay uses.
//!
//! ```text
//!  MQTT in (inbound.rs) ──► core thread (core.rs: journal, engine, outbox; store.rs)
//!        ▲ acks after commit        │ timers: sleeps until next_deadline (clock.rs)
//!        └──────────────────────────┤
//!                                   ├──► MQTT out (outbound.rs): notice, cap, state, rejected
//!                                   ├──► email (email.rs)
//!                                   └──► webhooks (webhook.rs): WeCom, phone gateway
//!  GET /ack (http.rs, ack.rs) ──► core (an `ack` command, journaled like MQTT input)
//! ```
//! See docs/daemon.md for the guarantees and the deployment notes.

pub mod ack;
pub mod broker;
pub mod cap;
pub mod core;
pub mod echo;
pub mod email;
pub mod health;
pub mod http;
pub mod inbound;
pub mod logfmt;
pub mod mqtt;
pub mod outbound;
pub mod render;
pub mod store;
pub mod webhook;

use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc::UnboundedSender;

use crate::clock;
use crate::config::Config;
use crate::daemon::core::{Core, Effects, Incoming, LinkOutcome};
use crate::daemon::inbound::InToken;
use crate::daemon::mqtt::Settings;
use crate::daemon::outbound::{Out, Publisher};
use crate::daemon::store::Store;
use crate::time::fmt_ts;

/// What the core thread is told.
pub enum CoreEvent {
    Input(Incoming<InToken>),
    /// One of our own notices or CAP alerts routed back by the broker: sink, payload.
    Echo(&'static str, Vec<u8>, InToken),
    /// A proof published by our output connection before a notice (echo.rs).
    Proof(Vec<u8>, InToken),
    /// The input connection is up for the first time: the echo wait starts.
    Connected,
    /// Every echo queued while the daemon was away has been seen.
    Drained,
    /// A valid acknowledgement link was clicked.
    Link(LinkAck),
    Shutdown,
}

/// A signed acknowledgement link clicked, with the way to tell the page the outcome.
pub struct LinkAck {
    pub region: String,
    pub call_id: String,
    pub person: String,
    pub reply: tokio::sync::oneshot::Sender<LinkOutcome>,
}

/// How long the core waits for the echoes to drain, from the first CONNACK, before sending
/// what is undelivered.
const DRAIN_WAIT: chrono::Duration = chrono::Duration::seconds(10);
/// Without any connection to the broker for this long after start, the core goes live
/// anyway (timers fire; emails and webhooks go), and says so.
const CONNECT_WAIT: chrono::Duration = chrono::Duration::minutes(5);
/// Proofs kept waiting for their echo at most (older ones are dropped when over).
const MAX_PROOFS: usize = 100_000;

/// Inputs handled in one transaction at most.
const MAX_BATCH: usize = 512;
/// The core looks at the clock at least this often (a clock jump is noticed within it).
const MAX_SLEEP: Duration = Duration::from_secs(1);

/// Environment variable that moves the embedded broker off 127.0.0.1:1883 (tests).
pub const EMBEDDED_LISTEN_ENV: &str = "YINGJI_EMBEDDED_LISTEN";

/// Sets up tracing: text on a terminal, JSON lines with `json`. `RUST_LOG` filters.
/// Every logged value has its control characters escaped (logfmt.rs).
pub fn init_logging(json: bool) {
    use std::io::IsTerminal;
    use tracing_subscriber::util::SubscriberInitExt;
    let ansi = std::io::stderr().is_terminal();
    let _ = logfmt::subscriber(json, ansi, std::io::stderr).try_init();
}

/// Runs the daemon until SIGTERM or SIGINT.
/// `init`: accept a zero-byte store file (`--init`).
pub fn run(cfg: Arc<Config>, init: bool) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(run_async(cfg, init))
}

/// Where the broker is: the configured one, or the embedded one started here.
async fn broker_settings(cfg: &Config) -> anyhow::Result<Settings> {
    let default_id = format!(
        "yingji-{}",
        cfg.regions.first().map(|r| r.id.as_str()).unwrap_or("main")
    );
    if let Some(m) = &cfg.mqtt {
        let s = Settings::from_config(m, &default_id)?;
        tracing::info!(host = %s.host, port = s.port, tls = s.tls.is_some(), protocol = s.protocol, client_id = %s.client_id, "using the configured MQTT broker");
        return Ok(s);
    }
    let listen =
        std::env::var(EMBEDDED_LISTEN_ENV).unwrap_or_else(|_| broker::DEFAULT_LISTEN.into());
    let addr = broker::start(&listen).await?;
    let region = cfg
        .regions
        .first()
        .map(|r| r.id.as_str())
        .unwrap_or("shuozhou");
    let root = &cfg.topic_root;
    tracing::info!(
        "no [mqtt] in the config: embedded MQTT broker listening on {addr}. Try:\n  \
         mosquitto_sub -h {ip} -p {port} -v -t '{root}/+/notice/#' -t '{root}/+/rejected' &\n  \
         mosquitto_pub -h {ip} -p {port} -q 1 -t {root}/{region}/air/aqi -m '{{\"ts\": \"<hour end, RFC 3339>\", \"aqi\": 230, \"primary\": \"PM2.5\"}}'",
        ip = addr.ip(),
        port = addr.port(),
    );
    Ok(Settings::local(addr.port(), &default_id))
}

async fn run_async(cfg: Arc<Config>, init: bool) -> anyhow::Result<()> {
    let settings = broker_settings(&cfg).await?;
    let path = cfg.store.path.clone();
    let echo_key;
    let core = {
        let cfg = Arc::clone(&cfg);
        let mut store = Store::open_checked(&path, init)?;
        ack::install_key(ack::load_key(&cfg, &mut store)?);
        echo_key = echo::load_key(&mut store)?;
        tokio::task::spawn_blocking(move || Core::recover(cfg, store, clock::now())).await??
    };
    tracing::info!(store = %path.display(), next_timer = ?core.next_deadline().map(|(t, why)| format!("{} {why}", fmt_ts(t))), "store open");

    let publisher = Publisher::start(
        Arc::clone(&cfg),
        &settings,
        Store::open(&path)?,
        echo_key.clone(),
    );
    let (ops_tx, mut ops_rx) = tokio::sync::mpsc::unbounded_channel::<serde_json::Value>();
    health::set_ops_channel(ops_tx);
    {
        let (publisher, topic) = (publisher.clone(), ops_topic(&cfg));
        tokio::spawn(async move {
            while let Some(mut e) = ops_rx.recv().await {
                e["at"] = serde_json::json!(fmt_ts(clock::now()));
                publisher.submit([Out::Plain {
                    topic: topic.clone(),
                    payload: e.to_string().into_bytes(),
                    qos1: true,
                    retain: false,
                }]);
            }
        });
    }
    publisher.submit(state_outs(&cfg, core.all_states()));
    let mailer = email::Mailer::start(Arc::clone(&cfg), &path)?;
    let hooks = webhook::Hooks::start(Arc::clone(&cfg), &path)?;

    let (core_tx, core_rx) = std::sync::mpsc::channel();
    let route = http::AckRoute {
        cfg: Arc::clone(&cfg),
        key: Arc::new(ack::key().expect("installed above").to_vec()),
        core: core_tx.clone(),
    };
    http::start(&cfg.http.listen, Some(route)).await;
    let (inbound, ack_tx) = inbound::start(&cfg, &settings, core_tx.clone());
    let sinks = Sinks {
        echo_key,
        cfg: Arc::clone(&cfg),
        publisher: publisher.clone(),
        mailer: mailer.clone(),
        hooks,
        acks: ack_tx,
    };
    let mut core_thread = tokio::task::spawn_blocking(move || core_loop(core, core_rx, sinks));
    tracing::info!("yingji is running");

    let result = tokio::select! {
        r = &mut core_thread => Some(r),
        s = shutdown_signal() => {
            tracing::info!(signal = s, "shutting down: no new input, flushing the outbox");
            None
        }
    };
    inbound.close();
    let result = match result {
        Some(r) => r,
        None => {
            let _ = core_tx.send(CoreEvent::Shutdown);
            core_thread.await
        }
    };
    drop(core_tx);
    inbound.disconnect().await;
    publisher.flush_and_stop(Duration::from_secs(5)).await;
    if let Some(m) = mailer {
        m.stop().await;
    }
    let r = result.map_err(|e| anyhow::anyhow!("core thread failed: {e}"))?;
    if r.is_ok() {
        tracing::info!("stopped cleanly");
    }
    r
}

async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = tokio::signal::ctrl_c() => "SIGINT",
    }
}

/// Where the core's effects go.
struct Sinks {
    echo_key: Vec<u8>,
    cfg: Arc<Config>,
    publisher: Publisher,
    mailer: Option<email::Mailer>,
    hooks: Option<webhook::Hooks>,
    acks: UnboundedSender<InToken>,
}

/// The ops topic: faults and degraded sinks (health.rs), under `_yingji`, never a region.
pub fn ops_topic(cfg: &Config) -> String {
    format!("{}/_yingji/ops", cfg.topic_root)
}

fn state_outs(
    cfg: &Config,
    states: Vec<(String, String, std::collections::BTreeMap<String, String>)>,
) -> Vec<Out> {
    states
        .into_iter()
        .map(|(region, plan, tracks)| Out::Plain {
            topic: render::state_topic(cfg, &region, &plan),
            payload: render::state_json(&region, &plan, &tracks),
            qos1: true,
            retain: true,
        })
        .collect()
}

impl Sinks {
    fn apply(&self, fx: Effects<InToken>) {
        for t in fx.acks {
            let _ = self.acks.send(t);
        }
        let mut outs = Vec::new();
        for (at, r) in &fx.rejections {
            tracing::warn!(topic = %r.topic, class = r.class, reason = %r.reason, "input rejected");
            outs.push(Out::Plain {
                topic: render::rejected_topic(&self.cfg, r),
                payload: render::rejected_json(*at, r),
                qos1: false,
                retain: false,
            });
        }
        for (n, sinks) in &fx.notices {
            for s in sinks {
                if s.starts_with("mqtt:") {
                    outs.push(Out::Tracked {
                        notice: Arc::clone(n),
                        sink: s.clone(),
                    });
                } else if let (Some(addr), Some(m)) =
                    (s.strip_prefix(render::SINK_EMAIL), &self.mailer)
                {
                    m.submit(Arc::clone(n), addr.to_string());
                } else if let (true, Some(h)) = (s.starts_with(render::SINK_WEBHOOK), &self.hooks) {
                    h.submit(Arc::clone(n), s.clone());
                }
            }
        }
        outs.extend(state_outs(&self.cfg, fx.states));
        self.publisher.submit(outs);
    }
}

/// What arrived for the core since it last looked.
#[derive(Default)]
struct Arrived {
    inputs: Vec<Incoming<InToken>>,
    echoes: Vec<(&'static str, Vec<u8>, InToken)>,
    proofs: Vec<(Vec<u8>, InToken)>,
    links: Vec<LinkAck>,
    /// The input connection came up for the first time.
    connected: bool,
    /// The marker came back: every echo before it is in `echoes`.
    drained: bool,
    shutdown: bool,
}

/// Waits up to `sleep` for the first event, then takes what else is there (at most
/// `MAX_BATCH`), stopping after a marker or a shutdown.
fn collect(rx: &Receiver<CoreEvent>, sleep: Duration) -> Arrived {
    let mut a = Arrived::default();
    let mut first = Some(rx.recv_timeout(sleep));
    while a.inputs.len() + a.echoes.len() < MAX_BATCH {
        let ev = match first.take() {
            Some(Ok(ev)) => ev,
            Some(Err(RecvTimeoutError::Timeout)) => break,
            Some(Err(RecvTimeoutError::Disconnected)) => CoreEvent::Shutdown,
            None => match rx.try_recv() {
                Ok(ev) => ev,
                Err(_) => break,
            },
        };
        match ev {
            CoreEvent::Input(i) => a.inputs.push(i),
            CoreEvent::Echo(sink, payload, token) => a.echoes.push((sink, payload, token)),
            CoreEvent::Proof(p, token) => a.proofs.push((p, token)),
            CoreEvent::Connected => a.connected = true,
            CoreEvent::Link(l) => a.links.push(l),
            CoreEvent::Drained => {
                a.drained = true;
                break;
            }
            CoreEvent::Shutdown => {
                a.shutdown = true;
                break;
            }
        }
    }
    a
}

/// Marks the deliveries the echoes prove (echo.rs), then acks them and the proofs.
fn confirm_echoes(
    core: &mut Core,
    sinks: &Sinks,
    proven: &mut std::collections::BTreeSet<String>,
    a: &mut Arrived,
) -> anyhow::Result<()> {
    let mut acks = Vec::new();
    for (p, token) in std::mem::take(&mut a.proofs) {
        if proven.len() >= MAX_PROOFS {
            tracing::warn!("many proofs without their echo: the oldest dropped");
            proven.clear();
        }
        proven.insert(String::from_utf8_lossy(&p).into_owned());
        acks.push(token);
    }
    let echoes = std::mem::take(&mut a.echoes);
    let mut fx = if echoes.is_empty() {
        Effects::default()
    } else {
        core.confirm(echoes, &sinks.echo_key, proven, clock::now())?
    };
    fx.acks.extend(acks);
    sinks.apply(fx);
    Ok(())
}

/// The core thread: batches of inputs, echoes, timers, snapshots; returns on Shutdown.
///
/// Until the echoes queued while the daemon was away are drained (or `DRAIN_WAIT`
/// passed), inputs are held and timers wait: then what is still undelivered is sent,
/// first, in the order it was made.
fn core_loop(mut core: Core, rx: Receiver<CoreEvent>, sinks: Sinks) -> anyhow::Result<()> {
    let mut live = false;
    let started = clock::now();
    // The echo wait counts from the first CONNACK (a broker started after yingji must
    // not make it resend what the broker already has).
    let mut drain_until: Option<crate::time::Ts> = None;
    let mut proven = std::collections::BTreeSet::new();
    let mut held: Vec<Incoming<InToken>> = Vec::new();
    let mut held_links: Vec<LinkAck> = Vec::new();
    loop {
        let sleep = match (live, core.next_deadline()) {
            (true, Some((t, _))) => clock::until(t),
            _ => MAX_SLEEP,
        }
        .min(MAX_SLEEP);
        let mut a = collect(&rx, sleep);
        if a.connected && drain_until.is_none() {
            drain_until = Some(clock::now() + DRAIN_WAIT);
        }
        confirm_echoes(&mut core, &sinks, &mut proven, &mut a)?;
        let now = clock::now();
        if !live && !a.drained && drain_until.is_some_and(|t| now >= t) {
            tracing::warn!("echoes did not drain in time: sending what is undelivered now");
            live = go_live(&core, &sinks)?;
        } else if !live && !a.drained && drain_until.is_none() && now >= started + CONNECT_WAIT {
            tracing::error!(
                "no connection to the broker since the start: going live without draining echoes"
            );
            live = go_live(&core, &sinks)?;
        } else if !live && a.drained {
            live = go_live(&core, &sinks)?;
        }
        held.append(&mut a.inputs);
        held_links.append(&mut a.links);
        if live {
            let batch = std::mem::take(&mut held);
            if !batch.is_empty() {
                sinks.apply(core.ingest(batch, clock::now())?);
            }
            for l in std::mem::take(&mut held_links) {
                let (fx, outcome) =
                    core.link_ack(&l.region, &l.call_id, &l.person, clock::now())?;
                tracing::info!(call_id = %l.call_id, person = %l.person, outcome = ?outcome, "acknowledgement link");
                sinks.apply(fx);
                let _ = l.reply.send(outcome);
            }
            sinks.apply(core.tick(clock::now())?);
        }
        if a.shutdown {
            core.snapshot(clock::now())?;
            return Ok(());
        }
    }
}

/// Sends every delivery the outbox still has for MQTT, in order; returns true.
fn go_live(core: &Core, sinks: &Sinks) -> anyhow::Result<bool> {
    let pending = core.store().pending("mqtt:")?;
    tracing::info!(
        undelivered = pending.len(),
        "sending what was not delivered before"
    );
    http::set(&http::METRICS.live, true);
    sinks
        .publisher
        .submit(pending.into_iter().map(|p| Out::Tracked {
            notice: Arc::new(p.notice),
            sink: p.sink,
        }));
    Ok(true)
}
