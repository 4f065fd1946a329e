//! Every `scenarios/NAME.jsonl` with a `NAME.expected.jsonl` beside it is replayed (with
//! `NAME.toml` as its config when present, else the built-in defaults) and compared as
//! `yingji replay --expect` does.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use yingji::config::Config;

fn scenario_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("scenarios/ exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == "jsonl")
                && !p.to_string_lossy().ends_with(".expected.jsonl")
        })
        .collect();
    v.sort();
    v
}

fn config_for(scenario: &Path) -> Arc<Config> {
    let toml = scenario.with_extension("toml");
    let loaded = if toml.exists() {
        Config::load(Some(&toml)).unwrap_or_else(|e| panic!("{}: {e:?}", toml.display()))
    } else {
        Config::from_toml("").expect("defaults")
    };
    Arc::new(loaded.config)
}

#[test]
fn scenarios_match_their_expected_notices() {
    let mut failures = Vec::new();
    let mut ran = 0;
    for s in scenario_files() {
        let name = s.file_stem().unwrap().to_string_lossy().to_string();
        let expected_path = s.with_file_name(format!("{name}.expected.jsonl"));
        let cfg = config_for(&s);
        let text = std::fs::read_to_string(&s).unwrap();
        let produced = match yingji::replay::replay_str(&cfg, &text) {
            Ok(p) => p,
            Err(e) => {
                failures.push(format!("{name}: {e}"));
                continue;
            }
        };
        if !expected_path.exists() {
            continue;
        }
        ran += 1;
        let exp_text = std::fs::read_to_string(&expected_path).unwrap();
        let expected = yingji::expect::parse_expected(&exp_text)
            .unwrap_or_else(|e| panic!("{}: {e}", expected_path.display()));
        if let Err(diff) = yingji::expect::compare(&expected, &produced) {
            failures.push(format!("{name}:\n{diff}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    eprintln!("{ran} scenarios compared");
}

/// Issue 2: a scenario with only rejected or irrelevant input makes no notice.
#[test]
fn rejected_only_scenario_makes_no_notice() {
    let s = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/rejected-only.jsonl");
    let cfg = config_for(&s);
    let produced = yingji::replay::replay_str(&cfg, &std::fs::read_to_string(&s).unwrap()).unwrap();
    assert!(produced.is_empty(), "{produced:?}");
}
