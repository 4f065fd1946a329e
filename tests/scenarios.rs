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

/// Names of the `scenarios/NAME.expected.jsonl` files, read from the directory.
fn expected_names() -> std::collections::BTreeSet<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    std::fs::read_dir(&dir)
        .expect("scenarios/ exists")
        .filter_map(|e| {
            let name = e.expect("dir entry").file_name();
            name.to_string_lossy()
                .strip_suffix(".expected.jsonl")
                .map(str::to_string)
        })
        .collect()
}

/// Every scenario with an expected file is replayed and compared, and its expected file
/// names every kind of notice the scenario makes: `--expect` compares only the kinds an
/// expected file names, so a kind left out would never be checked. Every plan has at least
/// one expected line with its `reason` (the text people read).
#[test]
fn scenarios_match_their_expected_notices() {
    let mut failures = Vec::new();
    let mut compared = std::collections::BTreeSet::new();
    let mut produced_plans = std::collections::BTreeSet::new();
    let mut plans_with_reason = std::collections::BTreeSet::new();
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
        let exp_text = std::fs::read_to_string(&expected_path).unwrap();
        let expected = yingji::expect::parse_expected(&exp_text)
            .unwrap_or_else(|e| panic!("{}: {e}", expected_path.display()));
        let named = yingji::expect::kinds_of(&expected);
        let unnamed: std::collections::BTreeSet<&str> = produced
            .iter()
            .map(|n| n.kind.as_str())
            .filter(|k| !named.contains(*k))
            .collect();
        if !unnamed.is_empty() {
            failures.push(format!(
                "{name}: the expected file names no notice of kind {unnamed:?}, which the \
                 scenario makes: they are not compared (add their lines, from `yingji replay \
                 --out`, each checked by hand)"
            ));
        }
        produced_plans.extend(produced.iter().map(|n| n.plan.as_str().to_string()));
        for e in &expected {
            if e.value.contains_key("reason") {
                if let Some(p) = e.value.get("plan").and_then(|v| v.as_str()) {
                    plans_with_reason.insert(p.to_string());
                }
            }
        }
        if let Err(diff) = yingji::expect::compare(&expected, &produced) {
            failures.push(format!("{name}:\n{diff}"));
        }
        compared.insert(name);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let want = expected_names();
    assert!(!want.is_empty(), "no scenarios/*.expected.jsonl");
    let missed: Vec<_> = want.difference(&compared).collect();
    assert!(
        missed.is_empty(),
        "expected files without a scenario beside them, never compared: {missed:?}"
    );
    assert_eq!(compared.len(), want.len());
    let no_reason: Vec<_> = produced_plans.difference(&plans_with_reason).collect();
    assert!(
        no_reason.is_empty(),
        "plans with no expected line giving a `reason`: {no_reason:?}"
    );
    eprintln!("{} scenarios compared", compared.len());
}

/// Issue 2: a scenario with only rejected or irrelevant input makes no notice.
#[test]
fn rejected_only_scenario_makes_no_notice() {
    let s = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/rejected-only.jsonl");
    let cfg = config_for(&s);
    let produced = yingji::replay::replay_str(&cfg, &std::fs::read_to_string(&s).unwrap()).unwrap();
    assert!(produced.is_empty(), "{produced:?}");
}
