//! Levels, tracks and the outcome of a rule (a decided move).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::notice::Kind;

use super::series::Stamp;

/// The plan's document number, for `clause`.
pub const DOC: &str = "朔政办发〔2023〕37号";

pub fn clause(sections: &str) -> String {
    format!("{DOC} {sections}")
}

pub use crate::levels::Lv;

/// The three tracks (§3.2.1, §3.2.2, §3.2.3), in notice order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrackId {
    Graded,
    Ozone,
    So2,
}

impl TrackId {
    pub fn as_str(self) -> &'static str {
        match self {
            TrackId::Graded => "graded",
            TrackId::Ozone => "ozone",
            TrackId::So2 => "so2",
        }
    }

    pub fn parse(s: &str) -> Option<TrackId> {
        match s {
            "graded" => Some(TrackId::Graded),
            "ozone" => Some(TrackId::Ozone),
            "so2" => Some(TrackId::So2),
            _ => None,
        }
    }
}

/// A move the rules decided (before approval).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub kind: Kind,
    pub level: Lv,
    pub previous: Lv,
    pub clause: String,
    pub reason: String,
    pub evidence: Value,
    /// First warned stamp (activations).
    pub expected_start: Option<Stamp>,
    /// Made at a province message or reached only because of the floor (rule 5, 6).
    pub province: bool,
    /// `dust` / `fireworks` where they played a part (§1.3, §3.3.2).
    pub causes: Vec<String>,
}
