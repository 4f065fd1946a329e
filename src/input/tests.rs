//! One test per rejection class (issue 2), plus the accepted shapes of every topic.

use super::*;
use crate::time::parse_ts;

fn cfg() -> Config {
    Config::from_toml("").unwrap().config
}

fn at() -> Ts {
    parse_ts("2023-12-01T08:05:00+08:00").unwrap()
}

fn ok(topic: &str, payload: &str) -> Input {
    parse(&cfg(), topic, payload.as_bytes(), at())
        .unwrap_or_else(|r| panic!("{topic} {payload}: {r}"))
        .input
}

fn rejected(topic: &str, payload: &str) -> Rejection {
    match parse(&cfg(), topic, payload.as_bytes(), at()) {
        Ok(m) => panic!("{topic} {payload} was accepted: {m:?}"),
        Err(r) => r,
    }
}

#[test]
fn bad_json() {
    let r = rejected("ers/shuozhou/air/aqi", "{\"ts\": ");
    assert_eq!(r.class, RejectionClass::BadJson);
    assert_eq!(r.region.as_deref(), Some("shuozhou"));
    let r = rejected("ers/shuozhou/air/aqi", "[1, 2]");
    assert_eq!(r.class, RejectionClass::BadJson);
    let r = rejected("ers/shuozhou/air/aqi", "{\"aqi\": NaN}");
    assert_eq!(r.class, RejectionClass::BadJson);
}

#[test]
fn missing_field() {
    let r = rejected(
        "ers/shuozhou/air/aqi",
        r#"{"ts": "2023-12-01T08:00:00+08:00"}"#,
    );
    assert_eq!(r.class, RejectionClass::MissingField);
    assert!(r.reason.contains("aqi"), "{}", r.reason);
    let r = rejected("ers/shuozhou/coal/output", r#"{"output_t": 1}"#);
    assert_eq!(
        (r.class, r.reason.as_str()),
        (RejectionClass::MissingField, "missing field: date")
    );
    let r = rejected("ers/shuozhou/cmd", r#"{"cmd": "ack", "person": "p"}"#);
    assert!(r.reason.contains("call_id"));
    let r = rejected(
        "ers/shuozhou/air/province",
        r#"{"ts": "2023-12-01T08:00:00+08:00", "action": "issue"}"#,
    );
    assert_eq!(r.class, RejectionClass::MissingField);
}

#[test]
fn wrong_type() {
    let r = rejected(
        "ers/shuozhou/air/aqi",
        r#"{"ts": "2023-12-01T08:00:00+08:00", "aqi": "high", "primary": null}"#,
    );
    assert_eq!(r.class, RejectionClass::WrongType);
    assert!(
        r.reason.contains("aqi must be a number, got a string"),
        "{}",
        r.reason
    );
    let r = rejected(
        "ers/shuozhou/weather/warning",
        r#"{"ts": "2023-12-01T08:00:00+08:00", "id": "w", "hazard": "rainstorm", "color": "red", "action": "issue", "extreme": "yes"}"#,
    );
    assert_eq!(r.class, RejectionClass::WrongType);
}

#[test]
fn unknown_region_and_topic() {
    let r = rejected("ers/datong/air/aqi", "{}");
    assert_eq!(r.class, RejectionClass::UnknownRegion);
    assert!(r.region.is_none());
    let r = rejected("ers/shuozhou/air/pollen", "{}");
    assert_eq!(r.class, RejectionClass::UnknownTopic);
    let r = rejected("other/shuozhou/air/aqi", "{}");
    assert_eq!(r.class, RejectionClass::UnknownTopic);
}

#[test]
fn out_of_range() {
    for p in [
        r#"{"ts": "2023-12-01T08:00:00+08:00", "aqi": -1, "primary": null}"#,
        r#"{"ts": "2023-12-01T08:00:00+08:00", "aqi": 1001, "primary": null}"#,
    ] {
        assert_eq!(
            rejected("ers/shuozhou/air/aqi", p).class,
            RejectionClass::OutOfRange
        );
    }
    let r = rejected(
        "ers/shuozhou/coal/stock",
        r#"{"ts": "2023-12-01T08:00:00+08:00", "plant": "p", "stock_t": -5, "burn_t_per_day": 10}"#,
    );
    assert_eq!(r.class, RejectionClass::OutOfRange);
    let r = rejected(
        "ers/shuozhou/coal/stock",
        r#"{"ts": "2023-12-01T08:00:00+08:00", "plant": "p", "stock_t": 5, "burn_t_per_day": 0}"#,
    );
    assert_eq!(r.class, RejectionClass::OutOfRange);
    assert!(r.reason.contains("burn"));
    let r = rejected(
        "ers/shuozhou/coal/output",
        r#"{"date": "2023-12-01", "output_t": -1}"#,
    );
    assert_eq!(r.class, RejectionClass::OutOfRange);
    let r = rejected(
        "ers/shuozhou/air/aqi",
        r#"{"ts": "2023-12-01T08:00:00+08:00", "aqi": 1e400}"#,
    );
    assert_eq!(
        r.class,
        RejectionClass::BadJson,
        "serde_json refuses infinities"
    );
}

#[test]
fn too_large() {
    let big = format!(
        r#"{{"ts": "2023-12-01T08:00:00+08:00", "aqi": 50, "text": "{}"}}"#,
        "x".repeat(70_000)
    );
    assert_eq!(
        rejected("ers/shuozhou/air/aqi", &big).class,
        RejectionClass::TooLarge
    );
}

#[test]
fn future_timestamps() {
    // More than one day after arrival: rejected; exactly one day: accepted.
    let r = rejected(
        "ers/shuozhou/air/aqi",
        r#"{"ts": "2023-12-02T08:06:00+08:00", "aqi": 50, "primary": null}"#,
    );
    assert_eq!(r.class, RejectionClass::Future);
    ok(
        "ers/shuozhou/air/aqi",
        r#"{"ts": "2023-12-02T08:05:00+08:00", "aqi": 50, "primary": null}"#,
    );
    // A date D counts as D 00:00.
    ok(
        "ers/shuozhou/coal/output",
        r#"{"date": "2023-12-02", "output_t": 1}"#,
    );
    assert_eq!(
        rejected(
            "ers/shuozhou/coal/output",
            r#"{"date": "2023-12-03", "output_t": 1}"#
        )
        .class,
        RejectionClass::Future
    );
    // Forecast hours may lie ahead; `issued` may not.
    ok(
        "ers/shuozhou/air/forecast",
        r#"{"issued": "2023-12-01T08:00:00+08:00", "hours": [{"ts": "2023-12-05T08:00:00+08:00", "aqi": 250, "primary": "PM2.5"}]}"#,
    );
    assert_eq!(
        rejected(
            "ers/shuozhou/air/forecast",
            r#"{"issued": "2023-12-03T08:00:00+08:00", "hours": []}"#
        )
        .class,
        RejectionClass::Future
    );
}

#[test]
fn bad_values() {
    let r = rejected(
        "ers/shuozhou/air/aqi",
        r#"{"ts": "2023-12-01T08:00:00+08:00", "aqi": 50, "primary": "pollen"}"#,
    );
    assert_eq!(r.class, RejectionClass::BadValue);
    let r = rejected(
        "ers/shuozhou/weather/warning",
        r#"{"ts": "2023-12-01T08:00:00+08:00", "id": "w", "hazard": "rainstorm", "color": "purple", "action": "issue"}"#,
    );
    assert_eq!(r.class, RejectionClass::BadValue);
    let r = rejected(
        "ers/shuozhou/cmd",
        r#"{"cmd": "manual", "plan": "heavy_pollution", "level": "L2"}"#,
    );
    assert_eq!(r.class, RejectionClass::BadValue);
    let r = rejected("ers/shuozhou/cmd", r#"{"cmd": "reboot"}"#);
    assert_eq!(r.class, RejectionClass::BadValue);
    let r = rejected(
        "ers/shuozhou/air/aqi",
        r#"{"ts": "2023-12-01 08:00", "aqi": 50}"#,
    );
    assert_eq!(r.class, RejectionClass::BadValue);
    let r = rejected(
        "ers/shuozhou/air/forecast",
        r#"{"issued": "2023-12-01T08:00:00+08:00", "hours": [{"ts": "2023-12-01T09:00:00+08:00", "aqi_low": 200, "aqi_high": 150}]}"#,
    );
    assert_eq!(r.class, RejectionClass::OutOfRange);
}

#[test]
fn aggregate_rule_rejects_stock_days_only() {
    let mut c = cfg();
    c.coal.stock_rule = StockRule::Aggregate;
    let r = parse(
        &c,
        "ers/shuozhou/coal/stock",
        br#"{"ts": "2023-12-01T08:00:00+08:00", "plant": "p", "stock_days": 12}"#,
        at(),
    )
    .unwrap_err();
    assert_eq!(r.class, RejectionClass::MissingField);
}

#[test]
fn accepted_shapes() {
    match ok(
        "ers/shuozhou/coal/stock",
        r#"{"ts": "2023-12-01T08:00:00+08:00", "plant": "神头电厂", "stock_t": 190000, "burn_t_per_day": 10000}"#,
    ) {
        Input::CoalStock(s) => assert_eq!(s.stock.days(), 19.0),
        i => panic!("{i:?}"),
    }
    match ok(
        "ers/shuozhou/air/aqi",
        r#"{"ts": "2023-12-01T08:00:00+08:00", "aqi": 210, "primary": ["PM2.5", "PM10"], "so2_ug_m3": 20, "cause": "fireworks"}"#,
    ) {
        Input::AirAqi(a) => {
            assert_eq!(a.primary, vec![Pollutant::Pm25, Pollutant::Pm10]);
            assert_eq!(a.cause, Some(Cause::Fireworks));
            assert_eq!(a.so2_ug_m3, Some(20.0));
        }
        i => panic!("{i:?}"),
    }
    // Concentrations instead of aqi: computed per AQI.md (2026 by default).
    match ok(
        "ers/shuozhou/air/aqi",
        r#"{"ts": "2023-12-01T08:00:00+08:00", "pm25": 172, "pm10": 120, "so2": 20, "no2": 40, "co": 1.2, "o3": 30}"#,
    ) {
        Input::AirAqi(a) => {
            assert_eq!(a.aqi, 222.0);
            assert_eq!(a.primary, vec![Pollutant::Pm25]);
            assert_eq!(a.so2_ug_m3, Some(20.0));
        }
        i => panic!("{i:?}"),
    }
    // Daily forecast values spread over D 01:00 … D+1 00:00; a range uses its upper bound.
    match ok(
        "ers/shuozhou/air/forecast",
        r#"{"issued": "2023-12-01T08:00:00+08:00", "days": [{"date": "2023-12-02", "aqi_low": 150, "aqi_high": 220, "primary": "PM2.5"}]}"#,
    ) {
        Input::AirForecast(f) => {
            assert_eq!(f.hours.len(), 24);
            assert_eq!(
                crate::time::fmt_ts(f.hours[0].ts),
                "2023-12-02T01:00:00+08:00"
            );
            assert_eq!(
                crate::time::fmt_ts(f.hours[23].ts),
                "2023-12-03T00:00:00+08:00"
            );
            assert_eq!(f.hours[0].aqi, 220.0);
        }
        i => panic!("{i:?}"),
    }
    match ok(
        "ers/shuozhou/weather/warning",
        r#"{"ts": "2023-12-01T08:00:00+08:00", "id": "w1", "hazard": "sandstorm", "color": "red", "action": "issue"}"#,
    ) {
        Input::WeatherWarning(w) => assert_eq!(w.hazard, Hazard::Other("sandstorm".into())),
        i => panic!("{i:?}"),
    }
    match ok(
        "ers/shuozhou/cmd",
        r#"{"cmd": "manual", "plan": "coal_supply", "level": "none", "reason": "r", "by": "b"}"#,
    ) {
        Input::Cmd(Command::Manual { level, .. }) => assert_eq!(level, ManualLevel::None),
        i => panic!("{i:?}"),
    }
}

/// Issue 9 item 11: a duplicate key (at any depth) is refused, not "last one wins".
#[test]
fn duplicate_keys_are_rejected_at_any_depth() {
    let r = rejected(
        "ers/shuozhou/air/aqi",
        r#"{"ts": "2023-12-01T08:00:00+08:00", "aqi": 50, "aqi": 500, "primary": "PM2.5"}"#,
    );
    assert_eq!(r.class, RejectionClass::DuplicateKey, "{r}");
    assert!(r.reason.contains("\"aqi\""), "{r}");
    let r = rejected(
        "ers/shuozhou/air/forecast",
        r#"{"issued": "2023-12-01T08:00:00+08:00", "hours": [{"ts": "2023-12-01T10:00:00+08:00", "aqi": 50, "primary": null, "ts": "2023-12-01T11:00:00+08:00"}]}"#,
    );
    assert_eq!(r.class, RejectionClass::DuplicateKey, "{r}");
    // The same key in sibling objects is fine.
    ok(
        "ers/shuozhou/air/forecast",
        r#"{"issued": "2023-12-01T08:00:00+08:00", "hours": [{"ts": "2023-12-01T10:00:00+08:00", "aqi": 50, "primary": null}, {"ts": "2023-12-01T11:00:00+08:00", "aqi": 50, "primary": null}]}"#,
    );
}

/// Issue 9 item 11: readings dated far before their arrival are refused, per feed.
#[test]
fn old_timestamps_are_rejected_per_feed() {
    let r = rejected(
        "ers/shuozhou/air/aqi",
        r#"{"ts": "1900-01-01T08:00:00+08:00", "aqi": 300, "primary": "PM2.5"}"#,
    );
    assert_eq!(r.class, RejectionClass::TooOld, "{r}");
    assert!(r.reason.contains("air_aqi"), "names the key: {r}");
    // A weather warning: 1 day. 25 h old is refused, 23 h old accepted.
    let w = |ts: &str| {
        format!(
            r#"{{"ts": "{ts}", "id": "w1", "hazard": "rainstorm", "color": "red", "action": "issue"}}"#
        )
    };
    assert_eq!(
        rejected(
            "ers/shuozhou/weather/warning",
            &w("2023-11-30T07:05:00+08:00")
        )
        .class,
        RejectionClass::TooOld
    );
    ok(
        "ers/shuozhou/weather/warning",
        &w("2023-11-30T09:05:00+08:00"),
    );
    // Coal output: 60 days (corrections arrive weeks late).
    ok(
        "ers/shuozhou/coal/output",
        r#"{"date": "2023-10-15", "output_t": 100}"#,
    );
    assert_eq!(
        rejected(
            "ers/shuozhou/coal/output",
            r#"{"date": "2023-09-15", "output_t": 100}"#
        )
        .class,
        RejectionClass::TooOld
    );
    // Configurable.
    let c = Config::from_toml("[limits.max_age_days]\nair_aqi = 0.5\n")
        .unwrap()
        .config;
    let p = br#"{"ts": "2023-11-30T20:00:00+08:00", "aqi": 300, "primary": "PM2.5"}"#;
    assert!(parse(&cfg(), "ers/shuozhou/air/aqi", p, at()).is_ok());
    assert_eq!(
        parse(&c, "ers/shuozhou/air/aqi", p, at())
            .unwrap_err()
            .class,
        RejectionClass::TooOld
    );
}

/// Issue 9 item 6: values whose stock days are not finite cannot be represented.
#[test]
fn infinite_stock_days_are_rejected() {
    let r = rejected(
        "ers/shuozhou/coal/stock",
        r#"{"ts": "2023-12-01T08:00:00+08:00", "plant": "p", "stock_t": 1e308, "burn_t_per_day": 1e-308}"#,
    );
    assert_eq!(r.class, RejectionClass::OutOfRange, "{r}");
}

/// Issue 9 item 5: a forecast is never rejected for reaching far ahead, but hours more
/// than 7 days after its arrival are not kept (counted).
#[test]
fn forecast_hours_beyond_seven_days_are_ignored_not_rejected() {
    let mut days = Vec::new();
    for k in 0..185 {
        let d = chrono::NaiveDate::from_ymd_opt(2023, 12, 1).unwrap() + chrono::Duration::days(k);
        days.push(format!(
            r#"{{"date": "{d}", "aqi": 120, "primary": "PM2.5"}}"#
        ));
    }
    for k in 0..185 {
        let d = chrono::NaiveDate::from_ymd_opt(2100, 1, 1).unwrap() + chrono::Duration::days(k);
        days.push(format!(
            r#"{{"date": "{d}", "aqi": 120, "primary": "PM2.5"}}"#
        ));
    }
    let p = format!(
        r#"{{"issued": "2023-12-01T08:00:00+08:00", "days": [{}]}}"#,
        days.join(",")
    );
    let mut c = cfg();
    c.limits.max_payload_bytes = 1 << 20;
    let Input::AirForecast(f) = parse(&c, "ers/shuozhou/air/forecast", p.as_bytes(), at())
        .unwrap()
        .input
    else {
        panic!("a forecast");
    };
    let horizon = at() + chrono::Duration::days(7);
    assert!(f.hours.iter().all(|h| h.ts <= horizon));
    assert!(f
        .hours
        .iter()
        .any(|h| h.ts > at() + chrono::Duration::days(6)));
    assert_eq!(f.hours.len() + f.ignored_hours, 370 * 24);
    assert!(f.ignored_hours > 360 * 24);
}

/// PLANS.md §5.2 `report`: the unit by name or alias; rejected with its reason: an unknown
/// unit, a unit whose plans exclude the plan, severe_weather, an empty text, cut_pct
/// outside 0–100.
#[test]
fn report_command_resolves_aliases_and_rejects_bad_values() {
    let cfg = crate::config::Config::from_toml(
        "[[unit]]\nname = \"市工业和信息化局\"\naliases = [\"市工信局\"]\nplans = [\"heavy_pollution\"]\n",
    )
    .unwrap()
    .config;
    let at = crate::time::parse_ts("2023-12-01T10:00:00+08:00").unwrap();
    let p = |s: &str| parse(&cfg, "ers/shuozhou/cmd", s.as_bytes(), at);
    let ok = p(r#"{"cmd": "report", "plan": "heavy_pollution", "unit": "市工信局", "text": "已落实", "by": "李四", "enterprises": ["甲厂"], "cut_pct": 100}"#).unwrap();
    match ok.input {
        Input::Cmd(Command::Report(r)) => {
            assert_eq!(r.unit, "市工业和信息化局");
            assert_eq!(r.enterprises, vec!["甲厂".to_string()]);
            assert_eq!(r.cut_pct, Some(100.0));
        }
        other => panic!("{other:?}"),
    }
    for (payload, why) in [
        (
            r#"{"cmd": "report", "plan": "heavy_pollution", "unit": "市民政局", "text": "x", "by": "b"}"#,
            "unknown unit",
        ),
        (
            r#"{"cmd": "report", "plan": "coal_supply", "unit": "市工信局", "text": "x", "by": "b"}"#,
            "does not report on coal_supply",
        ),
        (
            r#"{"cmd": "report", "plan": "severe_weather", "unit": "市工信局", "text": "x", "by": "b"}"#,
            "severe_weather",
        ),
        (
            r#"{"cmd": "report", "plan": "heavy_pollution", "unit": "市工信局", "text": "  ", "by": "b"}"#,
            "text must not be empty",
        ),
        (
            r#"{"cmd": "report", "plan": "heavy_pollution", "unit": "市工信局", "text": "x", "by": "b", "cut_pct": -1}"#,
            "cut_pct",
        ),
        (
            r#"{"cmd": "report", "plan": "heavy_pollution", "unit": "市工信局", "text": "x", "by": "b", "cut_pct": 100.5}"#,
            "cut_pct",
        ),
    ] {
        let r = p(payload).unwrap_err();
        assert_eq!(r.class, RejectionClass::BadValue, "{payload}");
        assert!(r.reason.contains(why), "{payload}: {}", r.reason);
    }
}
