//! Hourly AQI from concentrations per HJ 633 (docs/heavy-pollution.md): IAQI of each
//! pollutant by linear interpolation between breakpoints, rounded up; AQI = the largest
//! IAQI; primary pollutant(s) = those at the AQI when AQI > 50.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Pollutants, declared in the order HJ 633 lists primary pollutants:
/// SO2, NO2, PM10, CO, O3, PM2.5.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Pollutant {
    #[serde(rename = "SO2")]
    So2,
    #[serde(rename = "NO2")]
    No2,
    #[serde(rename = "PM10")]
    Pm10,
    #[serde(rename = "CO")]
    Co,
    #[serde(rename = "O3")]
    O3,
    #[serde(rename = "PM2.5")]
    Pm25,
}

impl Pollutant {
    /// The name used in payloads and notices (`PM2.5`, `O3`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Pollutant::So2 => "SO2",
            Pollutant::No2 => "NO2",
            Pollutant::Pm10 => "PM10",
            Pollutant::Co => "CO",
            Pollutant::O3 => "O3",
            Pollutant::Pm25 => "PM2.5",
        }
    }

    /// The concentration key in payloads and on the command line (`pm25`, `o3`, ...).
    pub fn key(self) -> &'static str {
        match self {
            Pollutant::So2 => "so2",
            Pollutant::No2 => "no2",
            Pollutant::Pm10 => "pm10",
            Pollutant::Co => "co",
            Pollutant::O3 => "o3",
            Pollutant::Pm25 => "pm25",
        }
    }

    /// Parses a pollutant name; case-insensitive, `PM25` accepted for `PM2.5`.
    pub fn parse(s: &str) -> Option<Pollutant> {
        // Its name or its key (`PM25` is `pm25`), ASCII case folded in place.
        let s = s.trim();
        Pollutant::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(s) || p.key().eq_ignore_ascii_case(s))
    }

    pub const ALL: [Pollutant; 6] = [
        Pollutant::So2,
        Pollutant::No2,
        Pollutant::Pm10,
        Pollutant::Co,
        Pollutant::O3,
        Pollutant::Pm25,
    ];
}

/// Which edition of HJ 633.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Standard {
    /// HJ 633-2012, for historical data.
    Hj2012,
    /// HJ 633-2026 (default since 2026-03-01): tighter PM breakpoints at IAQI 100.
    Hj2026,
}

impl Standard {
    pub fn parse(s: &str) -> Option<Standard> {
        match s {
            "2012" => Some(Standard::Hj2012),
            "2026" => Some(Standard::Hj2026),
            _ => None,
        }
    }
}

/// One set of hourly concentrations: µg/m³, CO in mg/m³. Missing ones are left out.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Concentrations {
    pub pm25: Option<f64>,
    pub pm10: Option<f64>,
    pub so2: Option<f64>,
    pub no2: Option<f64>,
    pub co: Option<f64>,
    pub o3: Option<f64>,
    /// 24-hour SO2, used by HJ 633-2012 when the 1-hour SO2 is above 800.
    pub so2_24h: Option<f64>,
}

impl Concentrations {
    pub fn get(&self, p: Pollutant) -> Option<f64> {
        match p {
            Pollutant::So2 => self.so2,
            Pollutant::No2 => self.no2,
            Pollutant::Pm10 => self.pm10,
            Pollutant::Co => self.co,
            Pollutant::O3 => self.o3,
            Pollutant::Pm25 => self.pm25,
        }
    }
}

/// AQI, each IAQI and the primary pollutant(s).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AqiResult {
    pub aqi: u32,
    pub iaqi: BTreeMap<Pollutant, u32>,
    /// Empty when AQI <= 50; else every pollutant at the AQI, in HJ 633 order.
    pub primary: Vec<Pollutant>,
}

const IAQI_LEVELS: [f64; 8] = [0.0, 50.0, 100.0, 150.0, 200.0, 300.0, 400.0, 500.0];

/// Breakpoints (concentration at each IAQI level); `None` past the table's end.
fn breakpoints(p: Pollutant, std: Standard) -> &'static [f64] {
    match (p, std) {
        (Pollutant::So2, _) => &[0.0, 150.0, 500.0, 650.0, 800.0],
        (Pollutant::No2, _) => &[0.0, 100.0, 200.0, 700.0, 1200.0, 2340.0, 3090.0, 3840.0],
        (Pollutant::Co, _) => &[0.0, 5.0, 10.0, 35.0, 60.0, 90.0, 120.0, 150.0],
        (Pollutant::O3, _) => &[0.0, 160.0, 200.0, 300.0, 400.0, 800.0, 1000.0, 1200.0],
        (Pollutant::Pm10, Standard::Hj2012) => {
            &[0.0, 50.0, 150.0, 250.0, 350.0, 420.0, 500.0, 600.0]
        }
        (Pollutant::Pm10, Standard::Hj2026) => {
            &[0.0, 50.0, 120.0, 250.0, 350.0, 420.0, 500.0, 600.0]
        }
        (Pollutant::Pm25, Standard::Hj2012) => {
            &[0.0, 35.0, 75.0, 115.0, 150.0, 250.0, 350.0, 500.0]
        }
        (Pollutant::Pm25, Standard::Hj2026) => {
            &[0.0, 35.0, 60.0, 115.0, 150.0, 250.0, 350.0, 500.0]
        }
    }
}

/// SO2 24-hour breakpoints of HJ 633-2012 (for 1-hour SO2 above 800).
const SO2_24H: [f64; 8] = [0.0, 50.0, 150.0, 475.0, 800.0, 1600.0, 2100.0, 2620.0];

fn interpolate(bp: &[f64], c: f64) -> u32 {
    if c <= 0.0 {
        return 0;
    }
    for i in 1..bp.len() {
        if c <= bp[i] {
            let (lo, hi) = (bp[i - 1], bp[i]);
            let (ilo, ihi) = (IAQI_LEVELS[i - 1], IAQI_LEVELS[i]);
            let x = (ihi - ilo) * (c - lo) / (hi - lo);
            // Rounded up; the epsilon keeps an exact integer from becoming the next one
            // through floating-point noise.
            return (ilo + (x - 1e-9).ceil().max(0.0)) as u32;
        }
    }
    500
}

/// IAQI of one pollutant.
pub fn iaqi(p: Pollutant, c: f64, std: Standard, so2_24h: Option<f64>) -> u32 {
    if p == Pollutant::So2 && c > 800.0 {
        // AQI.md: SO2 1h above 800 -> IAQI 200 (2026); 2012 uses the 24-hour value if given.
        return match (std, so2_24h) {
            (Standard::Hj2012, Some(d)) => interpolate(&SO2_24H, d),
            _ => 200,
        };
    }
    interpolate(breakpoints(p, std), c)
}

/// AQI of a set of hourly concentrations; `None` when no pollutant is given.
pub fn compute(c: &Concentrations, std: Standard) -> Option<AqiResult> {
    let mut iaqi_map = BTreeMap::new();
    for p in Pollutant::ALL {
        if let Some(v) = c.get(p) {
            iaqi_map.insert(p, iaqi(p, v, std, c.so2_24h));
        }
    }
    let aqi = *iaqi_map.values().max()?;
    let primary = if aqi > 50 {
        iaqi_map
            .iter()
            .filter(|(_, v)| **v == aqi)
            .map(|(p, _)| *p)
            .collect()
    } else {
        Vec::new()
    };
    Some(AqiResult {
        aqi,
        iaqi: iaqi_map,
        primary,
    })
}

/// Category name of an AQI value (优 … 严重污染).
pub fn category_zh(aqi: f64) -> &'static str {
    match aqi {
        a if a <= 50.0 => "优",
        a if a <= 100.0 => "良",
        a if a <= 150.0 => "轻度污染",
        a if a <= 200.0 => "中度污染",
        a if a <= 300.0 => "重度污染",
        _ => "严重污染",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Names read as the uppercased match read them (ASCII case only; a full-width or
    /// spaced name is refused).
    #[test]
    fn pollutant_names_read_in_any_ascii_case() {
        let upper = |s: &str| match s.trim().to_ascii_uppercase().as_str() {
            "SO2" => Some(Pollutant::So2),
            "NO2" => Some(Pollutant::No2),
            "PM10" => Some(Pollutant::Pm10),
            "CO" => Some(Pollutant::Co),
            "O3" => Some(Pollutant::O3),
            "PM2.5" | "PM25" => Some(Pollutant::Pm25),
            _ => None,
        };
        for s in [
            "so2", "SO2", " pm2.5 ", "Pm25", "pM10", "co", "Co", "o3", "NO2", "nO2", "PM2,5",
            "ＰＭ10", "pm 10", "", "O₃", "PM2.5\t", "PM2.50", "CO2", "O", "pm2.",
        ] {
            assert_eq!(Pollutant::parse(s), upper(s), "{s:?}");
        }
        assert_eq!(Pollutant::parse("pm2.5"), Some(Pollutant::Pm25));
    }

    fn c(v: [f64; 6]) -> Concentrations {
        Concentrations {
            pm25: Some(v[0]),
            pm10: Some(v[1]),
            so2: Some(v[2]),
            no2: Some(v[3]),
            co: Some(v[4]),
            o3: Some(v[5]),
            so2_24h: None,
        }
    }

    fn names(r: &AqiResult) -> Vec<&'static str> {
        r.primary.iter().map(|p| p.as_str()).collect()
    }

    /// Concentrations, then AQI and primary pollutants under 2026 and under 2012.
    type Case = (
        [f64; 6],
        u32,
        &'static [&'static str],
        u32,
        &'static [&'static str],
    );

    /// Every reference case of AQI.md, both standards.
    #[test]
    fn reference_cases() {
        #[rustfmt::skip]
        let cases: &[Case] = &[
            ([37.0, 55.0, 8.0, 30.0, 0.6, 40.0], 54, &["PM10", "PM2.5"], 53, &["PM10", "PM2.5"]),
            ([172.0, 120.0, 20.0, 40.0, 1.2, 30.0], 222, &["PM2.5"], 222, &["PM2.5"]),
            ([80.0, 130.0, 12.0, 35.0, 0.9, 20.0], 119, &["PM2.5"], 107, &["PM2.5"]),
            ([20.0, 40.0, 10.0, 20.0, 0.4, 210.0], 105, &["O3"], 105, &["O3"]),
            ([310.0, 380.0, 900.0, 90.0, 2.5, 15.0], 360, &["PM2.5"], 360, &["PM2.5"]),
            ([600.0, 700.0, 30.0, 60.0, 3.0, 10.0], 500, &["PM10", "PM2.5"], 500, &["PM10", "PM2.5"]),
            ([60.0, 120.0, 5.0, 15.0, 0.3, 50.0], 100, &["PM10", "PM2.5"], 85, &["PM10"]),
            ([30.0, 45.0, 5.0, 15.0, 0.3, 100.0], 45, &[], 45, &[]),
        ];
        for (v, a26, p26, a12, p12) in cases {
            let r26 = compute(&c(*v), Standard::Hj2026).unwrap();
            assert_eq!(
                (r26.aqi, names(&r26).as_slice()),
                (*a26, *p26),
                "2026 {v:?}"
            );
            let r12 = compute(&c(*v), Standard::Hj2012).unwrap();
            assert_eq!(
                (r12.aqi, names(&r12).as_slice()),
                (*a12, *p12),
                "2012 {v:?}"
            );
        }
    }

    #[test]
    fn breakpoints_are_exact_and_missing_pollutants_are_left_out() {
        assert_eq!(iaqi(Pollutant::Pm25, 35.0, Standard::Hj2026, None), 50);
        assert_eq!(iaqi(Pollutant::Pm25, 150.0, Standard::Hj2026, None), 200);
        assert_eq!(iaqi(Pollutant::Pm25, 500.1, Standard::Hj2026, None), 500);
        assert_eq!(iaqi(Pollutant::So2, 801.0, Standard::Hj2026, None), 200);
        assert_eq!(
            iaqi(Pollutant::So2, 801.0, Standard::Hj2012, Some(1600.0)),
            300
        );
        let only_o3 = Concentrations {
            o3: Some(210.0),
            ..Default::default()
        };
        assert_eq!(compute(&only_o3, Standard::Hj2026).unwrap().aqi, 105);
        assert!(compute(&Concentrations::default(), Standard::Hj2026).is_none());
    }

    proptest! {
        /// IAQI never decreases as the concentration grows, and stays within 0..=500.
        #[test]
        fn iaqi_is_monotonic(a in 0.0f64..5000.0, b in 0.0f64..5000.0, i in 0usize..6) {
            let p = Pollutant::ALL[i];
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            for std in [Standard::Hj2012, Standard::Hj2026] {
                let (x, y) = (iaqi(p, lo, std, None), iaqi(p, hi, std, None));
                prop_assert!(x <= y && y <= 500);
            }
        }
    }
}
