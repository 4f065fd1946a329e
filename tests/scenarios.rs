//! Every `scenarios/NAME.jsonl` with a `NAME.expected.jsonl` beside it is replayed (with
//! `NAME.toml` as its config when present, else the built-in defaults) and compared as
//! `yingji replay --expect` does. Each scenario is its own test, named after its file with
//! `-` as `_` (`cargo test --test scenarios accept_coal_gaps`).

use std::collections::BTreeSet;
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
fn expected_names() -> BTreeSet<String> {
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

/// What one scenario made, once replayed and compared.
struct Checked {
    /// Plans that made a notice.
    produced_plans: BTreeSet<String>,
    /// Plans with an expected line giving a `reason`.
    plans_with_reason: BTreeSet<String>,
    /// Whether an expected file was compared.
    compared: bool,
}

/// Replays `scenarios/NAME.jsonl` and, when `NAME.expected.jsonl` is beside it, compares it
/// as `yingji replay --expect` does; its expected file must name every kind of notice the
/// scenario makes (`--expect` compares only the kinds an expected file names, so a kind
/// left out would never be checked).
fn check(name: &str) -> Result<Checked, String> {
    let s = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("scenarios/{name}.jsonl"));
    let expected_path = s.with_file_name(format!("{name}.expected.jsonl"));
    let cfg = config_for(&s);
    let text = std::fs::read_to_string(&s).map_err(|e| format!("{name}: {e}"))?;
    let produced = yingji::replay::replay_str(&cfg, &text).map_err(|e| format!("{name}: {e}"))?;
    let mut out = Checked {
        produced_plans: produced
            .iter()
            .map(|n| n.plan.as_str().to_string())
            .collect(),
        plans_with_reason: BTreeSet::new(),
        compared: false,
    };
    if !expected_path.exists() {
        return Ok(out);
    }
    let exp_text = std::fs::read_to_string(&expected_path).unwrap();
    let expected = yingji::expect::parse_expected(&exp_text)
        .unwrap_or_else(|e| panic!("{}: {e}", expected_path.display()));
    let named = yingji::expect::kinds_of(&expected);
    let unnamed: BTreeSet<&str> = produced
        .iter()
        .map(|n| n.kind.as_str())
        .filter(|k| !named.contains(*k))
        .collect();
    if !unnamed.is_empty() {
        return Err(format!(
            "{name}: the expected file names no notice of kind {unnamed:?}, which the \
             scenario makes: they are not compared (add their lines, from `yingji replay \
             --out`, each checked by hand)"
        ));
    }
    for e in &expected {
        if e.value.contains_key("reason") {
            if let Some(p) = e.value.get("plan").and_then(|v| v.as_str()) {
                out.plans_with_reason.insert(p.to_string());
            }
        }
    }
    yingji::expect::compare(&expected, &produced).map_err(|diff| format!("{name}:\n{diff}"))?;
    out.compared = true;
    Ok(out)
}

/// One `#[test]` per scenario, named after its file (`-` as `_`), so that
/// `cargo test accept_coal_gaps` runs just that one; `LISTED` names them all, and
/// [`scenarios_match_their_expected_notices`] fails when a scenario file is not listed.
macro_rules! scenarios {
    ($($test:ident => $file:literal,)*) => {
        mod scenario {
            $(
                #[test]
                fn $test() {
                    if let Err(e) = super::check($file) {
                        panic!("{e}");
                    }
                }
            )*
        }
        const LISTED: &[&str] = &[$($file),*];
    };
}

scenarios! {
    accept_coal_aggregate => "accept-coal-aggregate",
    accept_coal_config_keys => "accept-coal-config-keys",
    accept_coal_confirm => "accept-coal-confirm",
    accept_coal_confirm_l1 => "accept-coal-confirm-l1",
    accept_coal_corrections => "accept-coal-corrections",
    accept_coal_downgrade_hold => "accept-coal-downgrade-hold",
    accept_coal_gap_periods => "accept-coal-gap-periods",
    accept_coal_gaps => "accept-coal-gaps",
    accept_coal_hold_interplay => "accept-coal-hold-interplay",
    accept_coal_key_plants => "accept-coal-key-plants",
    accept_coal_lift_restart => "accept-coal-lift-restart",
    accept_coal_manual => "accept-coal-manual",
    accept_coal_message_order => "accept-coal-message-order",
    accept_coal_output_l1_run => "accept-coal-output-l1-run",
    accept_coal_output_skip_correction => "accept-coal-output-skip-correction",
    accept_coal_output_year_quota => "accept-coal-output-year-quota",
    accept_coal_price_exact => "accept-coal-price-exact",
    accept_coal_price_range => "accept-coal-price-range",
    accept_coal_regions => "accept-coal-regions",
    accept_coal_report_time => "accept-coal-report-time",
    accept_coal_same_instant => "accept-coal-same-instant",
    accept_coal_stock_boundary => "accept-coal-stock-boundary",
    accept_coal_stock_decimal => "accept-coal-stock-decimal",
    accept_coal_stock_latest_ts => "accept-coal-stock-latest-ts",
    accept_coal_targets_beyond => "accept-coal-targets-beyond",
    accept_coal_timer_collisions => "accept-coal-timer-collisions",
    accept_cross_aqi_standard_2012 => "accept-cross-aqi-standard-2012",
    accept_cross_aqi_standard_2026 => "accept-cross-aqi-standard-2026",
    accept_cross_call_rearm => "accept-cross-call-rearm",
    accept_cross_future_date => "accept-cross-future-date",
    accept_cross_future_ts => "accept-cross-future-ts",
    accept_cross_order_end => "accept-cross-order-end",
    accept_cross_order_end_early => "accept-cross-order-end-early",
    accept_cross_order_message => "accept-cross-order-message",
    accept_cross_order_rejected_at_t => "accept-cross-order-rejected-at-t",
    accept_cross_regions_clean => "accept-cross-regions-clean",
    accept_cross_regions_rejects => "accept-cross-regions-rejects",
    accept_cross_regions_timers_before_message => "accept-cross-regions-timers-before-message",
    accept_cross_same_at_coal_first => "accept-cross-same-at-coal-first",
    accept_cross_same_at_weather_first => "accept-cross-same-at-weather-first",
    accept_cross_terminated_track_timers => "accept-cross-terminated-track-timers",
    accept_cross_weather_regions => "accept-cross-weather-regions",
    accept_pollution_approval_cycle => "accept-pollution-approval-cycle",
    accept_pollution_c150_72_run => "accept-pollution-c150-72-run",
    accept_pollution_c150_run => "accept-pollution-c150-run",
    accept_pollution_daily_horizon_end => "accept-pollution-daily-horizon-end",
    accept_pollution_dust_so2 => "accept-pollution-dust-so2",
    accept_pollution_gap_periods => "accept-pollution-gap-periods",
    accept_pollution_horizon48_regions => "accept-pollution-horizon48-regions",
    accept_pollution_lift_downgrade_edges => "accept-pollution-lift-downgrade-edges",
    accept_pollution_obs_ahead => "accept-pollution-obs-ahead",
    accept_pollution_ozone_lift => "accept-pollution-ozone-lift",
    accept_pollution_ozone_reject_nomove => "accept-pollution-ozone-reject-nomove",
    accept_pollution_ozone_votes => "accept-pollution-ozone-votes",
    accept_pollution_province_floor => "accept-pollution-province-floor",
    accept_pollution_province_voids_proposal => "accept-pollution-province-voids-proposal",
    accept_pollution_red_300_window => "accept-pollution-red-300-window",
    accept_pollution_report_time_exact => "accept-pollution-report-time-exact",
    accept_pollution_same_instant_order => "accept-pollution-same-instant-order",
    accept_pollution_so2_sources => "accept-pollution-so2-sources",
    accept_pollution_three_tracks_one_instant => "accept-pollution-three-tracks-one-instant",
    accept_pollution_validity_threshold_gap => "accept-pollution-validity-threshold-gap",
    accept_weather_ack_instants => "accept-weather-ack-instants",
    accept_weather_ack_rejects => "accept-weather-ack-rejects",
    accept_weather_downgrade_goes_on => "accept-weather-downgrade-goes-on",
    accept_weather_escalate_cancels => "accept-weather-escalate-cancels",
    accept_weather_lift_instants => "accept-weather-lift-instants",
    accept_weather_no_retry => "accept-weather-no-retry",
    accept_weather_regions => "accept-weather-regions",
    accept_weather_same_hazard => "accept-weather-same-hazard",
    accept_weather_suggestions => "accept-weather-suggestions",
    accept_weather_tier_c => "accept-weather-tier-c",
    accept_weather_timeline => "accept-weather-timeline",
    accept_weather_triggers => "accept-weather-triggers",
    accept_weather_two_hazards => "accept-weather-two-hazards",
    accept_weather_update_into_trigger => "accept-weather-update-into-trigger",
    coal_aggregate => "coal-aggregate",
    coal_beyond => "coal-beyond",
    coal_confirm => "coal-confirm",
    coal_data_gap => "coal-data-gap",
    coal_manual => "coal-manual",
    coal_output_streak => "coal-output-streak",
    coal_price => "coal-price",
    coal_price_range => "coal-price-range",
    coal_reports => "coal-reports",
    coal_routing => "coal-routing",
    coal_stock_levels => "coal-stock-levels",
    coal_targets => "coal-targets",
    people_coal_commander_approve => "people-coal-commander-approve",
    people_coal_commander_confirm => "people-coal-commander-confirm",
    people_coal_commander_order => "people-coal-commander-order",
    people_coal_commander_reject => "people-coal-commander-reject",
    people_coal_commander_terminate => "people-coal-commander-terminate",
    people_coal_hold_waits_for_data => "people-coal-hold-waits-for-data",
    people_coal_report_back => "people-coal-report-back",
    people_coal_voided_termination => "people-coal-voided-termination",
    people_coal_voided_termination_commander => "people-coal-voided-termination-commander",
    people_pollution_report_back => "people-pollution-report-back",
    pollution_activate_obs => "pollution-activate-obs",
    pollution_approval => "pollution-approval",
    pollution_datagap => "pollution-datagap",
    pollution_downgrade => "pollution-downgrade",
    pollution_dust_fireworks => "pollution-dust-fireworks",
    pollution_escalate => "pollution-escalate",
    pollution_fluctuation => "pollution-fluctuation",
    pollution_forecast_days => "pollution-forecast-days",
    pollution_forecast_lead => "pollution-forecast-lead",
    pollution_forecast_urgent => "pollution-forecast-urgent",
    pollution_lift => "pollution-lift",
    pollution_merge => "pollution-merge",
    pollution_ozone => "pollution-ozone",
    pollution_province => "pollution-province",
    pollution_so2 => "pollution-so2",
    rejected_only => "rejected-only",
    weather_ack_between_phone_attempts => "weather-ack-between-phone-attempts",
    weather_ack_in_time => "weather-ack-in-time",
    weather_downgrade => "weather-downgrade",
    weather_duplicate_ack => "weather-duplicate-ack",
    weather_late_ack => "weather-late-ack",
    weather_lift_mid_round => "weather-lift-mid-round",
    weather_never_acked => "weather-never-acked",
    weather_no_wechat => "weather-no-wechat",
    weather_non_triggering => "weather-non-triggering",
    weather_suggestion => "weather-suggestion",
    weather_two_hazards => "weather-two-hazards",
    weather_unknown_call => "weather-unknown-call",
    weather_upgrade => "weather-upgrade",
}

/// Every scenario is replayed and every expected file compared (and each scenario has its
/// own named test above); every plan has at least one expected line with its `reason`
/// (the text people read).
#[test]
fn scenarios_match_their_expected_notices() {
    let files: BTreeSet<String> = scenario_files()
        .iter()
        .map(|p| p.file_stem().unwrap().to_string_lossy().to_string())
        .collect();
    let listed: BTreeSet<String> = LISTED.iter().map(|s| s.to_string()).collect();
    let unlisted: Vec<_> = files.difference(&listed).collect();
    let gone: Vec<_> = listed.difference(&files).collect();
    assert!(
        unlisted.is_empty() && gone.is_empty(),
        "every scenarios/*.jsonl needs its line in `scenarios!`, and only those: \
         not listed {unlisted:?}, listed but missing {gone:?}"
    );
    let mut failures = Vec::new();
    let mut compared = BTreeSet::new();
    let mut produced_plans = BTreeSet::new();
    let mut plans_with_reason = BTreeSet::new();
    for name in &files {
        match check(name) {
            Ok(c) => {
                produced_plans.extend(c.produced_plans);
                plans_with_reason.extend(c.plans_with_reason);
                if c.compared {
                    compared.insert(name.clone());
                }
            }
            Err(e) => failures.push(e),
        }
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
