//! The timeline picture of a run (`yingji replay --timeline`, `yingji::timeline`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use yingji::config::Config;
use yingji::replay::{feed_scenario_watched, Watch};
use yingji::timeline::{self, Recorder};
use yingji::{Engine, Notice};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn yingji() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_yingji"));
    c.current_dir(repo());
    c
}

fn out_dir(test: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("yingji-timeline-{}-{test}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A scenario's config: `NAME.toml` beside it, else the built-in defaults.
fn config(scenario: &Path) -> Arc<Config> {
    let toml = scenario.with_extension("toml");
    let loaded = if toml.exists() {
        Config::load(Some(&toml)).unwrap()
    } else {
        Config::from_toml("").unwrap()
    };
    Arc::new(loaded.config)
}

/// Replays a scenario in process: every notice, and the recorder of its picture.
fn replay(cfg: &Arc<Config>, scenario: &Path) -> (Vec<Notice>, Recorder) {
    let mut rec = Recorder::new(cfg);
    let mut notices = Vec::new();
    let file = std::fs::File::open(scenario).unwrap();
    feed_scenario_watched(
        &mut Engine::new(Arc::clone(cfg)),
        &scenario.display().to_string(),
        std::io::BufReader::new(file),
        &mut |n| notices.push(n.clone()),
        &mut |_, _| {},
        &mut Watch {
            progress: None,
            timeline: Some(&mut rec),
        },
    )
    .unwrap();
    (notices, rec)
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Every move (and proposal and unreached call) of every repo scenario is a mark whose
/// `<title>` names it, in the picture of its region.
#[test]
fn every_move_of_every_scenario_is_a_mark_named_by_its_title() {
    let mut scenarios: Vec<PathBuf> = std::fs::read_dir(repo().join("scenarios"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".expected.jsonl"))
        .map(|p| PathBuf::from(p.to_string_lossy().replace(".expected.jsonl", ".jsonl")))
        .collect();
    scenarios.sort();
    assert!(scenarios.len() > 50, "{}", scenarios.len());
    let (mut moves, mut overdue, mut failures) = (0, 0, Vec::new());
    for s in &scenarios {
        let cfg = config(s);
        let (notices, rec) = replay(&cfg, s);
        for (i, region) in cfg.regions.iter().enumerate() {
            let svg = rec.draw(&cfg, i).unwrap().svg;
            let marked = notices.iter().filter(|n| {
                n.region == region.id
                    && (n.kind.is_move()
                        || ["proposal", "call_unreached", "report_overdue"]
                            .contains(&n.kind.as_str()))
            });
            for n in marked {
                moves += usize::from(n.kind.is_move());
                overdue += usize::from(n.kind.as_str() == "report_overdue");
                let title = timeline::mark_title(&cfg, n);
                assert!(
                    title.contains(n.call_id.as_deref().unwrap_or(&n.id)),
                    "{title}"
                );
                let want = format!("<title>{}</title></polygon>", xml_escape(&title));
                if !svg.contains(&want) {
                    failures.push(format!("{}: no mark {title}", s.display()));
                }
            }
        }
    }
    assert!(
        moves > 100 && overdue > 0,
        "{moves} moves, {overdue} overdue reports"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The marks of decisions come from the commands: a manual coal warning, its lift.
#[test]
fn manual_warnings_are_decision_marks_on_the_coal_band() {
    let s = repo().join("scenarios/coal-manual.jsonl");
    let cfg = config(&s);
    let (_, rec) = replay(&cfg, &s);
    let svg = rec.draw(&cfg, 0).unwrap().svg;
    let titles: Vec<&str> = svg
        .split("<title>")
        .skip(1)
        .map(|t| t.split("</title>").next().unwrap())
        .filter(|t| t.contains("人工预警"))
        .collect();
    assert!(
        titles.iter().any(|t| t.contains("煤炭保供 人工预警")),
        "{titles:?}"
    );
}

fn replay_cli(scenario: &str, config: Option<&str>, svg: &Path) -> std::process::Output {
    let mut c = yingji();
    c.args(["replay", scenario, "--timeline"]).arg(svg);
    c.args(["--config", config.unwrap_or("tests/fixtures/defaults.toml")]);
    c.output().unwrap()
}

/// Two runs of the same scenario give the same SVG and CSV, byte for byte; the notices
/// on stdout are those of a replay without `--timeline`.
#[test]
fn two_runs_draw_the_same_bytes_and_the_notices_do_not_change() {
    let d = out_dir("twice");
    let scenario = "scenarios/pollution-approval.jsonl";
    let config = "scenarios/pollution-approval.toml";
    let (a, b) = (d.join("a.svg"), d.join("b.svg"));
    let run_a = replay_cli(scenario, Some(config), &a);
    let run_b = replay_cli(scenario, Some(config), &b);
    assert!(run_a.status.success(), "{run_a:?}");
    assert!(run_b.status.success(), "{run_b:?}");
    let svg_a = std::fs::read(&a).unwrap();
    assert!(svg_a.starts_with(b"<svg "), "not an SVG");
    assert_eq!(
        svg_a,
        std::fs::read(&b).unwrap(),
        "SVG differs between runs"
    );
    let csv_a = std::fs::read(d.join("a.csv")).unwrap();
    assert!(csv_a.starts_with(b"time,until,series,track,level,value,text\n"));
    assert_eq!(csv_a, std::fs::read(d.join("b.csv")).unwrap());

    let plain = yingji()
        .args(["replay", scenario, "--config", config])
        .output()
        .unwrap();
    assert!(plain.status.success(), "{plain:?}");
    assert!(!plain.stdout.is_empty());
    assert_eq!(plain.stdout, run_a.stdout, "--timeline changed the notices");
    assert_eq!(plain.stderr, run_a.stderr);
}

/// Several regions: one picture each, `FILE-{region}.svg`, each with its own notices.
#[test]
fn each_region_gets_its_own_picture() {
    let d = out_dir("regions");
    let svg = d.join("run.svg");
    let out = replay_cli(
        "scenarios/accept-coal-regions.jsonl",
        Some("scenarios/accept-coal-regions.toml"),
        &svg,
    );
    assert!(out.status.success(), "{out:?}");
    assert!(!svg.exists(), "one file per region, none named as given");
    let cfg = config(&repo().join("scenarios/accept-coal-regions.jsonl"));
    assert!(cfg.regions.len() > 1);
    let notices: Vec<Notice> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for r in &cfg.regions {
        let text = std::fs::read_to_string(d.join(format!("run-{}.svg", r.id))).unwrap();
        assert!(d.join(format!("run-{}.csv", r.id)).exists());
        for n in notices.iter().filter(|n| n.kind.is_move()) {
            assert_eq!(
                text.contains(&format!("（{}）</title>", n.id)),
                n.region == r.id,
                "{} in the picture of {}",
                n.id,
                r.id
            );
        }
    }
}

#[test]
fn timeline_needs_one_scenario_and_an_svg_name() {
    let d = out_dir("usage");
    let two = yingji()
        .args([
            "replay",
            "scenarios/coal-manual.jsonl",
            "scenarios/coal-price.jsonl",
            "--timeline",
        ])
        .arg(d.join("x.svg"))
        .output()
        .unwrap();
    assert_eq!(two.status.code(), Some(2), "{two:?}");
    assert!(two.stdout.is_empty(), "nothing is replayed");
    let png = replay_cli("scenarios/coal-manual.jsonl", None, &d.join("x.png"));
    assert_eq!(png.status.code(), Some(2), "{png:?}");
    assert!(String::from_utf8_lossy(&png.stderr).contains(".svg"));
}

/// docs/timeline/ holds what `scripts/timelines.sh` draws today: when a change moves a
/// picture, rerun the script.
#[test]
fn docs_timeline_pictures_are_current() {
    let script = std::fs::read_to_string(repo().join("scripts/timelines.sh")).unwrap();
    let names = ["coal-manual", "pollution-approval", "weather-two-hazards"];
    assert!(
        script.contains(&format!("for name in {}; do", names.join(" "))),
        "the script draws these three"
    );
    for name in names {
        let s = repo().join(format!("scenarios/{name}.jsonl"));
        let cfg = config(&s);
        let (_, rec) = replay(&cfg, &s);
        let p = rec.draw(&cfg, 0).unwrap();
        let doc = |ext: &str| {
            std::fs::read_to_string(repo().join(format!("docs/timeline/{name}.{ext}"))).unwrap()
        };
        assert!(
            doc("svg") == p.svg && doc("csv") == p.csv,
            "docs/timeline/{name} is out of date: run `bash scripts/timelines.sh`"
        );
    }
}
