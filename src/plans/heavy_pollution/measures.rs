//! Measures per level (§4, §4.2.1–4.2.5): data quoted from the plan, from
//! `pollution.measures` or the embedded `config/pollution-measures.toml`.

use std::sync::OnceLock;

use serde::Deserialize;
use serde_json::{json, Value};

use crate::config::{Config, Measure};

use super::types::Lv;

#[derive(Deserialize)]
struct File {
    measure: Vec<Measure>,
}

/// The embedded default measures.
pub fn defaults() -> &'static [Measure] {
    static CELL: OnceLock<Vec<Measure>> = OnceLock::new();
    CELL.get_or_init(|| {
        let f: File = toml::from_str(include_str!("../../../config/pollution-measures.toml"))
            .expect("config/pollution-measures.toml is valid");
        f.measure
    })
}

/// The measures of a level, as notice JSON objects `{category, unit, clause, heading?,
/// text}`.
pub fn for_level(cfg: &Config, level: Lv) -> Vec<Value> {
    let all: &[Measure] = cfg.pollution.measures.as_deref().unwrap_or(defaults());
    all.iter()
        .filter(|m| m.level == level)
        .map(|m| {
            let mut v = json!({
                "category": m.category,
                "unit": m.unit,
                "clause": format!("{} {}", super::types::DOC, m.clause),
                "text": m.text,
            });
            if let Some(h) = &m.heading {
                v["heading"] = json!(h);
            }
            v
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// §4.2.1–4.2.3: each graded level carries the emission cut of its level.
    #[test]
    fn embedded_measures_quote_the_cuts() {
        let cfg = Config::from_toml("").unwrap().config;
        for (lv, pct) in [(Lv::Yellow, "20%"), (Lv::Orange, "30%"), (Lv::Red, "40%")] {
            let m = for_level(&cfg, lv);
            let cut = m
                .iter()
                .find(|x| x["text"].as_str().unwrap().contains("减排比例"))
                .unwrap();
            assert!(cut["text"].as_str().unwrap().contains(pct), "{lv:?}");
            assert_eq!(cut["category"], "强制性");
            for cat in ["健康防护", "倡议性", "强制性", "应急响应"] {
                assert!(m.iter().any(|x| x["category"] == cat), "{lv:?} {cat}");
            }
            assert!(m.iter().all(|x| !x["unit"].as_str().unwrap().is_empty()));
        }
        let on_duty = |lv| {
            for_level(&cfg, lv)
                .iter()
                .any(|x| x["text"].as_str().unwrap().contains("在岗指挥"))
        };
        assert!(!on_duty(Lv::Yellow));
        assert!(on_duty(Lv::Orange));
        assert!(on_duty(Lv::Red));
        assert_eq!(for_level(&cfg, Lv::Ozone).len(), 1);
        assert_eq!(for_level(&cfg, Lv::So2).len(), 1);
    }
}
