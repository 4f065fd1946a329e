//! The live scenario of the end-to-end tests and the checks shared by them.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use yingji::daemon::sink::SinkKind;
use yingji::daemon::store::Store;
use yingji::time::{floor_hour, fmt_ts, Ts};

use super::*;

pub fn config(dir: &Path, port: u16, name: &str, protocol: u8, email: &str) -> std::path::PathBuf {
    let text = format!(
        r#"
[mqtt]
url = "mqtt://127.0.0.1:{port}"
client_id = "yingji-e2e-{name}-{pid}"
protocol = {protocol}
keep_alive_s = 5

[store]
path = "{db}"
snapshot_every = 3

[http]
listen = "127.0.0.1:0"

[weather_call]
ack_timeout_s = 1
phone_retry_s = 1
phone_attempts = 2
escalate_to = ["duty"]

[pollution]
aqi_gap_hours = 0.0005  # 1.8 s: data gaps open and close during the test

[limits]
max_payload_bytes = 2048
{email}
[[contact]]
id = "yjj"
name = "张应急"
unit = "市应急管理局"
tier = "A"
role = "emergency"
backup = "yjj-dep"
wechat = "zhangyj"
phone = "+8613800000001"
email = "yjj@example.org"

[[contact]]
id = "cg"
name = "王城管"
unit = "市城市管理局"
tier = "A"
role = "urban_management"
phone = "+8613800000003"

[[contact]]
id = "yjj-dep"
name = "刘副局长"
unit = "市应急管理局"
phone = "+8613800000004"

[[contact]]
id = "duty"
name = "值班室"
unit = "市应急管理局"
email = "duty@example.org"
plans = ["severe_weather", "heavy_pollution", "coal_supply"]
"#,
        pid = std::process::id(),
        db = dir.join("yingji.db").display(),
    );
    let p = dir.join("yingji.toml");
    write(&p, &text);
    p
}

pub fn m(topic: &str, payload: impl Into<Vec<u8>>) -> (String, Vec<u8>) {
    (topic.to_string(), payload.into())
}

/// Inputs of the live scenario, stamped around `now`. `part` 0, 1, 2 split it in three.
pub fn inputs(now: Ts, part: u8) -> Vec<(String, Vec<u8>)> {
    let hour = floor_hour(now);
    let h = |k: i64| fmt_ts(hour - chrono::Duration::hours(k));
    match part {
        0 => vec![
            m(
                "ers/shuozhou/weather/warning",
                format!(
                    r#"{{"ts": "{}", "id": "e2e-rain", "hazard": "rainstorm", "action": "issue", "color": "red"}}"#,
                    fmt_ts(now)
                ),
            ),
            m("ers/shuozhou/air/aqi", "{not json"),
            m(
                "ers/shuozhou/air/aqi",
                format!(r#"{{"ts": "{}", "aqi": 230, "primary": "PM2.5"}}"#, h(2)),
            ),
        ],
        1 => vec![
            m(
                "ers/shuozhou/air/aqi",
                format!(r#"{{"ts": "{}", "aqi": 260, "primary": "PM2.5"}}"#, h(1)),
            ),
            m("ers/shuozhou/air/aqi", r#"{"ts": "x", "aqi": -5}"#),
            m(
                "ers/shuozhou/coal/stock",
                format!(
                    r#"{{"ts": "{}", "plant": "p1", "stock_days": 4}}"#,
                    fmt_ts(now)
                ),
            ),
            m(
                "ers/shuozhou/cmd",
                r#"{"cmd": "ack", "call_id": "e2e-rain/1", "person": "yjj"}"#,
            ),
        ],
        _ => vec![
            m(
                "ers/shuozhou/air/aqi",
                format!(r#"{{"ts": "{}", "aqi": 280, "primary": "PM2.5"}}"#, h(0)),
            ),
            m("ers/shuozhou/air/aqi", vec![b'x'; 4096]),
            m(
                "ers/shuozhou/weather/warning",
                format!(
                    r#"{{"ts": "{}", "id": "e2e-rain", "hazard": "rainstorm", "action": "lift"}}"#,
                    fmt_ts(now)
                ),
            ),
        ],
    }
}

/// Inputs of `inputs` that are malformed (rejected before the engine).
pub const MALFORMED: usize = 3;

/// The engine's time when the daemon stopped, as the store holds it: its last snapshot
/// (taken at shutdown) and the journal after it. Every timer due by then has fired.
pub fn engine_time(dir: &Path, cfg: &Path) -> Option<Ts> {
    let config = std::sync::Arc::new(yingji::Config::load(Some(cfg)).unwrap().config);
    let store = Store::open(&dir.join("yingji.db")).unwrap();
    yingji::daemon::core::restore_engine(&store, &config)
        .unwrap()
        .engine
        .now()
}

/// The notices the store holds, and its journal as a scenario file ending at the time the
/// daemon's engine had reached when it stopped (so the replay fires exactly the timers the
/// daemon fired, also those after the last input); runs `yingji replay` on it and returns
/// (outbox notices, replayed notices).
pub fn replay_journal(dir: &Path, cfg: &Path) -> (Vec<Value>, Vec<Value>) {
    let store = Store::open(&dir.join("yingji.db")).unwrap();
    let rows = store.journal_after(0).unwrap();
    let stored: Vec<Value> = store
        .notices()
        .unwrap()
        .iter()
        .map(|n| serde_json::to_value(n).unwrap())
        .collect();
    let mut end = rows.last().map(|r| r.at).max(engine_time(dir, cfg));
    for n in store.notices().unwrap() {
        end = end.max(Some(n.at));
    }
    let mut text = String::new();
    for r in &rows {
        let payload = String::from_utf8(r.payload.clone()).unwrap();
        text += &serde_json::json!({"at": fmt_ts(r.at), "topic": r.topic, "payload": payload})
            .to_string();
        text.push('\n');
    }
    if let Some(end) = end {
        text += &serde_json::json!({"at": fmt_ts(end), "end": true}).to_string();
        text.push('\n');
    }
    let scen = dir.join("journal.jsonl");
    write(&scen, &text);
    let out = dir.join("replayed.jsonl");
    let st = std::process::Command::new(BIN)
        .args(["replay", "--quiet", "--config"])
        .arg(cfg)
        .arg("--out")
        .arg(&out)
        .arg(&scen)
        .status()
        .unwrap();
    assert!(st.success(), "replay of the journal failed");
    let replayed = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (stored, replayed)
}

/// GET `path` from the daemon's HTTP listener (its address is in the log).
pub fn http_get(d: &Daemon, path: &str) -> String {
    use std::io::{Read, Write};
    let log = d.log_text();
    let line = log
        .lines()
        .find(|l| l.contains("/healthz and /metrics"))
        .expect("http listening");
    let v: Value = serde_json::from_str(line).unwrap();
    let addr = v["addr"].as_str().unwrap();
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

pub fn ids(v: &[Value]) -> Vec<String> {
    v.iter()
        .map(|n| n["id"].as_str().unwrap().to_string())
        .collect()
}

pub fn assert_all_delivered(dir: &Path) {
    let store = Store::open(&dir.join("yingji.db")).unwrap();
    let pending = store.pending(SinkKind::Mqtt).unwrap();
    assert!(
        pending.is_empty(),
        "undelivered after a clean stop: {:?}",
        pending
            .iter()
            .map(|p| (&p.notice.id, &p.sink))
            .collect::<Vec<_>>()
    );
}

pub fn journal_len(dir: &Path) -> usize {
    Store::open(&dir.join("yingji.db"))
        .unwrap()
        .journal_after(0)
        .unwrap()
        .len()
}

pub fn wait_journal(dir: &Path, n: usize) {
    wait_for(
        Duration::from_secs(60),
        &format!("{n} journaled inputs"),
        || (journal_len(dir) >= n).then_some(()),
    );
}

/// The notices the store holds now (the daemon may be running: a reader is let in).
pub fn stored(dir: &Path) -> Vec<yingji::notice::Notice> {
    Store::open(&dir.join("yingji.db"))
        .unwrap()
        .notices()
        .unwrap()
}

/// Waits (generously) until the store holds `n` notices matching `f`.
pub fn wait_stored(dir: &Path, what: &str, n: usize, f: impl Fn(&yingji::notice::Notice) -> bool) {
    wait_for(Duration::from_secs(60), what, || {
        (stored(dir).iter().filter(|x| f(x)).count() >= n).then_some(())
    });
}

/// The live scenario's call round (two people, none of whom answers in time) ran out.
pub fn wait_round_over(dir: &Path) {
    wait_stored(dir, "the call round to run out", 2, |n| {
        n.kind.as_str() == "call_unreached"
    });
}

/// A data gap opened after the last reading journaled so far: a timer fired after the
/// last input.
pub fn wait_last_gap(dir: &Path) {
    let last = Store::open(&dir.join("yingji.db"))
        .unwrap()
        .journal_after(0)
        .unwrap()
        .iter()
        .filter(|r| r.topic.ends_with("/air/aqi"))
        .map(|r| r.at)
        .max()
        .expect("a reading journaled");
    wait_stored(dir, "a data gap after the last reading", 1, |n| {
        n.kind.as_str() == "data_gap" && n.at > last
    });
}

pub fn is_malformed(_topic: &str, p: &[u8]) -> bool {
    p.len() > 2048 || p == b"{not json" || p.starts_with(br#"{"ts": "x""#)
}

/// A test SMTP server (tests/e2e_support/smtp_sink.py) writing a JSON file per message.
pub struct Smtp(std::process::Child);

impl Smtp {
    pub fn start(port: u16, out: &Path) -> Smtp {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e_support/smtp_sink.py");
        let child = std::process::Command::new("python3")
            .arg(script)
            .arg(port.to_string())
            .arg(out)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("python3 for the SMTP test server");
        wait_for(
            Duration::from_secs(60),
            "the SMTP test server (pip install aiosmtpd)",
            || std::net::TcpStream::connect(("127.0.0.1", port)).ok(),
        );
        Smtp(child)
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn run(cmd: &str, args: &[&str], dir: &Path) {
    let st = std::process::Command::new(cmd)
        .args(args)
        .current_dir(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(st.success(), "{cmd} {args:?} failed");
}

/// A test CA and a server certificate for 127.0.0.1 (openssl).
pub fn make_certs(dir: &Path) {
    run(
        "openssl",
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=yingji-test-ca",
        ],
        dir,
    );
    run(
        "openssl",
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
        dir,
    );
    write(
        &dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    );
    run(
        "openssl",
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
        dir,
    );
}
