//! The plans' level and tier vocabulary, below both the configuration and the plans: the
//! config reads a task's, a measure's and a contact's level or tier into these types once
//! (docs/config.md "Errors and problems"), and the plans, the wording and the renderers use
//! the same types. Nothing here imports another module of the crate, so `config` can name
//! them without a module cycle (`config` → `levels` ← `plans`); the plans and `wording`
//! re-export them under their old names.

use serde::{Deserialize, Serialize};

/// The coal supply plan's warning / response levels: none < L2 (二级) < L1 (一级, highest)
/// (§4.2.1, §5.2); `plans::coal_supply::Level`.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub enum CoalLevel {
    #[default]
    #[serde(rename = "none")]
    None,
    L2,
    L1,
}

impl CoalLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            CoalLevel::None => "none",
            CoalLevel::L2 => "L2",
            CoalLevel::L1 => "L1",
        }
    }
    pub fn name_zh(self) -> &'static str {
        match self {
            CoalLevel::None => "无预警",
            CoalLevel::L2 => "二级",
            CoalLevel::L1 => "一级",
        }
    }
    /// The warning as §4.2.1 names it: 二级预警, 一级预警.
    pub fn warning_zh(self) -> &'static str {
        match self {
            CoalLevel::None => "无预警",
            CoalLevel::L2 => "二级预警",
            CoalLevel::L1 => "一级预警",
        }
    }
    /// The response that goes with the warning (§5.2.1 二级响应, §5.2.2 一级响应).
    pub fn response_zh(self) -> Option<&'static str> {
        match self {
            CoalLevel::None => None,
            CoalLevel::L2 => Some("二级响应"),
            CoalLevel::L1 => Some("一级响应"),
        }
    }
}

/// The heavy-pollution plan's track level (`plans::heavy_pollution::types::Lv`). Graded
/// levels are ordered yellow < orange < red (§3.2.1);
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

/// Who is called (§三 of the call mechanism): A the departments' responsible persons,
/// B the city leaders in charge of meteorology and flood control, C the top leaders of the
/// city party committee and government (extreme events). Config and the call register
/// keep the letter (`A`, `B`, `C`: the TOML spelling of `contact.tier`); the texts use
/// these words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Tier {
    A,
    B,
    C,
}

impl Tier {
    /// The letter, as config and the call register write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::A => "A",
            Tier::B => "B",
            Tier::C => "C",
        }
    }
    /// Who calls (§三.1: 分管领导; §三.2, §三.3: 主要负责人).
    pub fn caller_zh(self) -> &'static str {
        match self {
            Tier::A => "市气象局分管领导",
            Tier::B | Tier::C => "市气象局主要负责人",
        }
    }
    /// Who is called.
    pub fn called_zh(self) -> &'static str {
        match self {
            Tier::A => "相关涉灾部门责任人",
            Tier::B => "分管气象工作和防汛工作的市政府领导",
            Tier::C => "市委、市政府主要领导(直通式报告)",
        }
    }
    pub fn clause(self) -> &'static str {
        match self {
            Tier::A => "§三.1",
            Tier::B => "§三.2",
            Tier::C => "§三.3",
        }
    }
}
