//! What the daemon publishes, rendered from notices: topics, the state document, CAP 1.2
//! XML, rejection messages, email recipients, subjects and bodies. Pure functions.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;

use crate::config::{Config, WebhookConfig};
use crate::input::Rejection;
use crate::notice::{Kind, Notice};
use crate::time::{fmt_ts, Ts};

/// Sink of the notice topic (JSON) and of the CAP topic.
pub const SINK_NOTICE: &str = "mqtt:notice";
pub const SINK_CAP: &str = "mqtt:cap";
/// Prefix of an email sink; the address follows.
pub const SINK_EMAIL: &str = "email:";
/// Prefix of a webhook sink; the webhook's name follows.
pub const SINK_WEBHOOK: &str = "webhook:";

/// `{root}/{region}/notice/{plan}`.
pub fn notice_topic(cfg: &Config, n: &Notice) -> String {
    format!("{}/{}/notice/{}", cfg.topic_root, n.region, n.plan.as_str())
}

/// `{root}/{region}/cap/{plan}`.
pub fn cap_topic(cfg: &Config, n: &Notice) -> String {
    format!("{}/{}/cap/{}", cfg.topic_root, n.region, n.plan.as_str())
}

/// `{root}/{region}/state/{plan}`.
pub fn state_topic(cfg: &Config, region: &str, plan: &str) -> String {
    format!("{}/{region}/state/{plan}", cfg.topic_root)
}

/// The retained state document: the current level of each track of one plan.
pub fn state_json(region: &str, plan: &str, tracks: &BTreeMap<String, String>) -> Vec<u8> {
    serde_json::to_vec(&json!({"region": region, "plan": plan, "tracks": tracks}))
        .expect("serialises")
}

/// `{root}/{region}/rejected` of a rejection (the first region when it names none).
pub fn rejected_topic(cfg: &Config, r: &Rejection) -> String {
    let region = r
        .region
        .clone()
        .or_else(|| cfg.regions.first().map(|x| x.id.clone()))
        .unwrap_or_default();
    format!("{}/{region}/rejected", cfg.topic_root)
}

pub fn rejected_json(at: Ts, r: &Rejection) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "at": fmt_ts(at), "topic": r.topic, "region": r.region,
        "class": r.class, "reason": r.reason,
    }))
    .expect("serialises")
}

/// The sinks a notice needs: the notice and CAP topics, and one per email recipient.
pub fn sinks(cfg: &Config, n: &Notice) -> Vec<String> {
    let mut s = vec![SINK_NOTICE.to_string(), SINK_CAP.to_string()];
    s.extend(
        email_recipients(cfg, n)
            .into_iter()
            .map(|a| format!("{SINK_EMAIL}{a}")),
    );
    s.extend(
        cfg.webhooks
            .iter()
            .enumerate()
            .filter(|(_, w)| webhook_wants(cfg, w, n))
            .map(|(i, w)| format!("{SINK_WEBHOOK}{}", webhook_name(i, w))),
    );
    s
}

/// A webhook's name: `name`, else `{kind}-{index}`.
pub fn webhook_name(i: usize, w: &WebhookConfig) -> String {
    w.name.clone().unwrap_or_else(|| format!("{}-{i}", w.kind))
}

/// Whether a notice goes to a webhook: its `plans` and `kinds` filters (empty: all); a
/// `phone` gateway only takes `call` notices on the phone channel of a contact with a
/// phone number.
pub fn webhook_wants(cfg: &Config, w: &WebhookConfig, n: &Notice) -> bool {
    let plan_ok = w.plans.is_empty() || w.plans.iter().any(|p| p == n.plan.as_str());
    let kind_ok = w.kinds.is_empty() || w.kinds.iter().any(|k| k == n.kind.as_str());
    if !(plan_ok && kind_ok) {
        return false;
    }
    match w.kind.as_str() {
        "phone" => {
            n.kind == Kind::Call
                && n.channel.as_deref() == Some("phone")
                && n.person
                    .as_deref()
                    .and_then(|p| cfg.contact(p))
                    .is_some_and(|c| c.phone.is_some())
        }
        _ => true,
    }
}

/// Email addresses a notice goes to (CONTRACT.md "Email"): contacts whose `plans` include
/// the notice's plan, `[[email.route]]` matches, recipients that are contacts with an
/// address, and the called person of a `call`. Empty when `[email]` is absent.
pub fn email_recipients(cfg: &Config, n: &Notice) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let Some(email) = &cfg.email else {
        return out;
    };
    let plan = n.plan.as_str();
    let level_ok = |levels: &[String]| levels.is_empty() || levels.iter().any(|l| l == &n.level);
    for c in &cfg.contacts {
        let Some(addr) = &c.email else { continue };
        let by_plan = c.plans.iter().any(|p| p == plan) && level_ok(&c.levels);
        let named = n.recipients.iter().any(|r| r == &c.id);
        let called = n.kind == Kind::Call && n.person.as_deref() == Some(c.id.as_str());
        if by_plan || named || called {
            out.insert(addr.clone());
        }
    }
    let units: BTreeSet<&str> = n
        .recipients
        .iter()
        .map(|r| {
            cfg.contacts
                .iter()
                .find(|c| &c.id == r)
                .map(|c| c.unit.as_str())
                .unwrap_or(r.as_str())
        })
        .collect();
    for route in &email.routes {
        let plan_ok = route.plans.is_empty() || route.plans.iter().any(|p| p == plan);
        let dept_ok = route.departments.is_empty()
            || route.departments.iter().any(|d| units.contains(d.as_str()));
        if plan_ok && level_ok(&route.levels) && dept_ok {
            out.extend(route.to.iter().cloned());
        }
    }
    out
}

/// A level in Chinese, e.g. `橙色预警`, `Ⅱ级响应`.
pub fn level_zh(level: &str) -> String {
    match level {
        "blue" => "蓝色预警".into(),
        "yellow" => "黄色预警".into(),
        "orange" => "橙色预警".into(),
        "red" => "红色预警".into(),
        "L2" => "Ⅱ级响应".into(),
        "L1" => "Ⅰ级响应".into(),
        "ozone" => "臭氧污染应对".into(),
        "so2" => "二氧化硫污染应对".into(),
        "none" => "未启动".into(),
        other => other.into(),
    }
}

/// The region's name in Chinese (its id when it has none).
fn region_name<'a>(cfg: &'a Config, id: &'a str) -> &'a str {
    cfg.regions
        .iter()
        .find(|r| r.id == id)
        .map(|r| if r.name.is_empty() { &r.id } else { &r.name })
        .map_or(id, String::as_str)
}

/// The email subject: `【{plan} {level}】{kind}：{region name}`; a termination names the
/// level that ended.
pub fn subject(cfg: &Config, n: &Notice) -> String {
    let level = match (n.kind, n.previous.as_deref()) {
        (Kind::Terminate, Some(p)) if p != "none" => format!("{}解除", level_zh(p)),
        _ => level_zh(&n.level),
    };
    let region = region_name(cfg, &n.region);
    format!(
        "【{} {}】{}：{}",
        n.plan.name_zh(),
        level,
        n.kind.name_zh(),
        region
    )
}

/// Plain-text email body.
pub fn text_body(cfg: &Config, n: &Notice) -> String {
    let mut s = format!("{}\n\n", subject(cfg, n));
    s += &format!("时间：{}\n", fmt_ts(n.at));
    s += &format!("依据：{}\n", n.clause);
    if !n.authority.is_empty() {
        s += &format!("发布单位：{}\n", n.authority);
    }
    s += &format!("原因：{}\n", n.reason);
    if let Some(t) = &n.text {
        s += &format!("\n{t}\n");
    }
    if !n.measures.is_empty() {
        s += "\n措施：\n";
        for m in &n.measures {
            s += &format!("- {}\n", value_text(m));
        }
    }
    if let (Some(call), Some(p)) = (&n.call_id, &n.person) {
        s += &format!("\n叫应：{call}（{p}）\n");
    }
    if let Some(link) = crate::daemon::ack::link(cfg, n) {
        s += &format!("收到请点击确认（回应叫应）：{link}\n");
    }
    s += &format!("\n编号：{}\n", n.id);
    s
}

/// HTML email body (the same content, escaped).
pub fn html_body(cfg: &Config, n: &Notice) -> String {
    let mut s = String::from("<!DOCTYPE html><html><head><meta charset=\"utf-8\"></head><body>");
    s += &format!("<h2>{}</h2><table>", esc(&subject(cfg, n)));
    let mut row = |k: &str, v: &str| s += &format!("<tr><th>{k}</th><td>{}</td></tr>", esc(v));
    row("时间", &fmt_ts(n.at));
    row("依据", &n.clause);
    row("发布单位", &n.authority);
    row("原因", &n.reason);
    row("编号", &n.id);
    s += "</table>";
    if let Some(t) = &n.text {
        s += &format!("<p>{}</p>", esc(t));
    }
    if !n.measures.is_empty() {
        s += "<ul>";
        for m in &n.measures {
            s += &format!("<li>{}</li>", esc(&value_text(m)));
        }
        s += "</ul>";
    }
    if let Some(link) = crate::daemon::ack::link(cfg, n) {
        s += &format!(
            "<p><a href=\"{}\">收到请点击确认（回应叫应）</a></p>",
            esc(&link)
        );
    }
    s + "</body></html>"
}

pub fn value_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Object(o) => o
            .get("text")
            .and_then(|t| t.as_str())
            .map(str::to_string)
            .unwrap_or_else(|| v.to_string()),
        _ => v.to_string(),
    }
}

/// XML / HTML escaping.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o += "&amp;",
            '<' => o += "&lt;",
            '>' => o += "&gt;",
            '"' => o += "&quot;",
            '\'' => o += "&apos;",
            c => o.push(c),
        }
    }
    o
}

fn severity(level: &str) -> &'static str {
    match level {
        "red" | "L1" => "Extreme",
        "orange" => "Severe",
        "yellow" | "L2" | "ozone" | "so2" => "Moderate",
        "blue" => "Minor",
        _ => "Unknown",
    }
}

/// The notice as a CAP 1.2 alert.
pub fn cap_xml(cfg: &Config, n: &Notice) -> String {
    let msg_type = match n.kind {
        Kind::Activate => "Alert",
        _ => "Update",
    };
    let category = match n.plan {
        crate::notice::Plan::CoalSupply => "Infra",
        crate::notice::Plan::HeavyPollution => "Env",
        crate::notice::Plan::SevereWeather => "Met",
    };
    let urgency = if n.kind.is_move() || n.kind == Kind::Call {
        "Immediate"
    } else {
        "Expected"
    };
    let mut instr = String::new();
    for m in &n.measures {
        instr += &format!("{}\n", value_text(m));
    }
    let area = region_name(cfg, &n.region);
    format!(
        concat!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n",
            "<alert xmlns=\"urn:oasis:names:tc:emergency:cap:1.2\">\n",
            "  <identifier>{id}</identifier>\n  <sender>yingji@{region}</sender>\n",
            "  <sent>{sent}</sent>\n  <status>Actual</status>\n  <msgType>{mt}</msgType>\n",
            "  <scope>Public</scope>\n  <info>\n    <language>zh-CN</language>\n",
            "    <category>{cat}</category>\n    <event>{event}</event>\n",
            "    <urgency>{urg}</urgency>\n    <severity>{sev}</severity>\n",
            "    <certainty>Likely</certainty>\n    <senderName>{auth}</senderName>\n",
            "    <headline>{head}</headline>\n    <description>{desc}</description>\n",
            "    <instruction>{instr}</instruction>\n",
            "    <parameter><valueName>kind</valueName><value>{kind}</value></parameter>\n",
            "    <parameter><valueName>level</valueName><value>{level}</value></parameter>\n",
            "    <parameter><valueName>clause</valueName><value>{clause}</value></parameter>\n",
            "    <area><areaDesc>{area}</areaDesc></area>\n  </info>\n</alert>\n"
        ),
        id = esc(&n.id),
        region = esc(&n.region),
        sent = fmt_ts(n.at),
        mt = msg_type,
        cat = category,
        event = esc(&format!("{}{}", n.plan.name_zh(), n.kind.name_zh())),
        urg = urgency,
        sev = severity(&n.level),
        auth = esc(&n.authority),
        head = esc(&subject(cfg, n)),
        desc = esc(&n.reason),
        instr = esc(instr.trim_end()),
        kind = n.kind.as_str(),
        level = esc(&n.level),
        clause = esc(&n.clause),
        area = esc(area),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::notice::Plan;

    fn notice() -> Notice {
        let mut n = Notice::new(Plan::HeavyPollution, "graded", Kind::Escalate, "orange")
            .previous("yellow")
            .clause("朔政办发〔2023〕37号 §3.4")
            .reason("PM2.5 <高> & 持续")
            .recipients(vec!["hb".into()]);
        n.id = "heavy_pollution/shuozhou/graded/7".into();
        n.region = "shuozhou".into();
        n.at = crate::time::parse_ts("2023-12-01T09:00:00+08:00").unwrap();
        n
    }

    fn cfg(extra: &str) -> Config {
        Config::from_toml(extra).unwrap().config
    }

    #[test]
    fn subject_starts_with_plan_and_level_in_chinese() {
        let s = subject(&cfg(""), &notice());
        assert!(s.starts_with("【重污染天气 橙色预警】"), "{s}");
        let mut t = notice();
        t.kind = Kind::Terminate;
        t.level = "none".into();
        t.previous = Some("red".into());
        assert!(subject(&cfg(""), &t).starts_with("【重污染天气 红色预警解除】"));
    }

    #[test]
    fn cap_is_escaped_xml_with_identifier() {
        let x = cap_xml(&cfg(""), &notice());
        assert!(x.contains("<identifier>heavy_pollution/shuozhou/graded/7</identifier>"));
        assert!(x.contains("PM2.5 &lt;高&gt; &amp; 持续"));
        assert!(x.contains("<sent>2023-12-01T09:00:00+08:00</sent>"));
        assert!(x.contains("<severity>Severe</severity>"));
    }

    #[test]
    fn email_recipients_from_plans_routes_recipients_and_calls() {
        let c = cfg(r#"
[email]
[[email.route]]
plans = ["heavy_pollution"]
levels = ["orange", "red"]
to = ["route@x.org"]
[[email.route]]
plans = ["coal_supply"]
to = ["coal@x.org"]
[[contact]]
id = "hb"
name = "李四"
unit = "市生态环境局"
email = "hb@x.org"
[[contact]]
id = "duty"
name = "张三"
unit = "市应急管理局"
email = "duty@x.org"
plans = ["heavy_pollution"]
[[contact]]
id = "other"
name = "王五"
unit = "市气象局"
email = "other@x.org"
plans = ["severe_weather"]
"#);
        let got: Vec<String> = email_recipients(&c, &notice()).into_iter().collect();
        assert_eq!(got, ["duty@x.org", "hb@x.org", "route@x.org"]);
        let mut call = Notice::new(Plan::SevereWeather, "rainstorm", Kind::Call, "red");
        call.person = Some("hb".into());
        let got: Vec<String> = email_recipients(&c, &call).into_iter().collect();
        assert_eq!(got, ["hb@x.org", "other@x.org"]);
        assert!(email_recipients(&cfg(""), &notice()).is_empty());
        assert_eq!(sinks(&cfg(""), &notice()), [SINK_NOTICE, SINK_CAP]);
    }

    #[test]
    fn call_emails_carry_the_signed_ack_link() {
        crate::daemon::ack::install_key(b"render-test-key-0123456789".to_vec());
        let key = crate::daemon::ack::key().unwrap();
        let c = cfg("[http]\npublic_url = \"https://yj.example.org\"");
        let mut call = Notice::new(Plan::SevereWeather, "rainstorm", Kind::Call, "red");
        call.region = "shuozhou".into();
        call.call_id = Some("w1/1".into());
        call.person = Some("yjj".into());
        let t = call.at.timestamp().to_string();
        let sig = crate::daemon::ack::sign(key, &["w1/1", "yjj", &t]);
        let link = format!("https://yj.example.org/ack?call_id=w1%2F1&person=yjj&t={t}&sig={sig}");
        assert!(
            text_body(&c, &call).contains(&link),
            "{}",
            text_body(&c, &call)
        );
        assert!(html_body(&c, &call).contains(&format!("href=\"{}\"", esc(&link))));
        assert!(
            !text_body(&c, &notice()).contains("/ack?"),
            "no link but for calls"
        );
    }
}
