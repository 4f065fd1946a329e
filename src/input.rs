//! Topic + payload -> typed [`Input`], or a [`Rejection`] with a reason an operator
//! understands (CONTRACT.md "Input topics", "Commands" and the rejection rules).
//! Parsing never touches engine state: a rejected message changes nothing.

use std::borrow::Cow;
use std::collections::BTreeMap;

use chrono::{Duration, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::aqi::{self, Concentrations, Pollutant};
use crate::config::{Config, StockRule};
use crate::levels::Lv;
use crate::time::{day_start, parse_date, parse_ts, Ts};

mod json;
pub use crate::topic::Topic;
use json::Json;

/// Why an input was refused. It changes no state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    pub topic: String,
    /// The region named by the topic, when it is a configured one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    pub class: RejectionClass,
    pub reason: String,
}

/// The class of a rejection: the `class` published on `{root}/{region}/rejected`
/// (CONTRACT.md "Input topics"), in snake case (`bad_json`, `missing_field`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectionClass {
    /// The topic is not `{root}/{region}/{feed}` with a known feed.
    UnknownTopic,
    /// The topic names a region that is not configured.
    UnknownRegion,
    /// The payload is over `limits.max_payload_bytes`.
    TooLarge,
    /// The payload is not JSON, or not a JSON object.
    BadJson,
    /// An object repeats a key (at any depth).
    DuplicateKey,
    MissingField,
    WrongType,
    OutOfRange,
    BadValue,
    /// The message's own time is more than 1 day after its arrival (PLANS.md §4).
    Future,
    /// The message's own time is beyond `limits.max_age_days` before its arrival.
    TooOld,
    /// The plan refused it (e.g. an ack for an unknown call).
    Refused,
    /// Handling it panicked; the daemon refused it and kept its state (the panic boundary).
    Internal,
}

impl RejectionClass {
    pub const ALL: [RejectionClass; 13] = [
        RejectionClass::UnknownTopic,
        RejectionClass::UnknownRegion,
        RejectionClass::TooLarge,
        RejectionClass::BadJson,
        RejectionClass::DuplicateKey,
        RejectionClass::MissingField,
        RejectionClass::WrongType,
        RejectionClass::OutOfRange,
        RejectionClass::BadValue,
        RejectionClass::Future,
        RejectionClass::TooOld,
        RejectionClass::Refused,
        RejectionClass::Internal,
    ];

    /// The published name, as serde writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectionClass::UnknownTopic => "unknown_topic",
            RejectionClass::UnknownRegion => "unknown_region",
            RejectionClass::TooLarge => "too_large",
            RejectionClass::BadJson => "bad_json",
            RejectionClass::DuplicateKey => "duplicate_key",
            RejectionClass::MissingField => "missing_field",
            RejectionClass::WrongType => "wrong_type",
            RejectionClass::OutOfRange => "out_of_range",
            RejectionClass::BadValue => "bad_value",
            RejectionClass::Future => "future",
            RejectionClass::TooOld => "too_old",
            RejectionClass::Refused => "refused",
            RejectionClass::Internal => "internal",
        }
    }
}

impl std::fmt::Display for RejectionClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} rejected ({}): {}",
            self.topic, self.class, self.reason
        )
    }
}

/// A validated message for one region.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// Index into `Config::regions`.
    pub region: usize,
    pub input: Input,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    CoalStock(StockReport),
    CoalOutput(OutputReport),
    CoalPrice(PriceReport),
    CoalStorage(StorageReport),
    AirAqi(AqiObs),
    AirForecast(Forecast),
    AirProvince(ProvinceNotice),
    WeatherWarning(Warning),
    WeatherObs(WeatherObs),
    Cmd(Command),
}

#[derive(Debug, Clone, PartialEq)]
pub struct StockReport {
    pub ts: Ts,
    pub plant: String,
    pub stock: Stock,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stock {
    Tonnes { stock_t: f64, burn_t_per_day: f64 },
    Days(f64),
}

impl Stock {
    /// Stock days = stock_t / burn_t_per_day, or as given.
    pub fn days(&self) -> f64 {
        match *self {
            Stock::Tonnes {
                stock_t,
                burn_t_per_day,
            } => stock_t / burn_t_per_day,
            Stock::Days(d) => d,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct OutputReport {
    pub date: NaiveDate,
    pub output_t: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PriceReport {
    pub date: NaiveDate,
    pub price_cny_t: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StorageReport {
    pub ts: Ts,
    pub storage_t: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Cause {
    Dust,
    Fireworks,
}

/// An hourly AQI observation; `ts` is the end of the hour.
#[derive(Debug, Clone, PartialEq)]
pub struct AqiObs {
    pub ts: Ts,
    pub aqi: f64,
    /// Primary pollutant(s); empty for null.
    pub primary: Vec<Pollutant>,
    /// SO2 of the hour (µg/m³): `so2_ug_m3`, else the `so2` concentration.
    pub so2_ug_m3: Option<f64>,
    pub cause: Option<Cause>,
    /// Each pollutant's IAQI when the AQI was computed from concentrations.
    pub iaqi: Option<BTreeMap<Pollutant, u32>>,
}

/// One forecast hour (a daily value is spread over its 24 stamps at parse time).
#[derive(Debug, Clone, PartialEq)]
pub struct ForecastHour {
    pub ts: Ts,
    /// The value used: `aqi`, or the upper bound of a range (§3.4).
    pub aqi: f64,
    pub aqi_low: Option<f64>,
    pub primary: Vec<Pollutant>,
    pub so2_ug_m3: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Forecast {
    pub issued: Ts,
    /// Whether it was given as daily values.
    pub daily: bool,
    pub hours: Vec<ForecastHour>,
    /// Hours more than [`FORECAST_HORIZON_DAYS`] after the forecast's arrival: not kept
    /// (no rule reads that far ahead; kept, they made memory and snapshots unbounded).
    pub ignored_hours: usize,
}

/// How far after its arrival a forecast hour is kept, in days. The scenarios send hours
/// up to ~100 h ahead, and such hours come into the horizon with later forecasts.
pub const FORECAST_HORIZON_DAYS: i64 = 7;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProvinceAction {
    Issue,
    Adjust,
    Lift,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProvinceNotice {
    pub ts: Ts,
    pub action: ProvinceAction,
    /// `yellow`, `orange` or `red` (a graded level, §3.2); required for issue and adjust.
    pub level: Option<Lv>,
    pub start: Option<Ts>,
    pub reference: Option<String>,
}

/// A weather hazard. Serialized as its code (`"rainstorm"`, …; the severe-weather plan keys
/// its snapshot maps by it). Ordered by that code, not by declaration (see the `Ord` impl).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Hazard {
    Rainstorm,
    Blizzard,
    ThunderstormGale,
    /// Accepted and ignored by the plans.
    Other(String),
}

/// Hazards order as their codes do (`blizzard` < `rainstorm` < `thunderstorm_gale`): the
/// severe-weather plan's maps keyed by hazard iterate in this order, and it must stay the
/// string order they had when they were keyed by the code, so that the engine snapshot and
/// the order of notices at one instant (PLANS.md §4) do not change.
impl Ord for Hazard {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl PartialOrd for Hazard {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Hazard {
    /// A hazard code (`rainstorm`, …); any other code is `Other`.
    pub fn parse(s: &str) -> Hazard {
        match s {
            "rainstorm" => Hazard::Rainstorm,
            "blizzard" => Hazard::Blizzard,
            "thunderstorm_gale" => Hazard::ThunderstormGale,
            other => Hazard::Other(other.to_string()),
        }
    }
    pub fn as_str(&self) -> &str {
        match self {
            Hazard::Rainstorm => "rainstorm",
            Hazard::Blizzard => "blizzard",
            Hazard::ThunderstormGale => "thunderstorm_gale",
            Hazard::Other(s) => s,
        }
    }
    /// The hazard as the call mechanism names it (65号 §二): 暴雨, 暴雪, 雷暴大风.
    pub fn name_zh(&self) -> &'static str {
        match self {
            Hazard::Rainstorm => "暴雨",
            Hazard::Blizzard => "暴雪",
            Hazard::ThunderstormGale => "雷暴大风",
            Hazard::Other(_) => "其他灾害",
        }
    }
    /// What a call reports first (65号 §三: 雨情; 雪情, 风情 for the other hazards); none
    /// for a hazard the mechanism does not call for.
    pub fn situation_zh(&self) -> Option<&'static str> {
        match self {
            Hazard::Rainstorm => Some("雨情"),
            Hazard::Blizzard => Some("雪情"),
            Hazard::ThunderstormGale => Some("风情"),
            Hazard::Other(_) => None,
        }
    }
}

/// Warning colours, ordered blue < yellow < orange < red.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Color {
    Blue,
    Yellow,
    Orange,
    Red,
}

impl Color {
    pub fn parse(s: &str) -> Option<Color> {
        match s {
            "blue" => Some(Color::Blue),
            "yellow" => Some(Color::Yellow),
            "orange" => Some(Color::Orange),
            "red" => Some(Color::Red),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Color::Blue => "blue",
            Color::Yellow => "yellow",
            Color::Orange => "orange",
            Color::Red => "red",
        }
    }
    pub fn name_zh(self) -> &'static str {
        match self {
            Color::Blue => "蓝色",
            Color::Yellow => "黄色",
            Color::Orange => "橙色",
            Color::Red => "红色",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WarningAction {
    Issue,
    Update,
    Lift,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Warning {
    pub ts: Ts,
    pub id: String,
    pub hazard: Hazard,
    /// Required for issue and update; a lift may omit it.
    pub color: Option<Color>,
    pub action: WarningAction,
    pub extreme: bool,
    pub text: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WeatherObs {
    pub ts: Ts,
    pub station: String,
    pub rain_mm: Option<f64>,
    pub snow_mm: Option<f64>,
    pub wind_ms: Option<f64>,
    pub gust_ms: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Ack {
        call_id: String,
        person: String,
        by: Option<String>,
    },
    Approve {
        proposal_id: String,
        by: String,
    },
    Reject {
        proposal_id: String,
        by: String,
        reason: String,
    },
    Confirm {
        proposal_id: String,
        by: String,
    },
    Manual {
        level: ManualLevel,
        reason: String,
        by: String,
    },
    /// A unit reports back (PLANS.md §5.2); `unit` is the configured name (an alias is
    /// resolved at parse time).
    Report(UnitReport),
}

/// `{"cmd": "report", ...}`: what a unit reports back (PLANS.md §5.2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnitReport {
    /// `coal_supply` or `heavy_pollution`.
    pub plan: crate::notice::Plan,
    pub unit: String,
    pub text: String,
    pub by: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub enterprises: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cut_pct: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ManualLevel {
    L2,
    L1,
    #[serde(rename = "none")]
    None,
}

impl Input {
    /// The feed a message came in on.
    pub fn topic(&self) -> Topic {
        match self {
            Input::CoalStock(_) => Topic::CoalStock,
            Input::CoalOutput(_) => Topic::CoalOutput,
            Input::CoalPrice(_) => Topic::CoalPrice,
            Input::CoalStorage(_) => Topic::CoalStorage,
            Input::AirAqi(_) => Topic::AirAqi,
            Input::AirForecast(_) => Topic::AirForecast,
            Input::AirProvince(_) => Topic::AirProvince,
            Input::WeatherWarning(_) => Topic::WeatherWarning,
            Input::WeatherObs(_) => Topic::WeatherObs,
            Input::Cmd(_) => Topic::Cmd,
        }
    }
}

/// Parses one message that arrived at `at`.
pub fn parse(cfg: &Config, topic: &str, payload: &[u8], at: Ts) -> Result<Message, Rejection> {
    parse_with(cfg, topic, at, |max| {
        parse_json(payload, max).map(Cow::Owned)
    })
}

/// A payload that is a JSON object, parsed where it was read (a replay parses it inside
/// its scenario line's own parse) the way [`parse`] parses payload bytes: the same tree,
/// a repeated key refused. Anything else (not an object, a repeated key, bad JSON) does
/// not deserialize into it: that payload goes to [`parse`] as bytes, which says why.
pub struct Parsed<'a> {
    object: json::Object<'a>,
    /// At least the length of the payload's bytes.
    bound: usize,
}

impl<'a> Parsed<'a> {
    /// `bound`: at least the length of the payload's bytes (the scenario line's length),
    /// for `limits.max_payload_bytes`.
    pub fn with_bound(mut self, bound: usize) -> Self {
        self.bound = bound;
        self
    }
}

impl<'de> Deserialize<'de> for Parsed<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Json::deserialize(d)? {
            Json::Object(object) => Ok(Parsed {
                object,
                bound: usize::MAX,
            }),
            _ => Err(serde::de::Error::custom("payload is not a JSON object")),
        }
    }
}

/// [`parse`] for a payload already parsed: the same message or rejection as [`parse`]
/// gives for its bytes. A payload whose bound is over `limits.max_payload_bytes` is
/// refused as too large (its bytes would tell by how much: pass them to [`parse`]).
pub fn parse_parsed(
    cfg: &Config,
    topic: &str,
    payload: &Parsed,
    at: Ts,
) -> Result<Message, Rejection> {
    parse_with(cfg, topic, at, |max| {
        if payload.bound > max {
            return Err(too_large(payload.bound, max));
        }
        Ok(Cow::Borrowed(&payload.object))
    })
}

/// The steps of [`parse`] in their order (topic, region, feed, payload, fields, age);
/// `payload` gives the JSON object given `limits.max_payload_bytes`.
fn parse_with<'p>(
    cfg: &Config,
    topic: &str,
    at: Ts,
    payload: impl FnOnce(usize) -> Result<Cow<'p, json::Object<'p>>, Bad>,
) -> Result<Message, Rejection> {
    let reject = |region: Option<&str>, class, reason| Rejection {
        topic: topic.to_string(),
        region: region.map(str::to_string),
        class,
        reason,
    };
    let (region, region_id, suffix) =
        route_topic(cfg, topic).map_err(|(class, reason)| reject(None, class, reason))?;
    let rj = |(class, reason): Bad| reject(Some(region_id), class, reason);
    let feed = Topic::parse(suffix).ok_or_else(|| {
        rj((
            RejectionClass::UnknownTopic,
            format!("unknown feed {suffix:?}"),
        ))
    })?;
    let json = payload(cfg.limits.max_payload_bytes).map_err(rj)?;
    let input = parse_payload(cfg, feed, &Obj(&json), at).map_err(rj)?;
    check_age(cfg, feed, &input, at).map_err(rj)?;
    Ok(Message { region, input })
}

/// `{root}/{region}/{feed}` -> (region index, region id, feed).
fn route_topic<'t>(cfg: &Config, topic: &'t str) -> Result<(usize, &'t str, &'t str), Bad> {
    let unknown = |reason: String| (RejectionClass::UnknownTopic, reason);
    let rest = topic
        .strip_prefix(cfg.topic_root.as_str())
        .and_then(|r| r.strip_prefix('/'))
        .ok_or_else(|| unknown(format!("topic is not under the root {:?}", cfg.topic_root)))?;
    let (region_id, suffix) = rest
        .split_once('/')
        .ok_or_else(|| unknown("topic has no region and feed".into()))?;
    let region = cfg.region_index(region_id).ok_or_else(|| {
        (
            RejectionClass::UnknownRegion,
            format!(
                "unknown region {region_id:?} (configured: {})",
                region_list(cfg)
            ),
        )
    })?;
    Ok((region, region_id, suffix))
}

/// The payload as one JSON object, parsed once; a repeated key at any depth is refused.
fn parse_json(payload: &[u8], max_bytes: usize) -> Result<json::Object<'_>, Bad> {
    if payload.len() > max_bytes {
        return Err(too_large(payload.len(), max_bytes));
    }
    match serde_json::from_slice::<Json>(payload) {
        Ok(Json::Object(o)) => Ok(o),
        Ok(_) => Err(not_an_object()),
        // Not JSON at all, or JSON with a repeated key: which one decides the class, and
        // a syntax error after the repeated key is still `bad_json` (as a full parse
        // says). Only refused payloads pay for the second parse.
        Err(e) => Err(match serde_json::from_slice::<serde_json::Value>(payload) {
            Err(e) => bad_json(e),
            Ok(v) if !v.is_object() => not_an_object(),
            Ok(_) => (RejectionClass::DuplicateKey, e.to_string()),
        }),
    }
}

fn too_large(len: usize, max_bytes: usize) -> Bad {
    (
        RejectionClass::TooLarge,
        format!("payload of {len} bytes is over max_payload_bytes = {max_bytes}"),
    )
}

fn bad_json(e: serde_json::Error) -> Bad {
    (
        RejectionClass::BadJson,
        format!("payload is not valid JSON: {e}"),
    )
}

fn not_an_object() -> Bad {
    (
        RejectionClass::BadJson,
        "payload must be a JSON object".into(),
    )
}

/// `limits.max_age_days`: a message whose own time is that far before its arrival.
fn check_age(cfg: &Config, feed: Topic, input: &Input, at: Ts) -> Result<(), Bad> {
    let (Some((key, days)), Some(t)) = (cfg.limits.max_age_days.of(feed), own_time(input)) else {
        return Ok(());
    };
    let bound = Duration::milliseconds((days * 86_400_000.0) as i64);
    if t < at - bound {
        return Err((
            RejectionClass::TooOld,
            format!(
                "{} is more than {days} day(s) before arrival {} (limits.max_age_days.{key})",
                crate::time::fmt_ts(t),
                crate::time::fmt_ts(at)
            ),
        ));
    }
    Ok(())
}

/// The message's own time, checked against `limits.max_age_days`: `ts`, a forecast's
/// `issued`, a coal report's `date` (its start).
fn own_time(i: &Input) -> Option<Ts> {
    Some(match i {
        Input::CoalStock(r) => r.ts,
        Input::CoalOutput(r) => day_start(r.date),
        Input::CoalPrice(r) => day_start(r.date),
        Input::CoalStorage(r) => r.ts,
        Input::AirAqi(r) => r.ts,
        Input::AirForecast(f) => f.issued,
        Input::AirProvince(p) => p.ts,
        Input::WeatherWarning(w) => w.ts,
        Input::WeatherObs(o) => o.ts,
        Input::Cmd(_) => return None,
    })
}

fn region_list(cfg: &Config) -> String {
    cfg.regions
        .iter()
        .map(|r| r.id.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

type Bad = (RejectionClass, String);

fn parse_payload(cfg: &Config, feed: Topic, o: &Obj, at: Ts) -> Result<Input, Bad> {
    Ok(match feed {
        Topic::CoalStock => Input::CoalStock(parse_stock(cfg, o, at)?),
        Topic::CoalOutput => {
            let date = o.date("date", at)?;
            Input::CoalOutput(OutputReport {
                date,
                output_t: o.num_min("output_t", 0.0, "tonnes cannot be negative")?,
            })
        }
        Topic::CoalPrice => {
            let date = o.date("date", at)?;
            let p = o.num("price_cny_t")?;
            if p <= 0.0 {
                return Err(out_of_range("price_cny_t", p, "a price must be > 0"));
            }
            Input::CoalPrice(PriceReport {
                date,
                price_cny_t: p,
            })
        }
        Topic::CoalStorage => Input::CoalStorage(StorageReport {
            ts: o.ts("ts", at)?,
            storage_t: o.num_min("storage_t", 0.0, "tonnes cannot be negative")?,
        }),
        Topic::AirAqi => Input::AirAqi(parse_aqi(cfg, o, at)?),
        Topic::AirForecast => Input::AirForecast(parse_forecast(o, at)?),
        Topic::AirProvince => Input::AirProvince(parse_province(o, at)?),
        Topic::WeatherWarning => Input::WeatherWarning(parse_warning(o, at)?),
        Topic::WeatherObs => Input::WeatherObs(WeatherObs {
            ts: o.ts("ts", at)?,
            station: o.nonempty_str("station")?,
            rain_mm: o.opt_num_min("rain_mm", 0.0)?,
            snow_mm: o.opt_num_min("snow_mm", 0.0)?,
            wind_ms: o.opt_num_min("wind_ms", 0.0)?,
            gust_ms: o.opt_num_min("gust_ms", 0.0)?,
        }),
        Topic::Cmd => Input::Cmd(parse_cmd(cfg, o)?),
    })
}

fn parse_stock(cfg: &Config, o: &Obj, at: Ts) -> Result<StockReport, Bad> {
    let ts = o.ts("ts", at)?;
    let plant = o.nonempty_str("plant")?;
    let stock = if o.has("stock_t") || o.has("burn_t_per_day") {
        let stock_t = o.num_min("stock_t", 0.0, "tonnes cannot be negative")?;
        let burn = o.num("burn_t_per_day")?;
        if burn <= 0.0 {
            return Err(out_of_range(
                "burn_t_per_day",
                burn,
                "the daily burn must be > 0",
            ));
        }
        if !(stock_t / burn).is_finite() {
            return Err(out_of_range(
                "stock_t",
                stock_t,
                "stock_t / burn_t_per_day (stock days) is not a finite number",
            ));
        }
        Stock::Tonnes {
            stock_t,
            burn_t_per_day: burn,
        }
    } else if o.has("stock_days") {
        if cfg.coal.stock_rule == StockRule::Aggregate {
            return Err((
                RejectionClass::MissingField,
                "coal.stock_rule = \"aggregate\" needs stock_t and burn_t_per_day; stock_days alone cannot be aggregated".into(),
            ));
        }
        Stock::Days(o.num_min("stock_days", 0.0, "stock days cannot be negative")?)
    } else {
        return Err((
            RejectionClass::MissingField,
            "missing field: either stock_t + burn_t_per_day, or stock_days".into(),
        ));
    };
    Ok(StockReport { ts, plant, stock })
}

fn parse_aqi(cfg: &Config, o: &Obj, at: Ts) -> Result<AqiObs, Bad> {
    let ts = o.ts("ts", at)?;
    let cause = match o.opt_str("cause")? {
        None => None,
        Some("dust") => Some(Cause::Dust),
        Some("fireworks") => Some(Cause::Fireworks),
        Some(c) => {
            return Err((
                RejectionClass::BadValue,
                format!("cause must be \"dust\" or \"fireworks\", got {c:?}"),
            ))
        }
    };
    let mut conc = Concentrations::default();
    let mut any_conc = false;
    for (key, slot) in [
        ("pm25", &mut conc.pm25),
        ("pm10", &mut conc.pm10),
        ("so2", &mut conc.so2),
        ("no2", &mut conc.no2),
        ("co", &mut conc.co),
        ("o3", &mut conc.o3),
        ("so2_24h", &mut conc.so2_24h),
    ] {
        if let Some(v) = o.opt_num_min(key, 0.0)? {
            *slot = Some(v);
            any_conc = true;
        }
    }
    let so2_given = o.opt_num_min("so2_ug_m3", 0.0)?;
    let so2 = so2_given.or(conc.so2);
    if o.has("aqi") {
        let aqi = aqi_value(o, "aqi")?;
        let primary = pollutants(o.get("primary"), "primary")?;
        Ok(AqiObs {
            ts,
            aqi,
            primary,
            so2_ug_m3: so2,
            cause,
            iaqi: None,
        })
    } else if any_conc {
        let std = cfg.pollution.aqi_standard;
        let r = aqi::compute(&conc, std).ok_or_else(|| {
            (
                RejectionClass::MissingField,
                "no pollutant concentration to compute the AQI from".to_string(),
            )
        })?;
        Ok(AqiObs {
            ts,
            aqi: f64::from(r.aqi),
            primary: r.primary,
            so2_ug_m3: so2,
            cause,
            iaqi: Some(r.iaqi),
        })
    } else {
        Err((
            RejectionClass::MissingField,
            "missing field: aqi (or pollutant concentrations pm25 pm10 so2 no2 co o3)".into(),
        ))
    }
}

fn aqi_value(o: &Obj, key: &str) -> Result<f64, Bad> {
    let v = o.num(key)?;
    if !(0.0..=1000.0).contains(&v) {
        return Err(out_of_range(key, v, "an AQI must be within 0..=1000"));
    }
    Ok(v)
}

fn parse_forecast(o: &Obj, at: Ts) -> Result<Forecast, Bad> {
    let issued = o.ts("issued", at)?;
    let (daily, list) = match (o.get("hours"), o.get("days")) {
        (Some(h), None) => (false, h),
        (None, Some(d)) => (true, d),
        (Some(_), Some(_)) => {
            return Err((
                RejectionClass::BadValue,
                "a forecast gives either hours or days, not both".into(),
            ))
        }
        (None, None) => {
            return Err((
                RejectionClass::MissingField,
                "missing field: hours (or days)".into(),
            ))
        }
    };
    let key = if daily { "days" } else { "hours" };
    let Json::Array(items) = list else {
        return Err(wrong_type(key, "an array", list));
    };
    let mut hours = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let Json::Object(m) = item else {
            return Err(wrong_type(&format!("{key}[{i}]"), "an object", item));
        };
        let e = Obj(m);
        let ctx = |(c, r): Bad| (c, format!("{key}[{i}]: {r}"));
        let (aqi, low) = forecast_value(&e).map_err(ctx)?;
        let primary = pollutants(e.get("primary"), "primary").map_err(ctx)?;
        let so2 = e.opt_num_min("so2_ug_m3", 0.0).map_err(ctx)?;
        if daily {
            let date = e.date_any("date").map_err(ctx)?;
            let start = day_start(date);
            for k in 1..=24 {
                hours.push(ForecastHour {
                    ts: start + Duration::hours(k),
                    aqi,
                    aqi_low: low,
                    primary: primary.clone(),
                    so2_ug_m3: so2,
                });
            }
        } else {
            let ts = e.ts_any("ts").map_err(ctx)?;
            if ts != crate::time::floor_hour(ts) {
                return Err(ctx((
                    RejectionClass::BadValue,
                    format!("ts must be a whole hour, got {}", crate::time::fmt_ts(ts)),
                )));
            }
            hours.push(ForecastHour {
                ts,
                aqi,
                aqi_low: low,
                primary,
                so2_ug_m3: so2,
            });
        }
    }
    let horizon = at + Duration::days(FORECAST_HORIZON_DAYS);
    let before = hours.len();
    hours.retain(|h| h.ts <= horizon);
    Ok(Forecast {
        issued,
        daily,
        ignored_hours: before - hours.len(),
        hours,
    })
}

/// `aqi`, or `aqi_low` + `aqi_high` (the upper bound is used, §3.4).
fn forecast_value(e: &Obj) -> Result<(f64, Option<f64>), Bad> {
    if e.has("aqi") {
        return Ok((aqi_value(e, "aqi")?, None));
    }
    if e.has("aqi_low") || e.has("aqi_high") {
        let lo = aqi_value(e, "aqi_low")?;
        let hi = aqi_value(e, "aqi_high")?;
        if lo > hi {
            return Err(out_of_range("aqi_low", lo, "aqi_low must be <= aqi_high"));
        }
        return Ok((hi, Some(lo)));
    }
    Err((
        RejectionClass::MissingField,
        "missing field: aqi (or aqi_low + aqi_high)".into(),
    ))
}

fn parse_province(o: &Obj, at: Ts) -> Result<ProvinceNotice, Bad> {
    let ts = o.ts("ts", at)?;
    let action = match o.req_str("action")? {
        "issue" => ProvinceAction::Issue,
        "adjust" => ProvinceAction::Adjust,
        "lift" => ProvinceAction::Lift,
        a => {
            return Err((
                RejectionClass::BadValue,
                format!("action must be issue, adjust or lift, got {a:?}"),
            ))
        }
    };
    let level = match o.opt_str("level")? {
        Some(l @ ("yellow" | "orange" | "red")) => Lv::parse_graded(l),
        Some(l) => {
            return Err((
                RejectionClass::BadValue,
                format!("level must be yellow, orange or red, got {l:?}"),
            ))
        }
        None if action != ProvinceAction::Lift => {
            return Err((
                RejectionClass::MissingField,
                "missing field: level (required for issue and adjust)".into(),
            ))
        }
        None => None,
    };
    let start = match o.get("start") {
        None | Some(Json::Null) => None,
        Some(_) => Some(o.ts_any("start")?),
    };
    Ok(ProvinceNotice {
        ts,
        action,
        level,
        start,
        reference: o.opt_str("ref")?.map(str::to_string),
    })
}

fn parse_warning(o: &Obj, at: Ts) -> Result<Warning, Bad> {
    let ts = o.ts("ts", at)?;
    let id = o.nonempty_str("id")?;
    let hazard = Hazard::parse(&o.nonempty_str("hazard")?);
    let action = match o.req_str("action")? {
        "issue" => WarningAction::Issue,
        "update" => WarningAction::Update,
        "lift" => WarningAction::Lift,
        a => {
            return Err((
                RejectionClass::BadValue,
                format!("action must be issue, update or lift, got {a:?}"),
            ))
        }
    };
    let color = match o.opt_str("color")? {
        Some(c) => Some(Color::parse(c).ok_or_else(|| {
            (
                RejectionClass::BadValue,
                format!("color must be blue, yellow, orange or red, got {c:?}"),
            )
        })?),
        None if action == WarningAction::Lift => None,
        None => return Err((RejectionClass::MissingField, "missing field: color".into())),
    };
    let extreme = match o.get("extreme") {
        None | Some(Json::Null) => false,
        Some(Json::Bool(b)) => *b,
        Some(v) => return Err(wrong_type("extreme", "true or false", v)),
    };
    Ok(Warning {
        ts,
        id,
        hazard,
        color,
        action,
        extreme,
        text: o.opt_str("text")?.map(str::to_string),
    })
}

fn parse_cmd(cfg: &Config, o: &Obj) -> Result<Command, Bad> {
    let by = |o: &Obj| -> Result<String, Bad> { Ok(o.opt_str("by")?.unwrap_or("").to_string()) };
    Ok(match o.req_str("cmd")? {
        "ack" => Command::Ack {
            call_id: o.nonempty_str("call_id")?,
            person: o.nonempty_str("person")?,
            by: o.opt_str("by")?.map(str::to_string),
        },
        "approve" => Command::Approve {
            proposal_id: o.nonempty_str("proposal_id")?,
            by: by(o)?,
        },
        "reject" => Command::Reject {
            proposal_id: o.nonempty_str("proposal_id")?,
            by: by(o)?,
            reason: o.opt_str("reason")?.unwrap_or("").to_string(),
        },
        "confirm" => Command::Confirm {
            proposal_id: o.nonempty_str("proposal_id")?,
            by: by(o)?,
        },
        "manual" => {
            match o.req_str("plan")? {
                "coal_supply" => {}
                p => {
                    return Err((
                        RejectionClass::BadValue,
                        format!("manual warnings exist only for plan \"coal_supply\", got {p:?}"),
                    ))
                }
            }
            let level = match o.req_str("level")? {
                "L2" => ManualLevel::L2,
                "L1" => ManualLevel::L1,
                "none" => ManualLevel::None,
                l => {
                    return Err((
                        RejectionClass::BadValue,
                        format!("level must be L2, L1 or none, got {l:?}"),
                    ))
                }
            };
            Command::Manual {
                level,
                reason: o.opt_str("reason")?.unwrap_or("").to_string(),
                by: by(o)?,
            }
        }
        "report" => Command::Report(parse_report(cfg, o)?),
        c => {
            return Err((
                RejectionClass::BadValue,
                format!("unknown command {c:?} (ack, approve, reject, confirm, manual, report)"),
            ))
        }
    })
}

/// `report` (PLANS.md §5.2): what can be checked without the plans' state. Whether the
/// plan has a deadline series running is checked by the plan.
fn parse_report(cfg: &Config, o: &Obj) -> Result<UnitReport, Bad> {
    let plan = report_plan(o)?;
    let name = o.req_str("unit")?;
    let unit = cfg.unit(name.trim()).ok_or_else(|| {
        (
            RejectionClass::BadValue,
            format!("unknown unit {name:?} (not a [[unit]] name or alias)"),
        )
    })?;
    if !unit.reports_on(plan) {
        return Err((
            RejectionClass::BadValue,
            format!(
                "unit {:?} does not report on {} (its plans: {})",
                unit.name,
                plan.as_str(),
                unit.plan_names()
            ),
        ));
    }
    let text = o.req_str("text")?;
    if text.trim().is_empty() {
        return Err((RejectionClass::BadValue, "text must not be empty".into()));
    }
    let enterprises = match o.get("enterprises") {
        None | Some(Json::Null) => Vec::new(),
        Some(Json::Array(a)) => a
            .iter()
            .map(|v| match v {
                Json::String(s) => Ok(s.to_string()),
                v => Err(wrong_type("enterprises[]", "a string", v)),
            })
            .collect::<Result<_, _>>()?,
        Some(v) => return Err(wrong_type("enterprises", "an array of names", v)),
    };
    let cut_pct = if o.has("cut_pct") {
        let c = o.num("cut_pct")?;
        if !(0.0..=100.0).contains(&c) {
            return Err((
                RejectionClass::BadValue,
                format!("cut_pct = {c} is out of range: an emission cut is within 0..=100"),
            ));
        }
        Some(c)
    } else {
        None
    };
    Ok(UnitReport {
        plan,
        unit: unit.name.clone(),
        text: text.to_string(),
        by: o.opt_str("by")?.unwrap_or("").to_string(),
        enterprises,
        cut_pct,
    })
}

/// The plan a `report` is on (PLANS.md §5.2): only coal supply and heavy pollution set
/// report-back deadlines.
fn report_plan(o: &Obj) -> Result<crate::notice::Plan, Bad> {
    use crate::notice::Plan;
    let plan_s = o.req_str("plan")?;
    match Plan::parse(plan_s) {
        Some(p @ (Plan::CoalSupply | Plan::HeavyPollution)) => Ok(p),
        Some(Plan::SevereWeather) => Err((
            RejectionClass::BadValue,
            "severe_weather has no report-back deadlines; units report on coal_supply or heavy_pollution".into(),
        )),
        None => Err((
            RejectionClass::BadValue,
            format!("plan must be coal_supply or heavy_pollution, got {plan_s:?}"),
        )),
    }
}

/// `primary`: a pollutant name, a list of them, or null/absent.
fn pollutants(v: Option<&Json>, key: &str) -> Result<Vec<Pollutant>, Bad> {
    let one = |v: &Json| -> Result<Pollutant, Bad> {
        let Json::String(s) = v else {
            return Err(wrong_type(
                key,
                "a pollutant name, a list of them, or null",
                v,
            ));
        };
        // `ok_or_else`: the reason is formatted only for a refusal, not for every value.
        Pollutant::parse(s).ok_or_else(|| {
            (
                RejectionClass::BadValue,
                format!("{key}: unknown pollutant {s:?} (PM2.5 PM10 O3 SO2 NO2 CO)"),
            )
        })
    };
    match v {
        None | Some(Json::Null) => Ok(Vec::new()),
        Some(Json::Array(a)) => {
            let mut out: Vec<Pollutant> = Vec::with_capacity(a.len());
            for x in a {
                let p = one(x)?;
                if !out.contains(&p) {
                    out.push(p);
                }
            }
            Ok(out)
        }
        Some(v) => Ok(vec![one(v)?]),
    }
}

fn wrong_type(key: &str, want: &str, got: &Json) -> Bad {
    (
        RejectionClass::WrongType,
        format!("{key} must be {want}, got {}", got.kind()),
    )
}

fn out_of_range(key: &str, v: f64, why: &str) -> Bad {
    (
        RejectionClass::OutOfRange,
        format!("{key} = {v} is out of range: {why}"),
    )
}

/// Accessors over a JSON object that turn problems into operator-readable reasons.
struct Obj<'j, 'a>(&'j json::Object<'a>);

impl<'j, 'a> Obj<'j, 'a> {
    fn get(&self, k: &str) -> Option<&'j Json<'a>> {
        self.0.get(k)
    }
    fn has(&self, k: &str) -> bool {
        !matches!(self.0.get(k), None | Some(Json::Null))
    }
    fn req(&self, k: &str) -> Result<&'j Json<'a>, Bad> {
        match self.0.get(k) {
            None | Some(Json::Null) => {
                Err((RejectionClass::MissingField, format!("missing field: {k}")))
            }
            Some(v) => Ok(v),
        }
    }
    fn req_str(&self, k: &str) -> Result<&'j str, Bad> {
        match self.req(k)? {
            Json::String(s) => Ok(s),
            v => Err(wrong_type(k, "a string", v)),
        }
    }
    fn nonempty_str(&self, k: &str) -> Result<String, Bad> {
        let s = self.req_str(k)?;
        if s.trim().is_empty() {
            return Err((RejectionClass::BadValue, format!("{k} must not be empty")));
        }
        Ok(s.to_string())
    }
    fn opt_str(&self, k: &str) -> Result<Option<&'j str>, Bad> {
        match self.0.get(k) {
            None | Some(Json::Null) => Ok(None),
            Some(Json::String(s)) => Ok(Some(s)),
            Some(v) => Err(wrong_type(k, "a string", v)),
        }
    }
    fn num(&self, k: &str) -> Result<f64, Bad> {
        number(k, self.req(k)?)
    }
    fn num_min(&self, k: &str, min: f64, why: &str) -> Result<f64, Bad> {
        at_least(k, self.num(k)?, min, why)
    }
    /// One lookup of `k` (an air observation reads a dozen optional fields).
    fn opt_num_min(&self, k: &str, min: f64) -> Result<Option<f64>, Bad> {
        match self.0.get(k) {
            None | Some(Json::Null) => Ok(None),
            Some(v) => at_least(k, number(k, v)?, min, "must not be negative").map(Some),
        }
    }
    fn ts_any(&self, k: &str) -> Result<Ts, Bad> {
        let s = self.req_str(k)?;
        parse_ts(s).map_err(|e| (RejectionClass::BadValue, format!("{k}: {e}")))
    }
    /// A message's own timestamp: at most 1 day after its arrival (PLANS.md §4).
    fn ts(&self, k: &str, at: Ts) -> Result<Ts, Bad> {
        let t = self.ts_any(k)?;
        future_check(k, t, at)?;
        Ok(t)
    }
    fn date_any(&self, k: &str) -> Result<NaiveDate, Bad> {
        let s = self.req_str(k)?;
        parse_date(s).map_err(|e| (RejectionClass::BadValue, format!("{k}: {e}")))
    }
    /// A message's own date; D counts as D 00:00 for the future check.
    fn date(&self, k: &str, at: Ts) -> Result<NaiveDate, Bad> {
        let d = self.date_any(k)?;
        future_check(k, day_start(d), at)?;
        Ok(d)
    }
}

/// The finite number field `k` holds.
fn number(k: &str, v: &Json) -> Result<f64, Bad> {
    match v {
        Json::Number(f) if f.is_finite() => Ok(*f),
        Json::Number(_) => Err((
            RejectionClass::OutOfRange,
            format!("{k} is not a finite number"),
        )),
        v => Err(wrong_type(k, "a number", v)),
    }
}

/// `v` (field `k`) if it is at least `min`; else out of range, saying `why`.
fn at_least(k: &str, v: f64, min: f64, why: &str) -> Result<f64, Bad> {
    if v < min {
        return Err(out_of_range(k, v, why));
    }
    Ok(v)
}

fn future_check(k: &str, t: Ts, at: Ts) -> Result<(), Bad> {
    if t > at + Duration::days(1) {
        return Err((
            RejectionClass::Future,
            format!(
                "{k} {} is more than 1 day after arrival {}",
                crate::time::fmt_ts(t),
                crate::time::fmt_ts(at)
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
