//! Property tests of the input parser: whatever arrives, parsing never panics, and a
//! message is either a typed input or a rejection with a reason and a class.

use proptest::prelude::*;
use yingji::config::Config;
use yingji::input::{parse, Topic};
use yingji::time::parse_ts;

fn cfg() -> Config {
    Config::from_toml("").unwrap().config
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        any::<i64>().prop_map(|i| serde_json::json!(i)),
        (-1e6f64..1e6).prop_map(|f| serde_json::json!(f)),
        prop_oneof![
            Just("2023-12-01T08:00:00+08:00".to_string()),
            Just("2023-12-01".to_string()),
            Just("PM2.5".to_string()),
            Just("rainstorm".to_string()),
            Just("red".to_string()),
            Just("issue".to_string()),
            "[a-z0-9 .:+-]{0,12}",
        ]
        .prop_map(serde_json::Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("ts".to_string()),
                    Just("aqi".to_string()),
                    Just("primary".to_string()),
                    Just("hours".to_string()),
                    Just("date".to_string()),
                    "[a-z_]{1,8}",
                ],
                inner,
                0..5
            )
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Field names every payload kind uses, so generated objects often reach deep validation.
const KEYS: &[&str] = &[
    "ts",
    "plant",
    "stock_t",
    "burn_t_per_day",
    "stock_days",
    "date",
    "output_t",
    "price_cny_t",
    "storage_t",
    "aqi",
    "primary",
    "so2_ug_m3",
    "cause",
    "pm25",
    "pm10",
    "so2",
    "no2",
    "co",
    "o3",
    "issued",
    "hours",
    "days",
    "aqi_low",
    "aqi_high",
    "action",
    "level",
    "start",
    "ref",
    "id",
    "hazard",
    "color",
    "extreme",
    "text",
    "station",
    "rain_mm",
    "snow_mm",
    "wind_ms",
    "gust_ms",
    "cmd",
    "call_id",
    "person",
    "by",
    "proposal_id",
    "reason",
    "plan",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(i in 0..Topic::all().len(), bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let c = cfg();
        let at = parse_ts("2023-12-01T08:05:00+08:00").unwrap();
        let topic = format!("ers/shuozhou/{}", Topic::all()[i]);
        if let Err(r) = parse(&c, &topic, &bytes, at) {
            prop_assert!(!r.reason.is_empty());
        }
    }

    #[test]
    fn arbitrary_objects_never_panic(
        i in 0..Topic::all().len(),
        fields in prop::collection::vec((0..KEYS.len(), json_value()), 0..8),
    ) {
        let c = cfg();
        let at = parse_ts("2023-12-01T08:05:00+08:00").unwrap();
        let obj: serde_json::Map<String, serde_json::Value> =
            fields.into_iter().map(|(k, v)| (KEYS[k].to_string(), v)).collect();
        let bytes = serde_json::to_vec(&obj).unwrap();
        let topic = format!("ers/shuozhou/{}", Topic::all()[i]);
        match parse(&c, &topic, &bytes, at) {
            Ok(m) => prop_assert_eq!(m.region, 0),
            Err(r) => {
                prop_assert!(!r.reason.is_empty());
                prop_assert_eq!(r.region.as_deref(), Some("shuozhou"));
            }
        }
    }
}
