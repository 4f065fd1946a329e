//! Acknowledgement links: `{public_url}/ack?call_id=...&person=...&t=...&sig=...`, where
//! `t` is the call's time (Unix seconds) and `sig` the hex HMAC-SHA256 of
//! `call_id|person|t` under the link key (`[http] ack_secret` / `ack_secret_file`, else
//! one generated at first start and kept in the store). `GET` shows a page naming the call
//! and the person with a button; its `POST` becomes an ordinary
//! `{"cmd": "ack", ..., "by": "link"}` input of the region's `cmd` topic, handled (and
//! journaled) by the core like any MQTT input (http/ack_page.rs). A link expires with its
//! round, and `[http] ack_link_hours` after the call at the latest.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::Config;
use crate::daemon::store::Store;
use crate::notice::{Kind, Notice};
use crate::secret::secret;

type HmacSha256 = Hmac<Sha256>;

/// The key that signs acknowledgement links and verifies their clicks. The daemon loads
/// it once at start and passes it to whoever signs (email, webhooks) or verifies (the HTTP
/// server); a tool or a test makes its own, so several keys can live in one process.
#[derive(Clone)]
pub struct AckKey(Vec<u8>);

impl std::fmt::Debug for AckKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AckKey(***)")
    }
}

impl AckKey {
    pub fn new(key: impl Into<Vec<u8>>) -> AckKey {
        AckKey(key.into())
    }

    /// The configured key, or the one kept in the store (generated at first start).
    pub fn load(cfg: &Config, store: &mut Store) -> anyhow::Result<AckKey> {
        let h = &cfg.http;
        if let Some(s) = secret(h.ack_secret.as_deref(), h.ack_secret_file.as_deref())? {
            anyhow::ensure!(s.len() >= 16, "http.ack_secret: use at least 16 characters");
            return Ok(AckKey(s.into_bytes()));
        }
        let hex = store.meta_or_insert(META_KEY, random_hex)?;
        Ok(AckKey(hex.into_bytes()))
    }

    /// Hex HMAC-SHA256 of `parts` joined by `|` (a link signs `call_id|person|t`).
    pub fn sign(&self, parts: &[&str]) -> String {
        sign(&self.0, parts)
    }

    /// Whether `sig` (hex) signs `parts` under this key; compared in constant time.
    pub fn verify(&self, parts: &[&str], sig: &str) -> bool {
        verify(&self.0, parts, sig)
    }

    /// The acknowledgement link of a call notice (`call` or `call_unreached`); a second
    /// region onwards adds `&region=`.
    pub fn url(&self, cfg: &Config, n: &Notice) -> Option<String> {
        if !matches!(n.kind, Kind::Call | Kind::CallUnreached) {
            return None;
        }
        let (call_id, person) = (n.call_id.as_deref()?, n.person.as_deref()?);
        let t = n.at.timestamp().to_string();
        let mut u = format!(
            "{}/ack?call_id={}&person={}&t={t}&sig={}",
            cfg.http.public_url.trim_end_matches('/'),
            pct(call_id),
            pct(person),
            self.sign(&[call_id, person, &t])
        );
        if cfg.regions.first().map(|r| r.id.as_str()) != Some(n.region.as_str()) {
            u += &format!("&region={}", pct(&n.region));
        }
        Some(u)
    }
}

/// Store `meta` key of the generated link key.
const META_KEY: &str = "ack_secret";

/// 32 random bytes (`/dev/urandom`) in hex: a key kept in the store's `meta`.
pub fn random_hex() -> anyhow::Result<String> {
    Ok(to_hex(&random::<32>()?))
}

/// `N` random bytes from the kernel (keys, session tokens, salts).
pub fn random<const N: usize>() -> std::io::Result<[u8; N]> {
    let mut b = [0u8; N];
    use std::io::Read;
    std::fs::File::open("/dev/urandom")?.read_exact(&mut b)?;
    Ok(b)
}

fn mac(key: &[u8], parts: &[&str]) -> HmacSha256 {
    let mut m = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            m.update(b"|");
        }
        m.update(p.as_bytes());
    }
    m
}

/// Hex HMAC-SHA256 of `parts` joined by `|` (a link signs `call_id|person|t`).
pub fn sign(key: &[u8], parts: &[&str]) -> String {
    to_hex(&mac(key, parts).finalize().into_bytes())
}

/// Whether `sig` (hex) signs `parts`; compared in constant time.
pub fn verify(key: &[u8], parts: &[&str], sig: &str) -> bool {
    match from_hex(sig) {
        Some(b) => mac(key, parts).verify_slice(&b).is_ok(),
        None => false,
    }
}

/// The `cmd` input a valid click becomes: (topic, payload).
pub fn command(cfg: &Config, region: &str, call_id: &str, person: &str) -> (String, Vec<u8>) {
    let topic = format!("{}/{region}/cmd", cfg.topic_root);
    let payload =
        serde_json::json!({"cmd": "ack", "call_id": call_id, "person": person, "by": "link"});
    (topic, payload.to_string().into_bytes())
}

/// Percent-encoding of a query value (RFC 3986 unreserved characters kept).
pub fn pct(s: &str) -> String {
    let mut o = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            o.push(b as char);
        } else {
            o += &format!("%{b:02X}");
        }
    }
    o
}

/// Decodes a query value (`+` is a space); `None` when malformed or not UTF-8.
pub fn unpct(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let h = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(h, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// The decoded parameters of a query string, in order.
pub fn query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .filter_map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            Some((unpct(k)?, unpct(v)?))
        })
        .collect()
}

pub fn to_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn from_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notice::Plan;

    #[test]
    fn sign_verify_and_forgeries() {
        let k = b"0123456789abcdef-key";
        let s = sign(k, &["w1/1", "yjj", "100"]);
        assert_eq!(s.len(), 64);
        assert!(verify(k, &["w1/1", "yjj", "100"], &s));
        assert!(!verify(k, &["w1/1", "other", "100"], &s));
        assert!(!verify(k, &["w1/2", "yjj", "100"], &s));
        assert!(!verify(k, &["w1/1", "yjj", "101"], &s), "a later expiry");
        assert!(!verify(b"another key of 16+", &["w1/1", "yjj", "100"], &s));
        assert!(!verify(k, &["w1/1", "yjj", "100"], &s[..62]));
        assert!(!verify(k, &["w1/1", "yjj", "100"], "zz"));
        // What is signed is exactly `call_id|person|t`.
        let mut m = HmacSha256::new_from_slice(k).unwrap();
        m.update(b"w1/1|yjj|100");
        assert_eq!(s, to_hex(&m.finalize().into_bytes()));
    }

    #[test]
    fn link_of_a_call_round_trips_through_the_query() {
        let cfg = Config::from_toml("[http]\npublic_url = \"https://yj.example.org/\"")
            .unwrap()
            .config;
        let mut n = Notice::new(Plan::SevereWeather, "rainstorm", Kind::Call, "red");
        n.region = "shuozhou".into();
        n.call_id = Some("雨/1 &x".into());
        n.person = Some("yjj".into());
        let k = b"0123456789abcdef";
        let key = AckKey::new(k.to_vec());
        let u = key.url(&cfg, &n).unwrap();
        assert!(u.starts_with("https://yj.example.org/ack?call_id="), "{u}");
        assert!(!u.contains("region="), "first region: no region parameter");
        let q = query(u.split_once('?').unwrap().1);
        assert_eq!(q[0], ("call_id".into(), "雨/1 &x".into()));
        assert_eq!(q[2].0, "t");
        assert_eq!(q[2].1, n.at.timestamp().to_string());
        assert!(verify(k, &[&q[0].1, &q[1].1, &q[2].1], &q[3].1));
        n.kind = Kind::CallAck;
        assert!(key.url(&cfg, &n).is_none());
        // Another key in the same process signs another link.
        n.kind = Kind::Call;
        let other = AckKey::new(b"fedcba9876543210".to_vec())
            .url(&cfg, &n)
            .unwrap();
        assert_ne!(other, u);
        assert!(!key.verify(
            &[&q[0].1, &q[1].1, &q[2].1],
            other.rsplit_once("sig=").unwrap().1
        ));
    }
}
