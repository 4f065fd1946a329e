//! `yingji run`: the long-running service around the same engine that replay uses.
//!
//! ```text
//!  MQTT in (inbound.rs) ──► core thread (core.rs: journal, engine, outbox; store.rs)
//!        ▲ acks after commit        │ timers: sleeps until next_deadline (clock.rs)
//!        └──────────────────────────┤
//!                                   ├──► MQTT out (outbound.rs): notice, cap, state, rejected
//!                                   ├──► email (email.rs)
//!                                   └──► webhooks (webhook.rs): WeCom, phone gateway
//!  POST /ack, console (http/) ──► core (commands, journaled like MQTT input)
//!        ▲ watch: the core's View (view.rs) after every step
//!  metrics.rs: counters every part updates, rendered on /metrics
//! ```
//! See docs/daemon.md for the guarantees and the deployment notes.

pub mod ack;
pub mod broker;
pub mod cap;
pub mod claims;
pub mod core;
pub mod durable;
pub mod echo;
pub mod email;
pub mod health;
pub mod history;
pub mod http;
pub mod inbound;
pub mod lock;
pub mod logfmt;
pub mod metrics;
pub mod mqtt;
pub mod outbound;
pub mod render;
pub mod retry;
pub mod sink;
pub mod store;
pub mod systemd;
pub mod view;
pub mod webhook;

use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc::UnboundedSender;

use crate::clock;
use crate::config::Config;
use crate::daemon::core::{Core, Effects, Incoming, LinkOutcome};
use crate::daemon::durable::Synced;
use crate::daemon::inbound::InToken;
use crate::daemon::mqtt::Settings;
use crate::daemon::outbound::{Out, Publisher};
use crate::daemon::sink::{MqttSink, Sink, SinkKind};
use crate::daemon::store::Store;
use crate::time::{fmt_ts, Ts};

/// What the core thread is told.
pub enum CoreEvent {
    Input(Incoming<InToken>),
    /// One of our own notices or CAP alerts routed back by the broker: sink, payload.
    Echo(MqttSink, Vec<u8>, InToken),
    /// A proof published by our output connection before a notice (echo.rs).
    Proof(Vec<u8>, InToken),
    /// The input connection is up for the first time: the echo wait starts.
    Connected,
    /// Every echo queued while the daemon was away has been seen.
    Drained,
    /// A valid acknowledgement link was clicked.
    Link(LinkAck),
    /// A console action: a command for a region's `cmd` topic.
    Command(ConsoleCmd),
    /// The console asks for the call register of an event as CSV.
    RegisterCsv {
        region: String,
        event: String,
        reply: tokio::sync::oneshot::Sender<Option<String>>,
    },
    Shutdown,
}

/// A console action with the way to tell the page the outcome (`Err`: the engine's
/// refusal).
pub struct ConsoleCmd {
    pub region: String,
    pub payload: Vec<u8>,
    pub reply: tokio::sync::oneshot::Sender<Result<(), String>>,
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

/// Inputs handled in one transaction at most.
pub(crate) const MAX_BATCH: usize = 512;
/// The core looks at the clock at least this often (a clock jump is noticed within it).
const MAX_SLEEP: Duration = Duration::from_secs(1);

/// Environment variable that moves the embedded broker off 127.0.0.1:1883 (tests).
pub const EMBEDDED_LISTEN_ENV: &str = "YINGJI_EMBEDDED_LISTEN";

/// Sets up tracing: text on a terminal, JSON lines with `json`; times in +08:00 (the
/// notices' time zone) unless `utc`. `RUST_LOG` filters. Every logged value has its
/// control characters escaped (logfmt.rs).
pub fn init_logging(json: bool, utc: bool) {
    use std::io::IsTerminal;
    use tracing_subscriber::util::SubscriberInitExt;
    let ansi = std::io::stderr().is_terminal();
    let _ = logfmt::subscriber(json, ansi, utc, std::io::stderr).try_init();
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
    tracing::info!(
        "no [mqtt] in the config: embedded MQTT broker listening on {addr}. Try:\n{}",
        startup_hint(&cfg.topic_root, region, addr, clock::now())
    );
    Ok(Settings::local(addr.port(), &default_id))
}

/// The exit code for an error `run` returned: 2 when the daemon refused to start because
/// another one holds its store or one of its regions, 1 otherwise.
pub fn exit_code(e: &anyhow::Error) -> u8 {
    if matches!(e.downcast_ref(), Some(lock::LockError::Held { .. }))
        || e.downcast_ref::<claims::Refused>().is_some()
    {
        2
    } else {
        1
    }
}

/// Commands to try against the embedded broker: a reading of the last full hour, which
/// the daemon accepts as it is pasted.
pub fn startup_hint(root: &str, region: &str, addr: std::net::SocketAddr, now: Ts) -> String {
    let hour = fmt_ts(crate::time::floor_hour(now));
    format!(
        "  mosquitto_sub -h {ip} -p {port} -v -t '{root}/+/notice/#' -t '{root}/+/rejected' &\n  \
         mosquitto_pub -h {ip} -p {port} -q 1 -t {root}/{region}/air/aqi -m '{{\"ts\": \"{hour}\", \"aqi\": 230, \"primary\": \"PM2.5\"}}'",
        ip = addr.ip(),
        port = addr.port(),
    )
}

async fn run_async(cfg: Arc<Config>, init: bool) -> anyhow::Result<()> {
    let mut signals = StopSignals::listen()?;
    let path = cfg.store.path.clone();
    let _lock = lock::acquire(&path)?;
    let settings = broker_settings(&cfg).await?;
    let mut store = Store::open_checked(&path, init)?;
    let fingerprint = history::record_config(&store, &cfg, clock::now())?;
    tracing::info!(fingerprint = %fingerprint, "config stored (yingji journal export --config-out writes it)");
    let claims = match claim_regions(&cfg, &settings, &mut store, &mut signals).await? {
        Some(c) => c,
        None => return Ok(()),
    };
    let link_key = ack::AckKey::load(&cfg, &mut store)?;
    let echo_key = echo::load_key(&mut store)?;
    // From here on the core's commits are synced off its connection (durable.rs).
    store.sync_off_thread(&path)?;
    let mut core = {
        let cfg = Arc::clone(&cfg);
        tokio::task::spawn_blocking(move || Core::recover(cfg, store, clock::now())).await??
    };
    let rendered = Arc::new(echo::Rendered::default());
    core.check_echoes_against(Arc::clone(&rendered));
    tracing::info!(store = %path.display(), next_timer = ?core.next_deadline().map(|(t, why)| format!("{} {why}", fmt_ts(t))), "store open");

    let publisher = Publisher::start(
        Arc::clone(&cfg),
        &settings,
        Store::open_sink(&path)?,
        echo_key.clone(),
        rendered,
    );
    forward_ops(ops_topic(&cfg), publisher.clone());
    publisher.submit(state_outs(&cfg, core.all_states()));
    let mailer = email::Mailer::start(Arc::clone(&cfg), Some(link_key.clone()), &path)?;
    let hooks = webhook::Hooks::start(Arc::clone(&cfg), Some(link_key.clone()), &path)?;

    let (core_tx, core_rx) = std::sync::mpsc::channel();
    let (view_tx, view_rx) = tokio::sync::watch::channel(Arc::new(core.view(false, 0)));
    let app = http::App {
        cfg: Arc::clone(&cfg),
        link_key,
        core: core_tx.clone(),
        view: view_rx,
        limits: http::limit::Limits::default(),
        sessions: http::session::Sessions::new(&cfg)?,
    };
    http::start(&cfg.http.listen, Arc::new(app)).await;
    let (inbound, ack_tx) = inbound::start(&cfg, &settings, core_tx.clone());
    let sinks = Sinks {
        echo_key,
        cfg: Arc::clone(&cfg),
        publisher: publisher.clone(),
        mailer: mailer.clone(),
        hooks: hooks.clone(),
        acks: ack_tx,
        view: view_tx,
    };
    let core_thread = tokio::task::spawn_blocking(move || core_loop(core, core_rx, sinks));
    tracing::info!("yingji is running");
    Running {
        core_tx,
        core_thread,
        inbound,
        publisher,
        mailer,
        hooks,
        claims,
    }
    .until_stopped(&mut signals)
    .await
}

/// Publishes the health module's ops events on the ops topic, stamped with the time.
fn forward_ops(topic: String, publisher: Publisher) {
    let (ops_tx, mut ops_rx) = tokio::sync::mpsc::unbounded_channel::<serde_json::Value>();
    health::set_ops_channel(ops_tx);
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

/// The running daemon's parts that stop in order at the end.
struct Running {
    core_tx: std::sync::mpsc::Sender<CoreEvent>,
    core_thread: tokio::task::JoinHandle<anyhow::Result<()>>,
    inbound: inbound::Inbound,
    publisher: Publisher,
    mailer: Option<email::Mailer>,
    hooks: Option<webhook::Hooks>,
    claims: Option<claims::Claims>,
}

impl Running {
    /// Runs until the core thread ends, a signal comes or a region claim is contested;
    /// then stops taking input, lets the core finish, flushes the outbox, lets an email
    /// or webhook attempt in hand finish and releases the claims.
    async fn until_stopped(mut self, signals: &mut StopSignals) -> anyhow::Result<()> {
        let mut refused = None;
        let result = tokio::select! {
            r = &mut self.core_thread => Some(r),
            s = signals.next() => {
                tracing::info!(signal = s, "shutting down: no new input, flushing the outbox");
                None
            }
            r = contested(&mut self.claims) => {
                tracing::error!("{r}: shutting down");
                refused = Some(r);
                None
            }
        };
        self.inbound.close();
        let result = match result {
            Some(r) => r,
            None => {
                let _ = self.core_tx.send(CoreEvent::Shutdown);
                self.core_thread.await
            }
        };
        drop(self.core_tx);
        self.inbound.disconnect().await;
        self.publisher.flush_and_stop(Duration::from_secs(5)).await;
        stop_senders(self.mailer, self.hooks).await;
        if let Some(c) = self.claims {
            c.release().await;
        }
        if let Some(r) = refused {
            return Err(r.into());
        }
        let r = result.map_err(|e| anyhow::anyhow!("core thread failed: {e}"))?;
        if r.is_ok() {
            tracing::info!("stopped cleanly");
        }
        r
    }
}

/// How long the start waits for the broker to answer the region claims (after that the
/// daemon runs, and claims when the broker answers).
const CLAIM_WAIT: Duration = Duration::from_secs(10);

/// Claims the configured regions on the configured broker (claims.rs; the embedded
/// broker serves this daemon alone). `Ok(None)`: a signal came while waiting.
async fn claim_regions(
    cfg: &Config,
    settings: &Settings,
    store: &mut Store,
    signals: &mut StopSignals,
) -> anyhow::Result<Option<Option<claims::Claims>>> {
    if cfg.mqtt.is_none() {
        return Ok(Some(None));
    }
    let instance = claims::instance_id(store)?;
    let mut c = claims::start(cfg, settings, &instance);
    tokio::select! {
        r = c.first_check(CLAIM_WAIT) => match r {
            Ok(true) => {}
            Ok(false) => tracing::warn!("the broker did not answer the region claims yet: claiming them when it does"),
            Err(refused) => {
                c.release().await;
                return Err(refused.into());
            }
        },
        s = signals.next() => {
            tracing::info!(signal = s, "stopped while claiming the regions");
            c.release().await;
            return Ok(None);
        }
    }
    Ok(Some(Some(c)))
}

/// A region claim contested after the start (never, without claims).
async fn contested(claims: &mut Option<claims::Claims>) -> claims::Refused {
    match claims {
        Some(c) => c.contested().await,
        None => std::future::pending().await,
    }
}

/// Stops email and webhooks together, each letting its attempt in hand finish.
async fn stop_senders(mailer: Option<email::Mailer>, hooks: Option<webhook::Hooks>) {
    let mail = async {
        if let Some(m) = mailer {
            m.stop().await;
        }
    };
    let posts = async {
        if let Some(h) = hooks {
            h.stop().await;
        }
    };
    tokio::join!(mail, posts);
}

/// SIGTERM and SIGINT, listened to from the start to the end of `run_async`.
///
/// One listener for the whole run: once tokio handles a signal the default action (exit)
/// is gone for the process, and a listener made later does not see a signal that came
/// before it, so a stop asked for between two listeners would be lost.
struct StopSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn listen() -> anyhow::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// The next stop asked for (or one asked for since `listen`).
    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
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
    /// The console's picture of the core.
    view: tokio::sync::watch::Sender<Arc<view::View>>,
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
    /// The effects of inputs handled while the echoes still drain: acks, rejections,
    /// emails and webhooks go now; MQTT notices wait in the outbox and go out when the
    /// daemon goes live, after what was undelivered before (the order they were made),
    /// and so do the state documents (`go_live`).
    fn apply_draining(&self, mut fx: Effects<InToken>) {
        for (_, sinks) in &mut fx.notices {
            sinks.retain(|s| s.kind() != SinkKind::Mqtt);
        }
        fx.states.clear();
        self.apply(fx);
    }

    /// Publishes the core's picture when it changed (`changed`) or went live.
    fn show(&self, core: &Core, live: bool, changed: bool) {
        let cur = self.view.borrow().clone();
        if changed || cur.live != live {
            let v = core.view(live, cur.version + 1);
            self.view.send_replace(Arc::new(v));
        }
    }

    fn apply(&self, fx: Effects<InToken>) {
        for t in fx.acks {
            let _ = self.acks.send(t);
        }
        let mut outs = Vec::new();
        for (at, r) in &fx.rejections {
            tracing::warn!(topic = %r.topic, class = r.class.as_str(), reason = %r.reason, "input rejected");
            outs.push(Out::Plain {
                topic: render::rejected_topic(&self.cfg, r),
                payload: render::rejected_json(*at, r),
                qos1: false,
                retain: false,
            });
        }
        for (n, sinks) in fx.notices {
            for s in sinks {
                let notice = Arc::clone(&n);
                match s {
                    Sink::Notice => outs.push(Out::Tracked {
                        notice,
                        sink: MqttSink::Notice,
                    }),
                    Sink::Cap => outs.push(Out::Tracked {
                        notice,
                        sink: MqttSink::Cap,
                    }),
                    Sink::Email(addr) => {
                        if let Some(m) = &self.mailer {
                            m.submit(notice, addr);
                        }
                    }
                    Sink::Webhook(name) => {
                        if let Some(h) = &self.hooks {
                            h.submit(notice, name);
                        }
                    }
                }
            }
        }
        outs.extend(state_outs(&self.cfg, fx.states));
        self.publisher.submit(outs);
    }
}

type CsvAsk = (String, String, tokio::sync::oneshot::Sender<Option<String>>);

/// What arrived for the core since it last looked.
#[derive(Default)]
struct Arrived {
    inputs: Vec<Incoming<InToken>>,
    echoes: Vec<(MqttSink, Vec<u8>, InToken)>,
    proofs: Vec<(Vec<u8>, InToken)>,
    links: Vec<LinkAck>,
    cmds: Vec<ConsoleCmd>,
    csv: Vec<CsvAsk>,
    /// The input connection came up for the first time.
    connected: bool,
    /// The marker came back: every echo before it is in `echoes`.
    drained: bool,
    shutdown: bool,
}

impl Arrived {
    /// Inputs arrived, and nothing else.
    fn only_inputs(&self) -> bool {
        !self.inputs.is_empty() && self.no_other_event()
    }

    /// Nothing at all arrived during the wait.
    fn is_empty(&self) -> bool {
        self.inputs.is_empty() && self.no_other_event()
    }

    /// Nothing but inputs (if any) arrived.
    fn no_other_event(&self) -> bool {
        self.echoes.is_empty()
            && self.proofs.is_empty()
            && self.links.is_empty()
            && self.cmds.is_empty()
            && self.csv.is_empty()
            && !(self.connected || self.drained || self.shutdown)
    }
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
            CoreEvent::Input(mut i) => {
                i.token.taken();
                a.inputs.push(i);
            }
            CoreEvent::Echo(sink, payload, mut token) => {
                token.taken();
                a.echoes.push((sink, payload, token));
            }
            CoreEvent::Proof(p, mut token) => {
                token.taken();
                a.proofs.push((p, token));
            }
            CoreEvent::Connected => a.connected = true,
            CoreEvent::Link(l) => a.links.push(l),
            CoreEvent::Command(c) => a.cmds.push(c),
            CoreEvent::RegisterCsv {
                region,
                event,
                reply,
            } => {
                a.csv.push((region, event, reply));
            }
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

/// Marks the deliveries the echoes prove (echo.rs), then acks them and their proofs
/// (a proof waits for its echo, at most `echo::PROOF_HOLD`).
fn confirm_echoes(
    core: &mut Core,
    sinks: &Sinks,
    proofs: &mut echo::Proofs<InToken>,
    a: &mut Arrived,
) -> anyhow::Result<()> {
    let arrived = std::mem::take(&mut a.proofs);
    let echoes = std::mem::take(&mut a.echoes);
    let (n_proofs, n_echoes) = (arrived.len(), echoes.len());
    let t = clock::monotonic();
    let fx = core.confirm(arrived, echoes, &sinks.echo_key, proofs, clock::now())?;
    if !fx.acks.is_empty() {
        sinks.apply(fx);
    }
    if n_proofs + n_echoes > 0 {
        // For scripts/bench-live.sh: the core's time on echoes, which an input arriving
        // meanwhile waits for.
        tracing::debug!(target: "yingji::timing", confirm_us = t.elapsed().as_micros() as u64, mark_us = core.last_mark().as_micros() as u64, check_us = core.last_check().as_micros() as u64, proofs = n_proofs, echoes = n_echoes, "echoes confirmed");
    }
    Ok(())
}

/// The core thread: batches of inputs, echoes, timers, snapshots; returns on Shutdown.
///
/// Until the echoes queued while the daemon was away are drained (or `DRAIN_WAIT`
/// passed), inputs are handled but their MQTT notices wait, and timers, links and console
/// commands wait: then what is still undelivered is sent, first, in the order it was made.
fn core_loop(mut core: Core, rx: Receiver<CoreEvent>, sinks: Sinks) -> anyhow::Result<()> {
    let mut l = Loop::new();
    let mut watchdog = systemd::Watchdog::from_env();
    loop {
        watchdog.ping();
        let sleep = match (l.live, core.next_deadline()) {
            // A drain batch waits for its sync: only a look at what is there already.
            _ if l.pending.is_some() => Duration::ZERO,
            // Idle with the retained-input index behind: one dose per look.
            _ if l.idle && core.seen_lags() => Duration::ZERO,
            (true, Some((t, _))) => clock::until(t),
            _ => MAX_SLEEP,
        }
        .min(MAX_SLEEP);
        let mut a = collect(&rx, sleep);
        l.idle = a.is_empty();
        // The last drain batch's effects go out now, unless more inputs of the drain
        // follow at once (they go out after the next batch is handled, `drain_step`).
        if !a.only_inputs() {
            l.flush(&sinks)?;
        }
        if a.connected && l.drain_until.is_none() {
            l.drain_until = Some(clock::now() + DRAIN_WAIT);
        }
        confirm_echoes(&mut core, &sinks, &mut l.proofs, &mut a)?;
        l.go_live_when_due(&core, &sinks, a.drained)?;
        l.held.append(&mut a.inputs);
        l.drain_step(&mut core, &sinks)?;
        l.held_links.append(&mut a.links);
        l.held_cmds.append(&mut a.cmds);
        for (region, event, reply) in a.csv {
            let _ = reply.send(core.register_csv(&region, &event));
        }
        if l.live {
            l.step(&mut core, &sinks)?;
        }
        if l.idle {
            // The lazy index of handled inputs (store.rs `SEEN_UPTO`) catches up when
            // nothing arrived during a wait, a dose at a time.
            core.index_seen_dose()?;
        }
        if a.shutdown {
            systemd::stopping();
            core.snapshot(clock::now())?;
            // The last drain batch, synced by the snapshot's commit at the latest.
            l.flush(&sinks)?;
            return Ok(());
        }
    }
}

/// The core thread's state between batches.
struct Loop {
    /// Past the echo drain: inputs are handled, timers fire.
    live: bool,
    started: Ts,
    /// The echo wait counts from the first CONNACK (a broker started after yingji must
    /// not make it resend what the broker already has).
    drain_until: Option<Ts>,
    /// Proofs waiting for their echo (echo.rs).
    proofs: echo::Proofs<InToken>,
    held: Vec<Incoming<InToken>>,
    held_links: Vec<LinkAck>,
    held_cmds: Vec<ConsoleCmd>,
    next_retention: Ts,
    summary: Summary,
    /// Levels moved by inputs handled during the drain: published after its notices.
    states_held: bool,
    /// Nothing arrived during the last wait.
    idle: bool,
    /// The last drain batch, committed: its effects, and the sync they wait for.
    pending: Option<(Effects<InToken>, Synced)>,
}

impl Loop {
    fn new() -> Loop {
        let now = clock::now();
        Loop {
            live: false,
            started: now,
            drain_until: None,
            proofs: echo::Proofs::default(),
            held: Vec::new(),
            held_links: Vec::new(),
            held_cmds: Vec::new(),
            next_retention: now,
            summary: Summary::new(),
            states_held: false,
            idle: false,
            pending: None,
        }
    }

    /// Releases the last drain batch's effects once its commit is synced.
    fn flush(&mut self, sinks: &Sinks) -> anyhow::Result<()> {
        if let Some((fx, synced)) = self.pending.take() {
            synced.wait()?;
            sinks.apply_draining(fx);
        }
        Ok(())
    }

    /// Goes live when the echoes drained, when they did not drain in time, or when no
    /// connection came at all.
    fn go_live_when_due(
        &mut self,
        core: &Core,
        sinks: &Sinks,
        drained: bool,
    ) -> anyhow::Result<()> {
        if self.live {
            return Ok(());
        }
        let now = clock::now();
        let late = !drained && self.drain_until.is_some_and(|t| now >= t);
        let alone = !drained && self.drain_until.is_none() && now >= self.started + CONNECT_WAIT;
        if !(drained || late || alone) {
            return Ok(());
        }
        // What goes live goes after the drain's effects.
        self.flush(sinks)?;
        if late {
            tracing::warn!("echoes did not drain in time: sending what is undelivered now");
        } else if alone {
            tracing::error!(
                "no connection to the broker since the start: going live without draining echoes"
            );
        }
        self.live = go_live(core, sinks, std::mem::take(&mut self.states_held))?;
        if drained {
            sinks.show(core, self.live, true);
            systemd::ready();
        }
        Ok(())
    }

    /// Before going live: inputs flow while the echoes drain (the marker is queued
    /// behind them); their MQTT notices wait for `go_live` (`Sinks::apply_draining`).
    ///
    /// A batch's commit is synced on the store's sync thread while the next batch is
    /// handled (durable.rs): its acks and notices go out after that next batch, or when
    /// no input follows at once (`flush`), never before its sync.
    fn drain_step(&mut self, core: &mut Core, sinks: &Sinks) -> anyhow::Result<()> {
        if self.live || self.held.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.held);
        let (n, t) = (batch.len(), clock::monotonic());
        let (fx, synced) = core.ingest_sync_later(batch, clock::now())?;
        // For scripts/bench-live.sh: how the drain's inputs were batched.
        tracing::debug!(target: "yingji::timing", inputs = n, ingest_us = t.elapsed().as_micros() as u64, commit_us = core.last_commit().as_micros() as u64, "drain batch handled");
        self.summary.inputs(&fx);
        self.states_held |= !fx.states.is_empty();
        self.flush(sinks)?;
        self.pending = Some((fx, synced));
        Ok(())
    }

    /// One live batch: held inputs, link clicks and console commands, then due timers;
    /// the picture is published before the pages that wait for it are answered.
    fn step(&mut self, core: &mut Core, sinks: &Sinks) -> anyhow::Result<()> {
        let mut changed = false;
        // Effects leave for the sinks only after the picture is published: a person who
        // gets a link by webhook or email and opens it at once finds the round on the page.
        let mut effects = Vec::new();
        let batch = std::mem::take(&mut self.held);
        let mut t = Timing::start(batch.iter().map(|i| i.token.received()).min());
        if !batch.is_empty() {
            changed = true;
            let fx = core.ingest(batch, clock::now())?;
            self.summary.inputs(&fx);
            effects.push(fx);
        }
        t.ingested(core.last_commit());
        let mut replies = Vec::new();
        for l in std::mem::take(&mut self.held_links) {
            let (fx, outcome) = core.link_ack(&l.region, &l.call_id, &l.person, clock::now())?;
            tracing::info!(call_id = %l.call_id.escape_debug(), person = %l.person.escape_debug(), outcome = ?outcome, "acknowledgement link");
            changed |= !fx.notices.is_empty();
            effects.push(fx);
            replies.push((l.reply, outcome));
        }
        let mut answers = Vec::new();
        for c in std::mem::take(&mut self.held_cmds) {
            let (fx, refused) = core.command(&c.region, c.payload, clock::now())?;
            changed = true;
            effects.push(fx);
            answers.push((c.reply, refused));
        }
        let fx = core.tick(clock::now())?;
        self.summary.notices += fx.notices.len() as u64;
        changed |= !fx.notices.is_empty();
        effects.push(fx);
        // The page that answers a click reads the picture: publish it first.
        t.ticked();
        sinks.show(core, self.live, changed);
        t.shown();
        for fx in effects {
            sinks.apply(fx);
        }
        t.log();
        for (reply, outcome) in replies {
            let _ = reply.send(outcome);
        }
        for (reply, refused) in answers {
            let _ = reply.send(refused.map_or(Ok(()), Err));
        }
        self.summary.log_when_due();
        if clock::now() >= self.next_retention {
            retain(core);
            self.next_retention = clock::now() + RETENTION_EVERY;
        }
        Ok(())
    }
}

/// How often the core logs what it handled (info); each input is logged at debug.
const SUMMARY_EVERY: Duration = Duration::from_secs(600);

/// What the core handled since its last summary.
struct Summary {
    accepted: u64,
    rejected: u64,
    notices: u64,
    since: tokio::time::Instant,
}

impl Summary {
    fn new() -> Summary {
        Summary {
            accepted: 0,
            rejected: 0,
            notices: 0,
            since: clock::monotonic(),
        }
    }

    fn inputs<T>(&mut self, fx: &Effects<T>) {
        let rejected = fx.rejections.len() as u64;
        self.rejected += rejected;
        self.accepted += (fx.acks.len() as u64).saturating_sub(rejected);
        self.notices += fx.notices.len() as u64;
    }

    fn log_when_due(&mut self) {
        let now = clock::monotonic();
        if now.duration_since(self.since) < SUMMARY_EVERY {
            return;
        }
        tracing::info!(
            minutes = SUMMARY_EVERY.as_secs() / 60,
            accepted = self.accepted,
            rejected = self.rejected,
            notices = self.notices,
            "inputs handled in the last {} minutes: {} accepted, {} rejected; {} notices",
            SUMMARY_EVERY.as_secs() / 60,
            self.accepted,
            self.rejected,
            self.notices
        );
        *self = Summary::new();
    }
}

/// How often retention runs (and once when the daemon goes live).
const RETENTION_EVERY: chrono::Duration = chrono::Duration::hours(24);

/// Applies `[store] retain_days`; a failure is logged and tried again next time.
fn retain(core: &mut Core) {
    match core.retain(clock::now()) {
        Ok((register, a)) => {
            if register + a.journal_rows + a.notices > 0 {
                tracing::info!(
                    archive = ?a.file.as_ref().map(|p| p.display().to_string()),
                    journal_rows = a.journal_rows,
                    notices = a.notices,
                    register_entries = register,
                    "retention: old history archived and deleted"
                );
            }
        }
        Err(e) => tracing::error!(error = %e, "retention failed (tried again in a day)"),
    }
}

/// Sends every delivery the outbox still has for MQTT, in order (what was undelivered
/// before the start, then what the inputs handled during the drain made), then, when
/// those inputs moved levels (`states`), every state document; returns true.
fn go_live(core: &Core, sinks: &Sinks, states: bool) -> anyhow::Result<bool> {
    let pending = core.store().pending(SinkKind::Mqtt)?;
    tracing::info!(
        undelivered = pending.len(),
        "sending what was not delivered before"
    );
    metrics::set(&metrics::METRICS.live, true);
    sinks.publisher.submit(pending.into_iter().filter_map(|p| {
        let sink = p.sink.mqtt()?;
        Some(Out::Tracked {
            notice: Arc::new(p.notice),
            sink,
        })
    }));
    if states {
        sinks
            .publisher
            .submit(state_outs(&sinks.cfg, core.all_states()));
    }
    Ok(true)
}

/// Where a batch's time went, for `scripts/bench-live.sh` (target `yingji::timing`,
/// debug), on the monotonic clock from the first input's arrival off the network
/// (`daemon_us`: until its effects were handed to the sinks): `wait_us` until the core
/// took the batch up, `ingest_us` the handling with the journal commit (`commit_us`, the
/// disk sync), `tick_us` links, commands and timers, `show_us` the console's picture,
/// `apply_us` handing the effects to the sinks.
struct Timing {
    first: Option<std::time::Instant>,
    marks: [std::time::Instant; 5],
    commit: Duration,
}

impl Timing {
    fn start(first: Option<std::time::Instant>) -> Timing {
        let now = crate::clock::monotonic().into_std();
        Timing {
            first,
            marks: [now; 5],
            commit: Duration::ZERO,
        }
    }
    fn mark(&mut self, i: usize) {
        if self.first.is_some() {
            self.marks[i] = crate::clock::monotonic().into_std();
        }
    }
    fn ingested(&mut self, commit: Duration) {
        self.commit = commit;
        self.mark(1);
    }
    fn ticked(&mut self) {
        self.mark(2);
    }
    fn shown(&mut self) {
        self.mark(3);
    }
    fn log(mut self) {
        self.mark(4);
        let Some(first) = self.first else { return };
        let m = self.marks;
        let us = |a: std::time::Instant, b: std::time::Instant| {
            b.saturating_duration_since(a).as_micros() as u64
        };
        tracing::debug!(
            target: "yingji::timing",
            daemon_us = us(first, m[4]),
            wait_us = us(first, m[0]),
            ingest_us = us(m[0], m[1]),
            commit_us = self.commit.as_micros() as u64,
            tick_us = us(m[1], m[2]),
            show_us = us(m[2], m[3]),
            apply_us = us(m[3], m[4]),
            "batch handled"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The startup hint's mosquitto_pub command, pasted as it is, is accepted.
    #[test]
    fn the_startup_hint_publishes_a_reading_the_daemon_accepts() {
        let cfg = Config::from_toml("").unwrap().config;
        let now = crate::time::parse_ts("2026-01-31T08:20:00+08:00").unwrap();
        let hint = startup_hint("ers", "shuozhou", "127.0.0.1:1883".parse().unwrap(), now);
        let line = hint.lines().find(|l| l.contains("mosquitto_pub")).unwrap();
        let topic = line
            .split(" -t ")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap();
        let payload = line.split(" -m '").nth(1).unwrap().trim_end_matches('\'');
        assert!(!payload.contains('<'), "{payload}");
        let msg = crate::input::parse(&cfg, topic, payload.as_bytes(), now);
        assert!(msg.is_ok(), "{topic} {payload}: {:?}", msg.err());
        assert!(payload.contains("2026-01-31T08:00:00+08:00"), "{payload}");
    }
}

#[cfg(test)]
mod stop_tests {
    use super::StopSignals;

    /// A SIGTERM that comes while the daemon is busy starting (between two places that
    /// wait for it) is still seen by the next wait.
    #[tokio::test]
    async fn a_stop_asked_for_before_the_wait_is_not_lost() {
        let mut signals = StopSignals::listen().expect("listen");
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &std::process::id().to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success());
        // Let the runtime's signal driver take the signal in while nobody waits for it
        // (the daemon recovering its store). Not a timing assumption: waiting longer only
        // makes a lost signal more certain.
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let got = tokio::time::timeout(std::time::Duration::from_secs(30), signals.next()).await;
        assert_eq!(got, Ok("SIGTERM"));
    }
}
