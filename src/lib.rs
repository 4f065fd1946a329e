//! yingji (应急): Shuozhou's emergency plans as a deterministic engine, with a replay
//! tool and a daemon around it. See README.md and docs/interface.md for the interface.

#![warn(clippy::too_many_lines)]

pub mod aqi;
pub mod check;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod engine;
pub mod expect;
pub mod input;
pub mod levels;
pub mod notice;
pub mod plans;
pub mod progress;
pub mod replay;
pub mod secret;
pub mod time;
pub mod timeline;
pub mod topic;
pub mod wording;

#[cfg(test)]
mod testing;

pub use config::Config;
pub use engine::{Engine, Step};
pub use input::{Input, Message, Rejection};
pub use notice::{Kind, Notice, Plan};
pub use time::Ts;
