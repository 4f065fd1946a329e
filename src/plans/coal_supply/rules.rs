//! The warning conditions of §4.2.1 as PLANS.md §1 reads them, always computed from the
//! latest data, and the beyond-level-1 condition of §5.3.

use chrono::{Datelike, Duration, NaiveDate};
use serde::Serialize;
use serde_json::{json, Value};

use crate::config::{CoalConfig, StockRule};

use super::data::{micro, Data, PlantStock};
use super::data::{STOCK_L1_DAYS, STOCK_L2_DAYS};
use super::Level;

/// §4.2.1: "连续5天" (L2), "连续10天" (L1) below the annual daily quota.
pub const RUN_L2_DAYS: usize = 5;
pub const RUN_L1_DAYS: usize = 10;

/// One condition that holds now.
#[derive(Debug, Clone, PartialEq)]
pub struct Cond {
    pub level: Level,
    /// `stock`, `output`, `price` or `manual`.
    pub rule: &'static str,
    /// Chinese, with the numbers.
    pub text: String,
    pub evidence: Value,
}

/// The conditions that hold now.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Conds(pub Vec<Cond>);

impl Conds {
    /// The highest level a condition calls for (`None` when nothing holds).
    pub fn level(&self) -> Level {
        self.0.iter().map(|c| c.level).max().unwrap_or(Level::None)
    }
    /// "An L2 condition holds": one of the L2 (or L1) rows is true now.
    pub fn l2(&self) -> bool {
        self.level() >= Level::L2
    }
    pub fn l1(&self) -> bool {
        self.level() == Level::L1
    }
    pub fn text(&self) -> String {
        let v: Vec<&str> = self.0.iter().map(|c| c.text.as_str()).collect();
        v.join(";")
    }
    pub fn evidence(&self) -> Value {
        Value::Array(
            self.0
                .iter()
                .map(|c| json!({"level": c.level.as_str(), "rule": c.rule, "detail": c.evidence}))
                .collect(),
        )
    }
}

/// All conditions of §4.2.1 that hold on the latest data.
pub fn conditions(d: &Data, cfg: &CoalConfig) -> Conds {
    let mut v = Vec::new();
    stock_conds(d, cfg, &mut v);
    v.extend(output_cond(d, cfg));
    v.extend(price_cond(d, cfg));
    if let Some(l) = d.manual {
        // §4.2.1 "需要预警的其他情形": a manual warning from the energy bureau.
        v.push(Cond {
            level: l,
            rule: "manual",
            text: format!("市能源局人工发布{}预警(需要预警的其他情形)", l.name_zh()),
            evidence: json!({"manual": l.as_str()}),
        });
    }
    Conds(v)
}

fn limit(l: Level) -> f64 {
    if l == Level::L1 {
        STOCK_L1_DAYS
    } else {
        STOCK_L2_DAYS
    }
}

/// §4.2.1 stock rows: each key plant on its own (`any`), or all of them together
/// (`aggregate`: total stock / total burn).
fn stock_conds(d: &Data, cfg: &CoalConfig, v: &mut Vec<Cond>) {
    match cfg.stock_rule {
        // None below: no plant to name (the walk is spared, `ByPlant::any_marked`).
        StockRule::Any if !d.stocks.any_marked() => {}
        StockRule::Any => {
            for (plant, s) in d.stocks.iter() {
                let level = s.level();
                if level > Level::None {
                    v.push(Cond {
                        level,
                        rule: "stock",
                        text: format!(
                            "重点企业{plant}煤炭库存{:.2}天,不足{}天",
                            s.days,
                            limit(level)
                        ),
                        evidence: json!({"plant": plant, "stock_days": s.days,
                            "stock_t": s.stock_t, "burn_t_per_day": s.burn_t_per_day,
                            "threshold_days": limit(level)}),
                    });
                }
            }
        }
        StockRule::Aggregate => {
            let Some(agg) = aggregate(d) else { return };
            let level = agg.level();
            if level > Level::None {
                v.push(Cond {
                    level,
                    rule: "stock",
                    text: format!(
                        "重点企业合计煤炭库存{:.2}天,不足{}天",
                        agg.days,
                        limit(level)
                    ),
                    evidence: json!({"aggregate": true, "stock_days": agg.days,
                        "stock_t": agg.stock_t, "burn_t_per_day": agg.burn_t_per_day,
                        "plants": d.stocks.keys().collect::<Vec<_>>(),
                        "threshold_days": limit(level)}),
                });
            }
        }
    }
}

/// Total stock / total burn of the key plants that reported tonnes (`aggregate` rule).
pub fn aggregate(d: &Data) -> Option<PlantStock> {
    // Sums in integer millionths: 100000.1 + 200000.2 is exactly 300000.3 (binary floats
    // would make it 300000.30000000005 and move a sum that is exactly 20 days).
    let mut stock: i128 = 0;
    let mut burn: i128 = 0;
    let mut ts = None;
    for s in d.stocks.values() {
        if let (Some(st), Some(b)) = (s.stock_t, s.burn_t_per_day) {
            stock = stock.saturating_add(micro(st));
            burn = burn.saturating_add(micro(b));
            ts = ts.max(Some(s.ts));
        }
    }
    let (stock, burn) = (stock as f64 / 1e6, burn as f64 / 1e6);
    Some(PlantStock::new(ts?, Some(stock), Some(burn), stock / burn))
}

/// The annual daily quota of `date`'s own year. A table without any year up to it has no
/// quota for it: the date then never counts as below the quota.
pub fn quota(cfg: &CoalConfig, date: NaiveDate) -> Option<f64> {
    cfg.daily_quota_t.for_year(date.year())
}

/// The output run (§4.2.1): consecutive dates ending at the latest date reported, each
/// below its own year's quota; newest first.
pub fn output_run(d: &Data, cfg: &CoalConfig) -> Vec<NaiveDate> {
    d.run_back(|date, v| quota(cfg, date).is_some_and(|q| v < q))
}

fn output_cond(d: &Data, cfg: &CoalConfig) -> Option<Cond> {
    let run = output_run(d, cfg);
    // No run meets no level; the run's oldest date starts its text.
    let &first = run.last()?;
    let level = if run.len() >= RUN_L1_DAYS {
        Level::L1
    } else if run.len() >= RUN_L2_DAYS {
        Level::L2
    } else {
        return None;
    };
    // The evidence lists the dates that meet the level (the latest 5 or 10), not the whole
    // run: a long run stays cheap at every message.
    let shown = if level == Level::L1 {
        RUN_L1_DAYS
    } else {
        RUN_L2_DAYS
    };
    let dates: Vec<Value> = run[..shown]
        .iter()
        .rev()
        .map(|date| {
            json!({"date": date.to_string(), "output_t": d.outputs[date],
                "quota_t": quota(cfg, *date)})
        })
        .collect();
    Some(Cond {
        level,
        rule: "output",
        text: format!(
            "全市煤炭日产量自{}起连续{}天低于年度每日保供量",
            crate::time::date_zh(first),
            run.len()
        ),
        evidence: json!({"run_days": run.len(), "dates": dates}),
    })
}

/// Exact `100·|P − P₇| >= pct·P₇` on values scaled to millionths (no division, no
/// rounding surprise at the threshold).
pub fn change_at_least(p: f64, p7: f64, pct: f64) -> bool {
    let s = micro;
    let lhs = (s(p) - s(p7)).abs().checked_mul(100 * 1_000_000);
    match lhs.zip(s(pct).checked_mul(s(p7))) {
        Some((l, r)) => l >= r,
        // Absurd prices (beyond i128 millionths): floats decide.
        None => 100.0 * (p - p7).abs() >= pct * p7,
    }
}

/// The price rule (PLANS.md §1, local default): change against the price dated
/// `price_window_days` before the latest price date; a price outside the configured range
/// is abnormal.
fn price_cond(d: &Data, cfg: &CoalConfig) -> Option<Cond> {
    let date = d.latest_price?;
    let p = *d.prices.get(&date)?;
    let earlier = date - Duration::days(i64::from(cfg.price_window_days));
    let p7 = d.prices.get(&earlier).copied();
    let out_of_range =
        cfg.price_min_cny_t.is_some_and(|m| p < m) || cfg.price_max_cny_t.is_some_and(|m| p > m);
    let by_change = match p7 {
        Some(p7) if change_at_least(p, p7, cfg.price_large_pct) => Level::L1,
        Some(p7) if change_at_least(p, p7, cfg.price_abnormal_pct) => Level::L2,
        _ => Level::None,
    };
    let level = match by_change {
        Level::None if out_of_range => Level::L2,
        Level::None => return None,
        l => l,
    };
    let change_pct = p7.map(|p7| 100.0 * (p - p7) / p7);
    let text = match (by_change, p7, change_pct) {
        (Level::None, _, _) | (_, None, _) | (_, _, None) => {
            format!(
                "{}煤炭价格{p}元/吨,超出合理区间,出现异常波动",
                crate::time::date_zh(date)
            )
        }
        (l, Some(p7), Some(c)) => format!(
            "{}煤炭价格{p}元/吨,较{}的{p7}元/吨变化{c:.1}%,出现{}",
            crate::time::date_zh(date),
            crate::time::date_zh(earlier),
            if l == Level::L1 {
                "大幅波动"
            } else {
                "异常波动"
            }
        ),
    };
    Some(Cond {
        level,
        rule: "price",
        text,
        evidence: json!({"date": date.to_string(), "price_cny_t": p,
            "earlier_date": earlier.to_string(), "earlier_price_cny_t": p7,
            "change_pct": change_pct, "out_of_range": out_of_range,
            "price_min_cny_t": cfg.price_min_cny_t, "price_max_cny_t": cfg.price_max_cny_t}),
    })
}

/// §5.3 beyond level 1 (local default), evaluated at L1: a key plant (aggregate mode: the
/// aggregate) below `beyond_l1_stock_days`, or the L1 output target missed on
/// `beyond_l1_missed_days` consecutive dates whose reports arrived at L1.
pub fn beyond_holds(d: &Data, cfg: &CoalConfig) -> bool {
    let lim = cfg.beyond_l1_stock_days;
    let stock = match cfg.stock_rule {
        StockRule::Any => d.stocks.values().any(|s| s.below(lim)),
        StockRule::Aggregate => aggregate(d).is_some_and(|a| a.below(lim)),
    };
    stock || missed_l1_run(d).len() >= cfg.beyond_l1_missed_days as usize
}

/// Output dates, newest first, in the run ending at the latest date whose reports
/// arrived at L1 and missed the L1 target.
fn missed_l1_run(d: &Data) -> Vec<NaiveDate> {
    d.run_back(|date, _| d.l1_missed.get(&date).copied().unwrap_or(false))
}

/// A stock below the beyond-L1 limit: a key plant's, or the aggregate's.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Below {
    Plant {
        plant: String,
        stock_days: f64,
    },
    /// `aggregate` is always `true` (the evidence says which stock it is).
    Aggregate {
        aggregate: bool,
        stock_days: f64,
    },
}

/// What makes beyond level 1 hold (§5.3): the notice's evidence.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Beyond {
    pub plants_below: Vec<Below>,
    pub stock_days_limit: f64,
    /// Oldest first; empty when the missed run is shorter than the limit.
    pub l1_target_missed_dates: Vec<NaiveDate>,
    pub missed_days_limit: u32,
}

/// Beyond level 1 with what makes it hold; `None` when it does not hold (the same
/// answer as [`beyond_holds`]).
pub fn beyond(d: &Data, cfg: &CoalConfig) -> Option<Beyond> {
    let lim = cfg.beyond_l1_stock_days;
    let plants: Vec<Below> = match cfg.stock_rule {
        StockRule::Any => d
            .stocks
            .iter()
            .filter(|(_, s)| s.below(lim))
            .map(|(p, s)| Below::Plant {
                plant: p.clone(),
                stock_days: s.days,
            })
            .collect(),
        StockRule::Aggregate => aggregate(d)
            .filter(|a| a.below(lim))
            .map(|a| {
                vec![Below::Aggregate {
                    aggregate: true,
                    stock_days: a.days,
                }]
            })
            .unwrap_or_default(),
    };
    let missed = missed_l1_run(d);
    let missed_run = missed.len() >= cfg.beyond_l1_missed_days as usize;
    if plants.is_empty() && !missed_run {
        return None;
    }
    let dates = if missed_run {
        missed.into_iter().rev().collect()
    } else {
        Vec::new()
    };
    Some(Beyond {
        plants_below: plants,
        stock_days_limit: lim,
        l1_target_missed_dates: dates,
        missed_days_limit: cfg.beyond_l1_missed_days,
    })
}
