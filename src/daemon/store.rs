//! SQLite store (WAL): the input journal, engine snapshots, the outbox (notices and their
//! per-sink deliveries) and the current level of every track.
//!
//! One writer at a time: the core thread writes the journal, notices and snapshots; the
//! sink tasks open their own connections and only mark deliveries.

use std::path::Path;
use std::time::Duration;

use rusqlite::{
    params, CachedStatement, Connection, OptionalExtension, Transaction, TransactionBehavior,
};

use crate::daemon::durable::{Durable, Synced};
use crate::daemon::sink::{Sink, SinkKind};
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
CREATE TABLE IF NOT EXISTS seen_inputs (
    topic  TEXT NOT NULL,
    digest BLOB NOT NULL,
    PRIMARY KEY (topic, digest)
) WITHOUT ROWID;
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

/// One journaled input: the time it was handled at, its topic and raw payload.
#[derive(Debug, Clone, PartialEq)]
pub struct JournalRow {
    pub seq: i64,
    pub at: Ts,
    pub topic: String,
    pub payload: Vec<u8>,
}

/// A journal row as a scenario line (`{"at", "topic", "payload"}`; the payload as JSON
/// when it is JSON, else as a string), for `yingji replay`.
pub fn scenario_line(r: &JournalRow) -> String {
    let payload = serde_json::from_slice::<serde_json::Value>(&r.payload)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&r.payload).into()));
    serde_json::json!({"at": crate::time::fmt_ts(r.at), "topic": r.topic, "payload": payload})
        .to_string()
}

/// The latest snapshot on `conn` (a store, or a transaction: its own rows included).
pub fn latest_snapshot(conn: &Connection) -> anyhow::Result<Option<(i64, Vec<u8>)>> {
    Ok(conn
        .query_row(
            "SELECT seq, state FROM snapshots ORDER BY id DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?)
}

/// Journal rows after `seq` on `conn` (a store, or a transaction: its own rows included).
pub fn journal_after(conn: &Connection, seq: i64) -> anyhow::Result<Vec<JournalRow>> {
    let mut st = conn.prepare_cached(
        "SELECT seq, at, topic, payload FROM journal WHERE seq > ?1 ORDER BY seq",
    )?;
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

/// The journal's first rows, in order, up to `max_seq` and while handled before `cutoff`
/// (what retention archives). Read row by row, stopping at the first row that does not
/// qualify: the rest of the journal is never loaded.
pub fn journal_before(
    conn: &Connection,
    max_seq: i64,
    cutoff: Ts,
) -> anyhow::Result<Vec<JournalRow>> {
    let mut st =
        conn.prepare("SELECT seq, at, topic, payload FROM journal WHERE seq <= ?1 ORDER BY seq")?;
    let mut rows = st.query([max_seq])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let at = parse_ts(&r.get::<_, String>(1)?).map_err(anyhow::Error::msg)?;
        if at >= cutoff {
            break;
        }
        out.push(JournalRow {
            seq: r.get(0)?,
            at,
            topic: r.get(2)?,
            payload: r.get(3)?,
        });
    }
    Ok(out)
}

/// A delivery still to make: the notice and the sink it goes to.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    pub notice: Notice,
    pub sink: Sink,
    pub attempts: u32,
}

/// What [`Tx::outbox`] did with a notice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outboxed {
    /// Added, with its deliveries.
    New,
    /// Already there with the same body (regenerated by recovery).
    Same,
    /// Already there with another body (the inputs parse differently now, e.g. after a
    /// config change): the stored one is kept; an error to report, never a silent drop.
    Conflict,
}

/// Waits for another connection's write transaction: short sleeps, about 10 s in all.
/// (SQLite's own busy timeout sleeps 1, 2, 5, 10 … 100 ms between tries, without being
/// woken when the lock is freed: a journal commit behind a delivery mark that held the
/// lock for 1 ms waited up to tens of ms.)
fn busy(tries: i32) -> bool {
    const FAST_TRIES: i32 = 1_000;
    const FAST: Duration = Duration::from_micros(100);
    const SLOW: Duration = Duration::from_millis(1);
    // 1,000 x 0.1 ms, then 9,900 x 1 ms: about 10 s.
    const MAX_TRIES: i32 = FAST_TRIES + 9_900;
    if tries >= MAX_TRIES {
        return false;
    }
    std::thread::sleep(if tries < FAST_TRIES { FAST } else { SLOW });
    true
}

/// A handle on the database file.
pub struct Store {
    conn: Connection,
    /// The core's store: its commits are made durable by [`Durable`] instead of inside
    /// SQLite ([`Store::sync_off_thread`]).
    durable: Option<Durable>,
}

/// The page cache of the core's connection, KiB (SQLite's default is 2,000). Its writes
/// are appends (journal, notices, outbox) and upserts of recent packet ids, and a page it
/// no longer holds is read back from the OS's cache: a 100,000-input drain took the same
/// CPU with 256 KiB, and the daemon's peak memory after it was about 2 MiB lower
/// (docs/performance.md, "main after the session's merges").
const CORE_CACHE_KIB: i64 = 256;

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

        conn.busy_handler(Some(busy))?;
        conn.execute_batch(SCHEMA)?;
        Ok(Store {
            conn,
            durable: None,
        })
    }

    /// From now on this connection's commits are written to the log without a sync and
    /// without automatic checkpoints, and [`Durable`] (durable.rs) syncs and checkpoints:
    /// [`Tx::commit`] syncs the log before it returns (what `synchronous = FULL` did), and
    /// [`Tx::commit_sync_later`] has it synced on another thread. For the core's store,
    /// at `path`.
    pub fn sync_off_thread(&mut self, path: &Path) -> anyhow::Result<()> {
        let durable = Durable::start(path)?;
        self.conn.pragma_update(None, "synchronous", "NORMAL")?;
        self.conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        self.durable = Some(durable);
        Ok(())
    }

    /// Opens the store for a sink (MQTT out, email, webhooks), which only reads the outbox
    /// and marks deliveries: its commits are not synced one by one (`synchronous =
    /// NORMAL`; in WAL mode a commit still survives a crash of the process, and it is
    /// synced with the core's next commit, which syncs the whole log). So a delivery
    /// mark never makes the core's next journal commit wait for a disk sync of its own.
    /// What a power loss can cost: a delivery made just before it is made again after
    /// the restart (a duplicate the consumer drops by id, never a loss).
    pub fn open_sink(path: &Path) -> anyhow::Result<Store> {
        let store = Self::open(path)?;
        store.conn.pragma_update(None, "synchronous", "NORMAL")?;
        Ok(store)
    }

    /// The connection, for the modules that keep their own tables (history.rs).
    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Opens the store the daemon runs on: like [`Store::open`], but a zero-byte file
    /// where a store was expected (a truncated or wrongly restored file) is refused unless
    /// `init` (`yingji run --init`): starting it as a new store would restart notice ids at
    /// 1 and forget every warning in force. Its page cache is [`CORE_CACHE_KIB`].
    pub fn open_checked(path: &Path, init: bool) -> anyhow::Result<Store> {
        let len = |p: &Path| std::fs::metadata(p).map(|m| m.len()).ok();
        if len(path) == Some(0)
            && len(&crate::daemon::durable::wal_path(path)).unwrap_or(0) == 0
            && !init
        {
            anyhow::bail!(
                "store {} is an empty file: refusing to start it as a new store (notice ids \
                 would restart at 1). Restore the store from a backup, or start once with \
                 `yingji run --init` to begin a new one",
                path.display()
            );
        }
        let store = Self::open(path)?;
        store
            .conn
            .pragma_update(None, "cache_size", -CORE_CACHE_KIB)?;
        Ok(store)
    }

    /// Starts a write transaction (journal rows, notices, levels, snapshot together).
    /// IMMEDIATE: it takes the write lock up front, waiting (busy timeout) for the sink
    /// connections; a deferred one that reads first would fail with SQLITE_BUSY when a
    /// sink wrote in between.
    pub fn begin(&mut self) -> anyhow::Result<Tx<'_>> {
        Ok(Tx(
            self.conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?,
            self.durable.as_ref(),
        ))
    }

    /// The latest snapshot: (journal seq it includes, engine state).
    pub fn latest_snapshot(&self) -> anyhow::Result<Option<(i64, Vec<u8>)>> {
        latest_snapshot(&self.conn)
    }

    /// Journal rows after `seq`, in order.
    pub fn journal_after(&self, seq: i64) -> anyhow::Result<Vec<JournalRow>> {
        journal_after(&self.conn, seq)
    }

    /// The stored notice with this id.
    pub fn notice(&self, id: &str) -> anyhow::Result<Option<Notice>> {
        let json: Option<String> = self
            .conn
            .query_row("SELECT json FROM notices WHERE id = ?1", [id], |r| r.get(0))
            .optional()?;
        Ok(json.map(|j| serde_json::from_str(&j)).transpose()?)
    }

    /// Sets up the `seen_inputs` watermark ([`SEEN_UPTO`]) when a store does not have it
    /// yet: a store of an earlier version indexed every journal row in the transaction
    /// that wrote it, so its index holds the whole journal; one whose index is empty (made
    /// before the index existed) starts at 0 and has its journal indexed by the catch-up.
    /// Returns the watermark.
    pub fn init_seen(&mut self) -> anyhow::Result<i64> {
        let tx = self.begin()?;
        let upto = match tx.seen_upto()? {
            Some(upto) => upto,
            None => {
                let indexed: bool =
                    tx.0.query_row("SELECT EXISTS (SELECT 1 FROM seen_inputs)", [], |r| {
                        r.get(0)
                    })?;
                let upto = if indexed { last_seq(&tx.0)? } else { 0 };
                tx.set_seen_upto(upto)?;
                upto
            }
        };
        tx.commit()?;
        Ok(upto)
    }

    /// [`Store::begin`] for a caller that holds the store shared (retention, history.rs):
    /// it must not have another transaction of this store open meanwhile.
    pub fn begin_shared(&self) -> anyhow::Result<Tx<'_>> {
        Ok(Tx(
            Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate)?,
            self.durable.as_ref(),
        ))
    }

    /// The last journal seq (0 when empty).
    pub fn last_seq(&self) -> anyhow::Result<i64> {
        last_seq(&self.conn)
    }

    /// Every delivery not yet made to a sink of `kind`, in notice order. A row whose sink
    /// this version does not know (`mqtt:` followed by neither `notice` nor `cap`) is
    /// logged and left in the outbox.
    pub fn pending(&self, kind: SinkKind) -> anyhow::Result<Vec<Pending>> {
        let mut st = self.conn.prepare(
            "SELECT n.json, d.sink, d.attempts FROM deliveries d JOIN notices n ON n.id = d.notice_id
             WHERE d.delivered_at IS NULL AND substr(d.sink, 1, length(?1)) = ?1
             ORDER BY n.n, d.sink",
        )?;
        let rows = st.query_map([kind.prefix()], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, u32>(2)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (json, sink, attempts) = row?;
            let notice: Notice = serde_json::from_str(&json)?;
            match sink.parse::<Sink>() {
                Ok(sink) => out.push(Pending {
                    notice,
                    sink,
                    attempts,
                }),
                Err(e) => {
                    tracing::warn!(id = %notice.id, error = %e, "pending delivery to a sink this version does not know: left in the outbox");
                }
            }
        }
        Ok(out)
    }

    /// Marks deliveries made, in one transaction. Idempotent. Not synced on its own
    /// ([`Tx::commit_unsynced`]): a mark lost to a power loss makes a delivery again after
    /// the restart (a duplicate the consumer drops by id, never a loss), and a mark never
    /// makes a journal commit wait for a sync of its own.
    pub fn mark_all_delivered(&mut self, marks: &[(&str, Sink)], at: Ts) -> anyhow::Result<()> {
        let tx = self.begin()?;
        for (id, sink) in marks {
            tx.mark_delivered(id, sink, at)?;
        }
        tx.commit_unsynced()
    }

    /// Records a failed attempt.
    pub fn mark_failed(&self, notice_id: &str, sink: &Sink, error: &str) -> anyhow::Result<()> {
        self.conn.execute(
            "UPDATE deliveries SET attempts = attempts + 1, last_error = ?3 WHERE notice_id = ?1 AND sink = ?2",
            params![notice_id, sink.to_string(), error],
        )?;
        Ok(())
    }

    /// Whether a delivery was made (tests, tools).
    pub fn is_delivered(&self, notice_id: &str, sink: &Sink) -> anyhow::Result<bool> {
        Ok(self
            .conn
            .query_row(
                "SELECT delivered_at IS NOT NULL FROM deliveries WHERE notice_id = ?1 AND sink = ?2",
                params![notice_id, sink.to_string()],
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

    /// The notices of `n`'s track a CAP message of `n` may reference: from the track's
    /// last `activate` up to `n`, in order (all of the track up to `n` when it has none).
    ///
    /// The track's rows are found by the `id` index alone (their `n`, no JSON read), and
    /// only the notices from `n` back to the last `activate` are read. One query with
    /// `ORDER BY n DESC` made SQLite 3.53 read every notice of the track and sort them in
    /// a temporary B-tree (spilled to temporary files: 3.6 KB of JSON per row), for every
    /// CAP message: in a 1,500-round bench that was 60 % of the daemon's CPU
    /// (docs/performance.md, branch `latency`).
    pub fn cap_history(&self, n: &Notice) -> anyhow::Result<Vec<Notice>> {
        let lo = format!("{}/{}/{}/", n.plan.as_str(), n.region, n.track);
        // '0' follows '/': every id with the prefix sorts in [lo, hi).
        let hi = format!("{}/{}/{}0", n.plan.as_str(), n.region, n.track);
        let mut rows: Vec<i64> = {
            let mut st = self.conn.prepare_cached(
                "SELECT n FROM notices WHERE id >= ?1 AND id < ?2
                 AND n <= COALESCE((SELECT n FROM notices WHERE id = ?3), 9223372036854775807)",
            )?;
            let found = st.query_map(params![lo, hi, n.id], |r| r.get(0))?;
            found.collect::<Result<_, _>>()?
        };
        rows.sort_unstable();
        let mut one = self
            .conn
            .prepare_cached("SELECT json FROM notices WHERE n = ?1")?;
        let mut out = Vec::new();
        for row in rows.into_iter().rev() {
            // A row archived by retention since the first read is no longer history.
            let Some(json) = one.query_row([row], |r| r.get::<_, String>(0)).optional()? else {
                continue;
            };
            let e: Notice = serde_json::from_str(&json)?;
            let first = e.kind == crate::notice::Kind::Activate;
            out.push(e);
            if first {
                break;
            }
        }
        out.reverse();
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

/// The last journal seq on `conn` (0 when empty).
fn last_seq(conn: &Connection) -> anyhow::Result<i64> {
    Ok(
        conn.query_row("SELECT COALESCE(MAX(seq), 0) FROM journal", [], |r| {
            r.get(0)
        })?,
    )
}

fn digest(payload: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(payload).into()
}

/// `meta` key of the `seen_inputs` watermark: the index holds the inputs of every journal
/// row up to this seq (and every retained input handled, journaled or not). The rows
/// after it are indexed lazily ([`Tx::index_seen`]): by [`Tx::was_seen`] before it
/// answers, when the core is idle, and before retention deletes journal rows. Inserting
/// each input's random key as it is journaled dirtied hundreds of B-tree pages per
/// batch commit; the catch-up inserts many rows at once, in key order.
pub const SEEN_UPTO: &str = "seen_inputs_upto";

/// Journal rows read and indexed at a time by the catch-up (its memory: one such chunk).
const SEEN_CHUNK: usize = 4096;

/// A write transaction; with [`Store::sync_off_thread`], the store's [`Durable`].
pub struct Tx<'a>(Transaction<'a>, Option<&'a Durable>);

/// The per-input writes of a batch ([`Tx::inputs`]), with their statements held.
pub struct InputWrites<'t> {
    journal: CachedStatement<'t>,
    remember: CachedStatement<'t>,
}

impl InputWrites<'_> {
    /// Appends an input to the journal; returns its seq.
    pub fn journal(&mut self, at: Ts, topic: &str, payload: &[u8]) -> anyhow::Result<i64> {
        Ok(self.journal.insert(params![fmt_ts(at), topic, payload])?)
    }

    /// Remembers the last journaled message of each MQTT packet id, to recognise the
    /// broker redelivering it (DUP) when our ack did not reach it.
    pub fn remember(&mut self, pkid: u16, topic: &str, payload: &[u8]) -> anyhow::Result<()> {
        self.remember.execute(params![pkid, topic, payload])?;
        Ok(())
    }
}

impl Tx<'_> {
    /// The transaction's connection, for reads that must see its own rows.
    pub fn conn(&self) -> &Connection {
        &self.0
    }

    /// Appends an input to the journal; returns its seq.
    pub fn journal(&self, at: Ts, topic: &str, payload: &[u8]) -> anyhow::Result<i64> {
        self.inputs()?.journal(at, topic, payload)
    }

    /// The statements a batch of inputs runs for each input, prepared once for the batch
    /// (a statement cache lookup hashes and compares the SQL text at every call).
    pub fn inputs(&self) -> anyhow::Result<InputWrites<'_>> {
        Ok(InputWrites {
            journal: self
                .0
                .prepare_cached("INSERT INTO journal (at, topic, payload) VALUES (?1, ?2, ?3)")?,
            remember: self.0.prepare_cached(
                "INSERT INTO inbox (pkid, topic, payload) VALUES (?1, ?2, ?3)
             ON CONFLICT (pkid) DO UPDATE SET topic = excluded.topic, payload = excluded.payload",
            )?,
        })
    }

    /// Records that an input (topic and payload) was handled (a retained input: it is
    /// recognised even when it was not journaled).
    pub fn saw(&self, topic: &str, payload: &[u8]) -> anyhow::Result<()> {
        self.0
            .prepare_cached("INSERT OR IGNORE INTO seen_inputs (topic, digest) VALUES (?1, ?2)")?
            .execute(params![topic, digest(payload)])?;
        Ok(())
    }

    /// Whether this input (topic and payload) was handled before: journaled (this
    /// transaction's rows included) or seen retained. The index is first caught up with
    /// the journal, so the answer does not depend on how far the lazy index lags.
    pub fn was_seen(&self, topic: &str, payload: &[u8]) -> anyhow::Result<bool> {
        self.index_seen(usize::MAX)?;
        Ok(self
            .0
            .prepare_cached("SELECT 1 FROM seen_inputs WHERE topic = ?1 AND digest = ?2")?
            .query_row(params![topic, digest(payload)], |_| Ok(()))
            .optional()?
            .is_some())
    }

    /// The `seen_inputs` watermark ([`SEEN_UPTO`]); `None` before [`Store::init_seen`].
    pub fn seen_upto(&self) -> anyhow::Result<Option<i64>> {
        let v: Option<String> = self
            .0
            .prepare_cached("SELECT value FROM meta WHERE key = ?1")?
            .query_row([SEEN_UPTO], |r| r.get(0))
            .optional()?;
        v.map(|v| v.parse::<i64>())
            .transpose()
            .map_err(|e| anyhow::anyhow!("meta {SEEN_UPTO}: {e}"))
    }

    fn set_seen_upto(&self, upto: i64) -> anyhow::Result<()> {
        self.0
            .prepare_cached(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            )?
            .execute(params![SEEN_UPTO, upto.to_string()])?;
        Ok(())
    }

    /// Indexes up to `max_rows` journal rows after the watermark, in this transaction, and
    /// moves the watermark past them (rows and watermark commit together, so a crash
    /// leaves neither). Returns the rows indexed and the watermark now.
    pub fn index_seen(&self, max_rows: usize) -> anyhow::Result<(usize, i64)> {
        let mut upto = self.seen_upto()?.unwrap_or(0);
        let mut done = 0;
        while done < max_rows {
            let chunk = SEEN_CHUNK.min(max_rows - done);
            let mut keys = Vec::with_capacity(chunk.min(64));
            {
                let mut st = self.0.prepare_cached(
                    "SELECT seq, topic, payload FROM journal WHERE seq > ?1 ORDER BY seq LIMIT ?2",
                )?;
                let mut rows = st.query(params![upto, chunk as i64])?;
                while let Some(r) = rows.next()? {
                    upto = r.get(0)?;
                    let topic: String = r.get(1)?;
                    keys.push((topic, digest(r.get_ref(2)?.as_bytes()?)));
                }
            }
            if keys.is_empty() {
                break;
            }
            done += keys.len();
            let last_chunk = keys.len() < chunk;
            // In key order: the B-tree is walked once, not at random.
            keys.sort_unstable();
            let mut ins = self.0.prepare_cached(
                "INSERT OR IGNORE INTO seen_inputs (topic, digest) VALUES (?1, ?2)",
            )?;
            for (topic, d) in &keys {
                ins.execute(params![topic, d])?;
            }
            if last_chunk {
                break;
            }
        }
        if done > 0 {
            self.set_seen_upto(upto)?;
        }
        Ok((done, upto))
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

    /// Puts a notice in the outbox with the sinks it needs. A notice already there with
    /// the same body (regenerated by recovery) is left as it is ([`Outboxed::Same`]); one
    /// with the same id and another body is left as it is too, and reported
    /// ([`Outboxed::Conflict`]) for the caller to log, count and surface.
    pub fn outbox(&self, n: &Notice, sinks: &[Sink]) -> anyhow::Result<Outboxed> {
        let json = n.to_json_line();
        let added = self
            .0
            .prepare_cached("INSERT OR IGNORE INTO notices (id, json) VALUES (?1, ?2)")?
            .execute(params![n.id, json])?;
        if added == 0 {
            let old: String =
                self.0
                    .query_row("SELECT json FROM notices WHERE id = ?1", [&n.id], |r| {
                        r.get(0)
                    })?;
            return Ok(if old == json {
                Outboxed::Same
            } else {
                Outboxed::Conflict
            });
        }
        for s in sinks {
            self.0
                .prepare_cached(
                    "INSERT OR IGNORE INTO deliveries (notice_id, sink) VALUES (?1, ?2)",
                )?
                .execute(params![n.id, s.to_string()])?;
        }
        Ok(Outboxed::New)
    }

    /// Marks one delivery made (the broker routed it back to us). Idempotent.
    pub fn mark_delivered(&self, notice_id: &str, sink: &Sink, at: Ts) -> anyhow::Result<()> {
        self.0.prepare_cached("UPDATE deliveries SET delivered_at = ?3 WHERE notice_id = ?1 AND sink = ?2 AND delivered_at IS NULL")?.execute(params![notice_id, sink.to_string(), fmt_ts(at)])?;
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

    /// Commits; with [`Store::sync_off_thread`], syncs the log before returning.
    pub fn commit(self) -> anyhow::Result<()> {
        self.0.commit()?;
        match self.1 {
            Some(d) => Ok(d.sync()?),
            None => Ok(()),
        }
    }

    /// Commits without a sync of its own: derived or redoable data (delivery marks, the
    /// retained-input index), which the next synced commit syncs with it. (Committed, it
    /// survives a crash of the process; a store synced inside SQLite, `synchronous = FULL`,
    /// still syncs it.)
    pub fn commit_unsynced(self) -> anyhow::Result<()> {
        Ok(self.0.commit()?)
    }

    /// Commits, and has the log synced on the sync thread (with [`Store::sync_off_thread`];
    /// otherwise the commit synced it): nothing the transaction wrote may be released
    /// (acked, sent) before [`Synced::wait`] returned.
    pub fn commit_sync_later(self) -> anyhow::Result<Synced> {
        self.0.commit()?;
        Ok(self.1.map_or_else(Synced::done, Durable::sync_later))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// CAP references: from the track's last activate up to the notice, in order; other
    /// tracks (one whose name extends this one's included) and later notices are not in it.
    #[test]
    fn cap_history_reads_back_to_the_tracks_last_activate() {
        use crate::notice::{Kind, Plan};
        let dir = std::env::temp_dir().join(format!("yingji-store-cap-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut s = Store::open(&dir.join("y.db")).unwrap();
        let mut made = Vec::new();
        let kinds = [
            ("supply", Kind::Escalate),
            ("supply", Kind::Activate),
            ("supply2", Kind::Activate),
            ("supply", Kind::Escalate),
            ("supply", Kind::Terminate),
            ("supply", Kind::Activate),
            ("supply2", Kind::Escalate),
            ("supply", Kind::Escalate),
            ("supply", Kind::Terminate),
        ];
        for (i, (track, kind)) in kinds.into_iter().enumerate() {
            let mut n = Notice::new(Plan::CoalSupply, track, kind, "L2");
            // Ids of one track do not sort by number ("/10" < "/9"): the order is `n`'s.
            n.id = format!("coal_supply/shuozhou/{track}/{}", 20 - i);
            n.region = "shuozhou".into();
            let tx = s.begin().unwrap();
            tx.outbox(&n, &[Sink::Cap]).unwrap();
            tx.commit().unwrap();
            made.push(n);
        }
        let ids = |v: Vec<Notice>| v.into_iter().map(|n| n.id).collect::<Vec<_>>();
        let id = |i: usize| made[i].id.clone();
        assert_eq!(ids(s.cap_history(&made[4]).unwrap()), [id(1), id(3), id(4)]);
        assert_eq!(ids(s.cap_history(&made[8]).unwrap()), [id(5), id(7), id(8)]);
        assert_eq!(ids(s.cap_history(&made[6]).unwrap()), [id(2), id(6)]);
        assert_eq!(
            ids(s.cap_history(&made[0]).unwrap()),
            [id(0)],
            "no activate before it: the track up to the notice"
        );
    }

    fn at() -> Ts {
        parse_ts("2025-01-01T08:00:00+08:00").unwrap()
    }

    /// Issue 9 item 12: a zero-byte file where a store was expected is refused unless
    /// `--init`; a missing file or a real store is fine.
    #[test]
    fn a_zero_byte_store_is_refused_unless_init() {
        let dir = std::env::temp_dir().join(format!("yingji-store-empty-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("y.db");
        assert!(
            Store::open_checked(&path, false).is_ok(),
            "missing: a new store"
        );
        let core = Store::open_checked(&path, false).expect("an existing store");
        let kib: i64 = core
            .conn()
            .query_row("PRAGMA cache_size", [], |r| r.get(0))
            .unwrap();
        assert_eq!(kib, -CORE_CACHE_KIB, "the core's page cache, in KiB");
        drop(core);
        let empty = dir.join("empty.db");
        std::fs::write(&empty, b"").unwrap();
        let e = Store::open_checked(&empty, false).err().expect("refused");
        assert!(e.to_string().contains("--init"), "{e}");
        assert!(Store::open_checked(&empty, true).is_ok());
        assert!(
            Store::open_checked(&empty, false).is_ok(),
            "initialised now"
        );
    }

    /// A new store in a temp dir of its own, and a notice (not stored).
    fn store_with_notice(name: &str) -> (Store, Notice) {
        let dir = std::env::temp_dir().join(format!("yingji-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let s = Store::open(&dir.join("y.db")).unwrap();
        let mut n = Notice::new(
            crate::notice::Plan::CoalSupply,
            "supply",
            crate::notice::Kind::Activate,
            "L2",
        );
        n.id = "coal_supply/shuozhou/supply/1".into();
        (s, n)
    }

    /// The outbox as an earlier version wrote it, sinks as plain strings (raw SQL): every
    /// row is read as the same sink, marked under the same string, and a sink this
    /// version does not know is left where it is, not a failure.
    #[test]
    fn deliveries_stored_as_strings_read_back_as_sinks() {
        let (mut s, n) = store_with_notice("sinks");
        s.conn()
            .execute_batch(&format!(
                "INSERT INTO notices (id, json) VALUES ('{}', '{}');
                 INSERT INTO deliveries (notice_id, sink, attempts) VALUES
                   ('{id}', 'mqtt:notice', 0), ('{id}', 'mqtt:cap', 1),
                   ('{id}', 'mqtt:bogus', 0), ('{id}', 'sms:13800000000', 0),
                   ('{id}', 'email:duty@x.org', 2), ('{id}', 'webhook:wecom-0', 3);",
                n.id,
                n.to_json_line(),
                id = n.id
            ))
            .unwrap();
        let sinks = |k| -> Vec<(Sink, u32)> {
            let p = s.pending(k).unwrap();
            p.into_iter().map(|p| (p.sink, p.attempts)).collect()
        };
        assert_eq!(sinks(SinkKind::Mqtt), [(Sink::Cap, 1), (Sink::Notice, 0)]);
        assert_eq!(
            sinks(SinkKind::Email),
            [(Sink::Email("duty@x.org".into()), 2)]
        );
        assert_eq!(
            sinks(SinkKind::Webhook),
            [(Sink::Webhook("wecom-0".into()), 3)]
        );
        let hook = Sink::Webhook("wecom-0".into());
        s.mark_failed(&n.id, &hook, "HTTP 500").unwrap();
        s.mark_all_delivered(&[(&n.id, Sink::Cap)], at()).unwrap();
        assert!(s.is_delivered(&n.id, &Sink::Cap).unwrap());
        assert!(!s.is_delivered(&n.id, &Sink::Notice).unwrap());
        let rows: Vec<(String, bool, u32)> = s
            .conn()
            .prepare(
                "SELECT sink, delivered_at IS NOT NULL, attempts FROM deliveries ORDER BY sink",
            )
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let want = [
            ("email:duty@x.org", false, 2),
            ("mqtt:bogus", false, 0),
            ("mqtt:cap", true, 1),
            ("mqtt:notice", false, 0),
            ("sms:13800000000", false, 0),
            ("webhook:wecom-0", false, 4),
        ];
        let want: Vec<_> = want
            .iter()
            .map(|(s, d, a)| (s.to_string(), *d, *a))
            .collect();
        assert_eq!(rows, want, "the same strings, only the marks changed");
    }

    /// What the outbox writes for each sink is the string an earlier version wrote.
    #[test]
    fn the_outbox_writes_each_sink_as_its_string() {
        let (mut s, n) = store_with_notice("outbox");
        let sinks = [
            Sink::Notice,
            Sink::Cap,
            Sink::Email("duty@x.org".into()),
            Sink::Webhook("wecom-0".into()),
        ];
        let tx = s.begin().unwrap();
        assert_eq!(tx.outbox(&n, &sinks).unwrap(), Outboxed::New);
        tx.mark_delivered(&n.id, &Sink::Notice, at()).unwrap();
        tx.commit().unwrap();
        let rows: Vec<(String, bool)> = s
            .conn()
            .prepare("SELECT sink, delivered_at IS NOT NULL FROM deliveries ORDER BY rowid")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let want = [
            ("mqtt:notice", true),
            ("mqtt:cap", false),
            ("email:duty@x.org", false),
            ("webhook:wecom-0", false),
        ];
        let want: Vec<_> = want.iter().map(|(s, d)| (s.to_string(), *d)).collect();
        assert_eq!(rows, want);
    }
}
