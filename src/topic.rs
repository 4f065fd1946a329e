//! The input feeds, by name: a leaf of the module graph, so that both the
//! configuration (`[limits.max_age_days]`) and the parser (`input`) can name them.

/// The input feeds: the topics below `{root}/{region}/` (CONTRACT.md "Input topics").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Topic {
    CoalStock,
    CoalOutput,
    CoalPrice,
    CoalStorage,
    AirAqi,
    AirForecast,
    AirProvince,
    WeatherWarning,
    WeatherObs,
    Cmd,
}

impl Topic {
    /// Every feed, in the order CONTRACT.md lists them.
    pub fn all() -> &'static [Topic] {
        &[
            Topic::CoalStock,
            Topic::CoalOutput,
            Topic::CoalPrice,
            Topic::CoalStorage,
            Topic::AirAqi,
            Topic::AirForecast,
            Topic::AirProvince,
            Topic::WeatherWarning,
            Topic::WeatherObs,
            Topic::Cmd,
        ]
    }

    /// The topic below `{root}/{region}/`, e.g. `air/aqi`.
    pub fn as_str(self) -> &'static str {
        match self {
            Topic::CoalStock => "coal/stock",
            Topic::CoalOutput => "coal/output",
            Topic::CoalPrice => "coal/price",
            Topic::CoalStorage => "coal/storage",
            Topic::AirAqi => "air/aqi",
            Topic::AirForecast => "air/forecast",
            Topic::AirProvince => "air/province",
            Topic::WeatherWarning => "weather/warning",
            Topic::WeatherObs => "weather/obs",
            Topic::Cmd => "cmd",
        }
    }

    pub fn parse(suffix: &str) -> Option<Topic> {
        Topic::all().iter().copied().find(|t| t.as_str() == suffix)
    }
}

impl std::fmt::Display for Topic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
