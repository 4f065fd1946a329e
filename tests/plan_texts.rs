//! The plan texts sent to people are the gazette's words: every measure sentence of the
//! heavy-pollution plan (§4, §4.2.1–§4.2.5) and every task sentence of the coal-supply plan
//! (§5.2.1, §5.2.2) is found, word for word, in the shipped `config/*.toml`, with its unit.
//! The source texts are kept in `tests/fixtures/plans/` (the gazette as published, OCR line
//! breaks included).

use std::collections::BTreeSet;

use toml::Value;

fn fixture(name: &str) -> String {
    let p = format!("{}/tests/fixtures/plans/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

fn config(name: &str) -> Value {
    let p = format!("{}/config/{name}", env!("CARGO_MANIFEST_DIR"));
    toml::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap()
}

/// The lines of `text` from the first line starting with `from` up to (not including) the
/// first later line starting with `to`.
fn section<'a>(text: &'a str, from: &str, to: &str) -> Vec<&'a str> {
    let lines: Vec<&str> = text.lines().collect();
    let norm = |l: &str| l.trim().trim_start_matches("- ").replace(' ', "");
    let start = lines
        .iter()
        .position(|l| norm(l).starts_with(from))
        .unwrap_or_else(|| panic!("no line starts with {from}"));
    let end = start
        + 1
        + lines[start + 1..]
            .iter()
            .position(|l| norm(l).starts_with(to))
            .unwrap_or_else(|| panic!("no line after {from} starts with {to}"));
    lines[start + 1..end].to_vec()
}

/// Whitespace removed (the gazette's OCR breaks lines and words), list dashes dropped.
fn squash(s: &str) -> String {
    s.lines()
        .map(|l| l.trim().trim_start_matches("- "))
        .collect::<String>()
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect()
}

/// Sentences (ending in 。) of the lines, headings (a line without 。 that is a numbered
/// heading) left out, item markers (①, (3)) dropped.
fn sentences(lines: &[&str], is_heading: impl Fn(&str) -> bool) -> Vec<String> {
    let kept: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| !is_heading(&squash(l)))
        .collect();
    squash(&kept.join("\n"))
        .split_inclusive('。')
        .map(|s| {
            s.trim_start_matches(|c: char| ('①'..='⑳').contains(&c))
                .to_string()
        })
        .filter(|s| s.chars().count() > 2)
        .collect()
}

fn strings(v: &Value, table: &str, key: &str) -> Vec<String> {
    v[table]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.get(key).and_then(Value::as_str).unwrap_or("").to_string())
        .collect()
}

#[test]
fn every_pollution_measure_sentence_is_in_the_config() {
    let src = fixture("heavy-pollution.zh.txt");
    let cfg = config("pollution-measures.toml");
    let texts = strings(&cfg, "measure", "text");
    let headings = strings(&cfg, "measure", "heading");
    let units = strings(&cfg, "measure", "unit");
    let cats: BTreeSet<String> = strings(&cfg, "measure", "category").into_iter().collect();
    assert_eq!(
        cats,
        ["健康防护", "倡议性", "应急响应", "强制性"]
            .map(String::from)
            .into()
    );
    assert!(
        units.iter().all(|u| !u.is_empty()),
        "every measure names its unit"
    );
    let all = texts.join("\n");
    // The numbered headings ("(1) 健康防护引导措施", "4.2.2 二级响应措施(橙色)") are the
    // categories and clauses; a sub-heading ("②移动源减排措施。") is `heading`.
    let sub_heading =
        |l: &str| l.starts_with(|c: char| ('①'..='⑳').contains(&c)) && l.ends_with("措施");
    let heading = |l: &str| {
        l.is_empty()
            || l.starts_with("4.")
            || (l.starts_with('(') && l.ends_with("措施"))
            || l == "在保障城市正常运行的前提下:"
            || sub_heading(l)
    };
    let mut lines = section(&src, "4.2.1三级响应措施", "4.3信息报送");
    // §4: what counties do (its first and last sentences say when a response starts and
    // ends, which the plan's moves do).
    lines.extend(section(&src, "4应急响应", "4.1响应分级"));
    let mut missing = Vec::new();
    let mut checked = 0;
    for l in lines.iter().map(|l| squash(l)).filter(|l| sub_heading(l)) {
        let h = l.trim_start_matches(|c: char| ('①'..='⑳').contains(&c));
        if !headings.iter().any(|x| x == h) {
            missing.push(h.to_string());
        }
    }
    for s in sentences(&lines, heading) {
        if s == "预警信息发布立即启动应急响应。" || s == "预警解除信息发布后,应急响应终止。"
        {
            continue;
        }
        checked += 1;
        let sub = s.trim_end_matches('。');
        let is_heading = headings.iter().any(|h| !h.is_empty() && h == sub);
        if !all.contains(&s) && !is_heading {
            missing.push(s);
        }
    }
    assert!(missing.is_empty(), "not in config: {missing:#?}");
    assert!(checked > 90, "only {checked} sentences checked");
    // "在保障城市正常运行的前提下:" leads each level's mandatory measures.
    assert_eq!(all.matches("在保障城市正常运行的前提下:").count(), 3);
    // Paragraphs the first release dropped (issue 12).
    for p in [
        "\"以热定产\"或\"以量定产\"",
        "公安交警部门严格车辆管控",
        "未安装密闭装置易产生遗撒的煤炭、渣土、砂石料等运输车禁止通行",
        "矿山(除政府协调确定的应急保障类企业外)",
        "省、市重点工程经市政府批准后,可正常施工。",
        "城市主干道路和易产生扬尘路段应增加机械化清扫和洒水频次。",
        "强化烟花爆竹禁放管控措施,严格禁止烟花爆竹和建成区内燃放燃点煤制品",
    ] {
        assert!(all.contains(p), "{p}");
    }
}

#[test]
fn every_coal_task_sentence_is_in_the_config_under_its_unit() {
    let src = fixture("coal-supply.zh.txt");
    let cfg = config("coal-tasks.toml");
    let tasks = cfg["tasks"].as_array().unwrap();
    let mut checked = 0;
    for (from, to, level, sec) in [
        ("5.2.1二级响应", "5.2.2一级响应", "L2", "§5.2.1"),
        ("5.2.2一级响应", "5.3响应调整", "L1", "§5.2.2"),
    ] {
        let lines = section(&src, from, to);
        // The first paragraph says who starts the response; the items follow it.
        let body = squash(&lines.join("\n"));
        let items = &body[body.find("(1)").unwrap()..];
        let mut rest = items;
        let mut n = 1;
        while !rest.is_empty() {
            let next = format!("({})", n + 1);
            let (item, tail) = match rest[3..].find(&next) {
                Some(i) => rest.split_at(i + 3),
                None => (rest, ""),
            };
            let marker = format!("({n})");
            let item = item.strip_prefix(&marker).unwrap();
            let clause = format!("{sec}{marker}");
            let t = tasks
                .iter()
                .find(|t| t["clause"].as_str() == Some(&clause))
                .unwrap_or_else(|| panic!("no task {clause}"));
            assert_eq!(t["level"].as_str(), Some(level), "{clause}");
            let unit = t["unit"].as_str().unwrap();
            let text = t["text"].as_str().unwrap();
            // "(2)市能源局:组织…": the unit as printed, then the task.
            let body = match item.split_once(':') {
                Some((u, b)) if !u.contains('。') && !u.contains(',') => {
                    assert_eq!(u, unit, "{clause}: unit as the gazette prints it");
                    b
                }
                _ => item,
            };
            for s in body.split_inclusive('。') {
                assert!(text.contains(s), "{clause}: {s:?} not in {text:?}");
                checked += 1;
            }
            rest = tail;
            n += 1;
        }
    }
    assert_eq!(tasks.len(), 24);
    assert!(checked > 40, "only {checked} sentences checked");
}
