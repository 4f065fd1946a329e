//! The three plans, one module each, readable beside the plan texts.
//!
//! Each plan is a struct with `new(cfg, region)`, `on_input(cx, input)` and
//! `on_timer(cx, timer)`. It holds no I/O and reads no clock: time is `cx.now`.

use serde::{Deserialize, Serialize};

use crate::notice::Kind;

pub mod authority;
pub mod coal_supply;
pub mod cx;
pub mod feed;
pub mod feedback;
pub mod heavy_pollution;
pub mod proposal;
pub mod severe_weather;

/// Whether a move goes the way CONTRACT.md "Notices" says moves go: activation from
/// none, escalation up, downgrade down but not to none, termination to none (levels
/// ordered, none the least). Each plan states it with `debug_assert!` where it moves;
/// tests/simulation.rs checks the same from the notices.
pub(crate) fn goes_the_right_way<L: Ord + Default>(kind: Kind, from: &L, to: &L) -> bool {
    let none = L::default();
    match kind {
        Kind::Activate => *from == none && *to > none,
        Kind::Escalate => *from > none && to > from,
        Kind::Downgrade => *to > none && to < from,
        Kind::Terminate => *from > none && *to == none,
        _ => false,
    }
}

/// A timer of one plan (the engine adds the region).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum PlanTimer {
    Coal(coal_supply::Timer),
    Pollution(heavy_pollution::Timer),
    Weather(severe_weather::Timer),
}

impl PlanTimer {
    /// Why the timer is armed, for logs and `next_deadline`.
    pub fn describe(&self) -> String {
        match self {
            PlanTimer::Coal(t) => format!("coal_supply: {}", t.describe()),
            PlanTimer::Pollution(t) => format!("heavy_pollution: {}", t.describe()),
            PlanTimer::Weather(t) => format!("severe_weather: {}", t.describe()),
        }
    }
}

impl From<coal_supply::Timer> for PlanTimer {
    fn from(t: coal_supply::Timer) -> Self {
        PlanTimer::Coal(t)
    }
}
impl From<heavy_pollution::Timer> for PlanTimer {
    fn from(t: heavy_pollution::Timer) -> Self {
        PlanTimer::Pollution(t)
    }
}
impl From<severe_weather::Timer> for PlanTimer {
    fn from(t: severe_weather::Timer) -> Self {
        PlanTimer::Weather(t)
    }
}
