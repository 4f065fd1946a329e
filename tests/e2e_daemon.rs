//! End-to-end: the `yingji run` binary against a real mosquitto (started here), checked
//! from outside through MQTT and the store.
//!
//! The live scenario is built around the wall clock: a red rainstorm warning with
//! one-second call timeouts (so call timers fire during the test), air-quality readings,
//! a coal stock report, an acknowledgement, and malformed inputs. Whatever the plans make
//! of it, the daemon must publish exactly what `yingji replay` makes of the same inputs
//! at the same times (taken from the journal), every notice exactly once.

mod e2e_support;

use std::time::Duration;

use e2e_support::scenario::*;
use e2e_support::*;
use serde_json::Value;
use yingji::daemon::sink::SinkKind;
use yingji::daemon::store::Store;
use yingji::time::Ts;

/// Live notices equal the replay of the same inputs, in order, field for field; state and
/// CAP are published; malformed inputs are rejected with reasons and the daemon goes on.
fn live_equals_replay(protocol: u8) {
    let tmp = TempDir::new(&format!("live-v{protocol}"));
    let dir = tmp.path();
    let broker = Mosquitto::start(dir);
    let cfg = config(dir, broker.port, &format!("live{protocol}"), protocol, "");
    let watch = Watcher::start(
        broker.port,
        &format!("e2e-watch-live{protocol}-{}", std::process::id()),
        &[
            "ers/+/notice/#",
            "ers/+/rejected",
            "ers/+/cap/#",
            "ers/+/state/#",
        ],
    );
    let mut d = Daemon::start(dir, &cfg, &[]);
    d.wait_ready();
    let now = yingji::clock::now();
    let mut valid = 0;
    for part in 0..3 {
        let batch = inputs(now, part);
        valid += batch.len();
        publish(broker.port, &batch);
        if part == 0 {
            // Timers fire between messages: the calls run out, a data gap opens.
            wait_round_over(dir);
            wait_last_gap(dir);
        }
    }
    valid -= MALFORMED;
    wait_journal(dir, valid);
    wait_for(Duration::from_secs(30), "the rejections", || {
        (watch.json_on("/rejected").len() >= MALFORMED).then_some(())
    });
    // And after the last input.
    wait_last_gap(dir);
    let health = http_get(&d, "/healthz");
    assert!(
        health.starts_with("HTTP/1.1 200") && health.contains("\"status\":\"ok\""),
        "{health}"
    );
    let metrics = http_get(&d, "/metrics");
    let accepted = format!("yingji_inputs_total{{result=\"accepted\"}} {valid}\n");
    assert!(metrics.contains(&accepted), "{metrics}");
    assert!(
        metrics.contains(&format!(
            "yingji_inputs_total{{result=\"rejected\"}} {MALFORMED}\n"
        )),
        "{metrics}"
    );
    let st = d.term();
    assert!(st.success(), "exit status {st}:\n{}", d.log_text());
    assert_all_delivered(dir);
    watch.sync();

    let rejected = watch.json_on("/rejected");
    assert_eq!(rejected.len(), MALFORMED, "{rejected:?}");
    for r in &rejected {
        assert!(!r["reason"].as_str().unwrap_or("").is_empty(), "{r}");
        assert_eq!(r["topic"], "ers/shuozhou/air/aqi");
    }
    assert!(
        rejected.iter().any(|r| r["class"] == "too_large"
            || r["reason"].as_str().unwrap().contains("max_payload_bytes")),
        "{rejected:?}"
    );

    let live = watch.json_on("/notice/");
    let (stored, replayed) = replay_journal(dir, &cfg);
    assert_eq!(ids(&stored), ids(&live), "live notices = the outbox");
    assert_eq!(live, replayed, "live notices = replay of the journal");
    // The scenario is built to give moves of every plan and notices fired by timers
    // (call attempts, data gaps) between messages, at their own due times.
    for plan in ["severe_weather", "coal_supply"] {
        assert!(
            live.iter()
                .any(|n| n["plan"] == plan && n["kind"] == "activate"),
            "no {plan} activation: {live:?}"
        );
    }
    assert!(
        live.iter().any(|n| n["kind"] == "data_gap"),
        "no data gap: {live:?}"
    );
    let input_times: Vec<Ts> = Store::open(&dir.join("yingji.db"))
        .unwrap()
        .journal_after(0)
        .unwrap()
        .iter()
        .map(|r| r.at)
        .collect();
    let timer_fired = live.iter().filter(|n| {
        let at = yingji::time::parse_ts(n["at"].as_str().unwrap()).unwrap();
        !input_times.contains(&at)
    });
    assert!(
        timer_fired.count() >= 3,
        "timers fired between messages: {live:?}"
    );
    let caps: Vec<_> = watch
        .all()
        .into_iter()
        .filter(|(t, _)| t.contains("/cap/"))
        .collect();
    // CAP carries the moves, proposals and calls only (CONTRACT.md).
    let alerts: Vec<&Value> = live
        .iter()
        .filter(|n| {
            let k = n["kind"].as_str().unwrap();
            matches!(
                k,
                "activate"
                    | "escalate"
                    | "downgrade"
                    | "terminate"
                    | "proposal"
                    | "call"
                    | "call_ack"
                    | "call_unreached"
            )
        })
        .collect();
    assert!(!alerts.is_empty());
    assert_eq!(caps.len(), alerts.len(), "one CAP alert per move or call");
    for ((_, x), n) in caps.iter().zip(alerts) {
        let x = String::from_utf8(x.clone()).unwrap();
        assert!(x.contains("urn:oasis:names:tc:emergency:cap:1.2"));
        assert!(x.contains(&format!(
            "<identifier>{}</identifier>",
            n["id"].as_str().unwrap()
        )));
    }
    if live.iter().any(|n| n["kind"] == "activate") {
        assert!(
            !watch.json_on("/state/").is_empty(),
            "a move publishes the state"
        );
    }
}

#[test]
fn live_scenario_gives_the_same_notices_as_its_replay_v311() {
    live_equals_replay(4);
}

#[test]
fn live_scenario_gives_the_same_notices_as_its_replay_v5() {
    live_equals_replay(5);
}

/// SIGKILL at several points (right after inputs arrive, while call timers run, after a
/// quiet period), restarting each time: every notice reaches the notice topics exactly
/// once, nothing acknowledged is lost, and the result equals the replay.
#[test]
fn sigkill_and_restart_gives_every_notice_exactly_once() {
    let tmp = TempDir::new("kill");
    let dir = tmp.path();
    let broker = Mosquitto::start(dir);
    let cfg = config(dir, broker.port, "kill", 4, "");
    let watch = Watcher::start(
        broker.port,
        &format!("e2e-watch-kill-{}", std::process::id()),
        &["ers/+/notice/#"],
    );
    let now = yingji::clock::now();
    let mut valid = 0;
    for part in 0..3 {
        let mut d = Daemon::start(dir, &cfg, &[]);
        d.wait_ready();
        let batch = inputs(now, part);
        valid += batch.len() - batch.iter().filter(|(t, p)| is_malformed(t, p)).count();
        publish(broker.port, &batch);
        match part {
            0 => d.kill9(), // inputs delivered to the daemon, maybe not yet journaled
            1 => {
                // Killed while timers run: once one has fired after these inputs.
                wait_journal(dir, valid);
                let last = Store::open(&dir.join("yingji.db"))
                    .unwrap()
                    .journal_after(0)
                    .unwrap()
                    .last()
                    .unwrap()
                    .at;
                wait_stored(dir, "a timer after the inputs", 1, |n| n.at > last);
                d.kill9();
            }
            _ => {
                wait_journal(dir, valid);
                d.kill9();
            }
        }
    }
    let mut d = Daemon::start(dir, &cfg, &[]);
    d.wait_ready();
    wait_journal(dir, valid);
    wait_last_gap(dir);
    assert!(d.term().success());
    // Once more: a restart with nothing new re-sends nothing (what it would re-send is
    // handed to its publisher when it goes live, and flushed when it stops).
    let mut d = Daemon::start(dir, &cfg, &[]);
    d.wait_ready();
    d.wait_log(
        "sending what was not delivered before",
        Duration::from_secs(60),
    );
    assert!(d.term().success());
    watch.sync();

    assert_eq!(
        journal_len(dir),
        valid,
        "each accepted input journaled once"
    );
    assert_all_delivered(dir);
    let live = watch.json_on("/notice/");
    let (stored, replayed) = replay_journal(dir, &cfg);
    let mut seen = std::collections::BTreeMap::new();
    for id in ids(&live) {
        *seen.entry(id).or_insert(0) += 1;
    }
    let dups: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dups.is_empty(), "notices seen more than once: {dups:?}");
    let mut a = ids(&stored);
    let mut b = ids(&live);
    a.sort();
    b.sort();
    assert_eq!(a, b, "every stored notice published");
    assert_eq!(stored, replayed, "recovered state = replay of the journal");
    assert!(stored.len() >= 5, "the scenario makes notices: {stored:?}");
}

/// mosquitto restarted while the daemon runs: the daemon reconnects, resubscribes, gets
/// what was queued for its persistent session, and delivers every notice.
#[test]
fn broker_restart_mid_run_loses_nothing() {
    let tmp = TempDir::new("broker");
    let dir = tmp.path();
    let mut broker = Mosquitto::start(dir);
    let cfg = config(dir, broker.port, "broker", 4, "");
    let watch = Watcher::start(
        broker.port,
        &format!("e2e-watch-broker-{}", std::process::id()),
        &["ers/+/notice/#"],
    );
    let mut d = Daemon::start(dir, &cfg, &[]);
    d.wait_ready();
    let now = yingji::clock::now();
    let mut valid = 0;
    for part in 0..3 {
        let batch = inputs(now, part);
        valid += batch.len() - batch.iter().filter(|(t, p)| is_malformed(t, p)).count();
        publish(broker.port, &batch);
        if part < 2 {
            broker.restart(); // call timers fire while the broker is away
        }
    }
    wait_journal(dir, valid);
    wait_last_gap(dir);
    wait_for(Duration::from_secs(60), "every notice delivered", || {
        let s = Store::open(&dir.join("yingji.db")).unwrap();
        s.pending(SinkKind::Mqtt).unwrap().is_empty().then_some(())
    });
    assert!(d.term().success());
    assert_all_delivered(dir);
    watch.sync();
    assert_eq!(journal_len(dir), valid);
    let live = watch.json_on("/notice/");
    let (stored, replayed) = replay_journal(dir, &cfg);
    let mut a = ids(&stored);
    let mut b = ids(&live);
    b.dedup();
    a.sort();
    b.sort();
    b.dedup();
    assert!(!a.is_empty(), "the scenario makes notices");
    assert_eq!(a, b, "every notice reached the subscriber");
    assert_eq!(stored, replayed);
}

/// A daemon with no `[mqtt]` (the embedded broker, on a free port), ready.
fn embedded_daemon(name: &str) -> (TempDir, Daemon, u16) {
    let tmp = TempDir::new(name);
    let dir = tmp.path();
    let cfg = dir.join("yingji.toml");
    write(
        &cfg,
        &format!("[store]\npath = \"{}\"\n", dir.join("y.db").display()),
    );
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut d = Daemon::start(dir, &cfg, &[("YINGJI_EMBEDDED_LISTEN", listen)]);
    d.wait_ready();
    (tmp, d, port)
}

/// No `[mqtt]`: the embedded broker comes up, answers, and a malformed reading is
/// rejected on `ers/shuozhou/rejected`.
#[test]
fn embedded_broker_answers_and_rejects_with_a_reason() {
    let (_tmp, mut d, port) = embedded_daemon("embedded");
    assert!(d.log_text().contains("embedded MQTT broker listening on"));
    let watch = Watcher::start(port, "e2e-watch-embedded", &["ers/+/rejected"]);
    publish(port, &[m("ers/shuozhou/air/aqi", "{\"aqi\": 1000000}")]);
    let r = wait_for(Duration::from_secs(60), "a rejection", || {
        watch.json_on("/rejected").into_iter().next()
    });
    assert!(!r["reason"].as_str().unwrap().is_empty(), "{r}");
    assert!(d.term().success());
}

/// Regression: the daemon acknowledged an ignored message (its own state or proof) before
/// an earlier input's journal commit; rumqttd drops a connection on an out-of-order PUBACK,
/// so on the embedded broker the input connection fell after every notice. Acks now go
/// out in arrival order and the connection stays up while notices flow.
#[test]
fn embedded_broker_keeps_the_input_connection_while_notices_flow() {
    let (_tmp, mut d, port) = embedded_daemon("embedded-acks");
    let watch = Watcher::start(port, "e2e-watch-acks", &["ers/+/notice/#"]);
    let ts = yingji::time::fmt_ts(yingji::clock::now());
    for (days, kind, n) in [
        (17, "activate", 1),
        (12, "escalate", 1),
        (30, "report_followup", 1),
    ] {
        let payload =
            format!("{{\"ts\": \"{ts}\", \"plant\": \"神头第一发电厂\", \"stock_days\": {days}}}");
        publish(port, &[m("ers/shuozhou/coal/stock", payload)]);
        wait_for(Duration::from_secs(60), kind, || {
            let seen = watch.json_on("/notice/");
            (seen.iter().filter(|x| x["kind"] == kind).count() >= n).then_some(())
        });
    }
    let log = d.log_text();
    assert!(!log.contains("connection lost"), "{log}");
    assert!(d.term().success());
}

/// The embedded broker's port is taken: a clear error and a non-zero exit.
#[test]
fn embedded_broker_port_taken_fails_loudly() {
    let tmp = TempDir::new("taken");
    let dir = tmp.path();
    let cfg = dir.join("yingji.toml");
    write(
        &cfg,
        &format!("[store]\npath = \"{}\"\n", dir.join("y.db").display()),
    );
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let listen = held.local_addr().unwrap().to_string();
    let mut d = Daemon::start(dir, &cfg, &[("YINGJI_EMBEDDED_LISTEN", listen)]);
    let st = d.wait_exit(Duration::from_secs(60)).expect("exits");
    assert!(!st.success());
    assert!(d.log_text().contains("is not free"), "{}", d.log_text());
}

/// Emails: the SMTP server is down while notices are made and the daemon is killed; after
/// a restart with the server up, every email of the outbox arrives once, with the plan and
/// level in Chinese first in the subject and a Message-ID from the notice id.
#[test]
fn emails_survive_a_down_server_and_a_restart() {
    let tmp = TempDir::new("email");
    let dir = tmp.path();
    let broker = Mosquitto::start(dir);
    let smtp_port = free_port();
    let email = format!(
        "[email]\nsmtp_url = \"smtp://127.0.0.1:{smtp_port}\"\nfrom = \"应急 <yingji@example.org>\"\n"
    );
    let cfg = config(dir, broker.port, "email", 4, &email);
    let mut d = Daemon::start(dir, &cfg, &[]);
    d.wait_ready();
    let now = yingji::clock::now();
    let batch: Vec<_> = (0..3).flat_map(|p| inputs(now, p)).collect();
    publish(broker.port, &batch);
    wait_journal(dir, batch.len() - MALFORMED);
    // Every timer of the scenario has fired (the lift ended the calls; the data gap after
    // the last reading): the restart below makes no new notice while the emails go out.
    wait_last_gap(dir);
    d.kill9();
    let made = stored(dir).len();

    let mail_dir = dir.join("mail");
    let _smtp = Smtp::start(smtp_port, &mail_dir);
    let mut d = Daemon::start(dir, &cfg, &[]);
    d.wait_ready();
    wait_for(Duration::from_secs(60), "every email sent", || {
        let s = Store::open(&dir.join("yingji.db")).unwrap();
        s.pending(SinkKind::Email).unwrap().is_empty().then_some(())
    });
    assert!(d.term().success());
    assert_eq!(stored(dir).len(), made, "no new notice after the restart");

    let store = Store::open(&dir.join("yingji.db")).unwrap();
    let notices = store.notices().unwrap();
    let cfg_parsed = yingji::Config::load(Some(&cfg)).unwrap().config;
    let mut expected = Vec::new();
    for n in &notices {
        for addr in yingji::daemon::render::email_recipients(&cfg_parsed, n) {
            expected.push((
                addr,
                format!("<{}@yingji.{}>", n.id.replace('/', "."), n.region),
                yingji::daemon::render::subject(&cfg_parsed, n),
            ));
        }
    }
    let mut got = Vec::new();
    for e in std::fs::read_dir(&mail_dir)
        .map(|r| r.flatten().collect::<Vec<_>>())
        .unwrap_or_default()
    {
        let v: Value = serde_json::from_str(&std::fs::read_to_string(e.path()).unwrap()).unwrap();
        assert!(v["subject"].as_str().unwrap().starts_with('【'), "{v}");
        let types: Vec<&str> = v["types"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect();
        assert!(
            types.contains(&"text/plain") && types.contains(&"text/html"),
            "{v}"
        );
        got.push((
            v["to"].as_str().unwrap().to_string(),
            v["message_id"].as_str().unwrap().to_string(),
            v["subject"].as_str().unwrap().to_string(),
        ));
    }
    assert!(
        !expected.is_empty(),
        "the scenario makes notices for contacts with email"
    );
    expected.sort();
    got.sort();
    assert_eq!(got, expected, "each email of the outbox exactly once");
}

/// MQTT 5 over TLS with a username and a password from the environment: the daemon
/// connects (CA from `ca_file`), and a malformed input published by an authenticated
/// client comes back rejected.
#[test]
fn tls_and_password_from_env_over_mqtt5() {
    let tmp = TempDir::new("tls");
    let dir = tmp.path();
    make_certs(dir);
    run(
        "mosquitto_passwd",
        &["-b", "-c", "passwd", "yingji", "s3cret"],
        dir,
    );
    let tls_port = free_port();
    let extra = format!(
        "allow_anonymous false\npassword_file {d}/passwd\nlistener {tls_port} 127.0.0.1\ncafile {d}/ca.pem\ncertfile {d}/server.pem\nkeyfile {d}/server.key\n",
        d = dir.display()
    );
    let broker = Mosquitto::start_with(dir, Some(extra));
    let cfg = dir.join("yingji.toml");
    write(
        &cfg,
        &format!(
            "[mqtt]\nurl = \"mqtts://127.0.0.1:{tls_port}\"\nprotocol = 5\nusername = \"yingji\"\npassword = \"${{YINGJI_E2E_MQTT_PW}}\"\nca_file = \"{d}/ca.pem\"\nclient_id = \"yingji-e2e-tls-{pid}\"\n[store]\npath = \"{d}/y.db\"\n[http]\nlisten = \"127.0.0.1:0\"\n",
            d = dir.display(),
            pid = std::process::id()
        ),
    );
    let mut d = Daemon::start(dir, &cfg, &[("YINGJI_E2E_MQTT_PW", "s3cret".to_string())]);
    d.wait_ready();
    let port = broker.port.to_string();
    let watch = Watcher::start_as(
        broker.port,
        &format!("e2e-watch-tls-{}", std::process::id()),
        &["ers/+/rejected"],
        Some(("yingji", "s3cret")),
    );
    run(
        "mosquitto_pub",
        &[
            "-p",
            &port,
            "-u",
            "yingji",
            "-P",
            "s3cret",
            "-q",
            "1",
            "-t",
            "ers/shuozhou/air/aqi",
            "-m",
            "{not json",
        ],
        dir,
    );
    let r = wait_for(
        Duration::from_secs(30),
        "a rejection over TLS + auth",
        || watch.json_on("/rejected").into_iter().next(),
    );
    assert_eq!(r["class"], "bad_json", "{r}\n{}", d.log_text());
    assert!(d.term().success());
}
