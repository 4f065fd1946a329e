//! Rule edges of PLANS.md §3 and §4 with explicit times. Expected values are worked out
//! from the rules, not copied from output.

use std::sync::Arc;

use serde_json::json;

use crate::config::Config;
use crate::engine::Engine;
use crate::input;
use crate::notice::{Kind, Notice};
use crate::time::{parse_ts, Ts};

/// a = 120 s, r = 60 s, n = 2: attempts at t0, t0+2m, t0+3m; unreached at t0+4m.
const CFG: &str = r#"
[weather_call]
ack_timeout_s = 120
phone_retry_s = 60
phone_attempts = 2
escalate_to = ["duty"]

[[contact]]
id = "a1"
tier = "A"
wechat = "wx-a1"
phone = "1"
backup = "a1b"

[[contact]]
id = "b1"
tier = "B"
wechat = "wx-b1"
phone = "2"

[[contact]]
id = "a2"
tier = "A"
phone = "3"

[[contact]]
id = "c1"
tier = "C"
wechat = "wx-c1"

[[contact]]
id = "duty"

[[contact]]
id = "a1b"
"#;

fn t(s: &str) -> Ts {
    parse_ts(&format!("2024-07-01T{s}+08:00")).unwrap()
}

struct Run {
    e: Engine,
    out: Vec<Notice>,
}

impl Run {
    fn new(toml: &str) -> Self {
        let cfg = Arc::new(Config::from_toml(toml).unwrap().config);
        Run {
            e: Engine::new(cfg),
            out: Vec::new(),
        }
    }

    /// Sends a message; returns the rejection reason if the plan refused it.
    fn send(&mut self, at: &str, topic: &str, payload: serde_json::Value) -> Option<String> {
        let at = t(at);
        let msg = input::parse(
            &self.e.config().clone(),
            &format!("ers/shuozhou/{topic}"),
            payload.to_string().as_bytes(),
            at,
        )
        .unwrap();
        let step = self.e.handle(at, &msg);
        self.out.extend(step.notices);
        step.rejection.map(|r| r.reason)
    }

    fn warn(&mut self, at: &str, id: &str, hazard: &str, color: Option<&str>, action: &str) {
        self.warn_x(at, id, hazard, color, action, false);
    }

    fn warn_x(&mut self, at: &str, id: &str, hz: &str, c: Option<&str>, act: &str, x: bool) {
        let mut p = json!({"ts": t(at).to_rfc3339(), "id": id, "hazard": hz, "action": act,
                           "extreme": x});
        if let Some(c) = c {
            p["color"] = json!(c);
        }
        assert_eq!(self.send(at, "weather/warning", p), None);
    }

    fn ack(&mut self, at: &str, call_id: &str, person: &str) -> Option<String> {
        self.send(
            at,
            "cmd",
            json!({"cmd": "ack", "call_id": call_id, "person": person}),
        )
    }

    fn obs(&mut self, at: &str, station: &str, rain: f64, snow: f64) {
        let p = json!({"ts": t(at).to_rfc3339(), "station": station, "rain_mm": rain,
                       "snow_mm": snow});
        assert_eq!(self.send(at, "weather/obs", p), None);
    }

    fn end(&mut self, at: &str) {
        let n = self.e.advance_to(t(at));
        self.out.extend(n);
    }

    fn take(&mut self) -> Vec<Notice> {
        std::mem::take(&mut self.out)
    }
}

/// "kind@HH:MM:SS person channel attempt" (calls) or "kind@HH:MM:SS level" (others).
fn line(n: &Notice) -> String {
    let at = n.at.format("%H:%M:%S");
    match n.kind {
        Kind::Call | Kind::CallAck | Kind::CallUnreached => format!(
            "{}@{at} {} {} {} {} {}",
            n.kind.as_str(),
            n.call_id.as_deref().unwrap_or("-"),
            n.person.as_deref().unwrap_or("-"),
            n.channel.as_deref().unwrap_or("-"),
            n.attempt.unwrap_or(0),
            n.level
        ),
        _ => format!(
            "{}@{at} {} {}",
            n.kind.as_str(),
            n.level,
            n.previous.as_deref().unwrap_or("-")
        ),
    }
}

fn lines(ns: &[Notice]) -> Vec<String> {
    ns.iter().map(line).collect()
}

/// §四.2 with a = 120, r = 60, n = 2; tiers A then B in file order (a1, a2, b1); no
/// WeChat -> phone (a2); unreached to escalate_to then backup.
#[test]
fn timeline_with_non_default_a_r_n() {
    let mut r = Run::new(CFG);
    r.warn("10:00:00", "w1", "rainstorm", Some("orange"), "issue");
    r.end("10:10:00");
    let ns = r.take();
    assert_eq!(
        lines(&ns),
        vec![
            "activate@10:00:00 orange none",
            "call@10:00:00 w1/1 a1 wechat 1 orange",
            "call@10:00:00 w1/1 a2 phone 1 orange",
            "call@10:00:00 w1/1 b1 wechat 1 orange",
            "call@10:02:00 w1/1 a1 phone 2 orange",
            "call@10:02:00 w1/1 a2 phone 2 orange",
            "call@10:02:00 w1/1 b1 phone 2 orange",
            "call@10:03:00 w1/1 a1 phone 3 orange",
            "call@10:03:00 w1/1 a2 phone 3 orange",
            "call@10:03:00 w1/1 b1 phone 3 orange",
            "call_unreached@10:04:00 w1/1 a1 phone 3 orange",
            "call_unreached@10:04:00 w1/1 a2 phone 3 orange",
            "call_unreached@10:04:00 w1/1 b1 phone 3 orange",
        ]
    );
    assert_eq!(ns[10].recipients, vec!["duty", "a1b"]);
    assert_eq!(ns[11].recipients, vec!["duty"]);
    assert_eq!(ns[0].recipients, vec!["a1", "a2", "b1"]);
    assert_eq!(ns[1].recipients, vec!["a1"]);
    assert!(r.e.next_deadline().is_none());
}

/// Defaults 180/180/3: phone at +3, +6, +9 min, unreached at +12 min; one attempt only
/// (n = 1) with a different a: phone at +a, unreached at +a+r.
#[test]
fn timeline_defaults_and_single_phone_attempt() {
    let mut r = Run::new("[[contact]]\nid = \"p\"\ntier = \"A\"\nwechat = \"w\"\nphone = \"1\"\n");
    r.warn("10:00:00", "w1", "blizzard", Some("red"), "issue");
    r.end("11:00:00");
    let at: Vec<String> = r
        .take()
        .iter()
        .map(|n| n.at.format("%H:%M:%S").to_string())
        .collect();
    assert_eq!(
        at,
        ["10:00:00", "10:00:00", "10:03:00", "10:06:00", "10:09:00", "10:12:00"]
    );
    let mut r = Run::new(
        "[weather_call]\nack_timeout_s = 300\nphone_retry_s = 30\nphone_attempts = 1\n\
         [[contact]]\nid = \"p\"\ntier = \"B\"\nwechat = \"w\"\n",
    );
    r.warn("10:00:00", "w1", "thunderstorm_gale", Some("red"), "issue");
    r.end("11:00:00");
    assert_eq!(
        lines(&r.take()),
        vec![
            "activate@10:00:00 red none",
            "call@10:00:00 w1/1 p wechat 1 red",
            // no phone: WeChat in its place, same time t0 + a
            "call@10:05:00 w1/1 p wechat 2 red",
            "call_unreached@10:05:30 w1/1 p wechat 2 red",
        ]
    );
}

/// Ack in time stops the person's calls only; a second ack is recorded, no notice.
#[test]
fn ack_between_phone_attempts_and_duplicate() {
    let mut r = Run::new(CFG);
    r.warn("10:00:00", "w1", "rainstorm", Some("orange"), "issue");
    r.end("10:02:30");
    r.take();
    assert_eq!(r.ack("10:02:30", "w1/1", "a2"), None);
    assert_eq!(r.ack("10:02:40", "w1/1", "a2"), None);
    assert_eq!(r.ack("10:00:50", "w1/1", "b1"), None); // at is taken as now
    r.end("10:10:00");
    let ns = r.take();
    assert_eq!(
        lines(&ns),
        vec![
            "call_ack@10:02:30 w1/1 a2 phone 2 orange",
            "call_ack@10:02:40 w1/1 b1 phone 2 orange",
            "call@10:03:00 w1/1 a1 phone 3 orange",
            "call_unreached@10:04:00 w1/1 a1 phone 3 orange",
        ]
    );
    let w = &r.e.state().regions[0].weather;
    let acks: Vec<_> = w
        .register
        .iter()
        .filter_map(|e| match &e.kind {
            super::EntryKind::Ack { duplicate, .. } => Some((e.person.as_str(), *duplicate)),
            _ => None,
        })
        .collect();
    assert_eq!(acks, vec![("a2", false), ("a2", true), ("b1", false)]);
}

/// A late ack (after call_unreached) still gives call_ack with the last attempt.
#[test]
fn late_ack_after_unreached() {
    let mut r = Run::new(CFG);
    r.warn("10:00:00", "w1", "rainstorm", Some("orange"), "issue");
    r.end("10:30:00");
    r.take();
    assert_eq!(r.ack("10:30:00", "w1/1", "a1"), None);
    let ns = r.take();
    assert_eq!(lines(&ns), vec!["call_ack@10:30:00 w1/1 a1 phone 3 orange"]);
    assert_eq!(ns[0].recipients, vec!["duty", "a1b"]);
}

/// Unknown call id or person: refused with a reason, no state change.
#[test]
fn ack_for_unknown_call_or_person_is_refused() {
    let mut r = Run::new(CFG);
    r.warn("10:00:00", "w1", "rainstorm", Some("orange"), "issue");
    let before = String::from_utf8(r.e.snapshot()).unwrap();
    let why = r.ack("10:01:00", "w1/2", "a1").expect("refused");
    assert!(why.contains("w1/2"), "{why}");
    let why = r.ack("10:01:00", "w1/1", "c1").expect("refused"); // tier C not called
    assert!(why.contains("c1"), "{why}");
    let why = r.ack("10:01:00", "w1/1", "nobody").expect("refused");
    assert!(why.contains("nobody"), "{why}");
    let after = String::from_utf8(r.e.snapshot()).unwrap();
    // Only the clock moved.
    assert_eq!(
        before.replace("10:00:00", "X"),
        after.replace("10:01:00", "X").replace("10:00:00", "X")
    );
}

/// Upgrade: escalate, old round cancelled, new round w1/2 with tier C (red rainstorm is
/// extreme by default); acks of the old round are recorded and move nothing.
#[test]
fn upgrade_starts_a_new_round_with_tier_c() {
    let mut r = Run::new(CFG);
    r.warn("10:00:00", "w1", "rainstorm", Some("orange"), "issue");
    assert_eq!(r.ack("10:01:00", "w1/1", "a1"), None);
    r.take();
    r.warn("10:02:00", "w1", "rainstorm", Some("red"), "update");
    assert_eq!(r.ack("10:02:10", "w1/1", "b1"), None);
    r.end("10:02:59");
    let ns = r.take();
    assert_eq!(
        lines(&ns),
        vec![
            // old round's 10:02 timers fire before the message (armed first)
            "call@10:02:00 w1/1 a2 phone 2 orange",
            "call@10:02:00 w1/1 b1 phone 2 orange",
            "escalate@10:02:00 red orange",
            "call@10:02:00 w1/2 a1 wechat 1 red",
            "call@10:02:00 w1/2 a2 phone 1 red",
            "call@10:02:00 w1/2 b1 wechat 1 red",
            "call@10:02:00 w1/2 c1 wechat 1 red",
        ]
    );
    r.end("10:20:00");
    let ns = r.take();
    assert!(ns.iter().all(|n| n.call_id.as_deref() == Some("w1/2")));
    assert_eq!(ns.len(), 4 * 3); // attempts 2, 3 and unreached for 4 persons
    assert_eq!(ns[0].at, t("10:04:00"));
    // the upgrade's content is the new warning's
    let w = &r.e.state().regions[0].weather;
    assert_eq!(w.rounds["w1/1"].status, super::RoundStatus::Superseded);
    assert!(w.rounds["w1/2"].content.contains("红色"));
}

/// §三: tier A is told the situation and to take precautions, tier B gets a report with
/// the responses started and advice, tier C a direct report of an extreme event; each
/// asks for "收到" and names no code or id.
#[test]
fn each_tier_hears_what_section_three_says() {
    let mut r = Run::new(CFG);
    r.warn("10:00:00", "w1", "rainstorm", Some("red"), "issue");
    let ns = r.take();
    let text = |p: &str| {
        ns.iter()
            .find(|n| n.kind == Kind::Call && n.person.as_deref() == Some(p))
            .and_then(|n| n.text.clone())
            .unwrap()
    };
    let (a, b, c) = (text("a1"), text("b1"), text("c1"));
    assert!(
        a.starts_with("市气象局分管领导叫应:朔州市气象局于7月1日10时00分发布暴雨红色预警"),
        "{a}"
    );
    assert!(a.contains("请加强防范") && !a.contains("防范建议"), "{a}");
    assert!(b.starts_with("市气象局主要负责人报告:"), "{b}");
    assert!(
        b.contains("同时叫应相关涉灾部门责任人2人、市委、市政府主要领导(直通式报告)1人")
            && b.contains("防范建议"),
        "{b}"
    );
    assert!(
        c.starts_with("市气象局主要负责人直通式报告:当前出现极端暴雨天气"),
        "{c}"
    );
    for t in [&a, &b, &c] {
        assert!(t.ends_with("收到后请回复“收到”。"), "{t}");
        assert!(
            !t.contains("T10:") && !t.contains("a1") && !t.contains("red"),
            "{t}"
        );
    }
}

/// With red_rainstorm_is_extreme = false a red rainstorm calls A and B only; a warning
/// marked extreme calls C.
#[test]
fn tier_c_only_for_extreme_events() {
    let toml = CFG.replace(
        "escalate_to = [\"duty\"]",
        "escalate_to = [\"duty\"]\nred_rainstorm_is_extreme = false",
    );
    let mut r = Run::new(&toml);
    r.warn("10:00:00", "w1", "rainstorm", Some("red"), "issue");
    r.warn_x("10:00:00", "s1", "blizzard", Some("red"), "issue", true);
    let ps: Vec<_> = r
        .take()
        .iter()
        .filter(|n| n.kind == Kind::Call)
        .map(|n| {
            format!(
                "{}:{}",
                n.call_id.clone().unwrap(),
                n.person.clone().unwrap()
            )
        })
        .collect();
    assert_eq!(
        ps,
        ["w1/1:a1", "w1/1:a2", "w1/1:b1", "s1/1:a1", "s1/1:a2", "s1/1:b1", "s1/1:c1"]
    );
}

/// Downgrade that still triggers: notice to those called; calls go on at the round's
/// colour. Then lift: terminate, nothing pending, later acks recorded only.
#[test]
fn downgrade_then_lift() {
    let mut r = Run::new(CFG);
    r.warn("10:00:00", "w1", "rainstorm", Some("red"), "issue");
    r.take();
    r.warn("10:01:00", "w1", "rainstorm", Some("orange"), "update");
    r.end("10:02:00");
    let ns = r.take();
    assert_eq!(lines(&ns[..1]), vec!["downgrade@10:01:00 orange red"]);
    assert_eq!(ns[0].recipients, vec!["a1", "a2", "b1", "c1"]);
    assert_eq!(lines(&ns[1..2]), vec!["call@10:02:00 w1/1 a1 phone 2 red"]);
    r.warn("10:02:30", "w1", "rainstorm", None, "lift");
    let ns = r.take();
    assert_eq!(lines(&ns), vec!["terminate@10:02:30 none orange"]);
    assert_eq!(ns[0].recipients, vec!["a1", "a2", "b1", "c1"]);
    assert!(r.e.next_deadline().is_none());
    assert_eq!(r.ack("10:05:00", "w1/1", "a1"), None);
    r.end("11:00:00");
    assert!(r.take().is_empty());
}

/// A downgrade below the triggers (orange -> yellow) terminates.
#[test]
fn downgrade_below_trigger_terminates() {
    let mut r = Run::new(CFG);
    r.warn("10:00:00", "w1", "rainstorm", Some("orange"), "issue");
    r.take();
    r.warn("10:01:00", "w1", "rainstorm", Some("yellow"), "update");
    r.end("11:00:00");
    assert_eq!(lines(&r.take()), vec!["terminate@10:01:00 none orange"]);
}

/// Messages that leave the level unchanged make no notice; a yellow warning updated to
/// orange starts a round named after it; the lift of one of two is silent.
#[test]
fn unchanged_level_makes_no_notice() {
    let mut r = Run::new("");
    r.warn("10:00:00", "b1", "blizzard", Some("orange"), "issue");
    r.warn("10:00:00", "f1", "fog", Some("red"), "issue");
    r.warn(
        "10:00:00",
        "g1",
        "thunderstorm_gale",
        Some("orange"),
        "issue",
    );
    r.warn("10:00:00", "y1", "rainstorm", Some("yellow"), "issue");
    assert!(r.take().is_empty());
    r.warn("10:01:00", "y1", "rainstorm", Some("orange"), "update");
    r.warn("10:02:00", "y2", "rainstorm", Some("orange"), "issue");
    r.warn("10:03:00", "y2", "rainstorm", Some("orange"), "update");
    r.warn("10:04:00", "y1", "rainstorm", None, "lift");
    let ns = r.take();
    assert_eq!(lines(&ns), vec!["activate@10:01:00 orange none"]);
    assert_eq!(ns[0].evidence["call_id"], "y1/1");
    r.warn("10:05:00", "y2", "rainstorm", None, "lift");
    assert_eq!(lines(&r.take()), vec!["terminate@10:05:00 none orange"]);
    // a new activation by the same id numbers its round 2
    r.warn("10:06:00", "y1", "rainstorm", Some("red"), "issue");
    assert_eq!(r.take()[0].evidence["call_id"], "y1/2");
}

/// Two hazards at once are independent tracks with their own rounds and ids.
#[test]
fn two_hazards_are_independent() {
    let mut r = Run::new(CFG);
    r.warn("10:00:00", "rs", "rainstorm", Some("orange"), "issue");
    r.warn("10:01:00", "tg", "thunderstorm_gale", Some("red"), "issue");
    r.warn("10:01:30", "rs", "rainstorm", None, "lift");
    r.end("10:10:00");
    let ns = r.take();
    assert!(ns
        .iter()
        .filter(|n| n.track == "rainstorm")
        .all(|n| n.at <= t("10:01:30")));
    let tg: Vec<_> = ns
        .iter()
        .filter(|n| n.track == "thunderstorm_gale")
        .collect();
    // not extreme: tiers A and B; activate + 3 persons × (3 attempts + unreached)
    assert_eq!(tg.len(), 1 + 3 * 4);
    assert_eq!(
        tg.last().unwrap().id,
        "severe_weather/shuozhou/thunderstorm_gale/13"
    );
}

/// Tracks keyed by `Hazard` keep the snapshot of string keys: the codes as keys, in the
/// codes' order (blizzard before rainstorm, though `Rainstorm` is declared first), and a
/// snapshot round-trips. What would break: a derived `Ord` on `Hazard` (declaration order)
/// would put rainstorm first and change the snapshot and the order of notices at one
/// instant (PLANS.md §4).
#[test]
fn hazard_keys_keep_string_order_and_form() {
    let mut r = Run::new(CFG);
    r.warn("10:00:00", "rs", "rainstorm", Some("orange"), "issue");
    r.warn("10:00:00", "bz", "blizzard", Some("red"), "issue");
    r.take();
    let w = &r.e.state().regions[0].weather;
    let keys: Vec<&str> = w.tracks.keys().map(input::Hazard::as_str).collect();
    assert_eq!(keys, ["blizzard", "rainstorm"]);
    let json = serde_json::to_string(w).unwrap();
    let (b, rs) = (
        json.find("\"blizzard\":{").unwrap(),
        json.find("\"rainstorm\":{").unwrap(),
    );
    assert!(b < rs, "{json}");
    assert!(json.contains("\"hazard\":\"rainstorm\""), "{json}");
    let back: super::SevereWeather = serde_json::from_str(&json).unwrap();
    assert_eq!(serde_json::to_string(&back).unwrap(), json);
}

/// The register survives a snapshot, and a restored engine makes the same notices.
#[test]
fn snapshot_restore_mid_round_and_csv() {
    let mut r = Run::new(CFG);
    r.warn("10:00:00", "w1", "rainstorm", Some("orange"), "issue");
    r.end("10:02:00");
    let snap = r.e.snapshot();
    let mut r2 = Run {
        e: Engine::restore(Arc::clone(r.e.config()), &snap).unwrap(),
        out: Vec::new(),
    };
    for x in [&mut r, &mut r2] {
        x.take();
        assert_eq!(x.ack("10:02:30", "w1/1", "a1").as_deref(), None);
        x.end("10:10:00");
    }
    assert_eq!(r.take(), r2.take());
    let csv = r2.e.state().regions[0].weather.register_csv("w1").unwrap();
    let rows: Vec<&str> = csv.lines().collect();
    assert!(rows[0].starts_with("time,event,call_id"));
    assert_eq!(
        rows[1],
        "2024-07-01T10:00:00+08:00,w1,w1/1,1,rainstorm,orange,a1,,,A,attempt,1,wechat,,,,,,shuozhou"
    );
    assert!(rows.contains(
        // a1's last attempt before its ack: the phone call at 10:02 (attempt 2)
        &"2024-07-01T10:02:30+08:00,w1,w1/1,1,rainstorm,orange,a1,,,A,ack,2,phone,a1,false,false,current,,shuozhou"
    ));
    assert!(rows.contains(
        &"2024-07-01T10:04:00+08:00,w1,w1/1,1,rainstorm,orange,a2,,,A,unreached,3,phone,,,,,duty,shuozhou"
    ));
    // 3 + 3 + 2 attempts (a1 acked before its 3rd), 1 ack, 2 unreached
    assert_eq!(rows.len(), 1 + 8 + 1 + 2);
    assert!(r2.e.state().regions[0].weather.register_csv("w9").is_none());
}

/// PLANS.md §4: rainstorm orange at 3 h >= 50 mm, red at >= 100; the record drops with
/// the sum; a warning at or above blocks; suggestions never start calls.
#[test]
fn suggestions_from_rain_sums() {
    let mut r = Run::new("");
    r.obs("09:00:00", "S1", 20.0, 0.0);
    r.obs("10:00:00", "S1", 20.0, 0.0);
    r.obs("11:00:00", "S1", 9.9, 0.0); // 49.9: nothing
    assert!(r.take().is_empty());
    r.obs("11:00:00", "S1", 10.0, 0.0); // replaces: 50.0 -> orange
    let ns = r.take();
    assert_eq!(lines(&ns), vec!["suggestion@11:00:00 orange -"]);
    assert_eq!(ns[0].evidence["sum_mm"], json!(50.0));
    r.obs("12:00:00", "S1", 30.0, 0.0); // 20+10+30 = 60: orange again, recorded: nothing
    r.obs("13:00:00", "S1", 0.0, 0.0); // 10+30+0 = 40: record drops to none
    r.obs("14:00:00", "S1", 25.0, 0.0); // 30+0+25 = 55: orange again
    assert_eq!(lines(&r.take()), vec!["suggestion@14:00:00 orange -"]);
    // a missing hour counts 0: 15:00 absent; 16:00: 25 (14:00) + 0 + 80 = 105 -> red
    r.warn("15:30:00", "w1", "rainstorm", Some("orange"), "issue");
    r.take();
    r.obs("16:00:00", "S1", 80.0, 0.0);
    assert_eq!(lines(&r.take()), vec!["suggestion@16:00:00 red -"]);
    // another station, with an orange warning active: orange blocked, red not
    r.obs("16:00:00", "S2", 60.0, 0.0);
    assert!(r.take().is_empty());
    r.warn("16:10:00", "w2", "rainstorm", Some("red"), "issue");
    r.take();
    r.obs("17:00:00", "S2", 60.0, 0.0); // 120: red, but a red warning is active
    assert!(r.take().is_empty());
    let w = &r.e.state().regions[0].weather;
    assert!(!w.suggest.recorded.contains_key("S2"));
}

/// Blizzard red at 6 h >= 15 mm snow water equivalent; suggestions start no calls.
#[test]
fn blizzard_suggestion_from_six_hour_sum() {
    let mut r = Run::new(CFG);
    for (h, v) in [
        ("01", 2.5),
        ("02", 2.5),
        ("03", 2.5),
        ("04", 2.5),
        ("05", 2.5),
    ] {
        r.obs(&format!("{h}:00:00"), "S1", 0.0, v);
    }
    r.obs("06:00:00", "S1", 0.0, 2.4); // 14.9
    assert!(r.take().is_empty());
    r.obs("07:00:00", "S1", 0.0, 2.6); // (01:00, 07:00]: 4 × 2.5 + 2.4 + 2.6 = 15.0
    let ns = r.take();
    assert_eq!(lines(&ns), vec!["suggestion@07:00:00 red -"]);
    assert_eq!(ns[0].track, "blizzard");
    r.end("08:00:00");
    assert!(r.take().is_empty());
    assert!(r.e.next_deadline().is_none());
}

/// `extreme` is read only when a round starts: a same-colour update marked extreme starts
/// no round and calls nobody new; an escalation reads the flag of its own message.
#[test]
fn extreme_is_read_when_a_round_starts() {
    let mut r = Run::new(CFG);
    r.warn("10:00:00", "b", "blizzard", Some("red"), "issue");
    r.take();
    r.warn_x("10:00:30", "b", "blizzard", Some("red"), "update", true);
    r.warn_x("10:00:40", "b2", "blizzard", Some("red"), "issue", true);
    assert!(r.take().is_empty());
    r.warn_x(
        "10:01:00",
        "t",
        "thunderstorm_gale",
        Some("orange"),
        "issue",
        true,
    );
    assert!(r.take().is_empty());
    r.warn("10:01:10", "t", "thunderstorm_gale", Some("red"), "update");
    let ns = r.take();
    // activation of thunderstorm gale by an update not marked extreme: A and B only
    assert_eq!(ns[0].recipients, vec!["a1", "a2", "b1"]);
    assert_eq!(ns[0].evidence["call_id"], "t/1");
}

/// a = 0 and r = 0: every step falls at t0, still in order attempt by attempt, each attempt
/// in call order (each timer is re-armed after the others of its attempt).
#[test]
fn zero_timeouts_keep_the_order() {
    let mut r = Run::new(
        "[weather_call]\nack_timeout_s = 0\nphone_retry_s = 0\nphone_attempts = 2\n\
         [[contact]]\nid = \"p\"\ntier = \"A\"\nwechat = \"w\"\nphone = \"1\"\n\
         [[contact]]\nid = \"q\"\ntier = \"A\"\nwechat = \"w\"\nphone = \"2\"\n",
    );
    r.warn("10:00:00", "w1", "blizzard", Some("red"), "issue");
    assert_eq!(
        lines(&r.take()),
        vec![
            "activate@10:00:00 red none",
            "call@10:00:00 w1/1 p wechat 1 red",
            "call@10:00:00 w1/1 q wechat 1 red",
            "call@10:00:00 w1/1 p phone 2 red",
            "call@10:00:00 w1/1 q phone 2 red",
            "call@10:00:00 w1/1 p phone 3 red",
            "call@10:00:00 w1/1 q phone 3 red",
            "call_unreached@10:00:00 w1/1 p phone 3 red",
            "call_unreached@10:00:00 w1/1 q phone 3 red",
        ]
    );
    // an ack at the same instant comes after the timers (PLANS.md §4) and is late
    assert_eq!(r.ack("10:00:00", "w1/1", "p"), None);
    assert_eq!(
        lines(&r.take()),
        vec!["call_ack@10:00:00 w1/1 p phone 3 red"]
    );
}

proptest::proptest! {
    /// PLANS.md §3 for any a, r, n and any ack time τ (seconds after t0): attempt 1 at t0,
    /// attempt k+1 at t0 + a + (k−1)·r, unreached at t0 + a + n·r; steps due at or before τ
    /// happen (timers first at one instant), then call_ack names the last attempt.
    #[test]
    fn timeline_for_any_a_r_n(a in 0u64..400, r in 0u64..400, n in 1u32..5, tau in 0u64..2500) {
        let mut run = Run::new(&format!(
            "[weather_call]\nack_timeout_s = {a}\nphone_retry_s = {r}\nphone_attempts = {n}\n\
             [[contact]]\nid = \"p\"\ntier = \"A\"\nwechat = \"w\"\nphone = \"1\"\n"
        ));
        run.warn("10:00:00", "w1", "rainstorm", Some("orange"), "issue");
        let t0 = t("10:00:00");
        let ack_at = t0 + chrono::Duration::seconds(tau as i64);
        run.end(&ack_at.format("%H:%M:%S").to_string());
        let _ = run.ack(&ack_at.format("%H:%M:%S").to_string(), "w1/1", "p");
        run.end("12:00:00");
        // what the rule gives
        let mut want = vec![(0u64, "call".to_string(), 1u32)];
        for k in 1..=n {
            want.push((a + u64::from(k - 1) * r, "call".into(), k + 1));
        }
        want.push((a + u64::from(n) * r, "call_unreached".into(), n + 1));
        want.retain(|(s, _, _)| *s <= tau);
        let last = want.last().map_or(1, |w| w.2);
        want.push((tau, "call_ack".into(), last));
        let got: Vec<(u64, String, u32)> = run
            .take()
            .iter()
            .filter(|x| x.kind != Kind::Activate)
            .map(|x| ((x.at - t0).num_seconds() as u64, x.kind.as_str().to_string(),
                      x.attempt.unwrap()))
            .collect();
        proptest::prop_assert_eq!(got, want);
    }
}

/// What broke: `phone_attempts = 0` was a config error, so a scenario using it could not run
/// at all. PLANS.md §3's formula with n = 0: no phone attempt, `call_unreached` at t0 + a
/// carrying the last attempt (WeChat, 1).
#[test]
fn zero_phone_attempts_is_unreached_at_t0_plus_a() {
    let mut r = Run::new(
        "[weather_call]\nack_timeout_s = 90\nphone_retry_s = 30\nphone_attempts = 0\n\
         escalate_to = [\"d\"]\n[[contact]]\nid = \"p\"\ntier = \"A\"\nwechat = \"w\"\n\
         phone = \"1\"\n[[contact]]\nid = \"d\"\n",
    );
    r.warn("10:00:00", "w1", "rainstorm", Some("orange"), "issue");
    r.end("11:00:00");
    let ns = r.take();
    assert_eq!(
        lines(&ns),
        vec![
            "activate@10:00:00 orange none",
            "call@10:00:00 w1/1 p wechat 1 orange",
            "call_unreached@10:01:30 w1/1 p wechat 1 orange",
        ]
    );
    assert_eq!(ns[2].recipients, vec!["d"]);
}

/// What broke: readings more than 24 h behind the station's latest stamp were pruned before
/// the rules ran, so a late observation was summed without itself. PLANS.md §4: at each
/// observation, with t its `ts`, the hours in (t − 3 h, t] are summed — its own reading
/// included.
#[test]
fn a_late_observation_counts_in_its_own_window() {
    let mut r = Run::new("");
    r.obs("13:00:00", "S1", 0.0, 0.0);
    let p = json!({"ts": "2024-06-30T08:00:00+08:00", "station": "S1", "rain_mm": 120.0});
    assert_eq!(r.send("14:00:00", "weather/obs", p), None);
    let ns = r.take();
    assert_eq!(lines(&ns), vec!["suggestion@14:00:00 red -"]);
    assert_eq!(ns[0].evidence["sum_mm"], json!(120.0));
}

/// What broke: the input sets no upper bound on `rain_mm`; two huge readings in one window
/// overflowed the micrometre sum (a panic in debug builds). The sum saturates: red.
#[test]
fn huge_readings_do_not_overflow_the_sum() {
    let mut r = Run::new("");
    r.obs("10:00:00", "S1", 1e300, 0.0);
    r.take();
    r.obs("11:00:00", "S1", 1e300, 0.0);
    r.obs("12:00:00", "S1", 1e300, 0.0);
    assert!(r.take().is_empty()); // red already recorded at 10:00, still red
    let w = &r.e.state().regions[0].weather;
    assert_eq!(
        w.suggest.recorded["S1"][&input::Hazard::Rainstorm],
        crate::input::Color::Red
    );
}
