//! SQLite store (WAL): the input journal, engine snapshots, the outbox (notices and their
//! per-sink deliveries) and the current level of every track.
//!
//! One writer at a time: the core thread writes the journal, notices and snapshots; the
//! sink tasks open their own connections and only mark deliveries.

use std::path::Path;
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};

use std::sync::Arc;

use crate::config::Config;
use crate::engine::Engine;
use crate::notice::Notice;
use crate::time::{fmt_ts, parse_ts, Ts};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS journal (
    seq     INTEGER PRIMARY KEY,
    at      TEXT NOT NULL,
    topic   TEXT NOT NULL,
    payload BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS snapshots (
    id       INTEGER PRIMARY KEY,
    seq      INTEGER NOT NULL,
    taken_at TEXT NOT NULL,
    state    BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS notices (
    n    INTEGER PRIMARY KEY,
    id   TEXT NOT NULL UNIQUE,
    json TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS deliveries (
    notice_id    TEXT NOT NULL,
    sink         TEXT NOT NULL,
    delivered_at TEXT,
    attempts     INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT,
    PRIMARY KEY (notice_id, sink)
);
CREATE INDEX IF NOT EXISTS deliveries_pending ON deliveries (delivered_at);
CREATE TABLE IF NOT EXISTS inbox (
    pkid    INTEGER PRIMARY KEY,
    topic   TEXT NOT NULL,
    payload BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS levels (
    region TEXT NOT NULL,
    plan   TEXT NOT NULL,
    track  TEXT NOT NULL,
    level  TEXT NOT NULL,
    PRIMARY KEY (region, plan, track)
);
";

/// What [`Store::restore_engine`] rebuilt.
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

/// One journaled input: the time it was handled at, its topic and raw payload.
#[derive(Debug, Clone, PartialEq)]
pub struct JournalRow {
    pub seq: i64,
    pub at: Ts,
    pub topic: String,
    pub payload: Vec<u8>,
}

/// A delivery still to make: the notice and the sink it goes to.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    pub notice: Notice,
    pub sink: String,
    pub attempts: u32,
}

/// A handle on the database file.
pub struct Store {
    conn: Connection,
}

impl Store {
    /// Opens (creating when missing, with its parent directory) the store at `path`.
    pub fn open(path: &Path) -> anyhow::Result<Store> {
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir)?;
            }
        }
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // FULL: a committed journal row survives a power loss, so acking after commit is safe.
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(Duration::from_secs(10))?;
        conn.execute_batch(SCHEMA)?;
        Ok(Store { conn })
    }

    /// Starts a write transaction (journal rows, notices, levels, snapshot together).
    /// IMMEDIATE: it takes the write lock up front, waiting (busy timeout) for the sink
    /// connections; a deferred one that reads first would fail with SQLITE_BUSY when a
    /// sink wrote in between.
    pub fn begin(&mut self) -> anyhow::Result<Tx<'_>> {
        Ok(Tx(self.conn.transaction_with_behavior(
            TransactionBehavior::Immediate,
        )?))
    }

    /// The latest snapshot: (journal seq it includes, engine state).
    pub fn latest_snapshot(&self) -> anyhow::Result<Option<(i64, Vec<u8>)>> {
        Ok(self
            .conn
            .query_row(
                "SELECT seq, state FROM snapshots ORDER BY id DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
    }

    /// Journal rows after `seq`, in order.
    pub fn journal_after(&self, seq: i64) -> anyhow::Result<Vec<JournalRow>> {
        let mut st = self
            .conn
            .prepare("SELECT seq, at, topic, payload FROM journal WHERE seq > ?1 ORDER BY seq")?;
        let rows = st.query_map([seq], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Vec<u8>>(3)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, at, topic, payload) = row?;
            let at = parse_ts(&at).map_err(anyhow::Error::msg)?;
            out.push(JournalRow {
                seq,
                at,
                topic,
                payload,
            });
        }
        Ok(out)
    }

    /// The engine as of the last journaled input: the latest snapshot (a fresh engine
    /// when there is none or it no longer reads), then the journal after it. Read-only;
    /// returns the notices the journal replay regenerated, in order.
    pub fn restore_engine(&self, cfg: &Arc<Config>) -> anyhow::Result<Restored> {
        let (snapshot_seq, mut engine) = match self.latest_snapshot()? {
            Some((seq, state)) => match Engine::restore(Arc::clone(cfg), &state) {
                Ok(e) => (seq, e),
                Err(e) => {
                    tracing::warn!(error = %e, "snapshot unreadable (engine changed?): replaying the whole journal");
                    (0, Engine::new(Arc::clone(cfg)))
                }
            },
            None => (0, Engine::new(Arc::clone(cfg))),
        };
        let mut restored = Restored {
            snapshot_seq,
            seq: snapshot_seq,
            replayed: 0,
            notices: Vec::new(),
            engine: Engine::new(Arc::clone(cfg)),
        };
        for row in self.journal_after(snapshot_seq)? {
            match crate::input::parse(cfg, &row.topic, &row.payload, row.at) {
                Ok(msg) => restored.notices.extend(engine.handle(row.at, &msg).notices),
                Err(r) => {
                    tracing::warn!(seq = row.seq, reason = %r, "journaled input no longer parses (config changed?)");
                    restored.notices.extend(engine.advance_to(row.at));
                }
            }
            restored.seq = row.seq;
            restored.replayed += 1;
        }
        restored.engine = engine;
        Ok(restored)
    }

    /// The last journal seq (0 when empty).
    pub fn last_seq(&self) -> anyhow::Result<i64> {
        Ok(self
            .conn
            .query_row("SELECT COALESCE(MAX(seq), 0) FROM journal", [], |r| {
                r.get(0)
            })?)
    }

    /// Every delivery not yet made whose sink starts with `prefix`, in notice order.
    pub fn pending(&self, prefix: &str) -> anyhow::Result<Vec<Pending>> {
        let mut st = self.conn.prepare(
            "SELECT n.json, d.sink, d.attempts FROM deliveries d JOIN notices n ON n.id = d.notice_id
             WHERE d.delivered_at IS NULL AND substr(d.sink, 1, length(?1)) = ?1
             ORDER BY n.n, d.sink",
        )?;
        let rows = st.query_map([prefix], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, u32>(2)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (json, sink, attempts) = row?;
            out.push(Pending {
                notice: serde_json::from_str(&json)?,
                sink,
                attempts,
            });
        }
        Ok(out)
    }

    /// Marks one delivery made. Idempotent.
    pub fn mark_delivered(&self, notice_id: &str, sink: &str, at: Ts) -> anyhow::Result<()> {
        self.conn.execute(
            "UPDATE deliveries SET delivered_at = ?3 WHERE notice_id = ?1 AND sink = ?2 AND delivered_at IS NULL",
            params![notice_id, sink, fmt_ts(at)],
        )?;
        Ok(())
    }

    /// Records a failed attempt.
    pub fn mark_failed(&self, notice_id: &str, sink: &str, error: &str) -> anyhow::Result<()> {
        self.conn.execute(
            "UPDATE deliveries SET attempts = attempts + 1, last_error = ?3 WHERE notice_id = ?1 AND sink = ?2",
            params![notice_id, sink, error],
        )?;
        Ok(())
    }

    /// Whether a delivery was made (tests, tools).
    pub fn is_delivered(&self, notice_id: &str, sink: &str) -> anyhow::Result<bool> {
        Ok(self
            .conn
            .query_row(
                "SELECT delivered_at IS NOT NULL FROM deliveries WHERE notice_id = ?1 AND sink = ?2",
                params![notice_id, sink],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or(false))
    }

    /// Every notice in the outbox, in the order it was made.
    pub fn notices(&self) -> anyhow::Result<Vec<Notice>> {
        let mut st = self.conn.prepare("SELECT json FROM notices ORDER BY n")?;
        let rows = st.query_map([], |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        for row in rows {
            out.push(serde_json::from_str(&row?)?);
        }
        Ok(out)
    }

    /// A value of the `meta` table, set to `make()` (and kept) when missing.
    pub fn meta_or_insert(
        &mut self,
        key: &str,
        make: impl FnOnce() -> anyhow::Result<String>,
    ) -> anyhow::Result<String> {
        let tx = self.begin()?;
        let got: Option<String> =
            tx.0.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
                .optional()?;
        let v = match got {
            Some(v) => v,
            None => {
                let v = make()?;
                tx.0.execute(
                    "INSERT INTO meta (key, value) VALUES (?1, ?2)",
                    params![key, v],
                )?;
                v
            }
        };
        tx.commit()?;
        Ok(v)
    }

    /// Current level of every track: (region, plan, track, level).
    pub fn levels(&self) -> anyhow::Result<Vec<(String, String, String, String)>> {
        let mut st = self.conn.prepare(
            "SELECT region, plan, track, level FROM levels ORDER BY region, plan, track",
        )?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// A write transaction.
pub struct Tx<'a>(Transaction<'a>);

impl Tx<'_> {
    /// Appends an input to the journal; returns its seq.
    pub fn journal(&self, at: Ts, topic: &str, payload: &[u8]) -> anyhow::Result<i64> {
        self.0
            .prepare_cached("INSERT INTO journal (at, topic, payload) VALUES (?1, ?2, ?3)")?
            .execute(params![fmt_ts(at), topic, payload])?;
        Ok(self.0.last_insert_rowid())
    }

    /// Remembers the last journaled message of each MQTT packet id, to recognise the
    /// broker redelivering it (DUP) when our ack did not reach it.
    pub fn remember(&self, pkid: u16, topic: &str, payload: &[u8]) -> anyhow::Result<()> {
        self.0
            .prepare_cached(
                "INSERT INTO inbox (pkid, topic, payload) VALUES (?1, ?2, ?3)
             ON CONFLICT (pkid) DO UPDATE SET topic = excluded.topic, payload = excluded.payload",
            )?
            .execute(params![pkid, topic, payload])?;
        Ok(())
    }

    /// Whether the last journaled message with packet id `pkid` was this one.
    pub fn seen(&self, pkid: u16, topic: &str, payload: &[u8]) -> anyhow::Result<bool> {
        Ok(self
            .0
            .query_row(
                "SELECT 1 FROM inbox WHERE pkid = ?1 AND topic = ?2 AND payload = ?3",
                params![pkid, topic, payload],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    /// Puts a notice in the outbox with the sinks it needs. A notice already there (same
    /// id: regenerated by recovery) is left as it is; returns whether it is new.
    pub fn outbox(&self, n: &Notice, sinks: &[String]) -> anyhow::Result<bool> {
        let added = self
            .0
            .prepare_cached("INSERT OR IGNORE INTO notices (id, json) VALUES (?1, ?2)")?
            .execute(params![n.id, n.to_json_line()])?;
        if added == 0 {
            return Ok(false);
        }
        for s in sinks {
            self.0
                .prepare_cached(
                    "INSERT OR IGNORE INTO deliveries (notice_id, sink) VALUES (?1, ?2)",
                )?
                .execute(params![n.id, s])?;
        }
        Ok(true)
    }

    /// Marks one delivery made (the broker routed it back to us). Idempotent.
    pub fn mark_delivered(&self, notice_id: &str, sink: &str, at: Ts) -> anyhow::Result<()> {
        self.0.prepare_cached("UPDATE deliveries SET delivered_at = ?3 WHERE notice_id = ?1 AND sink = ?2 AND delivered_at IS NULL")?.execute(params![notice_id, sink, fmt_ts(at)])?;
        Ok(())
    }

    /// Sets the current level of a track.
    pub fn set_level(
        &self,
        region: &str,
        plan: &str,
        track: &str,
        level: &str,
    ) -> anyhow::Result<()> {
        self.0
            .prepare_cached(
                "INSERT INTO levels (region, plan, track, level) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (region, plan, track) DO UPDATE SET level = excluded.level",
            )?
            .execute(params![region, plan, track, level])?;
        Ok(())
    }

    /// Stores a snapshot of the engine that includes the journal up to `seq`; keeps the
    /// latest few.
    pub fn snapshot(&self, seq: i64, taken_at: Ts, state: &[u8]) -> anyhow::Result<()> {
        self.0.execute(
            "INSERT INTO snapshots (seq, taken_at, state) VALUES (?1, ?2, ?3)",
            params![seq, fmt_ts(taken_at), state],
        )?;
        self.0.execute(
            "DELETE FROM snapshots WHERE id NOT IN (SELECT id FROM snapshots ORDER BY id DESC LIMIT 3)",
            [],
        )?;
        Ok(())
    }

    pub fn commit(self) -> anyhow::Result<()> {
        Ok(self.0.commit()?)
    }
}
