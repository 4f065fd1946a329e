//! Severe-weather call-and-respond — 重大灾害性天气"叫应服务"工作机制
//! (朔政办函〔2023〕65号), PLANS.md §3, and the suggestions from raw readings of §4.
//!
//! - `tracks`: one track per hazard; its level is the colour of its highest active
//!   triggering warning (§二); level changes are the moves.
//! - `calls`: rounds, the per-person WeChat -> phone -> unreached timeline (§四.2) and acks
//!   (§四.3).
//! - `register`: the call register (§四.5) and its CSV export.
//! - `suggest`: suggestions from station sums (PLANS.md §4, CMA Order No. 16).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::{Config, RegionConfig};
use crate::input::{Command, Hazard, Input};
use crate::plans::cx::Cx;

mod calls;
mod register;
mod suggest;
mod tracks;

#[cfg(test)]
mod tests;

pub use calls::{Channel, PersonCall, Round, RoundStatus};
pub use register::{Entry, EntryKind};
pub use tracks::warning_zh;

/// The plan's document, as cited in every `clause`.
pub(crate) const DOC: &str = "朔政办函〔2023〕65号";

/// Who issues warnings and makes the calls (§一, §二).
pub(crate) const MET_BUREAU: &str = "朔州市气象局";

/// Timers of this plan: one per (round, person), re-armed at each attempt (PLANS.md §4:
/// "a call timer when its round starts or its previous attempt is made").
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Timer {
    /// The next step of `person` in round `call_id`: a phone attempt or `call_unreached`.
    Call { call_id: String, person: String },
}

impl Timer {
    pub fn describe(&self) -> String {
        match self {
            Timer::Call { call_id, person } => format!("call {call_id}: next step for {person}"),
        }
    }
}

/// State of the plan in one region.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SevereWeather {
    /// The region's id (for the register's CSV).
    #[serde(default)]
    pub region: String,
    /// Hazard -> its track (never `Hazard::Other`, which the plan ignores). Serialized keyed
    /// by the hazard's code; iterated in the codes' string order (`Hazard`'s `Ord`), as when
    /// the key was the code itself.
    pub tracks: BTreeMap<Hazard, tracks::Track>,
    /// Every round ever started, by `call_id`.
    pub rounds: BTreeMap<String, Round>,
    /// Rounds started per warning id (rounds are numbered 1, 2, … per warning id).
    pub rounds_per_warning: BTreeMap<String, u32>,
    /// The call register (§四.5).
    pub register: Vec<Entry>,
    /// Station readings and suggestion records (PLANS.md §4).
    pub suggest: suggest::Suggestions,
}

impl SevereWeather {
    pub fn new(_cfg: &Config, region: &RegionConfig) -> Self {
        Self {
            region: region.id.clone(),
            ..Self::default()
        }
    }

    /// Handles one message of this plan; `Err(reason)` refuses it (and changes nothing).
    pub fn on_input(&mut self, cx: &mut Cx, input: &Input) -> Result<(), String> {
        match input {
            Input::WeatherWarning(w) => {
                self.on_warning(cx, w);
                Ok(())
            }
            Input::WeatherObs(o) => {
                self.on_obs(cx, o);
                Ok(())
            }
            Input::Cmd(Command::Ack {
                call_id,
                person,
                by,
            }) => self.on_ack(cx, call_id, person, by.as_deref()),
            _ => Ok(()),
        }
    }

    pub fn on_timer(&mut self, cx: &mut Cx, timer: Timer) {
        match timer {
            Timer::Call { call_id, person } => self.on_call_timer(cx, &call_id, &person),
        }
    }

    /// The call register of one event (warning id: all its rounds) as CSV; `None` when no
    /// round was ever started by that warning.
    pub fn register_csv(&self, event: &str) -> Option<String> {
        register::to_csv(self, event)
    }
}
