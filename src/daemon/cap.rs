//! CAP 1.2 (OASIS Common Alerting Protocol) messages of the notices that are alerts:
//! CONTRACT.md "Added after the first release". Built with serde and quick-xml; every
//! message the scenarios make validates against the OASIS schema (tests/cap_schema.rs).
//!
//! - moves: `activate` → Alert, `escalate`/`downgrade` → Update, `terminate` → Cancel;
//!   every Update and Cancel references every earlier CAP message of the track's warning
//!   (since its activation), as `sender,identifier,sent` triples;
//! - `proposal`: status Draft, scope Restricted (待审批) — not an alert until decided;
//! - `call`, `call_ack`, `call_unreached`: scope Restricted (叫应对象), they name people;
//! - everything else (reports, reminders, data notices) is not sent as CAP.
//!
//! `status` is Exercise in drill mode, else Actual. `sent` has whole seconds and an offset
//! (the schema's pattern allows no fraction).

use serde::Serialize;

use crate::config::Config;
use crate::input::Color;
use crate::notice::{Kind, Notice, Plan};
use crate::plans::coal_supply::Level as Coal;
use crate::plans::heavy_pollution::types::Lv;
use crate::time::{cst, Ts};
use crate::wording::{Level, Said};

use super::render;

const NS: &str = "urn:oasis:names:tc:emergency:cap:1.2";

/// `sent`: `2023-12-01T09:00:00+08:00`, never with a fraction.
pub fn sent(t: Ts) -> String {
    t.with_timezone(&cst())
        .format("%Y-%m-%dT%H:%M:%S%:z")
        .to_string()
}

/// The sender of a region's messages.
pub fn sender(n: &Notice) -> String {
    format!("yingji@{}", n.region)
}

#[derive(Serialize)]
#[serde(rename = "alert")]
struct Alert {
    #[serde(rename = "@xmlns")]
    xmlns: &'static str,
    identifier: String,
    sender: String,
    sent: String,
    status: Status,
    #[serde(rename = "msgType")]
    msg_type: MsgType,
    scope: Scope,
    #[serde(skip_serializing_if = "Option::is_none")]
    restriction: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    references: Option<String>,
    info: Info,
}

#[derive(Serialize)]
struct Info {
    language: &'static str,
    category: Category,
    event: String,
    #[serde(rename = "responseType")]
    response_type: ResponseType,
    urgency: Urgency,
    severity: Severity,
    certainty: Certainty,
    #[serde(rename = "senderName", skip_serializing_if = "Option::is_none")]
    sender_name: Option<String>,
    headline: String,
    description: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    instruction: Option<String>,
    parameter: Vec<Parameter>,
    area: Area,
}

#[derive(Serialize)]
struct Parameter {
    #[serde(rename = "valueName")]
    value_name: &'static str,
    value: String,
}

#[derive(Serialize)]
struct Area {
    #[serde(rename = "areaDesc")]
    area_desc: String,
}

/// CAP 1.2 `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
enum Status {
    Actual,
    Exercise,
    Draft,
}

/// CAP 1.2 `msgType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
enum MsgType {
    Alert,
    Update,
    Cancel,
}

/// CAP 1.2 `scope`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
enum Scope {
    Public,
    Restricted,
}

/// CAP 1.2 `category` of each plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
enum Category {
    Infra,
    Env,
    Met,
}

/// CAP 1.2 `responseType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
enum ResponseType {
    Execute,
    Monitor,
    Assess,
    AllClear,
}

/// CAP 1.2 `urgency` (the values this product uses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Urgency {
    Immediate,
    Expected,
    Past,
}

/// CAP 1.2 `severity`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Severity {
    Extreme,
    Severe,
    Moderate,
    Minor,
    Unknown,
}

/// CAP 1.2 `certainty` (the values this product uses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Certainty {
    Observed,
    Likely,
}

/// How urgent, severe and certain a notice is: the one table from the plans' levels and
/// the notice's kind to CAP's three values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Assessment {
    pub urgency: Urgency,
    pub severity: Severity,
    pub certainty: Certainty,
}

impl Assessment {
    /// Severity by level: the top level of each plan (coal 一级, pollution 红色, a red
    /// weather warning) Extreme; the next (橙色) Severe; coal 二级, 黄色 and the one-level
    /// pollution tracks (臭氧, 二氧化硫) Moderate; 蓝色 Minor; none Unknown. A lift has
    /// passed and was observed; a proposal is expected (not yet decided); everything
    /// else is immediate and likely.
    pub fn of(kind: Kind, level: &Level) -> Assessment {
        let severity = match level {
            Level::Coal(Coal::L1) | Level::Pollution(Lv::Red) | Level::Weather(_, Color::Red) => {
                Severity::Extreme
            }
            Level::Pollution(Lv::Orange) | Level::Weather(_, Color::Orange) => Severity::Severe,
            Level::Coal(_) | Level::Pollution(_) | Level::Weather(_, Color::Yellow) => {
                Severity::Moderate
            }
            Level::Weather(_, Color::Blue) => Severity::Minor,
            Level::None => Severity::Unknown,
        };
        let (urgency, certainty) = match kind {
            Kind::Terminate => (Urgency::Past, Certainty::Observed),
            Kind::Proposal => (Urgency::Expected, Certainty::Likely),
            _ => (Urgency::Immediate, Certainty::Likely),
        };
        Assessment {
            urgency,
            severity,
            certainty,
        }
    }
}

/// Who a message is for: a proposal is a draft until decided (待审批), a call names
/// people (叫应对象), everything else is public. Drill mode makes an actual message an
/// exercise (CONTRACT.md).
fn envelope(
    cfg: &Config,
    kind: Kind,
) -> (Status, Scope, Option<&'static str>, Option<&'static str>) {
    let (status, scope, restriction, note) = match kind {
        Kind::Proposal => (
            Status::Draft,
            Scope::Restricted,
            Some("待审批"),
            Some("待审批：决定前不是预警"),
        ),
        Kind::Call | Kind::CallAck | Kind::CallUnreached => {
            (Status::Actual, Scope::Restricted, Some("叫应对象"), None)
        }
        _ => (Status::Actual, Scope::Public, None, None),
    };
    let status = if cfg.drill && status == Status::Actual {
        Status::Exercise
    } else {
        status
    };
    (status, scope, restriction, note)
}

fn msg_type(kind: Kind) -> MsgType {
    match kind {
        Kind::Escalate | Kind::Downgrade => MsgType::Update,
        Kind::Terminate => MsgType::Cancel,
        _ => MsgType::Alert,
    }
}

fn category(plan: Plan) -> Category {
    match plan {
        Plan::CoalSupply => Category::Infra,
        Plan::HeavyPollution => Category::Env,
        Plan::SevereWeather => Category::Met,
    }
}

/// A lift is all clear; a proposal asks to assess; a notice with measures or tasks asks
/// to execute them, else to monitor.
fn response_type(n: &Notice) -> ResponseType {
    match n.kind {
        Kind::Terminate => ResponseType::AllClear,
        Kind::Proposal => ResponseType::Assess,
        _ if n.measures.is_empty() => ResponseType::Monitor,
        _ => ResponseType::Execute,
    }
}

/// The notice's codes as CAP parameters: kind, level, clause, and a call's id.
fn parameters(n: &Notice) -> Vec<Parameter> {
    let mut p = vec![
        Parameter {
            value_name: "kind",
            value: n.kind.as_str().into(),
        },
        Parameter {
            value_name: "level",
            value: n.level.clone(),
        },
        Parameter {
            value_name: "clause",
            value: n.clause.clone(),
        },
    ];
    if let Some(c) = &n.call_id {
        p.push(Parameter {
            value_name: "call_id",
            value: c.clone(),
        });
    }
    p
}

/// The CAP messages that an Update or Cancel of `n` references: every earlier CAP message
/// (not a Draft) of its track since the track's latest activation. `earlier` holds notices
/// made before `n`, in order (others are skipped).
fn references(n: &Notice, earlier: &[Notice]) -> Vec<String> {
    let mut refs = Vec::new();
    for e in earlier {
        if e.id == n.id {
            break;
        }
        if e.plan != n.plan || e.region != n.region || e.track != n.track {
            continue;
        }
        if e.kind == Kind::Activate {
            refs.clear();
        }
        if render::carried(e) && e.kind != Kind::Proposal {
            refs.push(format!("{},{},{}", sender(e), e.id, sent(e.at)));
        }
    }
    refs
}

/// Measures or tasks, one numbered line each, labelled with unit (and heading).
fn instruction(cfg: &Config, n: &Notice) -> Option<String> {
    let mut s = String::new();
    let mut k = 0;
    for sec in render::sections(cfg, n, render::Reader::Group) {
        s += &format!("{}：\n", sec.title);
        for i in &sec.items {
            k += 1;
            s += &format!("{k}. {}\n", i.line());
        }
    }
    if n.kind == Kind::Call {
        s += render::ASK_REPLY;
    }
    let s = s.trim_end().to_string();
    (!s.is_empty()).then_some(s)
}

/// The `info` block: what the notice is (its plan and level as the plan names them),
/// how urgent, severe and certain, the texts, and the measures or tasks.
fn info(cfg: &Config, n: &Notice) -> Info {
    let said = Said::of(n);
    let a = Assessment::of(n.kind, &said.level);
    Info {
        language: "zh-CN",
        category: category(n.plan),
        event: format!("{}{}", said.plan_zh(), said.level.name_zh()),
        response_type: response_type(n),
        urgency: a.urgency,
        severity: a.severity,
        certainty: a.certainty,
        sender_name: (!n.authority.is_empty()).then(|| n.authority.clone()),
        headline: render::subject(cfg, n),
        description: match &n.text {
            Some(t) => format!("{}\n{t}", n.reason),
            None => n.reason.clone(),
        },
        instruction: instruction(cfg, n),
        parameter: parameters(n),
        area: Area {
            area_desc: render::region_name(cfg, &n.region).to_string(),
        },
    }
}

/// The notice as a CAP 1.2 alert; `earlier` are notices made before it (at least those of
/// its track), for `references`.
pub fn xml(cfg: &Config, n: &Notice, earlier: &[Notice]) -> String {
    let (status, scope, restriction, note) = envelope(cfg, n.kind);
    let msg_type = msg_type(n.kind);
    let references = match msg_type {
        MsgType::Update | MsgType::Cancel => {
            let r = references(n, earlier);
            (!r.is_empty()).then(|| r.join(" "))
        }
        MsgType::Alert => None,
    };
    let alert = Alert {
        xmlns: NS,
        identifier: n.id.clone(),
        sender: sender(n),
        sent: sent(n.at),
        status,
        msg_type,
        scope,
        restriction,
        note,
        references,
        info: info(cfg, n),
    };
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let mut ser = quick_xml::se::Serializer::new(&mut out);
    ser.indent(' ', 2);
    alert.serialize(ser).expect("a CAP alert serialises");
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notice(kind: Kind, level: &str, id: u32, at: &str) -> Notice {
        let mut n = Notice::new(Plan::HeavyPollution, "graded", kind, level)
            .clause("朔政办发〔2023〕37号 §3.4")
            .reason("PM2.5 <高> & 持续");
        n.id = format!("heavy_pollution/shuozhou/graded/{id}");
        n.region = "shuozhou".into();
        n.at = crate::time::parse_ts(at).unwrap();
        n
    }

    #[test]
    fn moves_chain_with_references_and_the_lift_cancels() {
        let cfg = Config::from_toml("").unwrap().config;
        let a = notice(Kind::Activate, "yellow", 1, "2023-12-01T09:00:00.250+08:00");
        let r = notice(Kind::ReportFirst, "yellow", 2, "2023-12-01T09:00:00+08:00");
        let e = notice(Kind::Escalate, "orange", 3, "2023-12-01T10:00:00+08:00");
        let mut t = notice(Kind::Terminate, "none", 4, "2023-12-02T10:00:00+08:00");
        t.previous = Some("orange".into());
        let all = vec![a.clone(), r.clone(), e.clone(), t.clone()];
        let x = xml(&cfg, &a, &all);
        assert!(x.contains("<msgType>Alert</msgType>"), "{x}");
        assert!(x.contains("<sent>2023-12-01T09:00:00+08:00</sent>"), "{x}");
        assert!(x.contains("PM2.5 &lt;高&gt; &amp; 持续"), "{x}");
        assert!(!x.contains("<references>"));
        assert!(!render::carried(&r));
        let x = xml(&cfg, &t, &all);
        assert!(x.contains("<msgType>Cancel</msgType>"), "{x}");
        assert!(x.contains(
            "<references>yingji@shuozhou,heavy_pollution/shuozhou/graded/1,2023-12-01T09:00:00+08:00 \
             yingji@shuozhou,heavy_pollution/shuozhou/graded/3,2023-12-01T10:00:00+08:00</references>"
        ), "{x}");
        assert!(
            x.contains("<headline>【重污染天气 橙色预警】解除：朔州市</headline>"),
            "{x}"
        );
    }

    /// The one table: each plan's levels to CAP severity, the kind to urgency and
    /// certainty.
    #[test]
    fn severity_urgency_and_certainty_follow_the_plans_levels() {
        let sev = |plan, track: &str, code: &str| {
            let level = Level::parse(plan, track, code).expect(code);
            Assessment::of(Kind::Activate, &level).severity
        };
        use Plan::*;
        use Severity::*;
        let table = [
            (CoalSupply, "supply", "L1", Extreme),
            (CoalSupply, "supply", "L2", Moderate),
            (HeavyPollution, "graded", "red", Extreme),
            (HeavyPollution, "graded", "orange", Severe),
            (HeavyPollution, "graded", "yellow", Moderate),
            (HeavyPollution, "ozone", "ozone", Moderate),
            (HeavyPollution, "so2", "so2", Moderate),
            (SevereWeather, "rainstorm", "red", Extreme),
            (SevereWeather, "blizzard", "orange", Severe),
            (SevereWeather, "rainstorm", "yellow", Moderate),
            (SevereWeather, "thunderstorm_gale", "blue", Minor),
            (CoalSupply, "supply", "none", Unknown),
        ];
        for (plan, track, code, want) in table {
            assert_eq!(sev(plan, track, code), want, "{plan:?} {track} {code}");
        }
        let a = |k| Assessment::of(k, &Level::None);
        assert_eq!(
            (a(Kind::Terminate).urgency, a(Kind::Terminate).certainty),
            (Urgency::Past, Certainty::Observed)
        );
        assert_eq!(a(Kind::Proposal).urgency, Urgency::Expected);
        assert_eq!(
            (a(Kind::Call).urgency, a(Kind::Call).certainty),
            (Urgency::Immediate, Certainty::Likely)
        );
    }

    #[test]
    fn proposals_are_drafts_calls_restricted_drills_exercises() {
        let mut cfg = Config::from_toml("").unwrap().config;
        let p = notice(Kind::Proposal, "yellow", 1, "2023-12-01T09:00:00+08:00");
        let x = xml(&cfg, &p, &[]);
        assert!(
            x.contains("<status>Draft</status>") && x.contains("<restriction>待审批</restriction>"),
            "{x}"
        );
        let mut c = Notice::new(Plan::SevereWeather, "rainstorm", Kind::Call, "red");
        c.id = "severe_weather/shuozhou/rainstorm/2".into();
        c.region = "shuozhou".into();
        cfg.drill = true;
        let x = xml(&cfg, &c, &[]);
        assert!(
            x.contains("<status>Exercise</status>")
                && x.contains("<restriction>叫应对象</restriction>"),
            "{x}"
        );
        assert!(
            x.contains("<headline>【演练】【重大灾害性天气 暴雨红色预警】叫应"),
            "{x}"
        );
        assert!(
            x.contains("<instruction>收到后请回复“收到”。</instruction>"),
            "{x}"
        );
    }
}
