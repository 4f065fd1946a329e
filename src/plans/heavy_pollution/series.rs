//! The hourly series S, the 24 h moving mean M, C(X, N) and the primary pollutant of a
//! window (PLANS.md §2 "The series"; plan §3.2.1 "按连续24小时(可以跨自然日)均值计算").
//!
//! Stamps are whole hours counted from the Unix epoch (`i64`), each the END of its hour.
//! Observations and forecast hours are kept per stamp in `BTreeMap`s and pruned to what a
//! rule can still look at. The view the rules read (S and M over the horizon) is kept
//! across messages ([`ViewCache`]): a message updates only the hours it changed and the 24
//! means each of them is in, and the hour that enters at the end, with exact integer
//! running sums; [`View::new`] builds the same view afresh.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::aqi::Pollutant;
use crate::input::{AqiObs, Cause, Forecast};
use crate::time::{at_secs, Ts};

/// An hour stamp: hours since the epoch (the end of the hour).
pub type Stamp = i64;

/// How far back (in hours before h0) data is kept: C(X,72) at h0 needs M(h0-48), whose
/// window starts at h0-71; the SO2 track looks back 24 h.
pub const BACK: i64 = 71;

pub fn stamp_of(t: Ts) -> Stamp {
    t.timestamp().div_euclid(3600)
}

pub fn ts_of(s: Stamp) -> Ts {
    at_secs(s * 3600)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObsHour {
    pub aqi: f64,
    pub primary: Vec<Pollutant>,
    pub so2: Option<f64>,
    pub cause: Option<Cause>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FcHour {
    pub aqi: f64,
    pub primary: Vec<Pollutant>,
    pub so2: Option<f64>,
    pub issued: Ts,
}

/// Observations and the best forecast value per stamp.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Series {
    #[serde(with = "stamp_map")]
    pub obs: BTreeMap<Stamp, ObsHour>,
    #[serde(with = "stamp_map")]
    pub fc: BTreeMap<Stamp, FcHour>,
    /// Stamps written since the cached view was last brought up to date (not part of the
    /// state: a restored series starts without a cache and builds it afresh).
    #[serde(skip)]
    changed: Vec<Stamp>,
    /// Too many writes to list: the cached view is built afresh.
    #[serde(skip)]
    stale: bool,
    /// The view of the last evaluation, see [`Series::take_view`].
    #[serde(skip)]
    cache: ViewCache,
}

/// One hour of S as the rules see it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Hour {
    /// Observed or forecast (a dust hour is known).
    pub known: bool,
    /// An observed dust hour: missing in M, known and <= 100 for rules 3 and 4 (§1.3).
    pub dust: bool,
    pub observed: bool,
    pub aqi: f64,
    /// Primary pollutants as a bit set over `Pollutant::ALL` (votes, §2).
    pub primary: u8,
    pub fireworks: bool,
    /// SO2 (µg/m³) of the hour, from the observation or the forecast that gives S(h).
    pub so2: Option<f64>,
}

impl Hour {
    /// Counts in M (known and not dust).
    pub fn in_mean(&self) -> bool {
        self.known && !self.dust
    }
    /// Rules 3: S(h) <= 100 (优良); a dust hour counts as <= 100.
    pub fn good(&self) -> bool {
        self.known && (self.dust || self.aqi <= 100.0)
    }
}

impl Series {
    /// Notes that S(s) may have changed, for the cached view.
    fn touch(&mut self, s: Stamp) {
        // A series written to many times without being viewed (not the plan's way: it
        // evaluates after every air message) drops its cache rather than grow the list.
        if self.changed.len() >= MAX_CHANGED {
            self.changed.clear();
            self.stale = true;
        }
        if !self.stale {
            self.changed.push(s);
        }
    }

    /// The view at `h0`, from the view of the previous evaluation brought up to date
    /// (the same values as [`View::new`]; see [`ViewCache`]). Lent out so that the plan
    /// can change its state while it reads the view; give it back with
    /// [`Series::put_back`] (a view not given back is built afresh next time).
    pub fn take_view(&mut self, h0: Stamp, horizon: i64) -> ViewCache {
        let mut c = std::mem::take(&mut self.cache);
        if self.stale {
            c = ViewCache::default();
            self.stale = false;
        }
        c.sync(self, h0, horizon);
        self.changed.clear();
        c
    }

    pub fn put_back(&mut self, c: ViewCache) {
        self.cache = c;
    }

    /// A second observation for a stamp replaces the first.
    pub fn add_obs(&mut self, o: &AqiObs) {
        self.touch(stamp_of(o.ts));
        self.obs.insert(
            stamp_of(o.ts),
            ObsHour {
                aqi: o.aqi,
                primary: o.primary.clone(),
                so2: o.so2_ug_m3,
                cause: o.cause,
            },
        );
    }

    /// A forecast replaces, for each stamp it lists, a value from a forecast issued
    /// earlier (or at the same time: the later arrival wins).
    pub fn add_forecast(&mut self, f: &Forecast) {
        for h in &f.hours {
            let s = stamp_of(h.ts);
            let newer = !self.fc.get(&s).is_some_and(|old| old.issued > f.issued);
            if newer {
                self.touch(s);
                self.fc.insert(
                    s,
                    FcHour {
                        aqi: h.aqi,
                        primary: h.primary.clone(),
                        so2: h.so2_ug_m3,
                        issued: f.issued,
                    },
                );
            }
        }
    }

    /// Drops what no rule can look at any more (before h0 - BACK).
    pub fn prune(&mut self, h0: Stamp) {
        let keep = h0 - BACK;
        // One hour or none leaves per hourly message: drop from the front (a `split_off`
        // rebuilt the map each time).
        while let Some(e) = self.obs.first_entry() {
            if *e.key() >= keep {
                break;
            }
            e.remove();
        }
        while let Some(e) = self.fc.first_entry() {
            if *e.key() >= keep {
                break;
            }
            e.remove();
        }
    }

    /// S(h): an observation wins over a forecast (§2 "The series").
    pub fn hour(&self, s: Stamp) -> Hour {
        match self.obs.get(&s) {
            Some(o) => o.hour(),
            None => self.fc.get(&s).map(FcHour::hour).unwrap_or_default(),
        }
    }

    /// S(h) for every stamp of `from..=to`, in order: one walk over each map instead of
    /// a lookup per stamp (the same values as [`Series::hour`]).
    pub fn hours(&self, from: Stamp, to: Stamp) -> Vec<Hour> {
        if to < from {
            return Vec::new();
        }
        let mut out = vec![Hour::default(); (to - from + 1) as usize];
        for (s, f) in self.fc.range(from..=to) {
            out[(s - from) as usize] = f.hour();
        }
        for (s, o) in self.obs.range(from..=to) {
            out[(s - from) as usize] = o.hour();
        }
        out
    }
}

impl ObsHour {
    fn hour(&self) -> Hour {
        Hour {
            known: true,
            dust: self.cause == Some(Cause::Dust),
            observed: true,
            aqi: self.aqi,
            primary: mask(&self.primary),
            fireworks: self.cause == Some(Cause::Fireworks),
            so2: self.so2,
        }
    }
}

impl FcHour {
    fn hour(&self) -> Hour {
        Hour {
            known: true,
            dust: false,
            observed: false,
            aqi: self.aqi,
            primary: mask(&self.primary),
            fireworks: false,
            so2: self.so2,
        }
    }
}

/// The 24 h mean ending at a stamp.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Mean {
    pub sum: f64,
    pub count: u32,
    pub primary: Pollutant,
    /// A fireworks hour lies in the window (§3.3.2).
    pub fireworks: bool,
    /// A dust hour lies in the window (§1.3).
    pub dust: bool,
}

impl Mean {
    /// At least 20 of the 24 values (GB 3095 validity rule).
    pub fn valid(&self) -> bool {
        self.count >= 20
    }
    /// M > X without rounding: sum > X·count; an invalid M exceeds nothing.
    pub fn above(&self, x: f64) -> bool {
        self.valid() && self.sum > x * f64::from(self.count)
    }
    pub fn value(&self) -> Option<f64> {
        self.valid().then(|| self.sum / f64::from(self.count))
    }
    /// M(s) whose primary is O3 belongs to the ozone track (§3.2.2).
    pub fn ozone(&self) -> bool {
        self.primary == Pollutant::O3
    }
}

/// The primary pollutant of a window: most votes; none or a tie: PM2.5.
pub fn primary_of(votes: &[u32; 6]) -> Pollutant {
    // The leader so far and whether another pollutant has as many votes.
    let mut best: Option<(usize, u32)> = None;
    let mut tie = false;
    for (i, &v) in votes.iter().enumerate() {
        match best {
            Some((_, b)) if v < b => {}
            Some((_, b)) if v == b => tie = true,
            _ => {
                best = Some((i, v));
                tie = false;
            }
        }
    }
    match best {
        Some((i, v)) if v > 0 && !tie => Pollutant::ALL[i],
        _ => Pollutant::Pm25,
    }
}

/// `p`'s place in `Pollutant::ALL`.
pub(super) fn pidx(p: Pollutant) -> usize {
    match p {
        Pollutant::So2 => 0,
        Pollutant::No2 => 1,
        Pollutant::Pm10 => 2,
        Pollutant::Co => 3,
        Pollutant::O3 => 4,
        Pollutant::Pm25 => 5,
    }
}

/// A list of pollutants as a bit set over `Pollutant::ALL`.
fn mask(ps: &[Pollutant]) -> u8 {
    ps.iter().fold(0, |m, &p| m | 1 << pidx(p))
}

/// Everything one evaluation needs: S over [h0-71, h0+max(H, 35)] and M over
/// [h0-48, h0+max(H, 35)]. Built afresh by [`View::new`], or borrowed from the series'
/// cache ([`Series::take_view`]); both give the same values.
pub struct View<'a> {
    pub h0: Stamp,
    pub horizon: i64,
    /// S(h0 - BACK + i).
    pub hours: Cow<'a, [Hour]>,
    /// M(h0 - 48 + j).
    pub means: Cow<'a, [Mean]>,
}

/// How many hours a view holds: [h0-71, h0+max(H, 35)] (rules 3 and 4 look at the next
/// 36 hours even when the horizon is shorter).
fn view_len(horizon: i64) -> usize {
    (BACK + horizon.max(35) + 1) as usize
}

impl View<'static> {
    pub fn new(series: &Series, h0: Stamp, horizon: i64) -> View<'static> {
        let base = h0 - BACK;
        let hours = series.hours(base, base + view_len(horizon) as i64 - 1);
        let means = sliding_means(&hours);
        View {
            h0,
            horizon,
            hours: Cow::Owned(hours),
            means: Cow::Owned(means),
        }
    }
}

impl View<'_> {
    pub fn s(&self, s: Stamp) -> &Hour {
        &self.hours[(s - (self.h0 - BACK)) as usize]
    }

    /// M(s) for s in [h0-48, h0+H].
    pub fn m(&self, s: Stamp) -> &Mean {
        &self.means[(s - (self.h0 - 48)) as usize]
    }

    /// The horizon: h0 … h0+H.
    pub fn horizon_stamps(&self) -> std::ops::RangeInclusive<Stamp> {
        self.h0..=self.h0 + self.horizon
    }
}

/// Means for every stamp whose window lies inside `hours` (from index 23 on). Counts,
/// votes and flags slide (integers, exact). The sum slides too when every value that counts
/// is a whole number (AQI is an integer, HJ 633): then the running sum is an exact integer,
/// the same f64 as adding the window's 24 values afresh. Otherwise each window's sum is
/// added afresh from its 24 values, so no rounding drift builds up.
pub fn sliding_means(hours: &[Hour]) -> Vec<Mean> {
    let mut out = Vec::with_capacity(hours.len().saturating_sub(23));
    let whole = hours.iter().all(|h| !h.in_mean() || whole(h.aqi));
    let mut votes = [0i32; 6];
    let (mut count, mut fw, mut dust, mut isum) = (0i32, 0i32, 0i32, 0i64);
    let mut step = |h: &Hour, d: i32, votes: &mut [i32; 6]| {
        fw += d * i32::from(h.fireworks);
        dust += d * i32::from(h.dust);
        if h.in_mean() {
            count += d;
            if whole {
                isum += i64::from(d) * h.aqi as i64;
            }
            for (i, v) in votes.iter_mut().enumerate() {
                *v += d * i32::from(h.primary >> i & 1);
            }
        }
        (count, fw, dust, isum)
    };
    for (i, h) in hours.iter().enumerate() {
        let (mut c, mut f, mut du, mut is) = step(h, 1, &mut votes);
        if i >= 24 {
            (c, f, du, is) = step(&hours[i - 24], -1, &mut votes);
        }
        if i >= 23 {
            let sum = if whole {
                is as f64
            } else {
                hours[i - 23..=i]
                    .iter()
                    .filter(|h| h.in_mean())
                    .map(|h| h.aqi)
                    .sum()
            };
            let v: [u32; 6] = votes.map(|x| x as u32);
            out.push(Mean {
                sum,
                count: c as u32,
                primary: primary_of(&v),
                fireworks: f > 0,
                dust: du > 0,
            });
        }
    }
    out
}

/// The means before a view's 24th hour (no full window): never read.
const UNUSED: Mean = Mean {
    sum: 0.0,
    count: 0,
    primary: Pollutant::Pm25,
    fireworks: false,
    dust: false,
};

/// At most this many writes are listed between two views (a forecast lists at most
/// `FORECAST_HORIZON_DAYS` x 24 stamps).
const MAX_CHANGED: usize = 1024;

/// One 24-hour window's counts: integers, so adding the hour that enters and removing
/// the one that leaves is exact. The sum is kept as an integer over the whole AQI values;
/// a window holding a fractional value (`frac` > 0) has its sum added afresh from its 24
/// values instead, as [`sliding_means`] does, so no rounding drift builds up.
#[derive(Debug, Clone, Copy, Default)]
struct Acc {
    count: i32,
    fireworks: i32,
    dust: i32,
    frac: i32,
    isum: i64,
    votes: [i32; 6],
}

/// A whole AQI value, summed exactly in an `i64` (AQI is an integer, HJ 633).
fn whole(aqi: f64) -> bool {
    // `aqi.fract() == 0.0`, without the call `fract` compiles to on plain x86-64.
    aqi.abs() <= 1e9 && aqi == aqi as i64 as f64
}

impl Acc {
    /// Adds (`d` = 1) or removes (`d` = -1) one hour.
    fn step(&mut self, h: &Hour, d: i32) {
        self.fireworks += d * i32::from(h.fireworks);
        self.dust += d * i32::from(h.dust);
        if h.in_mean() {
            self.count += d;
            if whole(h.aqi) {
                self.isum += i64::from(d) * h.aqi as i64;
            } else {
                self.frac += d;
            }
            let mut p = h.primary;
            while p != 0 {
                self.votes[p.trailing_zeros() as usize] += d;
                p &= p - 1;
            }
        }
    }

    /// M of the window `w` (its 24 hours) whose counts these are.
    fn mean(&self, w: &[Hour]) -> Mean {
        let sum = if self.frac == 0 {
            // Every value is a whole number: the same f64 as adding them afresh.
            self.isum as f64
        } else {
            w.iter().filter(|h| h.in_mean()).map(|h| h.aqi).sum()
        };
        Mean {
            sum,
            count: self.count as u32,
            primary: primary_of(&self.votes.map(|x| x as u32)),
            fireworks: self.fireworks > 0,
            dust: self.dust > 0,
        }
    }
}

/// The view of the previous evaluation, brought up to date at the next one
/// ([`Series::take_view`]): when h0 moves on by k hours, k hours enter at the end (read
/// from the series); an hour the series changed in between (an observation, a forecast)
/// is read again. Only the means whose window holds an hour that entered or changed are
/// recomputed, each from the previous one by the hour that enters and the one that leaves
/// (integer counts, exact). The same S and M as [`View::new`] (a unit test compares the
/// two on random series).
#[derive(Debug, Clone, Default)]
pub struct ViewCache {
    /// S(base) is `hours[off]`; `None` until built.
    base: Option<Stamp>,
    horizon: i64,
    /// Hours before `off` have left the view (dropped in bulk now and then).
    off: usize,
    hours: Vec<Hour>,
    /// The window ending at each hour (from the view's 24th hour on; earlier ones unused).
    accs: Vec<Acc>,
    means: Vec<Mean>,
}

impl ViewCache {
    /// The view at `h0` (the one [`ViewCache::sync`] was last called with).
    pub fn view(&self, h0: Stamp) -> View<'_> {
        let len = view_len(self.horizon);
        debug_assert_eq!(self.base, Some(h0 - BACK));
        View {
            h0,
            horizon: self.horizon,
            hours: Cow::Borrowed(&self.hours[self.off..self.off + len]),
            means: Cow::Borrowed(&self.means[self.off + 23..self.off + len]),
        }
    }

    fn sync(&mut self, series: &Series, h0: Stamp, horizon: i64) {
        let base = h0 - BACK;
        let len = view_len(horizon);
        let k = match self.base {
            // h0 moved on by less than a view minus a window: slide.
            Some(b) if self.horizon == horizon && (0..(len - 24) as i64).contains(&(base - b)) => {
                (base - b) as usize
            }
            _ => return self.rebuild(series, base, horizon),
        };
        // Ranges of view indices whose means are recomputed: the k hours that enter at
        // the end, and the 24 means of each hour that changed.
        let mut stale: Vec<(usize, usize)> = Vec::new();
        if k > 0 {
            self.slide(series, base, k, len);
            stale.push((len - k, len - 1));
        }
        let last = base + len as i64 - 1;
        let mut changed: Vec<Stamp> = series
            .changed
            .iter()
            .copied()
            .filter(|s| (base..=last).contains(s))
            .collect();
        changed.sort_unstable();
        changed.dedup();
        for s in changed {
            let i = (s - base) as usize;
            let h = series.hour(s);
            let slot = &mut self.hours[self.off + i];
            if *slot != h {
                *slot = h;
                stale.push((i, (i + 23).min(len - 1)));
            }
        }
        stale.sort_unstable();
        let mut ranges = stale.into_iter();
        let Some(mut cur) = ranges.next() else {
            return;
        };
        for r in ranges {
            if r.0 <= cur.1 + 1 {
                cur.1 = cur.1.max(r.1);
            } else {
                self.refresh(cur.0, cur.1);
                cur = r;
            }
        }
        self.refresh(cur.0, cur.1);
    }

    fn rebuild(&mut self, series: &Series, base: Stamp, horizon: i64) {
        let len = view_len(horizon);
        *self = ViewCache {
            base: Some(base),
            horizon,
            off: 0,
            hours: series.hours(base, base + len as i64 - 1),
            accs: vec![Acc::default(); len],
            means: vec![UNUSED; len],
        };
        self.refresh(23, len - 1);
    }

    /// h0 moves on by `k` hours: the first k leave, k enter at the end (their means are
    /// left to [`ViewCache::refresh`]).
    fn slide(&mut self, series: &Series, base: Stamp, k: usize, len: usize) {
        // Drop what has left in bulk, so that a step costs O(k), not O(len).
        if self.off > len {
            self.hours.drain(..self.off);
            self.accs.drain(..self.off);
            self.means.drain(..self.off);
            self.off = 0;
        }
        self.off += k;
        self.base = Some(base);
        for s in base + (len - k) as i64..base + len as i64 {
            self.hours.push(series.hour(s));
            self.accs.push(Acc::default());
            self.means.push(UNUSED);
        }
    }

    /// Recomputes the means ending at view indices `from..=to` (at least the 24th hour):
    /// the first from the one before it (or afresh from its 24 hours), then each from the
    /// previous by the hour that enters and the one that leaves.
    fn refresh(&mut self, from: usize, to: usize) {
        let (from, to) = (from.max(23) + self.off, to + self.off);
        let mut acc = if from > self.off + 23 {
            let mut a = self.accs[from - 1];
            a.step(&self.hours[from], 1);
            a.step(&self.hours[from - 24], -1);
            a
        } else {
            let mut a = Acc::default();
            for h in &self.hours[from - 23..=from] {
                a.step(h, 1);
            }
            a
        };
        for j in from..=to {
            if j > from {
                acc.step(&self.hours[j], 1);
                acc.step(&self.hours[j - 24], -1);
            }
            self.accs[j] = acc;
            self.means[j] = acc.mean(&self.hours[j - 23..=j]);
        }
    }
}

/// Serde for stamp-keyed maps (JSON keys must be strings): a list of pairs.
mod stamp_map {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer, V: Serialize>(
        m: &BTreeMap<Stamp, V>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_seq(m.iter())
    }

    pub fn deserialize<'de, D: Deserializer<'de>, V: Deserialize<'de>>(
        d: D,
    ) -> Result<BTreeMap<Stamp, V>, D::Error> {
        let v: Vec<(Stamp, V)> = Vec::deserialize(d)?;
        Ok(v.into_iter().collect())
    }
}
