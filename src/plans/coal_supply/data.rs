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
    fn below_each<const N: usize>(&self, thresholds: [f64; N]) -> [bool; N] {
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

/// A value of a key plant that the rules ask about for every plant at every message.
pub trait Marked {
    /// Whether the value counts for [`ByPlant::any_marked`].
    fn marked(&self) -> bool;
}

/// §4.2.1: a plant below a stock threshold (its level above none).
impl Marked for PlantStock {
    fn marked(&self) -> bool {
        self.level() > Level::None
    }
}

/// PLANS.md §4: a feed silent (its gap open).
impl Marked for Clock {
    fn marked(&self) -> bool {
        self.silent
    }
}

/// Key plants' values by plant (read through `Deref`), with how many are marked: the
/// stock rule (§4.2.1) and the open-gap check (§5.3, a hold end waits while a gap is
/// open) are asked at every message, and with nothing marked the count spares them a walk
/// over every plant (the walks were a fifth of a stock reading's work with 100 plants).
/// Changed only through [`ByPlant::put`] and [`ByPlant::update`], which keep the count.
/// Snapshots hold the map alone; the count is worked out again when it is read back.
#[derive(Debug, Clone)]
pub struct ByPlant<V> {
    map: BTreeMap<String, V>,
    marked: usize,
}

/// The key plants' latest stocks.
pub type Stocks = ByPlant<PlantStock>;
/// The clocks of the key plants' stock feeds.
pub type StockFeeds = ByPlant<Clock>;

impl<V: Marked> ByPlant<V> {
    /// Whether any plant's value is marked.
    pub fn any_marked(&self) -> bool {
        self.marked > 0
    }

    /// Sets `plant`'s value.
    fn put(&mut self, plant: &str, v: V) {
        self.marked += usize::from(v.marked());
        match self.map.get_mut(plant) {
            Some(old) => {
                self.marked -= usize::from(old.marked());
                *old = v;
            }
            None => {
                self.map.insert(plant.to_string(), v);
            }
        }
    }

    /// Changes `plant`'s value with `f`; `None` when the plant has none.
    fn update<R>(&mut self, plant: &str, f: impl FnOnce(&mut V) -> R) -> Option<R> {
        let v = self.map.get_mut(plant)?;
        self.marked -= usize::from(v.marked());
        let r = f(v);
        self.marked += usize::from(v.marked());
        Some(r)
    }
}

impl Stocks {
    /// Keeps the report when it is not older (by `ts`) than the plant's latest one.
    fn add(&mut self, r: &StockReport) {
        if !self.get(&r.plant).is_some_and(|s| r.ts < s.ts) {
            self.put(&r.plant, PlantStock::from_report(r));
        }
    }
}

impl StockFeeds {
    /// A message of `plant`'s feed at `now` ([`Clock::arrive`]): the previous arrival when
    /// it ends a silence.
    pub fn arrive(&mut self, plant: &str, now: Ts) -> Option<Ts> {
        let (clock, resumed) = Clock::arrive(self.get(plant).copied(), now);
        self.put(plant, clock);
        resumed
    }

    /// `plant`'s gap timer fired ([`Clock::fall_silent`]): its last arrival, `None` when
    /// the feed never had a message.
    pub fn fall_silent(&mut self, plant: &str) -> Option<Ts> {
        self.update(plant, Clock::fall_silent)
    }
}

impl<V> Default for ByPlant<V> {
    fn default() -> Self {
        ByPlant {
            map: BTreeMap::new(),
            marked: 0,
        }
    }
}

impl<V> std::ops::Deref for ByPlant<V> {
    type Target = BTreeMap<String, V>;
    fn deref(&self) -> &Self::Target {
        &self.map
    }
}

impl<V: Marked> From<BTreeMap<String, V>> for ByPlant<V> {
    fn from(map: BTreeMap<String, V>) -> Self {
        let marked = map.values().filter(|v| v.marked()).count();
        ByPlant { map, marked }
    }
}

impl<V: Serialize> Serialize for ByPlant<V> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.map.serialize(s)
    }
}

impl<'de, V: Marked + Deserialize<'de>> Deserialize<'de> for ByPlant<V> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        BTreeMap::deserialize(d).map(ByPlant::from)
    }
}

/// Everything the warning rules read.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Data {
    /// Key plants only, by name.
    pub stocks: Stocks,
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
    pub stock_feeds: StockFeeds,
}

/// Is `plant` a key plant? `key_plants` empty: every plant that reports stock.
pub fn is_key(cfg: &CoalConfig, plant: &str) -> bool {
    cfg.key_plants.is_empty() || cfg.key_plants.iter().any(|p| p == plant)
}

impl Data {
    /// Keeps the report when it is not older (by `ts`) than the plant's latest one.
    pub fn add_stock(&mut self, r: &StockReport) {
        self.stocks.add(r);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::parse_ts;

    /// The counts of plants below a threshold and of silent feeds always agree with a
    /// walk over every plant: through reports that replace, older reports kept out, gaps
    /// opening and closing, and a snapshot read back (which works the counts out again).
    #[test]
    fn the_counts_agree_with_a_walk_over_every_plant() {
        let t0 = parse_ts("2023-12-01T08:00:00+08:00").unwrap();
        let mut rng = crate::testing::Rng(0x2545_F491_4F6C_DD1D);
        let mut below = |k: u64| rng.below(k);
        let (mut stocks, mut feeds) = (Stocks::default(), StockFeeds::default());
        let (mut were_below, mut were_silent) = (0, 0);
        for step in 0..20_000 {
            let plant = format!("plant-{}", below(6));
            let now = t0 + Duration::minutes(step);
            match below(8) {
                0..=2 => {
                    // Three values of ten below a threshold: at times no plant below.
                    let days = [14.9, 15.0, 19.99, 20.0, 20.01, 25.0, 30.0, 40.0, 50.0, 60.0]
                        [below(10) as usize];
                    let stock = match below(2) {
                        0 => Stock::Days(days),
                        _ => Stock::Tonnes {
                            stock_t: days * 10_000.0,
                            burn_t_per_day: 10_000.0,
                        },
                    };
                    // Now and then a report older than the plant's latest: kept out.
                    let ts = now - Duration::minutes(below(3) as i64 * 90);
                    stocks.add(&StockReport { ts, plant, stock });
                }
                3..=6 => {
                    feeds.arrive(&plant, now);
                }
                _ => {
                    if feeds.get(&plant).is_some_and(|c| !c.silent) {
                        feeds.fall_silent(&plant);
                    }
                }
            }
            let walked_below = stocks.values().any(|s| s.level() > Level::None);
            let walked_silent = feeds.values().any(|c| c.silent);
            assert_eq!(stocks.any_marked(), walked_below, "step {step}");
            assert_eq!(feeds.any_marked(), walked_silent, "step {step}");
            were_below += usize::from(walked_below);
            were_silent += usize::from(walked_silent);
            if step % 1000 == 0 {
                let s: Stocks =
                    serde_json::from_value(serde_json::to_value(&stocks).unwrap()).unwrap();
                let f: StockFeeds =
                    serde_json::from_value(serde_json::to_value(&feeds).unwrap()).unwrap();
                assert_eq!((s.marked, f.marked), (stocks.marked, feeds.marked));
                assert_eq!(
                    serde_json::to_value(&stocks).unwrap(),
                    serde_json::to_value(&*stocks).unwrap(),
                    "snapshots hold the map alone"
                );
            }
        }
        assert!(
            were_below > 1_000 && were_below < 19_000,
            "below {were_below}"
        );
        assert!(
            were_silent > 1_000 && were_silent < 19_000,
            "silent {were_silent}"
        );
    }
}
