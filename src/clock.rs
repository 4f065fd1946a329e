//! The wall clock. The ONLY module that reads it: the engine is driven by the times the
//! daemon passes in (`handle(at, ..)`, `advance_to(t)`), and replay never reads a clock.

use crate::time::{cst, Ts};

/// The current wall-clock time, in +08:00, whole milliseconds.
#[allow(clippy::disallowed_methods)]
pub fn now() -> Ts {
    let t = chrono::Utc::now().with_timezone(&cst());
    let ms = t.timestamp_millis();
    chrono::TimeZone::timestamp_millis_opt(&cst(), ms)
        .single()
        .unwrap_or(t)
}

/// How long from now until `t` (zero when `t` is past).
pub fn until(t: Ts) -> std::time::Duration {
    (t - now()).to_std().unwrap_or_default()
}

/// The monotonic clock, for I/O scheduling only (retry backoff, shutdown deadlines).
#[allow(clippy::disallowed_methods)]
pub fn monotonic() -> tokio::time::Instant {
    tokio::time::Instant::now()
}
