//! Rule edges with explicit times (PLANS.md §2). Times are +08:00.

use std::sync::Arc;

use chrono::Duration;
use serde_json::{json, Value};

use super::series::{stamp_of, Series, Stamp, View};
use crate::config::Config;
use crate::engine::Engine;
use crate::input::{self, Input};
use crate::notice::{Kind, Notice};
use crate::time::{fmt_ts, parse_ts, Ts};

fn t(s: &str) -> Ts {
    parse_ts(s).unwrap()
}

struct Rig {
    e: Engine,
    cfg: Arc<Config>,
    out: Vec<Notice>,
}

impl Rig {
    fn new(toml: &str) -> Rig {
        let cfg = Arc::new(Config::from_toml(toml).unwrap().config);
        Rig {
            e: Engine::new(Arc::clone(&cfg)),
            cfg,
            out: Vec::new(),
        }
    }

    /// Sends a payload; returns the notices it made (also kept in `out`).
    fn send(&mut self, at: Ts, feed: &str, payload: Value) -> Vec<Notice> {
        let topic = format!("ers/shuozhou/{feed}");
        let msg = input::parse(&self.cfg, &topic, payload.to_string().as_bytes(), at)
            .unwrap_or_else(|r| panic!("{r}"));
        let step = self.e.handle(at, &msg);
        self.out.extend(step.notices.clone());
        if let Some(r) = step.rejection {
            self.out.push(Notice::new(
                crate::notice::Plan::HeavyPollution,
                "refused",
                Kind::Suggestion,
                &r.reason,
            ));
        }
        step.notices
    }

    /// Hourly observations at `aqi` for stamps start, start+1h, … (n of them), each
    /// arriving 5 minutes after its stamp.
    fn obs(&mut self, start: Ts, n: i64, aqi: f64, primary: &str) -> Vec<Notice> {
        let mut all = Vec::new();
        for k in 0..n {
            let ts = start + Duration::hours(k);
            all.extend(self.send(
                ts + Duration::minutes(5),
                "air/aqi",
                json!({"ts": fmt_ts(ts), "aqi": aqi, "primary": primary}),
            ));
        }
        all
    }

    fn forecast(&mut self, at: Ts, hours: &[(Ts, f64)]) -> Vec<Notice> {
        let hs: Vec<Value> = hours
            .iter()
            .map(|(ts, a)| json!({"ts": fmt_ts(*ts), "aqi": a, "primary": "PM2.5"}))
            .collect();
        self.send(
            at,
            "air/forecast",
            json!({"issued": fmt_ts(at), "hours": hs}),
        )
    }
}

fn moves(ns: &[Notice]) -> Vec<(String, String, String)> {
    ns.iter()
        .filter(|n| n.kind.is_move())
        .map(|n| (n.kind.as_str().to_string(), n.level.clone(), fmt_ts(n.at)))
        .collect()
}

/// Hourly values from `start` for `n` hours.
fn run(start: Ts, n: i64, aqi: f64) -> Vec<(Ts, f64)> {
    (0..n).map(|k| (start + Duration::hours(k), aqi)).collect()
}

/// §2 "valid only with at least 20 of the 24 values": 19 observed hours warn nothing,
/// the 20th activates (M = 250 > 200, C(200,24)).
#[test]
fn exactly_20_valid_hours_make_a_valid_mean() {
    let mut r = Rig::new("");
    let start = t("2023-12-01T01:00:00+08:00");
    assert!(moves(&r.obs(start, 19, 250.0, "PM2.5")).is_empty());
    let n = r.obs(start + Duration::hours(19), 1, 250.0, "PM2.5");
    assert_eq!(
        moves(&n),
        vec![(
            "activate".into(),
            "yellow".into(),
            "2023-12-01T20:05:00+08:00".into()
        )]
    );
    assert_eq!(n[0].urgent, Some(true));
    assert_eq!(n[0].evidence["lead_hours"], 0);
    assert_eq!(n[0].evidence["expected_start"], "2023-12-01T20:00:00+08:00");
    assert_eq!(n[1].kind, Kind::ReportFirst);
}

/// §2 "M is not rounded: M > X means sum > X·count": a mean of exactly 200 is not > 200.
#[test]
fn mean_exactly_200_is_not_above_200() {
    let mut r = Rig::new("");
    let start = t("2023-12-01T01:00:00+08:00");
    assert!(moves(&r.obs(start, 24, 200.0, "PM2.5")).is_empty());
    // One more point in the window: sum 4801 > 4800.
    let ts = start + Duration::hours(23);
    let n = r.send(
        ts + Duration::minutes(30),
        "air/aqi",
        json!({"ts": fmt_ts(ts), "aqi": 201, "primary": "PM2.5"}),
    );
    assert_eq!(moves(&n).len(), 1, "{n:?}");
}

/// An M of 20 values averaging 200.05 (sum 4001 over 20) is above 200 even though it
/// rounds to 200.
#[test]
fn unrounded_mean_above_200() {
    let mut r = Rig::new("");
    let start = t("2023-12-01T01:00:00+08:00");
    r.obs(start, 19, 200.0, "PM2.5");
    let n = r.obs(start + Duration::hours(19), 1, 201.0, "PM2.5");
    assert_eq!(moves(&n).len(), 1);
}

/// The lift story of `pollution-lift`: F1 warns yellow (24 h at 260 from 12-01 11:00).
fn lift_rig(forecast_hours: i64) -> Rig {
    let mut r = Rig::new("");
    let s = t("2023-12-01T11:00:00+08:00");
    let mut hours = run(s, 24, 260.0);
    hours.extend(run(s + Duration::hours(24), forecast_hours - 24, 60.0));
    let n = r.forecast(t("2023-12-01T10:00:00+08:00"), &hours);
    assert_eq!(moves(&n)[0].0, "activate");
    r
}

/// Rule 3 needs S for all of the next 36 hours: a forecast ending at h0+34 blocks the
/// lift; one ending at h0+35 allows it.
#[test]
fn forecast_ending_before_36h_blocks_the_lift() {
    // h0 = 12-02 18:00; h0+35 = 12-04 05:00 = stamp 12-01 11:00 + 66 h.
    let mut r = lift_rig(66);
    let at = t("2023-12-02T18:05:00+08:00");
    let n = r.send(
        at,
        "air/aqi",
        json!({"ts": "2023-12-02T18:00:00+08:00", "aqi": 55, "primary": null}),
    );
    assert!(moves(&n).is_empty(), "{n:?}");
    let mut r = lift_rig(67);
    let n = r.send(
        at,
        "air/aqi",
        json!({"ts": "2023-12-02T18:00:00+08:00", "aqi": 55, "primary": null}),
    );
    assert_eq!(moves(&n)[0].0, "terminate");
    // n[0] is the daily report of 12-02 08:00 (a timer due before the message).
    assert_eq!(n[0].kind, Kind::ReportFollowup);
    assert_eq!(n[2].kind, Kind::ReportFinal);
    assert_eq!(n[2].level, "yellow");
}

/// Rule 3: at h0 = 12-02 17:00 M(h0) = 201.46 > 200 still warns: no lift yet.
#[test]
fn no_lift_while_the_horizon_still_warns() {
    let mut r = lift_rig(96);
    let n = r.send(
        t("2023-12-02T17:05:00+08:00"),
        "air/aqi",
        json!({"ts": "2023-12-02T17:00:00+08:00", "aqi": 55, "primary": null}),
    );
    assert!(moves(&n).is_empty());
}

/// Rule 4 needs S known for the next 36 hours: the same forecast cut short blocks the
/// downgrade (orange -> yellow at h0 = 12-03 18:00).
#[test]
fn forecast_ending_before_36h_blocks_the_downgrade() {
    for (len, expect) in [(90, false), (91, true)] {
        let mut r = Rig::new("");
        let s = t("2023-12-01T11:00:00+08:00");
        let mut hours = run(s, 48, 260.0);
        hours.extend(run(s + Duration::hours(48), len - 48, 60.0));
        let n = r.forecast(t("2023-12-01T10:00:00+08:00"), &hours);
        assert_eq!(moves(&n)[0].1, "orange");
        // h0 = 12-03 18:00 = s + 55 h: orange (C(200,48), up to 12-03 17:00) has left the
        // horizon, yellow remains (C(150,48)); S must be known up to h0+35 = s + 90 h.
        let n = r.send(
            t("2023-12-03T18:05:00+08:00"),
            "air/aqi",
            json!({"ts": "2023-12-03T18:00:00+08:00", "aqi": 60, "primary": null}),
        );
        let m = moves(&n);
        if expect {
            assert_eq!(
                m,
                vec![(
                    "downgrade".into(),
                    "yellow".into(),
                    "2023-12-03T18:05:00+08:00".into()
                )],
                "len {len}"
            );
        } else {
            assert!(m.is_empty(), "len {len}: {m:?}");
        }
    }
}

/// §2 "the value for h of the forecast with the latest issued": a newer forecast replaces
/// the older for the hours it lists only; an older one arriving late replaces nothing.
#[test]
fn a_new_forecast_replaces_an_old_one_for_the_hours_it_covers() {
    let mut s = Series::default();
    let f = |issued: &str, from: &str, n: i64, aqi: f64| input::Forecast {
        issued: t(issued),
        daily: false,
        ignored_hours: 0,
        hours: run(t(from), n, aqi)
            .into_iter()
            .map(|(ts, a)| input::ForecastHour {
                ts,
                aqi: a,
                aqi_low: None,
                primary: vec![],
                so2_ug_m3: None,
            })
            .collect(),
    };
    s.add_forecast(&f(
        "2023-12-01T10:00:00+08:00",
        "2023-12-01T11:00:00+08:00",
        10,
        250.0,
    ));
    s.add_forecast(&f(
        "2023-12-01T12:00:00+08:00",
        "2023-12-01T15:00:00+08:00",
        3,
        80.0,
    ));
    s.add_forecast(&f(
        "2023-12-01T09:00:00+08:00",
        "2023-12-01T11:00:00+08:00",
        10,
        10.0,
    ));
    let at = |s: &Series, h: &str| s.hour(stamp_of(t(h))).aqi;
    assert_eq!(at(&s, "2023-12-01T14:00:00+08:00"), 250.0);
    assert_eq!(at(&s, "2023-12-01T15:00:00+08:00"), 80.0);
    assert_eq!(at(&s, "2023-12-01T17:00:00+08:00"), 80.0);
    assert_eq!(at(&s, "2023-12-01T18:00:00+08:00"), 250.0);
    assert!(!s.hour(stamp_of(t("2023-12-01T21:00:00+08:00"))).known);
    // Same issued: the later arrival wins.
    s.add_forecast(&f(
        "2023-12-01T12:00:00+08:00",
        "2023-12-01T15:00:00+08:00",
        1,
        90.0,
    ));
    assert_eq!(at(&s, "2023-12-01T15:00:00+08:00"), 90.0);
}

/// An observation wins over a forecast; a dust observation hides the forecast, is missing
/// in M, but is known and <= 100 for rules 3 and 4 (§1.3).
#[test]
fn dust_hides_the_forecast_and_is_missing_in_m() {
    let mut s = Series::default();
    let obs = |ts: &str, aqi: f64, cause| input::AqiObs {
        ts: t(ts),
        aqi,
        primary: vec![crate::aqi::Pollutant::Pm10],
        so2_ug_m3: Some(20.0),
        cause,
        iaqi: None,
    };
    let h0 = t("2023-12-02T00:00:00+08:00");
    for k in 0..24 {
        let ts = fmt_ts(h0 - Duration::hours(k));
        let cause = (k < 5).then_some(input::Cause::Dust);
        s.add_obs(&obs(&ts, 400.0, cause));
    }
    let v = View::new(&s, stamp_of(h0), 72);
    let m = v.m(stamp_of(h0));
    assert_eq!(m.count, 19, "5 dust hours are missing");
    assert!(!m.valid());
    assert!(v.s(stamp_of(h0)).good(), "dust counts as <= 100 for rule 3");
    assert!(!v.s(stamp_of(h0) - 6).good());
    assert_eq!(v.s(stamp_of(h0)).so2, Some(20.0), "its SO2 still counts");
}

/// §2 primary pollutant: most votes; a tie or no votes: PM2.5; O3 means go to ozone.
#[test]
fn primary_votes() {
    use super::series::primary_of;
    use crate::aqi::Pollutant;
    assert_eq!(primary_of(&[0; 6]), Pollutant::Pm25);
    assert_eq!(primary_of(&[0, 0, 3, 0, 3, 0]), Pollutant::Pm25);
    assert_eq!(primary_of(&[0, 0, 2, 0, 3, 1]), Pollutant::O3);
    assert_eq!(
        primary_of(&[3, 3, 5, 0, 0, 0]),
        Pollutant::Pm10,
        "a tie below the most"
    );
    assert_eq!(primary_of(&[5, 0, 0, 0, 0, 5]), Pollutant::Pm25);
    assert_eq!(primary_of(&[4, 1, 0, 0, 0, 0]), Pollutant::So2);
    for (i, p) in Pollutant::ALL.iter().enumerate() {
        assert_eq!(super::series::pidx(*p), i, "{p:?}");
    }
    // 20 ozone hours at 220: the ozone track activates, the graded one does not.
    let mut r = Rig::new("");
    let n = r.obs(t("2023-12-01T01:00:00+08:00"), 20, 220.0, "O3");
    let m: Vec<_> = n.iter().filter(|n| n.kind.is_move()).collect();
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].track, "ozone");
    assert_eq!(m[0].level, "ozone");
}

/// Rule 6: approve / reject of an unknown or no longer pending proposal is refused and
/// changes nothing.
#[test]
fn unknown_proposals_are_refused() {
    let mut r = Rig::new("[pollution]\nrequire_approval = true\n");
    let n = r.obs(t("2023-12-01T01:00:00+08:00"), 20, 250.0, "PM2.5");
    assert_eq!(n.last().unwrap().kind, Kind::Proposal);
    let pid = n.last().unwrap().id.clone();
    assert_eq!(pid, "heavy_pollution/shuozhou/graded/proposal/1");
    let at = t("2023-12-01T20:30:00+08:00");
    let bad = r.send(at, "cmd", json!({"cmd": "approve", "proposal_id": "heavy_pollution/shuozhou/graded/proposal/9", "by": "x"}));
    assert!(bad.is_empty());
    assert_eq!(r.out.last().unwrap().track, "refused");
    let ok = r.send(
        at,
        "cmd",
        json!({"cmd": "reject", "proposal_id": pid, "by": "x", "reason": "no"}),
    );
    assert!(ok.is_empty());
    let again = r.send(
        at,
        "cmd",
        json!({"cmd": "approve", "proposal_id": pid, "by": "x"}),
    );
    assert!(again.is_empty());
    assert_eq!(r.out.last().unwrap().track, "refused");
    // Rejected level yellow is not proposed again by the next hour's evaluation, and no
    // reminder comes for the rejected proposal.
    let n = r.obs(t("2023-12-01T21:00:00+08:00"), 2, 250.0, "PM2.5");
    assert!(
        n.iter()
            .all(|n| n.kind != Kind::Proposal && n.kind != Kind::Reminder),
        "{n:?}"
    );
}

/// Parsing a topic to an input for the unit tests above.
#[test]
fn rig_parses_air_inputs() {
    let r = Rig::new("");
    let m = input::parse(
        &r.cfg,
        "ers/shuozhou/air/aqi",
        br#"{"ts": "2023-12-01T01:00:00+08:00", "aqi": 50, "primary": null}"#,
        t("2023-12-01T01:05:00+08:00"),
    )
    .unwrap();
    assert!(matches!(m.input, Input::AirAqi(_)));
}

/// §3.2.1(3) red = C(200,72) "且" M(s) > 300 for some s in [h-48h, h]: at AQI 300 the 72 h
/// condition holds from the 64th hour but M = 300 is not > 300 (orange stays); at 301, red.
#[test]
fn red_needs_a_mean_above_300() {
    for (aqi, top) in [(300.0, "orange"), (301.0, "red")] {
        let mut r = Rig::new("");
        let n = r.obs(t("2023-12-01T01:00:00+08:00"), 66, aqi, "PM2.5");
        let m = moves(&n);
        assert_eq!(m.last().unwrap().1, top, "{aqi}: {m:?}");
        if top == "red" {
            assert_eq!(m.last().unwrap().2, "2023-12-03T16:05:00+08:00");
        }
    }
}

/// Rule 5: a province floor is in force from its issue until the province's lift, even
/// when its start lies beyond the horizon; rule 3 never applies meanwhile. The lift
/// then lets rules 1–4 run in the same evaluation.
#[test]
fn a_floor_beyond_the_horizon_still_blocks_the_lift() {
    let mut r = lift_rig(96);
    let n = r.send(
        t("2023-12-02T17:30:00+08:00"),
        "air/province",
        json!({"ts": "2023-12-02T17:30:00+08:00", "action": "issue", "level": "orange",
               "start": "2023-12-06T00:00:00+08:00"}),
    );
    assert!(moves(&n).is_empty(), "{n:?}");
    let n = r.send(
        t("2023-12-02T18:05:00+08:00"),
        "air/aqi",
        json!({"ts": "2023-12-02T18:00:00+08:00", "aqi": 55, "primary": null}),
    );
    assert!(moves(&n).is_empty(), "{n:?}");
    let n = r.send(
        t("2023-12-02T18:30:00+08:00"),
        "air/province",
        json!({"ts": "2023-12-02T18:30:00+08:00", "action": "lift"}),
    );
    assert_eq!(
        moves(&n),
        vec![(
            "terminate".into(),
            "none".into(),
            "2023-12-02T18:30:00+08:00".into()
        )]
    );
}

/// Rule 6: a move reached only because of the floor skips approval, and voids the pending
/// proposal silently (no reminder follows).
#[test]
fn floor_moves_skip_approval_and_void_the_pending_proposal() {
    let mut r = Rig::new("[pollution]\nrequire_approval = true\n");
    let n = r.obs(t("2023-12-01T01:00:00+08:00"), 20, 250.0, "PM2.5");
    assert_eq!(n.last().unwrap().kind, Kind::Proposal);
    let n = r.send(
        t("2023-12-01T21:00:00+08:00"),
        "air/province",
        json!({"ts": "2023-12-01T21:00:00+08:00", "action": "issue", "level": "orange"}),
    );
    assert_eq!(
        moves(&n),
        vec![(
            "activate".into(),
            "orange".into(),
            "2023-12-01T21:00:00+08:00".into()
        )]
    );
    let later = r.e.advance_to(t("2023-12-02T00:00:00+08:00"));
    assert!(later.iter().all(|n| n.kind != Kind::Reminder), "{later:?}");
}

/// Recovery is replay from a snapshot: the plan's whole state (series, floor, pending
/// proposal, episode, feed clocks) survives a snapshot and gives the same notices.
#[test]
fn state_survives_a_snapshot() {
    let toml = "[pollution]\nrequire_approval = true\n";
    let start = t("2023-12-01T01:00:00+08:00");
    let mut a = Rig::new(toml);
    a.obs(start, 20, 250.0, "PM2.5");
    a.send(
        t("2023-12-01T20:10:00+08:00"),
        "air/province",
        json!({"ts": "2023-12-01T20:10:00+08:00", "action": "issue", "level": "yellow",
               "start": "2023-12-05T00:00:00+08:00"}),
    );
    let snap = a.e.snapshot();
    let mut b = Rig::new(toml);
    b.e = Engine::restore(Arc::clone(&b.cfg), &snap).unwrap();
    let rest = |r: &mut Rig| {
        let mut n = r.obs(start + Duration::hours(20), 30, 320.0, "PM2.5");
        n.extend(r.e.advance_to(t("2023-12-03T12:00:00+08:00")));
        n
    };
    let (na, nb) = (rest(&mut a), rest(&mut b));
    assert!(!na.is_empty());
    assert_eq!(na, nb);
}

/// Rule 6: the same level proposes nothing new; an evaluation with no move voids the
/// pending proposal silently (its reminder too); the level may then be proposed again.
/// Ozone moves go through approval as well.
#[test]
fn pending_proposal_kept_voided_and_proposed_again() {
    let mut r = Rig::new("[pollution]\nrequire_approval = true\n");
    let s = t("2023-12-01T11:00:00+08:00");
    let warn = |r: &mut Rig, at: &str| {
        let mut h = run(s, 24, 260.0);
        h.extend(run(s + Duration::hours(24), 72, 60.0));
        r.forecast(t(at), &h)
    };
    let kinds = |ns: &[Notice]| ns.iter().map(|n| n.kind).collect::<Vec<_>>();
    let n = warn(&mut r, "2023-12-01T10:00:00+08:00");
    assert_eq!(kinds(&n), vec![Kind::Proposal]);
    assert_eq!(n[0].level, "yellow");
    assert!(warn(&mut r, "2023-12-01T10:30:00+08:00").is_empty());
    let n = r.forecast(t("2023-12-01T11:00:00+08:00"), &run(s, 96, 60.0));
    assert!(n.is_empty());
    assert!(
        r.e.advance_to(t("2023-12-01T12:30:00+08:00")).is_empty(),
        "no reminder"
    );
    let n = warn(&mut r, "2023-12-01T13:00:00+08:00");
    assert_eq!(kinds(&n), vec![Kind::Proposal]);
    assert_eq!(n[0].id, "heavy_pollution/shuozhou/graded/proposal/2");
    let n = r.e.advance_to(t("2023-12-01T15:00:00+08:00"));
    assert_eq!(kinds(&n), vec![Kind::Reminder]);
    assert_eq!(fmt_ts(n[0].at), "2023-12-01T15:00:00+08:00");

    let mut r = Rig::new("[pollution]\nrequire_approval = true\n");
    let n = r.obs(t("2023-12-01T01:00:00+08:00"), 20, 220.0, "O3");
    let p = n.last().unwrap();
    assert_eq!(
        (p.kind, p.track.as_str(), p.level.as_str()),
        (Kind::Proposal, "ozone", "ozone")
    );
    let n = r.send(
        t("2023-12-01T20:30:00+08:00"),
        "cmd",
        json!({"cmd": "approve", "proposal_id": "heavy_pollution/shuozhou/ozone/proposal/1", "by": "x"}),
    );
    assert_eq!(kinds(&n), vec![Kind::Activate, Kind::ReportFirst]);
    assert_eq!(n[0].evidence["lead_hours"], 0);
}

/// §2 "An observation wins over a forecast for the same hour" whatever the order of
/// arrival; a dust observation hides the forecast for its hour too.
#[test]
fn an_observation_beats_any_forecast() {
    let mut s = Series::default();
    let stamp = t("2023-12-01T12:00:00+08:00");
    let obs = |aqi: f64, cause| input::AqiObs {
        ts: stamp,
        aqi,
        primary: vec![],
        so2_ug_m3: None,
        cause,
        iaqi: None,
    };
    let fc = |issued: &str, aqi: f64| input::Forecast {
        issued: t(issued),
        daily: false,
        ignored_hours: 0,
        hours: vec![input::ForecastHour {
            ts: stamp,
            aqi,
            aqi_low: None,
            primary: vec![],
            so2_ug_m3: Some(300.0),
        }],
    };
    s.add_forecast(&fc("2023-12-01T09:00:00+08:00", 250.0));
    s.add_obs(&obs(80.0, None));
    s.add_forecast(&fc("2023-12-01T13:00:00+08:00", 260.0));
    let h = s.hour(stamp_of(stamp));
    assert_eq!((h.aqi, h.observed, h.so2), (80.0, true, None));
    s.add_obs(&obs(400.0, Some(input::Cause::Dust)));
    let h = s.hour(stamp_of(stamp));
    assert!(h.dust && h.known && h.good() && !h.in_mean());
    assert_eq!(h.so2, None, "the forecast's SO2 is hidden too");
}

/// A small deterministic generator (LCG) for the snapshot property test below.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

/// Random air, province and approval messages over five days, in arrival order.
fn random_story(seed: u64) -> Vec<(Ts, &'static str, Value)> {
    let mut r = Lcg(seed);
    let t0 = t("2023-12-01T00:00:00+08:00");
    let levels = [60.0, 140.0, 160.0, 205.0, 260.0, 320.0];
    let prim = ["PM2.5", "O3", "PM10"];
    let profile: Vec<(f64, &str)> = (0..240)
        .map(|k| {
            let seg = k / 18;
            let l = levels[(seg * 7 + seed as usize) % levels.len()];
            (l + r.next(20) as f64, prim[(seg + seed as usize) % 3])
        })
        .collect();
    let mut out: Vec<(Ts, &'static str, Value)> = Vec::new();
    for h in 0..120i64 {
        let at = t0 + Duration::hours(h) + Duration::minutes(5);
        let (a, p) = profile[h as usize];
        let mut pl = json!({"ts": fmt_ts(t0 + Duration::hours(h)), "aqi": a, "primary": p});
        if r.next(10) == 0 {
            pl["so2_ug_m3"] = json!(160);
        }
        if r.next(15) == 0 {
            pl["cause"] = json!("dust");
        }
        if r.next(8) != 0 {
            out.push((at, "air/aqi", pl));
        }
        if h % 12 == 3 {
            let hours: Vec<Value> = (h..h + 80)
                .map(|k| {
                    let (a, p) = profile[k as usize];
                    json!({"ts": fmt_ts(t0 + Duration::hours(k)), "aqi": a, "primary": p})
                })
                .collect();
            let at = at + Duration::minutes(10);
            out.push((
                at,
                "air/forecast",
                json!({"issued": fmt_ts(at), "hours": hours}),
            ));
        }
        if r.next(30) == 0 {
            let at = at + Duration::minutes(20);
            let pl = match r.next(3) {
                0 => json!({"ts": fmt_ts(at), "action": "lift"}),
                1 => json!({"ts": fmt_ts(at), "action": "adjust", "level": "orange"}),
                _ => json!({"ts": fmt_ts(at), "action": "issue", "level": "yellow",
                            "start": fmt_ts(t0 + Duration::hours(h + r.next(90) as i64))}),
            };
            out.push((at, "air/province", pl));
        }
        if r.next(4) == 0 {
            let at = at + Duration::minutes(30);
            let track = if r.next(3) == 0 { "ozone" } else { "graded" };
            let id = format!(
                "heavy_pollution/shuozhou/{track}/proposal/{}",
                1 + r.next(6)
            );
            let pl = if r.next(3) == 0 {
                json!({"cmd": "reject", "proposal_id": id, "by": "x", "reason": "r"})
            } else {
                json!({"cmd": "approve", "proposal_id": id, "by": "x"})
            };
            out.push((at, "cmd", pl));
        }
    }
    out
}

/// Recovery is replay from a snapshot (ARCHITECTURE.md): a snapshot taken after ANY message
/// of a long story (pending proposals and their reminders, floors, feed clocks, daily
/// timers, dust and SO2 hours) must give exactly the notices of the uninterrupted run.
#[test]
fn snapshot_after_any_message_gives_the_same_notices() {
    let toml = "[pollution]\nrequire_approval = true\n";
    let end = t("2023-12-07T00:00:00+08:00");
    for seed in 1..4u64 {
        let story = random_story(seed);
        let feed = |r: &mut Rig, msgs: &[(Ts, &'static str, Value)]| -> Vec<Notice> {
            let mut all = Vec::new();
            for (at, f, p) in msgs {
                all.extend(r.send(*at, f, p.clone()));
            }
            all
        };
        let mut a = Rig::new(toml);
        let mut straight = feed(&mut a, &story);
        straight.extend(a.e.advance_to(end));
        assert!(
            straight.iter().any(|n| n.kind == Kind::Proposal),
            "seed {seed}"
        );
        for cut in (5..story.len()).step_by(17) {
            let mut b = Rig::new(toml);
            let mut got = feed(&mut b, &story[..cut]);
            let snap = b.e.snapshot();
            let mut c = Rig::new(toml);
            c.e = Engine::restore(Arc::clone(&c.cfg), &snap).unwrap();
            got.extend(feed(&mut c, &story[cut..]));
            got.extend(c.e.advance_to(end));
            assert_eq!(got, straight, "seed {seed}, snapshot after message {cut}");
        }
    }
}

/// Regression: `evidence.causes` listed `dust` for any dust hour up to ~71 h before h0,
/// even when it lay in no window of a mean that warned. A cause is listed only where it
/// played a part: in the window of a mean of the track above 150 (§3.3.2).
#[test]
fn dust_long_before_an_episode_is_not_a_cause() {
    let mut r = Rig::new("");
    let d0 = t("2023-12-01T01:00:00+08:00");
    for k in 0..24 {
        let ts = d0 + Duration::hours(k);
        r.send(
            ts + Duration::minutes(5),
            "air/aqi",
            json!({"ts": fmt_ts(ts), "aqi": 60, "primary": "PM10", "cause": "dust"}),
        );
    }
    r.obs(t("2023-12-02T01:00:00+08:00"), 24, 50.0, "PM2.5");
    let got = r.obs(t("2023-12-03T01:00:00+08:00"), 24, 250.0, "PM2.5");
    let act = got
        .iter()
        .find(|n| n.kind == Kind::Activate && n.track == "graded")
        .expect("the episode activates");
    assert_eq!(act.evidence["causes"], json!([]), "{}", act.evidence);
}

/// Regression: a horizon shorter than 36 hours made rules 3 and 4 index past the end of
/// the evaluation window (a panic). The next 36 hours are looked at whatever the horizon.
#[test]
fn horizon_shorter_than_36_hours_still_lifts() {
    let mut r = Rig::new("[pollution]\nhorizon_hours = 12\n");
    r.obs(t("2023-12-01T01:00:00+08:00"), 30, 250.0, "PM2.5");
    assert!(r.out.iter().any(|n| n.kind == Kind::Activate));
    let at = t("2023-12-02T07:10:00+08:00");
    let hours: Vec<(Ts, f64)> = (1..=48)
        .map(|k| (at + Duration::hours(k) - Duration::minutes(10), 40.0))
        .collect();
    r.forecast(at, &hours);
    r.obs(t("2023-12-02T07:00:00+08:00"), 48, 40.0, "PM2.5");
    assert!(
        r.out
            .iter()
            .any(|n| n.kind == Kind::Terminate && n.track == "graded"),
        "{:?}",
        r.out
            .iter()
            .map(|n| (n.kind, n.level.clone(), n.at))
            .collect::<Vec<_>>()
    );
}

/// PLANS.md §5.2 / §4: a deadline and a daily report due at the same instant give the
/// report first, then `report_overdue` (on graded, with its level); a report arriving at
/// that instant counts for the next period; with only SO2 active a report is refused.
#[test]
fn report_overdue_comes_after_the_daily_report_at_one_instant() {
    let mut r = Rig::new(
        "report_time = \"17:00\"\n[[unit]]\nname = \"U\"\nplans = [\"heavy_pollution\"]\n",
    );
    let at = t("2023-12-01T10:00:00+08:00");
    let rep =
        json!({"cmd": "report", "plan": "heavy_pollution", "unit": "U", "text": "x", "by": "b"});
    r.send(at, "cmd", rep.clone());
    assert!(
        r.out[0].level.contains("no report-back deadlines"),
        "{:?}",
        r.out
    );
    r.send(
        at,
        "air/forecast",
        json!({"issued": fmt_ts(at), "days": [{"date": "2023-12-02", "aqi": 250, "primary": "PM2.5"}]}),
    );
    r.send(t("2023-12-01T17:00:00+08:00"), "cmd", rep);
    r.e.advance_to(t("2023-12-02T18:00:00+08:00"))
        .into_iter()
        .for_each(|n| r.out.push(n));
    let seen: Vec<String> = r
        .out
        .iter()
        .filter(|n| matches!(n.kind, Kind::ReportFollowup | Kind::ReportOverdue))
        .map(|n| format!("{} {} {}", n.kind.as_str(), n.level, fmt_ts(n.at)))
        .collect();
    assert_eq!(
        seen,
        vec![
            "report_followup yellow 2023-12-01T17:00:00+08:00",
            "report_overdue yellow 2023-12-01T17:00:00+08:00",
            "report_followup yellow 2023-12-02T17:00:00+08:00",
        ]
    );
    let f = r
        .out
        .iter()
        .rev()
        .find(|n| n.kind == Kind::ReportFollowup)
        .unwrap();
    assert_eq!(f.evidence["feedback"][0]["unit"], "U");
    // The daily report at 17:00 comes before that instant's deadline: it shows the last one.
    assert_eq!(f.evidence["overdue_units"], json!(["U"]));
}

/// Snapshots written before the shared proposal life cycle (issue 11) restore: a track's
/// `pending` / `rejected` keep their place, and plan state missing new fields defaults.
#[test]
fn snapshot_shape_of_decisions_is_unchanged() {
    let v = serde_json::to_value(super::TrackState::default()).unwrap();
    assert!(
        v.get("pending").is_some() && v.get("rejected").is_some(),
        "{v}"
    );
    let old = json!({"level": "yellow", "episode": null, "pending": null, "rejected": "orange"});
    let st: super::TrackState = serde_json::from_value(old).unwrap();
    assert_eq!(st.decisions.rejected, Some(super::Lv::Orange));
    let _: crate::plans::coal_supply::CoalSupply = serde_json::from_str("{}").unwrap();
}

/// The embedded `config/pollution-measures.toml` parses (its `expect` cannot fire), and
/// every graded level has measures.
#[test]
fn embedded_measures_parse() {
    assert!(!super::measures::defaults().is_empty());
    let cfg = crate::config::Config::from_toml("").unwrap().config;
    use super::types::Lv;
    for lv in [Lv::Yellow, Lv::Orange, Lv::Red] {
        assert!(!super::measures::for_level(&cfg, lv).is_empty(), "{lv:?}");
    }
}

use crate::testing::Rng;

impl Rng {
    /// Mostly whole AQI values; one in eight has tenths, so sums would round.
    fn aqi(&mut self) -> f64 {
        if self.below(8) == 0 {
            self.below(5000) as f64 * 0.1
        } else {
            self.below(500) as f64
        }
    }
    fn primary(&mut self) -> Vec<crate::aqi::Pollutant> {
        let all = crate::aqi::Pollutant::ALL;
        (0..self.below(3))
            .map(|_| all[self.below(all.len() as u64) as usize])
            .collect()
    }
}

impl Rng {
    /// One observation (now and then of a dust or fireworks hour) of one of the last six
    /// hours, or a forecast of up to 100 hours from about h0, issued up to 2 hours ago.
    fn write(&mut self, s: &mut Series, h0: Stamp) {
        use crate::time::at_secs;
        if self.below(5) > 0 {
            let cause = match self.below(15) {
                0 => Some(input::Cause::Dust),
                1 => Some(input::Cause::Fireworks),
                _ => None,
            };
            s.add_obs(&input::AqiObs {
                ts: at_secs((h0 - self.below(6) as i64) * 3600),
                aqi: self.aqi(),
                primary: self.primary(),
                so2_ug_m3: Some(self.below(300) as f64),
                cause,
                iaqi: None,
            });
        } else {
            let from = h0 - 2 + self.below(4) as i64;
            let hours = (from..from + self.below(100) as i64)
                .map(|st| input::ForecastHour {
                    ts: at_secs(st * 3600),
                    aqi: self.aqi(),
                    aqi_low: None,
                    primary: self.primary(),
                    so2_ug_m3: (self.below(2) == 0).then_some(160.0),
                })
                .collect();
            s.add_forecast(&input::Forecast {
                issued: at_secs((h0 - self.below(3) as i64) * 3600),
                daily: false,
                hours,
                ignored_hours: 0,
            });
        }
    }
}

/// The same S and M, mean by mean (a sum of no value may differ in its sign of zero).
fn assert_same_view(v: &View, fresh: &View) {
    let h0 = v.h0;
    assert_eq!(v.hours, fresh.hours, "S at h0 = {h0}");
    assert_eq!(v.means.len(), fresh.means.len());
    for (j, (a, b)) in v.means.iter().zip(fresh.means.iter()).enumerate() {
        let same_sum = a.sum.to_bits() == b.sum.to_bits() || a.count == 0;
        assert!(
            same_sum && a.count == b.count,
            "M({j}) at h0 = {h0}: {a:?} {b:?}"
        );
        assert_eq!(
            (a.primary, a.fireworks, a.dust),
            (b.primary, b.fireworks, b.dust),
            "M({j}) at h0 = {h0}"
        );
    }
}

/// The view kept across messages (series.rs `ViewCache`) equals the view built afresh
/// (`View::new`), hour by hour and mean by mean, on random series: whole and fractional
/// AQI, dust and fireworks hours, observations replacing observations, forecasts
/// replacing (or, issued earlier, not replacing) forecasts, h0 moving on by 0 to 3 hours
/// or jumping, a view not given back, a cloned series, and bursts of writes between two
/// views.
#[test]
fn the_cached_view_is_the_fresh_view() {
    let mut r = Rng(0x9E37_79B9_7F4A_7C15);
    for horizon in [72, 24, 120] {
        let mut s = Series::default();
        let mut h0 = stamp_of(t("2023-12-01T00:00:00+08:00"));
        for _ in 0..2500 {
            h0 += match r.below(40) {
                0 => 60 + r.below(200) as i64,
                1..=9 => 0,
                10..=12 => 2 + r.below(2) as i64,
                _ => 1,
            };
            let writes = if r.below(400) == 0 { 1100 } else { 1 };
            for _ in 0..writes {
                r.write(&mut s, h0);
            }
            s.prune(h0);
            let cache = s.take_view(h0, horizon);
            assert_same_view(&cache.view(h0), &View::new(&s, h0, horizon));
            match r.below(50) {
                0 => {} // not given back: built afresh next time
                1 => {
                    s.put_back(cache);
                    s = s.clone();
                }
                _ => s.put_back(cache),
            }
        }
    }
}
