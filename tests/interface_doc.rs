//! docs/interface.md is tested: every example in it is read with the product's own
//! parsers (input payloads, commands, notices, scenario lines, expected lines, config
//! blocks), and README.md and docs/ link only files that are in the repository.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use yingji::config::Config;
use yingji::time::parse_ts;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Keys and commands the interface documents before the product knows them (a branch
/// that adds them is being built): each must be unknown today, and the test fails once it
/// is known, so these lists cannot go stale. None now.
const PENDING_KEYS: &[&str] = &[];
const PENDING_COMMANDS: &[&str] = &[];

/// A fenced block: its info string (language and tag) and its text.
struct Block {
    line: usize,
    info: String,
    text: String,
}

fn blocks(md: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut cur: Option<Block> = None;
    for (i, l) in md.lines().enumerate() {
        if let Some(info) = l.strip_prefix("```") {
            match cur.take() {
                None => {
                    cur = Some(Block {
                        line: i + 1,
                        info: info.trim().to_string(),
                        text: String::new(),
                    })
                }
                Some(b) => out.push(b),
            }
        } else if let Some(b) = cur.as_mut() {
            b.text.push_str(l);
            b.text.push('\n');
        }
    }
    assert!(cur.is_none(), "an unclosed code block");
    out
}

fn json(b: &Block) -> serde_json::Value {
    serde_json::from_str(&b.text)
        .unwrap_or_else(|e| panic!("docs/interface.md:{}: not JSON: {e}", b.line))
}

#[test]
fn every_example_in_the_interface_doc_parses() {
    let md = std::fs::read_to_string(root().join("docs/interface.md")).unwrap();
    let cfg = Config::from_toml("").unwrap().config;
    // Inputs are read with the shipped config (its member units answer `report`).
    let shipped = std::fs::read_to_string(root().join("config/yingji.toml")).unwrap();
    let shipped = Config::from_toml(&shipped).unwrap().config;
    let arrived = parse_ts("2024-07-10T14:10:00+08:00").unwrap();
    let mut checked = std::collections::BTreeMap::<String, usize>::new();
    let mut unknown_keys = Vec::new();
    for b in blocks(&md) {
        let at = format!("docs/interface.md:{}", b.line);
        let (lang, tag) = b.info.split_once(' ').unwrap_or((&b.info, ""));
        let kind = match (lang, tag) {
            ("json", t) if t.starts_with("topic=") => {
                let topic = &t["topic=".len()..];
                let payload = b.text.trim();
                let v: serde_json::Value = serde_json::from_str(payload).unwrap();
                let cmd = v.get("cmd").and_then(|c| c.as_str());
                let r = yingji::input::parse(&shipped, topic, payload.as_bytes(), arrived);
                match cmd {
                    Some(c) if PENDING_COMMANDS.contains(&c) => {
                        assert!(
                            r.is_err(),
                            "{at}: {c} is accepted now: take it off PENDING_COMMANDS"
                        )
                    }
                    _ => assert!(r.is_ok(), "{at}: {topic} {payload}: {:?}", r.err()),
                }
                "input"
            }
            ("json", "notice") => {
                let n: yingji::Notice = serde_json::from_str(&b.text)
                    .unwrap_or_else(|e| panic!("{at}: not a notice: {e}"));
                // What the product writes reads back the same.
                let again: serde_json::Value = serde_json::from_str(&n.to_json_line()).unwrap();
                assert_eq!(again, json(&b), "{at}");
                "notice"
            }
            ("json", "state") => {
                let v = json(&b);
                let tracks: std::collections::BTreeMap<String, String> =
                    serde_json::from_value(v["tracks"].clone()).unwrap();
                let made = yingji::daemon::render::state_json(
                    v["region"].as_str().unwrap(),
                    v["plan"].as_str().unwrap(),
                    &tracks,
                );
                assert_eq!(
                    serde_json::from_slice::<serde_json::Value>(&made).unwrap(),
                    v
                );
                "state"
            }
            ("json", "rejected") => {
                let v = json(&b);
                let r =
                    yingji::input::parse(&cfg, v["topic"].as_str().unwrap(), b"{not json", arrived)
                        .expect_err("malformed");
                let made = yingji::daemon::render::rejected_json(
                    parse_ts(v["at"].as_str().unwrap()).unwrap(),
                    &r,
                );
                let made: serde_json::Value = serde_json::from_slice(&made).unwrap();
                assert_eq!(made["class"], v["class"], "{at}");
                let keys = |x: &serde_json::Value| {
                    x.as_object().unwrap().keys().cloned().collect::<Vec<_>>()
                };
                assert_eq!(keys(&made), keys(&v), "{at}");
                "rejected"
            }
            ("json", "owner") => {
                let _: yingji::daemon::claims::Owner = serde_json::from_str(&b.text)
                    .unwrap_or_else(|e| panic!("{at}: not a claim: {e}"));
                "owner"
            }
            ("json", "aqi-output") => {
                let out = std::process::Command::new(env!("CARGO_BIN_EXE_yingji"))
                    .args(["aqi", "pm25=37", "pm10=55", "--json"])
                    .output()
                    .unwrap();
                let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
                assert_eq!(got, json(&b), "{at}");
                "aqi"
            }
            ("jsonl", "scenario") => {
                for l in b.text.lines().filter(|l| !l.starts_with("//")) {
                    if let Err(e) = yingji::replay::parse_line(l) {
                        panic!("{at}: {l}: {e}");
                    }
                }
                let notices = yingji::replay::replay_str(&Arc::new(cfg.clone()), &b.text)
                    .unwrap_or_else(|e| panic!("{at}: {e}"));
                assert!(
                    !notices.is_empty(),
                    "{at}: the example scenario makes notices"
                );
                "scenario"
            }
            ("jsonl", "expected") => {
                yingji::expect::parse_expected(&b.text).unwrap_or_else(|e| panic!("{at}: {e}"));
                "expected"
            }
            ("toml", "config") => {
                let l = Config::from_toml(&b.text).unwrap_or_else(|e| panic!("{at}: {e:?}"));
                unknown_keys.extend(l.unknown_keys);
                "config"
            }
            _ => panic!(
                "{at}: a code block without a tag this test knows ({:?})",
                b.info
            ),
        };
        *checked.entry(kind.to_string()).or_default() += 1;
    }
    let top = |k: &str| k.split(['.', '[']).next().unwrap_or(k).to_string();
    for k in &unknown_keys {
        assert!(
            PENDING_KEYS
                .iter()
                .any(|p| k == p || k.starts_with(&format!("{p}.")) || top(k) == *p),
            "docs/interface.md documents {k}, which the product does not know"
        );
    }
    for p in PENDING_KEYS {
        assert!(
            unknown_keys
                .iter()
                .any(|k| k == p || k.starts_with(&format!("{p}.")) || top(k) == *p),
            "{p} is known now: take it off PENDING_KEYS"
        );
    }
    for (kind, min) in [
        ("input", 18),
        ("notice", 2),
        ("config", 2),
        ("scenario", 1),
        ("expected", 1),
        ("state", 1),
        ("rejected", 1),
        ("owner", 1),
        ("aqi", 1),
    ] {
        assert!(
            checked.get(kind).copied().unwrap_or(0) >= min,
            "{kind}: {checked:?}"
        );
    }
}

/// Relative links of a Markdown file: `](target)` and `` `../shared...` `` mentions.
fn links(md: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = md;
    while let Some(i) = rest.find("](") {
        rest = &rest[i + 2..];
        if let Some(j) = rest.find(')') {
            out.push(rest[..j].to_string());
        }
    }
    out
}

#[test]
fn readme_and_docs_link_only_files_in_the_repository() {
    let mut files: Vec<PathBuf> = vec![root().join("README.md")];
    for e in std::fs::read_dir(root().join("docs")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "md") {
            files.push(p);
        }
    }
    for f in files {
        let md = std::fs::read_to_string(&f).unwrap();
        for bad in ["../shared", "shared/spec", "shared/plans", "/work/"] {
            assert!(!md.contains(bad), "{} mentions {bad}", f.display());
        }
        for l in links(&md) {
            if l.starts_with("http://") || l.starts_with("https://") || l.starts_with('#') {
                continue;
            }
            let target = l.split('#').next().unwrap();
            let p = f.parent().unwrap().join(target);
            assert!(
                p.exists(),
                "{}: link to {l}, which is not in the repository",
                f.display()
            );
        }
    }
}
