//! Benchmarks of the core (docs/performance.md):
//! - `parse/*`: `input::parse` of each payload kind;
//! - `handle/stream`: `Engine::handle` over a generated stream of pre-parsed messages;
//! - `replay/scenario`: `replay::run_scenario` over an in-memory generated scenario.
//!
//! `cargo bench --bench engine` (add `-- parse` etc. to filter).

#![warn(clippy::too_many_lines)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use chrono::Duration as Span;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use serde_json::{json, Value};
use yingji::config::Config;
use yingji::engine::Engine;
use yingji::input::{self, Message};
use yingji::replay;
use yingji::time::{fmt_ts, local_date, parse_ts, Ts};

const CONFIG: &str = r#"
[[contact]]
id = "yjj"
name = "张应急"
unit = "市应急管理局"
tier = "A"
role = "emergency"
wechat = "zhangyj"
phone = "+8613800000001"

[[contact]]
id = "sz-fq"
name = "李副市长"
unit = "市政府"
tier = "B"
role = "leader_flood"
wechat = "lifsz"
phone = "+8613800000002"
"#;

fn cfg() -> Arc<Config> {
    Arc::new(Config::from_toml(CONFIG).expect("bench config").config)
}

fn t0() -> Ts {
    parse_ts("2023-11-01T00:00:00+08:00").expect("time")
}

/// Small deterministic PRNG (xorshift64*), so every run benchmarks the same stream.
struct Rng(u64);

impl Rng {
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + self.unit() * (hi - lo)
    }
}

/// A sample payload: (benchmark name, feed under the region's topic, payload).
type Sample = (&'static str, &'static str, Value);

const SAMPLE_TS: &str = "2023-12-01T08:00:00+08:00";

/// One sample payload per topic kind.
fn samples() -> Vec<Sample> {
    let mut all = coal_samples();
    all.extend(air_samples());
    all.extend(weather_and_command_samples());
    all
}

fn coal_samples() -> Vec<Sample> {
    let t = SAMPLE_TS;
    vec![
        (
            "coal_stock",
            "coal/stock",
            json!({"ts": t, "plant": "A", "stock_t": 180000, "burn_t_per_day": 10000}),
        ),
        (
            "coal_output",
            "coal/output",
            json!({"date": "2023-12-01", "output_t": 480000}),
        ),
        (
            "coal_price",
            "coal/price",
            json!({"date": "2023-12-01", "price_cny_t": 912.5}),
        ),
        (
            "coal_storage",
            "coal/storage",
            json!({"ts": t, "storage_t": 5200000}),
        ),
    ]
}

fn air_samples() -> Vec<Sample> {
    let t = SAMPLE_TS;
    let hours: Vec<Value> = (1..=72)
        .map(|k| {
            let ts = fmt_ts(t0() + Span::hours(k));
            json!({"ts": ts, "aqi": 120 + k, "primary": "PM2.5"})
        })
        .collect();
    vec![
        (
            "air_aqi",
            "air/aqi",
            json!({"ts": t, "aqi": 180, "primary": "PM2.5", "so2_ug_m3": 20}),
        ),
        (
            "air_aqi_conc",
            "air/aqi",
            json!({"ts": t, "pm25": 120, "pm10": 180, "so2": 20, "no2": 40, "co": 1.2, "o3": 60}),
        ),
        (
            "air_forecast_72h",
            "air/forecast",
            json!({"issued": t, "hours": hours}),
        ),
        (
            "air_forecast_days",
            "air/forecast",
            json!({"issued": t, "days": [
            {"date": "2023-12-02", "aqi_low": 150, "aqi_high": 210, "primary": "PM2.5"},
            {"date": "2023-12-03", "aqi": 230, "primary": "PM2.5"}]}),
        ),
        (
            "air_province",
            "air/province",
            json!({"ts": t, "action": "issue", "level": "orange", "start": t, "ref": "晋"}),
        ),
        (
            "bad_json",
            "air/aqi",
            Value::String("{\"ts\": broken".into()),
        ),
    ]
}

fn weather_and_command_samples() -> Vec<Sample> {
    let t = SAMPLE_TS;
    vec![
        (
            "weather_warning",
            "weather/warning",
            json!({"ts": t, "id": "w1", "hazard": "rainstorm", "color": "red", "action": "issue"}),
        ),
        (
            "weather_obs",
            "weather/obs",
            json!({"ts": t, "station": "st-001", "rain_mm": 12.5}),
        ),
        (
            "cmd_ack",
            "cmd",
            json!({"cmd": "ack", "call_id": "w1/1", "person": "yjj"}),
        ),
        (
            "cmd_manual",
            "cmd",
            json!({"cmd": "manual", "plan": "coal_supply", "level": "L2", "reason": "测试", "by": "x"}),
        ),
    ]
}

fn bench_parse(c: &mut Criterion) {
    let cfg = cfg();
    let at = parse_ts("2023-12-01T08:05:00+08:00").expect("time");
    let mut g = c.benchmark_group("parse");
    for (name, feed, payload) in samples() {
        let topic = format!("ers/shuozhou/{feed}");
        let bytes = match payload {
            Value::String(s) => s.into_bytes(),
            v => v.to_string().into_bytes(),
        };
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| input::parse(&cfg, black_box(&topic), black_box(&bytes), at))
        });
    }
    g.finish();
}

/// A generated scenario of `days` days: hourly AQI, station rain, forecasts every 12 h,
/// daily coal reports with stress periods, a storm with calls every 5 days, bad input.
fn scenario(days: i64, stations: usize) -> String {
    let mut g = Generator {
        rng: Rng(0x5EED),
        out: Vec::new(),
        aqi: 80.0,
    };
    for h in 0..days * 24 {
        let t = t0() + Span::hours(h);
        g.air_hour(h, t);
        g.weather_hour(h, t, stations);
        if h % 24 == 9 {
            g.coal_day(h, t);
        }
        if h % 97 == 0 {
            g.line(
                t + Span::minutes(30),
                "air/aqi",
                Value::String("{\"ts\": broken".into()),
            );
        }
    }
    g.out.sort_by_key(|(at, _)| *at);
    let mut text: String = g.out.into_iter().map(|(_, l)| l + "\n").collect();
    text.push_str(&json!({"at": fmt_ts(t0() + Span::days(days)), "end": true}).to_string());
    text.push('\n');
    text
}

/// The scenario generator's state: the random stream, the lines so far, the AQI walk.
struct Generator {
    rng: Rng,
    out: Vec<(Ts, String)>,
    aqi: f64,
}

impl Generator {
    fn line(&mut self, at: Ts, feed: &str, p: Value) {
        self.out.push((
            at,
            json!({"at": fmt_ts(at), "topic": format!("ers/shuozhou/{feed}"), "payload": p})
                .to_string(),
        ));
    }

    /// Hour `h`: the AQI reading (a walk towards a polluted stretch every 10 days) and a
    /// 72 h forecast every 12 h.
    fn air_hour(&mut self, h: i64, t: Ts) {
        let target = if (h % 240) > 72 && (h % 240) < 120 {
            260.0
        } else {
            70.0
        };
        self.aqi =
            (self.aqi + (target - self.aqi) * 0.08 + self.rng.range(-8.0, 8.0)).clamp(5.0, 480.0);
        let aqi = self.aqi;
        self.line(
            t + Span::minutes(5),
            "air/aqi",
            json!({"ts": fmt_ts(t), "aqi": aqi.round(), "primary": "PM2.5"}),
        );
        if h % 12 == 0 {
            let hours: Vec<Value> = (1..=72)
                .map(|k| json!({"ts": fmt_ts(t + Span::hours(k)), "aqi": (aqi + self.rng.range(-20.0, 20.0)).round(), "primary": "PM2.5"}))
                .collect();
            self.line(
                t + Span::minutes(10),
                "air/forecast",
                json!({"issued": fmt_ts(t), "hours": hours}),
            );
        }
    }

    /// Hour `h`: rain at every station (a 4-hour storm every 5 days) and, in the storm, an
    /// orange rainstorm warning, its first call answered, lifted 5 hours later.
    fn weather_hour(&mut self, h: i64, t: Ts, stations: usize) {
        let storm = h % 120 >= 50 && h % 120 < 54;
        for s in 0..stations {
            let rain = if storm {
                self.rng.range(20.0, 45.0)
            } else {
                0.0
            };
            self.line(
                t + Span::minutes(6),
                "weather/obs",
                json!({"ts": fmt_ts(t), "station": format!("st-{s:03}"), "rain_mm": rain.round()}),
            );
        }
        if h % 120 == 51 {
            let id = format!("w-{h}");
            self.line(
                t + Span::minutes(20),
                "weather/warning",
                json!({"ts": fmt_ts(t), "id": id, "hazard": "rainstorm", "color": "orange", "action": "issue"}),
            );
            self.line(
                t + Span::minutes(21),
                "cmd",
                json!({"cmd": "ack", "call_id": format!("{id}/1"), "person": "yjj"}),
            );
            self.line(
                t + Span::hours(5),
                "weather/warning",
                json!({"ts": fmt_ts(t + Span::hours(5)), "id": id, "hazard": "rainstorm", "action": "lift"}),
            );
        }
    }

    /// The daily coal reports (output, price, stock days), short of supply 12 days in 40.
    fn coal_day(&mut self, h: i64, t: Ts) {
        let day = local_date(t).format("%Y-%m-%d").to_string();
        let stressed = (h / 24) % 40 >= 10 && (h / 24) % 40 < 22;
        let output = if stressed {
            self.rng.range(420e3, 490e3)
        } else {
            self.rng.range(505e3, 560e3)
        };
        self.line(
            t,
            "coal/output",
            json!({"date": day, "output_t": output.round()}),
        );
        let price = self.rng.range(880.0, 920.0).round();
        self.line(
            t + Span::minutes(1),
            "coal/price",
            json!({"date": day, "price_cny_t": price}),
        );
        let days_left = if stressed {
            self.rng.range(12.0, 19.0)
        } else {
            self.rng.range(22.0, 30.0)
        };
        self.line(
            t + Span::minutes(2),
            "coal/stock",
            json!({"ts": fmt_ts(t), "plant": "A", "stock_days": days_left}),
        );
    }
}

/// The scenario's messages, parsed once (rejected ones dropped).
fn messages(cfg: &Config, text: &str) -> Vec<(Ts, Message)> {
    text.lines()
        .filter_map(|l| match replay::parse_line(l).ok()? {
            replay::Event::Message { at, topic, payload } => {
                input::parse(cfg, &topic, &payload, at)
                    .ok()
                    .map(|m| (at, m))
            }
            replay::Event::End { .. } => None,
        })
        .collect()
}

fn bench_handle(c: &mut Criterion) {
    let cfg = cfg();
    let msgs = messages(&cfg, &scenario(30, 10));
    let mut g = c.benchmark_group("handle");
    g.throughput(Throughput::Elements(msgs.len() as u64));
    g.bench_function("stream_30d", |b| {
        b.iter_batched(
            || Engine::new(Arc::clone(&cfg)),
            |mut e| {
                let mut n = 0usize;
                for (at, m) in &msgs {
                    n += e.handle(*at, m).notices.len();
                }
                (e, n)
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

fn bench_replay(c: &mut Criterion) {
    let cfg = cfg();
    let text = scenario(30, 10);
    let lines = text.lines().count() as u64;
    let mut g = c.benchmark_group("replay");
    g.throughput(Throughput::Elements(lines));
    g.bench_function("scenario_30d", |b| {
        b.iter(|| {
            let mut notices = 0u64;
            replay::run_scenario(
                &cfg,
                "bench",
                black_box(text.as_bytes()),
                &mut |_| notices += 1,
                &mut |_, _| {},
            )
            .expect("scenario runs")
        })
    });
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_parse, bench_handle, bench_replay
}
criterion_main!(benches);
