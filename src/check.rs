//! `yingji check`: configuration problems an operator should fix. Pure: takes a loaded
//! configuration, returns problems; the CLI prints them and exits 1 when there are any.

use crate::config::{Contact, Loaded, Quota, CALL_ROLES};

/// One problem, naming the key or the thing it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// The pollution plan's name for every county, city and district government (37号 §2).
const COUNTIES: &str = "各县(市、区)人民政府";

/// Everything `check` reports beyond the validation `Config::load` already did.
pub fn problems(loaded: &Loaded) -> Vec<Problem> {
    let cfg = &loaded.config;
    let mut out = Vec::new();
    let mut p = |key: String, message: String| out.push(Problem { key, message });
    for k in &loaded.unknown_keys {
        p(k.clone(), "unknown key (misspelt? it is ignored)".into());
    }
    if cfg.coal.price_large_pct < cfg.coal.price_abnormal_pct {
        p(
            "coal.price_large_pct".into(),
            "is below coal.price_abnormal_pct: every abnormal price change is also large".into(),
        );
    }
    // PLANS.md §1 "Output run": a quota table without a year uses the latest earlier one;
    // check reports the years the table skips.
    if let Quota::ByYear(t) = &cfg.coal.daily_quota_t {
        let years: Vec<i32> = t.keys().filter_map(|y| y.trim().parse().ok()).collect();
        if let (Some(lo), Some(hi)) = (years.iter().min(), years.iter().max()) {
            for y in *lo..*hi {
                if !years.contains(&y) {
                    p(
                        format!("coal.daily_quota_t.{y}"),
                        format!(
                            "no quota for {y}; the {} value is used",
                            years.iter().filter(|x| **x < y).max().unwrap_or(lo)
                        ),
                    );
                }
            }
        }
    }
    // PLANS.md §3 "Recipients kept current" (§四.1): every department and leader of the
    // call table has a contact, and every such contact can be reached.
    for (role, name) in CALL_ROLES {
        let with_role: Vec<_> = cfg
            .contacts
            .iter()
            .filter(|c| c.role.as_deref() == Some(*role))
            .collect();
        if with_role.is_empty() {
            p(
                format!("contact(role = {role})"),
                format!("no contact for {name} (叫应对象缺失, 叫应服务工作机制 §三)"),
            );
        }
        for c in with_role {
            if !reachable(c) {
                p(
                    format!("contact({})", c.id),
                    format!(
                        "{name} {} has neither wechat nor phone: cannot be called",
                        c.name
                    ),
                );
            }
            if c.tier.is_none() {
                p(
                    format!("contact({}).tier", c.id),
                    format!("{name} {} has no tier: never called", c.name),
                );
            }
        }
    }
    for c in &cfg.contacts {
        if c.tier.is_some() && c.role.is_none() && !reachable(c) {
            p(
                format!("contact({})", c.id),
                "a called contact with neither wechat nor phone".into(),
            );
        }
    }
    // PLANS.md §3: `call_unreached` goes to `escalate_to` and the backup; ids that name no
    // contact cannot be told (not a load error, so a config with them still runs).
    let known = |id: &str| cfg.contacts.iter().any(|c| c.id == id);
    for (i, ct) in cfg.contacts.iter().enumerate() {
        if let Some(r) = ct.role.as_deref() {
            if !CALL_ROLES.iter().any(|(k, _)| *k == r) && r != "other" {
                p(format!("contact[{i}].role"), format!("unknown role {r:?}"));
            }
        }
        if let Some(b) = ct.backup.as_deref().filter(|b| !known(b)) {
            p(
                format!("contact[{i}].backup"),
                format!("no contact with id {b:?}"),
            );
        }
    }
    // PLANS.md §3's table: departments are tier A, the leaders for meteorology and flood
    // control tier B, the city's top leaders tier C (直通式报告, extreme events only).
    for (i, ct) in cfg.contacts.iter().enumerate() {
        let want = match ct.role.as_deref() {
            Some("party_secretary" | "mayor") => "C",
            Some("leader_meteorology" | "leader_flood") => "B",
            Some(r) if CALL_ROLES.iter().any(|(k, _)| *k == r) => "A",
            _ => continue,
        };
        if let Some(t) = ct.tier.as_deref().filter(|t| *t != want) {
            p(
                format!("contact[{i}].tier"),
                format!(
                    "role {} is tier {want} in the call table (叫应服务工作机制 §三), not {t}",
                    ct.role.as_deref().unwrap_or_default()
                ),
            );
        }
    }
    // PLANS.md §3: `call_unreached` goes to `escalate_to` and the person's backup; with
    // neither, an unreached person is reported to nobody.
    if cfg.weather_call.escalate_to.is_empty() {
        for (i, ct) in cfg.contacts.iter().enumerate() {
            if ct.tier.is_some() && !ct.backup.as_deref().is_some_and(|b| !b.trim().is_empty()) {
                p(
                    format!("contact[{i}].backup"),
                    format!(
                        "{} ({}) has no backup and weather_call.escalate_to is empty: if unreached, nobody is told",
                        ct.id, ct.name
                    ),
                );
            }
        }
    }
    // PLANS.md §5.2: with units configured, every unit a task or measure names has a
    // contact (through its aliases), and each plan's office has one.
    if !cfg.units.is_empty() {
        let has_contact = |name: &str| {
            let unit = cfg.unit(name);
            cfg.contacts
                .iter()
                .any(|c| c.unit == name || unit.is_some_and(|u| u.named(&c.unit)))
        };
        let tasks = cfg
            .coal
            .tasks
            .as_deref()
            .unwrap_or(crate::plans::coal_supply::default_tasks())
            .iter()
            .map(|t| (t.unit.as_str(), format!("the coal task {}", t.clause)));
        let measures = cfg
            .pollution
            .measures
            .as_deref()
            .unwrap_or(crate::plans::heavy_pollution::measures::defaults())
            .iter()
            .map(|m| {
                (
                    m.unit.as_str(),
                    format!("the pollution measure {}", m.clause),
                )
            });
        let mut seen = std::collections::BTreeSet::new();
        for (unit, named_by) in tasks.chain(measures) {
            // A line addressed to every unit or every county names no one unit: it reaches
            // each through its own contacts.
            let collective =
                unit == crate::plans::coal_supply::text::EVERY_UNIT || unit == COUNTIES;
            if unit.is_empty() || collective || !seen.insert(unit.to_string()) {
                continue;
            }
            if !has_contact(unit) {
                p(
                    format!("unit({unit})"),
                    format!(
                        "named by {named_by} but no contact belongs to it (by its name or an alias): its lines reach nobody"
                    ),
                );
            }
        }
        for (plan, office) in [
            ("coal_supply", &cfg.coal.office_unit),
            ("heavy_pollution", &cfg.pollution.office_unit),
        ] {
            let unit = cfg.unit(office);
            let any = cfg.contacts.iter().any(|c| {
                (c.unit == *office || unit.is_some_and(|u| u.named(&c.unit)))
                    && c.plans.iter().any(|x| x == plan)
            });
            if !any {
                p(
                    format!("{}.office_unit", if plan == "coal_supply" { "coal" } else { "pollution" }),
                    format!(
                        "the {plan} office {office} has no contact whose plans include {plan}: report_overdue notices reach nobody"
                    ),
                );
            }
        }
    }
    for (i, id) in cfg.weather_call.escalate_to.iter().enumerate() {
        if !known(id) {
            p(
                format!("weather_call.escalate_to[{i}]"),
                format!("no contact with id {id:?}"),
            );
        }
    }
    out
}

/// A contact the call service can reach: a WeChat id or a phone number that is not blank
/// (PLANS.md §3 "Recipients kept current").
fn reachable(c: &Contact) -> bool {
    let given = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.trim().is_empty());
    given(&c.wechat) || given(&c.phone)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn reports_missing_roles_and_unreachable_contacts() {
        let l = Config::from_toml(
            "[[contact]]\nid = \"a\"\nrole = \"emergency\"\ntier = \"A\"\n\
             [[contact]]\nid = \"b\"\nrole = \"water\"\ntier = \"A\"\nphone = \"1\"\n",
        )
        .unwrap();
        let ps = problems(&l);
        assert!(ps.iter().any(|p| p.key == "contact(a)"), "{ps:?}");
        assert!(!ps.iter().any(|p| p.key == "contact(b)"), "{ps:?}");
        assert!(
            ps.iter().any(|p| p.key == "contact(role = mayor)"),
            "{ps:?}"
        );
        assert!(
            !ps.iter().any(|p| p.key == "contact(role = water)"),
            "{ps:?}"
        );
    }

    /// A blank WeChat id or phone number cannot be called either; every role of the
    /// table (7 departments, 2 leaders in charge, 2 top leaders) is checked.
    #[test]
    fn blank_channels_are_unreachable_and_every_role_is_checked() {
        let l = Config::from_toml(
            "[[contact]]\nid = \"a\"\nrole = \"transport\"\ntier = \"A\"\nwechat = \"\"\nphone = \" \"\n\
             [[contact]]\nid = \"x\"\ntier = \"B\"\nwechat = \"\"\n",
        )
        .unwrap();
        let ps = problems(&l);
        assert!(ps.iter().any(|p| p.key == "contact(a)"), "{ps:?}");
        assert!(ps.iter().any(|p| p.key == "contact(x)"), "{ps:?}");
        let missing: Vec<_> = ps
            .iter()
            .filter(|p| p.key.starts_with("contact(role = "))
            .collect();
        assert_eq!(missing.len(), 10, "{ps:?}"); // 11 roles, transport has a contact
    }

    /// CONTRACT.md's example config names a backup (`yjj-deputy`) it does not list: it
    /// must load (replay and run work) and `check` reports the dangling id.
    #[test]
    fn dangling_ids_and_unknown_roles_are_check_problems_not_load_errors() {
        let l = Config::from_toml(
            "[weather_call]\nescalate_to = [\"nobody\"]\n\
             [[contact]]\nid = \"a\"\ntier = \"A\"\nbackup = \"a-dep\"\nphone = \"1\"\n",
        )
        .expect("loads");
        let ps = problems(&l);
        assert!(ps.iter().any(|p| p.key == "contact[0].backup"), "{ps:?}");
        assert!(
            ps.iter().any(|p| p.key == "weather_call.escalate_to[0]"),
            "{ps:?}"
        );
        // A role outside the table (misspelt) is reported, not fatal.
        let l =
            Config::from_toml("[[contact]]\nid = \"a\"\nrole = \"meteorology\"\n").expect("loads");
        let ps = problems(&l);
        assert!(ps.iter().any(|p| p.key == "contact[0].role"), "{ps:?}");
    }

    #[test]
    fn reports_quota_year_gaps() {
        let l = Config::from_toml("[coal]\ndaily_quota_t = { 2023 = 1, 2025 = 2 }\n").unwrap();
        let ps = problems(&l);
        assert!(
            ps.iter().any(|p| p.key == "coal.daily_quota_t.2024"),
            "{ps:?}"
        );
    }

    /// PLANS.md §5.2 and §3: units without contacts (through aliases), offices without
    /// contacts, tier/role mismatches, and nobody told of an unreached person.
    #[test]
    fn reports_units_offices_tiers_and_unreached_to_nobody() {
        let base = "[[unit]]\nname = \"市工业和信息化局\"\naliases = [\"市工信局\"]\nplans = [\"coal_supply\"]\n\
                    [[contact]]\nid = \"gx\"\nunit = \"市工信局\"\n\
                    [[contact]]\nid = \"ny\"\nunit = \"市能源局\"\nplans = [\"coal_supply\"]\n\
                    [[contact]]\nid = \"m\"\nrole = \"mayor\"\ntier = \"B\"\nphone = \"1\"\n";
        let ps = problems(&Config::from_toml(base).unwrap());
        let keys: Vec<&str> = ps.iter().map(|p| p.key.as_str()).collect();
        // 市工信局 is an alias of the unit the §5.2.2(6) task names: covered.
        assert!(!keys.contains(&"unit(市工业和信息化局)"), "{keys:?}");
        assert!(keys.contains(&"unit(市交通运输局)"), "{keys:?}");
        assert!(!keys.contains(&"coal.office_unit"), "{keys:?}");
        assert!(keys.contains(&"pollution.office_unit"), "{keys:?}");
        assert!(keys.contains(&"contact[2].tier"), "{keys:?}");
        assert!(keys.contains(&"contact[2].backup"), "{keys:?}");
        // Without units, no unit problems; with escalate_to, no backup problem.
        let ps = problems(
            &Config::from_toml(
                "[weather_call]\nescalate_to = [\"m\"]\n[[contact]]\nid = \"m\"\nrole = \"mayor\"\ntier = \"C\"\nphone = \"1\"\n",
            )
            .unwrap(),
        );
        assert!(
            !ps.iter().any(|p| p.key.starts_with("unit(")
                || p.key.ends_with("office_unit")
                || p.key.starts_with("contact[0]")),
            "{ps:?}"
        );
    }
}
