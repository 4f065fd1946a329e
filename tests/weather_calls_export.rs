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
    let csv = export_replayed("rs-7", "weather-lift-mid-round");
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows.len(), 1 + 8 + 1, "{csv}");
    assert!(rows[0].starts_with("time,event,call_id,round,hazard,level,person"));
    assert_eq!(
        rows[2],
        "2024-07-10T14:00:00+08:00,rs-7,rs-7/1,1,rainstorm,orange,cg,王城管,市城市管理局,A,\
         attempt,1,phone,,,,,,shuozhou"
    );
    assert_eq!(
        rows[9],
        "2024-07-10T14:05:00+08:00,rs-7,rs-7/1,1,rainstorm,orange,cg,王城管,市城市管理局,A,\
         ack,2,phone,cg,false,false,closed,,shuozhou"
    );
}

#[test]
fn export_without_a_store_says_so() {
    let dir = tempdir("no-store");
    let cfg = dir.join("c.toml");
    std::fs::write(
        &cfg,
        format!("[store]\npath = {:?}\n", dir.join("missing.db")),
    )
    .unwrap();
    let out = yingji()
        .args(["calls", "export", "--event", "rs-7", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no store"),
        "{out:?}"
    );
}

/// Without `--replay` the register comes from the daemon's store: snapshot + journal,
/// advanced to now, so calls made by timers after the last input are listed too.
#[test]
fn export_reads_the_daemons_store() {
    use yingji::daemon::store::Store;
    let dir = tempdir("store");
    let db = dir.join("yingji.db");
    let scen = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("scenarios/weather-lift-mid-round.jsonl"),
    )
    .unwrap();
    let mut store = Store::open(&db).unwrap();
    let tx = store.begin().unwrap();
    for line in scen.lines().filter(|l| l.starts_with('{')) {
        if let yingji::replay::Event::Message { at, topic, payload } =
            yingji::replay::parse_line(line).unwrap()
        {
            tx.journal(at, &topic, &payload).unwrap();
        }
    }
    tx.commit().unwrap();
    drop(store);
    let toml = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("scenarios/weather-lift-mid-round.toml"),
    )
    .unwrap();
    let cfg = dir.join("c.toml");
    std::fs::write(&cfg, format!("{toml}\n[store]\npath = {:?}\n", db)).unwrap();
    let from_store = yingji()
        .args(["calls", "export", "--event", "rs-7", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(from_store.status.success(), "{from_store:?}");
    let from_replay = yingji()
        .args(["calls", "export", "--event", "rs-7", "--config"])
        .arg(&cfg)
        .args(["--replay", "scenarios/weather-lift-mid-round.jsonl"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&from_store.stdout),
        String::from_utf8_lossy(&from_replay.stdout)
    );
    assert_eq!(
        String::from_utf8_lossy(&from_store.stdout).lines().count(),
        10
    );
}

/// `calls export --event EVENT` of `scenarios/STEM.jsonl` replayed with `STEM.toml`.
fn export_replayed(event: &str, stem: &str) -> String {
    let out = yingji()
        .args(["calls", "export", "--event", event, "--config"])
        .arg(format!("scenarios/{stem}.toml"))
        .arg("--replay")
        .arg(format!("scenarios/{stem}.jsonl"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

fn tempdir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("yingji-export-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
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

/// What broke: with two regions the same warning id made rows that could not be told apart
/// (no region column), and ack rows did not say which attempt was answered.
#[test]
fn export_names_the_region_and_the_attempt_acked() {
    let csv = export_replayed("w1", "accept-weather-regions");
    let rows: Vec<&str> = csv.lines().collect();
    assert!(rows[0].ends_with(",told,region"), "{csv}");
    // shuozhou: WeChat 12:00, phone 12:01, unreached 12:02; huairen: WeChat 12:00:30,
    // ack 12:01:10 of that WeChat call.
    assert_eq!(
        rows[1..],
        [
            "2024-08-02T12:00:00+08:00,w1,w1/1,1,rainstorm,orange,a1,a1,测试单位,A,attempt,1,wechat,,,,,,shuozhou",
            "2024-08-02T12:01:00+08:00,w1,w1/1,1,rainstorm,orange,a1,a1,测试单位,A,attempt,2,phone,,,,,,shuozhou",
            "2024-08-02T12:02:00+08:00,w1,w1/1,1,rainstorm,orange,a1,a1,测试单位,A,unreached,2,phone,,,,,duty,shuozhou",
            "2024-08-02T12:00:30+08:00,w1,w1/1,1,rainstorm,red,a1,a1,测试单位,A,attempt,1,wechat,,,,,,huairen",
            "2024-08-02T12:01:10+08:00,w1,w1/1,1,rainstorm,red,a1,a1,测试单位,A,ack,1,wechat,a1,false,false,current,,huairen",
        ],
        "{csv}"
    );
}
