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
use crate::notice::{Kind, Notice, Plan};
use crate::time::{cst, Ts};
use crate::wording::Said;

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
    status: &'static str,
    #[serde(rename = "msgType")]
    msg_type: &'static str,
    scope: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    restriction: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    references: Option<String>,
    info: Info,
}

#[derive(Serialize)]
struct Info {
    language: &'static str,
    category: &'static str,
    event: String,
    #[serde(rename = "responseType")]
    response_type: &'static str,
    urgency: &'static str,
    severity: &'static str,
    certainty: &'static str,
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

fn severity(s: &Said) -> &'static str {
    use crate::input::Color;
    use crate::plans::coal_supply::Level as Coal;
    use crate::plans::heavy_pollution::types::Lv;
    use crate::wording::Level;
    match s.level {
        Level::Coal(Coal::L1) | Level::Pollution(Lv::Red) | Level::Weather(_, Color::Red) => {
            "Extreme"
        }
        Level::Pollution(Lv::Orange) | Level::Weather(_, Color::Orange) => "Severe",
        Level::Coal(_) | Level::Pollution(_) | Level::Weather(_, Color::Yellow) => "Moderate",
        Level::Weather(_, Color::Blue) => "Minor",
        Level::None => "Unknown",
    }
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

/// The notice as a CAP 1.2 alert; `earlier` are notices made before it (at least those of
/// its track), for `references`.
pub fn xml(cfg: &Config, n: &Notice, earlier: &[Notice]) -> String {
    let said = Said::of(n);
    let (status, scope, restriction, note) = match n.kind {
        Kind::Proposal => (
            "Draft",
            "Restricted",
            Some("待审批"),
            Some("待审批：决定前不是预警".to_string()),
        ),
        Kind::Call | Kind::CallAck | Kind::CallUnreached => {
            ("Actual", "Restricted", Some("叫应对象"), None)
        }
        _ => ("Actual", "Public", None, None),
    };
    let status = if cfg.drill && status == "Actual" {
        "Exercise"
    } else {
        status
    };
    let msg_type = match n.kind {
        Kind::Escalate | Kind::Downgrade => "Update",
        Kind::Terminate => "Cancel",
        _ => "Alert",
    };
    let references = match msg_type {
        "Update" | "Cancel" => {
            let r = references(n, earlier);
            (!r.is_empty()).then(|| r.join(" "))
        }
        _ => None,
    };
    let category = match n.plan {
        Plan::CoalSupply => "Infra",
        Plan::HeavyPollution => "Env",
        Plan::SevereWeather => "Met",
    };
    let (urgency, response_type) = match n.kind {
        Kind::Terminate => ("Past", "AllClear"),
        Kind::Proposal => ("Expected", "Assess"),
        _ => (
            "Immediate",
            if n.measures.is_empty() {
                "Monitor"
            } else {
                "Execute"
            },
        ),
    };
    let mut parameter = vec![
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
        parameter.push(Parameter {
            value_name: "call_id",
            value: c.clone(),
        });
    }
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
        info: Info {
            language: "zh-CN",
            category,
            event: format!("{}{}", said.plan_zh(), said.level.name_zh()),
            response_type,
            urgency,
            severity: severity(&said),
            certainty: if n.kind == Kind::Terminate {
                "Observed"
            } else {
                "Likely"
            },
            sender_name: (!n.authority.is_empty()).then(|| n.authority.clone()),
            headline: render::subject(cfg, n),
            description: match &n.text {
                Some(t) => format!("{}\n{t}", n.reason),
                None => n.reason.clone(),
            },
            instruction: instruction(cfg, n),
            parameter,
            area: Area {
                area_desc: render::region_name(cfg, &n.region).to_string(),
            },
        },
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
