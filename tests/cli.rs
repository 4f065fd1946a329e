//! The `yingji` binary as a user runs it.

use std::path::Path;
use std::process::Command;

fn yingji() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_yingji"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

fn tmp(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("yingji-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn replay_of_rejected_input_prints_nothing_and_exits_0() {
    let out = yingji()
        .args([
            "replay",
            "scenarios/rejected-only.jsonl",
            "--config",
            "config/yingji.toml",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad_json") && err.contains("unknown_region"),
        "{err}"
    );
}

/// `yingji replay scenarios/rejected-only.jsonl --expect EXP`.
fn replay_rejected_only_expecting(exp: &Path) -> std::process::Output {
    yingji()
        .args([
            "replay",
            "scenarios/rejected-only.jsonl",
            "--config",
            "tests/fixtures/defaults.toml",
            "--quiet",
            "--expect",
        ])
        .arg(exp)
        .output()
        .unwrap()
}

#[test]
fn expect_fails_with_a_readable_diff_when_a_notice_is_missing() {
    let exp = tmp(
        "missing.expected.jsonl",
        r#"{"plan":"heavy_pollution","track":"graded","kind":"activate","level":"yellow","at":"2023-12-01T08:05:00+08:00"}"#,
    );
    let out = replay_rejected_only_expecting(&exp);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("- missing (expected line 1)"), "{err}");
}

#[test]
fn expect_line_without_identity_is_exit_2() {
    let exp = tmp(
        "bad.expected.jsonl",
        r#"{"plan":"heavy_pollution","kind":"activate"}"#,
    );
    let out = replay_rejected_only_expecting(&exp);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

#[test]
fn at_going_backwards_is_exit_2() {
    let s = tmp(
        "back.jsonl",
        "{\"at\": \"2023-12-01T08:05:00+08:00\", \"end\": true}\n{\"at\": \"2023-12-01T08:00:00+08:00\", \"end\": true}\n",
    );
    let out = yingji()
        .arg("replay")
        .arg(&s)
        .args(["--config", "tests/fixtures/defaults.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

#[test]
fn aqi_json_matches_the_contract_shape() {
    let out = yingji()
        .args([
            "aqi", "pm25=37", "pm10=55", "so2=8", "no2=30", "co=0.6", "o3=40", "--json",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["aqi"], 54);
    assert_eq!(v["iaqi"]["pm10"], 54);
    assert_eq!(v["primary"], serde_json::json!(["PM10", "PM2.5"]));
    let out = yingji()
        .args(["aqi", "pm25=60", "pm10=120", "--standard", "2012", "--json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["aqi"], 85);
    assert_eq!(v["primary"], serde_json::json!(["PM10"]));
}

#[test]
fn check_reports_problems_with_exit_1() {
    let cfg = tmp(
        "check.toml",
        "[[contact]]\nid = \"a\"\nrole = \"water\"\ntier = \"A\"\n",
    );
    let out = yingji()
        .arg("check")
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("problem: contact[0]: ") && text.contains("role = mayor"),
        "{text}"
    );
    let hook = tmp(
        "hook.toml",
        "[[webhook]]\nkind = \"pager\"\nurl = \"http://127.0.0.1:9\"\n",
    );
    let out = yingji()
        .arg("check")
        .arg("--config")
        .arg(&hook)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("pager"),
        "{out:?}"
    );
    let bad = tmp("bad.toml", "[coal]\nlift_hold_hours = \"long\"\n");
    let out = yingji()
        .arg("check")
        .arg("--config")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("lift_hold_hours"));
    assert!(Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("config/yingji.toml")
        .exists());
}

/// `yingji replay ... | head`: the reader goes away after one line; yingji stops quietly
/// with exit 0 (no "Broken pipe", no panic), as ripgrep does.
#[test]
fn replay_into_a_closed_pipe_exits_0_quietly() {
    use std::io::BufRead;
    use std::process::Stdio;
    let mut cmd = yingji();
    cmd.args(["replay", "--quiet"]);
    // The same scenario many times (each on a fresh engine): far more than a pipe holds.
    for _ in 0..200 {
        cmd.arg("scenarios/weather-two-hazards.jsonl");
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    assert!(first.starts_with('{'), "{first}");
    drop(out);
    let done = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&done.stderr);
    assert!(done.status.success(), "{:?}: {err}", done.status);
    assert!(err.is_empty(), "{err}");
}

/// Issue 9 item 8: `check` flags an invalid broker or SMTP URL, and never prints the
/// secret in it (expanded from `${ENV}` or literal), nor a TOML error's offending line.
#[test]
fn check_flags_invalid_urls_without_echoing_secrets() {
    let cfg = tmp(
        "bad-urls.toml",
        "[mqtt]\nurl = \"mqtx://ops:MQTTSECRET1@broker\"\n\n[email]\nsmtp_url = \"smtp://u:${YINGJI_CLI_SMTP_PW}@host:notaport\"\nfrom = \"y <y@x.org>\"\n",
    );
    let out = yingji()
        .args(["check", "--config"])
        .arg(&cfg)
        .env("YINGJI_CLI_SMTP_PW", "SMTPSECRET2")
        .output()
        .unwrap();
    let text = printed(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("mqtt.url") && text.contains("email.smtp_url"),
        "{text}"
    );
    assert!(
        !text.contains("MQTTSECRET1") && !text.contains("SMTPSECRET2"),
        "{text}"
    );
    let cfg = tmp("bad-type.toml", "[mqtt]\npassword = 987654321987\n");
    let out = yingji()
        .args(["check", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let text = printed(&out);
    assert_ne!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("line 2"), "says where: {text}");
    assert!(!text.contains("987654321987"), "{text}");
}

/// Everything a command printed, stdout then stderr.
fn printed(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
