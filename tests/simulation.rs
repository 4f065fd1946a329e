//! Seeded simulation of the engine, in the spirit of TigerBeetle's VOPR: a generator of
//! random but plausible message streams (every feed, commands, malformed payloads, unknown
//! regions, gaps from seconds to days) runs through `input::parse` + `Engine::handle` /
//! `advance_to`, and invariants are checked after every step:
//!
//! - determinism: the same seed twice gives identical notices (JSON);
//! - crash/restart: an engine restored from a snapshot taken at a random step and fed the
//!   remaining inputs makes the same notices and ends in the same state;
//! - a rejected input (parse error or plan refusal) changes no state: the engine equals a
//!   clone advanced to the same time without the message;
//! - ids unique and numbered 1, 2, 3 … per `{plan}/{region}/{track}` (proposals apart);
//! - notice `at` never decreases and never exceeds the engine's time;
//! - moves have `previous`, `terminate` has level `none`, call kinds carry their fields;
//! - `advance_to(now)` again gives nothing; `next_deadline()` is after `now`;
//! - the same stream written as a scenario file gives the same notices via `replay`;
//! - the rules, checked from outside (from the stream, the config and the notices, never the
//!   engine's state; see `Outside`): moves only where the plans put them (coal up at a
//!   message, down at a command or exactly `lift_hold_hours` after a message; pollution only
//!   at air messages and commands; weather only at warnings), data gaps at exactly last
//!   accepted arrival + period, once per silence and never missed, `data_resumed` at the
//!   next message, reports with their moves and every daily report at `report_time`;
//! - the call timeline of PLANS.md §3 (attempt times, channels, acks, `call_unreached`).
//!
//! The generator reaches every track: one air spell in four is an ozone episode (hours
//! naming O3), and the seeds must produce the kinds of every plan listed at the end of
//! `simulation_seeds`.
//!
//! `YINGJI_SIM_SEEDS=N` runs N seeds (default 12, to stay quick in debug), from
//! `YINGJI_SIM_FIRST` (default 1); `YINGJI_SIM_EVENTS` sets the events per seed (300);
//! `YINGJI_SIM_SEED=S` runs only seed S. A failure names the seed and the step and writes
//! the scenario and config to `target/sim-failures/` so `yingji replay` can reproduce it.

use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use chrono::Duration;
use serde_json::{json, Value};
use yingji::config::Config;
use yingji::engine::Engine;
use yingji::input;
use yingji::notice::{Kind, Notice};
use yingji::replay;
use yingji::time::{floor_hour, fmt_ts, local_date, parse_ts, Ts};

// ------------------------------------------------------------------------------------------
// PRNG: SplitMix64, small and reproducible everywhere.

struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1) as u64) as i64
    }
    fn float(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (self.next() >> 11) as f64 / (1u64 << 53) as f64 * (hi - lo)
    }
    fn chance(&mut self, p: f64) -> bool {
        self.float(0.0, 1.0) < p
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len() as u64) as usize]
    }
    /// Index by weights.
    fn weighted(&mut self, w: &[u32]) -> usize {
        let total: u32 = w.iter().sum();
        let mut x = self.below(total as u64) as u32;
        for (i, &wi) in w.iter().enumerate() {
            if x < wi {
                return i;
            }
            x -= wi;
        }
        w.len() - 1
    }
}

// ------------------------------------------------------------------------------------------
// Configuration: one or two regions, call contacts, and per-seed variations of the keys that
// change behaviour (confirmation, approval, holds, call timing).

const CONTACTS: &str = r#"
[[contact]]
id = "yjj"
name = "张应急"
unit = "市应急管理局"
tier = "A"
role = "emergency"
backup = "yjj-dep"
wechat = "zhangyj"
phone = "+8613800000001"

[[contact]]
id = "cg"
name = "王城管"
unit = "市城市管理局"
tier = "A"
role = "urban_management"
phone = "+8613800000003"

[[contact]]
id = "sz-fq"
name = "李副市长"
unit = "市政府"
tier = "B"
role = "leader_flood"
wechat = "lifsz"
phone = "+8613800000002"

[[contact]]
id = "mayor"
name = "赵市长"
unit = "市政府"
tier = "C"
role = "mayor"
wechat = "zhaosz"

[[contact]]
id = "yjj-dep"
name = "张副局长"
unit = "市应急管理局"
phone = "+8613800000007"

[[contact]]
id = "duty"
name = "值班室"
unit = "市应急指挥部办公室"
phone = "+8613800000009"
"#;

const PERSONS: &[&str] = &["yjj", "cg", "sz-fq", "mayor", "yjj-dep", "nobody"];

fn config_text(rng: &mut Rng, two_regions: bool) -> String {
    let report = *rng.pick(&["08:00", "08:00", "00:00", "23:30"]);
    let mut s =
        format!("report_time = \"{report}\"\n[[region]]\nid = \"shuozhou\"\nname = \"朔州市\"\n");
    if two_regions {
        s.push_str("[[region]]\nid = \"pinglu\"\nname = \"平鲁区\"\n");
    }
    let hold = *rng.pick(&[72.0, 72.0, 24.0, 1.5]);
    let rule = if rng.chance(0.2) { "aggregate" } else { "any" };
    s.push_str(&format!(
        "[coal]\nrequire_confirmation = {}\nlift_hold_hours = {hold}\nstock_rule = \"{rule}\"\n",
        rng.chance(0.4)
    ));
    // PLANS.md §5.1 / §5.3 (issue 11): the commander's L1 decisions, holds waiting for data.
    s.push_str(&format!(
        "l1_by_commander = {}\nhold_waits_for_data = {}\n",
        rng.chance(0.4),
        rng.chance(0.3)
    ));
    if rng.chance(0.3) {
        s.push_str("price_min_cny_t = 600\nprice_max_cny_t = 1400\n");
    }
    if rng.chance(0.2) {
        s.push_str("daily_quota_t = { 2023 = 500000, 2025 = 520000 }\n");
    }
    s.push_str(&format!(
        "[pollution]\nrequire_approval = {}\n",
        rng.chance(0.4)
    ));
    let (a, r, n) = *rng.pick(&[
        (180, 180, 3),
        (180, 180, 3),
        (60, 30, 2),
        (0, 0, 1),
        (600, 0, 4),
    ]);
    s.push_str(&format!(
        "[weather_call]\nack_timeout_s = {a}\nphone_retry_s = {r}\nphone_attempts = {n}\nred_rainstorm_is_extreme = {}\nescalate_to = [\"duty\"]\n",
        rng.chance(0.7)
    ));
    s.push_str(CONTACTS);
    s.push_str(UNITS);
    s
}

/// PLANS.md §5.2 (issue 11): units that report back, and the offices' contacts.
const UNITS: &str = r#"
[[contact]]
id = "ny-office"
unit = "市能源局"
plans = ["coal_supply"]

[[unit]]
name = "市工业和信息化局"
aliases = ["市工信局"]
plans = ["coal_supply", "heavy_pollution"]

[[unit]]
name = "市交通运输局"
plans = ["coal_supply"]

[[unit]]
name = "朔城区人民政府"
plans = ["heavy_pollution"]
county = true
"#;

// ------------------------------------------------------------------------------------------
// The stream.

#[derive(Debug, Clone)]
enum Event {
    Msg {
        at: Ts,
        topic: String,
        payload: Vec<u8>,
    },
    End {
        at: Ts,
    },
}

impl Event {
    fn at(&self) -> Ts {
        match self {
            Event::Msg { at, .. } | Event::End { at } => *at,
        }
    }

    /// The event as a scenario line (CONTRACT.md "Scenario files").
    fn scenario_line(&self) -> String {
        match self {
            Event::End { at } => json!({"at": fmt_ts(*at), "end": true}).to_string(),
            Event::Msg { at, topic, payload } => {
                let text = String::from_utf8(payload.clone()).expect("generator writes UTF-8");
                let payload_json = if serde_json::from_str::<Value>(&text).is_ok() {
                    text
                } else {
                    Value::String(text).to_string()
                };
                format!(
                    "{{\"at\": {}, \"topic\": {}, \"payload\": {payload_json}}}",
                    Value::String(fmt_ts(*at)),
                    Value::String(topic.clone())
                )
            }
        }
    }
}

/// What the generator remembers per region to keep the stream plausible.
struct RegionGen {
    id: &'static str,
    aqi: f64,
    /// Where the AQI drifts to (a clean spell or an episode).
    target: f64,
    /// The pollutant that dominates the current spell (`O3`: an ozone episode, §3.2.2).
    primary: &'static str,
    price: f64,
    output_date: chrono::NaiveDate,
    price_date: chrono::NaiveDate,
    stock: BTreeMap<&'static str, f64>,
    warnings: Vec<String>,
    warn_n: u32,
}

struct Gen {
    rng: Rng,
    regions: Vec<RegionGen>,
    now: Ts,
    /// Future events (bursts), ordered by (at, sequence).
    pending: BinaryHeap<std::cmp::Reverse<(Ts, u64, usize)>>,
    pending_events: Vec<Option<Event>>,
    seq: u64,
}

fn ts(t: Ts) -> Value {
    Value::String(fmt_ts(t))
}

fn date(d: chrono::NaiveDate) -> Value {
    Value::String(d.format("%Y-%m-%d").to_string())
}

impl Gen {
    fn new(seed: u64, two_regions: bool) -> (Gen, String) {
        let mut rng = Rng::new(seed);
        let cfg = config_text(&mut rng, two_regions);
        let start = parse_ts("2023-11-01T00:00:00+08:00").unwrap()
            + Duration::minutes(rng.range(0, 60 * 24 * 60));
        let ids: &[&'static str] = if two_regions {
            &["shuozhou", "pinglu"]
        } else {
            &["shuozhou"]
        };
        let regions = ids
            .iter()
            .map(|&id| RegionGen {
                id,
                aqi: rng.float(20.0, 250.0),
                target: 60.0,
                primary: "PM2.5",
                price: rng.float(700.0, 1100.0),
                output_date: local_date(start) - Duration::days(1),
                price_date: local_date(start) - Duration::days(1),
                stock: BTreeMap::new(),
                warnings: Vec::new(),
                warn_n: 0,
            })
            .collect();
        let g = Gen {
            rng,
            regions,
            now: start,
            pending: BinaryHeap::new(),
            pending_events: Vec::new(),
            seq: 0,
        };
        (g, cfg)
    }

    /// Queues an event; an arrival before the generator's clock (already streamed) is
    /// moved to the clock, so arrivals stay in order.
    fn push(&mut self, mut ev: Event) {
        match &mut ev {
            Event::Msg { at, .. } | Event::End { at } => *at = (*at).max(self.now),
        }
        self.seq += 1;
        self.pending_events.push(Some(ev.clone()));
        let idx = self.pending_events.len() - 1;
        self.pending
            .push(std::cmp::Reverse((ev.at(), self.seq, idx)));
    }

    fn msg(&mut self, at: Ts, region: &str, feed: &str, payload: Value) {
        self.push(Event::Msg {
            at,
            topic: format!("ers/{region}/{feed}"),
            payload: payload.to_string().into_bytes(),
        });
    }

    fn raw(&mut self, at: Ts, topic: String, payload: &str) {
        self.push(Event::Msg {
            at,
            topic,
            payload: payload.as_bytes().to_vec(),
        });
    }

    /// A gap between arrivals: mostly seconds to hours, sometimes none, sometimes days.
    fn gap(&mut self) -> Duration {
        match self.rng.weighted(&[10, 30, 40, 15, 5]) {
            0 => Duration::zero(),
            1 => Duration::seconds(self.rng.range(1, 300)),
            2 => Duration::minutes(self.rng.range(5, 240)),
            3 => Duration::hours(self.rng.range(4, 30)),
            _ => Duration::hours(self.rng.range(30, 24 * 5)),
        }
    }

    /// Generates the whole stream of about `n` events, in arrival order.
    fn stream(mut self, n: usize) -> Vec<Event> {
        let mut out = Vec::with_capacity(n + 64);
        while out.len() < n {
            let g = self.gap();
            self.now += g;
            self.drain(self.now, &mut out);
            self.action();
        }
        let last = self.now + Duration::days(4);
        self.drain(last, &mut out);
        out.push(Event::End { at: last });
        out
    }

    fn drain(&mut self, upto: Ts, out: &mut Vec<Event>) {
        while let Some(std::cmp::Reverse((at, _, idx))) = self.pending.peek().copied() {
            if at > upto {
                break;
            }
            self.pending.pop();
            out.push(self.pending_events[idx].take().expect("once"));
        }
    }

    fn action(&mut self) {
        let r = self.rng.below(self.regions.len() as u64) as usize;
        let now = self.now;
        match self
            .rng
            .weighted(&[8, 6, 4, 3, 3, 4, 10, 3, 3, 3, 7, 6, 6, 3, 4, 3, 3])
        {
            0 => self.coal_stock(r, now),
            1 => self.coal_output(r, now),
            2 => self.coal_price(r, now),
            3 => self.coal_storage(r, now),
            4 => self.manual(r, now),
            5 => self.proposal_cmd(r, now),
            6 => self.aqi_burst(r),
            7 => self.aqi_one(r, now),
            8 => self.forecast(r, now),
            9 => self.province(r, now),
            10 => self.warning(r, now),
            11 => self.storm(r),
            12 => self.ack(r, now),
            13 => self.coal_days(r),
            14 if self.rng.chance(0.3) => self.extreme(r, now),
            14 => self.malformed(r, now),
            15 => self.unknown_region(now),
            _ => self.push(Event::End { at: now }),
        }
    }

    // --- coal -----------------------------------------------------------------------------

    fn stock_value(&mut self) -> f64 {
        match self.rng.weighted(&[12, 2, 2, 2, 1]) {
            0 => self.rng.float(20.0, 35.0),
            1 => self.rng.float(15.0, 20.0),
            2 => *self.rng.pick(&[20.0, 15.0, 7.0, 19.999, 14.999]),
            3 => self.rng.float(5.0, 15.0),
            _ => self.rng.float(0.0, 5.0),
        }
    }

    fn coal_stock(&mut self, r: usize, now: Ts) {
        let plant = *self.rng.pick(&["A", "B", "C", "D"]);
        let days = self.stock_value();
        let days = (days * 100.0).round() / 100.0;
        self.regions[r].stock.insert(plant, days);
        let t = now - Duration::minutes(self.rng.range(0, 180));
        let payload = if self.rng.chance(0.5) {
            json!({"ts": ts(t), "plant": plant, "stock_days": days})
        } else {
            let burn = *self.rng.pick(&[8000.0, 10000.0, 12500.0]);
            json!({"ts": ts(t), "plant": plant, "stock_t": (days * burn).round(), "burn_t_per_day": burn})
        };
        let id = self.regions[r].id;
        self.msg(now, id, "coal/stock", payload);
    }

    fn output_value(&mut self) -> f64 {
        match self.rng.weighted(&[10, 3, 1, 1]) {
            0 => self.rng.float(500_000.0, 560_000.0).round(),
            1 => self.rng.float(420_000.0, 499_999.0).round(),
            2 => *self.rng.pick(&[500_000.0, 510_000.0, 509_999.0]),
            _ => self.rng.float(0.0, 300_000.0).round(),
        }
    }

    fn coal_output(&mut self, r: usize, now: Ts) {
        let d = {
            let g = &mut self.regions[r];
            let step = match self.rng.weighted(&[8, 2, 1, 1]) {
                0 => 1,
                1 => 0,
                2 => self.rng.range(2, 4),
                _ => -self.rng.range(1, 3),
            };
            let d = g.output_date + Duration::days(step);
            if d > g.output_date {
                g.output_date = d;
            }
            d
        };
        let v = self.output_value();
        let id = self.regions[r].id;
        self.msg(
            now,
            id,
            "coal/output",
            json!({"date": date(d), "output_t": v}),
        );
    }

    fn coal_price(&mut self, r: usize, now: Ts) {
        let jump = match self.rng.weighted(&[14, 2, 1]) {
            0 => self.rng.float(-0.02, 0.02),
            1 => self.rng.float(-0.15, 0.15),
            _ => self.rng.float(-0.3, 0.3),
        };
        let g = &mut self.regions[r];
        g.price = (g.price * (1.0 + jump)).clamp(300.0, 2500.0);
        g.price_date += Duration::days(if self.rng.chance(0.8) { 1 } else { 0 });
        let (d, p, id) = (g.price_date, (g.price * 10.0).round() / 10.0, g.id);
        self.msg(
            now,
            id,
            "coal/price",
            json!({"date": date(d), "price_cny_t": p}),
        );
    }

    fn coal_storage(&mut self, r: usize, now: Ts) {
        let v = self.rng.float(4_000_000.0, 7_000_000.0).round();
        let id = self.regions[r].id;
        self.msg(
            now,
            id,
            "coal/storage",
            json!({"ts": ts(now), "storage_t": v}),
        );
    }

    /// A run of daily output and price reports (a few days of a stressed or normal supply).
    fn coal_days(&mut self, r: usize) {
        let days = self.rng.range(3, 12);
        let stressed = self.rng.chance(0.4);
        for k in 0..days {
            let at = self.now + Duration::days(k) + Duration::minutes(self.rng.range(0, 90));
            let g = &mut self.regions[r];
            g.output_date += Duration::days(1);
            let d = g.output_date;
            let v = if stressed {
                self.rng.float(400_000.0, 499_000.0).round()
            } else {
                self.rng.float(500_000.0, 560_000.0).round()
            };
            let id = self.regions[r].id;
            self.msg(
                at,
                id,
                "coal/output",
                json!({"date": date(d), "output_t": v}),
            );
            if self.rng.chance(0.5) {
                self.coal_stock(r, at + Duration::minutes(1));
            }
        }
    }

    fn manual(&mut self, r: usize, now: Ts) {
        let level = *self.rng.pick(&["L2", "L1", "none", "none"]);
        let id = self.regions[r].id;
        self.msg(
            now,
            id,
            "cmd",
            json!({"cmd": "manual", "plan": "coal_supply", "level": level, "reason": "模拟", "by": "energy"}),
        );
    }

    fn proposal_cmd(&mut self, r: usize, now: Ts) {
        let id = self.regions[r].id;
        let k = self.rng.range(1, 3);
        let pid = match self.rng.weighted(&[5, 3, 1, 1]) {
            0 => format!("coal_supply/{id}/supply/proposal/{k}"),
            1 => format!(
                "heavy_pollution/{id}/{}/proposal/{k}",
                self.rng.pick(&["graded", "ozone"])
            ),
            2 => format!("coal_supply/nowhere/supply/proposal/{k}"),
            _ => "bogus/proposal".to_string(),
        };
        let cmd = *self.rng.pick(&["confirm", "approve", "reject"]);
        self.msg(
            now,
            id,
            "cmd",
            json!({"cmd": cmd, "proposal_id": pid, "by": "director", "reason": "模拟"}),
        );
        // PLANS.md §5.2: units report back (some rejected: unknown unit, wrong plan, cut).
        if self.rng.chance(0.5) {
            let unit = *self
                .rng
                .pick(&["市工信局", "市交通运输局", "朔城区人民政府", "市民政局"]);
            let plan = *self.rng.pick(&["coal_supply", "heavy_pollution"]);
            let cut = *self.rng.pick(&[10.0, 30.0, 120.0]);
            self.msg(
                now,
                id,
                "cmd",
                json!({"cmd": "report", "plan": plan, "unit": unit, "text": "落实情况", "by": "duty", "cut_pct": cut}),
            );
        }
    }

    // --- air ------------------------------------------------------------------------------

    fn aqi_step(&mut self, r: usize) -> f64 {
        let noise = self.rng.float(-15.0, 15.0);
        let g = &mut self.regions[r];
        g.aqi = (g.aqi + (g.target - g.aqi) * 0.15 + noise).clamp(5.0, 600.0);
        g.aqi.round()
    }

    fn aqi_payload(&mut self, r: usize, stamp: Ts) -> Value {
        let v = self.aqi_step(r);
        let dominant = self.regions[r].primary;
        let primary = match self.rng.weighted(&[6, 2, 1, 1]) {
            _ if dominant == "O3" && self.rng.chance(0.9) => json!("O3"),
            0 => json!("PM2.5"),
            1 => json!("O3"),
            2 => json!(["PM10", "PM2.5"]),
            _ => Value::Null,
        };
        let mut p = json!({"ts": ts(stamp), "aqi": v, "primary": primary});
        if self.rng.chance(0.3) {
            p["so2_ug_m3"] = json!(self.rng.float(5.0, 220.0).round());
        }
        if self.rng.chance(0.08) {
            p["cause"] = json!(*self.rng.pick(&["dust", "fireworks"]));
        }
        p
    }

    fn aqi_one(&mut self, r: usize, now: Ts) {
        let stamp = floor_hour(now);
        let p = self.aqi_payload(r, stamp);
        let id = self.regions[r].id;
        self.msg(now, id, "air/aqi", p);
    }

    /// Hourly observations 5 minutes after each hour, with holes, and forecasts now and then.
    fn aqi_burst(&mut self, r: usize) {
        let hours = self.rng.range(6, 72);
        self.regions[r].target = *self.rng.pick(&[40.0, 50.0, 70.0, 160.0, 230.0, 320.0]);
        // One spell in four is an ozone episode: most hours name O3, so the ozone track's
        // own means (§3.2.2) can reach its warning.
        self.regions[r].primary = if self.rng.chance(0.25) { "O3" } else { "PM2.5" };
        let first = floor_hour(self.now) + Duration::hours(1);
        for k in 0..hours {
            if self.rng.chance(0.05) {
                continue;
            }
            let stamp = first + Duration::hours(k);
            let p = self.aqi_payload(r, stamp);
            let id = self.regions[r].id;
            self.msg(stamp + Duration::minutes(5), id, "air/aqi", p);
            if k % 12 == 0 && self.rng.chance(0.6) {
                self.forecast(r, stamp + Duration::minutes(10));
            }
        }
    }

    fn forecast(&mut self, r: usize, at: Ts) {
        let issued = floor_hour(at);
        let id = self.regions[r].id;
        let base = self.regions[r].aqi;
        let payload = if self.rng.chance(0.75) {
            let n = self.rng.range(12, 72);
            let mut hours = Vec::new();
            let mut v = base;
            for k in 1..=n {
                let pull = (self.regions[r].target - v) * 0.1;
                v = (v + pull + self.rng.float(-12.0, 12.0)).clamp(5.0, 500.0);
                let primary = self.regions[r].primary;
                let mut h = json!({"ts": ts(issued + Duration::hours(k)), "primary": primary});
                if self.rng.chance(0.15) {
                    h["aqi_low"] = json!((v * 0.8).round());
                    h["aqi_high"] = json!(v.round());
                } else {
                    h["aqi"] = json!(v.round());
                }
                if self.rng.chance(0.1) {
                    h["so2_ug_m3"] = json!(self.rng.float(50.0, 200.0).round());
                }
                hours.push(h);
            }
            json!({"issued": ts(issued), "hours": hours})
        } else {
            let d0 = local_date(issued);
            let days: Vec<Value> = (0..3)
                .map(|k| {
                    let v = (base + self.rng.float(-60.0, 80.0))
                        .clamp(10.0, 500.0)
                        .round();
                    json!({"date": date(d0 + Duration::days(k)), "aqi": v, "primary": "PM2.5"})
                })
                .collect();
            json!({"issued": ts(issued), "days": days})
        };
        self.msg(at, id, "air/forecast", payload);
    }

    fn province(&mut self, r: usize, now: Ts) {
        let action = *self.rng.pick(&["issue", "adjust", "lift"]);
        let mut p = json!({"ts": ts(now), "action": action, "ref": "晋气发"});
        if action != "lift" {
            p["level"] = json!(*self.rng.pick(&["yellow", "orange", "red"]));
            if self.rng.chance(0.5) {
                p["start"] = ts(floor_hour(now) + Duration::hours(self.rng.range(0, 48)));
            }
        }
        let id = self.regions[r].id;
        self.msg(now, id, "air/province", p);
    }

    // --- weather --------------------------------------------------------------------------

    fn warning_id(&mut self, r: usize, fresh: bool) -> String {
        let g = &mut self.regions[r];
        if fresh || g.warnings.is_empty() {
            g.warn_n += 1;
            let w = format!("{}-w{}", g.id, g.warn_n);
            g.warnings.push(w.clone());
            return w;
        }
        let k = self.rng.below(g.warnings.len().min(4) as u64) as usize;
        g.warnings[g.warnings.len() - 1 - k].clone()
    }

    fn warning_payload(&mut self, wid: &str, t: Ts, action: &str) -> Value {
        let hazard = *self.rng.pick(&[
            "rainstorm",
            "rainstorm",
            "blizzard",
            "thunderstorm_gale",
            "fog",
        ]);
        let mut p = json!({"ts": ts(t), "id": wid, "hazard": hazard, "action": action});
        if action != "lift" || self.rng.chance(0.3) {
            p["color"] = json!(*self.rng.pick(&["blue", "yellow", "orange", "red", "red"]));
        }
        if self.rng.chance(0.15) {
            p["extreme"] = json!(true);
        }
        p
    }

    fn warning(&mut self, r: usize, now: Ts) {
        let action = *self.rng.pick(&["issue", "issue", "update", "lift"]);
        let fresh = action == "issue" && self.rng.chance(0.7);
        let wid = self.warning_id(r, fresh);
        let p = self.warning_payload(&wid, now, action);
        let id = self.regions[r].id;
        self.msg(now, id, "weather/warning", p);
    }

    /// A storm: observations, a warning, acks at random delays, maybe an update, a lift.
    fn storm(&mut self, r: usize) {
        let id = self.regions[r].id;
        let wid = self.warning_id(r, true);
        let t0 = self.now;
        let hazard = *self
            .rng
            .pick(&["rainstorm", "rainstorm", "blizzard", "thunderstorm_gale"]);
        let color = *self.rng.pick(&["orange", "red", "red", "yellow"]);
        for k in 0..self.rng.range(1, 6) {
            let stamp = floor_hour(t0) + Duration::hours(k);
            let st = *self.rng.pick(&["s1", "s2", "s3"]);
            let p = json!({"ts": ts(stamp), "station": st,
                "rain_mm": self.rng.float(0.0, 60.0).round(), "snow_mm": self.rng.float(0.0, 8.0).round()});
            self.msg(stamp + Duration::minutes(3), id, "weather/obs", p);
        }
        let mut w =
            json!({"ts": ts(t0), "id": wid, "hazard": hazard, "color": color, "action": "issue"});
        if self.rng.chance(0.2) {
            w["extreme"] = json!(true);
        }
        self.msg(t0, id, "weather/warning", w);
        for _ in 0..self.rng.range(0, 5) {
            let at = t0 + Duration::seconds(self.rng.range(0, 1500));
            let round = if self.rng.chance(0.8) { 1 } else { 2 };
            let person = *self.rng.pick(PERSONS);
            self.msg(
                at,
                id,
                "cmd",
                json!({"cmd": "ack", "call_id": format!("{wid}/{round}"), "person": person}),
            );
        }
        if self.rng.chance(0.5) {
            let at = t0 + Duration::seconds(self.rng.range(60, 7200));
            let c = *self.rng.pick(&["orange", "red", "yellow", "blue"]);
            self.msg(
                at,
                id,
                "weather/warning",
                json!({"ts": ts(at), "id": wid, "hazard": hazard, "color": c, "action": "update"}),
            );
        }
        let lift = t0 + Duration::minutes(self.rng.range(5, 60 * 30));
        self.msg(
            lift,
            id,
            "weather/warning",
            json!({"ts": ts(lift), "id": wid, "hazard": hazard, "action": "lift"}),
        );
    }

    fn ack(&mut self, r: usize, now: Ts) {
        let id = self.regions[r].id;
        let call_id = match self.rng.weighted(&[6, 2, 1]) {
            0 => {
                let w = self.warning_id(r, false);
                format!("{w}/{}", self.rng.range(1, 3))
            }
            1 => "never-issued/1".to_string(),
            _ => self.warning_id(r, false),
        };
        let person = *self.rng.pick(PERSONS);
        self.msg(
            now,
            id,
            "cmd",
            json!({"cmd": "ack", "call_id": call_id, "person": person, "by": "wechat"}),
        );
    }

    // --- bad input ------------------------------------------------------------------------

    fn malformed(&mut self, r: usize, now: Ts) {
        let id = self.regions[r].id;
        let future = ts(now + Duration::hours(self.rng.range(25, 100)));
        let (feed, payload): (&str, String) = match self.rng.below(12) {
            0 => ("air/aqi", "{\"ts\": broken".into()),
            1 => ("coal/stock", "[]".into()),
            2 => (
                "coal/stock",
                json!({"ts": ts(now), "plant": "A", "stock_t": 100, "burn_t_per_day": 0})
                    .to_string(),
            ),
            3 => (
                "coal/output",
                json!({"date": "2023-13-45", "output_t": 1}).to_string(),
            ),
            4 => (
                "coal/output",
                json!({"date": date(local_date(now) + Duration::days(3)), "output_t": 1})
                    .to_string(),
            ),
            5 => (
                "air/aqi",
                json!({"ts": future, "aqi": 300, "primary": "PM2.5"}).to_string(),
            ),
            6 => (
                "air/aqi",
                json!({"ts": ts(now), "aqi": 1200, "primary": "PM2.5"}).to_string(),
            ),
            7 => (
                "weather/warning",
                json!({"ts": ts(now), "id": "x", "hazard": "rainstorm", "action": "issue"})
                    .to_string(),
            ),
            8 => ("cmd", json!({"cmd": "dance"}).to_string()),
            9 => (
                "coal/price",
                json!({"date": date(local_date(now)), "price_cny_t": -5}).to_string(),
            ),
            10 => (
                "weather/obs",
                json!({"ts": ts(now), "station": "", "rain_mm": 3}).to_string(),
            ),
            _ => ("air/nonsense", "{}".into()),
        };
        self.raw(now, format!("ers/{id}/{feed}"), &payload);
    }

    /// Valid payloads with absurd numbers (JSON allows them; only negatives are refused).
    fn extreme(&mut self, r: usize, now: Ts) {
        let id = self.regions[r].id;
        let big = *self.rng.pick(&[1e35, 1e308, 1e-300, 4e-7, 1e15]);
        let t = ts(now);
        let d = date(local_date(now));
        let (feed, p) = match self.rng.below(8) {
            0 => (
                "coal/stock",
                json!({"ts": t, "plant": "A", "stock_t": big, "burn_t_per_day": 1}),
            ),
            1 => (
                "coal/stock",
                json!({"ts": t, "plant": "B", "stock_t": 1, "burn_t_per_day": big}),
            ),
            2 => ("coal/price", json!({"date": d, "price_cny_t": big})),
            3 => ("coal/output", json!({"date": d, "output_t": big})),
            4 => ("coal/storage", json!({"ts": t, "storage_t": big})),
            5 => (
                "weather/obs",
                json!({"ts": t, "station": "s1", "rain_mm": big, "snow_mm": big, "gust_ms": big}),
            ),
            6 => (
                "air/aqi",
                json!({"ts": ts(floor_hour(now)), "pm25": big, "pm10": big, "so2": big, "no2": big, "co": big, "o3": big}),
            ),
            _ => (
                "air/aqi",
                json!({"ts": ts(floor_hour(now)), "aqi": 1000, "primary": "SO2", "so2_ug_m3": big}),
            ),
        };
        self.msg(now, id, feed, p);
    }

    fn unknown_region(&mut self, now: Ts) {
        let p = json!({"ts": ts(now), "plant": "A", "stock_days": 3});
        self.raw(now, "ers/nowhere/coal/stock".into(), &p.to_string());
        if self.rng.chance(0.3) {
            self.raw(now, "other/shuozhou/coal/stock".into(), &p.to_string());
        }
    }
}

// ------------------------------------------------------------------------------------------
// The driver and its invariants.

/// One failure: the seed, the step and what went wrong.
#[derive(Debug)]
struct Failure {
    seed: u64,
    step: usize,
    what: String,
}

type Check = Result<(), String>;

/// Output of one run: notices a step (as JSON lines), and snapshots taken at chosen steps.
struct Run {
    steps: Vec<Vec<String>>,
    /// (step index after which the snapshot was taken, snapshot).
    snapshots: Vec<(usize, Vec<u8>)>,
    final_snapshot: Vec<u8>,
    rejected: usize,
}

/// Per-stream notice checks (ids, `at` order, field shapes).
#[derive(Default)]
struct NoticeChecker {
    ids: BTreeSet<String>,
    counters: BTreeMap<String, (u64, u64)>,
    last_at: Option<Ts>,
}

impl NoticeChecker {
    fn check(&mut self, n: &Notice, now: Ts) -> Check {
        if !self.ids.insert(n.id.clone()) {
            return Err(format!("duplicate notice id {}", n.id));
        }
        self.check_number(n)?;
        if let Some(last) = self.last_at {
            if n.at < last {
                return Err(format!(
                    "{}: at {} before an earlier notice's {}",
                    n.id,
                    fmt_ts(n.at),
                    fmt_ts(last)
                ));
            }
        }
        self.last_at = Some(n.at);
        if n.at > now {
            return Err(format!(
                "{}: at {} after the engine's time {}",
                n.id,
                fmt_ts(n.at),
                fmt_ts(now)
            ));
        }
        check_shape(n)
    }

    fn check_number(&mut self, n: &Notice) -> Check {
        let base = format!("{}/{}/{}", n.plan.as_str(), n.region, n.track);
        let c = self.counters.entry(base.clone()).or_default();
        let want = if n.kind == Kind::Proposal {
            c.1 += 1;
            format!("{base}/proposal/{}", c.1)
        } else {
            c.0 += 1;
            format!("{base}/{}", c.0)
        };
        if n.id != want {
            return Err(format!(
                "notice id {} where {want} was due ({:?})",
                n.id, n.kind
            ));
        }
        if n.kind == Kind::Proposal && n.proposal_id.as_deref() != Some(n.id.as_str()) {
            return Err(format!(
                "proposal {} has proposal_id {:?}",
                n.id, n.proposal_id
            ));
        }
        Ok(())
    }
}

/// Rank of a level within its track (moves must go the right way).
fn rank(level: &str) -> Option<u8> {
    Some(match level {
        "none" => 0,
        "blue" => 1,
        "yellow" | "L2" | "ozone" | "so2" => 2,
        "orange" | "L1" => 3,
        "red" => 4,
        _ => return None,
    })
}

/// One call round, as seen in the notices.
struct Round {
    track: String,
    colour: String,
    t0: Ts,
    /// person -> (last attempt, acked, unreached).
    persons: BTreeMap<String, (u32, bool, bool)>,
    closed: bool,
}

/// Plan-level invariants from CONTRACT.md "Notices" and PLANS.md §3: level bookkeeping of
/// moves and of the notices that carry the track's level, and the call timeline.
struct Semantics {
    /// `{plan}/{region}/{track}` -> current level.
    levels: BTreeMap<String, String>,
    /// Level that ended at the last terminate of a track (for `report_final`).
    ended: BTreeMap<String, String>,
    rounds: BTreeMap<(String, String), Round>,
    /// Proposal id -> (at, level, track key, reminded).
    proposals: BTreeMap<String, (Ts, String, String, bool)>,
    reminder_after: Duration,
    /// PLANS.md §5.1: coal moves into and out of L1 are the commander's.
    commander: bool,
    feedback_time: chrono::NaiveTime,
    timeout: Duration,
    retry: Duration,
    attempts: u32,
    /// The rules checked from outside (first run only).
    outside: Option<Outside>,
}

impl Semantics {
    fn new(cfg: &Config) -> Self {
        let w = &cfg.weather_call;
        Semantics {
            levels: BTreeMap::new(),
            ended: BTreeMap::new(),
            rounds: BTreeMap::new(),
            proposals: BTreeMap::new(),
            reminder_after: Duration::milliseconds((cfg.pollution.reminder_hours * 3.6e6) as i64),
            commander: cfg.coal.l1_by_commander,
            feedback_time: cfg.feedback_time,
            timeout: Duration::seconds(w.ack_timeout_s as i64),
            retry: Duration::seconds(w.phone_retry_s as i64),
            attempts: w.phone_attempts,
            outside: None,
        }
    }

    fn check_step(&mut self, ns: &[Notice]) -> Check {
        for (i, n) in ns.iter().enumerate() {
            let key = format!("{}/{}/{}", n.plan.as_str(), n.region, n.track);
            if n.kind.is_move() {
                self.check_move(&key, n)?;
            } else if matches!(n.kind, Kind::Call | Kind::CallAck | Kind::CallUnreached) {
                self.check_call(&key, n)?;
            } else {
                self.check_level(&key, n, &ns[i + 1..])?;
            }
        }
        Ok(())
    }

    fn check_move(&mut self, key: &str, n: &Notice) -> Check {
        let cur = self.levels.get(key).map_or("none", String::as_str);
        let prev = n.previous.as_deref().unwrap_or("?");
        if prev != cur {
            return Err(format!(
                "{} ({:?} to {}): previous {prev} but the track was at {cur}",
                n.id, n.kind, n.level
            ));
        }
        let (p, l) = (rank(prev), rank(&n.level));
        let ok = match n.kind {
            Kind::Activate => p == Some(0) && l > Some(0),
            Kind::Escalate => p > Some(0) && l > p,
            Kind::Downgrade => l > Some(0) && l < p,
            _ => p > Some(0) && l == Some(0),
        };
        if !ok {
            return Err(format!(
                "{}: {:?} from {prev} to {} goes the wrong way",
                n.id, n.kind, n.level
            ));
        }
        self.check_decided(key, n, prev)?;
        if matches!(n.kind, Kind::Escalate | Kind::Terminate) {
            for r in self.rounds.values_mut().filter(|r| r.track == key) {
                r.closed = true;
            }
        }
        if n.kind == Kind::Terminate {
            self.ended.insert(key.to_string(), prev.to_string());
        }
        self.levels.insert(key.to_string(), n.level.clone());
        Ok(())
    }

    /// Reports, targets, beyond-L1 and data notices carry the level after the move made by
    /// the same timer or message; `report_final` the level that ended; proposals, reminders
    /// and suggestions their own. A data notice comes before the move of its own timer or
    /// message, so it may carry the level of a later move of the track at the same instant
    /// (or the current one, when that move came from another timer due then).
    fn check_level(&mut self, key: &str, n: &Notice, rest: &[Notice]) -> Check {
        match n.kind {
            Kind::Proposal => {
                let p = (n.at, n.level.clone(), key.to_string(), false);
                self.proposals.insert(n.id.clone(), p);
                return Ok(());
            }
            Kind::Reminder => return self.check_reminder(key, n),
            // PLANS.md §5.2: at a deadline, naming at least one unit.
            Kind::ReportOverdue => {
                let local =
                    n.at.with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).unwrap());
                let units = n.evidence["units"].as_array().map_or(0, Vec::len);
                if local.time() != self.feedback_time || units == 0 {
                    return Err(format!("{} at {} names {units} units", n.id, fmt_ts(n.at)));
                }
            }
            Kind::Suggestion => return Ok(()),
            _ => {}
        }
        let cur = self.levels.get(key).map_or("none", String::as_str);
        let mut allowed = vec![match n.kind {
            Kind::ReportFinal => self.ended.get(key).map_or("?", String::as_str),
            _ => cur,
        }];
        if matches!(n.kind, Kind::DataGap | Kind::DataResumed) {
            allowed.extend(
                rest.iter()
                    .filter(|m| m.at == n.at && m.kind.is_move())
                    .filter(|m| format!("{}/{}/{}", m.plan.as_str(), m.region, m.track) == key)
                    .map(|m| m.level.as_str()),
            );
        }
        if !allowed.contains(&n.level.as_str()) {
            return Err(format!(
                "{} ({:?}) has level {} where the track is at {allowed:?}",
                n.id, n.kind, n.level
            ));
        }
        Ok(())
    }

    /// PLANS.md §5.1 / §2 rule 6: a move naming a proposal makes that proposal's move (its
    /// track, its level, once); with `l1_by_commander` every coal move into or out of L1
    /// names one, except `manual none` ending a manual warning (§4.2.3 alone).
    fn check_decided(&mut self, key: &str, n: &Notice, prev: &str) -> Check {
        if let Some(pid) = &n.proposal_id {
            match self.proposals.remove(pid) {
                Some((at, level, k, _)) if k == key && level == n.level && at <= n.at => {}
                p => return Err(format!("{} makes the move of {pid}, which was {p:?}", n.id)),
            }
        } else if self.commander
            && n.plan.as_str() == "coal_supply"
            && (n.level == "L1" || prev == "L1")
            && (n.kind != Kind::Terminate || n.clause.contains("§5.4"))
        {
            return Err(format!(
                "{} ({:?} {prev} -> {}) without the commander's approval",
                n.id, n.kind, n.level
            ));
        }
        Ok(())
    }

    /// PLANS.md §2 rule 6: one reminder, `reminder_hours` after the proposal it names, with
    /// its level.
    fn check_reminder(&mut self, key: &str, n: &Notice) -> Check {
        let pid = n.proposal_id.clone().unwrap_or_default();
        let after = self.reminder_after;
        let Some(p) = self.proposals.get_mut(&pid) else {
            return Err(format!("reminder {} names {pid}, never proposed", n.id));
        };
        if p.3 || p.2 != key || p.1 != n.level || n.at != p.0 + after {
            return Err(format!(
                "reminder {} ({} at {}) for {pid} ({} at {}, reminded {})",
                n.id,
                n.level,
                fmt_ts(n.at),
                p.1,
                fmt_ts(p.0),
                p.3
            ));
        }
        p.3 = true;
        Ok(())
    }

    fn check_call(&mut self, key: &str, n: &Notice) -> Check {
        let (cid, person) = (
            n.call_id.clone().unwrap_or_default(),
            n.person.clone().unwrap_or_default(),
        );
        let attempt = n.attempt.unwrap_or(0);
        let rkey = (n.region.clone(), cid.clone());
        if n.kind == Kind::Call && attempt == 1 && !self.rounds.contains_key(&rkey) {
            let colour = self.levels.get(key).cloned().unwrap_or_default();
            self.rounds.insert(
                rkey.clone(),
                Round {
                    track: key.to_string(),
                    colour,
                    t0: n.at,
                    persons: BTreeMap::new(),
                    closed: false,
                },
            );
        }
        let (timeout, retry, attempts) = (self.timeout, self.retry, self.attempts);
        let Some(r) = self.rounds.get_mut(&rkey) else {
            return Err(format!(
                "{} ({:?}) for call {cid} whose round never started",
                n.id, n.kind
            ));
        };
        if r.closed || r.track != key || n.level != r.colour {
            return Err(format!(
                "{} ({:?}, level {}) for round {cid} of {} (colour {}, closed {})",
                n.id, n.kind, n.level, r.track, r.colour, r.closed
            ));
        }
        let p = r.persons.entry(person.clone()).or_insert((0, false, false));
        let due = match n.kind {
            Kind::Call => {
                if attempt != p.0 + 1 || attempt > attempts + 1 || p.1 || p.2 {
                    return Err(format!(
                        "{}: attempt {attempt} of {person} after {:?} (max {})",
                        n.id,
                        p,
                        attempts + 1
                    ));
                }
                p.0 = attempt;
                Some(if attempt == 1 {
                    r.t0
                } else {
                    r.t0 + timeout + retry * (attempt as i32 - 2)
                })
            }
            Kind::CallUnreached => {
                if p.2 || p.1 || p.0 == 0 || attempt != p.0 {
                    return Err(format!(
                        "{}: call_unreached of {person} (attempt {attempt}) after {:?}",
                        n.id, p
                    ));
                }
                p.2 = true;
                Some(r.t0 + timeout + retry * attempts as i32)
            }
            _ => {
                if p.1 || p.0 == 0 || attempt != p.0 {
                    return Err(format!(
                        "{}: call_ack of {person} (attempt {attempt}) after {:?}",
                        n.id, p
                    ));
                }
                p.1 = true;
                None
            }
        };
        match due {
            Some(d) if d != n.at => Err(format!(
                "{} ({:?} attempt {attempt} of {person}) at {} where PLANS.md §3 gives {}",
                n.id,
                n.kind,
                fmt_ts(n.at),
                fmt_ts(d)
            )),
            _ => Ok(()),
        }
    }
}

/// Rules checked from outside the engine: an independent reading of PLANS.md applied to
/// the stream (arrival times, feeds, whether an input was accepted), the config and the
/// notices, never to the engine's state.
///
/// - Moves happen only where the plans put them: coal activation and escalation at the
///   arrival of a message of that region (§1 "immediate, at the arrival"); a coal downgrade
///   or termination at a command (manual `none`, `confirm`, `approve`; with the §5 options
///   also at a data message) or at the end of a hold of exactly `lift_hold_hours` started
///   at an earlier message; pollution moves only at an air
///   message or a command (§2 "only air messages ... move the pollution tracks; timers give
///   only reports, reminders and data gaps"); weather moves only at a warning.
/// - Data gaps (§4): a silence `data_gap` at exactly last accepted arrival + period, once
///   per silence, and one whenever a feed stays silent that long; `data_resumed` exactly at
///   the next accepted message of a silent feed; a date-skip gap only at an output report.
/// - Reports (§1, §2): `report_first` with its activation, `report_final` with its
///   termination, daily `report_followup` at every `report_time` while active (none missed,
///   none extra) and, for coal, at every level change.
struct Outside {
    cfg: Arc<Config>,
    /// (region, feed) -> last accepted arrival; feeds `aqi`, `forecast`, `coal/output`,
    /// `coal/stock/{plant}`.
    last: BTreeMap<(String, String), Ts>,
    /// Feeds whose silence gap fired, with no message since.
    silent: BTreeSet<(String, String)>,
    /// Region -> arrivals of its accepted messages.
    arrivals: BTreeMap<String, BTreeSet<Ts>>,
    /// Track key -> the next daily report due while it is active.
    next_report: BTreeMap<String, Ts>,
}

/// Duration of `hours` (config values are fractional hours).
fn hours(h: f64) -> Duration {
    Duration::milliseconds((h * 3.6e6).round() as i64)
}

impl Outside {
    fn new(cfg: &Arc<Config>) -> Self {
        Outside {
            cfg: Arc::clone(cfg),
            last: BTreeMap::new(),
            silent: BTreeSet::new(),
            arrivals: BTreeMap::new(),
            next_report: BTreeMap::new(),
        }
    }

    fn period(&self, feed: &str) -> Duration {
        let (c, p) = (&self.cfg.coal, &self.cfg.pollution);
        match feed {
            "aqi" => hours(p.aqi_gap_hours),
            "forecast" => hours(p.forecast_stale_hours),
            "coal/output" => hours(c.output_gap_days * 24.0),
            _ => hours(c.stock_gap_days * 24.0),
        }
    }

    /// (region, topic after the region, feed if it has a gap clock) of a message.
    fn parts(topic: &str, payload: &[u8]) -> Option<(String, String, Option<String>)> {
        let rest = topic.strip_prefix("ers/")?;
        let (region, sub) = rest.split_once('/')?;
        let feed = match sub {
            "air/aqi" => Some("aqi".to_string()),
            "air/forecast" => Some("forecast".to_string()),
            "coal/output" => Some("coal/output".to_string()),
            "coal/stock" => serde_json::from_slice::<Value>(payload)
                .ok()
                .and_then(|v| v["plant"].as_str().map(|p| format!("coal/stock/{p}"))),
            _ => None,
        };
        Some((region.to_string(), sub.to_string(), feed))
    }

    /// The first `report_time` strictly after `t`.
    fn report_after(&self, t: Ts) -> Ts {
        let d = t.date_naive().and_time(self.cfg.report_time);
        let at = chrono::TimeZone::from_local_datetime(&yingji::time::cst(), &d)
            .single()
            .expect("fixed offset");
        if at <= t {
            at + Duration::days(1)
        } else {
            at
        }
    }

    fn step(&mut self, ev: &Event, rejected: bool, ns: &[Notice], now: Ts) -> Check {
        let here = match ev {
            Event::Msg { at, topic, payload } if !rejected => {
                Self::parts(topic, payload).map(|(r, sub, feed)| (*at, r, sub, feed))
            }
            _ => None,
        };
        let at_msg = |n: &Notice, subs: &[&str]| {
            here.as_ref().is_some_and(|(at, r, sub, _)| {
                *at == n.at && *r == n.region && subs.iter().any(|s| sub.starts_with(s))
            })
        };
        for (i, n) in ns.iter().enumerate() {
            let key = format!("{}/{}/{}", n.plan.as_str(), n.region, n.track);
            let same_instant = |k: Kind| {
                ns[..i].iter().any(|m| {
                    m.kind == k
                        && m.at == n.at
                        && format!("{}/{}/{}", m.plan.as_str(), m.region, m.track) == key
                })
            };
            let what = || {
                format!(
                    "{} ({} {} at {})",
                    n.id,
                    n.kind.as_str(),
                    n.level,
                    fmt_ts(n.at)
                )
            };
            match (n.plan, n.kind) {
                (yingji::Plan::CoalSupply, Kind::Activate | Kind::Escalate)
                    if !at_msg(n, &["coal/", "cmd"]) =>
                {
                    return Err(format!("{}: a coal move up not at a message", what()));
                }
                (yingji::Plan::CoalSupply, Kind::Downgrade | Kind::Terminate) => {
                    // §5.1, §5.3: a move decided by a person (`confirm`, `approve`), a hold
                    // that waited for data (at its `data_resumed`) or a voided termination
                    // (a downgrade at the message) may also come at a data message.
                    let c = &self.cfg.coal;
                    let people =
                        c.hold_waits_for_data || c.require_confirmation || c.l1_by_commander;
                    let subs: &[&str] = if people { &["coal/", "cmd"] } else { &["cmd"] };
                    let start = n.at - hours(self.cfg.coal.lift_hold_hours);
                    let held = self
                        .arrivals
                        .get(&n.region)
                        .is_some_and(|a| a.contains(&start));
                    if !held && !at_msg(n, subs) {
                        return Err(format!(
                            "{}: neither at a command nor {} h after a message",
                            what(),
                            self.cfg.coal.lift_hold_hours
                        ));
                    }
                }
                (yingji::Plan::HeavyPollution, k)
                    if k.is_move() && !at_msg(n, &["air/", "cmd"]) =>
                {
                    return Err(format!(
                        "{}: a pollution move not at an air message or a command",
                        what()
                    ));
                }
                (yingji::Plan::SevereWeather, k)
                    if k.is_move() && !at_msg(n, &["weather/warning"]) =>
                {
                    return Err(format!("{}: a weather move not at a warning", what()));
                }
                (_, Kind::ReportFirst) if !same_instant(Kind::Activate) => {
                    return Err(format!("{}: no activation with it", what()));
                }
                (_, Kind::ReportFinal) if !same_instant(Kind::Terminate) => {
                    return Err(format!("{}: no termination with it", what()));
                }
                (plan, Kind::ReportFollowup) => {
                    if self.next_report.get(&key) == Some(&n.at) {
                        self.next_report
                            .insert(key.clone(), n.at + Duration::days(1));
                    } else {
                        let moved = plan == yingji::Plan::CoalSupply
                            && (same_instant(Kind::Escalate) || same_instant(Kind::Downgrade));
                        if !moved {
                            return Err(format!(
                                "{}: neither the daily report due ({:?}) nor at a level change",
                                what(),
                                self.next_report.get(&key).map(|t| fmt_ts(*t))
                            ));
                        }
                    }
                }
                (_, Kind::DataGap) if n.evidence.get("missing_dates").is_some() => {
                    if at_msg(n, &["coal/output"]) {
                        continue;
                    }
                    return Err(format!(
                        "{}: a date-skip gap not at an output report",
                        what()
                    ));
                }
                (_, Kind::DataGap | Kind::DataResumed) => {
                    let feed = match (n.evidence["feed"].as_str(), n.evidence["plant"].as_str()) {
                        (Some(f), Some(p)) => format!("{f}/{p}"),
                        (Some(f), None) => f.to_string(),
                        _ => return Err(format!("{}: no feed in the evidence", what())),
                    };
                    let fk = (n.region.clone(), feed.clone());
                    if n.kind == Kind::DataGap {
                        let due = self.last.get(&fk).map(|l| *l + self.period(&feed));
                        if due != Some(n.at) || self.silent.contains(&fk) {
                            return Err(format!(
                                "{}: a gap of {feed} where last arrival + period is {:?} (silent already: {})",
                                what(),
                                due.map(fmt_ts),
                                self.silent.contains(&fk)
                            ));
                        }
                        self.silent.insert(fk);
                    } else {
                        let at_feed = here.as_ref().is_some_and(|(at, r, _, f)| {
                            *at == n.at && *r == n.region && f.as_deref() == Some(feed.as_str())
                        });
                        if !self.silent.remove(&fk) || !at_feed {
                            return Err(format!(
                                "{}: {feed} resumed but was not silent, or not at its message",
                                what()
                            ));
                        }
                    }
                }
                _ => {}
            }
            let reports = matches!(n.plan, yingji::Plan::CoalSupply)
                || (n.plan == yingji::Plan::HeavyPollution && n.track != "so2");
            match n.kind {
                Kind::Activate if reports => {
                    self.next_report.insert(key, self.report_after(n.at));
                }
                Kind::Terminate => {
                    if let Some(due) = self.next_report.remove(&key) {
                        if due < n.at {
                            return Err(format!(
                                "{}: daily report of {} missed",
                                what(),
                                fmt_ts(due)
                            ));
                        }
                    }
                }
                _ => {}
            }
        }
        if let Some((at, region, _, feed)) = &here {
            self.arrivals.entry(region.clone()).or_default().insert(*at);
            if let Some(f) = feed {
                let fk = (region.clone(), f.clone());
                if self.silent.contains(&fk) {
                    return Err(format!(
                        "{f} of {region} silent, and no data_resumed at its message at {}",
                        fmt_ts(*at)
                    ));
                }
                self.last.insert(fk, *at);
            }
        }
        for ((region, feed), l) in &self.last {
            let due = *l + self.period(feed);
            if due <= now && !self.silent.contains(&(region.clone(), feed.clone())) {
                return Err(format!(
                    "{feed} of {region} silent since {}: no data_gap at {}",
                    fmt_ts(*l),
                    fmt_ts(due)
                ));
            }
        }
        for (key, due) in &self.next_report {
            if *due <= now {
                return Err(format!("{key}: daily report of {} missed", fmt_ts(*due)));
            }
        }
        Ok(())
    }
}

fn check_shape(n: &Notice) -> Check {
    if n.kind.is_move() && n.previous.is_none() {
        return Err(format!("move {} ({:?}) has no previous", n.id, n.kind));
    }
    if !n.kind.is_move() && n.previous.is_some() {
        return Err(format!(
            "{} ({:?}) is not a move but has previous",
            n.id, n.kind
        ));
    }
    if n.kind == Kind::Terminate && n.level != "none" {
        return Err(format!("terminate {} has level {}", n.id, n.level));
    }
    if n.kind == Kind::Activate && n.previous.as_deref() != Some("none") {
        return Err(format!("activate {} has previous {:?}", n.id, n.previous));
    }
    if n.kind.is_move() && n.previous.as_deref() == Some(n.level.as_str()) {
        return Err(format!(
            "move {} ({:?}) from {} to the same level",
            n.id, n.kind, n.level
        ));
    }
    if matches!(n.kind, Kind::Call | Kind::CallAck | Kind::CallUnreached) {
        let ok = n.call_id.is_some() && n.person.is_some() && n.attempt.is_some();
        let ch = matches!(n.channel.as_deref(), Some("wechat" | "phone"));
        if !ok || !ch {
            return Err(format!(
                "call kind {} lacks call_id/person/channel/attempt",
                n.id
            ));
        }
    }
    if n.clause.is_empty() || n.reason.is_empty() {
        return Err(format!("{} has an empty clause or reason", n.id));
    }
    Ok(())
}

fn json_lines(ns: &[Notice]) -> Vec<String> {
    ns.iter().map(Notice::to_json_line).collect()
}

/// Applies one event; returns the notices and whether the input was rejected. Checks that a
/// rejected input changes nothing but the time.
fn apply(cfg: &Config, e: &mut Engine, ev: &Event) -> Result<(Vec<Notice>, bool), String> {
    match ev {
        Event::End { at } => {
            let ns = e.advance_to(*at);
            let again = e.advance_to(*at);
            if !again.is_empty() {
                return Err(format!(
                    "advance_to({}) twice gave {} notices",
                    fmt_ts(*at),
                    again.len()
                ));
            }
            Ok((ns, false))
        }
        Event::Msg { at, topic, payload } => {
            let shadow = e.clone();
            let (ns, rejected) = match input::parse(cfg, topic, payload, *at) {
                Ok(msg) => {
                    let step = e.handle(*at, &msg);
                    (step.notices, step.rejection.is_some())
                }
                Err(_) => (e.advance_to(*at), true),
            };
            if rejected {
                unchanged(shadow, e, *at, &ns)?;
            }
            Ok((ns, rejected))
        }
    }
}

/// A rejected message: the engine must equal a clone advanced to the same time.
fn unchanged(mut shadow: Engine, e: &Engine, at: Ts, ns: &[Notice]) -> Check {
    let shadow_ns = shadow.advance_to(at);
    if json_lines(&shadow_ns) != json_lines(ns) {
        return Err(format!(
            "rejected message made notices: {:?}",
            ns.iter().map(|n| &n.id).collect::<Vec<_>>()
        ));
    }
    if shadow.snapshot() != e.snapshot() {
        let diff = first_diff(&shadow.snapshot(), &e.snapshot());
        return Err(format!(
            "rejected message changed the state (without it / with it) {diff}"
        ));
    }
    Ok(())
}

fn after_step(e: &mut Engine) -> Check {
    let Some(now) = e.now() else {
        return Ok(());
    };
    let again = e.advance_to(now);
    if !again.is_empty() {
        return Err(format!(
            "advance_to(now) after a step gave {} notices",
            again.len()
        ));
    }
    if let Some((due, why)) = e.next_deadline() {
        if due <= now {
            return Err(format!(
                "next_deadline {} ({why}) not after now {}",
                fmt_ts(due),
                fmt_ts(now)
            ));
        }
    }
    Ok(())
}

/// Runs `events[from..]` on `e`, checking every step. `snap_at` lists steps after which to
/// snapshot (and check the snapshot round-trips).
fn run(
    cfg: &Arc<Config>,
    mut e: Engine,
    events: &[Event],
    from: usize,
    snap_at: &BTreeSet<usize>,
    checker: &mut NoticeChecker,
    sem: &mut Semantics,
) -> Result<Run, (usize, String)> {
    let mut out = Run {
        steps: Vec::new(),
        snapshots: Vec::new(),
        final_snapshot: Vec::new(),
        rejected: 0,
    };
    for (i, ev) in events.iter().enumerate().skip(from) {
        let mut step = || -> Result<Vec<Notice>, String> {
            let (ns, rejected) = apply(cfg, &mut e, ev)?;
            out.rejected += rejected as usize;
            let now = e.now().expect("advanced");
            for n in &ns {
                checker.check(n, now)?;
            }
            sem.check_step(&ns)?;
            if let Some(o) = sem.outside.as_mut() {
                o.step(ev, rejected, &ns, now)?;
            }
            after_step(&mut e)?;
            Ok(ns)
        };
        let ns = catch_unwind(AssertUnwindSafe(&mut step))
            .unwrap_or_else(|p| Err(format!("panic: {}", panic_text(&p))))
            .map_err(|m| (i, m))?;
        out.steps.push(json_lines(&ns));
        if snap_at.contains(&i) {
            let s = e.snapshot();
            let back =
                Engine::restore(Arc::clone(cfg), &s).map_err(|x| (i, format!("restore: {x}")))?;
            if back.snapshot() != s {
                let diff = first_diff(&s, &back.snapshot());
                return Err((i, format!("snapshot does not round-trip: {diff}")));
            }
            out.snapshots.push((i, s));
        }
    }
    out.final_snapshot = e.snapshot();
    Ok(out)
}

/// What one seed exercised.
#[derive(Default)]
struct Tally {
    events: usize,
    notices: usize,
    rejected: usize,
    /// Notices by `plan:track:kind`.
    kinds: BTreeMap<String, usize>,
}

impl Tally {
    fn add(&mut self, o: Tally) {
        self.events += o.events;
        self.notices += o.notices;
        self.rejected += o.rejected;
        for (k, n) in o.kinds {
            *self.kinds.entry(k).or_insert(0) += n;
        }
    }
}

/// Everything one seed checks.
fn run_seed(seed: u64, n_events: usize) -> Result<Tally, Failure> {
    let fail = |step, what| Failure { seed, step, what };
    let two = seed % 3 == 0;
    let (gen, cfg_text) = Gen::new(seed, two);
    let events = gen.stream(n_events);
    let cfg = Arc::new(
        Config::from_toml(&cfg_text)
            .map_err(|e| fail(0, format!("config: {e:?}")))?
            .config,
    );
    let guard = |f: &mut dyn FnMut() -> Result<Run, (usize, String)>| {
        catch_unwind(AssertUnwindSafe(f))
            .unwrap_or_else(|p| Err((usize::MAX, format!("panic: {}", panic_text(&p)))))
            .map_err(|(s, m)| fail(s, m))
    };
    let mut rng = Rng::new(seed.wrapping_mul(31).wrapping_add(7));
    let snap_at: BTreeSet<usize> = (0..3)
        .map(|_| rng.below(events.len() as u64) as usize)
        .collect();
    let first = guard(&mut || {
        let (mut ck, mut sem) = (NoticeChecker::default(), Semantics::new(&cfg));
        sem.outside = Some(Outside::new(&cfg));
        let e = Engine::new(Arc::clone(&cfg));
        run(&cfg, e, &events, 0, &snap_at, &mut ck, &mut sem)
    })
    .inspect_err(|f| dump(seed, &cfg_text, &events, f))?;
    let second = guard(&mut || {
        let (mut ck, mut sem) = (NoticeChecker::default(), Semantics::new(&cfg));
        let e = Engine::new(Arc::clone(&cfg));
        run(&cfg, e, &events, 0, &BTreeSet::new(), &mut ck, &mut sem)
    })?;
    let all: Vec<&String> = first.steps.iter().flatten().collect();
    let result = check_same(&first, &second, 0, "second run of the same seed")
        .and_then(|_| restarts(&cfg, &events, &first))
        .and_then(|_| replay_matches(&cfg, &events, &all))
        .and_then(|_| isolation(&cfg, &events, &all))
        .map_err(|(s, m)| fail(s, m));
    if let Err(f) = &result {
        dump(seed, &cfg_text, &events, f);
    }
    let mut kinds = BTreeMap::new();
    for line in &all {
        let v: Value = serde_json::from_str(line).expect("own JSON");
        let k = format!(
            "{}:{}:{}",
            v["plan"].as_str().unwrap_or(""),
            v["track"].as_str().unwrap_or(""),
            v["kind"].as_str().unwrap_or("")
        );
        *kinds.entry(k).or_insert(0usize) += 1;
    }
    result.map(|_| Tally {
        events: events.len(),
        notices: all.len(),
        rejected: first.rejected,
        kinds,
    })
}

fn check_same(a: &Run, b: &Run, from: usize, what: &str) -> Result<(), (usize, String)> {
    for (k, (x, y)) in a.steps[from..].iter().zip(&b.steps).enumerate() {
        if x != y {
            return Err((
                from + k,
                format!("{what}: notices differ\nfirst:  {x:#?}\nsecond: {y:#?}"),
            ));
        }
    }
    if a.steps.len() - from != b.steps.len() {
        return Err((from, format!("{what}: different number of steps")));
    }
    if a.final_snapshot != b.final_snapshot {
        let diff = first_diff(&a.final_snapshot, &b.final_snapshot);
        return Err((a.steps.len(), format!("{what}: final states differ {diff}")));
    }
    Ok(())
}

/// Crash/restart: restore each snapshot and continue with the remaining events.
fn restarts(cfg: &Arc<Config>, events: &[Event], first: &Run) -> Result<(), (usize, String)> {
    for (i, snap) in &first.snapshots {
        let e =
            Engine::restore(Arc::clone(cfg), snap).map_err(|x| (*i, format!("restore: {x}")))?;
        let mut ck = NoticeChecker::default();
        let mut sem = Semantics::new(cfg);
        // The restored engine's notices continue the numbering: seed the checkers from the
        // notices the first run made up to the snapshot.
        for step in &first.steps[..=*i] {
            let ns: Vec<Notice> = step
                .iter()
                .map(|l| serde_json::from_str(l).expect("own JSON"))
                .collect();
            for n in &ns {
                ck.check(n, n.at).map_err(|m| (*i, m))?;
            }
            sem.check_step(&ns).map_err(|m| (*i, m))?;
        }
        let rest = catch_unwind(AssertUnwindSafe(|| {
            run(cfg, e, events, i + 1, &BTreeSet::new(), &mut ck, &mut sem)
        }))
        .unwrap_or_else(|p| Err((usize::MAX, format!("panic: {}", panic_text(&p)))))?;
        check_same(
            first,
            &rest,
            i + 1,
            &format!("engine restored after step {i}"),
        )?;
    }
    Ok(())
}

/// The same stream as a scenario file through `replay` gives the same notices.
/// Regions are independent: the stream without the second region's messages gives exactly
/// the first region's notices (timers fire at their due times whatever arrives between).
fn isolation(cfg: &Arc<Config>, events: &[Event], all: &[&String]) -> Result<(), (usize, String)> {
    if cfg.regions.len() < 2 {
        return Ok(());
    }
    let other = format!("/{}/", cfg.regions[1].id);
    let only: Vec<Event> = events
        .iter()
        .filter(|e| !matches!(e, Event::Msg { topic, .. } if topic.contains(&other)))
        .cloned()
        .collect();
    let text: String = only.iter().map(|e| e.scenario_line() + "\n").collect();
    let ns = replay::replay_str(cfg, &text).map_err(|e| (0, format!("replay: {e}")))?;
    let got = json_lines(&ns);
    let first = &cfg.regions[0].id;
    let want: Vec<&String> = all
        .iter()
        .copied()
        .filter(|l| serde_json::from_str::<Notice>(l).is_ok_and(|n| &n.region == first))
        .collect();
    if got.len() != want.len() || got.iter().zip(&want).any(|(a, b)| a != *b) {
        let k = got.iter().zip(&want).take_while(|(a, b)| a == *b).count();
        return Err((
            0,
            format!(
                "{first} alone differs from {first} beside {} at its notice {k}: {:?} vs {:?}",
                cfg.regions[1].id,
                got.get(k),
                want.get(k)
            ),
        ));
    }
    Ok(())
}

fn replay_matches(
    cfg: &Arc<Config>,
    events: &[Event],
    all: &[&String],
) -> Result<(), (usize, String)> {
    let text: String = events.iter().map(|e| e.scenario_line() + "\n").collect();
    let ns = replay::replay_str(cfg, &text).map_err(|e| (0, format!("replay: {e}")))?;
    let got = json_lines(&ns);
    if got.len() != all.len() || got.iter().zip(all).any(|(a, b)| a != *b) {
        let k = got.iter().zip(all).take_while(|(a, b)| a == *b).count();
        return Err((
            0,
            format!(
                "replay of the stream differs at notice {k}: {:?} vs {:?}",
                got.get(k),
                all.get(k)
            ),
        ));
    }
    Ok(())
}

/// The neighbourhood of the first difference of two JSON texts.
fn first_diff(a: &[u8], b: &[u8]) -> String {
    let k = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let part = |s: &[u8]| {
        String::from_utf8_lossy(&s[k.saturating_sub(200)..(k + 120).min(s.len())]).into_owned()
    };
    format!("at byte {k}\nbefore: …{}…\nafter:  …{}…", part(a), part(b))
}

fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "(non-string panic)".into())
}

/// Writes the failing stream as a scenario + config for `yingji replay`.
fn dump(seed: u64, cfg_text: &str, events: &[Event], f: &Failure) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/sim-failures");
    let _ = std::fs::create_dir_all(&dir);
    let mut text = format!(
        "// seed {seed}: step {}: {}\n",
        f.step,
        f.what.lines().next().unwrap_or("")
    );
    for (i, e) in events.iter().enumerate() {
        text.push_str(&format!("// step {i}\n{}\n", e.scenario_line()));
    }
    let _ = std::fs::write(dir.join(format!("seed-{seed}.jsonl")), text);
    let _ = std::fs::write(dir.join(format!("seed-{seed}.toml")), cfg_text);
}

fn env_u64(k: &str) -> Option<u64> {
    std::env::var(k).ok().and_then(|v| v.trim().parse().ok())
}

#[test]
fn simulation_seeds() {
    let seeds: Vec<u64> = match env_u64("YINGJI_SIM_SEED") {
        Some(s) => vec![s],
        None => {
            let first = env_u64("YINGJI_SIM_FIRST").unwrap_or(1);
            (first..first + env_u64("YINGJI_SIM_SEEDS").unwrap_or(12)).collect()
        }
    };
    let n_events = env_u64("YINGJI_SIM_EVENTS").unwrap_or(300) as usize;
    let mut failures = Vec::new();
    let mut tally = Tally::default();
    for &seed in &seeds {
        match run_seed(seed, n_events) {
            Ok(t) => tally.add(t),
            Err(f) => failures.push(f),
        }
    }
    eprintln!(
        "simulation: {} seeds, {} events, {} notices, {} rejected\n{:?}",
        seeds.len(),
        tally.events,
        tally.notices,
        tally.rejected,
        tally.kinds
    );
    assert!(
        failures.is_empty(),
        "{} of {} seeds failed (reproduce with YINGJI_SIM_SEED=S; scenario and config in target/sim-failures/):\n{}",
        failures.len(),
        seeds.len(),
        failures
            .iter()
            .map(|f| format!("seed {} step {}: {}", f.seed, f.step, f.what))
            .collect::<Vec<_>>()
            .join("\n\n")
    );
    if seeds.len() > 1 {
        // The generator must reach the rules, not just the parser: every track, and the
        // kinds the invariants above are about (`plan:track:kind`, track `*` for any).
        for k in [
            "coal_supply:supply:activate",
            "coal_supply:supply:escalate",
            "coal_supply:supply:downgrade",
            "coal_supply:supply:terminate",
            "coal_supply:supply:report_followup",
            "coal_supply:supply:target_missed",
            "coal_supply:supply:beyond_level1",
            "coal_supply:supply:data_gap",
            "coal_supply:supply:data_resumed",
            "heavy_pollution:graded:activate",
            "heavy_pollution:graded:escalate",
            "heavy_pollution:graded:downgrade",
            "heavy_pollution:graded:terminate",
            "heavy_pollution:graded:proposal",
            "heavy_pollution:graded:reminder",
            "heavy_pollution:graded:report_followup",
            "heavy_pollution:graded:report_final",
            "heavy_pollution:graded:data_gap",
            "heavy_pollution:graded:data_resumed",
            "heavy_pollution:ozone:activate",
            "heavy_pollution:so2:activate",
            "heavy_pollution:so2:terminate",
            "severe_weather:*:activate",
            "severe_weather:*:call",
            "severe_weather:*:call_ack",
            "severe_weather:*:call_unreached",
            "severe_weather:*:suggestion",
            "severe_weather:*:terminate",
        ] {
            let mut p = k.split(':');
            let (plan, track, kind) = (p.next().unwrap(), p.next().unwrap(), p.next().unwrap());
            let seen = tally.kinds.keys().any(|x| {
                let q: Vec<&str> = x.split(':').collect();
                q.len() == 3 && q[0] == plan && (track == "*" || q[1] == track) && q[2] == kind
            });
            assert!(seen, "no {k} in {:?}", tally.kinds);
        }
        assert!(tally.rejected > 0);
    }
}

/// The generator itself is deterministic and keeps arrivals in order (a check of the
/// checker: a stream out of order would make the other invariants meaningless).
#[test]
fn generator_is_deterministic_and_ordered() {
    let a = Gen::new(42, true).0.stream(300);
    let b = Gen::new(42, true).0.stream(300);
    let la: Vec<String> = a.iter().map(Event::scenario_line).collect();
    let lb: Vec<String> = b.iter().map(Event::scenario_line).collect();
    assert_eq!(la, lb);
    assert!(a.windows(2).all(|w| w[0].at() <= w[1].at()));
    assert!(la.iter().any(|l| l.contains("/pinglu/")));
    assert!(la.iter().any(|l| l.contains("\"end\"")));
}

/// The checker catches what it is meant to catch.
#[test]
fn checker_rejects_bad_notices() {
    let t = parse_ts("2023-12-01T09:00:00+08:00").unwrap();
    let mut n = Notice::new(yingji::Plan::CoalSupply, "supply", Kind::Activate, "L2")
        .previous("none")
        .clause("§4.2.1")
        .reason("测试");
    n.id = "coal_supply/shuozhou/supply/1".into();
    n.region = "shuozhou".into();
    n.at = t;
    let mut ck = NoticeChecker::default();
    assert!(ck.check(&n, t).is_ok());
    assert!(ck.check(&n, t).unwrap_err().contains("duplicate"));
    let mut skip = n.clone();
    skip.id = "coal_supply/shuozhou/supply/3".into();
    assert!(ck.check(&skip, t).unwrap_err().contains("was due"));
    let mut term = n.clone();
    term.kind = Kind::Terminate;
    term.level = "L2".into();
    assert!(check_shape(&term).unwrap_err().contains("level"));
    let mut late = n.clone();
    late.at = t + Duration::hours(1);
    let mut ck2 = NoticeChecker::default();
    assert!(ck2
        .check(&late, t)
        .unwrap_err()
        .contains("after the engine's time"));
}

/// The outside checker catches a gap, a hold and a report out of place.
#[test]
fn outside_rejects_gaps_holds_and_reports_out_of_place() {
    // The stock feed's own gap (3 days) would fall at the end of the hold: moved away.
    let cfg = Arc::new(
        Config::from_toml("[coal]\nstock_gap_days = 10\n")
            .unwrap()
            .config,
    );
    let t0 = parse_ts("2023-12-01T09:05:00+08:00").unwrap();
    let aqi = Event::Msg {
        at: t0,
        topic: "ers/shuozhou/air/aqi".into(),
        payload: br#"{"ts": "2023-12-01T09:00:00+08:00", "aqi": 80}"#.to_vec(),
    };
    let notice = |plan, track: &str, kind, level: &str, at: Ts| {
        let mut n = Notice::new(plan, track, kind, level);
        n.region = "shuozhou".into();
        n.at = at;
        n
    };
    let gap = |at: Ts| {
        let mut n = notice(
            yingji::Plan::HeavyPollution,
            "graded",
            Kind::DataGap,
            "none",
            at,
        );
        n.evidence = json!({"feed": "aqi", "plant": null});
        n
    };
    let end = |at: Ts| Event::End { at };
    let fresh = || {
        let mut o = Outside::new(&cfg);
        o.step(&aqi, false, &[], t0).unwrap();
        o
    };
    // At exactly last arrival + 3 h: right; once per silence.
    let due = t0 + Duration::hours(3);
    let mut o = fresh();
    o.step(&end(due), false, &[gap(due)], due).unwrap();
    let again = o.step(&end(due), false, &[gap(due)], due).unwrap_err();
    assert!(again.contains("silent already: true"), "{again}");
    // A minute early, or missing.
    let early = due - Duration::minutes(1);
    let e = fresh().step(&end(early), false, &[gap(early)], early);
    assert!(e.unwrap_err().contains("last arrival + period"));
    let e = fresh().step(&end(due), false, &[], due);
    assert!(e.unwrap_err().contains("no data_gap"));
    // A rejected reading starts no clock.
    let mut o = Outside::new(&cfg);
    o.step(&aqi, true, &[], t0).unwrap();
    o.step(&end(due), false, &[], due).unwrap();
    // A coal termination an hour before the end of a hold that started at a message.
    let stock = Event::Msg {
        at: t0,
        topic: "ers/shuozhou/coal/stock".into(),
        payload: br#"{"ts": "2023-12-01T09:00:00+08:00", "plant": "A", "stock_days": 25}"#.to_vec(),
    };
    let mut o = Outside::new(&cfg);
    o.step(&stock, false, &[], t0).unwrap();
    let at = t0 + Duration::hours(71);
    let mut term = notice(
        yingji::Plan::CoalSupply,
        "supply",
        Kind::Terminate,
        "none",
        at,
    );
    term.previous = Some("L2".into());
    let e = o.step(&end(at), false, &[term.clone()], at).unwrap_err();
    assert!(e.contains("h after a message"), "{e}");
    let at = t0 + Duration::hours(72);
    term.at = at;
    let mut o = Outside::new(&cfg);
    o.step(&stock, false, &[], t0).unwrap();
    o.step(&end(at), false, &[term], at).unwrap();
    // A pollution move at a timer; a daily report not due.
    let mut act = notice(
        yingji::Plan::HeavyPollution,
        "graded",
        Kind::Activate,
        "yellow",
        due,
    );
    act.previous = Some("none".into());
    let e = fresh().step(&end(due), false, &[gap(due), act], due);
    assert!(e.unwrap_err().contains("not at an air message"));
    let rep = notice(
        yingji::Plan::CoalSupply,
        "supply",
        Kind::ReportFollowup,
        "L2",
        t0,
    );
    let e = fresh().step(&aqi, false, &[rep], t0);
    assert!(e.unwrap_err().contains("neither the daily report"));
}

/// Regression (found by seed 13 once the pollution plan landed): a snapshot must restore
/// to exactly the same state. serde_json's default float parser may be 1 ulp off for
/// 17-digit numbers, so a 24-hour mean of 4840/24 = 201.66666666666666 came back as
/// …663 (the episode's peak M), and a restored daemon could make different notices. Fixed
/// by serde_json's `float_roundtrip` feature.
#[test]
fn snapshot_float_round_trip() {
    let cfg = Arc::new(Config::from_toml("").unwrap().config);
    let mut e = Engine::new(Arc::clone(&cfg));
    let t0 = parse_ts("2023-12-01T00:00:00+08:00").unwrap();
    for h in 1..=24 {
        let stamp = t0 + Duration::hours(h);
        // M rises hour by hour to (20·201 + 4·205)/24 = 201.666…, the episode's peak.
        let aqi = if h <= 20 { 201 } else { 205 };
        let p = json!({"ts": fmt_ts(stamp), "aqi": aqi, "primary": "PM2.5"}).to_string();
        let at = stamp + Duration::minutes(5);
        let msg = input::parse(&cfg, "ers/shuozhou/air/aqi", p.as_bytes(), at).unwrap();
        e.handle(at, &msg);
    }
    let snap = e.snapshot();
    assert!(
        String::from_utf8_lossy(&snap).contains("201.66666666666666"),
        "the mean 4840/24 is in the state: {}",
        String::from_utf8_lossy(&snap)
    );
    let back = Engine::restore(Arc::clone(&cfg), &snap).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&back.snapshot()),
        String::from_utf8_lossy(&snap)
    );
    // The property the snapshot relies on, over many awkward floats.
    let mut rng = Rng::new(13);
    for _ in 0..10_000 {
        let x = f64::from_bits(rng.next() >> 2) * rng.float(0.0, 1.0);
        let y = rng.float(0.0, 1000.0) / 3.0;
        for v in [x, y] {
            let text = serde_json::to_string(&v).unwrap();
            assert_eq!(
                serde_json::from_str::<f64>(&text).unwrap().to_bits(),
                v.to_bits(),
                "{text}"
            );
        }
    }
}
