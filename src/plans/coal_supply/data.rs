//! The latest data the rules read (PLANS.md §1 "Inputs") and the feeds whose silence is
//! watched (PLANS.md §4 "Data gaps"). Only what some rule needs is kept, so a long replay
//! stays cheap: output and price history older than the rules look back is pruned.

use std::collections::BTreeMap;

use chrono::{Duration, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::config::CoalConfig;
use crate::input::{OutputReport, PriceReport, Stock, StockReport};
use crate::plans::feed::Clock;
use crate::time::Ts;

use super::Level;

/// Output dates kept behind the latest one: the 10-day run (§4.2.1) and the beyond-L1 run
/// need at most this many (the evidence of a longer run says "at least").
const OUTPUT_KEEP_DAYS: i64 = 40;

/// One million: decimal inputs are compared exactly as integer millionths.
pub const MICRO: i128 = 1_000_000;

/// `x` in millionths, as an integer (exact for decimals with up to 6 places, which is
/// what the feeds and the config carry).
pub fn micro(x: f64) -> i128 {
    let y = x * 1e6;
    // The same value as `y.round() as i128` (half away from zero, saturating, NaN 0),
    // without the libm `round` call and the software float-to-i128 conversion
    // (`__fixdfti`), which the stock rule paid several times per plant at every message.
    // Below 2^62 the truncation to i64 is exact, and so is `y - t`: the fractional bits
    // of `y` (none from 2^52 on).
    const FAST: f64 = 4_611_686_018_427_387_904.0; // 2^62
    if y.abs() < FAST {
        let t = y as i64;
        let frac = y - t as f64;
        let r = if frac >= 0.5 {
            t + 1
        } else if frac <= -0.5 {
            t - 1
        } else {
            t
        };
        i128::from(r)
    } else {
        y.round() as i128
    }
}

/// §4.2.1: "库存不足20天" (L2), "不足15天" (L1); strict.
pub const STOCK_L2_DAYS: f64 = 20.0;
pub const STOCK_L1_DAYS: f64 = 15.0;

/// §4.2.1 stock rows for one stock (cached in [`PlantStock::level`]).
fn stock_level(s: &PlantStock) -> Level {
    match s.below_each([STOCK_L1_DAYS, STOCK_L2_DAYS]) {
        [true, _] => Level::L1,
        [false, true] => Level::L2,
        _ => Level::None,
    }
}

/// A key plant's latest stock (latest by `ts`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(from = "StockFields")]
pub struct PlantStock {
    pub ts: Ts,
    /// `None` when the plant reported stock days directly.
    pub stock_t: Option<f64>,
    pub burn_t_per_day: Option<f64>,
    pub days: f64,
    /// The stock rule's level of these values (§4.2.1, [`stock_level`]), worked out
    /// once when they are stored or read back: the rule looks at every key plant at
    /// every message, and the exact comparison is the costly part. Not in snapshots.
    #[serde(skip_serializing)]
    level: Level,
}

/// [`PlantStock`] as snapshots hold it (without the level derived from it).
#[derive(Deserialize)]
struct StockFields {
    ts: Ts,
    stock_t: Option<f64>,
    burn_t_per_day: Option<f64>,
    days: f64,
}

impl From<StockFields> for PlantStock {
    fn from(f: StockFields) -> Self {
        PlantStock::new(f.ts, f.stock_t, f.burn_t_per_day, f.days)
    }
}

impl PlantStock {
    pub fn new(ts: Ts, stock_t: Option<f64>, burn_t_per_day: Option<f64>, days: f64) -> Self {
        let mut s = PlantStock {
            ts,
            stock_t,
            burn_t_per_day,
            days,
            level: Level::None,
        };
        s.level = stock_level(&s);
        s
    }

    fn from_report(r: &StockReport) -> Self {
        match r.stock {
            Stock::Tonnes {
                stock_t,
                burn_t_per_day,
            } => PlantStock::new(r.ts, Some(stock_t), Some(burn_t_per_day), r.stock.days()),
            Stock::Days(d) => PlantStock::new(r.ts, None, None, d),
        }
    }

    /// The stock rule's level of this stock (§4.2.1: below 15 days L1, below 20 L2).
    pub fn level(&self) -> Level {
        self.level
    }

    /// `days < threshold`, exactly: with tonnes, `stock_t < threshold · burn` on values
    /// scaled to millionths in integers (no division, no binary rounding: 400000 t / 20000 t
    /// a day and 666666.6 t / 33333.33 t a day are both exactly 20.0 days and do not warn).
    pub fn below(&self, threshold: f64) -> bool {
        self.below_each([threshold])[0]
    }

    /// [`PlantStock::below`] for several thresholds, the plant's values scaled once.
    pub fn below_each<const N: usize>(&self, thresholds: [f64; N]) -> [bool; N] {
        match (self.stock_t, self.burn_t_per_day) {
            // Absurd tonnages (beyond i128 millionths) would overflow the exact form: the
            // float quotient decides them.
            (Some(s), Some(b)) => {
                let (lhs, burn) = (micro(s).checked_mul(MICRO), micro(b));
                thresholds.map(|t| match (lhs, micro(t).checked_mul(burn)) {
                    (Some(l), Some(r)) => l < r,
                    _ => self.days < t,
                })
            }
            _ => thresholds.map(|t| self.days < t),
        }
    }
}

/// Everything the warning rules read.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Data {
    /// Key plants only, by name.
    pub stocks: BTreeMap<String, PlantStock>,
    /// City-wide output by date (a second report for a date replaces the first).
    pub outputs: BTreeMap<NaiveDate, f64>,
    pub latest_output: Option<NaiveDate>,
    /// Per output date: its latest report arrived at L1 and missed the L1 target (§5.3).
    pub l1_missed: BTreeMap<NaiveDate, bool>,
    pub prices: BTreeMap<NaiveDate, f64>,
    pub latest_price: Option<NaiveDate>,
    pub storage: Option<(Ts, f64)>,
    /// The manual level in force ("需要预警的其他情形"), until `manual none`.
    pub manual: Option<Level>,
    /// The watched feeds (PLANS.md §4): the output, and each key plant's stock.
    pub output_feed: Option<Clock>,
    pub stock_feeds: BTreeMap<String, Clock>,
}

/// Is `plant` a key plant? `key_plants` empty: every plant that reports stock.
pub fn is_key(cfg: &CoalConfig, plant: &str) -> bool {
    cfg.key_plants.is_empty() || cfg.key_plants.iter().any(|p| p == plant)
}

impl Data {
    /// Keeps the report when it is not older (by `ts`) than the plant's latest one.
    pub fn add_stock(&mut self, r: &StockReport) {
        let newer = self.stocks.get(&r.plant).map_or(true, |s| r.ts >= s.ts);
        if newer {
            self.stocks
                .insert(r.plant.clone(), PlantStock::from_report(r));
        }
    }

    /// Stores an output report (a correction replaces the earlier value) and returns the
    /// dates skipped between the latest date reported and this one (PLANS.md §4).
    pub fn add_output(&mut self, r: &OutputReport) -> Vec<NaiveDate> {
        let mut skipped = Vec::new();
        if let Some(latest) = self.latest_output {
            let mut d = latest + Duration::days(1);
            while d < r.date {
                skipped.push(d);
                d += Duration::days(1);
            }
        }
        let latest = self.latest_output.map_or(r.date, |l| l.max(r.date));
        self.latest_output = Some(latest);
        let oldest = latest - Duration::days(OUTPUT_KEEP_DAYS);
        if r.date >= oldest {
            self.outputs.insert(r.date, r.output_t);
        }
        self.outputs = self.outputs.split_off(&oldest);
        self.l1_missed = self.l1_missed.split_off(&oldest);
        skipped
    }

    /// Records whether this output report arrived at L1 and missed the L1 target.
    pub fn record_l1(&mut self, date: NaiveDate, missed_at_l1: bool) {
        let oldest = self
            .latest_output
            .map(|l| l - Duration::days(OUTPUT_KEEP_DAYS));
        if oldest.map_or(true, |o| date >= o) {
            self.l1_missed.insert(date, missed_at_l1);
        }
    }

    /// Stores a price; only dates the price rule can still compare are kept.
    pub fn add_price(&mut self, cfg: &CoalConfig, r: &PriceReport) {
        let latest = self.latest_price.map_or(r.date, |l| l.max(r.date));
        self.latest_price = Some(latest);
        let oldest = latest - Duration::days(i64::from(cfg.price_window_days));
        if r.date >= oldest {
            self.prices.insert(r.date, r.price_cny_t);
        }
        self.prices = self.prices.split_off(&oldest);
    }

    /// Output dates in the consecutive run ending at the latest date reported, newest
    /// first, while `pred(date, output)` holds; a missing date ends the run.
    pub fn run_back(&self, mut pred: impl FnMut(NaiveDate, f64) -> bool) -> Vec<NaiveDate> {
        let mut out = Vec::new();
        let Some(mut d) = self.latest_output else {
            return out;
        };
        while let Some(&v) = self.outputs.get(&d) {
            if !pred(d, v) {
                break;
            }
            out.push(d);
            d -= Duration::days(1);
        }
        out
    }
}
