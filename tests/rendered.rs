//! What people receive, rendered from every notice the scenarios make:
//!
//! - every kind of every plan at every level the scenarios reach is rendered (email subject,
//!   text and HTML, WeCom group text, WeCom application text and phone script for calls,
//!   CAP) into `tests/snapshots/{plan}/{kind}.{level}.txt` and compared with the committed
//!   file (`UPDATE_SNAPSHOTS=1` rewrites them; review the diff);
//! - no text meant for people contains one of the product's ASCII codes (plan, kind,
//!   track, level, channel), an ISO timestamp or date, or a contact id;
//! - every CAP message of every scenario validates against the OASIS CAP 1.2 schema
//!   (`xmllint --schema`, Debian libxml2-utils).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use yingji::config::Config;
use yingji::daemon::ack::AckKey;
use yingji::daemon::render::{self, Reader};
use yingji::daemon::{cap, webhook};
use yingji::notice::{Kind, Notice, Plan};

/// The acknowledgement-link key of every rendering here (one key: the first install wins,
/// whichever test runs first).
const KEY: &[u8] = b"snapshot-test-key-0123456789";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// (scenario name, its config, its notices), every scenario in name order.
fn replayed() -> Vec<(String, Arc<Config>, Vec<Notice>)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("scenarios"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == "jsonl")
                && !p.to_string_lossy().ends_with(".expected.jsonl")
        })
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|s| {
            let toml = s.with_extension("toml");
            let mut cfg = if toml.exists() {
                Config::load(Some(&toml)).unwrap().config
            } else {
                Config::from_toml("").unwrap().config
            };
            cfg.http.public_url = "https://yingji.example.org".into();
            let cfg = Arc::new(cfg);
            let text = std::fs::read_to_string(&s).unwrap();
            let ns = yingji::replay::replay_str(&cfg, &text).unwrap();
            let name = s.file_stem().unwrap().to_string_lossy().to_string();
            (name, cfg, ns)
        })
        .collect()
}

/// The reader of a notice's sample email: the called person of a call kind, else its
/// first recipient that is a contact, else the duty room's address.
fn reader<'a>(cfg: &'a Config, n: &'a Notice) -> Reader<'a> {
    n.person
        .iter()
        .chain(n.recipients.iter())
        .find_map(|id| cfg.contact(id))
        .map_or(Reader::Address("duty-room@example.org"), Reader::Contact)
}

/// Every text of a notice meant for people: (what, text).
fn texts(cfg: &Config, n: &Notice) -> Vec<(&'static str, String)> {
    let key = AckKey::new(KEY);
    let links = Some(&key);
    let r = reader(cfg, n);
    let addr = match r {
        Reader::Contact(c) => c.email.clone().unwrap_or_default(),
        Reader::Address(a) => a.to_string(),
        Reader::Group => String::new(),
    };
    let mut t = vec![
        ("邮件主题", render::subject(cfg, n)),
        (
            "邮件正文",
            match r {
                Reader::Contact(_) => render::text_for(cfg, links, n, r),
                _ => render::text_body(cfg, links, n, &addr),
            },
        ),
        (
            "企业微信群机器人",
            render::wecom_text(cfg, links, n, Reader::Group, true),
        ),
    ];
    if n.kind == Kind::Call {
        if let Some(b) = webhook::app_json(cfg, links, n, 1000002) {
            t.push((
                "企业微信应用消息",
                b["text"]["content"].as_str().unwrap().into(),
            ));
        }
        t.push(("电话语音", render::phone_script(cfg, n)));
    }
    t
}

/// The product's own ASCII codes that must never reach a person.
fn codes() -> BTreeSet<&'static str> {
    [
        "coal_supply",
        "heavy_pollution",
        "severe_weather",
        "supply",
        "graded",
        "ozone",
        "so2",
        "rainstorm",
        "blizzard",
        "thunderstorm_gale",
        "L1",
        "L2",
        "none",
        "blue",
        "yellow",
        "orange",
        "red",
        "wechat",
        "phone",
        "activate",
        "escalate",
        "downgrade",
        "terminate",
        "report_first",
        "report_followup",
        "report_final",
        "proposal",
        "reminder",
        "target_missed",
        "beyond_level1",
        "call",
        "call_ack",
        "call_unreached",
        "data_gap",
        "data_resumed",
        "suggestion",
    ]
    .into()
}

/// The ASCII words of a text (links removed: a personal ack link is meant to be there).
fn words(t: &str) -> Vec<String> {
    let no_links: String = t
        .split(|c: char| c.is_whitespace() || matches!(c, '(' | ')' | '：'))
        .filter(|w| !w.contains("://"))
        .collect::<Vec<_>>()
        .join(" ");
    no_links
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// An ISO 8601 date (`2023-12-01`), with or without a time.
fn has_iso_date(t: &str) -> bool {
    let b = t.as_bytes();
    b.windows(10).any(|w| {
        w[..4].iter().all(u8::is_ascii_digit)
            && w[4] == b'-'
            && w[5..7].iter().all(u8::is_ascii_digit)
            && w[7] == b'-'
            && w[8..10].iter().all(u8::is_ascii_digit)
    })
}

fn problems(cfg: &Config, n: &Notice, what: &str, t: &str) -> Vec<String> {
    let mut out = Vec::new();
    let codes = codes();
    // A contact whose configured name is its id is printed by name, rightly.
    let ids: BTreeSet<&str> = cfg
        .contacts
        .iter()
        .filter(|c| c.name != c.id)
        .map(|c| c.id.as_str())
        .collect();
    for w in words(t) {
        if codes.contains(w.as_str()) {
            out.push(format!("{} {what}: code {w:?} in {t:?}", n.id));
        }
        if ids.contains(w.as_str()) {
            out.push(format!("{} {what}: contact id {w:?} in {t:?}", n.id));
        }
    }
    if has_iso_date(t) {
        out.push(format!("{} {what}: ISO date in {t:?}", n.id));
    }
    out
}

fn snapshot(cfg: &Config, n: &Notice, earlier: &[Notice]) -> String {
    let mut s = format!(
        "# {} {} {} ({})\n",
        n.plan.as_str(),
        n.kind.as_str(),
        n.level,
        n.id
    );
    for (what, t) in texts(cfg, n) {
        s += &format!("\n== {what} ==\n{t}\n");
    }
    let to = match reader(cfg, n) {
        Reader::Contact(c) => c
            .email
            .clone()
            .unwrap_or_else(|| "duty-room@example.org".into()),
        _ => "duty-room@example.org".into(),
    };
    s += &format!(
        "\n== 邮件HTML ==\n{}\n",
        render::html_body(cfg, Some(&AckKey::new(KEY)), n, &to)
    );
    if render::carried(n) {
        s += &format!("\n== CAP ==\n{}", cap::xml(cfg, n, earlier));
    }
    s
}

#[test]
fn every_kind_and_level_renders_in_the_plans_words() {
    let update = std::env::var_os("UPDATE_SNAPSHOTS").is_some();
    let dir = root().join("tests/snapshots");
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    let mut bad = Vec::new();
    let mut checked = 0;
    for (_, cfg, ns) in replayed() {
        for (i, n) in ns.iter().enumerate() {
            for (what, t) in texts(&cfg, n) {
                checked += 1;
                bad.extend(problems(&cfg, n, what, &t));
            }
            let level = match (n.level.as_str(), n.previous.as_deref()) {
                ("none", Some(p)) => format!("none-from-{p}"),
                (l, _) => l.to_string(),
            };
            let key = format!("{}/{}.{level}.txt", n.plan.as_str(), n.kind.as_str());
            seen.entry(key)
                .or_insert_with(|| snapshot(&cfg, n, &ns[..i]));
        }
    }
    bad.truncate(40);
    assert!(
        bad.is_empty(),
        "texts for people with codes:\n{}",
        bad.join("\n")
    );
    assert!(checked > 1000, "only {checked} texts checked");
    let mut stale = Vec::new();
    for (key, text) in &seen {
        let p = dir.join(key);
        if update {
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, text).unwrap();
        } else if std::fs::read_to_string(&p).ok().as_deref() != Some(text.as_str()) {
            stale.push(key.clone());
        }
    }
    // A snapshot no scenario produces any more is stale too.
    for plan in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        for f in std::fs::read_dir(plan.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let key = format!(
                "{}/{}",
                plan.file_name().to_string_lossy(),
                f.file_name().to_string_lossy()
            );
            if !seen.contains_key(&key) {
                if update {
                    std::fs::remove_file(f.path()).unwrap();
                } else {
                    stale.push(key);
                }
            }
        }
    }
    assert!(
        stale.is_empty(),
        "snapshots differ (UPDATE_SNAPSHOTS=1 cargo test --test rendered, then review the diff): {stale:?}"
    );
    for plan in ["coal_supply", "heavy_pollution", "severe_weather"] {
        assert!(seen.keys().any(|k| k.starts_with(plan)), "{plan}");
    }
}

fn xmllint() -> Option<PathBuf> {
    let out = std::process::Command::new("xmllint")
        .arg("--version")
        .output()
        .ok()?;
    out.status.success().then(|| PathBuf::from("xmllint"))
}

#[test]
fn every_cap_message_validates_against_the_oasis_schema() {
    let lint =
        xmllint().expect("xmllint is needed (Debian libxml2-utils; scripts/test.sh installs it)");
    let xsd = root().join("tests/fixtures/cap/CAP-v1.2.xsd");
    let tmp = std::env::temp_dir().join(format!("yingji-cap-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let mut files = Vec::new();
    let mut kinds = BTreeSet::new();
    for (name, cfg, ns) in replayed() {
        for drill in [false, true] {
            let mut cfg = (*cfg).clone();
            cfg.drill = drill;
            for (i, n) in ns.iter().enumerate().filter(|(_, n)| render::carried(n)) {
                let x = cap::xml(&cfg, n, &ns[..i]);
                if matches!(n.kind, Kind::Escalate | Kind::Downgrade | Kind::Terminate) {
                    assert!(x.contains("<references>"), "{name}: {x}");
                }
                if drill {
                    assert!(!x.contains("<status>Actual</status>"), "{x}");
                }
                kinds.insert(n.kind.as_str());
                let p = tmp.join(format!("{name}-{drill}-{i}.xml"));
                std::fs::write(&p, x).unwrap();
                files.push(p);
            }
        }
    }
    assert!(files.len() > 500, "only {} CAP messages", files.len());
    for k in [
        "activate",
        "escalate",
        "downgrade",
        "terminate",
        "proposal",
        "call",
        "call_ack",
        "call_unreached",
    ] {
        assert!(kinds.contains(k), "no CAP message of kind {k}");
    }
    // The check can fail: a message with milliseconds in `sent` (what the first release
    // sent from a live clock) is refused by the schema.
    let bad = tmp.join("bad.xml");
    let good = std::fs::read_to_string(&files[0]).unwrap();
    let (a, rest) = good.split_once("<sent>").unwrap();
    let (t, b) = rest.split_once("</sent>").unwrap();
    let t = t.replacen("+08:00", ".250+08:00", 1);
    std::fs::write(&bad, format!("{a}<sent>{t}</sent>{b}")).unwrap();
    let out = std::process::Command::new(&lint)
        .args(["--noout", "--schema"])
        .arg(&xsd)
        .arg(&bad)
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "xmllint accepted milliseconds in sent"
    );
    let mut failed = Vec::new();
    for chunk in files.chunks(400) {
        let out = std::process::Command::new(&lint)
            .arg("--noout")
            .arg("--schema")
            .arg(&xsd)
            .args(chunk)
            .output()
            .unwrap();
        if !out.status.success() {
            failed.push(String::from_utf8_lossy(&out.stderr).to_string());
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);
    assert!(
        failed.is_empty(),
        "{}",
        failed.join("\n").chars().take(4000).collect::<String>()
    );
}

/// The first notice of `kind` (and `level`) of a scenario.
fn first<'a>(ns: &'a [Notice], kind: Kind, level: &str) -> (usize, &'a Notice) {
    ns.iter()
        .enumerate()
        .find(|(_, n)| n.kind == kind && n.level == level && n.plan != Plan::SevereWeather)
        .unwrap_or_else(|| panic!("no {kind:?} {level}"))
}

/// docs/messages.md: one rendered email and one phone script per plan, from the shipped
/// scenarios, so that the documentation shows what the product sends today.
///
/// The levels table is made by the code that names the levels (`wording::Level`, which
/// asks each plan) and by the CAP table (`cap::Assessment`).
#[test]
fn docs_show_one_email_and_one_phone_script_per_plan() {
    let key = AckKey::new(KEY);
    let all = replayed();
    let get = |name: &str| all.iter().find(|(n, _, _)| n == name).unwrap();
    let mut md = String::from(
        "# What people receive\n\n\
         Rendered from the shipped scenarios by `tests/rendered.rs` (which rewrites this file\n\
         with `UPDATE_SNAPSHOTS=1` and fails when it is out of date). Every kind of every\n\
         plan at every level the scenarios reach is in `tests/snapshots/`.\n\n\
         Emails are written for their reader: the reader's own unit's measures or tasks come\n\
         first under its name, the others after; numbers run on. Only a message to the\n\
         called person alone (their email, their WeCom application message, the phone\n\
         gateway's SMS) carries the acknowledgement link. A speech gateway receives only\n\
         `call` notices on the phone channel; the coal and pollution scripts below show how\n\
         the same wording reads aloud.\n",
    );
    md += &levels_table();
    let mut section = |title: &str, cfg: &Config, n: &Notice, r: Reader| {
        md += &format!(
            "\n## {title}\n\n### Email\n\n```text\n{}```\n\n### Phone script\n\n```text\n{}\n```\n",
            render::text_for(cfg, Some(&key), n, r),
            render::phone_script(cfg, n)
        );
    };
    // Coal: the L2 activation to the energy bureau's duty officer.
    let (_, cfg, ns) = get("coal-routing");
    let (_, n) = first(ns, Kind::Activate, "L2");
    let c = cfg.contacts.iter().find(|c| c.unit == "市能源局").unwrap();
    section(
        "Coal supply (煤炭保供): level 2 activated",
        cfg,
        n,
        Reader::Contact(c),
    );
    // Pollution: an orange warning, read by the traffic police.
    let (_, cfg, ns) = all
        .iter()
        .find(|(_, _, ns)| {
            ns.iter().any(|n| {
                n.plan == Plan::HeavyPollution && n.kind == Kind::Activate && n.level == "orange"
            })
        })
        .unwrap();
    let (_, n) = first(ns, Kind::Activate, "orange");
    let mut cfg = (**cfg).clone();
    cfg.contacts.push(yingji::config::Contact {
        id: "jj-duty".into(),
        name: "赵交警".into(),
        unit: "市公安局交警支队".into(),
        email: Some("jj@example.org".into()),
        ..Default::default()
    });
    let c = cfg.contacts.last().unwrap().clone();
    section(
        "Heavy pollution (重污染天气): orange warning issued",
        &cfg,
        n,
        Reader::Contact(&c),
    );
    // Weather: a red rainstorm call to a department's responsible person.
    let named_call = |cfg: &Config, n: &Notice| {
        n.kind == Kind::Call
            && n.track == "rainstorm"
            && n.level == "red"
            && n.person
                .as_deref()
                .and_then(|p| cfg.contact(p))
                .is_some_and(|c| c.name != c.id)
    };
    let (cfg, n) = all
        .iter()
        .find_map(|(_, cfg, ns)| ns.iter().find(|n| named_call(cfg, n)).map(|n| (cfg, n)))
        .unwrap();
    let c = cfg.contact(n.person.as_deref().unwrap()).unwrap();
    section(
        "Severe weather (重大灾害性天气叫应): red rainstorm call",
        cfg,
        n,
        Reader::Contact(c),
    );
    let p = root().join("docs/messages.md");
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&p, &md).unwrap();
    }
    assert_eq!(
        std::fs::read_to_string(&p).unwrap_or_default(),
        md,
        "docs/messages.md is out of date (UPDATE_SNAPSHOTS=1 cargo test --test rendered)"
    );
}

/// Every level of every plan: its code, its name and response as the plan says them, and
/// its CAP severity.
fn levels_table() -> String {
    use yingji::wording::Level;
    let rows: [(Plan, &str, &str); 12] = [
        (Plan::CoalSupply, "supply", "L2"),
        (Plan::CoalSupply, "supply", "L1"),
        (Plan::HeavyPollution, "graded", "yellow"),
        (Plan::HeavyPollution, "graded", "orange"),
        (Plan::HeavyPollution, "graded", "red"),
        (Plan::HeavyPollution, "ozone", "ozone"),
        (Plan::HeavyPollution, "so2", "so2"),
        (Plan::SevereWeather, "rainstorm", "yellow"),
        (Plan::SevereWeather, "rainstorm", "orange"),
        (Plan::SevereWeather, "rainstorm", "red"),
        (Plan::SevereWeather, "blizzard", "red"),
        (Plan::SevereWeather, "thunderstorm_gale", "red"),
    ];
    let mut s = String::from(
        "\n## Levels\n\n\
         Each plan names its levels; every text (subject tag, phone script, CAP `event`,\n\
         console) prints these names. CAP `severity` follows the level; `urgency` is Past\n\
         for a lift, Expected for a proposal, else Immediate; `certainty` is Observed for a\n\
         lift, else Likely.\n\n\
         | plan | track | level | name | response | CAP severity |\n\
         |---|---|---|---|---|---|\n",
    );
    for (plan, track, code) in rows {
        let l = Level::parse(plan, track, code).unwrap();
        let a = cap::Assessment::of(Kind::Activate, &l);
        s += &format!(
            "| {} | {track} | {code} | {} | {} | {:?} |\n",
            plan.as_str(),
            l.name_zh(),
            l.response_zh().unwrap_or("—"),
            a.severity
        );
    }
    s
}
