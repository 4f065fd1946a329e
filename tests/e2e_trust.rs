//! End-to-end (real mosquitto, the `yingji` binary): the ways issue 9 found to resurrect,
//! suppress or lose notices. Each test reproduces one of them from outside.

mod e2e_support;

use std::time::Duration;

use e2e_support::scenario::*;
use e2e_support::*;
use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
use yingji::daemon::sink::{Sink, SinkKind};
use yingji::daemon::store::Store;
use yingji::time::fmt_ts;

/// Publishes with QoS 1 and the given retain flag; waits for every PUBACK.
fn publish_retained(port: u16, msgs: &[(String, Vec<u8>, bool)]) {
    let mut o = MqttOptions::new(
        format!("e2e-trust-pub-{}-{}", std::process::id(), free_port()),
        "127.0.0.1",
        port,
    );
    o.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut conn) = Client::new(o, msgs.len() + 10);
    for (t, p, retain) in msgs {
        client
            .publish(t.clone(), QoS::AtLeastOnce, *retain, p.clone())
            .unwrap();
    }
    let mut acked = 0;
    while acked < msgs.len() {
        match conn.recv_timeout(Duration::from_secs(30)) {
            Ok(Ok(Event::Incoming(Packet::PubAck(_)))) => acked += 1,
            Ok(Ok(_)) => {}
            Ok(Err(e)) => panic!("publishing: {e}"),
            Err(e) => panic!("publishing: no PUBACK ({e:?})"),
        }
    }
    let _ = client.disconnect();
    let _ = conn.recv_timeout(Duration::from_millis(200));
}

fn journal(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    Store::open(&dir.join("yingji.db"))
        .unwrap()
        .journal_after(0)
        .unwrap()
        .into_iter()
        .map(|r| (r.topic, r.payload))
        .collect()
}

/// Waits until the journal has an input with this payload (the core handles inputs in
/// order, so everything that arrived before it was handled too).
fn wait_journaled(dir: &std::path::Path, payload: &str) {
    wait_for(Duration::from_secs(30), payload, || {
        journal(dir)
            .iter()
            .any(|(_, p)| p == payload.as_bytes())
            .then_some(())
    });
}

/// How many notices still wait for their notice-topic delivery ([`Sink::Notice`]).
fn undelivered_notices(dir: &std::path::Path) -> usize {
    let store = Store::open(&dir.join("yingji.db")).unwrap();
    let pending = store.pending(SinkKind::Mqtt).unwrap();
    pending.iter().filter(|p| p.sink == Sink::Notice).count()
}

fn aqi_probe(k: u32) -> String {
    let now = yingji::clock::now();
    let hour = yingji::time::floor_hour(now) - chrono::Duration::hours(i64::from(k) + 3);
    format!(
        r#"{{"ts": "{}", "aqi": {}, "primary": "PM10"}}"#,
        fmt_ts(hour),
        60 + k
    )
}

/// Item 1: retained inputs are redelivered by the broker at every subscription. A red
/// rainstorm warning published with retain, then lifted, must not come back after a
/// restart, and a retained storage report must be journaled once.
#[test]
fn retained_inputs_are_handled_once_across_restarts_v311() {
    retained_inputs_are_handled_once_across_restarts(4);
}

#[test]
fn retained_inputs_are_handled_once_across_restarts_v5() {
    retained_inputs_are_handled_once_across_restarts(5);
}

fn retained_inputs_are_handled_once_across_restarts(protocol: u8) {
    let tmp = TempDir::new(&format!("retained-v{protocol}"));
    let dir = tmp.path();
    let broker = Mosquitto::start(dir);
    let cfg = config(
        dir,
        broker.port,
        &format!("retained{protocol}"),
        protocol,
        "",
    );
    let watch = Watcher::start(
        broker.port,
        &format!("e2e-watch-retained{protocol}-{}", std::process::id()),
        &["ers/+/notice/#"],
    );
    let mut d = Daemon::start(dir, &cfg, &[]);
    d.wait_ready();
    let now = fmt_ts(yingji::clock::now());
    let issue = format!(
        r#"{{"ts": "{now}", "id": "ret-rain", "hazard": "rainstorm", "action": "issue", "color": "red"}}"#
    );
    let storage = format!(r#"{{"ts": "{now}", "storage_t": 120000}}"#);
    let lift =
        format!(r#"{{"ts": "{now}", "id": "ret-rain", "hazard": "rainstorm", "action": "lift"}}"#);
    publish_retained(
        broker.port,
        &[
            m("ers/shuozhou/weather/warning", issue.clone()),
            m("ers/shuozhou/coal/storage", storage.clone()),
        ]
        .into_iter()
        .map(|(t, p)| (t, p, true))
        .collect::<Vec<_>>(),
    );
    publish(
        broker.port,
        &[
            m(
                "ers/shuozhou/cmd",
                r#"{"cmd": "ack", "call_id": "ret-rain/1", "person": "yjj"}"#,
            ),
            m("ers/shuozhou/weather/warning", lift.clone()),
        ],
    );
    wait_journaled(dir, &lift);
    for k in 0..2 {
        assert!(d.term().success());
        d = Daemon::start(dir, &cfg, &[]);
        d.wait_ready();
        let probe = aqi_probe(k);
        publish(broker.port, &[m("ers/shuozhou/air/aqi", probe.clone())]);
        wait_journaled(dir, &probe);
    }
    assert!(d.term().success());
    let j = journal(dir);
    let count = |p: &str| j.iter().filter(|(_, x)| x == p.as_bytes()).count();
    assert_eq!(count(&issue), 1, "the retained warning journaled once");
    assert_eq!(count(&storage), 1, "the retained storage journaled once");
    let activates = watch
        .json_on("/notice/severe_weather")
        .into_iter()
        .filter(|n| n["kind"] == "activate")
        .count();
    assert_eq!(activates, 1, "a lifted warning never comes back");
}

/// Item 2: recovery trusts an echo only when it is what this daemon published. Forged
/// `{"id": ...}` messages on the notice topic, queued while the daemon was down, must not
/// mark real notices delivered: every notice of the outbox reaches the notice topic.
#[test]
fn forged_echoes_suppress_no_notice_v311() {
    forged_echoes_suppress_no_notice(4);
}

#[test]
fn forged_echoes_suppress_no_notice_v5() {
    forged_echoes_suppress_no_notice(5);
}

fn forged_echoes_suppress_no_notice(protocol: u8) {
    let tmp = TempDir::new(&format!("forged-v{protocol}"));
    let dir = tmp.path();
    let mut broker = Mosquitto::start(dir);
    let cfg = config(dir, broker.port, &format!("forged{protocol}"), protocol, "");
    let watch = Watcher::start(
        broker.port,
        &format!("e2e-watch-forged{protocol}-{}", std::process::id()),
        &["ers/+/notice/#"],
    );
    let mut d = Daemon::start(dir, &cfg, &[]);
    d.wait_ready();
    let now = fmt_ts(yingji::clock::now());
    let issue = format!(
        r#"{{"ts": "{now}", "id": "forge-rain", "hazard": "rainstorm", "action": "issue", "color": "red"}}"#
    );
    publish(
        broker.port,
        &[m("ers/shuozhou/weather/warning", issue.clone())],
    );
    wait_journaled(dir, &issue);
    // The broker goes away while call timers keep making notices: they stay undelivered.
    broker.stop();
    let before = undelivered_notices(dir);
    wait_for(
        Duration::from_secs(30),
        "notices made while the broker is down",
        || {
            let n = undelivered_notices(dir);
            (n >= before + 3).then_some(())
        },
    );
    d.kill9();
    broker.start_again();
    let forged: Vec<_> = (1..=40)
        .map(|n| {
            m(
                "ers/shuozhou/notice/severe_weather",
                format!(r#"{{"id": "severe_weather/shuozhou/rainstorm/{n}"}}"#),
            )
        })
        .collect();
    publish(broker.port, &forged);
    let mut d = Daemon::start(dir, &cfg, &[]);
    d.wait_ready();
    let outbox: Vec<String> = Store::open(&dir.join("yingji.db"))
        .unwrap()
        .notices()
        .unwrap()
        .into_iter()
        .map(|n| n.id)
        .collect();
    wait_for(
        Duration::from_secs(30),
        "every outbox notice on the topic",
        || {
            let seen: Vec<String> = watch
                .json_on("/notice/")
                .iter()
                .filter_map(|v| {
                    v["kind"]
                        .as_str()
                        .map(|_| v["id"].as_str().unwrap().to_string())
                })
                .collect();
            outbox.iter().all(|id| seen.contains(id)).then_some(())
        },
    );
    assert!(d.term().success());
    assert!(
        d.log_text().contains("echo not trusted"),
        "forgeries logged"
    );
}

/// Item 7: the echo wait counts from the first CONNACK. A daemon started more than 10 s
/// before its broker must still drain its echoes before sending anything again.
#[test]
fn echo_wait_counts_from_the_first_connection() {
    let tmp = TempDir::new("late-broker");
    let dir = tmp.path();
    let port = free_port();
    let cfg = config(dir, port, "late", 4, "");
    let mut d = Daemon::start(dir, &cfg, &[]);
    // Backoff 0.1, 0.2, ... 6.4 s: seven failed attempts take over 12 s.
    wait_for(
        Duration::from_secs(60),
        "seven failed connection attempts",
        || (d.log_text().matches("input connection lost").count() >= 7).then_some(()),
    );
    let broker = Mosquitto::start_on(dir, port);
    d.wait_ready();
    d.wait_log(
        "echoes of earlier publications drained",
        Duration::from_secs(30),
    );
    assert!(
        !d.log_text().contains("echoes did not drain in time"),
        "{}",
        d.log_text()
    );
    assert!(d.term().success());
    drop(broker);
}

/// Issue 15: more echoes than the input connection's window to the core (1,024 messages
/// handed on and not yet taken) queued before the drain marker still drain: the input
/// connection reads on through all of them to the marker, every echo reaches the core,
/// and the daemon goes live by the marker, not by the 10 s drain wait.
#[test]
fn more_echoes_than_the_input_window_still_drain() {
    let tmp = TempDir::new("many-echoes");
    let dir = tmp.path();
    let broker = Mosquitto::start(dir);
    let cfg = config(dir, broker.port, "echoes", 4, "");
    // The daemon's persistent session subscribes once; then the daemon is away.
    let mut d = Daemon::start(dir, &cfg, &[]);
    d.wait_ready();
    d.wait_log(
        "echoes of earlier publications drained",
        Duration::from_secs(60),
    );
    assert!(d.term().success());
    let mut queued = Vec::new();
    const ECHOES: usize = 1_500;
    for i in 0..ECHOES {
        queued.push(m(
            "ers/shuozhou/notice/coal_supply",
            format!(r#"{{"id": "coal_supply/shuozhou/supply/{}"}}"#, 100_000 + i),
        ));
    }
    publish(broker.port, &queued);
    let mut d = Daemon::start(dir, &cfg, &[]);
    d.wait_ready();
    d.wait_log(
        "echoes of earlier publications drained",
        Duration::from_secs(120),
    );
    // Every queued echo reaches the core (none is ours: each confirms nothing).
    wait_for(
        Duration::from_secs(120),
        "every echo handled by the core",
        || (d.log_text().matches("echo not trusted").count() >= ECHOES).then_some(()),
    );
    let log = d.log_text();
    assert!(
        !log.contains("echoes did not drain in time"),
        "the marker came only after the drain wait: {log}"
    );
    assert_eq!(log.matches("echo not trusted").count(), ECHOES);
    // Live after the drain: an input is handled.
    let now = fmt_ts(yingji::clock::now());
    publish(
        broker.port,
        &[m(
            "ers/shuozhou/coal/stock",
            format!(
                r#"{{"ts": "{now}", "plant": "p1", "stock_t": 250000, "burn_t_per_day": 10000}}"#
            ),
        )],
    );
    wait_journal(dir, 1);
    assert!(d.term().success());
    drop(broker);
}

/// Item 3: an SMTP server that accepts and never greets. Every attempt ends at its
/// deadline, and the sink shows as degraded on /healthz, in /metrics and on the ops
/// topic.
#[test]
fn a_hung_smtp_server_is_timed_out_and_reported() {
    let tmp = TempDir::new("smtp-hang");
    let dir = tmp.path();
    let broker = Mosquitto::start(dir);
    let hung = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let smtp_port = hung.local_addr().unwrap().port();
    let held = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let h = std::sync::Arc::clone(&held);
    std::thread::spawn(move || {
        for s in hung.incoming().flatten() {
            h.lock().unwrap().push(s); // accepted, never answered
        }
    });
    let email = format!(
        "[email]\nsmtp_url = \"smtp://127.0.0.1:{smtp_port}\"\nfrom = \"应急 <yingji@example.org>\"\ntimeout_s = 1\n"
    );
    let cfg = config(dir, broker.port, "smtphang", 4, &email);
    let watch = Watcher::start(
        broker.port,
        &format!("e2e-watch-ops-{}", std::process::id()),
        &["ers/_yingji/ops"],
    );
    let mut d = Daemon::start(dir, &cfg, &[]);
    d.wait_ready();
    let now = fmt_ts(yingji::clock::now());
    let issue = format!(
        r#"{{"ts": "{now}", "id": "hang-rain", "hazard": "rainstorm", "action": "issue", "color": "red"}}"#
    );
    publish(broker.port, &[m("ers/shuozhou/weather/warning", issue)]);
    wait_for(
        Duration::from_secs(60),
        "the email sink degraded on /healthz",
        || {
            let h = http_get(&d, "/healthz");
            (h.starts_with("HTTP/1.1 503") && h.contains("\"email\":{\"failures_in_row\""))
                .then_some(h)
        },
    );
    let metrics = http_get(&d, "/metrics");
    assert!(
        metrics.contains("yingji_sink_degraded{sink=\"email\"} 1"),
        "{metrics}"
    );
    wait_for(
        Duration::from_secs(60),
        "sink_degraded on the ops topic",
        || {
            watch
                .json_on("_yingji/ops")
                .iter()
                .any(|v| v["event"] == "sink_degraded" && v["sink"] == "email")
                .then_some(())
        },
    );
    assert!(d.term().success());
}

/// Item 11: inputs for an unknown region or an unknown feed reach the daemon and are
/// rejected with a reason; the daemon's own output topics are never taken as input.
#[test]
fn unknown_regions_and_feeds_are_rejected_and_outputs_are_not_input() {
    let tmp = TempDir::new("subs");
    let dir = tmp.path();
    let broker = Mosquitto::start(dir);
    let cfg = config(dir, broker.port, "subs", 5, "");
    let watch = Watcher::start(
        broker.port,
        &format!("e2e-watch-subs-{}", std::process::id()),
        &["ers/+/rejected"],
    );
    let mut d = Daemon::start(dir, &cfg, &[]);
    d.wait_ready();
    let probe = aqi_probe(0);
    publish(
        broker.port,
        &[
            m("ers/nowhere/air/aqi", aqi_probe(1)),
            m("ers/shuozhou/air/bogus", aqi_probe(2)),
            m("ers/shuozhou/rejected", r#"{"cmd": "ack"}"#),
            m("ers/shuozhou/state/coal_supply", r#"{"x": 1}"#),
            m("ers/_yingji/ops", r#"{"x": 1}"#),
            m("ers/shuozhou/air/aqi", probe.clone()),
        ],
    );
    wait_journaled(dir, &probe);
    // Our own rejections (the forged one published on `rejected` has no class).
    let rejections = || -> Vec<serde_json::Value> {
        watch
            .json_on("/rejected")
            .into_iter()
            .filter(|v| v["class"].is_string())
            .collect()
    };
    let got = wait_for(Duration::from_secs(60), "two rejections", || {
        let r = rejections();
        (r.len() >= 2).then_some(r)
    });
    let classes: Vec<(&str, &str)> = got
        .iter()
        .map(|v| (v["topic"].as_str().unwrap(), v["class"].as_str().unwrap()))
        .collect();
    assert!(
        classes.contains(&("ers/nowhere/air/aqi", "unknown_region")),
        "{classes:?}"
    );
    assert!(
        classes.contains(&("ers/shuozhou/air/bogus", "unknown_topic")),
        "{classes:?}"
    );
    assert!(d.term().success());
    let j = journal(dir);
    assert_eq!(j.len(), 1, "only the probe journaled: {j:?}");
    assert_eq!(
        rejections().len(),
        2,
        "outputs are not inputs: no rejection of them, no loop"
    );
}

/// Item 8: secrets never reach the log, even at debug level: the MQTT URL's password, the
/// SMTP password from `${ENV}`, a webhook's query token and key.
#[test]
fn secrets_never_reach_the_logs() {
    let tmp = TempDir::new("secrets");
    let dir = tmp.path();
    let broker = Mosquitto::start(dir);
    let closed = free_port();
    let extra = format!(
        "[email]\nsmtp_url = \"smtp://u:${{E2E_SMTP_PW}}@127.0.0.1:{closed}\"\nfrom = \"y <y@example.org>\"\ntimeout_s = 1\n\n\
         [[webhook]]\nkind = \"generic\"\nname = \"g\"\nurl = \"http://127.0.0.1:{closed}/hook?token=HOOKSECRET3\"\nkey = \"KEYSECRET4\"\ntimeout_s = 1\n"
    );
    let cfg = config(dir, broker.port, "secrets", 4, &extra);
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        &format!("url = \"mqtt://127.0.0.1:{}\"", broker.port),
        &format!("url = \"mqtt://ops:MQTTSECRET1@127.0.0.1:{}\"", broker.port),
    );
    write(&cfg, &text);
    let env = [
        ("E2E_SMTP_PW", "SMTPSECRET2".to_string()),
        ("RUST_LOG", "debug".to_string()),
    ];
    let mut d = Daemon::start(dir, &cfg, &env);
    d.wait_ready();
    let now = fmt_ts(yingji::clock::now());
    let issue = format!(
        r#"{{"ts": "{now}", "id": "sec-rain", "hazard": "rainstorm", "action": "issue", "color": "red"}}"#
    );
    publish(broker.port, &[m("ers/shuozhou/weather/warning", issue)]);
    d.wait_log("webhook not delivered", Duration::from_secs(30));
    d.wait_log("email not sent", Duration::from_secs(30));
    assert!(d.term().success());
    let log = d.log_text();
    for s in ["MQTTSECRET1", "SMTPSECRET2", "HOOKSECRET3", "KEYSECRET4"] {
        assert!(!log.contains(s), "{s} in the log:\n{log}");
    }
}
