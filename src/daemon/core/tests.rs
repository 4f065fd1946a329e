//! The core without I/O: journal, rejections, recovery, clock jumps.

use super::*;
use crate::input::RejectionClass;
use crate::time::parse_ts;

fn cfg() -> Arc<Config> {
    Arc::new(
        Config::from_toml("[store]\nsnapshot_every = 2")
            .unwrap()
            .config,
    )
}

fn tmp_store(name: &str) -> (std::path::PathBuf, Store) {
    let dir = std::env::temp_dir().join(format!("yingji-core-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let path = dir.join("y.db");
    let s = Store::open(&path).unwrap();
    (path, s)
}

fn msg(topic: &str, payload: &str) -> Incoming<u32> {
    Incoming {
        topic: topic.into(),
        payload: payload.as_bytes().to_vec(),
        pkid: 0,
        dup: false,
        retained: false,
        arrived: None,
        parsed: None,
        token: 7,
    }
}

const AQI: &str = r#"{"ts": "2023-12-01T08:00:00+08:00", "aqi": 80, "primary": "PM10"}"#;

#[test]
fn parsed_inputs_are_journaled_rejected_ones_are_not_and_all_are_acked() {
    let (_p, store) = tmp_store("journal");
    let t = parse_ts("2023-12-01T08:05:00+08:00").unwrap();
    let mut core = Core::recover(cfg(), store, t).unwrap();
    let fx = core
        .ingest(
            vec![
                msg("ers/shuozhou/air/aqi", AQI),
                msg("ers/shuozhou/air/aqi", "{not json"),
            ],
            t,
        )
        .unwrap();
    assert_eq!(fx.acks, vec![7, 7]);
    assert_eq!(fx.rejections.len(), 1);
    assert_eq!(fx.rejections[0].1.class, RejectionClass::BadJson);
    let rows = core.store().journal_after(0).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].topic, "ers/shuozhou/air/aqi");
    assert_eq!(rows[0].at, t);
}

#[test]
fn arrival_time_is_clamped_to_the_engine_time_when_the_clock_went_back() {
    let (_p, store) = tmp_store("clamp");
    let t = parse_ts("2023-12-01T08:05:00+08:00").unwrap();
    let mut core = Core::recover(cfg(), store, t).unwrap();
    let earlier = parse_ts("2023-12-01T08:01:00+08:00").unwrap();
    let fx: Effects<()> = core.tick(earlier).unwrap();
    assert!(fx.notices.is_empty());
    assert_eq!(
        core.engine().now(),
        Some(t),
        "a clock jump back does not move the engine"
    );
    core.ingest(vec![msg("ers/shuozhou/air/aqi", AQI)], earlier)
        .unwrap();
    let rows = core.store().journal_after(0).unwrap();
    assert_eq!(
        rows[0].at, t,
        "journaled at the engine's time, so replay reproduces it"
    );
}

#[test]
fn recovery_restores_snapshot_and_replays_the_journal_after_it() {
    let (path, store) = tmp_store("recover");
    let t = parse_ts("2023-12-01T08:05:00+08:00").unwrap();
    let mut core = Core::recover(cfg(), store, t).unwrap();
    for i in 0..5 {
        let at = t + chrono::Duration::minutes(i);
        core.ingest(vec![msg("ers/shuozhou/air/aqi", AQI)], at)
            .unwrap();
    }
    let before = core.engine().snapshot();
    let end = t + chrono::Duration::minutes(4);
    drop(core);
    // snapshot_every = 2: the latest snapshot holds 4 inputs, the 5th is replayed.
    let store = Store::open(&path).unwrap();
    let (seq, _) = store.latest_snapshot().unwrap().unwrap();
    assert_eq!(seq, 4);
    let core = Core::recover(cfg(), store, end).unwrap();
    assert_eq!(core.engine().snapshot(), before);
    let fresh = {
        let mut e = Engine::new(cfg());
        for r in core.store().journal_after(0).unwrap() {
            let m = input::parse(&cfg(), &r.topic, &r.payload, r.at).unwrap();
            e.handle(r.at, &m);
        }
        e.advance_to(end);
        e.snapshot()
    };
    assert_eq!(
        core.engine().snapshot(),
        fresh,
        "same state as a replay of the whole journal"
    );
}

#[test]
fn a_redelivered_input_whose_ack_was_lost_is_not_journaled_twice() {
    let (_p, store) = tmp_store("dup");
    let t = parse_ts("2023-12-01T08:05:00+08:00").unwrap();
    let mut core = Core::recover(cfg(), store, t).unwrap();
    let with = |pkid, dup, payload: &str| Incoming {
        pkid,
        dup,
        ..msg("ers/shuozhou/air/aqi", payload)
    };
    core.ingest(vec![with(5, false, AQI)], t).unwrap();
    let fx = core.ingest(vec![with(5, true, AQI)], t).unwrap();
    assert_eq!(fx.acks.len(), 1, "acked again");
    assert_eq!(core.store().journal_after(0).unwrap().len(), 1);
    // The same packet id reused by the broker for another message (after our ack) counts.
    let other = AQI.replace("80", "81");
    core.ingest(vec![with(5, true, &other)], t).unwrap();
    core.ingest(vec![with(5, false, AQI)], t).unwrap();
    assert_eq!(core.store().journal_after(0).unwrap().len(), 3);
}

/// Issue 9 with the lazy index (store.rs `SEEN_UPTO`): inputs handled live are not
/// indexed as they are journaled; a retained copy of one is still ignored, whether it
/// comes in the same batch, a later one, or after a restart, while the index lags.
#[test]
fn a_retained_copy_of_an_input_handled_live_is_ignored_while_the_index_lags() {
    let (path, store) = tmp_store("seen-lag");
    let t = parse_ts("2023-12-01T08:05:00+08:00").unwrap();
    let mut core = Core::recover(cfg(), store, t).unwrap();
    let retained = |payload: &str| Incoming {
        retained: true,
        ..msg("ers/shuozhou/air/aqi", payload)
    };
    let other = AQI.replace("80", "81");
    let third = AQI.replace("80", "82");
    // A live input and its retained copy in one batch, then another live input.
    core.ingest(vec![msg("ers/shuozhou/air/aqi", AQI), retained(AQI)], t)
        .unwrap();
    core.ingest(vec![msg("ers/shuozhou/air/aqi", &other)], t)
        .unwrap();
    assert!(core.seen_lags(), "the live inputs are not indexed yet");
    let upto = |c: &Core| -> i64 {
        let v: String = c
            .store()
            .conn()
            .query_row(
                "SELECT value FROM meta WHERE key = ?1",
                [crate::daemon::store::SEEN_UPTO],
                |r| r.get(0),
            )
            .unwrap();
        v.parse().unwrap()
    };
    let lagging = upto(&core);
    assert!(lagging < core.seq, "{lagging} < {}", core.seq);
    // A retained copy of the second live input, in a later batch: ignored, acked.
    let fx = core.ingest(vec![retained(&other)], t).unwrap();
    assert_eq!((fx.acks.len(), fx.rejections.len()), (1, 0));
    assert_eq!(core.store().journal_after(0).unwrap().len(), 2);
    // After a restart, with a third live input not indexed: its retained copy too.
    core.ingest(vec![msg("ers/shuozhou/air/aqi", &third)], t)
        .unwrap();
    drop(core);
    let mut core = Core::recover(cfg(), Store::open(&path).unwrap(), t).unwrap();
    assert!(core.seen_lags());
    core.ingest(vec![retained(&third), retained(AQI)], t)
        .unwrap();
    let payloads: Vec<Vec<u8>> = core
        .store()
        .journal_after(0)
        .unwrap()
        .into_iter()
        .map(|r| r.payload)
        .collect();
    let want = [AQI, &other, &third].map(|p| p.as_bytes().to_vec());
    assert_eq!(payloads, want, "each input journaled once");
    // A retained input not seen before is news: handled (and journaled).
    let fourth = AQI.replace("80", "83");
    core.ingest(vec![retained(&fourth)], t).unwrap();
    assert_eq!(core.store().journal_after(0).unwrap().len(), 4);
}

/// The lazy index catches up in doses when the core is idle, and the watermark and the
/// rows commit together (a store reopened reads the same watermark).
#[test]
fn idle_doses_index_the_journal_up_to_its_end() {
    let (path, store) = tmp_store("seen-dose");
    let t = parse_ts("2023-12-01T08:05:00+08:00").unwrap();
    let mut core = Core::recover(cfg(), store, t).unwrap();
    let n = SEEN_DOSE + 10;
    let batch: Vec<_> = (0..n)
        .map(|i| {
            let p = AQI.replace("80", &format!("{}", 100 + i % 800));
            msg("ers/shuozhou/air/aqi", &p)
        })
        .collect();
    core.ingest(batch, t).unwrap();
    let indexed = |c: &Core| -> i64 {
        c.store()
            .conn()
            .query_row("SELECT COUNT(*) FROM seen_inputs", [], |r| r.get(0))
            .unwrap()
    };
    assert_eq!(indexed(&core), 0);
    assert_eq!(core.index_seen_dose().unwrap(), SEEN_DOSE);
    assert!(core.seen_lags());
    assert_eq!(core.index_seen_dose().unwrap(), 10);
    assert!(!core.seen_lags());
    assert_eq!(core.index_seen_dose().unwrap(), 0);
    assert_eq!(indexed(&core), 800, "one row per distinct input");
    let seq = core.seq;
    drop(core);
    let mut store = Store::open(&path).unwrap();
    assert_eq!(store.init_seen().unwrap(), seq);
}

/// A journal whose rows after the index's watermark are gone (emptied by the retention
/// of an earlier version) leaves nothing to index: one dose finds that, and the core no
/// longer lags (it would look again at every idle turn of its loop, without a pause).
#[test]
fn a_dose_with_nothing_left_to_index_ends_the_lag() {
    let (_p, store) = tmp_store("seen-gone");
    let t = parse_ts("2023-12-01T08:05:00+08:00").unwrap();
    let mut core = Core::recover(cfg(), store, t).unwrap();
    let batch = vec![msg("ers/shuozhou/air/aqi", AQI)];
    core.ingest(batch, t).unwrap();
    assert!(core.seen_lags());
    core.store()
        .conn()
        .execute("DELETE FROM journal", [])
        .unwrap();
    assert_eq!(core.index_seen_dose().unwrap(), 0);
    assert!(!core.seen_lags());
}

#[test]
fn timers_fire_once_at_their_due_time_and_a_clock_jump_back_fires_nothing() {
    let cfg = Arc::new(
        Config::from_toml(
            r#"
[weather_call]
ack_timeout_s = 60
phone_retry_s = 60
phone_attempts = 1
[[contact]]
id = "yjj"
name = "张应急"
unit = "市应急管理局"
tier = "A"
role = "emergency"
wechat = "zhangyj"
phone = "+8613800000001"
"#,
        )
        .unwrap()
        .config,
    );
    let (_p, store) = tmp_store("timers");
    let t = parse_ts("2024-07-10T02:00:00+08:00").unwrap();
    let mut core = Core::recover(Arc::clone(&cfg), store, t).unwrap();
    let warning = r#"{"ts": "2024-07-10T01:59:00+08:00", "id": "w1", "hazard": "rainstorm", "action": "issue", "color": "red"}"#;
    let fx = core
        .ingest(vec![msg("ers/shuozhou/weather/warning", warning)], t)
        .unwrap();
    assert!(
        !fx.notices.is_empty(),
        "a red rainstorm warning makes notices"
    );
    let (due, _) = core.next_deadline().expect("the WeChat ack wait is armed");
    assert_eq!(due, t + chrono::Duration::seconds(60));
    let later = due + chrono::Duration::seconds(5);
    let fired: Effects<()> = core.tick(later).unwrap();
    assert!(
        !fired.notices.is_empty(),
        "the ack wait ran out: phone call"
    );
    assert!(
        fired.notices.iter().all(|(n, _)| n.at == due),
        "notices carry the due time"
    );
    // The clock jumps back, then comes forward again past the same instant.
    let back: Effects<()> = core.tick(due - chrono::Duration::seconds(30)).unwrap();
    assert!(back.notices.is_empty());
    assert_eq!(core.engine().now(), Some(later));
    let again: Effects<()> = core.tick(later).unwrap();
    assert!(again.notices.is_empty(), "nothing fires twice");
    let n = core.store().notices().unwrap().len();
    assert_eq!(n, fx.notices.len() + fired.notices.len());
}

fn call_cfg() -> Arc<Config> {
    Arc::new(
        Config::from_toml(
            r#"
[weather_call]
ack_timeout_s = 60
[[contact]]
id = "yjj"
name = "张应急"
unit = "市应急管理局"
tier = "A"
role = "emergency"
wechat = "zyj"
phone = "+8613800000001"
"#,
        )
        .unwrap()
        .config,
    )
}

/// A link click is an ordinary journaled `ack` command: recorded (call_ack); a repeated
/// click is answered from the register without a journal row (issue 9 item 10, a
/// thousand clicks were a thousand rows); an unknown call is refused. The journal replays
/// to the same notices. Once the round is over, the link has expired: nothing journaled.
/// A red rainstorm warning issued at `ts` (w1), handled at `t`.
fn red_warning(core: &mut Core, ts: &str, t: Ts) -> Effects<u32> {
    let warning = format!(
        r#"{{"ts": "{ts}", "id": "w1", "hazard": "rainstorm", "action": "issue", "color": "red"}}"#
    );
    core.ingest(vec![msg("ers/shuozhou/weather/warning", &warning)], t)
        .unwrap()
}

#[test]
fn link_ack_goes_through_the_journal_and_says_what_the_engine_did() {
    let (_path, store) = tmp_store("link");
    let t = parse_ts("2023-07-01T10:00:00+08:00").unwrap();
    let mut core = Core::recover(call_cfg(), store, t).unwrap();
    let fx = red_warning(&mut core, "2023-07-01T10:00:00+08:00", t);
    let call = fx
        .notices
        .iter()
        .find(|(n, _)| n.kind == Kind::Call)
        .expect("yjj called")
        .0
        .clone();
    let call_id = call.call_id.clone().unwrap();
    let t1 = t + chrono::Duration::seconds(20);
    let (fx, out) = core
        .link_ack::<()>("shuozhou", &call_id, "yjj", t1)
        .unwrap();
    assert_eq!(out, LinkOutcome::Recorded);
    let ack = &fx.notices.last().unwrap().0;
    assert_eq!(ack.kind, Kind::CallAck);
    assert_eq!(ack.evidence["by"], "link");
    for _ in 0..1000 {
        let (fx, out) = core
            .link_ack::<()>("shuozhou", &call_id, "yjj", t1)
            .unwrap();
        assert_eq!(out, LinkOutcome::Already);
        assert!(fx.notices.is_empty() && fx.rejections.is_empty());
    }
    let (fx, out) = core
        .link_ack::<()>("shuozhou", "nope/1", "yjj", t1)
        .unwrap();
    assert!(
        matches!(out, LinkOutcome::Refused(ref r) if !r.is_empty()),
        "{out:?}"
    );
    assert_eq!(fx.rejections.len(), 1);
    let rows = core.store().journal_after(0).unwrap();
    assert_eq!(
        rows.len(),
        2,
        "the warning and the first click; no repeated click, the refused one changed nothing"
    );
    assert_eq!(rows[1].topic, "ers/shuozhou/cmd");
    let p: serde_json::Value = serde_json::from_slice(&rows[1].payload).unwrap();
    assert_eq!(p["by"], "link");
    // The journal alone, through a fresh engine, gives the same notices.
    let mut e = crate::engine::Engine::new(call_cfg());
    let mut replayed = Vec::new();
    for r in rows {
        let m = crate::input::parse(&call_cfg(), &r.topic, &r.payload, r.at).unwrap();
        replayed.extend(e.handle(r.at, &m).notices);
    }
    assert_eq!(core.store().notices().unwrap(), replayed);

    // The warning is lifted: the round is closed and its links have expired.
    let lift = r#"{"ts": "2023-07-01T10:00:30+08:00", "id": "w1", "hazard": "rainstorm", "action": "lift", "color": "red"}"#;
    let t2 = t + chrono::Duration::seconds(30);
    core.ingest(vec![msg("ers/shuozhou/weather/warning", lift)], t2)
        .unwrap();
    let rows = core.store().journal_after(0).unwrap().len();
    let (fx, out) = core
        .link_ack::<()>("shuozhou", &call_id, "nobody-acked", t2)
        .unwrap();
    assert!(
        matches!(out, LinkOutcome::Refused(_)),
        "not called: {out:?}"
    );
    assert!(!fx.rejections.is_empty());
    let v = core.view(true, 1);
    let round = v.round("shuozhou", &call_id).expect("round in the view");
    assert_ne!(round.status, RoundStatus::Current);
    assert_eq!(
        core.store().journal_after(0).unwrap().len(),
        rows,
        "a refused command changes nothing and is not journaled"
    );
}

/// Someone called but not acknowledged when the round closed: the link answers "ended"
/// and journals nothing.
#[test]
fn a_link_of_a_closed_round_has_expired_and_journals_nothing() {
    let (_path, store) = tmp_store("link-ended");
    let t = parse_ts("2023-07-01T10:00:00+08:00").unwrap();
    let mut core = Core::recover(call_cfg(), store, t).unwrap();
    let warning = r#"{"ts": "2023-07-01T10:00:00+08:00", "id": "w1", "hazard": "rainstorm", "action": "issue", "color": "red"}"#;
    let lift = r#"{"ts": "2023-07-01T10:00:30+08:00", "id": "w1", "hazard": "rainstorm", "action": "lift", "color": "red"}"#;
    core.ingest(vec![msg("ers/shuozhou/weather/warning", warning)], t)
        .unwrap();
    let t2 = t + chrono::Duration::seconds(30);
    core.ingest(vec![msg("ers/shuozhou/weather/warning", lift)], t2)
        .unwrap();
    let before = core.store().journal_after(0).unwrap().len();
    let (fx, out) = core.link_ack::<()>("shuozhou", "w1/1", "yjj", t2).unwrap();
    assert_eq!(out, LinkOutcome::Ended);
    assert!(fx.notices.is_empty());
    assert_eq!(core.store().journal_after(0).unwrap().len(), before);
}

/// Issue 9 item 6: a snapshot that would not restore is never stored.
#[test]
fn a_snapshot_that_would_not_restore_is_not_stored() {
    let (_p, store) = tmp_store("unrestorable");
    let t = parse_ts("2023-12-01T08:05:00+08:00").unwrap();
    let cfg = cfg();
    let mut core = Core::recover(Arc::clone(&cfg), store, t).unwrap();
    // What parse now refuses, handed to the engine directly: infinite stock days.
    let m = crate::input::Message {
        region: 0,
        input: crate::input::Input::CoalStock(crate::input::StockReport {
            ts: t,
            plant: "p".into(),
            stock: crate::input::Stock::Tonnes {
                stock_t: 1e308,
                burn_t_per_day: 1e-308,
            },
        }),
    };
    core.engine.handle(t, &m);
    core.snapshot(t).unwrap();
    let (_, state) = core.store().latest_snapshot().unwrap().unwrap();
    assert!(
        crate::engine::Engine::restore(Arc::clone(&cfg), &state).is_ok(),
        "the latest stored snapshot restores"
    );
}

/// Issue 9 item 6: an id already in the outbox with a different body is a conflict
/// that is reported, not silently ignored; the same body again is not.
#[test]
fn an_outbox_id_with_a_different_body_is_a_conflict() {
    let (_p, mut store) = tmp_store("conflict");
    let mut n = Notice::new(
        crate::notice::Plan::CoalSupply,
        "supply",
        Kind::Activate,
        "L2",
    )
    .previous("none")
    .reason("一");
    n.id = "coal_supply/shuozhou/supply/1".into();
    n.region = "shuozhou".into();
    let tx = store.begin().unwrap();
    assert_eq!(
        tx.outbox(&n, &[]).unwrap(),
        crate::daemon::store::Outboxed::New
    );
    assert_eq!(
        tx.outbox(&n, &[]).unwrap(),
        crate::daemon::store::Outboxed::Same
    );
    let mut other = n.clone();
    other.reason = "二".into();
    assert_eq!(
        tx.outbox(&other, &[]).unwrap(),
        crate::daemon::store::Outboxed::Conflict
    );
    tx.commit().unwrap();
    assert_eq!(store.notices().unwrap(), vec![n], "the first body is kept");
}

/// Issue 9 item 5 (its numbers scaled down): forecasts of hundreds of daily entries, some
/// dated from 2100, neither grow the engine state nor the snapshot beyond what one
/// ordinary week-long forecast needs.
#[test]
fn far_future_forecasts_do_not_grow_the_snapshot() {
    let (_p, store) = tmp_store("forecast-bound");
    let t = parse_ts("2023-12-01T08:05:00+08:00").unwrap();
    let cfg = Arc::new(
        Config::from_toml("[store]\nsnapshot_every = 1000\n[limits]\nmax_payload_bytes = 1048576")
            .unwrap()
            .config,
    );
    let mut core = Core::recover(Arc::clone(&cfg), store, t).unwrap();
    let forecast = |from: chrono::NaiveDate, n: i64| {
        let days: Vec<String> = (0..n)
            .map(|k| {
                format!(
                    r#"{{"date": "{}", "aqi": 120, "primary": "PM2.5"}}"#,
                    from + chrono::Duration::days(k)
                )
            })
            .collect();
        format!(
            r#"{{"issued": "2023-12-01T08:00:00+08:00", "days": [{}]}}"#,
            days.join(",")
        )
    };
    let today = chrono::NaiveDate::from_ymd_opt(2023, 12, 1).unwrap();
    let week = forecast(today, 7);
    core.ingest(vec![msg("ers/shuozhou/air/forecast", &week)], t)
        .unwrap();
    let baseline = core.engine().snapshot().len();
    let far = chrono::NaiveDate::from_ymd_opt(2100, 1, 1).unwrap();
    let before = health::counted("forecast_hours_ignored");
    for k in 0..6 {
        let f = forecast(if k % 2 == 0 { far } else { today }, 185);
        let fx = core
            .ingest(vec![msg("ers/shuozhou/air/forecast", &f)], t)
            .unwrap();
        assert!(fx.rejections.is_empty(), "never rejected");
    }
    let size = core.engine().snapshot().len();
    assert!(
        size <= baseline + baseline / 2,
        "snapshot {size} bytes against {baseline} for one week-long forecast"
    );
    assert!(health::counted("forecast_hours_ignored") >= before + 6);
}

#[test]
fn an_input_whose_handling_panics_is_refused_and_leaves_no_trace() {
    // Issue 10: a panic in handling must not leave the input unacknowledged (redelivered
    // and panicking again at every reconnect) nor half-applied.
    let (_p, store) = tmp_store("panic");
    let t = parse_ts("2023-12-01T08:05:00+08:00").unwrap();
    let mut core = Core::recover(cfg(), store, t).unwrap();
    let (_q, clean_store) = tmp_store("panic-clean");
    let mut clean = Core::recover(cfg(), clean_store, t).unwrap();
    let before = core.engine().snapshot();
    core.engine.fault = Some("air/aqi".into());
    let fx = core
        .ingest(vec![msg("ers/shuozhou/air/aqi", AQI)], t)
        .unwrap();
    assert_eq!(fx.acks, vec![7], "acknowledged, so never redelivered");
    assert_eq!(fx.rejections.len(), 1);
    let r = &fx.rejections[0].1;
    assert_eq!(
        (r.class, r.region.as_deref()),
        (RejectionClass::Internal, Some("shuozhou"))
    );
    assert_eq!(r.topic, "ers/shuozhou/air/aqi");
    assert!(fx.notices.is_empty());
    assert!(
        core.store().journal_after(0).unwrap().is_empty(),
        "not journaled"
    );
    assert_eq!(
        core.engine().snapshot(),
        before,
        "state as before the input"
    );
    assert!(crate::daemon::health::counted("input_panicked") >= 1);
    // The engine goes on as if the input never came.
    core.engine.fault = None;
    let later = parse_ts("2023-12-01T09:05:00+08:00").unwrap();
    let aqi = AQI.replace("08:00:00", "09:00:00");
    let a = core
        .ingest(vec![msg("ers/shuozhou/air/aqi", &aqi)], later)
        .unwrap();
    let b = clean
        .ingest(vec![msg("ers/shuozhou/air/aqi", &aqi)], later)
        .unwrap();
    assert!(a.rejections.is_empty());
    assert_eq!(a.notices.len(), b.notices.len());
    assert_eq!(core.engine().snapshot(), clean.engine().snapshot());
}

/// Regression (SIGKILL e2e test, 1 run in 10): the proof of a notice was acked as soon as
/// it was seen; killed before the notice's echo was handled, the restarted daemon got the
/// echo again but not its proof, confirmed nothing and published the notice a second
/// time. A proof's message is acked only with its echo, after the mark committed.
#[test]
fn a_proof_is_acked_only_once_the_echo_it_proves_is_marked() {
    let (path, store) = tmp_store("proof");
    let t = parse_ts("2024-07-10T02:00:00+08:00").unwrap();
    let mut core = Core::recover(cfg(), store, t).unwrap();
    let fx = red_warning(&mut core, "2024-07-10T01:59:00+08:00", t);
    let n = Arc::clone(&fx.notices.first().expect("a red warning makes a notice").0);
    let sink = crate::daemon::sink::MqttSink::Notice;
    let key = b"echo key";
    let payload = crate::daemon::echo::payload(&core.cfg, core.store(), &n, sink);
    let proof = crate::daemon::echo::proof(key, sink, &n.id, &payload).into_bytes();
    let mut proofs = Proofs::default();
    // An echo without its proof confirms nothing (and is acked).
    let fx = core
        .confirm(
            vec![],
            vec![(sink, payload.clone(), 0)],
            key,
            &mut proofs,
            t,
        )
        .unwrap();
    assert_eq!(fx.acks, vec![0]);
    assert!(!core.store().is_delivered(&n.id, &sink.into()).unwrap());
    // The proof comes alone (its echo is in the next batch): not acked yet.
    let fx = core
        .confirm(vec![(proof.clone(), 1)], vec![], key, &mut proofs, t)
        .unwrap();
    assert!(
        fx.acks.is_empty(),
        "proof acked before its echo: {:?}",
        fx.acks
    );
    assert!(!core.store().is_delivered(&n.id, &sink.into()).unwrap());
    // Killed here, the broker sends both again: the restarted daemon confirms the echo.
    drop(core);
    let mut core = Core::recover(cfg(), Store::open(&path).unwrap(), t).unwrap();
    let mut proofs = Proofs::default();
    let fx = core
        .confirm(
            vec![(proof.clone(), 3)],
            vec![(sink, payload.clone(), 4)],
            key,
            &mut proofs,
            t,
        )
        .unwrap();
    let mut acks = fx.acks;
    acks.sort();
    assert_eq!(acks, vec![3, 4], "the echo and its proof, once marked");
    assert!(core.store().is_delivered(&n.id, &sink.into()).unwrap());
    assert!(proofs.is_empty(), "the proof is used up");
}

/// A proof whose echo never comes does not hold the input connection's acks (which go in
/// arrival order) for longer than `PROOF_HOLD`.
#[test]
fn a_proof_without_its_echo_is_acked_after_the_hold() {
    let (_p, store) = tmp_store("proof-hold");
    let t = parse_ts("2024-07-10T02:00:00+08:00").unwrap();
    let mut core = Core::recover(cfg(), store, t).unwrap();
    let mut proofs = Proofs::default();
    let hold = crate::daemon::echo::PROOF_HOLD;
    let fx = core
        .confirm(vec![(b"ab".to_vec(), 1)], vec![], b"k", &mut proofs, t)
        .unwrap();
    assert!(fx.acks.is_empty());
    let later = t + hold - chrono::Duration::seconds(1);
    let fx = core
        .confirm(vec![(b"cd".to_vec(), 2)], vec![], b"k", &mut proofs, later)
        .unwrap();
    assert!(fx.acks.is_empty(), "still waiting");
    let fx: Effects<u32> = core
        .confirm(vec![], vec![], b"k", &mut proofs, t + hold)
        .unwrap();
    assert_eq!(
        fx.acks,
        vec![1],
        "the first proof let go, the second still waits"
    );
    let fx: Effects<u32> = core
        .confirm(vec![], vec![], b"k", &mut proofs, later + hold)
        .unwrap();
    assert_eq!(fx.acks, vec![2]);
    assert!(proofs.is_empty());
}

/// The engine is not copied before each input: after a panic it is rebuilt from the
/// snapshot and the journal as the open transaction sees them. An input handled earlier
/// in the same batch (journaled, not yet committed) must survive the rebuild, and the
/// timers that fired before the input must not fire twice.
#[test]
fn a_panic_keeps_what_the_batch_did_before_it() {
    let stock = r#"{"ts": "2023-12-01T08:00:00+08:00", "plant": "plant-01", "stock_t": 250000, "burn_t_per_day": 10000}"#;
    let t = parse_ts("2023-12-01T08:05:00+08:00").unwrap();
    let (_p, store) = tmp_store("panic-batch");
    let mut core = Core::recover(cfg(), store, t).unwrap();
    let (_q, clean_store) = tmp_store("panic-batch-clean");
    let mut clean = Core::recover(cfg(), clean_store, t).unwrap();
    let later = parse_ts("2023-12-01T09:05:00+08:00").unwrap();
    let tick = clean.tick::<u32>(later).unwrap();
    assert_eq!(
        core.tick::<u32>(later).unwrap().notices.len(),
        tick.notices.len()
    );
    let want = clean
        .ingest(vec![msg("ers/shuozhou/coal/stock", stock)], later)
        .unwrap();
    core.engine.fault = Some("air/aqi".into());
    let fx = core
        .ingest(
            vec![
                msg("ers/shuozhou/coal/stock", stock),
                msg("ers/shuozhou/air/aqi", AQI),
            ],
            later,
        )
        .unwrap();
    assert_eq!(fx.acks, vec![7, 7]);
    assert_eq!(
        fx.rejections.len(),
        1,
        "only the panicking input is refused"
    );
    assert_eq!(fx.notices.len(), want.notices.len());
    assert_eq!(core.store().journal_after(0).unwrap().len(), 1);
    assert_eq!(
        core.engine().snapshot(),
        clean.engine().snapshot(),
        "the stock reading kept, the air reading not applied"
    );
}

/// Issue 15: an echo is checked against the bytes the output connection published
/// (`echo::Rendered`) instead of rendering it again; bytes that differ from those confirm
/// nothing even with a proof over them (a proof is only ever published for our own bytes,
/// but the check must not rely on that alone), and the real echo is still confirmed.
#[test]
fn an_echo_is_checked_against_what_was_published() {
    let (_p, store) = tmp_store("rendered");
    let t = parse_ts("2024-07-10T02:00:00+08:00").unwrap();
    let mut core = Core::recover(cfg(), store, t).unwrap();
    let rendered = Arc::new(crate::daemon::echo::Rendered::default());
    core.check_echoes_against(Arc::clone(&rendered));
    let fx = red_warning(&mut core, "2024-07-10T01:59:00+08:00", t);
    let n = Arc::clone(&fx.notices.first().expect("a red warning makes a notice").0);
    let sink = crate::daemon::sink::MqttSink::Notice;
    let key = b"echo key";
    let payload = crate::daemon::echo::payload(&core.cfg, core.store(), &n, sink);
    rendered.put(&n.id, sink, &payload);
    let mut proofs = Proofs::default();
    // Other bytes under the same id, with a proof over them: not what was published.
    let forged = format!(r#"{{"id": "{}"}}"#, n.id).into_bytes();
    let forged_proof = crate::daemon::echo::proof(key, sink, &n.id, &forged).into_bytes();
    core.confirm(
        vec![(forged_proof, 1)],
        vec![(sink, forged, 2)],
        key,
        &mut proofs,
        t,
    )
    .unwrap();
    assert!(!core.store().is_delivered(&n.id, &sink.into()).unwrap());
    // The real echo (what was published; the entry is gone, so it is rendered again).
    let proof = crate::daemon::echo::proof(key, sink, &n.id, &payload).into_bytes();
    core.confirm(
        vec![(proof, 3)],
        vec![(sink, payload.clone(), 4)],
        key,
        &mut proofs,
        t,
    )
    .unwrap();
    assert!(core.store().is_delivered(&n.id, &sink.into()).unwrap());
    // With an entry, the check uses it: published bytes confirm.
    let (_p2, store) = tmp_store("rendered-hit");
    let mut core = Core::recover(cfg(), store, t).unwrap();
    core.check_echoes_against(Arc::clone(&rendered));
    let fx = red_warning(&mut core, "2024-07-10T01:59:00+08:00", t);
    let n = Arc::clone(&fx.notices.first().unwrap().0);
    let payload = crate::daemon::echo::payload(&core.cfg, core.store(), &n, sink);
    rendered.put(&n.id, sink, &payload);
    let proof = crate::daemon::echo::proof(key, sink, &n.id, &payload).into_bytes();
    let mut proofs = Proofs::default();
    core.confirm(
        vec![(proof, 5)],
        vec![(sink, payload, 6)],
        key,
        &mut proofs,
        t,
    )
    .unwrap();
    assert!(core.store().is_delivered(&n.id, &sink.into()).unwrap());
    assert!(rendered.take(&n.id, sink).is_none(), "the entry is used up");
}

/// An input parsed where it arrived (inbound.rs) is handled as parsed when its time is
/// its arrival; when the engine's clock is already past its arrival, its time is the
/// engine's and the payload is parsed again at that time (parsing depends on it).
#[test]
fn a_payload_parsed_on_arrival_is_used_only_at_its_arrival_time() {
    let (_p, store) = tmp_store("preparsed");
    let t = parse_ts("2023-12-01T08:05:00+08:00").unwrap();
    let mut core = Core::recover(cfg(), store, t).unwrap();
    let marked = || {
        Some(Err(Rejection {
            topic: "ers/shuozhou/air/aqi".into(),
            region: Some("shuozhou".into()),
            class: RejectionClass::BadJson,
            reason: "parsed on arrival".into(),
        }))
    };
    let on_time = Incoming {
        arrived: Some(t),
        parsed: marked(),
        ..msg("ers/shuozhou/air/aqi", AQI)
    };
    let fx = core.ingest(vec![on_time], t).unwrap();
    assert_eq!(fx.rejections.len(), 1, "the parse made on arrival is used");
    assert_eq!(fx.rejections[0].1.reason, "parsed on arrival");
    assert!(core.store().journal_after(0).unwrap().is_empty());

    let late = Incoming {
        arrived: Some(t - chrono::Duration::minutes(1)),
        parsed: marked(),
        ..msg("ers/shuozhou/air/aqi", AQI)
    };
    let fx = core.ingest(vec![late], t).unwrap();
    assert!(
        fx.rejections.is_empty(),
        "parsed again at the engine's time"
    );
    let rows = core.store().journal_after(0).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].at, t);
}
