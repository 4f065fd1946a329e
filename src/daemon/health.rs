//! Health of the sinks and the faults an operator must see, in one registry that the HTTP
//! layer reads (`/healthz`, `/metrics`) and that reports changes on the ops topic
//! `{root}/_yingji/ops` (never under a region's input topics; the daemon never takes
//! `_`-prefixed segments as input, so it cannot loop).
//!
//! - A sink (`email`, one for every address, or `webhook:{name}`: the retry driver's
//!   `Transport::health_name`) that failed
//!   [`DEGRADED_AFTER`] times in a row is degraded until it succeeds again.
//! - Faults are counted: outbox id conflicts, snapshots that would not restore, echoes not
//!   trusted, retained replays ignored.
//!
//! Plain functions over a process-wide registry, so that any HTTP server can read it.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde_json::{json, Value};
use tokio::sync::mpsc::UnboundedSender;

/// Consecutive failures after which a sink counts as degraded.
pub const DEGRADED_AFTER: u32 = 3;

#[derive(Debug, Clone, Default)]
struct SinkState {
    failures_in_row: u32,
    failures_total: u64,
    last_error: Option<String>,
}

#[derive(Default)]
struct Registry {
    sinks: BTreeMap<String, SinkState>,
    faults: BTreeMap<&'static str, u64>,
    ops: Option<UnboundedSender<Value>>,
}

static REG: Mutex<Option<Registry>> = Mutex::new(None);

fn with<R>(f: impl FnOnce(&mut Registry) -> R) -> R {
    let mut g = REG.lock().unwrap_or_else(|e| e.into_inner());
    f(g.get_or_insert_with(Registry::default))
}

/// Where ops events go (the publisher puts them on `{root}/_yingji/ops`).
pub fn set_ops_channel(tx: UnboundedSender<Value>) {
    with(|r| r.ops = Some(tx));
}

fn emit(r: &Registry, event: Value) {
    if let Some(tx) = &r.ops {
        let _ = tx.send(event);
    }
}

/// A sink attempt succeeded.
pub fn sink_ok(sink: &str) {
    with(|r| {
        let s = r.sinks.entry(sink.to_string()).or_default();
        let was = s.failures_in_row >= DEGRADED_AFTER;
        s.failures_in_row = 0;
        if was {
            tracing::info!(%sink, "sink recovered");
            emit(r, json!({"event": "sink_recovered", "sink": sink}));
        }
    });
}

/// A sink attempt failed (timed out, refused, ...).
pub fn sink_failed(sink: &str, error: &str) {
    with(|r| {
        let s = r.sinks.entry(sink.to_string()).or_default();
        s.failures_in_row += 1;
        s.failures_total += 1;
        s.last_error = Some(error.to_string());
        if s.failures_in_row == DEGRADED_AFTER {
            tracing::error!(%sink, %error, failures = DEGRADED_AFTER, "sink degraded: failing repeatedly");
            let e = json!({"event": "sink_degraded", "sink": sink, "error": error, "failures_in_row": DEGRADED_AFTER});
            emit(r, e);
        }
    });
}

/// A fault the operator must see: counted, and published on the ops topic.
pub fn fault(kind: &'static str, detail: Value) {
    with(|r| {
        *r.faults.entry(kind).or_default() += 1;
        let mut e = json!({"event": kind});
        if let (Value::Object(m), Value::Object(d)) = (&mut e, detail) {
            m.extend(d);
        }
        emit(r, e);
    });
}

/// A counted occurrence that is not a fault (e.g. a retained replay ignored).
pub fn count(kind: &'static str) {
    with(|r| *r.faults.entry(kind).or_default() += 1);
}

/// How often `kind` happened.
pub fn counted(kind: &'static str) -> u64 {
    with(|r| r.faults.get(kind).copied().unwrap_or(0))
}

/// Kinds of [`fault`] that make the daemon degraded once they happened (`input_panicked`:
/// a bug in handling; the input was refused, see `daemon::core`).
const DEGRADING: &[&str] = &["outbox_conflict", "snapshot_unrestorable", "input_panicked"];

/// Degraded sinks and faults; empty when all is well.
pub fn problems() -> Vec<String> {
    with(|r| {
        let mut out: Vec<String> = r
            .sinks
            .iter()
            .filter(|(_, s)| s.failures_in_row >= DEGRADED_AFTER)
            .map(|(k, s)| {
                format!(
                    "sink {k} failing: {}",
                    s.last_error.as_deref().unwrap_or("")
                )
            })
            .collect();
        for k in DEGRADING {
            if let Some(n) = r.faults.get(k) {
                out.push(format!("{k}: {n}"));
            }
        }
        out
    })
}

/// The sinks' state for `/healthz`.
pub fn sinks_json() -> Value {
    with(|r| {
        let m: serde_json::Map<String, Value> = r
            .sinks
            .iter()
            .map(|(k, s)| {
                let st = if s.failures_in_row >= DEGRADED_AFTER {
                    "degraded"
                } else {
                    "ok"
                };
                (
                    k.clone(),
                    json!({"status": st, "failures_in_row": s.failures_in_row, "last_error": s.last_error}),
                )
            })
            .collect();
        Value::Object(m)
    })
}

/// A sink's name, whether it is degraded, its failed attempts in total.
pub type SinkLine = (String, bool, u64);

/// Every sink as (name, degraded, failed attempts in total) and every counted kind with
/// its count, for `/metrics` (daemon/metrics.rs renders them).
pub fn state() -> (Vec<SinkLine>, Vec<(&'static str, u64)>) {
    with(|r| {
        let sinks = r
            .sinks
            .iter()
            .map(|(k, s)| {
                (
                    k.clone(),
                    s.failures_in_row >= DEGRADED_AFTER,
                    s.failures_total,
                )
            })
            .collect();
        let faults = r.faults.iter().map(|(k, n)| (*k, *n)).collect();
        (sinks, faults)
    })
}
