//! systemd integration (packaging/yingji.service, `Type=notify`): READY=1 once the
//! daemon is live (state recovered, earlier publications' echoes drained, undelivered
//! notices queued), WATCHDOG=1 from the core loop (a stuck core stops the pings and
//! systemd restarts the service), STOPPING=1 on shutdown. Without `NOTIFY_SOCKET`
//! (not under systemd) all of it does nothing.

use std::time::Duration;

use sd_notify::NotifyState;

/// Tells systemd the service is ready.
pub fn ready() {
    send(&[NotifyState::Ready, NotifyState::Status("live")]);
}

/// Tells systemd the service is stopping.
pub fn stopping() {
    send(&[NotifyState::Stopping]);
}

fn send(state: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(false, state) {
        tracing::warn!(error = %e, "could not notify systemd");
    }
}

/// Watchdog pings (`WatchdogSec=` sets `WATCHDOG_USEC`), at most every quarter of it.
pub struct Watchdog {
    every: Option<Duration>,
    last: Option<tokio::time::Instant>,
}

impl Watchdog {
    /// From the environment systemd gives the service: `WATCHDOG_USEC`, and
    /// `WATCHDOG_PID` when set must be ours (sd_watchdog_enabled(3); the crate's
    /// `watchdog_enabled` also wants `WATCHDOG_PID` present).
    pub fn from_env() -> Watchdog {
        let var = |k| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
        let for_us = var("WATCHDOG_PID").map_or(true, |p| p == u64::from(std::process::id()));
        let every = var("WATCHDOG_USEC")
            .filter(|_| for_us)
            .map(|usec| Duration::from_micros(usec) / 4)
            .filter(|d| !d.is_zero());
        if let Some(d) = every {
            tracing::info!(
                ping_every_ms = d.as_millis() as u64,
                "systemd watchdog enabled"
            );
        }
        Watchdog { every, last: None }
    }

    /// Called on every turn of the core loop: pings when due.
    pub fn ping(&mut self) {
        let Some(every) = self.every else {
            return;
        };
        let now = crate::clock::monotonic();
        if self.last.is_some_and(|l| now.duration_since(l) < every) {
            return;
        }
        self.last = Some(now);
        send(&[NotifyState::Watchdog]);
    }
}
