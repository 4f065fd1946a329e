//! What the coal notices say and to whom: clauses, authorities (§5.2.1, §5.2.2, §5.4),
//! member-unit tasks (§5.2.1 (2)–(9), §5.2.2 (1)–(15)), recipients, and the report
//! contents of §5.1 (时间、地点、信息来源、资源供需现状、影响范围、发展趋势、已经采取的措施).

use std::sync::OnceLock;

use serde::Deserialize;
use serde_json::{json, Value};

use crate::config::{Config, UnitTask};
use crate::notice::{Kind, Notice, Plan};
use crate::time::{fmt_ts, Ts};

use super::data::Data;
use super::rules::{self, Conds};
use super::{Level, TRACK};

/// The plan's document number, cited in every `clause`.
pub const DOC: &str = "朔政办发〔2023〕33号";

/// §2.2, §5.2.1: the L2 response is started and ended by the command office director.
pub const DIRECTOR: &str = "市指挥部办公室主任(市能源局主要负责人)";
/// §5.2.2, §5.4: the L1 response is announced and ended by the commander after the
/// director reports.
pub const COMMANDER: &str = "指挥长(市长),经市指挥部办公室主任报告";
/// §5.1(3): the command office compiles and reports the supply situation.
pub const OFFICE: &str = "市指挥部办公室(设在市能源局)";
/// §5.3: the commander reports to the city emergency rescue headquarters.
pub const HEADQUARTERS: &str = "市应急救援总指挥部";

pub fn clause(sections: &str) -> String {
    format!("{DOC} {sections}")
}

/// Who starts, ends or announces a move at `level` (§5.2.1, §5.2.2, §5.4).
pub fn authority(level: Level) -> &'static str {
    if level == Level::L1 {
        COMMANDER
    } else {
        DIRECTOR
    }
}

pub fn notice(kind: Kind, level: Level) -> Notice {
    Notice::new(Plan::CoalSupply, TRACK, kind, level.as_str())
}

#[derive(Deserialize)]
struct TaskFile {
    tasks: Vec<UnitTask>,
}

/// The embedded `config/coal-tasks.toml`: the default of `[coal] tasks`.
pub fn default_tasks() -> &'static [UnitTask] {
    static TASKS: OnceLock<Vec<UnitTask>> = OnceLock::new();
    TASKS.get_or_init(|| {
        toml::from_str::<TaskFile>(include_str!("../../../config/coal-tasks.toml"))
            .expect("config/coal-tasks.toml parses")
            .tasks
    })
}

/// Tasks of a response level; L1 includes the L2 tasks ("在做好二级响应重点工作基础上",
/// §5.2.2).
pub fn tasks(cfg: &Config, level: Level) -> Vec<&UnitTask> {
    let all: &[UnitTask] = cfg.coal.tasks.as_deref().unwrap_or(default_tasks());
    all.iter()
        .filter(|t| match level {
            Level::L1 => matches!(t.level, Level::L1 | Level::L2),
            Level::L2 => t.level == Level::L2,
            Level::None => false,
        })
        .collect()
}

/// §5.2.1(1): the task every unit has (24-hour duty); its `unit` is the plan's words.
pub const EVERY_UNIT: &str = "市指挥部办公室和各成员单位";

/// The member units a set of tasks names (each once, in task order), without
/// [`EVERY_UNIT`].
pub fn units<'a>(tasks: &[&'a UnitTask]) -> Vec<&'a str> {
    let mut out: Vec<&str> = Vec::new();
    for t in tasks {
        if t.unit != EVERY_UNIT && !out.contains(&t.unit.as_str()) {
            out.push(&t.unit);
        }
    }
    out
}

/// Contacts of `unit`, in file order.
pub fn unit_contacts(cfg: &Config, unit: &str) -> Vec<String> {
    cfg.contacts
        .iter()
        .filter(|c| c.unit == unit)
        .map(|c| c.id.clone())
        .collect()
}

/// Contacts of any of `units`, plus contacts whose `plans` include `coal_supply`, in file
/// order.
pub fn recipients(cfg: &Config, units: &[&str]) -> Vec<String> {
    cfg.contacts
        .iter()
        .filter(|c| units.contains(&c.unit.as_str()) || c.plans.contains(&Plan::CoalSupply))
        .map(|c| c.id.clone())
        .collect()
}

/// The member-unit tasks of `level` as notice measures, each routed to its unit's contacts.
pub fn measures(cfg: &Config, level: Level) -> (Vec<Value>, Vec<String>) {
    let ts = tasks(cfg, level);
    let units: Vec<&str> = ts.iter().map(|t| t.unit.as_str()).collect();
    let all = recipients(cfg, &units);
    let m = ts
        .iter()
        .map(|t| {
            let to = if t.unit == EVERY_UNIT {
                all.clone()
            } else {
                unit_contacts(cfg, &t.unit)
            };
            json!({"unit": t.unit, "clause": clause(&t.clause), "text": t.text,
                "recipients": to})
        })
        .collect();
    (m, all)
}

/// The supply/demand status (资源供需现状) for reports and evidence.
pub fn status(d: &Data, cfg: &Config) -> Value {
    let c = &cfg.coal;
    let stock: serde_json::Map<String, Value> = d
        .stocks
        .iter()
        .map(|(p, s)| (p.clone(), json!(s.days)))
        .collect();
    let output = d.latest_output.map(|date| {
        json!({"date": date.to_string(), "output_t": d.outputs.get(&date),
            "quota_t": rules::quota(c, date),
            "run_below_quota_days": rules::output_run(d, c).len()})
    });
    let price = d.latest_price.map(|date| {
        let earlier = date - chrono::Duration::days(i64::from(c.price_window_days));
        json!({"date": date.to_string(), "price_cny_t": d.prices.get(&date),
            "earlier_date": earlier.to_string(), "earlier_price_cny_t": d.prices.get(&earlier)})
    });
    json!({"stock_days": stock,
        "aggregate_stock_days": rules::aggregate(d).map(|a| a.days),
        "output": output, "price": price,
        "storage_t": d.storage.map(|(_, s)| s)})
}

/// The status in Chinese.
pub fn status_zh(d: &Data, cfg: &Config) -> String {
    let mut parts = Vec::new();
    if d.stocks.is_empty() {
        parts.push("重点发电、供热企业库存暂无报送".to_string());
    } else {
        let v: Vec<String> = d
            .stocks
            .iter()
            .map(|(p, s)| format!("{p}{:.2}天", s.days))
            .collect();
        parts.push(format!("重点发电、供热企业库存:{}", v.join("、")));
    }
    if let Some(date) = d.latest_output {
        let q = rules::quota(&cfg.coal, date)
            .map(|q| format!("{}吨", q))
            .unwrap_or_else(|| "未配置".into());
        parts.push(format!(
            "全市煤炭日产量({}){}吨,年度每日保供量{q},连续{}天低于保供量",
            crate::time::date_zh(date),
            d.outputs.get(&date).copied().unwrap_or_default(),
            rules::output_run(d, &cfg.coal).len()
        ));
    }
    if let Some(date) = d.latest_price {
        parts.push(format!(
            "煤炭价格({}){}元/吨",
            crate::time::date_zh(date),
            d.prices.get(&date).copied().unwrap_or_default()
        ));
    }
    if let Some((_, s)) = d.storage {
        parts.push(format!("洗(选)煤厂、集装站库存{s}吨"));
    }
    parts.join(";")
}

/// One report of §5.1 (首报、续报、终报).
pub struct Report<'a> {
    pub kind: Kind,
    pub level: Level,
    pub now: Ts,
    pub place: &'a str,
    pub conds: &'a Conds,
    pub trend: &'static str,
    pub measures_taken: &'a [String],
}

pub fn report(r: &Report, d: &Data, cfg: &Config) -> Notice {
    let source =
        "市能源局煤炭保供监测数据(重点企业库存、全市日产量、煤炭价格、洗选煤厂和集装站库存)";
    let scope = format!("{}全市发电、供暖等民生用煤", r.place);
    let situation = if r.conds.0.is_empty() {
        "预警条件均已消除".to_string()
    } else {
        r.conds.text()
    };
    let mut text = format!(
        "【煤炭保供{}{}】时间:{};地点:{};信息来源:{source};资源供需现状:{};预警情况:{situation};影响范围:{scope};发展趋势:{};已经采取的措施:{}",
        r.level.name_zh(),
        r.kind.name_zh(),
        crate::time::time_zh(r.now),
        r.place,
        status_zh(d, cfg),
        r.trend,
        r.measures_taken.join(";")
    );
    let mut n = notice(r.kind, r.level)
        .clause(clause("§5.1"))
        .authority(OFFICE)
        .reason(format!(
            "煤炭保供{}({})",
            r.kind.name_zh(),
            r.level.name_zh()
        ))
        .evidence(
            json!({"time": fmt_ts(r.now), "place": r.place, "source": source,
            "status": status(d, cfg), "conditions": r.conds.evidence(),
            "scope": scope, "trend": r.trend, "measures_taken": r.measures_taken}),
        )
        .recipients(recipients(cfg, &[]));
    if cfg.coal.hold_waits_for_data {
        // PLANS.md §5.3: a stock value older than `stock_gap_days` is marked stale.
        let limit = crate::time::days(cfg.coal.stock_gap_days);
        let stocks: Vec<Value> = d
            .stocks
            .iter()
            .map(|(p, s)| {
                let stale = r.now - s.ts > limit;
                json!({"plant": p, "stock_days": s.days, "ts": fmt_ts(s.ts), "stale": stale,
                    "note": if stale { "数据已逾期" } else { "" }})
            })
            .collect();
        let marks: Vec<String> = d
            .stocks
            .iter()
            .filter(|(_, s)| r.now - s.ts > limit)
            .map(|(p, s)| {
                format!(
                    "{p}库存数据已逾期(最近报送于{})",
                    crate::time::time_zh(s.ts)
                )
            })
            .collect();
        n.evidence["stocks"] = json!(stocks);
        if !marks.is_empty() {
            text = format!("{text};{}", marks.join(";"));
        }
    }
    n.text = Some(text);
    n
}
