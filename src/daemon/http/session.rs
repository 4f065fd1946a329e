//! Console logins: operators from `[[operator]]` (argon2 password hashes made by
//! `yingji passwd`), sessions kept in memory and named by a signed, HttpOnly,
//! SameSite=Strict cookie, one CSRF token per session (and a pre-login one for the login
//! form). A restart logs everyone out. Nothing secret is logged or shown.

// Sessions by cookie id: a keyed lookup, never iterated into anything a person or a plan
// sees, so the order-free std map is fine here (clippy.toml bans it elsewhere).
#![allow(clippy::disallowed_types)]

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use axum::http::HeaderMap;
use tokio::time::Instant;

use crate::clock;
use crate::config::{Config, Operator};
use crate::daemon::ack::{random, sign, to_hex, verify};
use crate::secret::secret;

pub const COOKIE: &str = "yj_session";
pub const PRE_COOKIE: &str = "yj_login";

/// A logged-in operator.
#[derive(Clone)]
pub struct Session {
    pub operator: Operator,
    pub csrf: String,
    expires: Instant,
}

/// Operators with their password hashes, and the live sessions.
pub struct Sessions {
    operators: Vec<(Operator, String)>,
    key: [u8; 32],
    hours: f64,
    secure: bool,
    live: Mutex<HashMap<String, Session>>,
    /// A hash checked for unknown ids (same cost as a wrong password).
    dummy: String,
}

/// The argon2 PHC string of `password` (for `yingji passwd`).
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let salt =
        SaltString::encode_b64(&random::<16>()?).map_err(|e| anyhow::anyhow!("salt: {e}"))?;
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("argon2: {e}"))?
        .to_string())
}

/// Whether `password` matches the PHC string `phc` (false for an unreadable one).
pub fn password_matches(phc: &str, password: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(h) => Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok(),
        Err(_) => false,
    }
}

/// Equal strings, compared in constant time for equal lengths.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The value of cookie `name` in the request.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

impl Sessions {
    /// Loads the operators' hashes (`${ENV}` and files resolved).
    pub fn new(cfg: &Config) -> anyhow::Result<Sessions> {
        let mut operators = Vec::new();
        for o in &cfg.operators {
            let h = secret(o.password_hash.as_deref(), o.password_hash_file.as_deref())?
                .unwrap_or_default();
            anyhow::ensure!(
                PasswordHash::new(&h).is_ok(),
                "operator {:?}: password_hash is not an argon2 PHC string (make one with `yingji passwd`)",
                o.id
            );
            operators.push((o.clone(), h));
        }
        Ok(Sessions {
            operators,
            key: random::<32>()?,
            hours: cfg.http.session_hours,
            secure: cfg.http.public_url.starts_with("https://"),
            live: Mutex::new(HashMap::new()),
            dummy: if cfg.operators.is_empty() {
                String::new()
            } else {
                hash_password(&to_hex(&random::<16>()?))?
            },
        })
    }

    /// Without operators the console is read-only.
    pub fn enabled(&self) -> bool {
        !self.operators.is_empty()
    }

    /// Checks a login (argon2: call off the async threads). A wrong id costs the same
    /// work as a wrong password.
    pub fn check(&self, id: &str, password: &str) -> Option<Operator> {
        match self.operators.iter().find(|(o, _)| o.id == id) {
            Some((o, h)) => password_matches(h, password).then(|| o.clone()),
            None => {
                let _ = password_matches(&self.dummy, password);
                None
            }
        }
    }

    /// Starts a session; returns the Set-Cookie value.
    pub fn start(&self, operator: Operator) -> anyhow::Result<String> {
        let token = to_hex(&random::<24>()?);
        let csrf = to_hex(&random::<24>()?);
        let secs = (self.hours * 3600.0) as u64;
        let s = Session {
            operator,
            csrf,
            expires: clock::monotonic() + Duration::from_secs(secs),
        };
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        let now = clock::monotonic();
        live.retain(|_, s| s.expires > now);
        live.insert(token.clone(), s);
        let sig = sign(&self.key, &["session", &token]);
        Ok(self.set_cookie(COOKIE, &format!("{token}.{sig}"), secs))
    }

    fn set_cookie(&self, name: &str, value: &str, max_age: u64) -> String {
        let secure = if self.secure { "; Secure" } else { "" };
        format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}")
    }

    /// The session the request's cookie names, if signed by us and not expired.
    pub fn current(&self, headers: &HeaderMap) -> Option<Session> {
        let c = cookie(headers, COOKIE)?;
        let (token, sig) = c.split_once('.')?;
        if !verify(&self.key, &["session", token], sig) {
            return None;
        }
        let live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        live.get(token)
            .filter(|s| s.expires > clock::monotonic())
            .cloned()
    }

    /// Ends the request's session; returns the cookie that clears it.
    pub fn end(&self, headers: &HeaderMap) -> String {
        if let Some((token, _)) = cookie(headers, COOKIE)
            .as_deref()
            .and_then(|c| c.split_once('.'))
        {
            self.live
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(token);
        }
        self.set_cookie(COOKIE, "", 0)
    }

    /// A token for the login form and the cookie carrying it (double submit).
    pub fn login_token(&self) -> anyhow::Result<(String, String)> {
        let t = to_hex(&random::<16>()?);
        let sig = sign(&self.key, &["login", &t]);
        Ok((
            t.clone(),
            self.set_cookie(PRE_COOKIE, &format!("{t}.{sig}"), 3600),
        ))
    }

    /// Whether the login form's token matches its signed cookie.
    pub fn login_token_ok(&self, headers: &HeaderMap, form_token: &str) -> bool {
        let Some(c) = cookie(headers, PRE_COOKIE) else {
            return false;
        };
        let Some((t, sig)) = c.split_once('.') else {
            return false;
        };
        verify(&self.key, &["login", t], sig) && same(t, form_token)
    }

    /// Whether a form's CSRF token is the session's.
    pub fn csrf_ok(s: &Session, token: &str) -> bool {
        same(&s.csrf, token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_and_verify_and_sessions_need_our_signature() {
        let h = hash_password("长城 secret").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(password_matches(&h, "长城 secret"));
        assert!(!password_matches(&h, "wrong"));
        assert!(!password_matches("not a hash", "x"));
        let toml = format!(
            "[[operator]]\nid = \"zb\"\nname = \"值班员甲\"\nroles = [\"duty\"]\npassword_hash = '{h}'\n"
        );
        let cfg = Config::from_toml(&toml).unwrap().config;
        let s = Sessions::new(&cfg).unwrap();
        assert!(s.enabled());
        assert!(s.check("zb", "wrong").is_none());
        assert!(s.check("nobody", "长城 secret").is_none());
        let op = s.check("zb", "长城 secret").unwrap();
        let set = s.start(op).unwrap();
        assert!(
            set.contains("HttpOnly") && set.contains("SameSite=Strict"),
            "{set}"
        );
        let value = set.split(';').next().unwrap().to_string();
        let mut h = HeaderMap::new();
        h.insert(axum::http::header::COOKIE, value.parse().unwrap());
        let sess = s.current(&h).expect("logged in");
        assert_eq!(sess.operator.id, "zb");
        assert!(Sessions::csrf_ok(&sess, &sess.csrf));
        assert!(!Sessions::csrf_ok(&sess, ""));
        // A token with another signature is nobody.
        let forged = format!("{}.{}", value.split('.').next().unwrap(), "00".repeat(32));
        let mut f = HeaderMap::new();
        f.insert(axum::http::header::COOKIE, forged.parse().unwrap());
        assert!(s.current(&f).is_none());
        s.end(&h);
        assert!(s.current(&h).is_none(), "logged out");
        assert!(
            !format!("{:?}", sess.operator).contains("argon2"),
            "no hash in Debug"
        );
    }
}
