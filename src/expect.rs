//! `--expect`: compare produced notices with an expected JSONL file
//! (CONTRACT.md "Comparing").

use std::collections::BTreeSet;

use serde_json::Value;

use crate::notice::Notice;
use crate::time::parse_ts;

/// One expected line.
#[derive(Debug, Clone)]
pub struct Expected {
    pub line: usize,
    pub value: serde_json::Map<String, Value>,
    pub kind: String,
}

/// Parses an expected file; a line without plan, track, kind, level or at is an error.
pub fn parse_expected(text: &str) -> Result<Vec<Expected>, String> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let t = raw.trim().trim_start_matches('\u{feff}');
        if t.is_empty() || t.starts_with("//") {
            continue;
        }
        let v: Value =
            serde_json::from_str(t).map_err(|e| format!("line {}: not JSON: {e}", i + 1))?;
        let Value::Object(m) = v else {
            return Err(format!("line {}: not a JSON object", i + 1));
        };
        for k in ["plan", "track", "kind", "level", "at"] {
            match m.get(k) {
                Some(Value::String(_)) => {}
                _ => return Err(format!("line {}: missing \"{k}\"", i + 1)),
            }
        }
        if parse_ts(m["at"].as_str().unwrap_or("")).is_err() {
            return Err(format!("line {}: \"at\" is not an RFC 3339 time", i + 1));
        }
        let kind = m["kind"].as_str().unwrap_or("").to_string();
        out.push(Expected {
            line: i + 1,
            value: m,
            kind,
        });
    }
    Ok(out)
}

const MOVES: [&str; 4] = ["activate", "escalate", "downgrade", "terminate"];

/// The kinds compared: those the expected file mentions, the four moves counting as one.
pub fn kinds_of(expected: &[Expected]) -> BTreeSet<String> {
    let mut k: BTreeSet<String> = expected.iter().map(|e| e.kind.clone()).collect();
    if MOVES.iter().any(|m| k.contains(*m)) {
        k.extend(MOVES.iter().map(|m| m.to_string()));
    }
    k
}

/// `produced` matches `expected` on the keys `expected` gives: numbers by value, objects on
/// the keys given, arrays element by element with equal length.
pub fn subset_eq(expected: &Value, produced: &Value) -> bool {
    match (expected, produced) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (Value::Object(a), Value::Object(b)) => a
            .iter()
            .all(|(k, v)| b.get(k).is_some_and(|p| subset_eq(v, p))),
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| subset_eq(x, y))
        }
        // Times anywhere (e.g. `evidence.expected_start`) compare as instants, like `at`:
        // an expected file may write them in another offset.
        (Value::String(a), Value::String(b)) => {
            a == b || matches!((parse_ts(a), parse_ts(b)), (Ok(x), Ok(y)) if x == y)
        }
        (a, b) => a == b,
    }
}

/// Differences between one expected line and one produced notice (empty: equal).
pub fn differences(e: &Expected, n: &Value) -> Vec<String> {
    let mut d = Vec::new();
    for (k, v) in &e.value {
        let p = n.get(k).unwrap_or(&Value::Null);
        let same = if k == "at" {
            match (v.as_str().map(parse_ts), p.as_str().map(parse_ts)) {
                (Some(Ok(a)), Some(Ok(b))) => a == b,
                _ => false,
            }
        } else {
            n.get(k).is_some() && subset_eq(v, p)
        };
        if !same {
            d.push(format!("{k}: expected {v}, got {}", short(p)));
        }
    }
    d
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 200 {
        format!("{}…", s.chars().take(200).collect::<String>())
    } else {
        s
    }
}

fn summary_expected(e: &Expected) -> String {
    let g = |k: &str| e.value.get(k).and_then(Value::as_str).unwrap_or("?");
    format!(
        "{} {} {} {} {}",
        g("at"),
        g("plan"),
        g("track"),
        g("kind"),
        g("level")
    )
}

fn summary_produced(n: &Notice) -> String {
    format!(
        "{} {} {} {} {}  [{}]",
        crate::time::fmt_ts(n.at),
        n.plan.as_str(),
        n.track,
        n.kind.as_str(),
        n.level,
        n.id
    )
}

fn key_matches(e: &Expected, n: &Notice) -> bool {
    let g = |k: &str| e.value.get(k).and_then(Value::as_str).unwrap_or("");
    g("plan") == n.plan.as_str()
        && g("track") == n.track
        && g("kind") == n.kind.as_str()
        && g("level") == n.level
        && parse_ts(g("at")).ok() == Some(n.at)
}

/// Compares; `Ok(())` when equal, else a readable diff.
pub fn compare(expected: &[Expected], produced: &[Notice]) -> Result<(), String> {
    let kinds = kinds_of(expected);
    let kept: Vec<&Notice> = produced
        .iter()
        .filter(|n| kinds.contains(n.kind.as_str()))
        .collect();
    let values: Vec<Value> = kept
        .iter()
        .map(|n| serde_json::to_value(n).expect("serialises"))
        .collect();
    let positional_ok = kept.len() == expected.len()
        && expected
            .iter()
            .zip(&values)
            .all(|(e, v)| differences(e, v).is_empty());
    if positional_ok {
        return Ok(());
    }
    let mut out = format!(
        "notices differ: expected {} of kinds {{{}}}, produced {}\n",
        expected.len(),
        kinds.iter().cloned().collect::<Vec<_>>().join(", "),
        kept.len()
    );
    let mut shown = 0;
    for op in align(expected, &kept) {
        if shown >= 60 {
            out.push_str("  … (more differences not shown)\n");
            break;
        }
        if let Some(text) = describe(op, expected, &kept, &values) {
            shown += 1;
            out.push_str(&text);
        }
    }
    Err(out)
}

/// Aligns on (plan, track, kind, level, at) with a longest common subsequence, so a
/// missing or extra notice shows as one line instead of a cascade; position by position
/// when the table would be too large.
fn align(expected: &[Expected], kept: &[&Notice]) -> Vec<Op> {
    let (n, m) = (expected.len(), kept.len());
    if n.saturating_mul(m) <= 16_000_000 {
        return lcs_script(expected, kept);
    }
    (0..n.max(m))
        .map(|i| match (i < n, i < m) {
            (true, true) => Op::Pair(i, i),
            (true, false) => Op::Missing(i),
            _ => Op::Extra(i),
        })
        .collect()
}

/// The lines of the diff for one aligned pair, missing or extra notice; `None` for a pair
/// that matches.
fn describe(op: Op, expected: &[Expected], kept: &[&Notice], values: &[Value]) -> Option<String> {
    Some(match op {
        Op::Pair(i, j) => {
            let d = differences(&expected[i], &values[j]);
            if d.is_empty() {
                return None;
            }
            let mut s = format!(
                "~ expected line {}: {}\n  produced #{}: {}\n",
                expected[i].line,
                summary_expected(&expected[i]),
                j + 1,
                summary_produced(kept[j])
            );
            for x in d {
                s.push_str(&format!("    {x}\n"));
            }
            s
        }
        Op::Missing(i) => format!(
            "- missing (expected line {}): {}\n",
            expected[i].line,
            summary_expected(&expected[i])
        ),
        Op::Extra(j) => format!(
            "+ unexpected (produced #{}): {}\n",
            j + 1,
            summary_produced(kept[j])
        ),
    })
}

enum Op {
    Pair(usize, usize),
    Missing(usize),
    Extra(usize),
}

fn lcs_script(e: &[Expected], p: &[&Notice]) -> Vec<Op> {
    let (n, m) = (e.len(), p.len());
    let mut t = vec![0u32; (n + 1) * (m + 1)];
    let w = m + 1;
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            t[i * w + j] = if key_matches(&e[i], p[j]) {
                t[(i + 1) * w + j + 1] + 1
            } else {
                t[(i + 1) * w + j].max(t[i * w + j + 1])
            };
        }
    }
    let (mut i, mut j, mut ops) = (0, 0, Vec::new());
    while i < n && j < m {
        if key_matches(&e[i], p[j]) {
            ops.push(Op::Pair(i, j));
            i += 1;
            j += 1;
        } else if t[(i + 1) * w + j] >= t[i * w + j + 1] {
            ops.push(Op::Missing(i));
            i += 1;
        } else {
            ops.push(Op::Extra(j));
            j += 1;
        }
    }
    ops.extend((i..n).map(Op::Missing));
    ops.extend((j..m).map(Op::Extra));
    ops
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notice::{Kind, Plan};

    fn notice(kind: Kind, level: &str, at: &str) -> Notice {
        let mut n = Notice::new(Plan::CoalSupply, "supply", kind, level);
        n.at = parse_ts(at).unwrap();
        n.id = "coal_supply/shuozhou/supply/1".into();
        n.region = "shuozhou".into();
        n.evidence = serde_json::json!({"plants": {"p1": 12.5}, "list": [1, 2]});
        n
    }

    #[test]
    fn equal_when_kinds_filtered_and_fields_subset() {
        let exp = parse_expected(
            r#"{"plan":"coal_supply","track":"supply","kind":"activate","level":"L2","at":"2023-12-01T00:05:00Z","evidence":{"plants":{"p1":12.50}}}"#,
        )
        .unwrap();
        let produced = vec![
            notice(Kind::Activate, "L2", "2023-12-01T08:05:00+08:00"),
            notice(Kind::ReportFirst, "L2", "2023-12-01T08:05:00+08:00"),
        ];
        compare(&exp, &produced).unwrap();
    }

    #[test]
    fn moves_count_as_one_kind_and_a_missing_notice_is_shown() {
        let exp = parse_expected(concat!(
            r#"{"plan":"coal_supply","track":"supply","kind":"activate","level":"L2","at":"2023-12-01T08:05:00+08:00"}"#,
            "\n",
            r#"{"plan":"coal_supply","track":"supply","kind":"terminate","level":"none","at":"2023-12-04T08:05:00+08:00"}"#,
        ))
        .unwrap();
        let produced = vec![
            notice(Kind::Activate, "L2", "2023-12-01T08:05:00+08:00"),
            notice(Kind::Escalate, "L1", "2023-12-02T08:05:00+08:00"),
        ];
        let d = compare(&exp, &produced).unwrap_err();
        assert!(d.contains("- missing (expected line 2)"), "{d}");
        assert!(d.contains("+ unexpected (produced #2)"), "{d}");
    }

    #[test]
    fn arrays_need_equal_length_and_lines_need_identity() {
        assert!(!subset_eq(
            &serde_json::json!([1]),
            &serde_json::json!([1, 2])
        ));
        assert!(subset_eq(&serde_json::json!(1), &serde_json::json!(1.0)));
        assert!(subset_eq(
            &serde_json::json!({"expected_start": "2023-12-01T01:00:00Z"}),
            &serde_json::json!({"expected_start": "2023-12-01T09:00:00+08:00"})
        ));
        assert!(!subset_eq(
            &serde_json::json!("2023-12-01T01:00:00Z"),
            &serde_json::json!("x")
        ));
        assert!(parse_expected(r#"{"plan":"coal_supply","kind":"activate","level":"L2","at":"2023-12-01T08:05:00+08:00"}"#).is_err());
    }
}
