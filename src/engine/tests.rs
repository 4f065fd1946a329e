use super::*;
use crate::notice::Kind;
use crate::plans::severe_weather;
use crate::time::parse_ts;

fn key(n: usize) -> TimerKey {
    TimerKey {
        region: n,
        timer: PlanTimer::Weather(severe_weather::Timer::Call {
            call_id: "w/1".into(),
            person: "p".into(),
        }),
    }
}

fn t(s: &str) -> Ts {
    parse_ts(s).unwrap()
}

/// PLANS.md §4: timers due at one instant fire in the order they were last armed; a
/// re-armed timer takes its new place.
#[test]
fn timers_fire_by_due_then_arm_order() {
    let mut tm = Timers::default();
    let due = t("2023-12-01T09:00:00+08:00");
    tm.arm(key(0), due);
    tm.arm(key(1), due);
    tm.arm(key(2), t("2023-12-01T08:00:00+08:00"));
    tm.arm(key(0), due); // re-armed: now after key(1)
    let order: Vec<usize> = std::iter::from_fn(|| tm.pop_due(due))
        .map(|(_, k)| k.region)
        .collect();
    assert_eq!(order, vec![2, 1, 0]);
    assert!(tm.is_empty());
}

#[test]
fn cancel_and_not_yet_due() {
    let mut tm = Timers::default();
    tm.arm(key(0), t("2023-12-01T09:00:00+08:00"));
    assert!(tm.pop_due(t("2023-12-01T08:59:59+08:00")).is_none());
    tm.cancel(&key(0));
    assert!(tm.pop_due(t("2023-12-02T00:00:00+08:00")).is_none());
    assert_eq!(tm.len(), 0);
}

#[test]
fn advance_is_idempotent_and_ignores_the_past() {
    let cfg = Arc::new(Config::from_toml("").unwrap().config);
    let mut e = Engine::new(cfg);
    assert!(e.advance_to(t("2023-12-01T09:00:00+08:00")).is_empty());
    assert!(e.advance_to(t("2023-12-01T09:00:00+08:00")).is_empty());
    assert!(e.advance_to(t("2023-12-01T08:00:00+08:00")).is_empty());
    assert_eq!(e.now(), Some(t("2023-12-01T09:00:00+08:00")));
    assert!(e.next_deadline().is_none());
}

#[test]
fn snapshot_round_trips() {
    let cfg = Arc::new(Config::from_toml("").unwrap().config);
    let mut e = Engine::new(Arc::clone(&cfg));
    e.state.timers.arm(key(0), t("2023-12-01T09:00:00+08:00"));
    let snap = e.snapshot();
    let r = Engine::restore(cfg, &snap).unwrap();
    assert_eq!(r.snapshot(), snap);
    assert_eq!(r.state.timers.len(), 1);
}

#[test]
fn ids_count_per_track_and_proposals_apart() {
    let cfg = Arc::new(Config::from_toml("").unwrap().config);
    let mut timers = Timers::default();
    let mut ids = IdCounters::default();
    let mut out = Vec::new();
    let mut cx = Cx::new(
        t("2023-12-01T09:00:00+08:00"),
        &cfg,
        0,
        &mut timers,
        &mut ids,
        &mut out,
    );
    let a = cx.emit(Notice::new(
        Plan::HeavyPollution,
        "graded",
        Kind::Activate,
        "yellow",
    ));
    let p = cx.emit(Notice::new(
        Plan::HeavyPollution,
        "graded",
        Kind::Proposal,
        "orange",
    ));
    let b = cx.emit(Notice::new(
        Plan::HeavyPollution,
        "graded",
        Kind::ReportFirst,
        "yellow",
    ));
    let c = cx.emit(Notice::new(
        Plan::HeavyPollution,
        "ozone",
        Kind::Activate,
        "ozone",
    ));
    assert_eq!(a, "heavy_pollution/shuozhou/graded/1");
    assert_eq!(p, "heavy_pollution/shuozhou/graded/proposal/1");
    assert_eq!(b, "heavy_pollution/shuozhou/graded/2");
    assert_eq!(c, "heavy_pollution/shuozhou/ozone/1");
    assert_eq!(out[1].proposal_id.as_deref(), Some(p.as_str()));
}
