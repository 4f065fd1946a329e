//! What an echo proves. The input session subscribes to our own notice and CAP topics,
//! so the broker routes every notice we published back to us; on a restart these echoes
//! mark deliveries whose PUBACK we never recorded. An echo is trusted only when
//!
//! 1. its payload is byte-identical to what this daemon renders for that notice id and
//!    sink (a forged `{"id": ...}` or another daemon's different notice proves nothing), and
//! 2. this instance's proof for it was seen: before each notice, the output connection
//!    publishes on `{root}/_yingji/proof/{client id}` the hex HMAC-SHA256, under a key
//!    kept in this store only (`meta.echo_key`), of `sink \0 id \0 payload`. The proof
//!    travels in its own message (no MQTT 5 user property), so it works the same over
//!    MQTT 3.1.1 and 5, and notice payloads stay exactly as CONTRACT.md shows them.
//!
//! A proof alone is not a delivery: only an echo matching it is. Both go out on one
//! connection, the proof first, and the broker keeps their order to one subscriber; if
//! it did not, the echo is not trusted and the notice is sent again (a duplicate a
//! consumer drops by id, never a loss).

use std::collections::BTreeMap;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::Config;
use crate::daemon::sink::MqttSink;
use crate::daemon::store::Store;
use crate::notice::Notice;
use crate::time::Ts;

/// How long a proof's message stays unacknowledged waiting for the echo it proves. The
/// echo follows its proof within milliseconds; a proof whose echo never comes (its notice
/// already delivered when the output connection re-sent it, an echo that does not match)
/// must not hold back the input connection's acknowledgements, which go in arrival order.
pub const PROOF_HOLD: chrono::Duration = chrono::Duration::seconds(10);
/// Proofs waiting for their echo at most (all are let go when over).
pub const MAX_PROOFS: usize = 100_000;

/// Proofs seen and not yet used, each with the acknowledgements of the messages that
/// carried it (`T`: the input connection's ack token).
///
/// A proof's message is acknowledged only once the echo it proves was handled (its
/// delivery mark committed), or after [`PROOF_HOLD`]. Acknowledged at once, a SIGKILL
/// between the proof and its echo lost the proof (the broker does not send an acked
/// message again) while the echo came back after the restart: without its proof it
/// confirmed nothing, and the notice was published a second time.
#[derive(Debug)]
pub struct Proofs<T> {
    held: BTreeMap<String, Held<T>>,
}

#[derive(Debug)]
struct Held<T> {
    since: Ts,
    tokens: Vec<T>,
}

impl<T> Default for Proofs<T> {
    fn default() -> Self {
        Proofs {
            held: BTreeMap::new(),
        }
    }
}

impl<T> Proofs<T> {
    /// A proof arrived at `now` (the same proof again: the notice was sent again). Returns
    /// the tokens to acknowledge now: all of them when too many proofs wait.
    pub fn see(&mut self, proof: String, token: T, now: Ts) -> Vec<T> {
        let mut due = Vec::new();
        if self.held.len() >= MAX_PROOFS && !self.held.contains_key(&proof) {
            tracing::warn!("many proofs without their echo: all let go");
            due = self.release_all();
        }
        let h = self.held.entry(proof).or_insert_with(|| Held {
            since: now,
            tokens: Vec::new(),
        });
        h.tokens.push(token);
        due
    }

    /// Uses a proof for its echo: the tokens of the messages that carried it (to
    /// acknowledge once the echo's delivery mark committed), `None` when it was not seen.
    pub fn take(&mut self, proof: &str) -> Option<Vec<T>> {
        self.held.remove(proof).map(|h| h.tokens)
    }

    /// The tokens of proofs held since [`PROOF_HOLD`] before `now` (or after `now`: the
    /// clock went back), which stop waiting for their echo.
    pub fn expire(&mut self, now: Ts) -> Vec<T> {
        let old = |h: &Held<T>| now - h.since >= PROOF_HOLD || h.since > now;
        if !self.held.values().any(old) {
            return Vec::new();
        }
        let (gone, kept) = std::mem::take(&mut self.held)
            .into_iter()
            .partition(|(_, h)| old(h));
        self.held = kept;
        let gone: BTreeMap<String, Held<T>> = gone;
        tracing::debug!(proofs = gone.len(), "proofs without their echo let go");
        gone.into_values().flat_map(|h| h.tokens).collect()
    }

    fn release_all(&mut self) -> Vec<T> {
        std::mem::take(&mut self.held)
            .into_values()
            .flat_map(|h| h.tokens)
            .collect()
    }

    pub fn len(&self) -> usize {
        self.held.len()
    }

    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }
}

/// The bytes the output connection published for each notice and MQTT sink whose echo
/// has not come back yet, so that the core checks an echo against what this daemon
/// rendered without rendering it again (a CAP alert reads its track's history from the
/// store). An echo whose entry is missing (after a restart, or the map was full) is
/// checked by rendering, as before; either way it must be byte-identical.
#[derive(Debug, Default)]
pub struct Rendered {
    map: std::sync::Mutex<BTreeMap<(String, MqttSink), Vec<u8>>>,
}

/// Entries kept at most: echoes that never come must not grow it without bound, and a
/// CAP alert is a few KiB, so the cap keeps it to a few MiB. Past it the map starts over;
/// an echo without an entry is rendered again from the store (the same check, slower).
const MAX_RENDERED: usize = 1_024;

impl Rendered {
    /// The output connection rendered `payload` for notice `id` to `sink`.
    pub fn put(&self, id: &str, sink: MqttSink, payload: &[u8]) {
        let mut m = self.map.lock().expect("rendered lock");
        if m.len() >= MAX_RENDERED {
            m.clear();
        }
        m.insert((id.to_string(), sink), payload.to_vec());
    }

    /// Takes what was rendered for notice `id` to `sink`, when known.
    pub fn take(&self, id: &str, sink: MqttSink) -> Option<Vec<u8>> {
        self.map
            .lock()
            .expect("rendered lock")
            .remove(&(id.to_string(), sink))
    }
}

/// Store `meta` key of this instance's echo key.
const META_KEY: &str = "echo_key";

/// This instance's echo key (generated at first start, kept in the store).
pub fn load_key(store: &mut Store) -> anyhow::Result<Vec<u8>> {
    Ok(store
        .meta_or_insert(META_KEY, crate::daemon::ack::random_hex)?
        .into_bytes())
}

/// The proof topic of a client id.
pub fn proof_topic(cfg: &Config, client_id: &str) -> String {
    format!("{}/_yingji/proof/{client_id}", cfg.topic_root)
}

/// The bytes published for a notice to an MQTT sink. A CAP message references every
/// earlier CAP message of its track's warning, read from the store.
pub fn payload(cfg: &Config, store: &Store, n: &Notice, sink: MqttSink) -> Vec<u8> {
    match sink {
        MqttSink::Cap => {
            let history = store.cap_history(n).unwrap_or_else(|e| {
                tracing::error!(error = %e, "could not read the track's notices for CAP references");
                Vec::new()
            });
            crate::daemon::cap::xml(cfg, n, &history).into_bytes()
        }
        MqttSink::Notice => n.to_json_line().into_bytes(),
    }
}

/// Hex HMAC-SHA256 of `sink \0 id \0 payload` under `key`, the sink in its stored form
/// (`mqtt:notice`, `mqtt:cap`).
pub fn proof(key: &[u8], sink: MqttSink, id: &str, payload: &[u8]) -> String {
    let mut m = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    m.update(sink.as_str().as_bytes());
    m.update(&[0]);
    m.update(id.as_bytes());
    m.update(&[0]);
    m.update(payload);
    crate::daemon::ack::to_hex(&m.finalize().into_bytes())
}

/// The notice id of an echoed notice (JSON) or CAP alert (XML).
pub fn echo_id(sink: MqttSink, payload: &[u8]) -> Option<String> {
    match sink {
        MqttSink::Cap => {
            let x = std::str::from_utf8(payload).ok()?;
            let start = x.find("<identifier>")? + "<identifier>".len();
            let end = start + x[start..].find("</identifier>")?;
            Some(
                x[start..end]
                    .replace("&lt;", "<")
                    .replace("&gt;", ">")
                    .replace("&quot;", "\"")
                    .replace("&apos;", "'")
                    .replace("&amp;", "&"),
            )
        }
        MqttSink::Notice => {
            let v: serde_json::Value = serde_json::from_slice(payload).ok()?;
            v.get("id")?.as_str().map(str::to_string)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proof_depends_on_key_sink_id_and_payload() {
        let p = proof(b"k1", MqttSink::Notice, "a/b/c/1", b"{}");
        assert_eq!(p.len(), 64);
        assert_ne!(p, proof(b"k2", MqttSink::Notice, "a/b/c/1", b"{}"));
        assert_ne!(p, proof(b"k1", MqttSink::Cap, "a/b/c/1", b"{}"));
        assert_ne!(p, proof(b"k1", MqttSink::Notice, "a/b/c/2", b"{}"));
        assert_ne!(p, proof(b"k1", MqttSink::Notice, "a/b/c/1", b"{ }"));
    }

    /// The proof is signed over the sink's stored string, as before sinks were a type: a
    /// proof published by an earlier version still confirms its echo. (Expected values:
    /// HMAC-SHA256 of `mqtt:notice\0a/b/c/1\0{}` and `mqtt:cap\0…` under `k1`, computed
    /// outside Rust with Python's `hmac`.)
    #[test]
    fn proofs_are_signed_over_the_stored_sink_string() {
        assert_eq!(
            proof(b"k1", MqttSink::Notice, "a/b/c/1", b"{}"),
            "469cf52291acb3629604701c79cee5a2742d162b542fcd5f58fc0474b3ec82f8"
        );
        assert_eq!(
            proof(b"k1", MqttSink::Cap, "a/b/c/1", b"{}"),
            "b117b7c8d7b5ae53e5bdb43be0d32c23a338c19d9b0f23fceff68fceec8a2929"
        );
    }

    #[test]
    fn echo_ids_of_notices_and_cap_alerts() {
        assert_eq!(
            echo_id(
                MqttSink::Notice,
                br#"{"id": "coal_supply/shuozhou/supply/3"}"#
            )
            .as_deref(),
            Some("coal_supply/shuozhou/supply/3")
        );
        assert_eq!(
            echo_id(
                MqttSink::Cap,
                b"<alert><identifier>a/b&amp;c</identifier></alert>"
            )
            .as_deref(),
            Some("a/b&c")
        );
        assert_eq!(echo_id(MqttSink::Notice, b"junk"), None);
    }
}
