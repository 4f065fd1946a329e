//! Fixed-window rate limits by key (an address, a link, a login name). I/O-side only:
//! counts requests, decides nothing of the plans.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::clock;

/// At most `max` requests per key in each `window`.
pub struct Limiter {
    max: u32,
    window: Duration,
    seen: Mutex<HashMap<String, (Instant, u32)>>,
}

/// Keys kept at most; beyond, windows that ended are forgotten first.
const MAX_KEYS: usize = 10_000;

impl Limiter {
    pub fn new(max: u32, window: Duration) -> Limiter {
        Limiter {
            max,
            window,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one request of `key` at `now`; false when over the limit.
    pub fn allow_at(&self, key: &str, now: Instant) -> bool {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() >= MAX_KEYS && !seen.contains_key(key) {
            let w = self.window;
            seen.retain(|_, (start, _)| now.duration_since(*start) < w);
            if seen.len() >= MAX_KEYS {
                // Flooded with fresh keys: refuse new ones until windows end.
                return false;
            }
        }
        let e = seen.entry(key.to_string()).or_insert((now, 0));
        if now.duration_since(e.0) >= self.window {
            *e = (now, 0);
        }
        e.1 = e.1.saturating_add(1);
        e.1 <= self.max
    }

    pub fn allow(&self, key: &str) -> bool {
        self.allow_at(key, clock::monotonic())
    }
}

/// The limits of the HTTP side.
pub struct Limits {
    /// Any acknowledgement-link request, per client address.
    pub ack_per_address: Limiter,
    /// Acknowledgement POSTs per link (call and person).
    pub ack_per_link: Limiter,
    /// Console login attempts per address and per operator id.
    pub login_per_address: Limiter,
    pub login_per_operator: Limiter,
}

impl Default for Limits {
    fn default() -> Self {
        let minute = Duration::from_secs(60);
        Limits {
            ack_per_address: Limiter::new(60, minute),
            ack_per_link: Limiter::new(5, minute),
            login_per_address: Limiter::new(10, minute),
            login_per_operator: Limiter::new(5, minute),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_allows_max_then_refuses_until_it_ends() {
        let l = Limiter::new(3, Duration::from_secs(60));
        let t0 = clock::monotonic();
        for _ in 0..3 {
            assert!(l.allow_at("a", t0));
        }
        assert!(!l.allow_at("a", t0 + Duration::from_secs(59)));
        assert!(l.allow_at("b", t0), "keys are counted apart");
        assert!(l.allow_at("a", t0 + Duration::from_secs(60)), "next window");
    }

    #[test]
    fn a_flood_of_keys_is_bounded() {
        let l = Limiter::new(1, Duration::from_secs(60));
        let t0 = clock::monotonic();
        for i in 0..MAX_KEYS {
            assert!(l.allow_at(&i.to_string(), t0));
        }
        assert!(!l.allow_at("new", t0), "no room while every window runs");
        assert!(
            l.allow_at("new", t0 + Duration::from_secs(61)),
            "old ones forgotten"
        );
        assert!(l.seen.lock().unwrap().len() == 1);
    }
}
