//! What the web side reads of the core: a read-only picture (`View`) the core thread
//! publishes after every step that changed something, over a `tokio::sync::watch`
//! channel (the console's live updates wait on it). It is built from the notices made
//! (the public record: levels, since when, clause, last notice, open data gaps) and from
//! the engine's state (pending proposals, call rounds). No plan logic here: it only
//! reports what the engine decided.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::engine::Engine;
use crate::notice::{Kind, Notice};
use crate::plans::severe_weather::{Round, RoundStatus};
use crate::time::Ts;

/// One track of one plan in one region, as the notices tell it.
#[derive(Debug, Clone)]
pub struct TrackView {
    pub region: String,
    pub plan: String,
    pub track: String,
    /// The level after the last move (`none` when terminated).
    pub level: String,
    /// When the last move happened.
    pub since: Option<Ts>,
    /// The clause of the last move.
    pub clause: String,
    /// The track's last notice of any kind.
    pub last: Arc<Notice>,
}

/// A proposal waiting for a decision (approve / reject / confirm).
#[derive(Debug, Clone)]
pub struct ProposalView {
    pub region: String,
    /// The proposal notice (what, why, evidence, since when).
    pub notice: Arc<Notice>,
}

/// A call round with its region.
#[derive(Debug, Clone)]
pub struct RoundView {
    pub region: String,
    pub round: Round,
    /// Superseded or closed: its acknowledgement links have expired.
    pub ended: bool,
}

/// The picture of the daemon the console and the ack pages read.
#[derive(Debug, Clone, Default)]
pub struct View {
    /// Counts publications (the console's live updates compare it).
    pub version: u64,
    /// Recovered and past the echo drain.
    pub live: bool,
    /// The engine's time.
    pub now: Option<Ts>,
    pub tracks: Vec<TrackView>,
    /// `data_gap` notices not followed by `data_resumed` of the same feed.
    pub gaps: Vec<Arc<Notice>>,
    pub proposals: Vec<ProposalView>,
    pub rounds: Vec<RoundView>,
}

impl View {
    /// The round of `call_id` in `region`.
    pub fn round(&self, region: &str, call_id: &str) -> Option<&Round> {
        self.rounds
            .iter()
            .find(|r| r.region == region && r.round.call_id == call_id)
            .map(|r| &r.round)
    }

    /// The pending proposal `id`.
    pub fn proposal(&self, id: &str) -> Option<&ProposalView> {
        self.proposals.iter().find(|p| p.notice.id == id)
    }
}

type TrackKey = (String, String, String);

/// Follows the notices as they are made (and, at start, every stored one).
#[derive(Debug, Default)]
pub struct Tracker {
    tracks: BTreeMap<TrackKey, TrackView>,
    gaps: BTreeMap<(String, String, String), Arc<Notice>>,
    /// Proposal notices by id (the pending ones are looked up here).
    proposals: BTreeMap<String, Arc<Notice>>,
}

/// The feed a gap notice is about (with the plant for a plant's stock feed).
fn gap_key(n: &Notice) -> (String, String, String) {
    let feed = n.evidence["feed"].as_str().unwrap_or("");
    let plant = n.evidence["plant"].as_str().unwrap_or("");
    (
        n.region.clone(),
        n.plan.as_str().to_string(),
        format!("{feed}|{plant}"),
    )
}

impl Tracker {
    pub fn see(&mut self, n: &Arc<Notice>) {
        let key = (
            n.region.clone(),
            n.plan.as_str().to_string(),
            n.track.clone(),
        );
        let t = self.tracks.entry(key).or_insert_with(|| TrackView {
            region: n.region.clone(),
            plan: n.plan.as_str().to_string(),
            track: n.track.clone(),
            level: "none".into(),
            since: None,
            clause: String::new(),
            last: Arc::clone(n),
        });
        t.last = Arc::clone(n);
        if n.kind.is_move() {
            t.level = if n.kind == Kind::Terminate {
                "none".into()
            } else {
                n.level.clone()
            };
            t.since = Some(n.at);
            t.clause = n.clause.clone();
        }
        match n.kind {
            // A one-off gap (skipped output dates) has nothing to resume.
            Kind::DataGap if n.evidence.get("missing_dates").is_none() => {
                self.gaps.insert(gap_key(n), Arc::clone(n));
            }
            Kind::DataResumed => {
                self.gaps.remove(&gap_key(n));
            }
            Kind::Proposal => {
                self.proposals.insert(n.id.clone(), Arc::clone(n));
            }
            _ => {}
        }
    }

    /// The picture now: the tracker's record with the engine's pending proposals and
    /// rounds.
    pub fn view(&self, engine: &Engine, live: bool, version: u64) -> View {
        let st = engine.state();
        let mut proposals = Vec::new();
        let mut rounds = Vec::new();
        for (rc, plans) in engine.config().regions.iter().zip(&st.regions) {
            for id in plans
                .coal
                .pending_proposal()
                .into_iter()
                .chain(plans.pollution.pending_proposals())
            {
                if let Some(n) = self.proposals.get(id) {
                    proposals.push(ProposalView {
                        region: rc.id.clone(),
                        notice: Arc::clone(n),
                    });
                }
            }
            for r in plans.weather.rounds.values() {
                rounds.push(RoundView {
                    region: rc.id.clone(),
                    ended: r.status != RoundStatus::Current,
                    round: r.clone(),
                });
            }
        }
        proposals.sort_by_key(|p| (p.notice.at, p.notice.id.clone()));
        rounds.sort_by_key(|r| std::cmp::Reverse(r.round.t0));
        View {
            version,
            live,
            now: engine.now(),
            tracks: self.tracks.values().cloned().collect(),
            gaps: self.gaps.values().cloned().collect(),
            proposals,
            rounds,
        }
    }
}
