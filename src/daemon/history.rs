//! The store's history, for after-action review and retention:
//!
//! - the config each start ran with (TOML, secrets redacted, `*_file` and `${ENV}`
//!   references kept) with its fingerprint (SHA-256 of that text);
//! - the journal written out as a scenario file (`yingji journal export`), which
//!   `yingji replay` with the stored config turns back into the stored notices;
//! - archives: journal rows past `[store] retain_days` written to a compressed scenario
//!   file in `[store] archive_dir` before they are deleted.

use std::io::Write;
use std::path::{Path, PathBuf};

use rusqlite::params;
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::daemon::store::{JournalRow, Store};
use crate::time::{fmt_ts, parse_ts, Ts};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS configs (
    id          INTEGER PRIMARY KEY,
    started_at  TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    fingerprint TEXT NOT NULL,
    toml        TEXT NOT NULL
);
";

/// What replaces a literal secret in a stored config.
pub const REDACTED: &str = "<redacted>";

/// The config as TOML, every literal secret replaced by [`REDACTED`]; `*_file` keys and
/// values that are `${ENV}` references are kept as they are.
pub fn redacted_toml(cfg: &Config) -> anyhow::Result<String> {
    let mut v = toml::Value::try_from(cfg)?;
    let secret = |t: &mut toml::Table, key: &str| {
        if let Some(toml::Value::String(s)) = t.get_mut(key) {
            if !is_env_reference(s) {
                *s = REDACTED.to_string();
            }
        }
    };
    let root = v.as_table_mut().expect("a config is a table");
    for (section, key) in [
        ("mqtt", "password"),
        ("email", "password"),
        ("http", "ack_secret"),
    ] {
        if let Some(toml::Value::Table(t)) = root.get_mut(section) {
            secret(t, key);
        }
    }
    // URLs may carry `user:password@` (mqtt, smtp) and key-like query values.
    for (section, key) in [("mqtt", "url"), ("email", "smtp_url")] {
        if let Some(toml::Value::Table(t)) = root.get_mut(section) {
            if let Some(toml::Value::String(url)) = t.get_mut(key) {
                *url = redact_url_query(&redact_userinfo(url));
            }
        }
    }
    if let Some(toml::Value::Array(hooks)) = root.get_mut("webhook") {
        for h in hooks.iter_mut().filter_map(toml::Value::as_table_mut) {
            secret(h, "key");
            if let Some(toml::Value::String(url)) = h.get_mut("url") {
                *url = redact_url_query(&redact_userinfo(url));
            }
        }
    }
    Ok(toml::to_string(&v)?)
}

/// Whether a value is nothing but `${VAR}` references (and text around them that is no
/// secret by itself, e.g. `Bearer ${TOKEN}`): kept in a stored config.
fn is_env_reference(s: &str) -> bool {
    s.contains("${")
}

/// A URL with the password of `user:password@` (a literal) replaced by `REDACTED` (a
/// plain word, so that the URL still parses).
fn redact_userinfo(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (auth, tail) = rest.split_at(end);
    match auth.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, pw)) if !is_env_reference(pw) => {
                format!("{scheme}://{user}:REDACTED@{host}{tail}")
            }
            _ => url.to_string(),
        },
        None => url.to_string(),
    }
}

/// A URL with the values of key-like query parameters (WeCom's `key=`, tokens,
/// signatures) redacted.
fn redact_url_query(url: &str) -> String {
    let Some((base, query)) = url.split_once('?') else {
        return url.to_string();
    };
    let parts: Vec<String> = query
        .split('&')
        .map(|p| match p.split_once('=') {
            Some((k, v)) if !is_env_reference(v) && is_secret_name(k) => {
                format!("{k}={REDACTED}")
            }
            _ => p.to_string(),
        })
        .collect();
    format!("{base}?{}", parts.join("&"))
}

fn is_secret_name(k: &str) -> bool {
    let k = k.to_ascii_lowercase();
    ["key", "token", "secret", "sign", "password"]
        .iter()
        .any(|s| k.contains(s))
}

/// SHA-256 of a stored config's text, as hex.
pub fn fingerprint(toml_text: &str) -> String {
    Sha256::digest(toml_text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A config a start of the daemon ran with.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredConfig {
    pub started_at: Ts,
    /// The last journal seq when it started (its inputs come after).
    pub seq: i64,
    pub fingerprint: String,
    pub toml: String,
}

/// Stores the config this start runs with; returns its fingerprint.
pub fn record_config(store: &Store, cfg: &Config, now: Ts) -> anyhow::Result<String> {
    let text = redacted_toml(cfg)?;
    let fp = fingerprint(&text);
    let conn = store.conn();
    conn.execute_batch(SCHEMA)?;
    conn.execute(
        "INSERT INTO configs (started_at, seq, fingerprint, toml) VALUES (?1, ?2, ?3, ?4)",
        params![fmt_ts(now), store.last_seq()?, fp, text],
    )?;
    Ok(fp)
}

/// Every stored config, oldest first.
pub fn stored_configs(store: &Store) -> anyhow::Result<Vec<StoredConfig>> {
    let conn = store.conn();
    conn.execute_batch(SCHEMA)?;
    let mut st =
        conn.prepare("SELECT started_at, seq, fingerprint, toml FROM configs ORDER BY id")?;
    let rows = st.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (at, seq, fingerprint, toml) = row?;
        out.push(StoredConfig {
            started_at: parse_ts(&at).map_err(anyhow::Error::msg)?,
            seq,
            fingerprint,
            toml,
        });
    }
    Ok(out)
}

/// The stored config of the last start (`None`: the daemon never ran on this store, or
/// ran before configs were stored).
pub fn latest_config(store: &Store) -> anyhow::Result<Option<StoredConfig>> {
    Ok(stored_configs(store)?.pop())
}

/// Which journal rows an export takes.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Rows handled at or after this time.
    pub from: Option<Ts>,
    /// Rows handled at or before this time.
    pub to: Option<Ts>,
    /// Rows of this region (the topic segment after the root).
    pub region: Option<String>,
}

impl Filter {
    /// Whether the export is the whole journal (replays to the stored notices).
    pub fn is_whole(&self) -> bool {
        self.from.is_none() && self.to.is_none() && self.region.is_none()
    }

    fn takes(&self, root: &str, r: &JournalRow) -> bool {
        self.from.map_or(true, |f| r.at >= f)
            && self.to.map_or(true, |t| r.at <= t)
            && self
                .region
                .as_deref()
                .map_or(true, |want| topic_region(root, &r.topic) == Some(want))
    }
}

/// The region segment of an input topic.
fn topic_region<'a>(root: &str, topic: &'a str) -> Option<&'a str> {
    topic
        .strip_prefix(root)?
        .strip_prefix('/')?
        .split('/')
        .next()
}

/// One scenario line for a journal row: the payload as a JSON string of its bytes (the
/// exact bytes the daemon handled).
pub fn scenario_line(r: &JournalRow) -> String {
    let payload = String::from_utf8_lossy(&r.payload);
    serde_json::json!({"at": fmt_ts(r.at), "topic": r.topic, "payload": payload}).to_string()
}

/// What an export wrote.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Exported {
    pub rows: usize,
    /// The `end` line's time (the virtual clock is advanced to it).
    pub end: Option<Ts>,
}

/// Writes the journal rows `filter` takes as a scenario file. A whole export ends at the
/// last stored notice (timers fired after the last input), a filtered one at `to` or
/// its last row.
pub fn export(
    store: &Store,
    root: &str,
    filter: &Filter,
    out: &mut dyn Write,
) -> anyhow::Result<Exported> {
    let mut x = Exported::default();
    writeln!(
        out,
        "// yingji journal export: {}",
        if filter.is_whole() {
            "the whole journal; replay it with the stored config (--config-out) to get the stored notices"
        } else {
            "part of the journal, replayed on a fresh engine (not the daemon's state at its start)"
        }
    )?;
    if let Some(first) = store.journal_after(0)?.first().filter(|r| r.seq > 1) {
        writeln!(
            out,
            "// the journal starts at seq {}: older rows are archived ([store] archive_dir)",
            first.seq
        )?;
    }
    let mut last = None;
    for r in store.journal_after(0)? {
        if !filter.takes(root, &r) {
            continue;
        }
        writeln!(out, "{}", scenario_line(&r))?;
        x.rows += 1;
        last = Some(r.at);
    }
    let end = match filter.to {
        Some(t) => Some(t),
        None if filter.is_whole() => store.notices()?.iter().map(|n| n.at).chain(last).max(),
        None => last,
    };
    if let Some(end) = end {
        writeln!(
            out,
            "{}",
            serde_json::json!({"at": fmt_ts(end), "end": true})
        )?;
    }
    x.end = end;
    Ok(x)
}

/// What retention did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Archived {
    /// The archive written (none when nothing was old enough).
    pub file: Option<PathBuf>,
    pub journal_rows: usize,
    pub notices: usize,
}

/// Archives and deletes the journal rows older than `cutoff` that the latest snapshot
/// includes (all but the newest row), and deletes the notices (with their deliveries)
/// made before `cutoff`. The archive, `journal-{first seq}-{last seq}.jsonl.gz` in `dir`,
/// is a scenario file (gzip), written and synced before the rows are deleted; the
/// deletions are one transaction, synced like a journal commit (a power loss after
/// them cannot bring back rows already archived).
pub fn archive(store: &Store, dir: &Path, cutoff: Ts) -> anyhow::Result<Archived> {
    let mut done = Archived::default();
    let Some((snapshot_seq, _)) = store.latest_snapshot()? else {
        return Ok(done);
    };
    // Never the newest row: a journal seq is SQLite's rowid (no AUTOINCREMENT), so an
    // emptied journal would number the next input 1 again, behind the snapshot's seq
    // (recovery would skip it) and the retained-input index's watermark.
    let newest = store.last_seq()?;
    let rows =
        crate::daemon::store::journal_before(store.conn(), snapshot_seq.min(newest - 1), cutoff)?;
    if let (Some(first), Some(last)) = (rows.first(), rows.last()) {
        std::fs::create_dir_all(dir)?;
        let name = format!("journal-{}-{}.jsonl.gz", first.seq, last.seq);
        let path = dir.join(&name);
        let tmp = dir.join(format!(".{name}.tmp"));
        {
            let f = std::fs::File::create(&tmp)?;
            let mut gz = flate2::write::GzEncoder::new(
                std::io::BufWriter::new(f),
                flate2::Compression::default(),
            );
            writeln!(
                gz,
                "// yingji journal archive: seq {} to {}, handled {} to {}",
                first.seq,
                last.seq,
                fmt_ts(first.at),
                fmt_ts(last.at)
            )?;
            for r in &rows {
                writeln!(gz, "{}", scenario_line(r))?;
            }
            let f = gz.finish()?.into_inner().map_err(|e| e.into_error())?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &path)?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        done.file = Some(path);
        done.journal_rows = rows.len();
    }
    let tx = store.begin_shared()?;
    if let (Some(first), Some(last)) = (rows.first(), rows.last()) {
        // The retained-input index is kept lazily from the journal: it must hold these
        // rows before they go.
        tx.index_seen(usize::MAX)?;
        tx.conn().execute(
            "DELETE FROM journal WHERE seq BETWEEN ?1 AND ?2",
            params![first.seq, last.seq],
        )?;
    }
    done.notices = delete_notices_before(tx.conn(), cutoff)?;
    tx.commit()?;
    Ok(done)
}

/// Deletes the notices made before `cutoff` and their deliveries; returns how many.
fn delete_notices_before(conn: &rusqlite::Connection, cutoff: Ts) -> anyhow::Result<usize> {
    let old: Vec<String> = {
        let mut st = conn.prepare("SELECT id, json FROM notices ORDER BY n")?;
        let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        let mut old = Vec::new();
        for row in rows {
            let (id, json) = row?;
            let at = serde_json::from_str::<serde_json::Value>(&json)
                .ok()
                .and_then(|v| v.get("at")?.as_str().and_then(|s| parse_ts(s).ok()));
            if at.is_some_and(|at| at < cutoff) {
                old.push(id);
            }
        }
        old
    };
    for id in &old {
        conn.execute("DELETE FROM deliveries WHERE notice_id = ?1", [id])?;
        conn.execute("DELETE FROM notices WHERE id = ?1", [id])?;
    }
    Ok(old.len())
}

/// The stored config that was in effect at `t` (the last start at or before it).
pub fn config_at(store: &Store, t: Option<Ts>) -> anyhow::Result<Option<StoredConfig>> {
    let all = stored_configs(store)?;
    Ok(match t {
        None => all.into_iter().last(),
        Some(t) => all.into_iter().rev().find(|c| c.started_at <= t),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_configs_redact_literal_secrets_and_keep_files_and_env_references() {
        let text = r#"
[mqtt]
url = "mqtt://ops:urlpw-literal@broker:1883"
password = "hunter2-literal"
[http]
ack_secret_file = "/etc/yingji/ack.key"
[email]
smtp_url = "smtp://mailer:${SMTP_URL_PW}@mail:25?tls=required"
from = "yingji@example.org"
password = "${SMTP_PASSWORD}"
[[webhook]]
kind = "wecom"
url = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=abc-literal&debug=1"
[[webhook]]
kind = "phone"
url = "https://gw.example.org/call"
key = "literal-phone-key"
"#;
        let cfg = Config::from_toml(text).unwrap().config;
        let stored = redacted_toml(&cfg).unwrap();
        for literal in [
            "hunter2-literal",
            "urlpw-literal",
            "abc-literal",
            "literal-phone-key",
        ] {
            assert!(!stored.contains(literal), "{literal} in\n{stored}");
        }
        assert!(stored.contains("${SMTP_PASSWORD}"), "{stored}");
        assert!(
            stored.contains("smtp://mailer:${SMTP_URL_PW}@mail:25?tls=required"),
            "{stored}"
        );
        assert!(
            stored.contains("mqtt://ops:REDACTED@broker:1883"),
            "{stored}"
        );
        assert!(stored.contains("/etc/yingji/ack.key"), "{stored}");
        assert!(stored.contains("debug=1"), "{stored}");
        // It loads again, to the same stored text (and fingerprint).
        let again = Config::from_toml(&stored).unwrap();
        assert!(again.unknown_keys.is_empty(), "{:?}", again.unknown_keys);
        assert_eq!(redacted_toml(&again.config).unwrap(), stored);
        assert_eq!(fingerprint(&stored).len(), 64);
    }

    #[test]
    fn the_shipped_config_round_trips_through_its_stored_form() {
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("config/yingji.toml"),
        )
        .unwrap();
        let cfg = Config::from_toml(&text).unwrap().config;
        let stored = redacted_toml(&cfg).unwrap();
        let again = Config::from_toml(&stored).unwrap_or_else(|e| panic!("{e:?}\n{stored}"));
        assert_eq!(redacted_toml(&again.config).unwrap(), stored);
    }
}
