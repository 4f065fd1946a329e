//! Rule edges of PLANS.md §1 with explicit times.

use std::sync::Arc;

use serde_json::{json, Value};

use crate::config::Config;
use crate::engine::Engine;
use crate::input;
use crate::notice::Notice;
use crate::time::{fmt_ts, parse_ts};

use super::data::Data;
use super::rules;

struct H {
    e: Engine,
    out: Vec<Notice>,
}

fn h(toml: &str) -> H {
    let cfg = Arc::new(Config::from_toml(toml).unwrap().config);
    H {
        e: Engine::new(cfg),
        out: Vec::new(),
    }
}

fn t(s: &str) -> crate::time::Ts {
    parse_ts(&format!("{s}+08:00")).unwrap()
}

impl H {
    fn send(&mut self, at: &str, feed: &str, payload: Value) -> Option<String> {
        let cfg = Arc::clone(self.e.config());
        let msg = input::parse(
            &cfg,
            &format!("ers/shuozhou/{feed}"),
            payload.to_string().as_bytes(),
            t(at),
        )
        .unwrap_or_else(|r| panic!("{r}"));
        let step = self.e.handle(t(at), &msg);
        self.out.extend(step.notices);
        step.rejection.map(|r| r.reason)
    }
    fn stock(&mut self, at: &str, plant: &str, days: f64) {
        let ts = format!("{at}+08:00");
        self.send(
            at,
            "coal/stock",
            json!({"ts": ts, "plant": plant, "stock_days": days}),
        );
    }
    fn output(&mut self, at: &str, date: &str, t_: f64) {
        self.send(at, "coal/output", json!({"date": date, "output_t": t_}));
    }
    fn end(&mut self, at: &str) {
        let n = self.e.advance_to(t(at));
        self.out.extend(n);
    }
    /// `kind level at` of each notice, optionally only of some kinds.
    fn seen(&self, kinds: &[&str]) -> Vec<String> {
        self.out
            .iter()
            .filter(|n| kinds.is_empty() || kinds.contains(&n.kind.as_str()))
            .map(|n| format!("{} {} {}", n.kind.as_str(), n.level, &fmt_ts(n.at)[5..16]))
            .collect()
    }
}

const MOVES: &[&str] = &["activate", "escalate", "downgrade", "terminate", "proposal"];

/// §4.2.1 "库存不足20天" is strict: exactly 20.0 days (400000 t / 20000 t a day) does not
/// warn; a hair below does.
#[test]
fn exactly_20_days_does_not_warn() {
    let mut x = h("");
    x.send(
        "2023-12-01T08:00:00",
        "coal/stock",
        json!({"ts": "2023-12-01T08:00:00+08:00", "plant": "A", "stock_t": 400000, "burn_t_per_day": 20000}),
    );
    x.stock("2023-12-01T09:00:00", "B", 20.0);
    assert!(x.seen(MOVES).is_empty(), "{:?}", x.seen(&[]));
    x.stock("2023-12-01T10:00:00", "B", 19.99);
    assert_eq!(x.seen(MOVES), vec!["activate L2 12-01T10:00"]);
    // Exactly 15.0 days is L2, not L1.
    x.stock("2023-12-01T11:00:00", "B", 15.0);
    assert_eq!(x.seen(MOVES), vec!["activate L2 12-01T10:00"]);
    x.stock("2023-12-01T12:00:00", "B", 14.999);
    assert_eq!(x.seen(MOVES)[1], "escalate L1 12-01T12:00");
}

/// An older report arriving later does not replace the newer one (latest by `ts`).
#[test]
fn latest_stock_is_latest_by_ts() {
    let mut x = h("");
    x.stock("2023-12-01T10:00:00", "A", 25.0);
    x.send(
        "2023-12-01T11:00:00",
        "coal/stock",
        json!({"ts": "2023-12-01T09:00:00+08:00", "plant": "A", "stock_days": 10}),
    );
    assert!(x.seen(MOVES).is_empty());
}

/// Quota by year: each date compares with its own year's quota (New Year switches).
#[test]
fn quota_changes_at_new_year() {
    let toml = "[coal]\ndaily_quota_t = { 2023 = 500000, 2024 = 520000 }\n";
    let cfg = Config::from_toml(toml).unwrap().config;
    let mut d = Data::default();
    // 12-28 .. 01-01 at 510000: below the 2024 quota only on 01-01.
    for day in ["2023-12-28", "2023-12-29", "2023-12-30", "2023-12-31"] {
        d.add_output(&input::OutputReport {
            date: crate::time::parse_date(day).unwrap(),
            output_t: 490000.0,
        });
    }
    d.add_output(&input::OutputReport {
        date: crate::time::parse_date("2024-01-01").unwrap(),
        output_t: 510000.0,
    });
    // 2023 dates below 500000, 2024-01-01 below 520000: a run of 5.
    assert_eq!(rules::output_run(&d, &cfg.coal).len(), 5);
    // 510000 on 2023-12-31 would break the run (not below 500000).
    d.add_output(&input::OutputReport {
        date: crate::time::parse_date("2023-12-31").unwrap(),
        output_t: 510000.0,
    });
    assert_eq!(rules::output_run(&d, &cfg.coal).len(), 1);
}

/// Quota change at New Year through the engine: the fifth low day activates L2 only
/// because 2024's quota is higher.
#[test]
fn quota_table_in_the_engine() {
    let mut x = h("[coal]\ndaily_quota_t = { 2023 = 500000, 2024 = 520000 }\n");
    let days = [
        "2023-12-28",
        "2023-12-29",
        "2023-12-30",
        "2023-12-31",
        "2024-01-01",
    ];
    for (i, d) in days.iter().enumerate() {
        let out = if i == 4 { 515000.0 } else { 499000.0 };
        x.output(&format!("{}T09:00:00", d), d, out);
    }
    assert_eq!(x.seen(MOVES), vec!["activate L2 01-01T09:00"]);
}

/// A missing date inside a streak breaks it; a late report for that date mends it.
#[test]
fn missing_date_breaks_the_streak() {
    let mut x = h("");
    for d in ["01", "02", "04", "05", "06", "07"] {
        x.output(
            &format!("2023-12-{d}T0{}:00:00", if d == "04" { 7 } else { 8 }),
            &format!("2023-12-{d}"),
            400000.0,
        );
    }
    assert!(x.seen(MOVES).is_empty(), "{:?}", x.seen(&[]));
    // The skip raised one data_gap at the 04 report, with the missing date.
    // (Each report arrives less than output_gap_days after the previous one.)
    let gaps: Vec<&Notice> = x
        .out
        .iter()
        .filter(|n| n.kind.as_str() == "data_gap")
        .collect();
    assert_eq!(gaps.len(), 1);
    assert_eq!(gaps[0].evidence["missing_dates"], json!(["2023-12-03"]));
    x.output("2023-12-07T10:00:00", "2023-12-03", 400000.0);
    assert_eq!(x.seen(MOVES), vec!["activate L2 12-07T10:00"]);
}

/// A correction replaces the first report and the run is recomputed.
#[test]
fn correction_replaces_and_recomputes() {
    let mut x = h("");
    for d in 1..=5 {
        x.output(
            &format!("2023-12-0{d}T09:00:00"),
            &format!("2023-12-0{d}"),
            400000.0,
        );
    }
    assert_eq!(x.seen(MOVES), vec!["activate L2 12-05T09:00"]);
    x.output("2023-12-05T10:00:00", "2023-12-03", 600000.0);
    // The run is now 2 days: the lift hold starts at 10:00 and ends 72 h later.
    x.end("2023-12-08T09:59:59");
    assert_eq!(x.seen(MOVES).len(), 1);
    x.end("2023-12-08T10:00:00");
    assert_eq!(x.seen(MOVES)[1], "terminate none 12-08T10:00");
}

/// A condition returning 1 minute before the hold ends cancels it; the next clearing
/// starts a new 72 h hold.
#[test]
fn condition_back_one_minute_before_hold_end() {
    let mut x = h("");
    x.stock("2023-12-01T08:00:00", "A", 18.0);
    x.stock("2023-12-02T08:00:00", "A", 22.0); // hold until 12-05 08:00
    x.stock("2023-12-05T07:59:00", "A", 19.0); // back: hold cancelled
    x.end("2023-12-05T08:00:00");
    assert_eq!(x.seen(MOVES), vec!["activate L2 12-01T08:00"]);
    x.stock("2023-12-05T09:00:00", "A", 21.0); // new hold until 12-08 09:00
    x.end("2023-12-08T08:59:00");
    assert_eq!(x.seen(MOVES).len(), 1);
    x.end("2023-12-08T09:00:00");
    assert_eq!(x.seen(MOVES)[1], "terminate none 12-08T09:00");
}

/// L1 whose conditions all cleared terminates 72 h after, with no L2 step; with an L2
/// condition left it downgrades at the end of the downgrade hold.
#[test]
fn l1_downgrade_and_lift() {
    let mut x = h("");
    x.stock("2023-12-01T08:00:00", "A", 10.0);
    x.stock("2023-12-01T09:00:00", "A", 18.0); // L1 clear: downgrade hold to 12-04 09:00
    x.end("2023-12-04T09:00:00");
    assert_eq!(
        x.seen(MOVES),
        vec!["activate L1 12-01T08:00", "downgrade L2 12-04T09:00"]
    );
    let mut y = h("");
    y.stock("2023-12-01T08:00:00", "A", 10.0);
    y.stock("2023-12-01T09:00:00", "A", 30.0);
    y.end("2023-12-04T09:00:00");
    assert_eq!(
        y.seen(MOVES),
        vec!["activate L1 12-01T08:00", "terminate none 12-04T09:00"]
    );
}

/// Price: exact threshold (10 % of 1000 is 100) and no earlier price, no condition.
#[test]
fn price_thresholds_are_exact() {
    assert!(rules::change_at_least(1100.0, 1000.0, 10.0));
    assert!(!rules::change_at_least(1099.99, 1000.0, 10.0));
    assert!(rules::change_at_least(900.0, 1000.0, 10.0));
    assert!(rules::change_at_least(1.1, 1.0, 10.0)); // 0.1 * 100 in floats is not 10
    assert!(rules::change_at_least(1200.0, 1000.0, 20.0));
    let mut x = h("");
    x.send(
        "2023-12-01T09:00:00",
        "coal/price",
        json!({"date": "2023-12-01", "price_cny_t": 1000}),
    );
    x.send(
        "2023-12-07T09:00:00",
        "coal/price",
        json!({"date": "2023-12-07", "price_cny_t": 2000}),
    );
    assert!(x.seen(MOVES).is_empty());
    x.send(
        "2023-12-08T09:00:00",
        "coal/price",
        json!({"date": "2023-12-08", "price_cny_t": 1100}),
    );
    assert_eq!(x.seen(MOVES), vec!["activate L2 12-08T09:00"]);
}

/// A confirm for an unknown or no-longer-pending proposal is refused and changes nothing.
#[test]
fn confirm_of_unknown_or_void_proposal_is_refused() {
    let mut x = h("[coal]\nrequire_confirmation = true\n");
    x.stock("2023-12-01T08:00:00", "A", 18.0);
    x.stock("2023-12-01T09:00:00", "A", 25.0);
    x.end("2023-12-04T09:00:00");
    assert_eq!(x.seen(MOVES)[1], "proposal none 12-04T09:00");
    let id = "coal_supply/shuozhou/supply/proposal/1";
    let bad = json!({"cmd": "confirm", "proposal_id": "coal_supply/shuozhou/supply/proposal/9", "by": "x"});
    assert!(x.send("2023-12-04T10:00:00", "cmd", bad).is_some());
    x.stock("2023-12-04T11:00:00", "A", 19.0); // voids it
    let ok = json!({"cmd": "confirm", "proposal_id": id, "by": "x"});
    assert!(x.send("2023-12-04T12:00:00", "cmd", ok.clone()).is_some());
    assert_eq!(x.seen(MOVES).len(), 2);
    x.stock("2023-12-04T13:00:00", "A", 25.0);
    x.end("2023-12-07T13:00:00");
    let id2 = "coal_supply/shuozhou/supply/proposal/2";
    assert_eq!(x.seen(MOVES)[2], "proposal none 12-07T13:00");
    let ok2 = json!({"cmd": "confirm", "proposal_id": id2, "by": "x"});
    assert!(x.send("2023-12-07T14:00:00", "cmd", ok2).is_none());
    assert_eq!(x.seen(MOVES)[3], "terminate none 12-07T14:00");
}

/// Manual none: immediate termination when nothing else holds; else remaining
/// conditions; none without a manual level does nothing.
#[test]
fn manual_none() {
    let m = |l: &str| json!({"cmd": "manual", "plan": "coal_supply", "level": l, "reason": "r", "by": "能源局"});
    let mut x = h("");
    x.send("2023-12-01T08:00:00", "cmd", m("none"));
    x.send("2023-12-01T09:00:00", "cmd", m("L1"));
    x.stock("2023-12-01T10:00:00", "A", 18.0);
    x.send("2023-12-01T11:00:00", "cmd", m("none")); // L2 stock remains: downgrade hold
    x.stock("2023-12-01T12:00:00", "A", 30.0); // all clear: lift hold to 12-04 12:00
    x.send("2023-12-02T08:30:00", "cmd", m("L2"));
    x.send("2023-12-02T09:00:00", "cmd", m("none")); // nothing else: at once
    assert_eq!(
        x.seen(MOVES),
        vec!["activate L1 12-01T09:00", "terminate none 12-02T09:00"]
    );
    x.end("2023-12-10T00:00:00");
    assert_eq!(x.seen(MOVES).len(), 2);
}

/// §5.1: first at activation, follow-up at level changes and every 08:00, final at the
/// end; reports carry the level after the move (final: the level that ended).
#[test]
fn reports_sequence() {
    let mut x = h("");
    x.stock("2023-12-01T07:00:00", "A", 18.0);
    x.stock("2023-12-01T09:00:00", "A", 12.0);
    x.stock("2023-12-01T10:00:00", "A", 25.0);
    x.end("2023-12-05T00:00:00");
    let r = &["report_first", "report_followup", "report_final"];
    assert_eq!(
        x.seen(r),
        vec![
            "report_first L2 12-01T07:00",
            "report_followup L2 12-01T08:00",
            "report_followup L1 12-01T09:00",
            "report_followup L1 12-02T08:00",
            "report_followup L1 12-03T08:00",
            "report_followup L1 12-04T08:00",
            "report_final L1 12-04T10:00",
        ]
    );
}

/// PLANS.md §4: a timer whose track terminated earlier at that instant does not fire; a
/// gap timer armed before the hold (same message) fires first, at the level before.
#[test]
fn gap_timer_after_terminate_at_same_instant_does_not_fire() {
    let mut x = h("");
    x.stock("2023-12-01T09:00:00", "A", 18.0);
    x.stock("2023-12-01T10:00:00", "A", 25.0); // stock gap + lift hold, both 12-04 10:00
    x.output("2023-12-02T10:00:00", "2023-12-01", 520000.0); // output gap 12-04 10:00
    x.end("2023-12-04T10:00:00");
    let k = &["data_gap", "data_resumed", "terminate", "report_final"];
    assert_eq!(
        x.seen(k),
        vec![
            "data_gap L2 12-04T10:00",
            "terminate none 12-04T10:00",
            "report_final L2 12-04T10:00",
        ]
    );
    assert_eq!(x.out[x.out.len() - 3].evidence["feed"], "coal/stock");
    assert_eq!(x.out[x.out.len() - 3].evidence["plant"], "A");
    // The output silence was never reported, so its next message resumes nothing.
    x.output("2023-12-05T10:00:00", "2023-12-02", 520000.0);
    assert_eq!(x.seen(k).len(), 3);
    // A later silence is reported again, at level none.
    x.end("2023-12-07T10:00:00");
    assert_eq!(x.seen(k)[3], "data_gap none 12-07T10:00");
}

/// At L1, an L1 condition returning 1 minute before the downgrade hold ends cancels it;
/// the next clearing starts a new hold.
#[test]
fn l1_condition_back_one_minute_before_downgrade() {
    let mut x = h("");
    x.stock("2023-12-01T08:00:00", "A", 12.0);
    x.stock("2023-12-01T09:00:00", "A", 17.0); // downgrade hold to 12-04 09:00
    x.stock("2023-12-02T09:00:00", "A", 17.0);
    x.stock("2023-12-03T09:00:00", "A", 17.0);
    x.stock("2023-12-04T08:59:00", "A", 14.0);
    x.stock("2023-12-04T09:30:00", "A", 17.0); // new hold to 12-07 09:30
    x.stock("2023-12-05T09:30:00", "A", 17.0);
    x.stock("2023-12-06T09:30:00", "A", 17.0);
    x.end("2023-12-07T09:29:59");
    assert_eq!(x.seen(MOVES), vec!["activate L1 12-01T08:00"]);
    x.end("2023-12-07T09:30:00");
    assert_eq!(x.seen(MOVES)[1], "downgrade L2 12-07T09:30");
}

/// The state survives a snapshot: a restored engine makes the same notices.
#[test]
fn snapshot_restores_the_episode() {
    let mut x = h("");
    x.stock("2023-12-01T08:00:00", "A", 12.0);
    x.output("2023-12-01T09:00:00", "2023-11-30", 400000.0);
    x.send(
        "2023-12-01T09:30:00",
        "coal/price",
        json!({"date": "2023-11-30", "price_cny_t": 900}),
    );
    x.stock("2023-12-01T10:00:00", "A", 30.0);
    let snap = x.e.snapshot();
    let mut y = H {
        e: Engine::restore(Arc::clone(x.e.config()), &snap).unwrap(),
        out: Vec::new(),
    };
    x.out.clear();
    x.end("2023-12-06T00:00:00");
    y.end("2023-12-06T00:00:00");
    assert_eq!(x.out, y.out);
    assert!(x
        .seen(MOVES)
        .contains(&"terminate none 12-04T10:00".to_string()));
}

/// `reject` of the pending proposal keeps the response and starts a new hold; an unknown
/// reject is refused.
#[test]
fn reject_restarts_the_hold() {
    let mut x = h("[coal]\nrequire_confirmation = true\n");
    x.stock("2023-12-01T08:00:00", "A", 18.0);
    x.stock("2023-12-01T09:00:00", "A", 25.0);
    x.end("2023-12-04T09:00:00");
    let r =
        |id: &str| json!({"cmd": "reject", "proposal_id": id, "by": "主任", "reason": "再观察"});
    assert!(x
        .send(
            "2023-12-04T09:30:00",
            "cmd",
            r("coal_supply/shuozhou/supply/proposal/2")
        )
        .is_some());
    assert!(x
        .send(
            "2023-12-04T10:00:00",
            "cmd",
            r("coal_supply/shuozhou/supply/proposal/1")
        )
        .is_none());
    x.end("2023-12-07T10:00:00");
    assert_eq!(
        x.seen(MOVES),
        vec![
            "activate L2 12-01T08:00",
            "proposal none 12-04T09:00",
            "proposal none 12-07T10:00"
        ]
    );
}

/// The embedded task file quotes §5.2.1 (1)–(9) and §5.2.2 (1)–(15); L1 includes L2.
#[test]
fn embedded_tasks_cover_the_clauses() {
    let t = super::default_tasks();
    let clauses: Vec<&str> = t.iter().map(|t| t.clause.as_str()).collect();
    for n in 1..=9 {
        assert!(clauses.contains(&format!("§5.2.1({n})").as_str()));
    }
    for n in 1..=15 {
        assert!(clauses.contains(&format!("§5.2.2({n})").as_str()));
    }
    assert_eq!(t.len(), 24);
    assert!(t.iter().all(|t| !t.text.is_empty() && !t.unit.is_empty()));
    let cfg = Config::from_toml("").unwrap().config;
    let l2 = super::text::tasks(&cfg, super::Level::L2);
    let l1 = super::text::tasks(&cfg, super::Level::L1);
    assert_eq!((l2.len(), l1.len()), (9, 24));
    // The issue's count: 8 member units at level 2, 15 at level 1.
    assert_eq!(super::text::units(&l2).len(), 8);
    assert_eq!(super::text::units(&l1).len(), 15);
    assert!(t[1].text.contains("确保全市煤炭日产量不低于年度每日保供值"));
}

/// `data_resumed` comes first but carries the level after the message's move.
#[test]
fn resumed_carries_level_after_the_move() {
    let mut x = h("");
    x.stock("2023-12-01T09:00:00", "A", 30.0);
    x.end("2023-12-04T09:00:00");
    x.stock("2023-12-04T10:00:00", "A", 18.0);
    assert_eq!(
        x.seen(&["data_gap", "data_resumed", "activate", "report_first"]),
        vec![
            "data_gap none 12-04T09:00",
            "data_resumed L2 12-04T10:00",
            "activate L2 12-04T10:00",
            "report_first L2 12-04T10:00",
        ]
    );
}

/// `[[coal.tasks]]` in the config replaces the embedded tasks; each task goes to its
/// unit's contacts.
#[test]
fn configured_tasks_replace_the_default() {
    let mut x = h(r#"
[[coal.tasks]]
level = "L2"
unit = "市能源局"
clause = "§5.2.1(2)"
text = "满负荷生产"

[[contact]]
id = "nyj"
unit = "市能源局"
"#);
    x.stock("2023-12-01T08:00:00", "A", 18.0);
    let n = &x.out[0];
    assert_eq!(n.kind.as_str(), "activate");
    assert_eq!(n.measures.len(), 1);
    assert_eq!(n.measures[0]["recipients"], json!(["nyj"]));
    assert_eq!(n.measures[0]["clause"], "朔政办发〔2023〕33号 §5.2.1(2)");
    assert_eq!(n.recipients, vec!["nyj".to_string()]);
}

/// What broke: `stock_t < 20 · burn` in binary floats made 666666.6 t / 33333.33 t a day
/// (exactly 20.0 days) warn, and the aggregate summed 100000.1 + 200000.2 to
/// 300000.30000000005 t. Stock days now compare exactly on decimal millionths.
#[test]
fn stock_days_boundary_is_exact_for_decimal_tonnes() {
    let mut x = h("");
    x.send(
        "2023-12-01T08:00:00",
        "coal/stock",
        json!({"ts": "2023-12-01T08:00:00+08:00", "plant": "A", "stock_t": 666666.6, "burn_t_per_day": 33333.33}),
    );
    // 105004.9 / 15000.7 is exactly 7.0: L1 (< 15) but not beyond level 1 (< 7).
    x.send(
        "2023-12-01T09:00:00",
        "coal/stock",
        json!({"ts": "2023-12-01T09:00:00+08:00", "plant": "B", "stock_t": 105004.9, "burn_t_per_day": 15000.7}),
    );
    assert_eq!(
        x.seen(&["activate", "beyond_level1"]),
        vec!["activate L1 12-01T09:00"]
    );

    let mut y = h("[coal]\nstock_rule = \"aggregate\"\n");
    for (at, plant, s, b) in [
        ("2023-12-01T08:00:00", "A", 100000.1, 5000.005),
        ("2023-12-01T09:00:00", "B", 200000.2, 10000.01),
    ] {
        y.send(
            at,
            "coal/stock",
            json!({"ts": format!("{at}+08:00"), "plant": plant, "stock_t": s, "burn_t_per_day": b}),
        );
    }
    // 300000.3 / 15000.015 is exactly 20.0 days: no warning.
    assert!(y.seen(MOVES).is_empty(), "{:?}", y.seen(&[]));
}

/// Regression (found by probing the simulation's input space): absurd but accepted tonnages
/// and prices overflowed the exact i128 millionths comparison — a panic in debug builds, and
/// in release a wrapped product that warned L1 + beyond-L1 for a plant with 1e35 t in stock.
#[test]
fn absurd_tonnages_and_prices_do_not_overflow() {
    let mut x = h("");
    let huge = json!({"ts": "2023-12-01T09:00:00+08:00", "plant": "A", "stock_t": 1e35, "burn_t_per_day": 1});
    x.send("2023-12-01T09:00:00", "coal/stock", huge);
    // Infinite stock days cannot be represented (nor snapshotted): refused at parse
    // (issue 9 item 6).
    let inf = json!({"ts": "2023-12-01T09:01:00+08:00", "plant": "B", "stock_t": 1e308, "burn_t_per_day": 1e-300});
    let cfg = Arc::clone(x.e.config());
    let p = inf.to_string();
    assert!(input::parse(
        &cfg,
        "ers/shuozhou/coal/stock",
        p.as_bytes(),
        t("2023-12-01T09:01:00")
    )
    .is_err());
    assert!(x.seen(MOVES).is_empty(), "{:?}", x.seen(&[]));
    // Next to nothing in stock (1 t against a burn of 1e300 t a day) does warn.
    let none_left = json!({"ts": "2023-12-01T09:02:00+08:00", "plant": "C", "stock_t": 1, "burn_t_per_day": 1e300});
    x.send("2023-12-01T09:02:00", "coal/stock", none_left);
    assert_eq!(x.seen(MOVES), vec!["activate L1 12-01T09:02"]);

    let mut agg = h("[coal]\nstock_rule = \"aggregate\"\n");
    for (at, plant) in [("2023-12-01T09:00:00", "A"), ("2023-12-01T09:01:00", "B")] {
        let p = json!({"ts": format!("{at}+08:00"), "plant": plant, "stock_t": 1e35, "burn_t_per_day": 1});
        agg.send(at, "coal/stock", p);
    }
    assert!(agg.seen(MOVES).is_empty(), "{:?}", agg.seen(&[]));

    assert!(rules::change_at_least(1e308, 1e-300, 20.0));
    assert!(!rules::change_at_least(1e30, 1e30, 10.0));
    assert!(rules::change_at_least(1.3e30, 1e30, 20.0));
}

// ---- PLANS.md §5 ----------------------------------------------------------------------------

const CMDR: &str = "[coal]\nl1_by_commander = true\n";

fn approve(x: &mut H, at: &str, k: u32) -> Option<String> {
    let id = format!("coal_supply/shuozhou/supply/proposal/{k}");
    x.send(
        at,
        "cmd",
        json!({"cmd": "approve", "proposal_id": id, "by": "指挥长"}),
    )
}

/// §5.1: a manual L1 at L2 is an escalation like any other: proposed, not made; the
/// `beyond_level1` of a plant under 7 days is first checked at the approved move to L1.
#[test]
fn manual_l1_is_proposed_and_beyond_level1_waits_for_the_approve() {
    let mut x = h(CMDR);
    x.stock("2023-12-01T10:00:00", "A", 18.0);
    x.send(
        "2023-12-01T11:00:00",
        "cmd",
        json!({"cmd": "manual", "plan": "coal_supply", "level": "L1", "reason": "r", "by": "b"}),
    );
    x.stock("2023-12-01T12:00:00", "A", 5.0);
    let k = &["activate", "escalate", "proposal", "beyond_level1"];
    assert_eq!(
        x.seen(k),
        vec!["activate L2 12-01T10:00", "proposal L1 12-01T11:00"]
    );
    assert_eq!(approve(&mut x, "2023-12-01T12:30:00", 1), None);
    assert_eq!(
        x.seen(k)[2..],
        ["escalate L1 12-01T12:30", "beyond_level1 L1 12-01T12:30"]
    );
}

/// §5.1 / §4: a reminder and a daily report armed by the same message fire at one instant
/// in the within-message order: reminder before report.
#[test]
fn reminder_comes_before_the_daily_report_at_one_instant() {
    let mut x = h(CMDR);
    x.stock("2023-12-01T06:00:00", "A", 12.0);
    x.end("2023-12-01T09:00:00");
    assert_eq!(
        x.seen(&[]),
        vec![
            "activate L2 12-01T06:00",
            "proposal L1 12-01T06:00",
            "report_first L2 12-01T06:00",
            "reminder L1 12-01T08:00",
            "report_followup L2 12-01T08:00",
        ]
    );
}

/// §5.1: data notices of the message that activates L2 and proposes L1 carry L2.
#[test]
fn data_notices_carry_l2_while_l1_is_proposed() {
    let mut x = h(CMDR);
    x.stock("2023-12-01T06:00:00", "A", 25.0);
    x.end("2023-12-04T07:00:00");
    x.stock("2023-12-04T08:00:00", "A", 12.0);
    let k = &["data_gap", "data_resumed", "activate", "proposal"];
    assert_eq!(
        x.seen(k),
        vec![
            "data_gap none 12-04T06:00",
            "data_resumed L2 12-04T08:00",
            "activate L2 12-04T08:00",
            "proposal L1 12-04T08:00",
        ]
    );
}

/// §5.3: a downgrade hold ending during a silence gap waits; the data's return downgrades
/// at that instant, after `data_resumed`, which carries the level after the move.
#[test]
fn downgrade_hold_waits_for_the_data() {
    let mut x = h("[coal]\nhold_waits_for_data = true\n");
    x.stock("2023-12-01T10:00:00", "A", 10.0);
    x.stock("2023-12-01T11:00:00", "A", 18.0);
    // Stock gap at 12-04 11:00 (armed first), then the downgrade hold: it waits.
    x.end("2023-12-05T00:00:00");
    let k = &["data_gap", "data_resumed", "activate", "downgrade"];
    assert_eq!(
        x.seen(k),
        vec!["activate L1 12-01T10:00", "data_gap L1 12-04T11:00"]
    );
    x.stock("2023-12-05T09:00:00", "A", 18.0);
    assert_eq!(
        x.seen(k)[2..],
        ["data_resumed L2 12-05T09:00", "downgrade L2 12-05T09:00"]
    );
    // Without the key, the same story downgrades at the hold's end.
    let mut y = h("");
    y.stock("2023-12-01T10:00:00", "A", 10.0);
    y.stock("2023-12-01T11:00:00", "A", 18.0);
    y.end("2023-12-05T00:00:00");
    assert_eq!(y.seen(&["downgrade"]), vec!["downgrade L2 12-04T11:00"]);
}

/// §5.2: the first deadline is the first `feedback_time` strictly after the start that lies
/// at least `feedback_grace_hours` after it.
#[test]
fn first_deadline_respects_the_grace() {
    let cfg = Config::from_toml("").unwrap().config;
    let d = |s: &str| fmt_ts(crate::plans::feedback::first_deadline(&cfg, t(s)));
    assert_eq!(d("2023-12-01T13:00:00"), "2023-12-01T17:00:00+08:00");
    assert_eq!(d("2023-12-01T13:00:01"), "2023-12-02T17:00:00+08:00");
    assert_eq!(d("2023-12-01T17:00:00"), "2023-12-02T17:00:00+08:00");
    assert_eq!(d("2023-12-01T23:00:00"), "2023-12-02T17:00:00+08:00");
}

/// §5.2: a report never moves the plan, is refused without a series, and none of the units
/// overdue means no notice.
#[test]
fn reports_never_move_and_need_a_series() {
    let mut x = h("[[unit]]\nname = \"U\"\nplans = [\"coal_supply\"]\n");
    let rep = json!({"cmd": "report", "plan": "coal_supply", "unit": "U", "text": "t", "by": "b"});
    let r = x.send("2023-12-01T09:00:00", "cmd", rep.clone());
    assert!(r.is_some_and(|r| r.contains("no report-back deadlines")));
    x.stock("2023-12-01T10:00:00", "A", 18.0);
    let before = x.out.len();
    assert_eq!(x.send("2023-12-01T11:00:00", "cmd", rep.clone()), None);
    assert_eq!(x.out.len(), before, "a report makes no notice");
    x.end("2023-12-02T18:00:00");
    // 12-01 17:00: U reported; 12-02 17:00: U overdue.
    assert_eq!(
        x.seen(&["report_overdue"]),
        vec!["report_overdue L2 12-02T17:00"]
    );
}

/// `micro`'s fast path gives exactly `(x * 1e6).round() as i128`, the form the exact
/// comparisons were written with: ties away from zero, the float just below a half, the
/// edges of the i64 path, huge, infinite and NaN values, and many random bit patterns and
/// decimals.
#[test]
fn micro_is_round_then_i128_exactly() {
    use super::data::micro;
    let reference = |x: f64| (x * 1e6).round() as i128;
    let mut xs = vec![
        0.0,
        -0.0,
        0.5e-6,
        -0.5e-6,
        1.5e-6,
        -2.5e-6,
        f64::from_bits(0.5e-6_f64.to_bits() - 1),
        20.0,
        666_666.6,
        33_333.33,
        300_000.3,
        15_000.015,
        i64::MAX as f64 / 1e6,
        i64::MIN as f64 / 1e6,
        1e35,
        -1e35,
        1e300,
        f64::MAX,
        f64::MIN,
        f64::MIN_POSITIVE,
        f64::EPSILON,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NAN,
    ];
    let two62 = 4_611_686_018_427_387_904.0_f64 / 1e6;
    for k in -3..=3 {
        xs.push(two62 + f64::from(k) * 1e-3);
        xs.push(-two62 + f64::from(k) * 1e-3);
    }
    // Random bit patterns (every exponent) and random decimals with up to 7 places, and
    // values a hair either side of each half-millionth.
    let mut r = crate::testing::Rng(0x9E37_79B9_7F4A_7C15);
    let mut next = move || r.next_u64();
    for _ in 0..200_000 {
        xs.push(f64::from_bits(next()));
        let cents = (next() % 20_000_000_000) as f64 / 1e7 - 1_000.0;
        xs.push(cents);
        let half = ((next() % 2_000_000_000) as f64 + 0.5) / 1e6;
        xs.push(half);
        xs.push(f64::from_bits(half.to_bits() + 1));
        xs.push(f64::from_bits(half.to_bits() - 1));
    }
    for x in xs {
        assert_eq!(micro(x), reference(x), "{x:e} (bits {:#x})", x.to_bits());
    }
}

/// A plant's stock level is worked out when the report is stored and when a snapshot is
/// read back, and is not itself in the snapshot: the snapshot reads and writes as before,
/// and a restored engine has the same levels (and so warns the same) as the one it was
/// taken from.
#[test]
fn a_plants_stock_level_is_derived_not_snapshotted() {
    let mut x = h("");
    let at = "2023-12-01T09:00:00";
    let ts = format!("{at}+08:00");
    let plants = [("A", 100_000.0, 10_000.0), ("B", 399_999.0, 20_000.0)];
    for (plant, stock, burn) in plants {
        let p = json!({"ts": ts, "plant": plant, "stock_t": stock, "burn_t_per_day": burn});
        x.send(at, "coal/stock", p);
    }
    x.stock(at, "C", 25.0);
    let levels = |e: &Engine| -> Vec<(String, super::Level)> {
        let data = &e.state().regions[0].coal.data;
        data.stocks
            .iter()
            .map(|(p, s)| (p.clone(), s.level()))
            .collect()
    };
    use super::Level::{None as Calm, L1, L2};
    let want = [("A", L1), ("B", L2), ("C", Calm)].map(|(p, l)| (p.to_string(), l));
    assert_eq!(levels(&x.e), want);
    let snap = x.e.snapshot();
    let v: Value = serde_json::from_slice(&snap).unwrap();
    let a = &v["regions"][0]["coal"]["data"]["stocks"]["A"];
    let mut keys: Vec<&String> = a.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, ["burn_t_per_day", "days", "stock_t", "ts"], "{a}");
    let back = Engine::restore(Arc::clone(x.e.config()), &snap).unwrap();
    assert_eq!(levels(&back), want);
    assert_eq!(back.snapshot(), snap);
}
