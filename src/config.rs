//! Configuration: TOML -> raw structs (every key has a default, so an empty file is
//! valid) -> validated [`Config`] with errors that name the key (CONTRACT.md
//! "Configuration"). Unknown keys are reported by `yingji check`, not fatal.
//!
//! Plan texts quoted from the plans (pollution measures, coal member-unit tasks) are
//! data: their defaults are embedded from `config/*.toml` and may be overridden.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::NaiveTime;
use serde::{Deserialize, Serialize};

use crate::aqi::Standard;
use crate::levels::{CoalLevel, Lv, Tier};
use crate::notice::{Kind, Plan};

/// A configuration problem, naming the key it is about: what stops the config from
/// loading (startup, `replay`, `yingji check`) and what `yingji check` reports besides
/// ([`crate::check::problems`]) are this one type, with one key style.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct ConfigError {
    /// The TOML path of the offending key, e.g. `coal.daily_quota_t`,
    /// `contact[2].tier`, `unit[0].plans[1]` (array items by their index in the file);
    /// the table or array itself (`contact`, `webhook`) for what no one key holds.
    pub key: String,
    /// What is wrong, in words an operator understands.
    pub message: String,
}

impl ConfigError {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// Problems found so far, in the order found.
#[derive(Debug, Default)]
pub struct Problems(pub Vec<ConfigError>);

impl Problems {
    pub fn add(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.0.push(ConfigError::new(key, message));
    }
}

/// The whole validated configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Root of every topic (`ers`); may contain `/`.
    pub topic_root: String,
    /// Local time of the daily follow-up reports, `HH:MM`.
    #[serde(with = "hhmm")]
    pub report_time: NaiveTime,
    /// Local time of the daily report-back deadline (PLANS.md §5.2), `HH:MM`.
    #[serde(with = "hhmm")]
    pub feedback_time: NaiveTime,
    /// A deadline lies at least this many hours after its series' start (PLANS.md §5.2).
    pub feedback_grace_hours: f64,
    /// Regions served; absent: one region `shuozhou`.
    #[serde(rename = "region")]
    pub regions: Vec<RegionConfig>,
    /// External broker; absent: embedded broker on 127.0.0.1:1883.
    pub mqtt: Option<MqttConfig>,
    pub store: StoreConfig,
    pub http: HttpConfig,
    /// SMTP; absent: no email.
    pub email: Option<EmailConfig>,
    pub coal: CoalConfig,
    pub pollution: PollutionConfig,
    pub weather_call: WeatherCallConfig,
    pub limits: LimitsConfig,
    #[serde(rename = "contact")]
    pub contacts: Vec<Contact>,
    /// Units that report back (PLANS.md §5.2); none by default.
    #[serde(rename = "unit")]
    pub units: Vec<UnitConfig>,
    /// Messaging webhooks (WeCom robot, phone gateway); extension of CONTRACT.md.
    #[serde(rename = "webhook")]
    pub webhooks: Vec<WebhookConfig>,
    /// People who log in to the console; none: the console is read-only. Extension.
    #[serde(rename = "operator")]
    pub operators: Vec<Operator>,
    /// Drill mode (CONTRACT.md "Added after the first release"): every CAP message has
    /// status Exercise, every subject and message starts with 【演练】, nothing goes to a
    /// phone gateway.
    pub drill: bool,
    /// Region id -> index in `regions`, built by [`Config::finish`] (one hashed lookup
    /// per message instead of a scan over every region; only looked up, never iterated).
    #[serde(skip)]
    #[allow(clippy::disallowed_types)] // looked up by id, never iterated: order cannot leak
    region_ids: std::collections::HashMap<String, usize>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            topic_root: "ers".into(),
            report_time: NaiveTime::from_hms_opt(8, 0, 0).expect("valid"),
            feedback_time: NaiveTime::from_hms_opt(17, 0, 0).expect("valid"),
            feedback_grace_hours: 4.0,
            regions: Vec::new(),
            mqtt: None,
            store: StoreConfig::default(),
            http: HttpConfig::default(),
            email: None,
            coal: CoalConfig::default(),
            pollution: PollutionConfig::default(),
            weather_call: WeatherCallConfig::default(),
            limits: LimitsConfig::default(),
            contacts: Vec::new(),
            units: Vec::new(),
            webhooks: Vec::new(),
            operators: Vec::new(),
            drill: false,
            #[allow(clippy::disallowed_types)] // see the field
            region_ids: std::collections::HashMap::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]

pub struct RegionConfig {
    /// Slug used in topics and notice ids.
    pub id: String,
    /// Name in Chinese, used in notice texts.
    #[serde(default)]
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct MqttConfig {
    /// `mqtt://host:port` or `mqtts://host:port`.
    pub url: String,
    pub username: Option<String>,
    pub password: Option<String>,
    pub password_file: Option<PathBuf>,
    /// Client id; default `yingji-{first region}`. Must be stable for persistent sessions.
    pub client_id: Option<String>,
    /// 4 (3.1.1) or 5.
    pub protocol: u8,
    /// CA bundle for mqtts (PEM); absent: the system roots.
    pub ca_file: Option<PathBuf>,
    pub keep_alive_s: u64,
    /// Other daemons serve other regions under the same `topic_root`: subscribe to the
    /// configured regions only (`{root}/{region}/#`) and leave the others alone. false
    /// (default): subscribe to `{root}/#` and reject inputs for unknown regions.
    pub split_regions: bool,
}

impl Default for MqttConfig {
    fn default() -> Self {
        Self {
            url: "mqtt://127.0.0.1:1883".into(),
            username: None,
            password: None,
            password_file: None,
            client_id: None,
            protocol: 4,
            ca_file: None,
            keep_alive_s: 30,
            split_regions: false,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct StoreConfig {
    /// SQLite file: journal, snapshots, outbox, call register. Relative to the working dir.
    pub path: PathBuf,
    /// Snapshot the engine state every this many journaled inputs. A crash (not a stop:
    /// a stop snapshots) makes the next start replay at most this many journal rows; a
    /// snapshot costs the same whatever the rate of inputs, and it is checked by restoring
    /// it, so a backlog drained after an outage pays it per this many inputs.
    pub snapshot_every: u64,
    /// Journal rows, notices and call register entries are kept this many days; older
    /// journal rows are archived to `archive_dir` first.
    pub retain_days: u32,
    /// Where archived journal rows go (compressed scenario files).
    pub archive_dir: PathBuf,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::from("var/yingji.db"),
            snapshot_every: 10_000,
            retain_days: 400,
            archive_dir: PathBuf::from("var/archive"),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct HttpConfig {
    pub listen: String,
    pub public_url: String,
    /// Key of the acknowledgement links' HMAC (literal or `${ENV}`); absent (and no
    /// file): one generated at first start and kept in the store. Extension.
    pub ack_secret: Option<String>,
    pub ack_secret_file: Option<PathBuf>,
    /// An acknowledgement link expires when its round ends, and this many hours after
    /// the call at the latest. Extension.
    pub ack_link_hours: f64,
    /// Connections served at once; more wait in the listen queue. Extension.
    pub max_connections: usize,
    /// Hours a console login lasts. Extension.
    pub session_hours: f64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            public_url: "http://127.0.0.1:8080".into(),
            ack_secret: None,
            ack_secret_file: None,
            ack_link_hours: 24.0,
            max_connections: 256,
            session_hours: 12.0,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct EmailConfig {
    pub smtp_url: String,
    pub from: String,
    pub username: Option<String>,
    pub password: Option<String>,
    pub password_file: Option<PathBuf>,
    /// Extra addresses per plan / level / department (CONTRACT.md "Email").
    #[serde(rename = "route")]
    pub routes: Vec<EmailRoute>,
    /// Deadline of one email's whole exchange with the SMTP server (connect, greeting,
    /// TLS, every command), in seconds.
    pub timeout_s: u64,
}

impl Default for EmailConfig {
    fn default() -> Self {
        Self {
            smtp_url: "smtp://127.0.0.1:25".into(),
            from: "yingji <yingji@example.org>".into(),
            username: None,
            password: None,
            password_file: None,
            routes: Vec::new(),
            timeout_s: 30,
        }
    }
}

/// `[[email.route]]`: who gets which notices by email besides contacts.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default)]
pub struct EmailRoute {
    /// Plans matched (empty: all).
    pub plans: Vec<Plan>,
    /// Levels matched (empty: all).
    pub levels: Vec<String>,
    /// Department / unit matched against a notice's recipients' units (empty: all).
    pub departments: Vec<String>,
    pub to: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct WebhookConfig {
    /// `wecom` (WeCom group robot), `wecom_app`, `phone` (a phone / SMS gateway) or
    /// `generic`.
    pub kind: WebhookKind,
    /// Name of its outbox sink (`webhook:{name}`); default `{kind}-{index}`. Keep it stable.
    pub name: Option<String>,
    pub url: String,
    /// Appended as `?key=` (WeCom robots); literal, `${ENV}` or `key_file`.
    pub key: Option<String>,
    pub key_file: Option<PathBuf>,
    /// Plans whose notices go here (empty: all).
    pub plans: Vec<Plan>,
    /// Notice kinds that go here, e.g. `["call", "call_unreached"]` (empty: all).
    pub kinds: Vec<Kind>,
    /// Per-request timeout in seconds.
    pub timeout_s: u64,
    /// `wecom_app` (WeCom application messages to one person, `message/send`): the
    /// corporation id, the application's agent id and its secret (literal, `${ENV}` or
    /// `secret_file`); `url` is the API base, e.g. `https://qyapi.weixin.qq.com`.
    pub corp_id: Option<String>,
    pub agent_id: Option<i64>,
    pub secret: Option<String>,
    pub secret_file: Option<PathBuf>,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            kind: WebhookKind::Generic,
            name: None,
            url: String::new(),
            key: None,
            key_file: None,
            plans: Vec::new(),
            kinds: Vec::new(),
            timeout_s: 10,
            corp_id: None,
            agent_id: None,
            secret: None,
            secret_file: None,
        }
    }
}

/// What a `[[webhook]]` talks to; the TOML spelling is the snake_case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookKind {
    /// A WeCom group robot (`?key=`): every notice, calls as text.
    Wecom,
    /// WeCom application messages to one person (`message/send`).
    WecomApp,
    /// A phone / SMS gateway: calls by phone only.
    Phone,
    /// Any HTTP endpoint taking the notice JSON.
    Generic,
}

impl WebhookKind {
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookKind::Wecom => "wecom",
            WebhookKind::WecomApp => "wecom_app",
            WebhookKind::Phone => "phone",
            WebhookKind::Generic => "generic",
        }
    }
}

impl std::fmt::Display for WebhookKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The annual daily guarantee quota (年度每日保供量): one number or a table by year.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(untagged, try_from = "RawQuota")]
pub enum Quota {
    Flat(f64),
    ByYear(BTreeMap<Year, f64>),
}

/// [`Quota`] as TOML writes it, before its keys are read as years.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawQuota {
    Flat(f64),
    ByYear(BTreeMap<String, f64>),
}

impl TryFrom<RawQuota> for Quota {
    type Error = String;
    fn try_from(raw: RawQuota) -> Result<Self, String> {
        Ok(match raw {
            RawQuota::Flat(q) => Quota::Flat(q),
            RawQuota::ByYear(t) => Quota::ByYear(
                t.into_iter()
                    .map(|(y, q)| Ok((Year::try_from(y)?, q)))
                    .collect::<Result<_, String>>()?,
            ),
        })
    }
}

/// A year as a key of `coal.daily_quota_t` (`{ 2023 = 500000 }`: TOML keys are text).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Year(pub i32);

impl TryFrom<String> for Year {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.trim()
            .parse()
            .map(Year)
            .map_err(|_| format!("key must be a year, got {s:?}"))
    }
}

impl From<Year> for String {
    fn from(y: Year) -> String {
        y.0.to_string()
    }
}

impl Quota {
    /// Quota of `year`; a table without that year uses the latest earlier year
    /// (PLANS.md §1 "Output run"). `None` when the table has no year <= `year`.
    pub fn for_year(&self, year: i32) -> Option<f64> {
        match self {
            Quota::Flat(q) => Some(*q),
            Quota::ByYear(t) => t.range(..=Year(year)).next_back().map(|(_, q)| *q),
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum StockRule {
    Any,
    Aggregate,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct CoalConfig {
    pub daily_quota_t: Quota,
    /// Empty: every plant that reports stock is a key plant.
    pub key_plants: Vec<String>,
    pub stock_rule: StockRule,
    pub lift_hold_hours: f64,
    pub require_confirmation: bool,
    /// Moves into and out of L1 are proposals to the commander (PLANS.md §5.1).
    pub l1_by_commander: bool,
    /// A §5.1 proposal still pending this many hours later gets one reminder.
    pub decision_reminder_hours: f64,
    /// A hold ending during a silence gap waits for the data (PLANS.md §5.3).
    pub hold_waits_for_data: bool,
    /// The unit where the command office sits (PLANS.md §5.2).
    pub office_unit: String,
    pub price_window_days: u32,
    pub price_abnormal_pct: f64,
    pub price_large_pct: f64,
    pub price_min_cny_t: Option<f64>,
    pub price_max_cny_t: Option<f64>,
    pub output_gap_days: f64,
    pub stock_gap_days: f64,
    pub beyond_l1_stock_days: f64,
    pub beyond_l1_missed_days: u32,
    /// L1 response output target (t/day): 51万吨 (§5.2.2(1)).
    pub l1_output_target_t: f64,
    /// Storage target at washing plants and loading stations (t): 500万吨, the lower
    /// bound of 500–750万吨 (§4.2.2(5)).
    pub storage_target_t: f64,
    /// Member-unit tasks per level, quoted from the plan (§5.2.1, §5.2.2). Absent: the
    /// embedded `config/coal-tasks.toml`.
    pub tasks: Option<Vec<UnitTask>>,
}

impl Default for CoalConfig {
    fn default() -> Self {
        Self {
            daily_quota_t: Quota::Flat(500_000.0),
            key_plants: Vec::new(),
            stock_rule: StockRule::Any,
            lift_hold_hours: 72.0,
            require_confirmation: false,
            l1_by_commander: false,
            decision_reminder_hours: 2.0,
            hold_waits_for_data: false,
            office_unit: "市能源局".into(),
            price_window_days: 7,
            price_abnormal_pct: 10.0,
            price_large_pct: 20.0,
            price_min_cny_t: None,
            price_max_cny_t: None,
            output_gap_days: 2.0,
            stock_gap_days: 3.0,
            beyond_l1_stock_days: 7.0,
            beyond_l1_missed_days: 3,
            l1_output_target_t: 510_000.0,
            storage_target_t: 5_000_000.0,
            tasks: None,
        }
    }
}

impl CoalConfig {
    /// `[coal]`: a positive quota (each year's, when a table), a price window, a
    /// missed-days count, and bounds in order.
    fn validate(&self, e: &mut Problems) {
        match &self.daily_quota_t {
            Quota::Flat(q) => {
                if !(q.is_finite() && *q > 0.0) {
                    e.add("coal.daily_quota_t", format!("must be > 0, got {q}"));
                }
            }
            Quota::ByYear(t) => {
                if t.is_empty() {
                    e.add("coal.daily_quota_t", "the table by year is empty");
                }
                for (y, q) in t {
                    if !(q.is_finite() && *q > 0.0) {
                        e.add(
                            format!("coal.daily_quota_t.{}", y.0),
                            format!("must be > 0, got {q}"),
                        );
                    }
                }
            }
        }
        if self.price_window_days == 0 {
            e.add("coal.price_window_days", "must be >= 1");
        }
        if self.beyond_l1_missed_days == 0 {
            e.add("coal.beyond_l1_missed_days", "must be >= 1");
        }
        if let (Some(lo), Some(hi)) = (self.price_min_cny_t, self.price_max_cny_t) {
            if lo > hi {
                e.add("coal.price_min_cny_t", "must be <= coal.price_max_cny_t");
            }
        }
    }
}

/// A member unit's task at a coal response level (plan text, quoted).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default)]
pub struct UnitTask {
    /// `L2` or `L1`.
    pub level: CoalLevel,
    /// Unit name as in the plan, e.g. `市能源局`; matched with contacts' `unit`.
    pub unit: String,
    /// Clause, e.g. `§5.2.1(2)`.
    pub clause: String,
    pub text: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct PollutionConfig {
    pub horizon_hours: u32,
    pub require_approval: bool,
    /// `"2026"` (HJ 633-2026) or `"2012"`; a bare year is read the same.
    #[serde(with = "aqi_year")]
    pub aqi_standard: Standard,
    pub aqi_gap_hours: f64,
    pub forecast_stale_hours: f64,
    /// Reminder for a pending proposal after this many hours (§3.3.2: 2 h).
    pub reminder_hours: f64,
    /// The unit where the command office sits (PLANS.md §5.2).
    pub office_unit: String,
    /// Measures per level, quoted from the plan (§4.2.1–4.2.5). Absent: the embedded
    /// `config/pollution-measures.toml`.
    pub measures: Option<Vec<Measure>>,
}

impl Default for PollutionConfig {
    fn default() -> Self {
        Self {
            horizon_hours: 72,
            require_approval: false,
            aqi_standard: Standard::Hj2026,
            aqi_gap_hours: 3.0,
            forecast_stale_hours: 36.0,
            reminder_hours: 2.0,
            office_unit: "市生态环境局".into(),
            measures: None,
        }
    }
}

/// A measure of a pollution response level (plan text, quoted).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default)]
pub struct Measure {
    /// `yellow`, `orange`, `red`, `ozone` or `so2`.
    pub level: Lv,
    /// 健康防护, 倡议性, 强制性 (the plan's three kinds of measure) or 应急响应 (§4).
    pub category: String,
    /// The member unit that answers for it, named as the gazette names it.
    pub unit: String,
    /// The plan's section and item, e.g. `§4.2.1(3)②`.
    pub clause: String,
    /// The sub-heading the paragraph stands under (e.g. `移动源减排措施`), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heading: Option<String>,
    pub text: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct WeatherCallConfig {
    pub ack_timeout_s: u64,
    pub phone_retry_s: u64,
    pub phone_attempts: u32,
    pub red_rainstorm_is_extreme: bool,
    pub escalate_to: Vec<String>,
}

impl Default for WeatherCallConfig {
    fn default() -> Self {
        Self {
            ack_timeout_s: 180,
            phone_retry_s: 180,
            phone_attempts: 3,
            red_rainstorm_is_extreme: true,
            escalate_to: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct LimitsConfig {
    pub max_payload_bytes: usize,
    /// How old (days before its arrival) a message's own timestamp may be, per feed.
    pub max_age_days: MaxAgeDays,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_payload_bytes: 65536,
            max_age_days: MaxAgeDays::default(),
        }
    }
}

/// Console roles (the authority each carries is in PLANS.md §1, §2 rule 6, §5.1).
pub const OPERATOR_ROLES: [&str; 4] = ["duty", "director", "commander", "signer"];

/// A console user: `duty` sees everything, acknowledges on someone's behalf and enters
/// reports; `director` decides coal L2 moves and confirmations (PLANS.md §1);
/// `commander` coal L1 (§5.1); `signer` pollution approvals for the city government
/// (§2 rule 6).
#[derive(Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default)]
pub struct Operator {
    pub id: String,
    pub name: String,
    pub roles: Vec<String>,
    /// Argon2 PHC string (`yingji passwd`), literal or `${ENV}`; or `password_hash_file`.
    pub password_hash: Option<String>,
    pub password_hash_file: Option<PathBuf>,
}

impl std::fmt::Debug for Operator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Operator")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("roles", &self.roles)
            .finish_non_exhaustive()
    }
}

impl Operator {
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
}

/// `[limits.max_age_days]`: a message whose own timestamp (`ts`, a forecast's `issued`,
/// a coal report's `date`) is more than this many days before its arrival is rejected
/// (`too_old`). Measured against the arrival time (`at`), so replays are unaffected.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct MaxAgeDays {
    pub weather_warning: f64,
    pub weather_obs: f64,
    pub air_aqi: f64,
    pub air_forecast: f64,
    pub air_province: f64,
    pub coal_stock: f64,
    pub coal_storage: f64,
    /// Corrections of output and price arrive weeks late.
    pub coal_output: f64,
    pub coal_price: f64,
}

impl Default for MaxAgeDays {
    fn default() -> Self {
        Self {
            weather_warning: 1.0,
            weather_obs: 7.0,
            air_aqi: 7.0,
            air_forecast: 7.0,
            air_province: 7.0,
            coal_stock: 7.0,
            coal_storage: 7.0,
            coal_output: 60.0,
            coal_price: 60.0,
        }
    }
}

impl MaxAgeDays {
    /// (key, bound) of the feed `topic`; `None` for commands.
    pub fn of(&self, topic: crate::topic::Topic) -> Option<(&'static str, f64)> {
        use crate::topic::Topic;
        Some(match topic {
            Topic::WeatherWarning => ("weather_warning", self.weather_warning),
            Topic::WeatherObs => ("weather_obs", self.weather_obs),
            Topic::AirAqi => ("air_aqi", self.air_aqi),
            Topic::AirForecast => ("air_forecast", self.air_forecast),
            Topic::AirProvince => ("air_province", self.air_province),
            Topic::CoalStock => ("coal_stock", self.coal_stock),
            Topic::CoalStorage => ("coal_storage", self.coal_storage),
            Topic::CoalOutput => ("coal_output", self.coal_output),
            Topic::CoalPrice => ("coal_price", self.coal_price),
            Topic::Cmd => return None,
        })
    }
}

/// A person who may be called or emailed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default)]
pub struct Contact {
    pub id: String,
    pub name: String,
    pub unit: String,
    /// `A`, `B` or `C` (PLANS.md §3); absent: never called.
    pub tier: Option<Tier>,
    pub role: Option<String>,
    pub backup: Option<String>,
    pub wechat: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    /// Plans whose notices this contact also receives by email.
    pub plans: Vec<Plan>,
    /// Levels whose notices this contact receives (empty: all); extension.
    pub levels: Vec<String>,
}

/// `[[unit]]`: a unit that reports back on the plans it is told to act in (PLANS.md §5.2).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default)]
pub struct UnitConfig {
    /// The name the gazette prints, e.g. `市工业和信息化局`.
    pub name: String,
    /// Other names the plans use for it, e.g. `市工信局`.
    pub aliases: Vec<String>,
    /// Plans it reports on: `coal_supply`, `heavy_pollution`.
    pub plans: Vec<Plan>,
    /// A county, city or district government (县(市、区)).
    pub county: bool,
}

impl UnitConfig {
    /// Whether `name` is this unit's name or one of its aliases.
    pub fn named(&self, name: &str) -> bool {
        self.name == name || self.aliases.iter().any(|a| a == name)
    }

    pub fn reports_on(&self, plan: Plan) -> bool {
        self.plans.contains(&plan)
    }

    /// Its plans as the config spells them, `coal_supply, heavy_pollution`.
    pub fn plan_names(&self) -> String {
        let names: Vec<&str> = self.plans.iter().map(|p| p.as_str()).collect();
        names.join(", ")
    }
}

/// Roles of PLANS.md §3's table that `check` expects a contact for.
pub const CALL_ROLES: &[(&str, &str)] = &[
    ("emergency", "应急管理部门责任人"),
    ("urban_management", "城管部门责任人"),
    ("natural_resources", "规划和自然资源部门责任人"),
    ("water", "水利部门责任人"),
    ("housing", "住建部门责任人"),
    ("agriculture", "农业农村部门责任人"),
    ("transport", "交通部门责任人"),
    ("leader_meteorology", "分管气象工作的市政府领导"),
    ("leader_flood", "分管防汛工作的市政府领导"),
    ("party_secretary", "市委主要领导"),
    ("mayor", "市政府主要领导"),
];

/// `pollution.aqi_standard`: the edition's year, `"2026"` or `2026` (either way).
mod aqi_year {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::aqi::Standard;

    pub fn serialize<S: Serializer>(v: &Standard, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(match v {
            Standard::Hj2012 => "2012",
            Standard::Hj2026 => "2026",
        })
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Standard, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            S(String),
            I(i64),
        }
        let year = match Either::deserialize(d)? {
            Either::S(s) => s,
            Either::I(i) => i.to_string(),
        };
        Standard::parse(&year).ok_or_else(|| {
            serde::de::Error::custom(format!("must be \"2026\" or \"2012\", got {year:?}"))
        })
    }
}

mod hhmm {
    use chrono::NaiveTime;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &NaiveTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.format("%H:%M").to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<NaiveTime, D::Error> {
        let s = String::deserialize(d)?;
        NaiveTime::parse_from_str(&s, "%H:%M")
            .or_else(|_| NaiveTime::parse_from_str(&s, "%H:%M:%S"))
            .map_err(|_| serde::de::Error::custom(format!("expected HH:MM, got {s:?}")))
    }
}

/// What loading a config file produced: the config and the keys that were ignored.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    /// Keys present in the file that yingji does not know (reported by `check`).
    pub unknown_keys: Vec<String>,
    /// Where it came from (`None`: built-in defaults).
    pub source: Option<PathBuf>,
}

/// Default config path, relative to the working directory.
pub const DEFAULT_PATH: &str = "config/yingji.toml";

impl Config {
    /// Parses TOML text and validates it.
    pub fn from_toml(text: &str) -> Result<Loaded, Vec<ConfigError>> {
        let de = toml::Deserializer::parse(text).map_err(|e| vec![toml_error(e, None, text)])?;
        let mut unknown = Vec::new();
        let mut ignored = |path: serde_ignored::Path| unknown.push(toml_path(&path));
        let de = serde_ignored::Deserializer::new(de, &mut ignored);
        let config: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            vec![toml_error(e.into_inner(), Some(path), text)]
        })?;
        let config = config.finish()?;
        Ok(Loaded {
            config,
            unknown_keys: unknown,
            source: None,
        })
    }

    /// Loads `path`, or when `None`: `config/yingji.toml` if it exists, else defaults.
    pub fn load(path: Option<&Path>) -> Result<Loaded, Vec<ConfigError>> {
        let path = match path {
            Some(p) => p.to_path_buf(),
            None => {
                let p = PathBuf::from(DEFAULT_PATH);
                if !p.exists() {
                    return Ok(Loaded {
                        config: Config::default().finish()?,
                        unknown_keys: Vec::new(),
                        source: None,
                    });
                }
                p
            }
        };
        let text = std::fs::read_to_string(&path).map_err(|e| {
            vec![ConfigError::new(
                path.display().to_string(),
                format!("cannot read config file: {e}"),
            )]
        })?;
        let mut loaded = Self::from_toml(text.trim_start_matches('\u{feff}'))?;
        loaded.source = Some(path);
        Ok(loaded)
    }

    /// Fills derived defaults and validates; every error names its key.
    pub fn finish(mut self) -> Result<Config, Vec<ConfigError>> {
        if self.regions.is_empty() {
            self.regions.push(RegionConfig {
                id: "shuozhou".into(),
                name: "朔州市".into(),
            });
        }
        let errors = self.validate();
        if errors.is_empty() {
            self.index_regions();
            Ok(self)
        } else {
            Err(errors)
        }
    }

    /// What the types cannot say: ranges, uniqueness, references. Values that are not
    /// one of a key's spellings (a tier, a plan, a level, a year) never get here: the
    /// parse refuses them, naming the key.
    fn validate(&self) -> Vec<ConfigError> {
        let mut e = Problems::default();
        self.validate_topics(&mut e);
        self.validate_operators(&mut e);
        self.validate_http(&mut e);
        self.coal.validate(&mut e);
        self.validate_periods(&mut e);
        self.validate_limits(&mut e);
        self.validate_contacts(&mut e);
        self.validate_units(&mut e);
        self.validate_plan_texts(&mut e);
        // A `backup` or `escalate_to` id without a contact is not fatal (CONTRACT.md's own
        // example names a backup it does not list): `yingji check` reports it.
        e.0
    }

    /// `topic_root` and `[[region]]`: each id a slug, once.
    fn validate_topics(&self, e: &mut Problems) {
        if self.topic_root.is_empty()
            || self.topic_root.contains(['+', '#'])
            || self.topic_root.starts_with('/')
            || self.topic_root.ends_with('/')
        {
            e.add(
                "topic_root",
                "must be a non-empty topic prefix without wildcards or leading/trailing '/'",
            );
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, r) in self.regions.iter().enumerate() {
            if r.id.is_empty()
                || r.id.starts_with('_')
                || !r
                    .id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                e.add(
                    format!("region[{i}].id"),
                    format!(
                        "must be a slug of letters, digits, '-' or '_', not starting with '_' (kept for the daemon's own topics), got {:?}",
                        r.id
                    ),
                );
            }
            if !seen.insert(&r.id) {
                e.add(
                    format!("region[{i}].id"),
                    format!("duplicate region {:?}", r.id),
                );
            }
        }
    }

    /// `[[operator]]`: unique ids, known roles, a password hash.
    fn validate_operators(&self, e: &mut Problems) {
        let mut ids = std::collections::BTreeSet::new();
        for (i, o) in self.operators.iter().enumerate() {
            if o.id.trim().is_empty() || !ids.insert(o.id.as_str()) {
                e.add(
                    format!("operator[{i}].id"),
                    format!("must be non-empty and unique, got {:?}", o.id),
                );
            }
            for r in &o.roles {
                if !OPERATOR_ROLES.contains(&r.as_str()) {
                    e.add(
                        format!("operator[{i}].roles"),
                        format!("unknown role {r:?} (one of {})", OPERATOR_ROLES.join(", ")),
                    );
                }
            }
            if o.password_hash.is_none() && o.password_hash_file.is_none() {
                e.add(
                    format!("operator[{i}].password_hash"),
                    "missing (make one with `yingji passwd`)",
                );
            }
        }
    }

    /// `[http]`: positive durations, at least one connection.
    fn validate_http(&self, e: &mut Problems) {
        for (k, v) in [
            ("http.ack_link_hours", self.http.ack_link_hours),
            ("http.session_hours", self.http.session_hours),
        ] {
            if !(v.is_finite() && v > 0.0) {
                e.add(k, format!("must be > 0, got {v}"));
            }
        }
        if self.http.max_connections == 0 {
            e.add("http.max_connections", "must be at least 1");
        }
    }

    /// Periods that arm timers must be positive; thresholds and holds may be 0.
    fn validate_periods(&self, e: &mut Problems) {
        let (c, p) = (&self.coal, &self.pollution);
        for (k, v) in [
            ("coal.output_gap_days", c.output_gap_days),
            ("coal.stock_gap_days", c.stock_gap_days),
            ("pollution.aqi_gap_hours", p.aqi_gap_hours),
            ("pollution.forecast_stale_hours", p.forecast_stale_hours),
            ("pollution.reminder_hours", p.reminder_hours),
            ("coal.decision_reminder_hours", c.decision_reminder_hours),
        ] {
            if !(v.is_finite() && v > 0.0) {
                e.add(k, format!("must be a positive number, got {v}"));
            }
        }
        for (k, v) in [
            ("coal.lift_hold_hours", c.lift_hold_hours),
            ("coal.price_abnormal_pct", c.price_abnormal_pct),
            ("coal.price_large_pct", c.price_large_pct),
            ("coal.beyond_l1_stock_days", c.beyond_l1_stock_days),
            ("coal.l1_output_target_t", c.l1_output_target_t),
            ("coal.storage_target_t", c.storage_target_t),
            ("feedback_grace_hours", self.feedback_grace_hours),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                e.add(k, format!("must be a number >= 0, got {v}"));
            }
        }
        // [weather_call]: phone_attempts = 0 is valid (PLANS.md §3's formula with n = 0:
        // WeChat at t0, call_unreached at t0 + a).
    }

    /// `[store]` retention and `[limits]`.
    fn validate_limits(&self, e: &mut Problems) {
        if self.store.retain_days == 0 {
            e.add("store.retain_days", "must be at least 1 (days)");
        }
        if self.limits.max_payload_bytes == 0 {
            e.add("limits.max_payload_bytes", "must be > 0");
        }
        for topic in crate::topic::Topic::all() {
            if let Some((key, days)) = self.limits.max_age_days.of(*topic) {
                if !(days.is_finite() && days > 0.0) {
                    e.add(
                        format!("limits.max_age_days.{key}"),
                        format!("must be a number of days > 0, got {days}"),
                    );
                }
            }
        }
    }

    /// `[[contact]]`: unique, non-empty ids. An unknown `role` only matters to `yingji
    /// check` (PLANS.md §3 "Recipients kept current"), which reports it; it does not stop
    /// the config from loading.
    fn validate_contacts(&self, e: &mut Problems) {
        let mut ids = std::collections::BTreeSet::new();
        for (i, ct) in self.contacts.iter().enumerate() {
            if ct.id.is_empty() {
                e.add(format!("contact[{i}].id"), "is required");
            } else if !ids.insert(ct.id.as_str()) {
                e.add(
                    format!("contact[{i}].id"),
                    format!("duplicate contact id {:?}", ct.id),
                );
            }
        }
    }

    /// Coal tasks and pollution measures name a response level of their plan; `none` is
    /// a spelling of the level type but no response has tasks or measures.
    fn validate_plan_texts(&self, e: &mut Problems) {
        for (i, t) in self.coal.tasks.iter().flatten().enumerate() {
            match t.level {
                CoalLevel::L2 | CoalLevel::L1 => {}
                CoalLevel::None => {
                    e.add(format!("coal.tasks[{i}].level"), "must be \"L2\" or \"L1\"")
                }
            }
        }
        for (i, m) in self.pollution.measures.iter().flatten().enumerate() {
            match m.level {
                Lv::Yellow | Lv::Orange | Lv::Red | Lv::Ozone | Lv::So2 => {}
                Lv::None => e.add(
                    format!("pollution.measures[{i}].level"),
                    "must be \"yellow\", \"orange\", \"red\", \"ozone\" or \"so2\"",
                ),
            }
        }
    }

    /// `[[unit]]`: names are unique across names and aliases; plans are the reporting
    /// plans (PLANS.md §5.2: coal and pollution; the call service has no report-back).
    fn validate_units(&self, e: &mut Problems) {
        let mut names = std::collections::BTreeSet::new();
        for (i, u) in self.units.iter().enumerate() {
            if u.name.trim().is_empty() {
                e.add(format!("unit[{i}].name"), "is required");
            }
            for n in std::iter::once(&u.name).chain(&u.aliases) {
                if !n.is_empty() && !names.insert(n.as_str()) {
                    e.add(
                        format!("unit[{i}]"),
                        format!("name or alias {n:?} is used by another unit"),
                    );
                }
            }
            for (j, p) in u.plans.iter().enumerate() {
                match p {
                    Plan::CoalSupply | Plan::HeavyPollution => {}
                    Plan::SevereWeather => e.add(
                        format!("unit[{i}].plans[{j}]"),
                        format!(
                            "must be \"coal_supply\" or \"heavy_pollution\", got {:?}",
                            p.as_str()
                        ),
                    ),
                }
            }
        }
    }

    /// Index of region `id`.
    pub fn region_index(&self, id: &str) -> Option<usize> {
        match self.region_ids.get(id) {
            // `regions` is public: trust the index only where it still agrees.
            Some(&i) if self.regions.get(i).is_some_and(|r| r.id == id) => Some(i),
            _ => self.regions.iter().position(|r| r.id == id),
        }
    }

    /// (Re)builds the region index; the first of a repeated id wins, as a scan would.
    pub fn index_regions(&mut self) {
        self.region_ids.clear();
        for (i, r) in self.regions.iter().enumerate() {
            self.region_ids.entry(r.id.clone()).or_insert(i);
        }
    }

    /// The unit named `name` (its name or an alias).
    pub fn unit(&self, name: &str) -> Option<&UnitConfig> {
        self.units.iter().find(|u| u.named(name))
    }

    /// The contact with id `id`.
    pub fn contact(&self, id: &str) -> Option<&Contact> {
        self.contacts.iter().find(|c| c.id == id)
    }
}

/// A TOML error with its line number, but never the offending line itself nor, on a
/// line whose key may hold a secret (password, key, secret, token, url, username), the
/// value quoted in the message.
///
/// `path` is the TOML path serde was at when the value was refused (`contact[3].tier`);
/// without one (a syntax error), the offending line's key or the key the message names.
fn toml_error(e: toml::de::Error, path: Option<String>, text: &str) -> ConfigError {
    let mut msg = e.message().trim().replace('\n', " ");
    let line_no = e
        .span()
        .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
    let line = line_no.and_then(|n| text.lines().nth(n - 1)).unwrap_or("");
    let line_key = line
        .split_once('=')
        .map(|(k, _)| k.trim().trim_matches('"').to_string())
        .filter(|k| !k.is_empty() && !k.starts_with('['));
    let secretish = |k: &str| {
        let k = k.to_ascii_lowercase();
        ["password", "secret", "key", "token", "url", "username"]
            .iter()
            .any(|w| k.contains(w))
    };
    if line_key.as_deref().is_some_and(secretish) {
        msg = redact_quoted(&msg);
    }
    // The key: serde's path, else the offending line's, else the one toml's message names.
    let key = path
        .filter(|p| !p.is_empty() && p != ".")
        .or(line_key)
        .or_else(|| msg.split('`').nth(1).map(str::to_string))
        .unwrap_or_else(|| "(file)".into());
    let at = line_no.map(|n| format!("line {n}: ")).unwrap_or_default();
    ConfigError::new(key, format!("{at}{msg}"))
}

/// An ignored key's TOML path (`contact[0].tire`), in the style of every other key.
fn toml_path(path: &serde_ignored::Path) -> String {
    use serde_ignored::Path as P;
    match path {
        P::Root => String::new(),
        P::Seq { parent, index } => format!("{}[{index}]", toml_path(parent)),
        P::Map { parent, key } => match toml_path(parent) {
            p if p.is_empty() => key.clone(),
            p => format!("{p}.{key}"),
        },
        P::Some { parent } | P::NewtypeStruct { parent } | P::NewtypeVariant { parent } => {
            toml_path(parent)
        }
    }
}

/// `msg` with every `...` and "..." part replaced by `…`.
fn redact_quoted(msg: &str) -> String {
    let mut out = String::new();
    let mut inside: Option<char> = None;
    for c in msg.chars() {
        match inside {
            Some(q) if c == q => {
                out.push('…');
                out.push(c);
                inside = None;
            }
            Some(_) => {}
            None if c == '`' || c == '"' => {
                out.push(c);
                inside = Some(c);
            }
            None => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: CONTRACT.md's own example (a backup naming a contact it does not list,
    /// integers where numbers go) must load, or acceptance configs copied from it fail.
    #[test]
    fn contract_example_config_loads() {
        let text = include_str!("../tests/fixtures/contract-example.toml");
        let l = Config::from_toml(text).unwrap();
        assert!(l.unknown_keys.is_empty(), "{:?}", l.unknown_keys);
        assert_eq!(l.config.contacts[0].backup.as_deref(), Some("yjj-deputy"));
        let l = Config::from_toml("[pollution]\naqi_standard = 2012\n").unwrap();
        assert_eq!(l.config.pollution.aqi_standard, Standard::Hj2012);
        let l = Config::from_toml("[coal]\nlift_hold_hours = 0\nprice_large_pct = 5\n").unwrap();
        assert_eq!(l.config.coal.lift_hold_hours, 0.0);
    }

    #[test]
    fn empty_file_is_valid_with_contract_defaults() {
        let c = Config::from_toml("").unwrap().config;
        assert_eq!(c.topic_root, "ers");
        assert_eq!(c.regions[0].id, "shuozhou");
        assert_eq!(c.coal.daily_quota_t.for_year(2023), Some(500_000.0));
        assert_eq!(c.coal.lift_hold_hours, 72.0);
        assert_eq!(c.pollution.horizon_hours, 72);
        assert_eq!(c.weather_call.ack_timeout_s, 180);
        assert_eq!(c.limits.max_payload_bytes, 65536);
        assert!(c.mqtt.is_none() && c.email.is_none());
        assert_eq!(c.report_time, NaiveTime::from_hms_opt(8, 0, 0).unwrap());
    }

    #[test]
    fn quota_table_by_year_uses_latest_earlier_year() {
        let c = Config::from_toml("[coal]\ndaily_quota_t = { 2023 = 500000, 2024 = 520000 }\n")
            .unwrap()
            .config;
        let q = &c.coal.daily_quota_t;
        assert_eq!(q.for_year(2022), None);
        assert_eq!(q.for_year(2023), Some(500_000.0));
        assert_eq!(q.for_year(2024), Some(520_000.0));
        assert_eq!(q.for_year(2026), Some(520_000.0));
    }

    #[test]
    fn errors_name_the_key() {
        let e = Config::from_toml("[coal]\nlift_hold_hours = -1\n").unwrap_err();
        assert_eq!(e[0].key, "coal.lift_hold_hours");
        let e = Config::from_toml("[pollution]\naqi_standard = \"2019\"\n").unwrap_err();
        assert_eq!(e[0].key, "pollution.aqi_standard");
        let e = Config::from_toml("report_time = \"8 o'clock\"\n").unwrap_err();
        assert!(e[0].to_string().contains("HH:MM"), "{e:?}");
        let e = Config::from_toml("[[contact]]\nid = \"a\"\ntier = \"D\"\n").unwrap_err();
        assert_eq!(e[0].key, "contact[0].tier");
        let e = Config::from_toml("[weather_call]\nphone_attempts = \"three\"\n").unwrap_err();
        assert!(e[0].to_string().contains("phone_attempts"), "{e:?}");
    }

    #[test]
    fn unknown_keys_are_reported_not_fatal() {
        // A misspelt key must not stop a replay, but `check` reports it (and fails).
        let l = Config::from_toml("colour = 1\n[coal]\nstock_rules = \"any\"\n").unwrap();
        let mut keys = l.unknown_keys;
        keys.sort();
        assert_eq!(
            keys,
            vec!["coal.stock_rules".to_string(), "colour".to_string()]
        );
    }

    #[test]
    fn shipped_config_is_valid() {
        let text = include_str!("../config/yingji.toml");
        let l = Config::from_toml(text).unwrap();
        assert!(l.unknown_keys.is_empty(), "{:?}", l.unknown_keys);
    }

    /// PLANS.md §5.1: the shipped config follows the originals; §5.2: every unit a coal task
    /// names is a configured unit, and the offices are units of the other plan only.
    #[test]
    fn shipped_config_follows_the_originals_and_names_every_task_unit() {
        let c = Config::from_toml(include_str!("../config/yingji.toml"))
            .unwrap()
            .config;
        assert!(c.pollution.require_approval && c.coal.require_confirmation);
        assert!(c.coal.l1_by_commander && c.coal.hold_waits_for_data);
        for t in crate::plans::coal_supply::default_tasks() {
            if t.unit == crate::plans::coal_supply::text::EVERY_UNIT {
                continue;
            }
            let u = c
                .unit(&t.unit)
                .unwrap_or_else(|| panic!("no [[unit]] {}", t.unit));
            assert_eq!(u.name, t.unit, "tasks use the unit's name, not an alias");
            if u.name != c.coal.office_unit {
                assert!(u.reports_on(Plan::CoalSupply), "{} reports on coal", u.name);
            }
        }
        for (alias, name) in [
            ("市工信局", "市工业和信息化局"),
            ("市市场监管局", "市市场监督管理局"),
        ] {
            assert_eq!(c.unit(alias).map(|u| u.name.as_str()), Some(name));
        }
        assert!(!c.unit("市能源局").unwrap().reports_on(Plan::CoalSupply));
        assert!(!c
            .unit("市生态环境局")
            .unwrap()
            .reports_on(Plan::HeavyPollution));
        assert!(c.units.iter().filter(|u| u.county).count() >= 6);
    }

    #[test]
    fn built_in_defaults_keep_the_new_keys_off() {
        let c = Config::from_toml("").unwrap().config;
        assert!(!c.coal.l1_by_commander && !c.coal.hold_waits_for_data);
        assert!(c.units.is_empty());
        assert_eq!(c.feedback_time, NaiveTime::from_hms_opt(17, 0, 0).unwrap());
        assert_eq!(c.feedback_grace_hours, 4.0);
        assert_eq!(c.coal.decision_reminder_hours, 2.0);
        assert_eq!(c.coal.office_unit, "市能源局");
        assert_eq!(c.pollution.office_unit, "市生态环境局");
        let e = Config::from_toml("[[unit]]\nname = \"a\"\nplans = [\"severe_weather\"]\n")
            .unwrap_err();
        assert_eq!(e[0].key, "unit[0].plans[0]");
        let e = Config::from_toml(
            "[[unit]]\nname = \"a\"\n[[unit]]\nname = \"b\"\naliases = [\"a\"]\n",
        )
        .unwrap_err();
        assert_eq!(e[0].key, "unit[1]");
    }

    /// Every value with a fixed set of spellings is read once, by the parse, and a wrong
    /// one is refused naming its TOML path (the same key style as validation and `check`).
    #[test]
    fn wrong_spellings_are_refused_at_their_toml_path() {
        for (text, key) in [
            (
                "[[contact]]\nid = \"a\"\n[[contact]]\nid = \"b\"\ntier = \"a\"\n",
                "contact[1].tier",
            ),
            (
                "[[contact]]\nid = \"a\"\nplans = [\"coal\"]\n",
                "contact[0].plans[0]",
            ),
            (
                "[pollution]\naqi_standard = 2019\n",
                "pollution.aqi_standard",
            ),
            (
                "[[pollution.measures]]\nlevel = \"purple\"\n",
                "pollution.measures[0].level",
            ),
            ("[[coal.tasks]]\nlevel = \"L3\"\n", "coal.tasks[0].level"),
            ("[[webhook]]\nkind = \"pager\"\n", "webhook[0].kind"),
            ("[[webhook]]\nkinds = [\"calls\"]\n", "webhook[0].kinds[0]"),
            (
                "[email]\n[[email.route]]\nplans = [\"weather\"]\n",
                "email.route[0].plans[0]",
            ),
            (
                "[coal]\ndaily_quota_t = { 2023 = 1, next = 2 }\n",
                "coal.daily_quota_t",
            ),
        ] {
            let e = Config::from_toml(text).unwrap_err();
            assert_eq!(e.len(), 1, "{text}: {e:?}");
            assert_eq!(e[0].key, key, "{text}: {e:?}");
        }
        for (text, key) in [
            ("[[coal.tasks]]\nunit = \"x\"\n", "coal.tasks[0].level"),
            (
                "[[pollution.measures]]\nlevel = \"none\"\n",
                "pollution.measures[0].level",
            ),
        ] {
            let e = Config::from_toml(text).unwrap_err();
            assert_eq!(e[0].key, key, "{text}: {e:?}");
        }
        let e = Config::from_toml("[coal]\ndaily_quota_t = { 2023 = 1, next = 2 }\n").unwrap_err();
        assert!(e[0].message.contains("year"), "{e:?}");
        // The accepted spellings, read into their types.
        let c = Config::from_toml(
            "[[contact]]\nid = \"a\"\ntier = \"C\"\nplans = [\"severe_weather\"]\n\
             [[coal.tasks]]\nlevel = \"L1\"\n[[pollution.measures]]\nlevel = \"so2\"\n\
             [[webhook]]\nkind = \"wecom_app\"\nkinds = [\"call_unreached\"]\n",
        )
        .unwrap()
        .config;
        assert_eq!(c.contacts[0].tier, Some(Tier::C));
        assert_eq!(c.contacts[0].plans, [Plan::SevereWeather]);
        assert_eq!(c.coal.tasks.unwrap()[0].level, CoalLevel::L1);
        assert_eq!(c.pollution.measures.unwrap()[0].level, Lv::So2);
        assert_eq!(c.webhooks[0].kind, WebhookKind::WecomApp);
        assert_eq!(c.webhooks[0].kinds, [Kind::CallUnreached]);
    }

    /// Unknown keys inside arrays of tables are named like every other key.
    #[test]
    fn unknown_keys_in_arrays_use_the_toml_path() {
        let l =
            Config::from_toml("[[contact]]\nid = \"a\"\n[[contact]]\nid = \"b\"\ntire = \"A\"\n")
                .unwrap();
        assert_eq!(l.unknown_keys, ["contact[1].tire"]);
    }

    /// Each feed's age bound is keyed by its topic (`coal/stock` -> `coal_stock`);
    /// commands have none.
    #[test]
    fn max_age_bounds_by_topic() {
        use crate::topic::Topic;
        let m = MaxAgeDays {
            coal_stock: 2.5,
            ..MaxAgeDays::default()
        };
        assert_eq!(m.of(Topic::CoalStock), Some(("coal_stock", 2.5)));
        assert_eq!(m.of(Topic::WeatherWarning), Some(("weather_warning", 1.0)));
        for t in Topic::all() {
            match m.of(*t) {
                Some((key, _)) => assert_eq!(key, t.as_str().replace('/', "_")),
                None => assert_eq!(*t, Topic::Cmd),
            }
        }
    }
}
