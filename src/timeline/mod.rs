//! A timeline picture of a run, per region: what the plans did (a band per track coloured
//! by level, a mark at every move, proposal, decision, overdue report and unreached call)
//! above what they saw (hourly AQI and its 24-hour mean M; the stock days of each key
//! plant). SVG drawn with plotters, and the same data as CSV.
//!
//! The picture is a function of the notices and of [`RegionSeries`], which a caller fills
//! from the inputs it replays (`yingji replay --timeline`, a daemon's journal): nothing
//! here reads a clock or a file, and the same inputs give the same bytes.
//!
//! - `model`: notices + series -> what is drawn (bands, marks, lines), in local time.
//! - `axis`: the time axis (ticks on local hours, days or months, Chinese labels).
//! - `draw`: the SVG.
//! - `csv`: the CSV.

mod axis;
mod csv;
mod draw;
mod model;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::input::{Command, Input, ManualLevel, Message};
use crate::notice::Notice;
use crate::plans::heavy_pollution::series::Series as AirSeries;
use crate::time::Ts;

pub use draw::DrawError;
pub use model::mark_title;

/// The time window a picture shows (both ends included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub from: Ts,
    pub to: Ts,
}

/// A decision a person took (PLANS.md §5.1, §1 manual warnings): an accepted `approve`,
/// `reject`, `confirm` or `manual` command.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub at: Ts,
    /// The track it is about (`supply`, `graded`, …), from the proposal id.
    pub track: String,
    /// What was decided, in Chinese, for the mark's title.
    pub text: String,
}

/// What one region's inputs say, as far as the picture needs it.
#[derive(Debug, Clone, Default)]
pub struct RegionSeries {
    /// Hourly observations and forecasts, kept by the plan's own rules for S (PLANS.md §2
    /// "The series": an observation wins, then the latest-issued forecast), never pruned.
    air: AirSeries,
    /// Key plant -> reading time (Unix seconds) -> stock days; a second reading with the
    /// same `ts` replaces the first.
    stock: BTreeMap<String, BTreeMap<i64, f64>>,
    decisions: Vec<Decision>,
}

impl RegionSeries {
    /// Records one accepted input of this region.
    pub fn record(&mut self, cfg: &Config, at: Ts, input: &Input) {
        match input {
            Input::AirAqi(o) => self.air.add_obs(o),
            Input::AirForecast(f) => self.air.add_forecast(f),
            Input::CoalStock(s) => {
                let key = cfg.coal.key_plants.is_empty() || cfg.coal.key_plants.contains(&s.plant);
                if key {
                    self.stock
                        .entry(s.plant.clone())
                        .or_default()
                        .insert(s.ts.timestamp(), s.stock.days());
                }
            }
            Input::Cmd(c) => {
                if let Some(d) = decision(at, c) {
                    self.decisions.push(d);
                }
            }
            _ => {}
        }
    }
}

fn decision(at: Ts, c: &Command) -> Option<Decision> {
    let (track, text) = match c {
        Command::Approve { proposal_id, by } => (
            track_of(proposal_id),
            format!("批准（{by}）：{proposal_id}"),
        ),
        Command::Reject {
            proposal_id,
            by,
            reason,
        } => (
            track_of(proposal_id),
            format!("驳回（{by}，{reason}）：{proposal_id}"),
        ),
        Command::Confirm { proposal_id, by } => (
            track_of(proposal_id),
            format!("确认（{by}）：{proposal_id}"),
        ),
        Command::Manual { level, reason, by } => {
            let l = match level {
                ManualLevel::L2 => "二级",
                ManualLevel::L1 => "一级",
                ManualLevel::None => "解除",
            };
            (
                "supply".to_string(),
                format!("人工预警{l}（{by}）：{reason}"),
            )
        }
        _ => return None,
    };
    Some(Decision { at, track, text })
}

/// The track of a proposal id `{plan}/{region}/{track}/proposal/{k}`.
fn track_of(proposal_id: &str) -> String {
    proposal_id
        .split('/')
        .nth(2)
        .unwrap_or_default()
        .to_string()
}

/// Whether a notice is drawn: a move (it changes a band) or a marked kind. Callers that
/// keep notices only for the picture keep these.
pub fn shown(n: &Notice) -> bool {
    n.kind.is_move() || model::MarkKind::of(n).is_some()
}

/// Collects, while a run is replayed, what its timeline draws: the span of the run, each
/// region's series and the notices that are drawn.
#[derive(Debug, Clone)]
pub struct Recorder {
    regions: Vec<RegionSeries>,
    notices: Vec<Notice>,
    from: Option<Ts>,
    to: Option<Ts>,
}

impl Recorder {
    pub fn new(cfg: &Config) -> Self {
        Recorder {
            regions: vec![RegionSeries::default(); cfg.regions.len()],
            notices: Vec::new(),
            from: None,
            to: None,
        }
    }

    /// A scenario line at `at` (message, rejected or not, or end line): the span grows.
    pub fn saw(&mut self, at: Ts) {
        self.from = Some(self.from.map_or(at, |f| f.min(at)));
        self.to = Some(self.to.map_or(at, |t| t.max(at)));
    }

    /// An input the engine accepted.
    pub fn input(&mut self, cfg: &Config, at: Ts, msg: &Message) {
        if let Some(r) = self.regions.get_mut(msg.region) {
            r.record(cfg, at, &msg.input);
        }
    }

    /// A notice the engine made (kept when it is drawn).
    pub fn notice(&mut self, n: &Notice) {
        if shown(n) {
            self.notices.push(n.clone());
        }
    }

    /// From the first line to the last; `None` before any line.
    pub fn span(&self) -> Option<Span> {
        Some(Span {
            from: self.from?,
            to: self.to?,
        })
    }

    pub fn notices(&self) -> &[Notice] {
        &self.notices
    }

    /// The series of the region at this index of `Config::regions`.
    pub fn region(&self, idx: usize) -> &RegionSeries {
        &self.regions[idx]
    }

    /// The picture of the region at this index of `Config::regions`, over the whole run.
    pub fn draw(&self, cfg: &Config, idx: usize) -> Result<Picture, DrawError> {
        let span = self.span().ok_or_else(|| {
            DrawError("the scenario has no lines: there is nothing to draw".into())
        })?;
        draw(
            cfg,
            &cfg.regions[idx].id,
            span,
            &self.notices,
            &self.regions[idx],
        )
    }
}

/// One region's picture: SVG (A4 landscape proportions, text as `<text>`, every mark a
/// `<polygon>` with a `<title>` naming it) and the same data as CSV.
#[derive(Debug, Clone, PartialEq)]
pub struct Picture {
    pub svg: String,
    pub csv: String,
}

/// Draws the picture of region `region` (its config id) over `span`. `notices` may hold
/// other regions' notices and other kinds (they are skipped) and must be in the order they
/// were made; notices before `span.from` only set the levels at its start.
pub fn draw(
    cfg: &Config,
    region: &str,
    span: Span,
    notices: &[Notice],
    series: &RegionSeries,
) -> Result<Picture, DrawError> {
    let m = model::Model::new(cfg, region, span, notices, series);
    Ok(Picture {
        svg: draw::svg(&m)?,
        csv: csv::csv(&m),
    })
}

/// Where each region's picture goes: `path` itself when one region is configured, else
/// `{stem}-{region id}.svg` beside it (one page each, for printing). Each CSV is its SVG's
/// path with `.csv` in place of `.svg`.
pub fn svg_paths(cfg: &Config, path: &Path) -> Vec<PathBuf> {
    if cfg.regions.len() == 1 {
        return vec![path.to_path_buf()];
    }
    let stem = path.file_stem().unwrap_or_default().to_string_lossy();
    cfg.regions
        .iter()
        .map(|r| path.with_file_name(format!("{stem}-{}.svg", r.id)))
        .collect()
}

/// Draws and writes every region's picture and CSV (see [`svg_paths`]); returns the SVG
/// paths written.
pub fn write_files(cfg: &Config, path: &Path, rec: &Recorder) -> Result<Vec<PathBuf>, String> {
    let paths = svg_paths(cfg, path);
    for (i, svg_path) in paths.iter().enumerate() {
        let p = rec.draw(cfg, i).map_err(|e| e.to_string())?;
        let csv_path = svg_path.with_extension("csv");
        for (file, body) in [(svg_path, &p.svg), (&csv_path, &p.csv)] {
            std::fs::write(file, body).map_err(|e| format!("{}: {e}", file.display()))?;
        }
    }
    Ok(paths)
}

#[cfg(test)]
mod tests;
