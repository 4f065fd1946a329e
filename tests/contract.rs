//! Acceptance tests of CONTRACT.md's command line, written from the contract (not from the
//! program's output): several scenario files, `--out`, comments and string payloads, `end`
//! lines on a timer's due time, `--expect` comparison rules, input rejections, `check`, `aqi`.

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::{json, Value};

fn yingji() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_yingji"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

fn tmp(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("yingji-contract-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn notices(out: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(out)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// (id, kind, level, at) of each notice, for short assertions.
fn brief(v: &[Value]) -> Vec<(String, String, String, String)> {
    v.iter()
        .map(|n| {
            let s = |k: &str| n[k].as_str().unwrap_or("").to_string();
            (s("id"), s("kind"), s("level"), s("at"))
        })
        .collect()
}

fn b(id: &str, kind: &str, level: &str, at: &str) -> (String, String, String, String) {
    (id.into(), kind.into(), level.into(), at.into())
}

fn stock(at: &str, days: f64) -> String {
    format!(
        "{{\"at\": \"{at}\", \"topic\": \"ers/shuozhou/coal/stock\", \"payload\": {{\"ts\": \"{at}\", \"plant\": \"A\", \"stock_days\": {days}}}}}\n"
    )
}

fn end(at: &str) -> String {
    format!("{{\"at\": \"{at}\", \"end\": true}}\n")
}

fn replay(files: &[&PathBuf], extra: &[&str]) -> Output {
    let mut c = yingji();
    c.arg("replay");
    for f in files {
        c.arg(f);
    }
    if !extra.contains(&"--config") {
        // Explicit defaults: the shipped config/yingji.toml must not leak into these runs.
        c.args(["--config", "tests/fixtures/defaults.toml"]);
    }
    c.args(extra).output().unwrap()
}

const C1: &str = "coal_supply/shuozhou/supply/1";
const C2: &str = "coal_supply/shuozhou/supply/2";

// ---- Scenario files ------------------------------------------------------------------------

/// File A activates coal L2 (PLANS.md §1, < 20 d) and starts a 72 h lift hold that would end
/// 12-04 12:00; its daily report timer would fire 12-02 08:00. File B runs a week later: on a
/// fresh engine neither A's hold nor its report timer exists, and B's activation is again
/// `activate` with id 1, not an escalation or id 3.
#[test]
fn several_scenario_files_run_on_fresh_engines_in_file_order() {
    let a = tmp(
        "multi-a.jsonl",
        &(stock("2023-12-01T09:00:00+08:00", 18.0)
            + &stock("2023-12-01T12:00:00+08:00", 25.0)
            + &end("2023-12-01T13:00:00+08:00")),
    );
    let bfile = tmp(
        "multi-b.jsonl",
        &(stock("2023-12-10T09:00:00+08:00", 14.0) + &end("2023-12-10T10:00:00+08:00")),
    );
    let out = replay(
        &[&a, &bfile],
        &["--config", "tests/fixtures/contract-example.toml"],
    );
    assert!(out.status.success(), "{out:?}");
    let n = notices(&out.stdout);
    assert_eq!(
        brief(&n),
        vec![
            b(C1, "activate", "L2", "2023-12-01T09:00:00+08:00"),
            b(C2, "report_first", "L2", "2023-12-01T09:00:00+08:00"),
            b(C1, "activate", "L1", "2023-12-10T09:00:00+08:00"),
            b(C2, "report_first", "L1", "2023-12-10T09:00:00+08:00"),
        ]
    );
    assert_eq!(n[2]["previous"], "none");
}

/// Each file is its own scenario on a fresh engine, so a second file may start before the first
/// one ended (the "at going backwards" rule is about lines of one file).
#[test]
fn a_second_file_may_start_earlier_than_the_first_ended() {
    let a = tmp(
        "early-a.jsonl",
        &(stock("2023-12-10T09:00:00+08:00", 18.0) + &end("2023-12-10T10:00:00+08:00")),
    );
    let bfile = tmp("early-b.jsonl", &stock("2023-12-01T09:00:00+08:00", 18.0));
    let out = replay(&[&a, &bfile], &[]);
    assert!(out.status.success(), "{out:?}");
    let ats: Vec<String> = brief(&notices(&out.stdout))
        .into_iter()
        .map(|t| t.3)
        .collect();
    assert_eq!(
        ats,
        [
            "2023-12-10T09:00:00+08:00",
            "2023-12-10T09:00:00+08:00",
            "2023-12-01T09:00:00+08:00",
            "2023-12-01T09:00:00+08:00"
        ]
    );
}

#[test]
fn out_file_gets_the_notices_and_stdout_stays_empty() {
    let s = tmp("out.jsonl", &stock("2023-12-01T09:00:00+08:00", 18.0));
    let dir = std::env::temp_dir().join(format!("yingji-contract-{}", std::process::id()));
    let out_file = dir.join("notices-out.jsonl");
    let _ = std::fs::remove_file(&out_file);
    let out = replay(&[&s], &["--out", out_file.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let written = std::fs::read(&out_file).unwrap();
    assert_eq!(
        brief(&notices(&written)),
        vec![
            b(C1, "activate", "L2", "2023-12-01T09:00:00+08:00"),
            b(C2, "report_first", "L2", "2023-12-01T09:00:00+08:00"),
        ]
    );
}

/// `//` lines are comments; a string payload is the raw bytes: a string holding a valid JSON
/// object is the same message as the object, a string holding broken JSON is rejected.
#[test]
fn comments_and_string_payloads() {
    let text = "// a comment line\n\
        {\"at\": \"2023-12-01T08:00:00+08:00\", \"topic\": \"ers/shuozhou/coal/stock\", \"payload\": \"{\\\"ts\\\": \\\"2023-12-01T08:00:00+08:00\\\", \\\"plant\\\": \\\"A\\\", \\\"stock_days\\\": 5\"}\n\
        // the line above is broken JSON: rejected\n\
        {\"at\": \"2023-12-01T09:00:00+08:00\", \"topic\": \"ers/shuozhou/coal/stock\", \"payload\": \"{\\\"ts\\\": \\\"2023-12-01T09:00:00+08:00\\\", \\\"plant\\\": \\\"A\\\", \\\"stock_days\\\": 18}\"}\n";
    let s = tmp("strings.jsonl", text);
    let out = replay(&[&s], &[]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        brief(&notices(&out.stdout)),
        vec![
            b(C1, "activate", "L2", "2023-12-01T09:00:00+08:00"),
            b(C2, "report_first", "L2", "2023-12-01T09:00:00+08:00"),
        ]
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad_json"));
}

/// Lift hold (PLANS.md §1, 72 h) started 12-01 12:00 ends on a timer at exactly 12-04 12:00:
/// an `end` line at that instant fires it; one a second earlier does not. The plant's stock
/// data-gap timer (`stock_gap_days` 3, PLANS.md §4) was armed by the same 12-01 12:00 message,
/// so it is due at the same instant; timers armed by one message fire in the within-message
/// order, where gap notices come before the move: data_gap, then terminate and report_final.
#[test]
fn end_line_on_a_due_time_fires_the_timer_one_second_before_does_not() {
    let base = stock("2023-12-01T09:00:00+08:00", 18.0) + &stock("2023-12-01T12:00:00+08:00", 25.0);
    let on = tmp(
        "end-on.jsonl",
        &(base.clone() + &end("2023-12-04T12:00:00+08:00")),
    );
    let before = tmp(
        "end-before.jsonl",
        &(base + &end("2023-12-04T11:59:59+08:00")),
    );
    let kinds = |p: &PathBuf| -> Vec<String> {
        let out = replay(&[p], &[]);
        assert!(out.status.success(), "{out:?}");
        notices(&out.stdout)
            .iter()
            .filter(|n| n["at"] == "2023-12-04T12:00:00+08:00")
            .map(|n| n["kind"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(kinds(&on), ["data_gap", "terminate", "report_final"]);
    assert!(kinds(&before).is_empty());
}

/// Exit 2 on an `at` earlier than the previous line's; the error names the file and line.
/// Notices made before the bad line are written (the replay streams).
#[test]
fn at_going_backwards_is_exit_2_after_the_earlier_notices() {
    let s = tmp(
        "backwards.jsonl",
        &(stock("2023-12-01T09:00:00+08:00", 18.0) + &stock("2023-12-01T08:59:59+08:00", 14.0)),
    );
    let out = replay(&[&s], &[]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("backwards.jsonl:2"), "{err}");
    let n = notices(&out.stdout);
    assert_eq!(
        brief(&n),
        vec![
            b(C1, "activate", "L2", "2023-12-01T09:00:00+08:00"),
            b(C2, "report_first", "L2", "2023-12-01T09:00:00+08:00"),
        ],
        "the L1 line after the error must not have been applied"
    );
}

// ---- Comparing (`--expect`) -------------------------------------------------------------------

/// The produced notices of this scenario (PLANS.md §1, lift hold 72 h, stock gap 3 d):
/// 12-01 09:00 activate L2 + report_first; 12-02/03/04 08:00 report_followup;
/// 12-04 12:00 data_gap (stock), terminate, report_final.
fn compare_scenario(name: &str) -> PathBuf {
    tmp(
        &format!("cmp-{name}.jsonl"),
        &(stock("2023-12-01T09:00:00+08:00", 18.0)
            + &stock("2023-12-01T12:00:00+08:00", 25.0)
            + &end("2023-12-04T12:00:00+08:00")),
    )
}

fn expect(name: &str, lines: &[Value]) -> Output {
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let e = tmp(name, &text);
    replay(
        &[&compare_scenario(name)],
        &["--expect", e.to_str().unwrap(), "--out", "/dev/null"],
    )
}

fn coal(kind: &str, level: &str, at: &str) -> Value {
    json!({"plan": "coal_supply", "track": "supply", "kind": kind, "level": level, "at": at})
}

/// K = {moves}: activate and terminate both count, reports and data gaps are ignored.
#[test]
fn expect_moves_count_as_one_kind_and_other_kinds_are_ignored() {
    let act = coal("activate", "L2", "2023-12-01T09:00:00+08:00");
    let term = coal("terminate", "none", "2023-12-04T12:00:00+08:00");
    let ok = expect("k-moves.expected.jsonl", &[act.clone(), term]);
    assert_eq!(ok.status.code(), Some(0), "{ok:?}");
    // only `activate` listed: the terminate is a move too, so the list is one short
    let short = expect("k-short.expected.jsonl", &[act]);
    assert_eq!(short.status.code(), Some(1), "{short:?}");
    // K = {report_followup}: exactly the three daily reports
    let reps: Vec<Value> = ["02", "03", "04"]
        .iter()
        .map(|d| {
            coal(
                "report_followup",
                "L2",
                &format!("2023-12-{d}T08:00:00+08:00"),
            )
        })
        .collect();
    let ok = expect("k-reps.expected.jsonl", &reps);
    assert_eq!(ok.status.code(), Some(0), "{ok:?}");
}

/// `at` compared as instants: `Z` and other offsets name the same instant.
#[test]
fn expect_at_is_compared_as_an_instant() {
    for (i, at) in [
        "2023-12-01T01:00:00Z",
        "2023-12-01T01:00:00+00:00",
        "2023-11-30T20:00:00-05:00",
    ]
    .iter()
    .enumerate()
    {
        let mut act = coal("activate", "L2", at);
        act["previous"] = json!("none");
        let term = coal("terminate", "none", "2023-12-04T04:00:00Z");
        let out = expect(&format!("at-{i}.expected.jsonl"), &[act, term]);
        assert_eq!(out.status.code(), Some(0), "{at}: {out:?}");
    }
    let act = coal("activate", "L2", "2023-12-01T09:00:01+08:00");
    let term = coal("terminate", "none", "2023-12-04T12:00:00+08:00");
    let out = expect("at-off.expected.jsonl", &[act, term]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
}

/// Extra keys: numbers by value, objects on the keys given, arrays element by element.
#[test]
fn expect_extra_keys_are_json_equal() {
    let mut gap = coal("data_gap", "L2", "2023-12-04T12:00:00+08:00");
    // the produced evidence holds more keys; only the given one is compared
    gap["id"] = json!("coal_supply/shuozhou/supply/6");
    let ok = expect("x-obj.expected.jsonl", &[gap.clone()]);
    assert_eq!(ok.status.code(), Some(0), "{ok:?}");
    // numbers by value: 18 and 18.0 are equal (stock_days in the status object)
    let mut act = coal("activate", "L2", "2023-12-01T09:00:00+08:00");
    act["evidence"] = json!({"status": {"stock_days": {"A": 18}}});
    let term = coal("terminate", "none", "2023-12-04T12:00:00+08:00");
    let ok = expect("x-num.expected.jsonl", &[act.clone(), term.clone()]);
    assert_eq!(ok.status.code(), Some(0), "{ok:?}");
    act["evidence"] = json!({"status": {"stock_days": {"A": 18.5}}});
    let bad = expect("x-num-bad.expected.jsonl", &[act.clone(), term.clone()]);
    assert_eq!(bad.status.code(), Some(1), "{bad:?}");
    // arrays: equal length, element by element (the activation lists plant A only)
    act["evidence"] = json!({"plants": ["A"]});
    let ok = expect("x-arr.expected.jsonl", &[act.clone(), term.clone()]);
    assert_eq!(ok.status.code(), Some(0), "{ok:?}");
    act["evidence"] = json!({"plants": ["A", "A"]});
    let bad = expect("x-arr-long.expected.jsonl", &[act.clone(), term.clone()]);
    assert_eq!(bad.status.code(), Some(1), "{bad:?}");
    act["evidence"] = json!({"plants": []});
    let bad = expect("x-arr-short.expected.jsonl", &[act, term]);
    assert_eq!(bad.status.code(), Some(1), "{bad:?}");
}

#[test]
fn expect_line_missing_any_identity_key_is_exit_2() {
    for key in ["plan", "track", "kind", "level", "at"] {
        let mut act = coal("activate", "L2", "2023-12-01T09:00:00+08:00");
        act.as_object_mut().unwrap().remove(key);
        let out = expect(&format!("id-{key}.expected.jsonl"), &[act]);
        assert_eq!(out.status.code(), Some(2), "without {key}: {out:?}");
    }
}

/// A mismatch exits 1 and says which line and what differs.
#[test]
fn expect_mismatch_is_exit_1_with_a_readable_diff() {
    let act = coal("activate", "L1", "2023-12-01T09:00:00+08:00");
    let term = coal("terminate", "none", "2023-12-04T12:00:00+08:00");
    let out = expect("diff.expected.jsonl", &[act, term]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let all =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(all.contains("L1") && all.contains("L2"), "{all}");
    assert!(all.contains("activate"), "{all}");
}

// ---- Input rules through replay -------------------------------------------------------------

/// accept-cross-regions-rejects is accept-cross-regions-clean with one line of every rejection
/// class interleaved; the whole output (every kind, every key) must be identical.
#[test]
fn rejected_lines_change_nothing_at_all() {
    let run = |name: &str| {
        let out = yingji()
            .args([
                "replay",
                &format!("scenarios/{name}.jsonl"),
                "--config",
                &format!("scenarios/{name}.toml"),
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        (out.stdout, String::from_utf8_lossy(&out.stderr).to_string())
    };
    let (clean, _) = run("accept-cross-regions-clean");
    let (mixed, log) = run("accept-cross-regions-rejects");
    assert!(!clean.is_empty());
    assert_eq!(
        String::from_utf8_lossy(&clean),
        String::from_utf8_lossy(&mixed)
    );
    for reason in [
        "bad_json",
        "unknown_region",
        "missing_field",
        "wrong_type",
        "out_of_range",
        "too_large",
        "future",
    ] {
        assert!(log.contains(reason), "no {reason} rejection logged:\n{log}");
    }
}

/// A timestamp exactly 1 day after arrival is not "more than 1 day": accepted.
#[test]
fn a_timestamp_exactly_one_day_ahead_is_accepted() {
    let line = "{\"at\": \"2023-12-01T09:00:00+08:00\", \"topic\": \"ers/shuozhou/coal/stock\", \"payload\": {\"ts\": \"2023-12-02T09:00:00+08:00\", \"plant\": \"A\", \"stock_days\": 18}}\n";
    let out = replay(&[&tmp("ts-1d.jsonl", line)], &[]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(notices(&out.stdout).len(), 2, "{out:?}");
}

// ---- check ----------------------------------------------------------------------------------

const ROLES: [(&str, &str); 11] = [
    ("emergency", "A"),
    ("urban_management", "A"),
    ("natural_resources", "A"),
    ("water", "A"),
    ("housing", "A"),
    ("agriculture", "A"),
    ("transport", "A"),
    ("leader_meteorology", "B"),
    ("leader_flood", "B"),
    ("party_secretary", "C"),
    ("mayor", "C"),
];

fn contacts(skip: Option<&str>) -> String {
    ROLES
        .iter()
        .filter(|(r, _)| Some(*r) != skip)
        .map(|(r, t)| {
            format!(
                "[[contact]]\nid = \"{r}\"\nname = \"{r}\"\nunit = \"u\"\ntier = \"{t}\"\nrole = \"{r}\"\nphone = \"+8613800000000\"\n\n"
            )
        })
        .collect()
}

fn check(name: &str, text: &str) -> Output {
    let p = tmp(name, text);
    yingji()
        .arg("check")
        .arg("--config")
        .arg(&p)
        .output()
        .unwrap()
}

#[test]
fn check_exit_codes() {
    // PLANS.md §3: an unreached person is told to `escalate_to` or their backup.
    let escalate = "[weather_call]\nescalate_to = [\"emergency\"]\n\n";
    let full = check("full.toml", &format!("{escalate}{}", contacts(None)));
    assert_eq!(full.status.code(), Some(0), "{full:?}");
    let nobody = check("nobody.toml", &contacts(None));
    assert_eq!(nobody.status.code(), Some(1), "{nobody:?}");
    assert!(String::from_utf8_lossy(&nobody.stdout).contains("escalate_to is empty"));
    let wrong_tier = check(
        "wrongtier.toml",
        &format!("{escalate}{}", contacts(None)).replace("tier = \"C\"", "tier = \"B\""),
    );
    assert_eq!(wrong_tier.status.code(), Some(1), "{wrong_tier:?}");
    assert!(String::from_utf8_lossy(&wrong_tier.stdout).contains("is tier C"));
    let missing = check(
        "nomayor.toml",
        &format!("{escalate}{}", contacts(Some("mayor"))),
    );
    assert_eq!(missing.status.code(), Some(1), "{missing:?}");
    let empty = check("empty.toml", "");
    assert_eq!(
        empty.status.code(),
        Some(1),
        "no contacts: coverage problems"
    );
    let broken = check("broken.toml", "topic_root = [");
    assert_eq!(broken.status.code(), Some(1), "{broken:?}");
}

// ---- aqi: AQI.md reference cases --------------------------------------------------------------

/// (pm25, pm10, so2, no2, co, o3, aqi 2026, primary 2026, aqi 2012, primary 2012)
type Case = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    i64,
    &'static [&'static str],
    i64,
    &'static [&'static str],
);
const CASES: [Case; 8] = [
    (
        "37",
        "55",
        "8",
        "30",
        "0.6",
        "40",
        54,
        &["PM10", "PM2.5"],
        53,
        &["PM10", "PM2.5"],
    ),
    (
        "172",
        "120",
        "20",
        "40",
        "1.2",
        "30",
        222,
        &["PM2.5"],
        222,
        &["PM2.5"],
    ),
    (
        "80",
        "130",
        "12",
        "35",
        "0.9",
        "20",
        119,
        &["PM2.5"],
        107,
        &["PM2.5"],
    ),
    (
        "20",
        "40",
        "10",
        "20",
        "0.4",
        "210",
        105,
        &["O3"],
        105,
        &["O3"],
    ),
    (
        "310",
        "380",
        "900",
        "90",
        "2.5",
        "15",
        360,
        &["PM2.5"],
        360,
        &["PM2.5"],
    ),
    (
        "600",
        "700",
        "30",
        "60",
        "3.0",
        "10",
        500,
        &["PM10", "PM2.5"],
        500,
        &["PM10", "PM2.5"],
    ),
    (
        "60",
        "120",
        "5",
        "15",
        "0.3",
        "50",
        100,
        &["PM10", "PM2.5"],
        85,
        &["PM10"],
    ),
    ("30", "45", "5", "15", "0.3", "100", 45, &[], 45, &[]),
];

fn aqi(c: &Case, standard: Option<&str>, json_out: bool) -> String {
    let mut cmd = yingji();
    cmd.arg("aqi");
    for (k, v) in ["pm25", "pm10", "so2", "no2", "co", "o3"]
        .iter()
        .zip([c.0, c.1, c.2, c.3, c.4, c.5])
    {
        cmd.arg(format!("{k}={v}"));
    }
    if let Some(s) = standard {
        cmd.args(["--standard", s]);
    }
    if json_out {
        cmd.arg("--json");
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

fn category(aqi: i64) -> &'static str {
    match aqi {
        0..=50 => "优",
        51..=100 => "良",
        101..=150 => "轻度污染",
        151..=200 => "中度污染",
        201..=300 => "重度污染",
        _ => "严重污染",
    }
}

#[test]
fn aqi_reference_cases_json_both_standards() {
    for c in &CASES {
        for (std, want, prim) in [
            (None, c.6, c.7),
            (Some("2026"), c.6, c.7),
            (Some("2012"), c.8, c.9),
        ] {
            let v: Value = serde_json::from_str(&aqi(c, std, true)).unwrap();
            assert_eq!(v["aqi"], json!(want), "{c:?} {std:?}");
            assert_eq!(v["primary"], json!(prim), "{c:?} {std:?}");
            let max = v["iaqi"]
                .as_object()
                .unwrap()
                .values()
                .map(|x| x.as_i64().unwrap())
                .max();
            assert_eq!(max, Some(want), "AQI is the largest IAQI: {v}");
        }
    }
    // first case by hand (2026): PM2.5 37 -> 54, PM10 55 -> 54, SO2 8 -> 3, NO2 30 -> 15,
    // CO 0.6 -> 6, O3 40 -> 13 (each rounded up)
    let v: Value = serde_json::from_str(&aqi(&CASES[0], None, true)).unwrap();
    assert_eq!(
        v["iaqi"],
        json!({"pm25": 54, "pm10": 54, "so2": 3, "no2": 15, "co": 6, "o3": 13})
    );
}

#[test]
fn aqi_reference_cases_text_both_standards() {
    for c in &CASES {
        for (std, want, prim) in [(None, c.6, c.7), (Some("2012"), c.8, c.9)] {
            let text = aqi(c, std, false);
            let first = text.lines().next().unwrap_or("");
            assert!(
                first.contains(&format!("AQI {want}")),
                "{c:?} {std:?}: {text}"
            );
            assert!(first.contains(category(want)), "{c:?} {std:?}: {text}");
            let p = if prim.is_empty() {
                "none".to_string()
            } else {
                prim.join(" ")
            };
            assert!(first.contains(&p), "{c:?} {std:?}: {text}");
        }
    }
}

// ---- More input and time rules ----------------------------------------------------------------

/// "a payload over `max_payload_bytes`": exactly the limit is accepted, one byte more rejected,
/// whether the payload is given as a string (its UTF-8 bytes) or as an object (its text as written).
#[test]
fn payload_size_limit_is_inclusive() {
    let cfg = tmp("limit.toml", "[limits]\nmax_payload_bytes = 300\n");
    let payload = |size: usize| {
        let base =
            r#"{"ts": "2023-12-01T09:00:00+08:00", "plant": "A", "stock_days": 18, "note": ""}"#;
        let p = base.replace(
            r#""note": """#,
            &format!(r#""note": "{}""#, "x".repeat(size - base.len())),
        );
        assert_eq!(p.len(), size);
        p
    };
    for size in [300, 301] {
        let p = payload(size);
        let as_string = format!(
            "{{\"at\": \"2023-12-01T09:00:00+08:00\", \"topic\": \"ers/shuozhou/coal/stock\", \"payload\": {}}}\n",
            serde_json::to_string(&p).unwrap()
        );
        let as_object = format!(
            "{{\"at\": \"2023-12-01T09:00:00+08:00\", \"topic\": \"ers/shuozhou/coal/stock\", \"payload\": {p}}}\n"
        );
        for (form, text) in [("string", as_string), ("object", as_object)] {
            let s = tmp(&format!("size-{size}-{form}.jsonl"), &text);
            let out = replay(&[&s], &["--config", cfg.to_str().unwrap()]);
            assert!(out.status.success(), "{out:?}");
            let n = notices(&out.stdout).len();
            assert_eq!(
                n,
                if size == 300 { 2 } else { 0 },
                "{size} bytes as {form}: {out:?}"
            );
        }
    }
}

/// PLANS.md: all times are local (Asia/Shanghai); a scenario written in UTC still gets its daily
/// report at 08:00 local, and notices' `at` compare equal to an expected `at` with fractions.
#[test]
fn report_time_is_local_whatever_offset_the_scenario_uses() {
    let s = tmp(
        "utc.jsonl",
        "{\"at\": \"2023-12-01T01:00:00Z\", \"topic\": \"ers/shuozhou/coal/stock\", \"payload\": {\"ts\": \"2023-12-01T01:00:00Z\", \"plant\": \"A\", \"stock_days\": 18}}\n{\"at\": \"2023-12-02T01:00:00Z\", \"end\": true}\n",
    );
    let e = tmp(
        "utc.expected.jsonl",
        "{\"plan\":\"coal_supply\",\"track\":\"supply\",\"kind\":\"report_followup\",\"level\":\"L2\",\"at\":\"2023-12-02T00:00:00.000Z\"}\n",
    );
    let out = replay(
        &[&s],
        &["--expect", e.to_str().unwrap(), "--out", "/dev/null"],
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}

/// AQI.md: a missing pollutant is left out; above the top breakpoint the IAQI is 500; SO2 1 h
/// above 800 gives 200.
#[test]
fn aqi_missing_pollutants_and_caps() {
    let run = |args: &[&str]| -> Value {
        let out = yingji()
            .arg("aqi")
            .args(args)
            .arg("--json")
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        serde_json::from_slice(&out.stdout).unwrap()
    };
    assert_eq!(
        run(&["pm25=172"]),
        json!({"aqi": 222, "iaqi": {"pm25": 222}, "primary": ["PM2.5"]})
    );
    assert_eq!(run(&["o3=1300"])["iaqi"]["o3"], 500);
    for std in ["2026", "2012"] {
        assert_eq!(run(&["so2=900", "--standard", std])["iaqi"]["so2"], 200);
    }
}

/// "The same inputs always give the same ids": two replays of the same files are byte-identical.
#[test]
fn the_same_inputs_give_the_same_notices_and_ids() {
    let run = || {
        let out = yingji()
            .args([
                "replay",
                "scenarios/accept-cross-order-message.jsonl",
                "scenarios/accept-cross-regions-rejects.jsonl",
                "--config",
                "scenarios/accept-cross-regions-rejects.toml",
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        out.stdout
    };
    let first = run();
    assert!(!first.is_empty());
    assert_eq!(first, run());
}
