//! `yingji check`: configuration problems an operator should fix. Pure: takes a loaded
//! configuration, returns problems; the CLI prints them and exits 1 when there are any.
//! A problem is the same [`ConfigError`] that stops a config from loading, with the same
//! key style: the TOML path of the offending key (`contact[3].tier`), or the table or
//! array that lacks something (`contact` when no contact has a role of the call table).

use crate::config::{Config, ConfigError, Contact, Loaded, Problems, Quota, CALL_ROLES};
use crate::notice::Plan;
use crate::wording::Tier;

/// The pollution plan's name for every county, city and district government (37号 §2).
const COUNTIES: &str = "各县(市、区)人民政府";

/// Everything `check` reports beyond the validation `Config::load` already did.
pub fn problems(loaded: &Loaded) -> Vec<ConfigError> {
    let cfg = &loaded.config;
    let mut p = Problems::default();
    for k in &loaded.unknown_keys {
        p.add(k.clone(), "unknown key (misspelt? it is ignored)");
    }
    coal(cfg, &mut p);
    call_table(cfg, &mut p);
    references(cfg, &mut p);
    tiers(cfg, &mut p);
    unreached_told(cfg, &mut p);
    if !cfg.units.is_empty() {
        units_reached(cfg, &mut p);
        offices_reached(cfg, &mut p);
    }
    p.0
}

/// `[coal]`: price thresholds in order; PLANS.md §1 "Output run": a quota table without a
/// year uses the latest earlier one, so check reports the years the table skips.
fn coal(cfg: &Config, p: &mut Problems) {
    if cfg.coal.price_large_pct < cfg.coal.price_abnormal_pct {
        p.add(
            "coal.price_large_pct",
            "is below coal.price_abnormal_pct: every abnormal price change is also large",
        );
    }
    if let Quota::ByYear(t) = &cfg.coal.daily_quota_t {
        let years: Vec<i32> = t.keys().map(|y| y.0).collect();
        if let (Some(lo), Some(hi)) = (years.first(), years.last()) {
            for y in *lo..*hi {
                if !years.contains(&y) {
                    p.add(
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
}

/// PLANS.md §3 "Recipients kept current" (§四.1): every department and leader of the call
/// table has a contact, and every such contact can be reached and is called.
fn call_table(cfg: &Config, p: &mut Problems) {
    for (role, name) in CALL_ROLES {
        let with_role: Vec<_> = cfg
            .contacts
            .iter()
            .enumerate()
            .filter(|(_, c)| c.role.as_deref() == Some(*role))
            .collect();
        if with_role.is_empty() {
            p.add(
                "contact",
                format!(
                    "no contact with role = {role}: {name} (叫应对象缺失, 叫应服务工作机制 §三)"
                ),
            );
        }
        for (i, c) in with_role {
            if !reachable(c) {
                p.add(
                    format!("contact[{i}]"),
                    format!(
                        "{name} {} has neither wechat nor phone: cannot be called",
                        c.name
                    ),
                );
            }
            if c.tier.is_none() {
                p.add(
                    format!("contact[{i}].tier"),
                    format!("{name} {} has no tier: never called", c.name),
                );
            }
        }
    }
    for (i, c) in cfg.contacts.iter().enumerate() {
        if c.tier.is_some() && c.role.is_none() && !reachable(c) {
            p.add(
                format!("contact[{i}]"),
                "a called contact with neither wechat nor phone",
            );
        }
    }
}

/// Roles outside the call table, and ids that name no contact: PLANS.md §3's
/// `call_unreached` goes to `escalate_to` and the backup, and an id without a contact
/// cannot be told (not a load error, so a config with them still runs).
fn references(cfg: &Config, p: &mut Problems) {
    let known = |id: &str| cfg.contact(id).is_some();
    for (i, ct) in cfg.contacts.iter().enumerate() {
        if let Some(r) = ct.role.as_deref() {
            if !CALL_ROLES.iter().any(|(k, _)| *k == r) && r != "other" {
                p.add(format!("contact[{i}].role"), format!("unknown role {r:?}"));
            }
        }
        if let Some(b) = ct.backup.as_deref().filter(|b| !known(b)) {
            p.add(
                format!("contact[{i}].backup"),
                format!("no contact with id {b:?}"),
            );
        }
    }
    for (i, id) in cfg.weather_call.escalate_to.iter().enumerate() {
        if !known(id) {
            p.add(
                format!("weather_call.escalate_to[{i}]"),
                format!("no contact with id {id:?}"),
            );
        }
    }
}

/// PLANS.md §3's table: departments are tier A, the leaders for meteorology and flood
/// control tier B, the city's top leaders tier C (直通式报告, extreme events only).
fn tiers(cfg: &Config, p: &mut Problems) {
    for (i, ct) in cfg.contacts.iter().enumerate() {
        let want = match ct.role.as_deref() {
            Some("party_secretary" | "mayor") => Tier::C,
            Some("leader_meteorology" | "leader_flood") => Tier::B,
            Some(r) if CALL_ROLES.iter().any(|(k, _)| *k == r) => Tier::A,
            _ => continue,
        };
        if let Some(t) = ct.tier.filter(|t| *t != want) {
            p.add(
                format!("contact[{i}].tier"),
                format!(
                    "role {} is tier {} in the call table (叫应服务工作机制 §三), not {}",
                    ct.role.as_deref().unwrap_or_default(),
                    want.as_str(),
                    t.as_str()
                ),
            );
        }
    }
}

/// PLANS.md §3: `call_unreached` goes to `escalate_to` and the person's backup; with
/// neither, an unreached person is reported to nobody.
fn unreached_told(cfg: &Config, p: &mut Problems) {
    if !cfg.weather_call.escalate_to.is_empty() {
        return;
    }
    for (i, ct) in cfg.contacts.iter().enumerate() {
        if ct.tier.is_some() && !ct.backup.as_deref().is_some_and(|b| !b.trim().is_empty()) {
            p.add(
                format!("contact[{i}].backup"),
                format!(
                    "{} ({}) has no backup and weather_call.escalate_to is empty: if unreached, nobody is told",
                    ct.id, ct.name
                ),
            );
        }
    }
}

/// Whether some contact belongs to the unit `name` (by its name or an alias).
fn has_contact(cfg: &Config, name: &str) -> bool {
    let unit = cfg.unit(name);
    cfg.contacts
        .iter()
        .any(|c| c.unit == name || unit.is_some_and(|u| u.named(&c.unit)))
}

/// PLANS.md §5.2: with units configured, every unit a task or measure names has a
/// contact (through its aliases). The key is the `[[unit]]` when one is configured, else
/// `contact` (the array that lacks it).
fn units_reached(cfg: &Config, p: &mut Problems) {
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
        let collective = unit == crate::plans::coal_supply::text::EVERY_UNIT || unit == COUNTIES;
        if unit.is_empty() || collective || !seen.insert(unit) || has_contact(cfg, unit) {
            continue;
        }
        let key = cfg
            .units
            .iter()
            .position(|u| u.named(unit))
            .map_or("contact".to_string(), |j| format!("unit[{j}]"));
        p.add(
            key,
            format!(
                "{unit} is named by {named_by} but no contact belongs to it (by its name or an alias): its lines reach nobody"
            ),
        );
    }
}

/// PLANS.md §5.2: each plan's office has a contact who takes that plan's notices.
fn offices_reached(cfg: &Config, p: &mut Problems) {
    for (plan, key, office) in [
        (Plan::CoalSupply, "coal.office_unit", &cfg.coal.office_unit),
        (
            Plan::HeavyPollution,
            "pollution.office_unit",
            &cfg.pollution.office_unit,
        ),
    ] {
        let unit = cfg.unit(office);
        let any = cfg.contacts.iter().any(|c| {
            (c.unit == *office || unit.is_some_and(|u| u.named(&c.unit))) && c.plans.contains(&plan)
        });
        if !any {
            let plan = plan.as_str();
            p.add(
                key,
                format!(
                    "the {plan} office {office} has no contact whose plans include {plan}: report_overdue notices reach nobody"
                ),
            );
        }
    }
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
        assert!(ps.iter().any(|p| p.key == "contact[0]"), "{ps:?}");
        assert!(!ps.iter().any(|p| p.key == "contact[1]"), "{ps:?}");
        let missing = |role: &str| {
            ps.iter().any(|p| {
                p.key == "contact"
                    && p.message
                        .starts_with(&format!("no contact with role = {role}:"))
            })
        };
        assert!(missing("mayor"), "{ps:?}");
        assert!(!missing("water"), "{ps:?}");
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
        assert!(ps.iter().any(|p| p.key == "contact[0]"), "{ps:?}");
        assert!(ps.iter().any(|p| p.key == "contact[1]"), "{ps:?}");
        let missing: Vec<_> = ps
            .iter()
            .filter(|p| p.key == "contact" && p.message.starts_with("no contact with role = "))
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
        let unreached = |unit: &str| {
            ps.iter()
                .find(|p| p.message.starts_with(&format!("{unit} is named by ")))
                .map(|p| p.key.as_str())
        };
        // 市工信局 is an alias of the unit the §5.2.2(6) task names: covered.
        assert_eq!(unreached("市工业和信息化局"), None, "{ps:?}");
        // Not a configured [[unit]]: the key is the array that lacks its contact.
        assert_eq!(unreached("市交通运输局"), Some("contact"), "{ps:?}");
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
            !ps.iter().any(|p| p.message.contains(" is named by ")
                || p.key.ends_with("office_unit")
                || p.key.starts_with("contact[0]")),
            "{ps:?}"
        );
    }

    /// One key style: a configured `[[unit]]` that no contact belongs to is named by its
    /// TOML path, as a load error would name it.
    #[test]
    fn a_configured_unit_without_contacts_is_named_by_its_path() {
        let l = Config::from_toml(
            "[[unit]]\nname = \"市能源局\"\n[[unit]]\nname = \"市交通运输局\"\nplans = [\"coal_supply\"]\n",
        )
        .unwrap();
        let ps = problems(&l);
        let p = ps
            .iter()
            .find(|p| p.message.starts_with("市交通运输局 is named by "))
            .expect("reported");
        assert_eq!(p.key, "unit[1]", "{ps:?}");
    }
}
