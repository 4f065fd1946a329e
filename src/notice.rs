//! Notices: what the plans publish (CONTRACT.md "Notices").

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::time::{serde_ts, Ts};

/// The three plans.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Plan {
    CoalSupply,
    HeavyPollution,
    SevereWeather,
}

impl Plan {
    pub fn as_str(self) -> &'static str {
        match self {
            Plan::CoalSupply => "coal_supply",
            Plan::HeavyPollution => "heavy_pollution",
            Plan::SevereWeather => "severe_weather",
        }
    }

    pub fn parse(s: &str) -> Option<Plan> {
        match s {
            "coal_supply" => Some(Plan::CoalSupply),
            "heavy_pollution" => Some(Plan::HeavyPollution),
            "severe_weather" => Some(Plan::SevereWeather),
            _ => None,
        }
    }

    /// Name in Chinese for subjects and texts.
    pub fn name_zh(self) -> &'static str {
        match self {
            Plan::CoalSupply => "煤炭保供",
            Plan::HeavyPollution => "重污染天气",
            Plan::SevereWeather => "重大灾害性天气叫应",
        }
    }

    pub const ALL: [Plan; 3] = [Plan::CoalSupply, Plan::HeavyPollution, Plan::SevereWeather];
}

/// Kinds of notice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Activate,
    Escalate,
    Downgrade,
    Terminate,
    ReportFirst,
    ReportFollowup,
    ReportFinal,
    Proposal,
    Reminder,
    TargetMissed,
    #[serde(rename = "beyond_level1")]
    BeyondLevel1,
    Call,
    CallAck,
    CallUnreached,
    DataGap,
    DataResumed,
    Suggestion,
    /// A unit sent no report back by a deadline (PLANS.md §5.2).
    ReportOverdue,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Activate => "activate",
            Kind::Escalate => "escalate",
            Kind::Downgrade => "downgrade",
            Kind::Terminate => "terminate",
            Kind::ReportFirst => "report_first",
            Kind::ReportFollowup => "report_followup",
            Kind::ReportFinal => "report_final",
            Kind::Proposal => "proposal",
            Kind::Reminder => "reminder",
            Kind::TargetMissed => "target_missed",
            Kind::BeyondLevel1 => "beyond_level1",
            Kind::Call => "call",
            Kind::CallAck => "call_ack",
            Kind::CallUnreached => "call_unreached",
            Kind::DataGap => "data_gap",
            Kind::DataResumed => "data_resumed",
            Kind::Suggestion => "suggestion",
            Kind::ReportOverdue => "report_overdue",
        }
    }

    /// One of the four moves (activate, escalate, downgrade, terminate).
    pub fn is_move(self) -> bool {
        matches!(
            self,
            Kind::Activate | Kind::Escalate | Kind::Downgrade | Kind::Terminate
        )
    }

    /// The kind in words where no plan says otherwise (coal's own words for its moves
    /// and reports, §5.1: 启动, 首报, 续报, 终报); `wording::Said::kind_zh` gives the
    /// pollution plan's and the call mechanism's own words (发布, 初报, 启动叫应, …).
    pub fn name_zh(self) -> &'static str {
        match self {
            Kind::Activate => "启动",
            Kind::Escalate => "升级",
            Kind::Downgrade => "降级",
            Kind::Terminate => "解除",
            Kind::ReportFirst => "首报",
            Kind::ReportFollowup => "续报",
            Kind::ReportFinal => "终报",
            Kind::Proposal => "待审批",
            Kind::Reminder => "审批提醒",
            Kind::TargetMissed => "响应目标未达",
            Kind::BeyondLevel1 => "超出一级响应",
            Kind::Call => "叫应",
            Kind::CallAck => "叫应已回应",
            Kind::CallUnreached => "叫应未到位",
            Kind::DataGap => "数据中断",
            Kind::DataResumed => "数据恢复",
            Kind::Suggestion => "预警建议",
            Kind::ReportOverdue => "落实情况逾期未报",
        }
    }
}

/// One notice. Optional fields are omitted from JSON when absent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notice {
    /// `{plan}/{region}/{track}/{n}` or `{plan}/{region}/{track}/proposal/{k}`.
    pub id: String,
    /// When the product decided (virtual or wall time).
    #[serde(with = "serde_ts")]
    pub at: Ts,
    pub plan: Plan,
    pub track: String,
    pub region: String,
    pub kind: Kind,
    pub level: String,
    /// Level before a move (`none` for `activate`); only on moves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
    /// Plan and section that made the decision.
    pub clause: String,
    /// Who decides / announces (moves), or who reports.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub authority: String,
    /// Chinese text with the numbers.
    pub reason: String,
    pub evidence: Value,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub measures: Vec<Value>,
    /// Contact ids (and/or unit names) this notice goes to.
    #[serde(default)]
    pub recipients: Vec<String>,
    /// Pollution activations: lead time under 24 h (紧急发布).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urgent: Option<bool>,
    /// Call kinds: `"{warning id}/{round}"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub person: Option<String>,
    /// `wechat` or `phone`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    /// Proposals and reminders: the proposal this is about (a proposal's own id for proposals).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proposal_id: Option<String>,
    /// Free-form body text (reports); Chinese.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

impl Notice {
    /// A notice with the given identity; `id`, `at` and `region` are filled by the engine
    /// when it is emitted.
    pub fn new(plan: Plan, track: &str, kind: Kind, level: &str) -> Self {
        Notice {
            id: String::new(),
            at: crate::time::at_secs(0),
            plan,
            track: track.to_string(),
            region: String::new(),
            kind,
            level: level.to_string(),
            previous: None,
            clause: String::new(),
            authority: String::new(),
            reason: String::new(),
            evidence: Value::Object(Default::default()),
            measures: Vec::new(),
            recipients: Vec::new(),
            urgent: None,
            call_id: None,
            person: None,
            channel: None,
            attempt: None,
            proposal_id: None,
            text: None,
        }
    }

    pub fn previous(mut self, p: &str) -> Self {
        self.previous = Some(p.to_string());
        self
    }
    pub fn clause(mut self, c: impl Into<String>) -> Self {
        self.clause = c.into();
        self
    }
    pub fn authority(mut self, a: impl Into<String>) -> Self {
        self.authority = a.into();
        self
    }
    pub fn reason(mut self, r: impl Into<String>) -> Self {
        self.reason = r.into();
        self
    }
    pub fn evidence(mut self, e: Value) -> Self {
        self.evidence = e;
        self
    }
    pub fn recipients(mut self, r: Vec<String>) -> Self {
        self.recipients = r;
        self
    }
    pub fn measures(mut self, m: Vec<Value>) -> Self {
        self.measures = m;
        self
    }

    /// One JSON line.
    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self).expect("notice serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_contract_shape() {
        let mut n = Notice::new(Plan::HeavyPollution, "graded", Kind::Escalate, "orange")
            .previous("yellow")
            .clause("朔政办发〔2023〕37号 §3.4");
        n.id = "heavy_pollution/shuozhou/graded/7".into();
        n.region = "shuozhou".into();
        n.at = crate::time::parse_ts("2023-12-01T09:00:00+08:00").unwrap();
        let v: Value = serde_json::from_str(&n.to_json_line()).unwrap();
        assert_eq!(v["at"], "2023-12-01T09:00:00+08:00");
        assert_eq!(v["plan"], "heavy_pollution");
        assert_eq!(v["kind"], "escalate");
        assert_eq!(v["previous"], "yellow");
        assert!(v.get("call_id").is_none());
        let back: Notice = serde_json::from_value(v).unwrap();
        assert_eq!(back, n);
        assert_eq!(
            serde_json::to_value(Kind::BeyondLevel1).unwrap(),
            "beyond_level1"
        );
    }
}
