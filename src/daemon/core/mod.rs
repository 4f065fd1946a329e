//! The daemon's core: the engine with its durable journal and outbox. Synchronous and
//! clock-free (the caller passes `now`), so it is unit-tested like the engine.
//!
//! Per batch of inputs, one SQLite transaction holds: the journal rows (written before
//! each input is handled), the notices they produced with the sinks each needs, the
//! levels they moved, and, every `snapshot_every` inputs, a snapshot. Only after it
//! committed, and its log synced (durable.rs), are the inputs acknowledged and the
//! notices delivered, so a crash or a power loss at any point loses nothing that was
//! acknowledged and sends nothing that is not stored.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::Config;
use crate::daemon::durable::Synced;
use crate::daemon::echo::Proofs;
use crate::daemon::health;
use crate::daemon::render;
use crate::daemon::sink::{MqttSink, Sink};
use crate::daemon::store::{Outboxed, Store, Tx};
use crate::daemon::view::{Tracker, View};
use crate::engine::{Engine, Step};
use crate::input::{self, Rejection};
use crate::notice::{Kind, Notice};
use crate::plans::severe_weather::RoundStatus;
use crate::time::{fmt_ts, Ts};

/// An input as it arrived, with a token to acknowledge it once journaled.
pub struct Incoming<T> {
    pub topic: String,
    pub payload: Vec<u8>,
    /// MQTT packet id (0 for QoS 0) and DUP flag: a redelivery of a message already
    /// journaled (our ack was lost) is acked again, not journaled twice.
    pub pkid: u16,
    pub dup: bool,
    /// The broker's retain flag: a retained message sent because of a (re)subscription.
    pub retained: bool,
    /// Wall time it came off the network (`None`: the batch's `now`).
    pub arrived: Option<Ts>,
    /// The payload already parsed at `arrived` where it came off the network (inbound.rs),
    /// so that the core's thread does not spend its time on JSON. The core uses it only
    /// when the input's time is `arrived` (the engine's clock not past it): parsing
    /// depends on that time (a reading's age), so otherwise it parses the payload again.
    /// `None`: the core parses it.
    pub parsed: Option<Result<input::Message, Rejection>>,
    pub token: T,
}

/// What a step asks the I/O around it to do, after the transaction committed.
pub struct Effects<T> {
    /// New notices, each with the sinks it needs (already in the outbox).
    pub notices: Vec<(Arc<Notice>, Vec<Sink>)>,
    /// Inputs refused, to publish on `rejected`.
    pub rejections: Vec<(Ts, Rejection)>,
    /// (region, plan) whose track levels changed, with all their levels now.
    pub states: Vec<(String, String, BTreeMap<String, String>)>,
    /// Inputs to acknowledge.
    pub acks: Vec<T>,
}

impl<T> Default for Effects<T> {
    fn default() -> Self {
        Effects {
            notices: Vec::new(),
            rejections: Vec::new(),
            states: Vec::new(),
            acks: Vec::new(),
        }
    }
}

/// What the engine made of an acknowledgement link's `ack` (the page says it).
#[derive(Debug, Clone, PartialEq)]
pub enum LinkOutcome {
    /// The engine gave `call_ack` for that call and person.
    Recorded,
    /// Acknowledged before: answered from the call register, nothing journaled.
    Already,
    /// The round is over (superseded or closed): the link has expired, nothing journaled.
    Ended,
    /// Refused by the engine (unknown call, person not called, ...), with its reason.
    Refused(String),
}

/// What [`restore_engine`] rebuilt.
pub struct Restored {
    pub engine: Engine,
    /// Journal seq of the snapshot it started from (0: none).
    pub snapshot_seq: i64,
    /// Journal seq of the last input replayed.
    pub seq: i64,
    pub replayed: usize,
    /// Notices the journal replay regenerated, in order.
    pub notices: Vec<Notice>,
}

/// The engine as of the last journaled input: the store's latest snapshot (a fresh
/// engine when there is none or it no longer reads), then the journal rows after it,
/// each through [`Engine::ingest`] like when it arrived. Read-only; returns the notices
/// the journal replay regenerated, in order.
pub fn restore_engine(store: &Store, cfg: &Arc<Config>) -> anyhow::Result<Restored> {
    restore_from(store.conn(), cfg)
}

/// [`restore_engine`] on a connection: a store's, or an open transaction's (its own
/// journal rows included).
fn restore_from(conn: &rusqlite::Connection, cfg: &Arc<Config>) -> anyhow::Result<Restored> {
    let (snapshot_seq, mut engine) = match crate::daemon::store::latest_snapshot(conn)? {
        Some((seq, state)) => match Engine::restore(Arc::clone(cfg), &state) {
            Ok(e) => (seq, e),
            Err(e) => {
                tracing::warn!(error = %e, "snapshot unreadable (engine changed?): replaying the whole journal");
                (0, Engine::new(Arc::clone(cfg)))
            }
        },
        None => (0, Engine::new(Arc::clone(cfg))),
    };
    let (mut seq, mut replayed, mut notices) = (snapshot_seq, 0, Vec::new());
    for row in crate::daemon::store::journal_after(conn, snapshot_seq)? {
        let step = engine.ingest(row.at, &row.topic, &row.payload);
        if let (None, Some(r)) = (&step.message, &step.rejection) {
            tracing::warn!(seq = row.seq, reason = %r, "journaled input no longer parses (config changed?)");
        }
        notices.extend(step.notices);
        seq = row.seq;
        replayed += 1;
    }
    Ok(Restored {
        engine,
        snapshot_seq,
        seq,
        replayed,
        notices,
    })
}

/// [`Engine::ingest`] behind a panic boundary. A panic while handling an input is a
/// bug, but the input would stay unacknowledged and come back at every reconnect (a
/// crash loop): instead the engine is put back as it was before the input (nothing
/// half-applied remains), and the input is refused with class `internal`: logged,
/// counted, published on `rejected`, acknowledged, never journaled.
///
/// The engine is not copied before each input (that cost about 40 % of the handling):
/// after a panic it is rebuilt from what `tx` holds, the last snapshot and the journal
/// rows after it, this transaction's own included, and advanced to its time before the
/// input ([`rebuild`]).
fn guarded_ingest<T>(
    cfg: &Arc<Config>,
    engine: &mut Engine,
    tx: &Tx<'_>,
    at: Ts,
    m: &mut Incoming<T>,
) -> anyhow::Result<Result<Step, Rejection>> {
    // Parsed at its arrival: good only if that is still its time.
    let parsed = m.parsed.take().filter(|_| m.arrived == Some(at));
    let (topic, payload) = (m.topic.as_str(), m.payload.as_slice());
    let was = engine.now();
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match parsed {
        Some(parsed) => engine.ingest_checked(at, topic, parsed),
        None => engine.ingest(at, topic, payload),
    }));
    let panic = match caught {
        Ok(step) => return Ok(Ok(step)),
        Err(panic) => panic,
    };
    *engine = rebuild(cfg, tx, was)?;
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into());
    tracing::error!(topic, panic = %what, "handling the input panicked: input refused, engine state rebuilt as it was before it");
    health::fault(
        "input_panicked",
        serde_json::json!({"topic": topic, "panic": what}),
    );
    crate::daemon::metrics::inc(&crate::daemon::metrics::METRICS.inputs_rejected, 1);
    let region = topic
        .strip_prefix(cfg.topic_root.as_str())
        .and_then(|rest| rest.strip_prefix('/'))
        .and_then(|rest| rest.split('/').next())
        .filter(|r| cfg.regions.iter().any(|c| c.id == *r));
    Ok(Err(Rejection {
        topic: topic.to_string(),
        region: region.map(str::to_string),
        class: crate::input::RejectionClass::Internal,
        reason: format!("handling this input failed inside yingji ({what}); it was not applied, please report it"),
    }))
}

/// Whether an input was handled before: a redelivery (DUP) of a message already
/// journaled (our ack was lost), or a retained message handled before. A retained message
/// is resent by the broker at every subscription: it is handled once per topic and
/// payload (issue 9), so a lifted warning never comes back and a stock report is not
/// journaled at every CONNACK. A retained one not seen before is recorded as seen.
fn handled_before<T>(tx: &Tx<'_>, m: &Incoming<T>) -> anyhow::Result<bool> {
    if m.dup && m.pkid != 0 && tx.seen(m.pkid, &m.topic, &m.payload)? {
        tracing::info!(topic = %m.topic, pkid = m.pkid, "redelivered input already journaled: acked again");
        return Ok(true);
    }
    if m.retained {
        if tx.was_seen(&m.topic, &m.payload)? {
            tracing::info!(topic = %m.topic, "retained input handled before: replay ignored");
            health::count("retained_replay_ignored");
            return Ok(true);
        }
        tx.saw(&m.topic, &m.payload)?;
    }
    Ok(false)
}

/// How far the retained-input index holds the journal after a dose that indexed `n` rows
/// up to watermark `upto`, for a core whose last journal seq is `seq`: with nothing left to
/// index, up to `seq` (the rows between may be gone: a journal emptied by the retention of
/// an earlier version), so the core does not look again until the next input.
fn indexed_upto(seq: i64, (n, upto): (usize, i64)) -> i64 {
    if n == 0 {
        seq
    } else {
        upto
    }
}

/// The engine as it was before an input that panicked: the last snapshot and the journal
/// after it as `tx` sees them (this batch's earlier inputs included), then advanced to
/// `was`, its time before the input (timers that fired by then without a journal row
/// fire again; their notices are already in the outbox, so they are dropped here).
fn rebuild(cfg: &Arc<Config>, tx: &Tx<'_>, was: Option<Ts>) -> anyhow::Result<Engine> {
    let mut engine = restore_from(tx.conn(), cfg)?.engine;
    if let Some(t) = was {
        if !matches!(engine.now(), Some(n) if n >= t) {
            let _regenerated = engine.advance_to(t);
        }
    }
    Ok(engine)
}

type Levels = BTreeMap<(String, String), BTreeMap<String, String>>;

/// Engine + store.
pub struct Core {
    cfg: Arc<Config>,
    engine: Engine,
    store: Store,
    /// Last journal seq handled.
    seq: i64,
    /// Inputs journaled since the last snapshot.
    since_snapshot: u64,
    levels: Levels,
    /// The engine time at which a backwards clock was last reported (log once per jump).
    warned_back: Option<Ts>,
    /// What the notices made so far say (for the console).
    tracker: Tracker,
    /// How long the last batch's commit took, with its sync unless the sync was left to
    /// the sync thread (`ingest_sync_later`; `scripts/bench-live.sh`).
    last_commit: std::time::Duration,
    /// How long the last confirmation spent checking its echoes (render and compare).
    last_check: std::time::Duration,
    /// How long the last confirmation's delivery marks took (zero: none were made).
    last_mark: std::time::Duration,
    /// What the output connection published, to check echoes against (echo.rs).
    rendered: Option<Arc<crate::daemon::echo::Rendered>>,
    /// The journal seq up to which `seen_inputs` holds the journal's inputs, as far as
    /// this core knows (store.rs `SEEN_UPTO`; a retained input's check moves it further
    /// without telling: the next dose finds that out).
    seen_upto: i64,
}

/// Journal rows the retained-input index may lag behind the journal before each batch
/// indexes `SEEN_DOSE` rows too (a core never idle still keeps it bounded; a retained
/// input's check then catches up at most this many rows).
const SEEN_LAG_MAX: i64 = 100_000;
/// Journal rows indexed per dose (when idle, or per batch beyond `SEEN_LAG_MAX`): a few
/// milliseconds, which an input arriving meanwhile waits for.
pub const SEEN_DOSE: usize = 1024;

impl Core {
    /// Recovery: the latest snapshot, then the journal after it through the engine
    /// (regenerated notices are already in the outbox and are ignored), then the clock
    /// advanced to `now`. Returns the core and the levels of every track.
    pub fn recover(cfg: Arc<Config>, mut store: Store, now: Ts) -> anyhow::Result<Core> {
        let seen_upto = store.init_seen()?;
        let restored = restore_engine(&store, &cfg)?;
        let mut levels = Levels::new();
        for (region, plan, track, level) in store.levels()? {
            levels
                .entry((region, plan))
                .or_default()
                .insert(track, level);
        }
        let mut core = Core {
            cfg,
            engine: restored.engine,
            store,
            seq: restored.seq,
            since_snapshot: 0,
            levels,
            warned_back: None,
            tracker: Tracker::default(),
            last_commit: std::time::Duration::ZERO,
            last_check: std::time::Duration::ZERO,
            last_mark: std::time::Duration::ZERO,
            rendered: None,
            seen_upto,
        };
        let mut fx = Effects::<()>::default();
        let tx = core.store.begin()?;
        record(&core.cfg, &tx, &mut core.levels, &restored.notices, &mut fx)?;
        advance(
            &core.cfg,
            &mut core.engine,
            &mut core.levels,
            &mut core.warned_back,
            &tx,
            now,
            &mut fx,
        )?;
        snapshot(&core.cfg, &tx, core.seq, now, &core.engine)?;
        tx.commit()?;
        for n in core.store.notices()? {
            core.tracker.see(&Arc::new(n));
        }
        tracing::info!(
            snapshot_seq = restored.snapshot_seq,
            replayed = restored.replayed,
            recovered_notices = fx.notices.len(),
            "recovered state from the store"
        );
        Ok(core)
    }

    /// How long the last batch's commit took (see the field).
    pub fn last_commit(&self) -> std::time::Duration {
        self.last_commit
    }

    /// How long the last [`Core::confirm`]'s delivery marks took (zero when it made none).
    pub fn last_mark(&self) -> std::time::Duration {
        self.last_mark
    }

    /// Checks echoes against what the output connection rendered when it published them
    /// (rendering again only when it has no entry).
    pub fn check_echoes_against(&mut self, rendered: Arc<crate::daemon::echo::Rendered>) {
        self.rendered = Some(rendered);
    }

    /// How long the last [`Core::confirm`] spent checking its echoes against what this
    /// daemon renders (for the bench's timing line).
    pub fn last_check(&self) -> std::time::Duration {
        self.last_check
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The current levels of every (region, plan) that has any.
    pub fn all_states(&self) -> Vec<(String, String, BTreeMap<String, String>)> {
        self.levels
            .iter()
            .map(|((r, p), t)| (r.clone(), p.clone(), t.clone()))
            .collect()
    }

    /// The picture the console reads (`live`: past the echo drain).
    pub fn view(&self, live: bool, version: u64) -> View {
        self.tracker.view(&self.engine, live, version)
    }

    fn track<T>(&mut self, fx: &Effects<T>) {
        for (n, _) in &fx.notices {
            self.tracker.see(n);
        }
    }

    /// The earliest armed timer.
    pub fn next_deadline(&self) -> Option<(Ts, String)> {
        self.engine.next_deadline()
    }

    /// Handles a batch of inputs in one transaction at wall time `now`. An input's time is
    /// its arrival, but never before the engine's time, so that the journal replays
    /// exactly.
    pub fn ingest<T>(&mut self, batch: Vec<Incoming<T>>, now: Ts) -> anyhow::Result<Effects<T>> {
        Ok(self.ingest_with(batch, now, false)?.0)
    }

    /// [`Core::ingest`] whose commit is synced on the store's sync thread
    /// ([`Tx::commit_sync_later`]) while the caller goes on: none of the effects may be
    /// released before the [`Synced`] returned with them was waited for.
    pub fn ingest_sync_later<T>(
        &mut self,
        batch: Vec<Incoming<T>>,
        now: Ts,
    ) -> anyhow::Result<(Effects<T>, Synced)> {
        self.ingest_with(batch, now, true)
    }

    fn ingest_with<T>(
        &mut self,
        batch: Vec<Incoming<T>>,
        now: Ts,
        later: bool,
    ) -> anyhow::Result<(Effects<T>, Synced)> {
        let mut fx = Effects::default();
        let tx = self.store.begin()?;
        let mut writes = tx.inputs()?;
        let mut acks = Vec::with_capacity(batch.len());
        for mut m in batch {
            let arrived = m.arrived.unwrap_or(now);
            let at = match self.engine.now() {
                Some(n) if n > arrived => n,
                _ => arrived,
            };
            if handled_before(&tx, &m)? {
                acks.push(m.token);
                continue;
            }
            let step = match guarded_ingest(&self.cfg, &mut self.engine, &tx, at, &mut m)? {
                Ok(step) => step,
                Err(r) => {
                    fx.rejections.push((at, r));
                    acks.push(m.token);
                    continue;
                }
            };
            if let Some(input::Input::AirForecast(f)) = step.message.as_ref().map(|m| &m.input) {
                if f.ignored_hours > 0 {
                    tracing::info!(topic = %m.topic, ignored_hours = f.ignored_hours, kept_hours = f.hours.len(), "forecast hours more than {} days after arrival ignored", input::FORECAST_HORIZON_DAYS);
                    health::count("forecast_hours_ignored");
                }
            }
            if step.journal {
                self.seq = writes.journal(at, &m.topic, &m.payload)?;
                tracing::debug!(seq = self.seq, topic = %m.topic, at = %fmt_ts(at), "input accepted");
                crate::daemon::metrics::inc(&crate::daemon::metrics::METRICS.inputs_accepted, 1);
                if m.pkid != 0 {
                    writes.remember(m.pkid, &m.topic, &m.payload)?;
                }
                self.since_snapshot += 1;
            } else {
                crate::daemon::metrics::inc(&crate::daemon::metrics::METRICS.inputs_rejected, 1);
            }
            record(&self.cfg, &tx, &mut self.levels, &step.notices, &mut fx)?;
            if let Some(r) = step.rejection {
                fx.rejections.push((at, r));
            }
            acks.push(m.token);
        }
        drop(writes);
        if self.seq - self.seen_upto > SEEN_LAG_MAX {
            self.seen_upto = indexed_upto(self.seq, tx.index_seen(SEEN_DOSE)?);
        }
        if self.since_snapshot >= self.cfg.store.snapshot_every.max(1) {
            snapshot(&self.cfg, &tx, self.seq, now, &self.engine)?;
            self.since_snapshot = 0;
        }
        let t = crate::clock::monotonic();
        let synced = if later {
            tx.commit_sync_later()?
        } else {
            tx.commit()?;
            Synced::done()
        };
        self.last_commit = t.elapsed();
        fx.acks = acks;
        self.track(&fx);
        Ok((fx, synced))
    }

    /// An acknowledgement link clicked: the `ack` command it stands for goes through
    /// `ingest` as an input of the region's `cmd` topic (journaled, so a replay of the
    /// journal reproduces it). A person who acknowledged before, or a round that is over,
    /// is answered from the call register: nothing is journaled (a click repeated a
    /// thousand times is one row).
    pub fn link_ack<T>(
        &mut self,
        region: &str,
        call_id: &str,
        person: &str,
        now: Ts,
    ) -> anyhow::Result<(Effects<T>, LinkOutcome)> {
        let round = self
            .cfg
            .regions
            .iter()
            .position(|r| r.id == region)
            .and_then(|i| self.engine.state().regions.get(i))
            .and_then(|p| p.weather.rounds.get(call_id));
        if let Some(r) = round {
            if let Some(p) = r.persons.iter().find(|p| p.person == person) {
                if p.acked {
                    return Ok((Effects::default(), LinkOutcome::Already));
                }
                if r.status != RoundStatus::Current {
                    return Ok((Effects::default(), LinkOutcome::Ended));
                }
            }
        }
        let (topic, payload) = crate::daemon::ack::command(&self.cfg, region, call_id, person);
        let fx = self.ingest_one(topic, payload, now)?;
        let acked = fx.notices.iter().any(|(n, _)| {
            n.kind == Kind::CallAck
                && n.call_id.as_deref() == Some(call_id)
                && n.person.as_deref() == Some(person)
        });
        let outcome = match (fx.rejections.first(), acked) {
            (Some((_, r)), _) => LinkOutcome::Refused(r.reason.clone()),
            (None, true) => LinkOutcome::Recorded,
            (None, false) => LinkOutcome::Already,
        };
        Ok((fx, outcome))
    }

    /// `ingest` of one input made here (the console, an ack link): nothing to acknowledge
    /// to a broker, so the effects carry no acks, of whatever token type the caller uses.
    fn ingest_one<T>(
        &mut self,
        topic: String,
        payload: Vec<u8>,
        now: Ts,
    ) -> anyhow::Result<Effects<T>> {
        let fx = self.ingest(
            vec![Incoming {
                topic,
                payload,
                pkid: 0,
                dup: false,
                retained: false,
                arrived: None,
                parsed: None,
                token: (),
            }],
            now,
        )?;
        Ok(Effects {
            notices: fx.notices,
            rejections: fx.rejections,
            states: fx.states,
            acks: Vec::new(),
        })
    }

    /// A command from the console (`payload` of the region's `cmd` topic, `by` = the
    /// operator): through `ingest` like an MQTT command, so replay reproduces it. Returns
    /// the effects and the engine's refusal, if any.
    pub fn command<T>(
        &mut self,
        region: &str,
        payload: Vec<u8>,
        now: Ts,
    ) -> anyhow::Result<(Effects<T>, Option<String>)> {
        let topic = format!("{}/{region}/cmd", self.cfg.topic_root);
        let fx = self.ingest_one(topic, payload, now)?;
        let refused = fx.rejections.first().map(|(_, r)| r.reason.clone());
        Ok((fx, refused))
    }

    /// The call register of event (warning id) `event` in `region` as CSV.
    pub fn register_csv(&self, region: &str, event: &str) -> Option<String> {
        let i = self.cfg.regions.iter().position(|r| r.id == region)?;
        self.engine
            .state()
            .regions
            .get(i)?
            .weather
            .register_csv(event)
    }

    /// Takes the proofs that arrived (`(proof, token)`) into `proofs` and records the
    /// deliveries proven by the broker routing our own publications back to us
    /// (`(sink, payload, token)`), in one transaction; then the echoes are acked, each
    /// with the messages that carried its proof, and the proofs that waited too long for
    /// their echo (echo.rs: a proof acked before its echo's mark committed is lost to a
    /// SIGKILL, and the echo redelivered after the restart proves nothing).
    ///
    /// An echo is trusted only when it is byte-identical to what this daemon renders for
    /// that notice and sink and `proofs` holds its proof under `key` (see echo.rs);
    /// anything else is logged, counted and acked, and confirms nothing.
    pub fn confirm<T>(
        &mut self,
        arrived: Vec<(Vec<u8>, T)>,
        echoes: Vec<(MqttSink, Vec<u8>, T)>,
        key: &[u8],
        proofs: &mut Proofs<T>,
        now: Ts,
    ) -> anyhow::Result<Effects<T>> {
        let mut fx = Effects::default();
        for (p, token) in arrived {
            fx.acks
                .extend(proofs.see(String::from_utf8_lossy(&p).into_owned(), token, now));
        }
        let mut marks = Vec::new();
        let checking = crate::clock::monotonic();
        for (sink, payload, token) in echoes {
            fx.acks.push(token);
            let id = crate::daemon::echo::echo_id(sink, &payload);
            match (
                self.proof_tokens(id.as_deref(), sink, &payload, key, proofs)?,
                id,
            ) {
                (Some(tokens), Some(id)) => {
                    tracing::debug!(%id, %sink, "echo with its proof: delivery confirmed");
                    fx.acks.extend(tokens);
                    marks.push((id, sink));
                }
                (_, id) => {
                    tracing::warn!(id = ?id, %sink, bytes = payload.len(), "echo not trusted (not what this daemon published, or without its proof): confirms nothing");
                    health::count("echo_untrusted");
                }
            }
        }
        self.last_check = checking.elapsed();
        self.last_mark = std::time::Duration::ZERO;
        if !marks.is_empty() {
            // Delivery marks, like the sinks': not synced on their own, so an echo does
            // not make the next input wait for a disk sync; the next journal commit syncs
            // them. (Committed, they survive a SIGKILL.)
            let t = crate::clock::monotonic();
            let marks: Vec<(&str, Sink)> = marks
                .iter()
                .map(|(id, sink)| (id.as_str(), Sink::from(*sink)))
                .collect();
            self.store.mark_all_delivered(&marks, now)?;
            self.last_mark = t.elapsed();
        }
        fx.acks.extend(proofs.expire(now));
        Ok(fx)
    }

    /// When an echo of notice `id` to `sink` is what this daemon renders for it and its
    /// proof was seen: the proof, used up, as the tokens of the messages that carried it.
    fn proof_tokens<T>(
        &self,
        id: Option<&str>,
        sink: MqttSink,
        payload: &[u8],
        key: &[u8],
        proofs: &mut Proofs<T>,
    ) -> anyhow::Result<Option<Vec<T>>> {
        let Some(id) = id else {
            return Ok(None);
        };
        let published = self.rendered.as_ref().and_then(|r| r.take(id, sink));
        let ours = match published {
            // What this daemon rendered when it published the notice.
            Some(bytes) => bytes == payload,
            None => match self.store.notice(id)? {
                Some(n) => {
                    crate::daemon::echo::payload(&self.cfg, &self.store, &n, sink) == payload
                }
                None => false,
            },
        };
        if !ours {
            return Ok(None);
        }
        Ok(proofs.take(&crate::daemon::echo::proof(key, sink, id, payload)))
    }

    /// Fires the timers due by wall time `now`. A clock that went backwards is logged
    /// and fires nothing (the engine ignores times before its own).
    pub fn tick<T>(&mut self, now: Ts) -> anyhow::Result<Effects<T>> {
        let mut fx = Effects::default();
        let due = matches!(self.engine.next_deadline(), Some((t, _)) if t <= now);
        let back = matches!(self.engine.now(), Some(n) if n > now);
        if !due && !back {
            return Ok(fx);
        }
        let tx = self.store.begin()?;
        advance(
            &self.cfg,
            &mut self.engine,
            &mut self.levels,
            &mut self.warned_back,
            &tx,
            now,
            &mut fx,
        )?;
        tx.commit()?;
        self.track(&fx);
        Ok(fx)
    }

    /// Whether the retained-input index lags behind the journal (a dose is due when idle).
    pub fn seen_lags(&self) -> bool {
        self.seen_upto < self.seq
    }

    /// Indexes up to [`SEEN_DOSE`] journal rows into the retained-input index, in a
    /// transaction of its own, not synced on its own (like the delivery marks: derived
    /// data, synced by the next journal commit; lost with it, the watermark is lost too).
    /// Returns the rows indexed.
    pub fn index_seen_dose(&mut self) -> anyhow::Result<usize> {
        if !self.seen_lags() {
            return Ok(0);
        }
        let tx = self.store.begin()?;
        let done = tx.index_seen(SEEN_DOSE)?;
        tx.commit_unsynced()?;
        self.seen_upto = indexed_upto(self.seq, done);
        Ok(done.0)
    }

    /// Writes a snapshot now (on shutdown).
    pub fn snapshot(&mut self, now: Ts) -> anyhow::Result<()> {
        let tx = self.store.begin()?;
        snapshot(&self.cfg, &tx, self.seq, now, &self.engine)?;
        tx.commit()?;
        self.since_snapshot = 0;
        Ok(())
    }
}

/// Stores a snapshot of `engine` (including the journal up to `seq`), but only one that
/// restores: a state the engine cannot read back (a value serde cannot represent) would
/// make every later start replay the whole journal. Such a snapshot is not stored; the
/// fault is logged, counted and published on the ops topic.
fn snapshot(
    cfg: &Arc<Config>,
    tx: &Tx<'_>,
    seq: i64,
    now: Ts,
    engine: &Engine,
) -> anyhow::Result<()> {
    let state = engine.snapshot();
    match Engine::restore(Arc::clone(cfg), &state) {
        Ok(_) => tx.snapshot(seq, now, &state),
        Err(e) => {
            tracing::error!(seq, error = %e, "snapshot would not restore: not stored (the journal still has everything)");
            health::fault(
                "snapshot_unrestorable",
                serde_json::json!({"seq": seq, "error": e.to_string()}),
            );
            Ok(())
        }
    }
}

/// Advances the engine to wall time `now` (timers due by then fire); a clock behind the
/// engine's time is logged once per jump and fires nothing.
fn advance<T>(
    cfg: &Config,
    engine: &mut Engine,
    levels: &mut Levels,
    warned_back: &mut Option<Ts>,
    tx: &Tx<'_>,
    now: Ts,
    fx: &mut Effects<T>,
) -> anyhow::Result<()> {
    if let Some(n) = engine.now() {
        if now < n {
            if *warned_back != Some(n) {
                tracing::warn!(
                    clock = %fmt_ts(now),
                    engine = %fmt_ts(n),
                    "wall clock is behind the engine's time (clock jumped back?): no timer fires until it catches up"
                );
                *warned_back = Some(n);
            }
            return Ok(());
        }
    }
    let ns = engine.advance_to(now);
    record(cfg, tx, levels, &ns, fx)
}

/// Puts notices in the outbox and tracks levels; collects the new ones.
fn record<T>(
    cfg: &Config,
    tx: &Tx<'_>,
    levels: &mut Levels,
    notices: &[Notice],
    fx: &mut Effects<T>,
) -> anyhow::Result<()> {
    for n in notices {
        let sinks = render::sinks(cfg, n);
        let new = match tx.outbox(n, &sinks)? {
            Outboxed::New => true,
            Outboxed::Same => false,
            Outboxed::Conflict => {
                tracing::error!(id = %n.id, kind = n.kind.as_str(), at = %fmt_ts(n.at), "outbox conflict: a notice with this id and another body is already stored (inputs parse differently now: config changed?); the stored one is kept, this one is not sent");
                health::fault(
                    "outbox_conflict",
                    serde_json::json!({"id": n.id, "at": fmt_ts(n.at)}),
                );
                false
            }
        };
        if n.kind.is_move() {
            let level = if n.kind == Kind::Terminate {
                "none"
            } else {
                n.level.as_str()
            };
            let key = (n.region.clone(), n.plan.as_str().to_string());
            let tracks = levels.entry(key.clone()).or_default();
            tracks.insert(n.track.clone(), level.to_string());
            tx.set_level(&n.region, n.plan.as_str(), &n.track, level)?;
            let snapshot = (key.0, key.1, tracks.clone());
            fx.states
                .retain(|(r, p, _)| (r, p) != (&snapshot.0, &snapshot.1));
            fx.states.push(snapshot);
        }
        if new {
            crate::daemon::metrics::inc(&crate::daemon::metrics::METRICS.notices, 1);
            tracing::info!(id = %n.id, kind = n.kind.as_str(), level = %n.level, at = %fmt_ts(n.at), "notice");
            fx.notices.push((Arc::new(n.clone()), sinks));
        }
    }
    Ok(())
}

mod retention;
#[cfg(test)]
#[allow(clippy::too_many_lines)] // the 70-line limit is for production code
mod tests;
