//! The progress bar of `yingji replay`: on a terminal only, never with `--quiet`, and not a
//! byte of it in a pipe or a file.

use std::process::Command;

fn repo() -> &'static str {
    env!("CARGO_MANIFEST_DIR")
}

fn out_file(test: &str) -> String {
    let d = std::env::temp_dir().join(format!("yingji-progress-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(format!("{test}.jsonl")).display().to_string()
}

/// Runs `yingji replay ARGS` with stdin, stdout and stderr on a pseudo-terminal (util-linux
/// `script`); returns what the terminal showed.
fn on_a_terminal(args: &str) -> String {
    let cmd = format!(
        "{} replay {args} --config tests/fixtures/defaults.toml",
        env!("CARGO_BIN_EXE_yingji")
    );
    let out = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .current_dir(repo())
        .stdin(std::process::Stdio::null())
        .output()
        .expect("util-linux `script` runs");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_terminal_shows_bytes_rate_and_virtual_time() {
    let out = out_file("tty");
    let shown = on_a_terminal(&format!("scenarios/pollution-escalate.jsonl --out {out}"));
    let size = std::fs::metadata(format!("{}/scenarios/pollution-escalate.jsonl", repo()))
        .unwrap()
        .len();
    assert!(shown.contains("msg/s"), "{shown:?}");
    assert!(shown.contains("virtual time 2023-12-03 16:05"), "{shown:?}");
    // indicatif's binary units: 9.73 KiB/9.73 KiB when the file is read.
    let kib = format!(
        "{:.2} KiB/{:.2} KiB",
        size as f64 / 1024.0,
        size as f64 / 1024.0
    );
    assert!(shown.contains(&kib), "{kib} in {shown:?}");
}

/// Notices printed on the terminal are the progress: no bar to tear them.
#[test]
fn no_bar_when_the_notices_go_to_the_terminal() {
    let shown = on_a_terminal("scenarios/pollution-escalate.jsonl");
    assert!(shown.contains("\"kind\":\"escalate\""), "{shown:?}");
    assert!(!shown.contains("msg/s"), "{shown:?}");
}

#[test]
fn quiet_shows_nothing_even_on_a_terminal() {
    let out = out_file("quiet");
    let shown = on_a_terminal(&format!(
        "scenarios/pollution-escalate.jsonl --quiet --out {out}"
    ));
    assert_eq!(shown, "");
}

/// stderr a pipe: the rejections, one a line, and nothing else — no bar, no carriage
/// return, no escape sequence.
#[test]
fn a_pipe_gets_the_rejections_and_no_progress_bytes() {
    let run = |scenario: &str| {
        Command::new(env!("CARGO_BIN_EXE_yingji"))
            .args(["replay", scenario, "--out", &out_file("pipe")])
            .args(["--config", "tests/fixtures/defaults.toml"])
            .current_dir(repo())
            .output()
            .unwrap()
    };
    let clean = run("scenarios/pollution-escalate.jsonl");
    assert!(clean.status.success(), "{clean:?}");
    assert_eq!(String::from_utf8_lossy(&clean.stderr), "");

    let rejected = run("scenarios/rejected-only.jsonl");
    assert!(rejected.status.success(), "{rejected:?}");
    let err = String::from_utf8(rejected.stderr).unwrap();
    assert!(!err.is_empty());
    assert!(!err.contains(['\r', '\x1b']), "{err:?}");
    for line in err.lines() {
        assert!(
            line.starts_with("scenarios/rejected-only.jsonl: ") && line.contains(" rejected ("),
            "{line:?}"
        );
    }
}
