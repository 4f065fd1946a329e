//! The deterministic core: `ingest(at, topic, payload)` (the one way in for raw inputs;
//! `ingest_checked` when a replay has parsed the payload ahead), `handle(at, message)`,
//! `advance_to(t)`, `next_deadline()`.
//! No clock, no I/O. Timers fire at their exact due time, in the order PLANS.md §4 gives:
//! by due time, then in the order they were last armed.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::input::{Command, Input, Message, Rejection, RejectionClass};
use crate::notice::{Notice, Plan};
use crate::plans::cx::{Cx, IdCounters, TimerKey, Timers};
use crate::plans::{coal_supply, heavy_pollution, severe_weather, PlanTimer};
use crate::time::Ts;

/// The plans of one region.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RegionPlans {
    pub coal: coal_supply::CoalSupply,
    pub pollution: heavy_pollution::HeavyPollution,
    pub weather: severe_weather::SevereWeather,
}

/// Everything the engine remembers; serialisable for snapshots.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EngineState {
    /// The latest time the engine has been advanced to.
    pub now: Option<Ts>,
    pub timers: Timers,
    pub ids: IdCounters,
    pub regions: Vec<RegionPlans>,
}

/// The engine: configuration + state.
#[derive(Debug, Clone)]
pub struct Engine {
    cfg: Arc<Config>,
    state: EngineState,
    /// Test-only: `ingest` panics on an input whose topic ends with this (a stand-in for
    /// a bug in a plan, to test the daemon's panic boundary).
    #[cfg(test)]
    pub(crate) fault: Option<String>,
}

/// See [`Engine::command_scope`].
#[derive(PartialEq)]
struct CommandScope {
    timers: (u64, usize),
    notices: u64,
    region: Vec<u8>,
}

/// What one [`Engine::ingest`] (or [`Engine::handle`]) produced.
#[derive(Debug, Clone, Default)]
pub struct Step {
    /// Notices in the order they were made (timers due first, then the message's).
    pub notices: Vec<Notice>,
    /// Set when the input was refused: by `input::parse` (it did not validate), or by the
    /// plan (e.g. an ack for an unknown call). A refused input changed no plan state;
    /// timers due by then still fired.
    pub rejection: Option<Rejection>,
    /// The message as parsed, when it parsed (also when the plan then refused it).
    pub message: Option<Message>,
    /// Whether the input belongs in the journal: it parsed, and it is not a command the
    /// plan refused without any effect (issue 9: such a command is not journaled).
    pub journal: bool,
}

impl Engine {
    pub fn new(cfg: Arc<Config>) -> Self {
        let regions = cfg
            .regions
            .iter()
            .map(|r| RegionPlans {
                coal: coal_supply::CoalSupply::new(&cfg, r),
                pollution: heavy_pollution::HeavyPollution::new(&cfg, r),
                weather: severe_weather::SevereWeather::new(&cfg, r),
            })
            .collect();
        Engine {
            cfg,
            state: EngineState {
                now: None,
                timers: Timers::default(),
                ids: IdCounters::default(),
                regions,
            },
            #[cfg(test)]
            fault: None,
        }
    }

    /// Restores an engine from a snapshot taken with [`Engine::snapshot`].
    pub fn restore(cfg: Arc<Config>, snapshot: &[u8]) -> Result<Self, serde_json::Error> {
        let state: EngineState = serde_json::from_slice(snapshot)?;
        Ok(Engine {
            cfg,
            state,
            #[cfg(test)]
            fault: None,
        })
    }

    /// The whole state as JSON.
    pub fn snapshot(&self) -> Vec<u8> {
        serde_json::to_vec(&self.state).expect("state serialises")
    }

    /// What a command to `region` can change: that region's plans (as JSON), the timers
    /// and the notice counters (a plan sees only its own region through `Cx`), the last
    /// two by their versions (each changes whenever its table does). Compared before and
    /// after a command instead of the whole state, whose size grows with every region's
    /// history (serializing every region's timers was most of a command's cost).
    fn command_scope(&self, region: usize) -> CommandScope {
        let s = &self.state;
        CommandScope {
            timers: s.timers.version(),
            notices: s.ids.total(),
            region: serde_json::to_vec(&s.regions.get(region)).expect("state serialises"),
        }
    }

    pub fn config(&self) -> &Arc<Config> {
        &self.cfg
    }

    pub fn state(&self) -> &EngineState {
        &self.state
    }

    /// Retention (`[store] retain_days`): drops the call register entries made before
    /// `t`. The register is a record for people; no rule reads it.
    pub fn forget_register_before(&mut self, t: Ts) -> usize {
        let mut n = 0;
        for r in &mut self.state.regions {
            let before = r.weather.register.len();
            r.weather.register.retain(|e| e.at >= t);
            n += before - r.weather.register.len();
        }
        n
    }

    pub fn now(&self) -> Option<Ts> {
        self.state.now
    }

    /// The earliest armed timer and why it is armed.
    pub fn next_deadline(&self) -> Option<(Ts, String)> {
        self.state.timers.first().map(|(t, k)| {
            let region = &self.cfg.regions[k.region].id;
            (t, format!("{region}: {}", k.timer.describe()))
        })
    }

    /// Fires every timer due at or before `t`, in order. Calling it again for the same
    /// time is a no-op; a time before `now` is ignored (a clock jump backwards never
    /// fires a timer twice).
    pub fn advance_to(&mut self, t: Ts) -> Vec<Notice> {
        let mut out = Vec::new();
        self.advance_into(t, &mut out);
        out
    }

    fn advance_into(&mut self, t: Ts, out: &mut Vec<Notice>) {
        if let Some(now) = self.state.now {
            if t < now {
                return;
            }
        }
        while let Some((due, key)) = self.state.timers.pop_due(t) {
            // The engine's time never goes back (a timer armed in the past would fire
            // before notices already made; tests/simulation.rs checks it from outside).
            debug_assert!(
                self.state.now.map_or(true, |now| due >= now),
                "timer {key:?} due before the engine's time"
            );
            self.state.now = Some(due);
            self.fire(due, key, out);
        }
        self.state.now = Some(t);
    }

    /// Runs `f` with the plans of `region` and a `Cx` at time `now`.
    fn with_cx<R>(
        &mut self,
        region: usize,
        now: Ts,
        out: &mut Vec<Notice>,
        f: impl FnOnce(&mut RegionPlans, &mut Cx) -> R,
    ) -> R {
        // Disjoint borrows of the two fields: no `Arc` clone (an atomic count) per message.
        let st = &mut self.state;
        let mut cx = Cx::new(now, &self.cfg, region, &mut st.timers, &mut st.ids, out);
        f(&mut st.regions[region], &mut cx)
    }

    fn fire(&mut self, due: Ts, key: TimerKey, out: &mut Vec<Notice>) {
        self.with_cx(key.region, due, out, |plans, cx| match key.timer {
            PlanTimer::Coal(t) => plans.coal.on_timer(cx, t),
            PlanTimer::Pollution(t) => plans.pollution.on_timer(cx, t),
            PlanTimer::Weather(t) => plans.weather.on_timer(cx, t),
        })
    }

    /// The one ingest path (daemon, recovery, replay, simulation): parses `payload` of
    /// `topic` arriving at `at` (CONTRACT.md "Input topics"); a message that parses is
    /// handled as [`Engine::handle`] does; one that does not only advances the clock to
    /// `at` and comes back as the rejection.
    pub fn ingest(&mut self, at: Ts, topic: &str, payload: &[u8]) -> Step {
        let parsed = crate::input::parse(&self.cfg, topic, payload, at);
        self.ingest_checked(at, topic, parsed)
    }

    /// [`Engine::ingest`] for a payload parsed beforehand by `input::parse` or
    /// `input::parse_parsed` with the same `at` and `topic` (parsing reads no engine
    /// state, so a replay parses a batch of lines ahead of the engine).
    pub fn ingest_checked(
        &mut self,
        at: Ts,
        topic: &str,
        parsed: Result<Message, Rejection>,
    ) -> Step {
        let step = self.ingest_unchecked(at, topic, parsed);
        debug_assert!(
            step.notices.windows(2).all(|w| w[0].at <= w[1].at)
                && step.notices.iter().all(|n| Some(n.at) <= self.state.now),
            "a step's notices are in time order and not after the engine's time"
        );
        step
    }

    fn ingest_unchecked(
        &mut self,
        at: Ts,
        #[cfg_attr(not(test), allow(unused_variables))] topic: &str,
        parsed: Result<Message, Rejection>,
    ) -> Step {
        let msg = match parsed {
            Ok(msg) => msg,
            Err(r) => {
                return Step {
                    notices: self.advance_to(at),
                    rejection: Some(r),
                    message: None,
                    journal: false,
                }
            }
        };
        let step = if matches!(msg.input, Input::Cmd(_)) {
            self.handle_command(at, &msg)
        } else {
            Step {
                journal: true,
                ..self.handle(at, &msg)
            }
        };
        // After the state changed: a stand-in for a plan that panics half-way.
        #[cfg(test)]
        if let Some(fault) = &self.fault {
            assert!(
                !topic.ends_with(fault.as_str()),
                "injected fault on {topic}"
            );
        }
        Step {
            message: Some(msg),
            ..step
        }
    }

    /// A command: the timers due by `at` fire first, then the state is compared, so a
    /// command the plan refuses without effect is known as such (not journaled).
    fn handle_command(&mut self, at: Ts, msg: &Message) -> Step {
        let mut notices = self.advance_to(at);
        let before = self.command_scope(msg.region);
        let step = self.handle(at, msg);
        let unchanged = step.rejection.is_some()
            && step.notices.is_empty()
            && before == self.command_scope(msg.region);
        notices.extend(step.notices);
        Step {
            notices,
            rejection: step.rejection,
            message: None,
            journal: !unchanged,
        }
    }

    /// Handles one validated message arriving at `at`: first the timers due at or before
    /// `at`, then the message (PLANS.md §4), then any timer the message armed for `at`
    /// itself. An `at` before `now` is taken as `now`. Only [`Engine::ingest`] decides
    /// journaling: here `journal` is just "not refused" and `message` is `None`.
    pub fn handle(&mut self, at: Ts, msg: &Message) -> Step {
        let at = match self.state.now {
            Some(now) if at < now => now,
            _ => at,
        };
        let mut out = Vec::new();
        self.advance_into(at, &mut out);
        let rejection = self.dispatch(at, msg, &mut out).err();
        self.advance_into(at, &mut out);
        Step {
            journal: rejection.is_none(),
            notices: out,
            rejection,
            message: None,
        }
    }

    fn dispatch(&mut self, at: Ts, msg: &Message, out: &mut Vec<Notice>) -> Result<(), Rejection> {
        let r = self.with_cx(msg.region, at, out, |plans, cx| match route(&msg.input) {
            Some(Plan::CoalSupply) => plans.coal.on_input(cx, &msg.input),
            Some(Plan::HeavyPollution) => plans.pollution.on_input(cx, &msg.input),
            Some(Plan::SevereWeather) => plans.weather.on_input(cx, &msg.input),
            None => Err(format!(
                "no plan of region {} has a proposal or call named in this command",
                cx.region.id
            )),
        });
        let (cfg, region) = (&self.cfg, &self.cfg.regions[msg.region]);
        r.map_err(|reason| Rejection {
            topic: format!("{}/{}/{}", cfg.topic_root, region.id, msg.input.topic()),
            region: Some(region.id.clone()),
            // A report for a plan with no deadline series running is a bad value
            // (PLANS.md §5.2); other refusals name something the plan does not know.
            class: if matches!(msg.input, Input::Cmd(Command::Report(_))) {
                RejectionClass::BadValue
            } else {
                RejectionClass::Refused
            },
            reason,
        })
    }
}

/// Which plan a message belongs to. Commands go by what they name.
fn route(input: &Input) -> Option<Plan> {
    Some(match input {
        Input::CoalStock(_)
        | Input::CoalOutput(_)
        | Input::CoalPrice(_)
        | Input::CoalStorage(_) => Plan::CoalSupply,
        Input::AirAqi(_) | Input::AirForecast(_) | Input::AirProvince(_) => Plan::HeavyPollution,
        Input::WeatherWarning(_) | Input::WeatherObs(_) => Plan::SevereWeather,
        Input::Cmd(c) => match c {
            Command::Ack { .. } => Plan::SevereWeather,
            Command::Manual { .. } => Plan::CoalSupply,
            Command::Report(r) => r.plan,
            Command::Approve { proposal_id, .. }
            | Command::Reject { proposal_id, .. }
            | Command::Confirm { proposal_id, .. } => {
                Plan::parse(proposal_id.split('/').next().unwrap_or(""))?
            }
        },
    })
}

#[cfg(test)]
mod tests;
