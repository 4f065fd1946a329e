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

/// A track's level. Graded levels are ordered yellow < orange < red (§3.2.1);
/// `Ozone` and `So2` are the one-level tracks' levels.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Lv {
    #[default]
    None,
    Yellow,
    Orange,
    Red,
    Ozone,
    So2,
}

impl Lv {
    pub fn as_str(self) -> &'static str {
        match self {
            Lv::None => "none",
            Lv::Yellow => "yellow",
            Lv::Orange => "orange",
            Lv::Red => "red",
            Lv::Ozone => "ozone",
            Lv::So2 => "so2",
        }
    }

    pub fn parse_graded(s: &str) -> Option<Lv> {
        match s {
            "yellow" => Some(Lv::Yellow),
            "orange" => Some(Lv::Orange),
            "red" => Some(Lv::Red),
            _ => None,
        }
    }

    /// Name in Chinese.
    pub fn zh(self) -> &'static str {
        match self {
            Lv::None => "无",
            Lv::Yellow => "黄色预警",
            Lv::Orange => "橙色预警",
            Lv::Red => "红色预警",
            Lv::Ozone => "臭氧重污染天气预警",
            Lv::So2 => "二氧化硫针对性管控",
        }
    }

    /// Response level (§4.1): yellow III, orange II, red I.
    pub fn response(self) -> Option<&'static str> {
        match self {
            Lv::Yellow => Some("III"),
            Lv::Orange => Some("II"),
            Lv::Red => Some("I"),
            _ => None,
        }
    }

    pub fn response_zh(self) -> &'static str {
        match self {
            Lv::Yellow => "三级应急响应",
            Lv::Orange => "二级应急响应",
            Lv::Red => "一级应急响应",
            Lv::Ozone => "臭氧污染减排措施",
            Lv::So2 => "二氧化硫污染减排措施",
            Lv::None => "无",
        }
    }
}

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
