//! What the daemon publishes, rendered from notices: topics, the state document, CAP 1.2
//! XML, rejection messages, email recipients, subjects and bodies. Pure functions.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;

use crate::config::{Config, Contact, WebhookConfig, WebhookKind};
use crate::daemon::ack::AckKey;
use crate::daemon::sink::Sink;
use crate::input::Rejection;
use crate::notice::{Kind, Notice, Plan};
use crate::time::{fmt_ts, time_zh, Ts};
use crate::wording::Said;

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

/// Whether a notice is sent as CAP (src/daemon/cap.rs says which kinds and why).
pub fn carried(n: &Notice) -> bool {
    n.kind.is_move()
        || matches!(
            n.kind,
            Kind::Proposal | Kind::Call | Kind::CallAck | Kind::CallUnreached
        )
}

/// The sinks a notice needs, in this order: the notice topic, the CAP topic (when
/// [`carried`]), one per email recipient, one per webhook that wants it.
pub fn sinks(cfg: &Config, n: &Notice) -> Vec<Sink> {
    let mut s = vec![Sink::Notice];
    if carried(n) {
        s.push(Sink::Cap);
    }
    s.extend(email_recipients(cfg, n).into_iter().map(Sink::Email));
    s.extend(
        cfg.webhooks
            .iter()
            .enumerate()
            .filter(|(_, w)| webhook_wants(cfg, w, n))
            .map(|(i, w)| Sink::Webhook(webhook_name(i, w))),
    );
    s
}

/// A webhook's name: `name`, else `{kind}-{index}`.
pub fn webhook_name(i: usize, w: &WebhookConfig) -> String {
    w.name.clone().unwrap_or_else(|| format!("{}-{i}", w.kind))
}

/// Whether a notice goes to a webhook: its `plans` and `kinds` filters (empty: all); a
/// `phone` gateway only takes `call` notices on the phone channel of a contact with a
/// phone number (none in drill mode), a `wecom_app` only `call` notices on the WeChat
/// channel of a contact with a WeCom user id.
pub fn webhook_wants(cfg: &Config, w: &WebhookConfig, n: &Notice) -> bool {
    let plan_ok = w.plans.is_empty() || w.plans.contains(&n.plan);
    let kind_ok = w.kinds.is_empty() || w.kinds.contains(&n.kind);
    if !(plan_ok && kind_ok) {
        return false;
    }
    let contact = || n.person.as_deref().and_then(|p| cfg.contact(p));
    match w.kind {
        // Drill mode: nothing goes to a phone gateway (CONTRACT.md).
        WebhookKind::Phone => {
            !cfg.drill
                && n.kind == Kind::Call
                && n.channel.as_deref() == Some("phone")
                && contact().is_some_and(|c| c.phone.is_some())
        }
        // A WeCom application message goes to the called person alone (叫应 "点对点").
        WebhookKind::WecomApp => {
            n.kind == Kind::Call
                && n.channel.as_deref() == Some("wechat")
                && contact().is_some_and(|c| c.wechat.is_some())
        }
        WebhookKind::Wecom | WebhookKind::Generic => true,
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
    let level_ok = |levels: &[String]| levels.is_empty() || levels.iter().any(|l| l == &n.level);
    for c in &cfg.contacts {
        let Some(addr) = &c.email else { continue };
        let by_plan = c.plans.contains(&n.plan) && level_ok(&c.levels);
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
        let plan_ok = route.plans.is_empty() || route.plans.contains(&n.plan);
        let dept_ok = route.departments.is_empty()
            || route.departments.iter().any(|d| units.contains(d.as_str()));
        if plan_ok && level_ok(&route.levels) && dept_ok {
            out.extend(route.to.iter().cloned());
        }
    }
    out
}

/// The region's name in Chinese (its id when it has none).
pub fn region_name<'a>(cfg: &'a Config, id: &'a str) -> &'a str {
    cfg.regions
        .iter()
        .find(|r| r.id == id)
        .map(|r| if r.name.is_empty() { &r.id } else { &r.name })
        .map_or(id, String::as_str)
}

/// `【演练】` in drill mode (CONTRACT.md: every subject and message starts with it).
pub fn drill(cfg: &Config) -> &'static str {
    if cfg.drill {
        "【演练】"
    } else {
        ""
    }
}

/// The email subject: `【{plan} {level}】{what}：{region}`, e.g.
/// `【重污染天气 橙色预警】升级：朔州市`; a termination names the level that ended.
pub fn subject(cfg: &Config, n: &Notice) -> String {
    let s = Said::of(n);
    format!(
        "{}{}{}：{}",
        drill(cfg),
        s.tag(),
        s.kind_zh(),
        region_name(cfg, &n.region)
    )
}

/// Who reads a rendering: a group (the duty-room robot, CAP, the generic webhook) or one
/// person (their email, their WeCom application message, their phone call). A person's
/// own unit's measures or tasks come first, and only a message to the called person alone
/// carries the acknowledgement link (CONTRACT.md "Acknowledgement links").
#[derive(Clone, Copy)]
pub enum Reader<'a> {
    Group,
    Contact(&'a Contact),
    /// An email address that may belong to no contact (`[[email.route]]`).
    Address(&'a str),
}

impl<'a> Reader<'a> {
    /// The reader of an email to `addr`.
    pub fn email(cfg: &'a Config, addr: &'a str) -> Reader<'a> {
        match cfg
            .contacts
            .iter()
            .find(|c| c.email.as_deref() == Some(addr))
        {
            Some(c) => Reader::Contact(c),
            None => Reader::Address(addr),
        }
    }

    /// Units the reader belongs to (every contact with that address).
    fn units(self, cfg: &'a Config) -> Vec<&'a str> {
        match self {
            Reader::Group => Vec::new(),
            Reader::Contact(c) => match &c.email {
                Some(a) => Reader::Address(a).units(cfg),
                None => vec![c.unit.as_str()],
            },
            Reader::Address(a) => cfg
                .contacts
                .iter()
                .filter(|c| c.email.as_deref() == Some(a))
                .map(|c| c.unit.as_str())
                .collect(),
        }
    }

    /// Whether this reader is the called person of a call notice, alone.
    fn is_called(self, n: &Notice) -> bool {
        let Some(p) = n.person.as_deref() else {
            return false;
        };
        match self {
            Reader::Contact(c) => c.id == p,
            _ => false,
        }
    }
}

/// The acknowledgement link of a call, for its called person alone, signed with `links`
/// (`None`: no link, as in tools that do not serve them).
pub fn personal_link(
    cfg: &Config,
    links: Option<&AckKey>,
    n: &Notice,
    r: Reader,
) -> Option<String> {
    if n.kind == Kind::Call && r.is_called(n) {
        links?.url(cfg, n)
    } else {
        None
    }
}

/// A measure or task line of a notice, with its labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub unit: String,
    pub category: String,
    pub heading: String,
    pub text: String,
}

impl Item {
    /// `市公安局交警支队（移动源减排措施）：公安交警部门严格车辆管控…`.
    pub fn line(&self) -> String {
        // "市指挥部办公室和各成员单位在预案启动期间…": the text names its unit itself.
        let mut s = if self.text.starts_with(&self.unit) {
            String::new()
        } else {
            self.unit.clone()
        };
        if !self.heading.is_empty() {
            s += &format!("（{}）", self.heading);
        }
        if !s.is_empty() {
            s += "：";
        }
        s + &self.text
    }
}

/// A titled group of items; numbers run on across groups.
#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    pub title: String,
    pub items: Vec<Item>,
}

fn items(n: &Notice) -> Vec<Item> {
    let get = |v: &serde_json::Value, k: &str| {
        v.get(k).and_then(|x| x.as_str()).unwrap_or("").to_string()
    };
    n.measures
        .iter()
        .map(|m| match m {
            serde_json::Value::String(s) => Item {
                unit: String::new(),
                category: String::new(),
                heading: String::new(),
                text: s.clone(),
            },
            v => Item {
                unit: get(v, "unit"),
                category: get(v, "category"),
                heading: get(v, "heading"),
                text: get(v, "text"),
            },
        })
        .collect()
}

/// The plan's title of a measure category (37号 §4.2: (1)(2)(3)).
fn category_title(c: &str) -> String {
    match c {
        "健康防护" => "健康防护引导措施".into(),
        "倡议性" => "倡议性减排措施".into(),
        "强制性" => "强制性减排措施".into(),
        "应急响应" => "各县(市、区)应急响应".into(),
        "" => "措施".into(),
        other => other.into(),
    }
}

/// The measures (pollution) or member-unit tasks (coal) of a notice in sections: the
/// reader's own unit's first (coal: with the every-unit duty of §5.2.1(1)), under its
/// name; the rest after, by category (pollution) or as the other units' tasks (coal).
pub fn sections(cfg: &Config, n: &Notice, r: Reader) -> Vec<Section> {
    let all = items(n);
    if all.is_empty() {
        return Vec::new();
    }
    let units = r.units(cfg);
    let coal = n.plan == Plan::CoalSupply;
    let every = crate::plans::coal_supply::EVERY_UNIT;
    let own = |i: &Item| {
        units.contains(&i.unit.as_str()) || (coal && i.unit == every && !units.is_empty())
    };
    let mut out = Vec::new();
    let mine: Vec<Item> = all.iter().filter(|i| own(i)).cloned().collect();
    let what = if coal { "任务" } else { "措施" };
    if !mine.is_empty() {
        let names: Vec<&str> = units
            .iter()
            .copied()
            .filter(|u| mine.iter().any(|i| &i.unit == u))
            .collect();
        let mut names = names;
        names.dedup();
        out.push(Section {
            title: format!("本单位{what}（{}）", names.join("、")),
            items: mine,
        });
    }
    let rest: Vec<Item> = all.into_iter().filter(|i| !own(i)).collect();
    if coal {
        if !rest.is_empty() {
            let title = if out.is_empty() {
                "各成员单位任务"
            } else {
                "其他成员单位任务"
            };
            out.push(Section {
                title: title.into(),
                items: rest,
            });
        }
        return out;
    }
    for i in rest {
        let title = category_title(&i.category);
        match out.last_mut() {
            Some(s) if s.title == title => s.items.push(i),
            _ => out.push(Section {
                title,
                items: vec![i],
            }),
        }
    }
    out
}

/// "张三（市应急管理局）"; a contact unknown to the config is "被叫应人".
pub fn who(cfg: &Config, id: &str) -> String {
    match cfg.contact(id) {
        Some(c) if !c.name.is_empty() && !c.unit.is_empty() => format!("{}（{}）", c.name, c.unit),
        Some(c) if !c.name.is_empty() => c.name.clone(),
        _ => "被叫应人".into(),
    }
}

fn channel_zh(c: &str) -> &'static str {
    match c {
        "wechat" => "微信",
        _ => "电话",
    }
}

fn is_call_kind(k: Kind) -> bool {
    matches!(k, Kind::Call | Kind::CallAck | Kind::CallUnreached)
}

/// The labelled lines every rendering shows, in order: (label, value).
pub fn facts(cfg: &Config, n: &Notice) -> Vec<(&'static str, String)> {
    let mut f = vec![
        ("时间", time_zh(n.at)),
        ("地区", region_name(cfg, &n.region).to_string()),
    ];
    if !n.clause.is_empty() {
        f.push(("依据", n.clause.clone()));
    }
    if !n.authority.is_empty() {
        f.push(("发布单位", n.authority.clone()));
    }
    if is_call_kind(n.kind) {
        if let Some(p) = &n.person {
            f.push(("叫应对象", who(cfg, p)));
        }
        if let (Some(c), Some(a)) = (&n.channel, n.attempt) {
            f.push(("叫应方式", format!("{}，第{a}次叫应", channel_zh(c))));
        }
    }
    f.push(("内容", n.reason.clone()));
    f
}

/// What a call asks of the person (§四.3): reply 收到.
pub const ASK_REPLY: &str = "收到后请回复“收到”。";

/// Whether a rendering for `r` adds the ask to reply: a call to its person whose text
/// does not already say it.
fn asks(n: &Notice, r: Reader) -> bool {
    n.kind == Kind::Call
        && r.is_called(n)
        && !n.text.as_deref().unwrap_or("").contains("回复“收到”")
}

/// Plain-text email body for the reader at `to`.
pub fn text_body(cfg: &Config, links: Option<&AckKey>, n: &Notice, to: &str) -> String {
    text_for(cfg, links, n, Reader::email(cfg, to))
}

/// What units reported back (PLANS.md §5.2), quoted, for follow-up and final reports:
/// `evidence.feedback` (per unit, each report's time, by, text, enterprises, cut) and
/// `evidence.overdue_units`. Only what was reported is shown; nothing is said of a unit
/// that did not report except that it is overdue. Empty when the notice has neither.
pub fn feedback(cfg: &Config, n: &Notice) -> Vec<String> {
    use serde_json::Value;
    let str_of = |v: &Value, keys: &[&str]| {
        keys.iter()
            .find_map(|k| v.get(*k).and_then(Value::as_str))
            .map(str::to_string)
    };
    let mut out = Vec::new();
    for u in n.evidence["feedback"].as_array().into_iter().flatten() {
        let unit = str_of(u, &["unit"]).unwrap_or_default();
        for rep in u["reports"].as_array().into_iter().flatten() {
            let mut line = format!("{unit}：");
            if let Some(t) =
                str_of(rep, &["time", "at", "ts"]).and_then(|t| crate::time::parse_ts(&t).ok())
            {
                line += &time_zh(t);
            }
            if let Some(by) = str_of(rep, &["by"]) {
                let by = match cfg.contact(&by) {
                    Some(c) if !c.name.is_empty() => c.name.clone(),
                    _ => by,
                };
                line += &format!("（{by}）");
            }
            line += &format!("报：{}", str_of(rep, &["text"]).unwrap_or_default());
            let firms: Vec<&str> = rep["enterprises"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            if !firms.is_empty() {
                line += &format!("；限产、停产企业和停工工地：{}", firms.join("、"));
            }
            if let Some(c) = ["cut_pct", "cut"].iter().find_map(|k| rep[*k].as_f64()) {
                line += &format!("；减排比例{c}%");
            }
            out.push(line);
        }
    }
    let overdue: Vec<&str> = n.evidence["overdue_units"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str())
        .collect();
    if !overdue.is_empty() {
        out.push(format!("逾期未报单位：{}", overdue.join("、")));
    }
    out
}

/// Plain text of a notice for a reader.
pub fn text_for(cfg: &Config, links: Option<&AckKey>, n: &Notice, r: Reader) -> String {
    let mut s = format!("{}\n\n", subject(cfg, n));
    for (k, v) in facts(cfg, n) {
        s += &format!("{k}：{v}\n");
    }
    if let Some(t) = &n.text {
        s += &format!("\n{t}\n");
    }
    if asks(n, r) {
        s += &format!("\n{ASK_REPLY}\n");
    }
    if let Some(link) = personal_link(cfg, links, n, r) {
        s += &format!("\n收到请点击确认：{link}\n");
    }
    let fb = feedback(cfg, n);
    if !fb.is_empty() {
        s += "\n各单位落实情况（上报原文）：\n";
        for l in fb {
            s += &format!("- {l}\n");
        }
    }
    let mut k = 0;
    for sec in sections(cfg, n, r) {
        s += &format!("\n{}：\n", sec.title);
        for i in &sec.items {
            k += 1;
            s += &format!("{k}. {}\n", i.line());
        }
    }
    s
}

/// HTML email body (the same content, escaped) for the reader at `to`.
pub fn html_body(cfg: &Config, links: Option<&AckKey>, n: &Notice, to: &str) -> String {
    let r = Reader::email(cfg, to);
    let mut s = String::from("<!DOCTYPE html><html><head><meta charset=\"utf-8\"></head><body>");
    s += &format!("<h2>{}</h2><table>", esc(&subject(cfg, n)));
    for (k, v) in facts(cfg, n) {
        s += &format!("<tr><th>{k}</th><td>{}</td></tr>", esc(&v));
    }
    s += "</table>";
    if let Some(t) = &n.text {
        s += &format!("<p>{}</p>", esc(t));
    }
    if asks(n, r) {
        s += &format!("<p>{}</p>", esc(ASK_REPLY));
    }
    if let Some(link) = personal_link(cfg, links, n, r) {
        s += &format!("<p><a href=\"{}\">收到请点击确认</a></p>", esc(&link));
    }
    let fb = feedback(cfg, n);
    if !fb.is_empty() {
        s += "<h3>各单位落实情况（上报原文）</h3><ul>";
        for l in fb {
            s += &format!("<li>{}</li>", esc(&l));
        }
        s += "</ul>";
    }
    let mut k = 0;
    for sec in sections(cfg, n, r) {
        s += &format!("<h3>{}</h3><ol start=\"{}\">", esc(&sec.title), k + 1);
        for i in &sec.items {
            k += 1;
            s += &format!("<li><b>{}</b>{}</li>", esc(&label(i)), esc(&i.text));
        }
        s += "</ol>";
    }
    s + "</body></html>"
}

/// The label of an item in bold before its text: `市公安局：`.
fn label(i: &Item) -> String {
    let full = i.line();
    full[..full.len() - i.text.len()].to_string()
}

/// WeCom refuses markdown over 4096 bytes: a report's text is cut to this many bytes,
/// and the measure list is cut after the item that passes it.
pub const MAX_TEXT: usize = 2500;

/// `t` cut to at most `max` bytes on a character boundary, with `…` when cut.
pub fn cut(t: &str, max: usize) -> String {
    if t.len() <= max {
        return t.to_string();
    }
    let mut i = max;
    while !t.is_char_boundary(i) {
        i -= 1;
    }
    format!("{}…", &t[..i])
}

/// The WeCom text (markdown for the group robot, plain for an application message to one
/// person): title, facts, text, for the called person the ask and the link, and the
/// measures by section, numbered.
pub fn wecom_text(
    cfg: &Config,
    links: Option<&AckKey>,
    n: &Notice,
    r: Reader,
    markdown: bool,
) -> String {
    let mut s = if markdown {
        format!("### {}\n", subject(cfg, n))
    } else {
        format!("{}\n", subject(cfg, n))
    };
    for (k, v) in facts(cfg, n) {
        let v = if k == "叫应对象" && markdown {
            format!("**{v}**")
        } else {
            v
        };
        s += &format!("{}{k}：{v}\n", if markdown { "> " } else { "" });
    }
    if let Some(t) = &n.text {
        s += &format!("\n{}\n", cut(t, MAX_TEXT));
    }
    if asks(n, r) {
        s += &format!("\n{ASK_REPLY}\n");
    }
    if let Some(l) = personal_link(cfg, links, n, r) {
        s += &if markdown {
            format!("\n[收到请点击确认]({l})\n")
        } else {
            format!("收到请点击确认：{l}\n")
        };
    }
    let fb = feedback(cfg, n);
    if !fb.is_empty() {
        s += "\n各单位落实情况（上报原文）：\n";
        s += &cut(
            &fb.iter().map(|l| format!("- {l}\n")).collect::<String>(),
            1200,
        );
    }
    let mut k = 0;
    let mut budget = 3900usize.saturating_sub(s.len());
    'out: for sec in sections(cfg, n, r) {
        s += &format!("\n{}：\n", sec.title);
        for i in &sec.items {
            k += 1;
            let line = format!("{k}. {}\n", i.line());
            if line.len() > budget {
                s += "……（其余措施见邮件）\n";
                break 'out;
            }
            budget -= line.len();
            s += &line;
        }
    }
    s
}

/// The phone script of a call, made for listening: hazard and colour first (twice), the
/// person by name, the call's text without symbols, codes or numbers in brackets, and the
/// ask to reply 收到.
pub fn phone_script(cfg: &Config, n: &Notice) -> String {
    let level = Said::of(n).level.name_zh();
    let name = n
        .person
        .as_deref()
        .and_then(|p| cfg.contact(p))
        .map(|c| c.name.clone())
        .filter(|x| !x.is_empty())
        .map_or_else(|| "您好".to_string(), |x| format!("{x}您好"));
    let body = n.text.as_deref().unwrap_or(&n.reason);
    let mut s = format!(
        "{}{level}，{level}。{name}。{}。",
        if cfg.drill { "演练，演练。" } else { "" },
        for_listening(body)
    );
    if n.kind == Kind::Call && !body.contains("回复“收到”") {
        s += "收到后请回复收到。";
    }
    s + "重复一遍，" + &level + "。谢谢。"
}

/// A text for a speech gateway: a bracketed aside (a warning's number, a section) is left
/// out, quotation marks are dropped, other brackets and line ends become pauses.
pub fn for_listening(t: &str) -> String {
    let mut o = String::with_capacity(t.len());
    let mut depth = 0;
    for c in t.chars() {
        match c {
            '(' | '（' if depth > 0 => depth += 1,
            ')' | '）' if depth > 0 => depth -= 1,
            _ if depth > 0 => {}
            '(' | '（' => depth = 1,
            '“' | '”' | '"' | '《' | '》' => {}
            '【' | '】' | '\n' => {
                if !o.is_empty() && !o.ends_with(['，', '。']) {
                    o.push('，')
                }
            }
            ':' | '：' => o.push('，'),
            ',' => o.push('，'),
            ';' => o.push('；'),
            c => o.push(c),
        }
    }
    o.trim_end_matches(['，', '。']).to_string()
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
        assert_eq!(s, "【重污染天气 橙色预警】升级：朔州市");
        let mut t = notice();
        t.kind = Kind::Terminate;
        t.level = "none".into();
        t.previous = Some("red".into());
        assert_eq!(subject(&cfg(""), &t), "【重污染天气 红色预警】解除：朔州市");
        assert!(subject(&cfg("drill = true"), &t).starts_with("【演练】【重污染天气 红色预警】"));
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
        assert_eq!(sinks(&cfg(""), &notice()), [Sink::Notice, Sink::Cap]);
        let mut report = notice();
        report.kind = Kind::ReportFollowup;
        assert_eq!(
            sinks(&cfg(""), &report),
            [Sink::Notice],
            "reports are not CAP"
        );
    }

    #[test]
    fn only_the_called_persons_own_email_carries_the_ack_link() {
        let key = AckKey::new(b"render-test-key-0123456789".to_vec());
        let links = Some(&key);
        let c = cfg(r#"
[http]
public_url = "https://yj.example.org"
[[contact]]
id = "yjj"
name = "张三"
unit = "市应急管理局"
email = "yjj@x.org"
[[contact]]
id = "duty"
name = "李四"
unit = "市气象局"
email = "duty@x.org"
plans = ["severe_weather"]
"#);
        let mut call = Notice::new(Plan::SevereWeather, "rainstorm", Kind::Call, "red");
        call.region = "shuozhou".into();
        call.call_id = Some("w1/1".into());
        call.person = Some("yjj".into());
        let t = call.at.timestamp().to_string();
        let sig = key.sign(&["w1/1", "yjj", &t]);
        let link = format!("https://yj.example.org/ack?call_id=w1%2F1&person=yjj&t={t}&sig={sig}");
        let own = text_body(&c, links, &call, "yjj@x.org");
        assert!(own.contains(&link), "{own}");
        assert!(own.contains("请回复“收到”"), "{own}");
        assert!(
            html_body(&c, links, &call, "yjj@x.org").contains(&format!("href=\"{}\"", esc(&link)))
        );
        let other = text_body(&c, links, &call, "duty@x.org");
        assert!(!other.contains("/ack?"), "a copy to the duty room: {other}");
        assert!(other.contains("叫应对象：张三（市应急管理局）"), "{other}");
        assert!(!text_body(&c, links, &notice(), "yjj@x.org").contains("/ack?"));
        assert!(!wecom_text(&c, links, &call, Reader::Group, true).contains("/ack?"));
        // No key (a tool that serves no links): no link, even for the called person.
        assert!(!text_body(&c, None, &call, "yjj@x.org").contains("/ack?"));
    }

    /// PLANS.md §5.2: a report quotes what units reported and names the overdue ones,
    /// with times read as people read them and reporters by name.
    #[test]
    fn reports_quote_what_units_reported() {
        let c = cfg("[[contact]]\nid = \"ny\"\nname = \"王能源\"\nunit = \"市能源局\"\n");
        let mut n = Notice::new(Plan::CoalSupply, "supply", Kind::ReportFollowup, "L2");
        n.region = "shuozhou".into();
        n.evidence = serde_json::json!({
            "feedback": [{"unit": "市能源局", "reports": [{"time": "2023-12-01T16:05:00+08:00",
                "by": "ny", "text": "已组织32座煤矿满负荷生产", "enterprises": ["甲煤矿"],
                "cut_pct": 20}]}],
            "overdue_units": ["市交通运输局"],
        });
        let t = text_for(&c, None, &n, Reader::Group);
        assert!(t.contains("- 市能源局：12月1日16时05分（王能源）报：已组织32座煤矿满负荷生产；限产、停产企业和停工工地：甲煤矿；减排比例20%\n"), "{t}");
        assert!(t.contains("- 逾期未报单位：市交通运输局\n"), "{t}");
        assert!(wecom_text(&c, None, &n, Reader::Group, true).contains("已组织32座煤矿满负荷生产"));
        n.evidence = serde_json::json!({});
        assert!(!text_for(&c, None, &n, Reader::Group).contains("落实情况"));
    }

    #[test]
    fn measures_keep_unit_and_category_and_number_on() {
        let c = cfg(r#"
[[contact]]
id = "jj"
name = "赵六"
unit = "市公安局交警支队"
email = "jj@x.org"
"#);
        let mut n = notice();
        n.measures = crate::plans::heavy_pollution::measures::for_level(
            &c,
            crate::plans::heavy_pollution::types::Lv::Orange,
        );
        let t = text_body(&c, None, &n, "jj@x.org");
        let own = t.find("本单位措施（市公安局交警支队）：").expect(&t);
        let health = t.find("健康防护引导措施：").expect(&t);
        assert!(own < health, "own measures first: {t}");
        assert!(
            t.contains("1. 市公安局交警支队（移动源减排措施）：电力")
                || t.contains("1. 市公安局交警支队（移动源减排措施）：公安交警部门"),
            "{t}"
        );
        let total = n.measures.len();
        assert!(
            t.contains(&format!("\n{total}. ")),
            "numbers run on to {total}: {t}"
        );
        assert!(!t.contains("\n①"));
    }
}
