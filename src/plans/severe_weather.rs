//! Severe-weather call-and-respond — 朔政办函〔2023〕65号, PLANS.md §3.
//!
//! (Stub: the plan's rules land with their issue.)

use serde::{Deserialize, Serialize};

use crate::config::{Config, RegionConfig};
use crate::engine::Cx;
use crate::input::Input;

/// Timers of this plan.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Timer {
    /// Placeholder until the plan's timers land.
    Placeholder,
}

impl Timer {
    pub fn describe(&self) -> String {
        format!("{self:?}")
    }
}

/// State of the plan in one region.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SevereWeather {}

impl SevereWeather {
    pub fn new(_cfg: &Config, _region: &RegionConfig) -> Self {
        Self::default()
    }

    /// Handles one message of this plan; `Err(reason)` refuses it (and changes nothing).
    pub fn on_input(&mut self, _cx: &mut Cx, _input: &Input) -> Result<(), String> {
        Ok(())
    }

    pub fn on_timer(&mut self, _cx: &mut Cx, _timer: Timer) {}
}
