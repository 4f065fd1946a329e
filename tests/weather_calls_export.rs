//! `yingji calls export --event ID` (PLANS.md §3 "The register", CONTRACT.md "Command line").

use std::process::Command;

fn yingji() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_yingji"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

/// The lift-mid-round story: 4 first attempts, 4 phone attempts at 14:03, the lift at
/// 14:04 cancels the rest; cg's ack after the lift is recorded against the closed round.
#[test]
fn export_from_replayed_scenario_lists_attempts_and_acks() {
    let out = yingji()
        .args([
            "calls",
            "export",
            "--event",
            "rs-7",
            "--config",
            "scenarios/weather-lift-mid-round.toml",
            "--replay",
            "scenarios/weather-lift-mid-round.jsonl",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let csv = String::from_utf8(out.stdout).unwrap();
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows.len(), 1 + 8 + 1, "{csv}");
    assert!(rows[0].starts_with("time,event,call_id,round,hazard,level,person"));
    assert_eq!(
        rows[2],
        "2024-07-10T14:00:00+08:00,rs-7,rs-7/1,1,rainstorm,orange,cg,王城管,市城市管理局,A,\
         attempt,1,phone,,,,,"
    );
    assert_eq!(
        rows[9],
        "2024-07-10T14:05:00+08:00,rs-7,rs-7/1,1,rainstorm,orange,cg,王城管,市城市管理局,A,\
         ack,,,cg,false,false,closed,"
    );
}

#[test]
fn export_without_replay_says_the_store_comes_with_the_daemon() {
    let out = yingji()
        .args(["calls", "export", "--event", "rs-7"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("daemon"));
}

#[test]
fn export_of_an_unknown_event_fails() {
    let out = yingji()
        .args([
            "calls",
            "export",
            "--event",
            "nope",
            "--config",
            "scenarios/weather-lift-mid-round.toml",
            "--replay",
            "scenarios/weather-lift-mid-round.jsonl",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}
