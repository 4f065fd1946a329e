use std::sync::Arc;

use super::*;
use crate::notice::{Kind, Plan};
use crate::replay::{feed_scenario_watched, Watch};
use crate::time::{at_secs, parse_ts};

fn cfg() -> Config {
    Config::from_toml("").unwrap().config
}

fn ts(s: &str) -> Ts {
    parse_ts(s).unwrap()
}

fn span(from: &str, to: &str) -> Span {
    Span {
        from: ts(from),
        to: ts(to),
    }
}

fn notice(at: &str, track: &str, kind: Kind, previous: &str, level: &str, id: &str) -> Notice {
    let mut n = Notice::new(Plan::HeavyPollution, track, kind, level).previous(previous);
    n.at = ts(at);
    n.region = "shuozhou".into();
    n.id = id.into();
    n
}

/// Replays scenario text with a recorder.
fn record(cfg: &Arc<Config>, scenario: &str) -> Recorder {
    let mut rec = Recorder::new(cfg);
    feed_scenario_watched(
        &mut crate::Engine::new(Arc::clone(cfg)),
        "<test>",
        scenario.as_bytes(),
        &mut |_| {},
        &mut |_, _| {},
        &mut Watch {
            progress: None,
            timeline: Some(&mut rec),
        },
    )
    .unwrap();
    rec
}

#[test]
fn bands_follow_the_moves_and_start_at_the_first_moves_previous_level() {
    let notices = [
        notice(
            "2023-12-01T10:00:00+08:00",
            "graded",
            Kind::Escalate,
            "yellow",
            "orange",
            "heavy_pollution/shuozhou/graded/4",
        ),
        notice(
            "2023-12-02T10:00:00+08:00",
            "graded",
            Kind::Terminate,
            "orange",
            "none",
            "heavy_pollution/shuozhou/graded/9",
        ),
    ];
    let m = model::Model::new(
        &cfg(),
        "shuozhou",
        span("2023-12-01T08:00:00+08:00", "2023-12-03T08:00:00+08:00"),
        &notices,
        &RegionSeries::default(),
    );
    let graded = &m.bands[model::row_of("graded").unwrap()];
    let runs: Vec<(String, String, &str)> = graded
        .iter()
        .map(|r| {
            (
                crate::time::fmt_ts(at_secs(r.from)),
                crate::time::fmt_ts(at_secs(r.to)),
                r.level.as_str(),
            )
        })
        .collect();
    assert_eq!(
        runs,
        [
            (
                "2023-12-01T08:00:00+08:00".to_string(),
                "2023-12-01T10:00:00+08:00".to_string(),
                "yellow"
            ),
            (
                "2023-12-01T10:00:00+08:00".to_string(),
                "2023-12-02T10:00:00+08:00".to_string(),
                "orange"
            ),
        ]
    );
    assert_eq!(m.marks.len(), 2);
    assert_eq!(
        m.marks[0].title,
        "2023年12月1日 10:00 重污染 分级 升级 黄色预警→橙色预警（heavy_pollution/shuozhou/graded/4）"
    );
}

#[test]
fn m_is_the_plans_24_hour_mean_and_needs_20_hours() {
    let cfg = Arc::new(cfg());
    // 30 hours of AQI 100, 200, 100, 200, …; hour 25 missing.
    let mut s = String::new();
    for h in 1..=30 {
        if h == 25 {
            continue;
        }
        let t = at_secs(ts("2023-12-01T00:00:00+08:00").timestamp() + h * 3600);
        let aqi = if h % 2 == 0 { 200 } else { 100 };
        s += &format!(
            "{{\"at\": \"{0}\", \"topic\": \"ers/shuozhou/air/aqi\", \"payload\": {{\"ts\": \"{0}\", \"aqi\": {aqi}, \"primary\": \"PM2.5\"}}}}\n",
            crate::time::fmt_ts(t)
        );
    }
    let rec = record(&cfg, &s);
    let m = model::Model::new(
        &cfg,
        "shuozhou",
        rec.span().unwrap(),
        rec.notices(),
        rec.region(0),
    );
    assert_eq!(m.obs.len(), 29);
    assert_eq!(m.obs[0].note, "PM2.5");
    // The first valid mean is at hour 20 (20 values: 1..=20), the mean of 10 × 100 and
    // 10 × 200.
    let first = m.m[0];
    assert_eq!(
        crate::time::fmt_ts(at_secs(first.0)),
        "2023-12-01T20:00:00+08:00"
    );
    assert_eq!(first.1, 150.0);
    // At hour 30: hours 7..=30 without 25 = 23 values: 12 × 200 (even) and 11 × 100.
    let last = m.m.last().unwrap();
    assert_eq!((last.1 * 23.0).round(), 3500.0);
}

#[test]
fn decisions_come_from_accepted_commands_only() {
    let cfg = Arc::new(cfg());
    let s = r#"
{"at": "2023-12-01T08:00:00+08:00", "topic": "ers/shuozhou/cmd", "payload": {"cmd": "manual", "plan": "coal_supply", "level": "L2", "reason": "运输受阻", "by": "能源局"}}
{"at": "2023-12-01T09:00:00+08:00", "topic": "ers/shuozhou/cmd", "payload": {"cmd": "approve", "proposal_id": "coal_supply/shuozhou/supply/proposal/9", "by": "x"}}
{"at": "2023-12-01T10:00:00+08:00", "topic": "ers/shuozhou/cmd", "payload": {"cmd": "manual", "plan": "coal_supply", "level": "none", "reason": "恢复", "by": "能源局"}}
"#;
    let rec = record(&cfg, s);
    let texts: Vec<&str> = rec
        .region(0)
        .decisions
        .iter()
        .map(|d| d.text.as_str())
        .collect();
    // The approve names no proposal that was made: rejected, not a decision.
    assert_eq!(
        texts,
        [
            "人工预警二级（能源局）：运输受阻",
            "人工预警解除（能源局）：恢复"
        ]
    );
    let p = rec.draw(&cfg, 0).unwrap();
    assert!(p
        .svg
        .contains("<title>2023年12月1日 08:00 煤炭保供 人工预警二级（能源局）：运输受阻</title>"));
    assert!(p
        .csv
        .contains("2023-12-01T08:00:00+08:00,,decision,supply,,,2023年12月1日 08:00 煤炭保供 人工预警二级（能源局）：运输受阻\n"));
}

/// A year of hourly values: at most four points per pixel column in each line, and the
/// SVG stays small; the CSV keeps every hour.
#[test]
fn a_year_of_hours_is_thinned_to_the_pixels() {
    let cfg = cfg();
    let mut series = RegionSeries::default();
    let start = ts("2023-01-01T00:00:00+08:00").timestamp();
    let hours = 365 * 24;
    for h in 1..=hours {
        let t = at_secs(start + h * 3600);
        let o = crate::input::AqiObs {
            ts: t,
            aqi: f64::from((h * 7919 % 400) as i32),
            primary: vec![],
            so2_ug_m3: None,
            cause: None,
            iaqi: None,
        };
        series.record(&cfg, t, &crate::input::Input::AirAqi(o));
    }
    let span = Span {
        from: at_secs(start),
        to: at_secs(start + hours * 3600),
    };
    let p = draw(&cfg, "shuozhou", span, &[], &series).unwrap();
    let most = p
        .svg
        .lines()
        .filter(|l| l.starts_with("<polyline"))
        .map(|l| l.split("points=\"").nth(1).unwrap().split(' ').count())
        .max()
        .unwrap();
    assert!(most <= 4 * 1400, "{most} points in one line");
    assert!(most > 1000, "{most}: the line is still drawn");
    assert!(p.svg.len() < 1_000_000, "{} bytes", p.svg.len());
    assert_eq!(
        p.csv.lines().filter(|l| l.contains(",aqi,")).count(),
        hours as usize
    );
}
