//! The SVG, drawn with plotters' SVG backend: text is written as `<text>` (the reader's
//! fonts render it; no font file is read), so the picture needs nothing but plotters.
//!
//! Layout on a 1600 × 1131 canvas (A4 landscape proportions; body text 16–19 px, about
//! 9–10 pt when the page is printed): title; the bands, one row per track, with the
//! marks above each band; the AQI chart; the stock-days chart; the legend. The three
//! blocks share the time axis (same left and right label areas).
//!
//! Marks are the picture's only `<polygon>`s, legend symbols included: plotters cannot
//! attach a `<title>` to an element, so each polygon gets its title in one pass over the
//! finished SVG, in drawing order ([`add_titles`]).

use std::ops::Range;

use plotters::chart::{ChartBuilder, ChartContext, LabelAreaPosition};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::time::at_secs;

use super::axis::TimeAxis;
use super::model::{level_short, when_zh, MarkKind, Model, TRACKS};

/// The SVG could not be drawn (a bug, not bad input).
#[derive(Debug, thiserror::Error)]
#[error("drawing the timeline: {0}")]
pub struct DrawError(pub(super) String);

impl<E: std::error::Error + Send + Sync> From<DrawingAreaErrorKind<E>> for DrawError {
    fn from(e: DrawingAreaErrorKind<E>) -> Self {
        DrawError(e.to_string())
    }
}

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;
type Chart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<TimeAxis, RangedCoordf64>>;

const W: u32 = 1600;
const H: u32 = 1131;
/// Outer margin, label column (track names, y axes) and right column (threshold labels).
const MX: u32 = 16;
const LEFT: u32 = 170;
const RIGHT: u32 = 92;
const BAND_TOP: i32 = 96;
/// One band row: a strip for its marks, the band, a gap.
const ROW: i32 = 44;
const STRIP: i32 = 18;
const BAND: i32 = 22;
const AQI_TOP: i32 = 414;
const AQI_H: u32 = 330;
const STOCK_TOP: i32 = 756;
const STOCK_H: u32 = 280;
const LEGEND_TOP: i32 = 1052;
const X_LABELS: u32 = 30;

/// Chinese first: readers' machines rarely have the same CJK font, so several are named.
const FONT: &str = "Noto Sans CJK SC, Source Han Sans SC, Microsoft YaHei, PingFang SC, \
                    WenQuanYi Zen Hei, SimHei, sans-serif";

const INK: RGBColor = RGBColor(0x21, 0x21, 0x21);
const MUTED: RGBColor = RGBColor(0x61, 0x61, 0x61);
const GRID: RGBColor = RGBColor(0xDD, 0xDD, 0xDD);
const IDLE: RGBColor = RGBColor(0xF0, 0xF1, 0xF2);
const OBS: RGBColor = RGBColor(0x7F, 0x8C, 0x8D);
const FORECAST: RGBColor = RGBColor(0x6F, 0xA8, 0xDC);
const MEAN: RGBColor = RGBColor(0x15, 0x43, 0x60);
const YELLOW_LINE: RGBColor = RGBColor(0xC9, 0xA2, 0x00);
const ORANGE: RGBColor = RGBColor(0xE6, 0x7E, 0x22);
const RED: RGBColor = RGBColor(0xC0, 0x39, 0x2B);
const DARK_RED: RGBColor = RGBColor(0x78, 0x1F, 0x19);
const PLANTS: [RGBColor; 8] = [
    RGBColor(0x1F, 0x77, 0xB4),
    RGBColor(0x2C, 0xA0, 0x2C),
    RGBColor(0x94, 0x67, 0xBD),
    RGBColor(0x8C, 0x56, 0x4B),
    RGBColor(0xE3, 0x77, 0xC2),
    RGBColor(0x17, 0xBE, 0xCF),
    RGBColor(0x55, 0x55, 0x55),
    RGBColor(0xBC, 0xBD, 0x22),
];

fn text(px: f64, color: &'static RGBColor) -> TextStyle<'static> {
    // plotters writes font-size = size / 1.24: pick the size that gives back exactly `px`
    // when there is one (37.2 / 1.24 is 30.000000000000004: 31 px has one), so the SVG
    // says font-size="31".
    let v = px * 1.24;
    let size = [0i64, 1, -1, 2, -2, 3, -3, 4, -4]
        .iter()
        .map(|d| f64::from_bits((v.to_bits() as i64 + d) as u64))
        .find(|s| s / 1.24 == px)
        .unwrap_or(v);
    TextStyle::from((FONT, size)).color(color)
}

fn at(style: TextStyle<'static>, h: HPos, v: VPos) -> TextStyle<'static> {
    style.pos(Pos::new(h, v))
}

/// Width of a text in pixels, roughly: CJK one em, the rest about half.
fn text_width(s: &str, px: f64) -> i32 {
    let ems: f64 = s
        .chars()
        .map(|c| if c.is_ascii() { 0.56 } else { 1.0 })
        .sum();
    (ems * px).ceil() as i32
}

/// A level's band colour and the colour of text on it.
fn level_color(level: &str) -> (RGBColor, &'static RGBColor) {
    const WHITE_TEXT: &RGBColor = &RGBColor(0xFF, 0xFF, 0xFF);
    match level {
        "L2" => (RGBColor(0xF3, 0x9C, 0x12), &INK),
        "L1" => (RED, WHITE_TEXT),
        "blue" => (RGBColor(0x2E, 0x86, 0xC1), WHITE_TEXT),
        "yellow" => (RGBColor(0xF4, 0xD0, 0x3F), &INK),
        "orange" => (ORANGE, &INK),
        "red" => (RED, WHITE_TEXT),
        "ozone" => (RGBColor(0x8E, 0x44, 0xAD), WHITE_TEXT),
        "so2" => (RGBColor(0x7E, 0x51, 0x09), WHITE_TEXT),
        _ => (RGBColor(0x95, 0xA5, 0xA6), &INK),
    }
}

fn mark_color(k: MarkKind) -> RGBColor {
    match k {
        MarkKind::Move => INK,
        MarkKind::Proposal => RGBColor(0x1F, 0x6F, 0xB2),
        MarkKind::Decision => RGBColor(0x1E, 0x84, 0x49),
        MarkKind::Overdue => RGBColor(0x7D, 0x3C, 0x98),
        MarkKind::Unreached => RED,
    }
}

/// A mark's outline around (x, y): ▼ move, ◆ proposal, ■ decision, ⬢ overdue, ✖ unreached.
fn mark_shape(k: MarkKind, x: i32, y: i32) -> Vec<(i32, i32)> {
    let rel: &[(i32, i32)] = match k {
        MarkKind::Move => &[(-7, -7), (7, -7), (0, 8)],
        MarkKind::Proposal => &[(0, -8), (7, 0), (0, 8), (-7, 0)],
        MarkKind::Decision => &[(-6, -6), (6, -6), (6, 6), (-6, 6)],
        MarkKind::Overdue => &[(-4, -7), (4, -7), (8, 0), (4, 7), (-4, 7), (-8, 0)],
        MarkKind::Unreached => &[
            (-7, -5),
            (-5, -7),
            (0, -2),
            (5, -7),
            (7, -5),
            (2, 0),
            (7, 5),
            (5, 7),
            (0, 2),
            (-5, 7),
            (-7, 5),
            (-2, 0),
        ],
    };
    rel.iter().map(|(dx, dy)| (x + dx, y + dy)).collect()
}

/// The drawing state: the root area and the titles of the polygons drawn so far.
struct Canvas<'a> {
    root: Area<'a>,
    titles: Vec<String>,
}

impl Canvas<'_> {
    fn text(&self, s: &str, pos: (i32, i32), style: TextStyle<'static>) -> Result<(), DrawError> {
        self.root.draw(&Text::new(s.to_string(), pos, style))?;
        Ok(())
    }

    fn rect(&self, a: (i32, i32), b: (i32, i32), color: RGBColor) -> Result<(), DrawError> {
        self.root.draw(&Rectangle::new([a, b], color.filled()))?;
        Ok(())
    }

    /// A mark (or legend symbol) and its title.
    fn mark(&mut self, k: MarkKind, x: i32, y: i32, title: String) -> Result<(), DrawError> {
        self.root
            .draw(&Polygon::new(mark_shape(k, x, y), mark_color(k).filled()))?;
        self.titles.push(title);
        Ok(())
    }
}

pub fn svg(m: &Model) -> Result<String, DrawError> {
    let mut buf = String::new();
    let titles = {
        let root = SVGBackend::with_string(&mut buf, (W, H)).into_drawing_area();
        root.fill(&WHITE)?;
        let plot_w = (W - 2 * MX - LEFT - RIGHT) as i32;
        let axis = TimeAxis::new(m.from, m.to, (plot_w / 110) as usize);
        let mut c = Canvas {
            root,
            titles: Vec::new(),
        };
        heading(&c, m)?;
        bands(&mut c, m, &axis)?;
        aqi(&c, m, &axis)?;
        stock(&c, m, &axis)?;
        legend(&mut c)?;
        c.root.present()?;
        c.titles
    };
    add_titles(&buf, &titles)
}

fn heading(c: &Canvas, m: &Model) -> Result<(), DrawError> {
    let from = when_zh(at_secs(m.from));
    let to = when_zh(at_secs(m.to));
    c.text(
        &format!("{} 应急处置时间线", m.region_name),
        (MX as i32, 14),
        at(text(31.0, &INK), HPos::Left, VPos::Top),
    )?;
    c.text(
        &format!("{from} 至 {to}（北京时间）"),
        (MX as i32, 56),
        at(text(18.0, &MUTED), HPos::Left, VPos::Top),
    )?;
    c.text(
        "鼠标悬停在标记上可见其通知编号",
        ((W - MX) as i32, 56),
        at(text(16.0, &MUTED), HPos::Right, VPos::Top),
    )
}

/// A chart over `area` with the shared time axis and y range; x labels when asked.
fn chart<'a, 'b>(
    area: &'a Area<'b>,
    axis: &TimeAxis,
    y: Range<f64>,
    x_labels: bool,
) -> Result<Chart<'a, 'b>, DrawError> {
    Ok(ChartBuilder::on(area)
        .set_label_area_size(LabelAreaPosition::Left, LEFT)
        .margin_right(RIGHT)
        .set_label_area_size(
            LabelAreaPosition::Bottom,
            if x_labels { X_LABELS } else { 0 },
        )
        .build_cartesian_2d(axis.clone(), y)?)
}

fn sub_area<'b>(c: &Canvas<'b>, top: i32, height: u32) -> Area<'b> {
    c.root
        .clone()
        .shrink((MX, top as u32), (W - 2 * MX, height))
}

fn bands(c: &mut Canvas, m: &Model, axis: &TimeAxis) -> Result<(), DrawError> {
    let rows = TRACKS.len() as i32;
    let area = sub_area(c, BAND_TOP, (rows * ROW) as u32);
    let mut ch = chart(&area, axis, 0.0..1.0, false)?;
    ch.configure_mesh()
        .disable_y_mesh()
        .disable_axes()
        .bold_line_style(GRID)
        .light_line_style(TRANSPARENT)
        .draw()?;
    let (xr, _) = ch.plotting_area().get_pixel_range();
    let x = |t: i64| axis.map(&t, (xr.start, xr.end));
    for (i, t) in TRACKS.iter().enumerate() {
        let top = BAND_TOP + i as i32 * ROW;
        let (y0, y1) = (top + STRIP, top + STRIP + BAND);
        c.text(
            t.label,
            (xr.start - 12, (y0 + y1) / 2),
            at(text(18.0, &INK), HPos::Right, VPos::Center),
        )?;
        c.rect((xr.start, y0), (xr.end, y1), IDLE)?;
        for r in &m.bands[i] {
            let (a, b) = (x(r.from), x(r.to).max(x(r.from) + 1));
            let (fill, ink) = level_color(&r.level);
            c.rect((a, y0), (b, y1), fill)?;
            let label = level_short(&r.level);
            if b - a > text_width(label, 15.5) + 8 {
                c.text(
                    label,
                    ((a + b) / 2, (y0 + y1) / 2),
                    at(text(15.5, ink), HPos::Center, VPos::Center),
                )?;
            }
        }
    }
    // Moves take their exact place first; other marks step aside when one already sits
    // there. Moves are drawn last, on top.
    let mut placed: Vec<(usize, i32)> = Vec::new();
    let mut at_x: Vec<(&super::model::Mark, i32)> = Vec::new();
    let mut order: Vec<_> = m.marks.iter().collect();
    order.sort_by_key(|k| std::cmp::Reverse(k.kind));
    for k in order {
        let x0 = x(k.t);
        let free = |px: i32| {
            !placed
                .iter()
                .any(|&(r, p)| r == k.row && (p - px).abs() < 14)
        };
        let px = [0, 15, -15, 30, -30]
            .iter()
            .map(|d| x0 + d)
            .find(|&p| free(p))
            .unwrap_or(x0);
        placed.push((k.row, px));
        at_x.push((k, px));
    }
    at_x.reverse();
    for (k, px) in at_x {
        let cy = BAND_TOP + k.row as i32 * ROW + STRIP / 2;
        c.mark(k.kind, px, cy, k.title.clone())?;
    }
    Ok(())
}

/// Round `v` up to a multiple of `step`.
fn ceil_to(v: f64, step: f64) -> f64 {
    (v / step).ceil() * step
}

fn line_style(color: RGBColor, width: u32) -> ShapeStyle {
    ShapeStyle {
        color: color.to_rgba(),
        filled: false,
        stroke_width: width,
    }
}

/// A chart's header: its title and, to its right, line samples with their meaning.
fn chart_header(
    c: &Canvas,
    top: i32,
    title: &str,
    keys: &[(String, RGBColor, u32)],
) -> Result<(), DrawError> {
    let x0 = (MX + LEFT) as i32;
    c.text(
        title,
        (x0, top),
        at(text(19.0, &INK), HPos::Left, VPos::Top),
    )?;
    let mut x = x0 + text_width(title, 19.0) + 32;
    for (label, color, width) in keys {
        let y = top + 11;
        c.root.draw(&PathElement::new(
            vec![(x, y), (x + 28, y)],
            line_style(*color, *width),
        ))?;
        c.text(
            label,
            (x + 34, y),
            at(text(16.0, &INK), HPos::Left, VPos::Center),
        )?;
        x += 34 + text_width(label, 16.0) + 24;
    }
    Ok(())
}

/// Horizontal dashed lines at `levels`, labelled in the right column.
fn thresholds(
    c: &Canvas,
    ch: &mut Chart,
    axis: &TimeAxis,
    levels: &[(f64, String, &'static RGBColor)],
) -> Result<(), DrawError> {
    let (from, to) = (axis.range().start, axis.range().end);
    for (v, label, color) in levels {
        ch.draw_series(DashedLineSeries::new(
            [(from, *v), (to, *v)],
            9,
            6,
            line_style(**color, 2),
        ))?;
        let (px, py) = ch.backend_coord(&(to, *v));
        c.text(
            label,
            (px + 8, py),
            at(text(16.0, color), HPos::Left, VPos::Center),
        )?;
    }
    Ok(())
}

fn y_mesh(ch: &mut Chart, desc: &str, x_labels: usize) -> Result<(), DrawError> {
    ch.configure_mesh()
        .bold_line_style(GRID)
        .light_line_style(TRANSPARENT)
        .axis_style(MUTED)
        .x_labels(x_labels)
        .y_labels(6)
        .label_style(text(16.0, &INK))
        .axis_desc_style(text(16.0, &INK))
        .y_desc(desc)
        .y_label_formatter(&|v| format!("{v:.0}"))
        .draw()?;
    Ok(())
}

fn empty_note(c: &Canvas, ch: &Chart, note: &str) -> Result<(), DrawError> {
    // Near the top, clear of the threshold lines.
    let (xr, yr) = ch.plotting_area().get_pixel_range();
    c.text(
        note,
        ((xr.start + xr.end) / 2, yr.start + 12),
        at(text(18.0, &MUTED), HPos::Center, VPos::Top),
    )
}

fn aqi(c: &Canvas, m: &Model, axis: &TimeAxis) -> Result<(), DrawError> {
    chart_header(
        c,
        AQI_TOP,
        "空气质量指数 AQI",
        &[
            ("小时值（观测）".into(), OBS, 1),
            ("小时值（预报，无观测时）".into(), FORECAST, 2),
            ("24小时滑动均值 M".into(), MEAN, 3),
        ],
    )?;
    let max = m
        .obs
        .iter()
        .chain(&m.fc)
        .map(|h| h.value)
        .chain(m.m.iter().map(|p| p.1))
        .fold(320.0, f64::max);
    let area = sub_area(c, AQI_TOP + 30, AQI_H - 30);
    let mut ch = chart(&area, axis, 0.0..ceil_to(max * 1.05, 50.0), true)?;
    y_mesh(&mut ch, "AQI", 40)?;
    thresholds(
        c,
        &mut ch,
        axis,
        &[
            (150.0, "150".into(), &YELLOW_LINE),
            (200.0, "200".into(), &ORANGE),
            (300.0, "300".into(), &RED),
        ],
    )?;
    let width = ch.plotting_area().get_pixel_range().0.len() as i32;
    let col = |t: i64| axis.column(t, width);
    let hourly = |v: &[super::model::HourValue]| -> Vec<(i64, f64)> {
        v.iter().map(|h| (h.t, h.value)).collect()
    };
    for (pts, color, w) in [
        (hourly(&m.fc), FORECAST, 2),
        (hourly(&m.obs), OBS, 1),
        (m.m.clone(), MEAN, 3),
    ] {
        for seg in segments(&pts, 3600) {
            ch.draw_series(LineSeries::new(thin(&seg, col), line_style(color, w)))?;
        }
    }
    if m.obs.is_empty() && m.fc.is_empty() {
        empty_note(c, &ch, "本时段无空气质量数据")?;
    }
    Ok(())
}

fn stock(c: &Canvas, m: &Model, axis: &TimeAxis) -> Result<(), DrawError> {
    let keys: Vec<(String, RGBColor, u32)> = m
        .stock
        .iter()
        .enumerate()
        .map(|(i, (plant, _))| (plant.clone(), PLANTS[i % PLANTS.len()], 2))
        .collect();
    chart_header(c, STOCK_TOP, "重点电厂存煤可用天数", &keys)?;
    let max = m
        .stock
        .iter()
        .flat_map(|(_, p)| p.iter().map(|x| x.1))
        .fold(25.0, f64::max);
    let area = sub_area(c, STOCK_TOP + 30, STOCK_H - 30);
    let mut ch = chart(&area, axis, 0.0..ceil_to(max * 1.08, 5.0), true)?;
    y_mesh(&mut ch, "天", 40)?;
    thresholds(
        c,
        &mut ch,
        axis,
        &[
            (20.0, "20天 二级".into(), &ORANGE),
            (15.0, "15天 一级".into(), &RED),
            (
                m.beyond_l1_days,
                format!("{}天", m.beyond_l1_days),
                &DARK_RED,
            ),
        ],
    )?;
    let width = ch.plotting_area().get_pixel_range().0.len() as i32;
    let col = |t: i64| axis.column(t, width);
    for (i, (_, readings)) in m.stock.iter().enumerate() {
        let color = PLANTS[i % PLANTS.len()];
        for seg in steps(readings, m.stock_gap, m.from, m.to) {
            ch.draw_series(LineSeries::new(thin(&seg, col), line_style(color, 2)))?;
        }
    }
    if m.stock.is_empty() {
        empty_note(c, &ch, "本时段无重点电厂存煤数据")?;
    }
    Ok(())
}

fn legend(c: &mut Canvas) -> Result<(), DrawError> {
    let mut x = (MX + LEFT) as i32;
    let y = LEGEND_TOP + 12;
    c.text(
        "标记：",
        (x - 12, y),
        at(text(16.0, &INK), HPos::Right, VPos::Center),
    )?;
    for k in MarkKind::ALL {
        c.mark(k, x + 8, y, format!("图例：{}", k.legend()))?;
        c.text(
            k.legend(),
            (x + 22, y),
            at(text(16.0, &INK), HPos::Left, VPos::Center),
        )?;
        x += 22 + text_width(k.legend(), 16.0) + 30;
    }
    let groups: [(&str, &[&str]); 3] = [
        ("煤炭保供", &["L2", "L1"]),
        ("重污染", &["yellow", "orange", "red", "ozone", "so2"]),
        ("叫应", &["blue", "yellow", "orange", "red"]),
    ];
    let y = LEGEND_TOP + 46;
    let mut x = (MX + LEFT) as i32;
    c.text(
        "级别：",
        (x - 12, y),
        at(text(16.0, &INK), HPos::Right, VPos::Center),
    )?;
    for (name, levels) in groups {
        c.text(name, (x, y), at(text(16.0, &INK), HPos::Left, VPos::Center))?;
        x += text_width(name, 16.0) + 8;
        for l in levels {
            let (fill, ink) = level_color(l);
            let label = level_short(l);
            let w = text_width(label, 15.5) + 12;
            c.rect((x, y - 11), (x + w, y + 11), fill)?;
            c.text(
                label,
                (x + w / 2, y),
                at(text(15.5, ink), HPos::Center, VPos::Center),
            )?;
            x += w + 4;
        }
        x += 28;
    }
    Ok(())
}

/// Splits points (in time order) where consecutive ones are more than `gap` apart.
fn segments(pts: &[(i64, f64)], gap: i64) -> Vec<Vec<(i64, f64)>> {
    let mut out: Vec<Vec<(i64, f64)>> = Vec::new();
    for &p in pts {
        match out.last_mut() {
            Some(s) if p.0 - s.last().expect("non-empty").0 <= gap => s.push(p),
            _ => out.push(vec![p]),
        }
    }
    out
}

/// Step lines of stock readings: each value holds until the next reading, for at most
/// `gap` (a plant silent longer than its data-gap period leaves a hole); clipped to
/// [from, to].
fn steps(readings: &[(i64, f64)], gap: i64, from: i64, to: i64) -> Vec<Vec<(i64, f64)>> {
    let mut out: Vec<Vec<(i64, f64)>> = Vec::new();
    let mut cur: Vec<(i64, f64)> = Vec::new();
    for (i, &(t, v)) in readings.iter().enumerate() {
        cur.push((t, v));
        match readings.get(i + 1) {
            Some(&(next, _)) if next - t <= gap => cur.push((next, v)),
            _ => {
                cur.push(((t + gap).min(to), v));
                out.push(std::mem::take(&mut cur));
            }
        }
    }
    out.into_iter()
        .map(|s| {
            s.into_iter()
                .map(|(t, v)| (t.clamp(from, to), v))
                .collect::<Vec<_>>()
        })
        .filter(|s| s.first().map(|p| p.0) != s.last().map(|p| p.0))
        .collect()
}

/// At most four points per pixel column (the first, lowest, highest and last, in time
/// order): the line looks the same and a year of hours stays small.
fn thin(pts: &[(i64, f64)], col: impl Fn(i64) -> i32) -> Vec<(i64, f64)> {
    let mut out = Vec::with_capacity(pts.len().min(4096));
    let mut i = 0;
    while i < pts.len() {
        let c = col(pts[i].0);
        let j = i + pts[i..].iter().take_while(|p| col(p.0) == c).count();
        let g = &pts[i..j];
        if g.len() <= 4 {
            out.extend_from_slice(g);
        } else {
            let lo = (0..g.len()).fold(0, |a, k| if g[k].1 < g[a].1 { k } else { a });
            let hi = (0..g.len()).fold(0, |a, k| if g[k].1 > g[a].1 { k } else { a });
            let mut idx = [0, lo, hi, g.len() - 1];
            idx.sort_unstable();
            let mut last = usize::MAX;
            for k in idx {
                if k != last {
                    out.push(g[k]);
                    last = k;
                }
            }
        }
        i = j;
    }
    out
}

/// Gives the n-th `<polygon .../>` of `svg` the n-th title (plotters writes one element
/// a line).
fn add_titles(svg: &str, titles: &[String]) -> Result<String, DrawError> {
    let mut out =
        String::with_capacity(svg.len() + titles.iter().map(|t| t.len() + 32).sum::<usize>());
    let mut next = titles.iter();
    for line in svg.split_inclusive('\n') {
        let Some(body) = line
            .starts_with("<polygon ")
            .then(|| line.trim_end().strip_suffix("/>"))
            .flatten()
        else {
            out.push_str(line);
            continue;
        };
        let title = next
            .next()
            .ok_or_else(|| DrawError("more polygons than titles".into()))?;
        out.push_str(body);
        out.push_str("><title>");
        escape_into(&mut out, title);
        out.push_str("</title></polygon>\n");
    }
    if next.next().is_some() {
        return Err(DrawError("fewer polygons than titles".into()));
    }
    Ok(out)
}

fn escape_into(out: &mut String, s: &str) {
    for ch in s.chars() {
        match ch {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thin_keeps_extremes_and_ends_of_each_column() {
        let pts: Vec<(i64, f64)> = (0..100)
            .map(|i| (i, f64::from((i * 37 % 11) as i32)))
            .collect();
        let out = thin(&pts, |t| (t / 50) as i32);
        assert!(out.len() <= 8, "{out:?}");
        assert_eq!(out.first(), pts.first());
        assert_eq!(out.last(), pts.last());
        for half in [0..50, 50..100] {
            let (lo, hi) = pts[half.clone()]
                .iter()
                .fold((f64::MAX, f64::MIN), |(l, h), p| (l.min(p.1), h.max(p.1)));
            let kept: Vec<f64> = out
                .iter()
                .filter(|p| half.contains(&(p.0 as usize)))
                .map(|p| p.1)
                .collect();
            assert!(kept.contains(&lo) && kept.contains(&hi), "{kept:?}");
        }
    }

    #[test]
    fn steps_hold_each_value_and_break_at_silences() {
        let day = 86400;
        let r = [(0, 18.0), (day, 16.0), (10 * day, 14.0)];
        let s = steps(&r, 3 * day, 0, 20 * day);
        assert_eq!(
            s,
            vec![
                vec![(0, 18.0), (day, 18.0), (day, 16.0), (4 * day, 16.0)],
                vec![(10 * day, 14.0), (13 * day, 14.0)],
            ]
        );
    }

    #[test]
    fn titles_go_to_polygons_in_order_and_counts_must_agree() {
        let svg = "<svg>\n<polygon points=\"1,1\" fill=\"#000\"/>\n<rect/>\n<polygon points=\"2,2\"/>\n</svg>\n";
        let out = add_titles(svg, &["a<b".into(), "c".into()]).unwrap();
        assert!(
            out.contains("<polygon points=\"1,1\" fill=\"#000\"><title>a&lt;b</title></polygon>")
        );
        assert!(out.contains("<polygon points=\"2,2\"><title>c</title></polygon>"));
        assert!(add_titles(svg, &["a".into()]).is_err());
        assert!(add_titles(svg, &["a".into(), "b".into(), "c".into()]).is_err());
    }
}
