//! End-to-end: webhooks (WeCom robot, phone gateway, generic) and acknowledgement links,
//! with the `yingji` binary against a real mosquitto and a tiny HTTP sink written here.

mod e2e_support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use e2e_support::scenario::*;
use e2e_support::*;
use serde_json::Value;
use yingji::daemon::sink::{self, SinkKind};
use yingji::daemon::store::Store;

/// A webhook endpoint: records (path, JSON body) of every POST and answers 200 with
/// WeCom's `{"errcode": 0}`.
#[derive(Clone, Default)]
struct Sink {
    got: Arc<Mutex<Vec<(String, Value)>>>,
}

impl Sink {
    /// Listens on `port` from now on.
    fn serve(&self, port: u16) {
        let l = TcpListener::bind(("127.0.0.1", port)).unwrap();
        let got = Arc::clone(&self.got);
        std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                if let Some(req) = read_request(s) {
                    got.lock().unwrap().push(req);
                }
            }
        });
    }

    fn on(&self, path: &str) -> Vec<Value> {
        let got = self.got.lock().unwrap();
        got.iter()
            .filter(|(p, _)| p.split('?').next() == Some(path))
            .map(|(_, b)| b.clone())
            .collect()
    }

    fn paths(&self) -> Vec<String> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .map(|(p, _)| p.clone())
            .collect()
    }
}

fn read_request(mut s: TcpStream) -> Option<(String, Value)> {
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut r = BufReader::new(s.try_clone().ok()?);
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let path = line.split_whitespace().nth(1)?.to_string();
    let mut len = 0;
    loop {
        let mut h = String::new();
        r.read_line(&mut h).ok()?;
        if h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().ok()?;
            }
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    // A WeCom application first asks for an access token (GET, no body).
    let token = path.starts_with("/cgi-bin/gettoken?");
    let v = if token {
        Value::Null
    } else {
        serde_json::from_slice(&body).ok()?
    };
    let ok: &[u8] = if token {
        br#"{"errcode":0,"errmsg":"ok","access_token":"e2e-token","expires_in":7200}"#
    } else {
        br#"{"errcode":0,"errmsg":"ok"}"#
    };
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        ok.len()
    );
    s.write_all(head.as_bytes()).ok()?;
    s.write_all(ok).ok()?;
    Some((path, v))
}

/// GET `path` from 127.0.0.1:`port`: (status code, body).
fn get(port: u16, path: &str) -> (u16, String) {
    request(
        port,
        format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
    )
}

/// POSTs the query of `path` as a form to its path (the button of an ack page).
fn post(port: u16, path: &str) -> (u16, String) {
    let (p, form) = path.split_once('?').unwrap();
    request(
        port,
        format!(
            "POST {p} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
            form.len()
        ),
    )
}

fn request(port: u16, req: String) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(req.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let code = out.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = out.split_once("\r\n\r\n").unwrap().1.to_string();
    (code, body)
}

/// The scenario config with a fixed HTTP port as public URL, call timings and webhooks.
fn hooks_config(
    dir: &Path,
    port: u16,
    name: &str,
    http: u16,
    timing: &str,
    hooks: &str,
) -> std::path::PathBuf {
    let p = config(dir, port, name, 4, "");
    let text = std::fs::read_to_string(&p)
        .unwrap()
        .replace(
            "listen = \"127.0.0.1:0\"",
            &format!("listen = \"127.0.0.1:{http}\"\npublic_url = \"http://127.0.0.1:{http}/\""),
        )
        .replace(
            "ack_timeout_s = 1\nphone_retry_s = 1\nphone_attempts = 2",
            timing,
        );
    write(&p, &format!("{text}\n{hooks}"));
    p
}

fn warning(id: &str) -> (String, Vec<u8>) {
    m(
        "ers/shuozhou/weather/warning",
        format!(
            r#"{{"ts": "{}", "id": "{id}", "hazard": "rainstorm", "action": "issue", "color": "red"}}"#,
            yingji::time::fmt_ts(yingji::clock::now())
        ),
    )
}

fn notices(watch: &Watcher) -> Vec<Value> {
    watch.json_on("/notice/")
}

fn calls(ns: &[Value]) -> Vec<Value> {
    ns.iter().filter(|n| n["kind"] == "call").cloned().collect()
}

/// The phone gateway's view of a call notice.
fn phone_key(v: &Value) -> (String, String, u64) {
    (
        v["call_id"].as_str().unwrap().to_string(),
        v["person"].as_str().unwrap().to_string(),
        v["attempt"].as_u64().unwrap(),
    )
}

/// A red rainstorm with contacts: WeCom gets every call, the phone gateway only the phone
/// attempts; the link in the message stops the calls of that person; a second click says
/// it was acknowledged before; a forged signature is refused without reaching the engine;
/// the journal (with the click as an `ack` command) replays to the same notices.
#[test]
fn calls_reach_wecom_and_phone_and_the_link_stops_them() {
    let tmp = TempDir::new("hooks-ack");
    let dir = tmp.path();
    let broker = Mosquitto::start(dir);
    let (http, hook) = (free_port(), free_port());
    let sink = Sink::default();
    sink.serve(hook);
    let hooks = format!(
        r#"
[[webhook]]
kind = "wecom"
url = "http://127.0.0.1:{hook}/robot"
key = "robot-key"
kinds = ["call", "call_ack", "call_unreached"]
[[webhook]]
kind = "phone"
url = "http://127.0.0.1:{hook}/phone"
[[webhook]]
kind = "wecom_app"
url = "http://127.0.0.1:{hook}"
corp_id = "ww-e2e"
agent_id = 1000002
secret = "app-secret"
"#
    );
    let timing = "ack_timeout_s = 2\nphone_retry_s = 2\nphone_attempts = 3";
    let cfg = hooks_config(dir, broker.port, "hooks-ack", http, timing, &hooks);
    let watch = Watcher::start(
        broker.port,
        &format!("e2e-watch-hooks-{}", std::process::id()),
        &["ers/+/notice/#"],
    );
    let mut d = Daemon::start(dir, &cfg, &[]);
    d.wait_ready();
    publish(broker.port, &[warning("hk-rain")]);

    // The WeCom application message to yjj alone carries the link (叫应 "点对点"); the
    // group robot's copy carries none.
    let msg = wait_for(
        Duration::from_secs(60),
        "a WeCom application call to yjj",
        || {
            sink.on("/cgi-bin/message/send")
                .into_iter()
                .find(|v| v["touser"] == "zhangyj")
        },
    );
    assert_eq!(msg["agentid"], 1000002);
    assert!(sink
        .paths()
        .iter()
        .any(|p| p == "/cgi-bin/message/send?access_token=e2e-token"));
    let text = msg["text"]["content"].as_str().unwrap();
    assert!(
        text.contains("【重大灾害性天气 暴雨红色预警】叫应") && text.contains("请回复“收到”"),
        "{text}"
    );
    let robot = wait_for(Duration::from_secs(60), "the robot's copy", || {
        sink.on("/robot").into_iter().next()
    });
    assert!(sink.paths().iter().any(|p| p == "/robot?key=robot-key"));
    assert!(
        !robot.to_string().contains("/ack?"),
        "a group message with a link: {robot}"
    );
    let link = text
        .split("收到请点击确认：")
        .nth(1)
        .unwrap()
        .lines()
        .next()
        .unwrap();
    let prefix = format!("http://127.0.0.1:{http}/");
    let path = format!("/{}", link.strip_prefix(&prefix).expect("public_url"));

    // A forged signature: refused, nothing journaled.
    let before = journal_len(dir);
    let forged = path.replace("person=yjj", "person=cg");
    let (code, body) = get(http, &forged);
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("签名不符"), "{body}");
    let flip = if path.ends_with('0') { "1" } else { "0" };
    let (code, _) = get(http, &format!("{}{flip}", &path[..path.len() - 1]));
    assert_eq!(code, 403);
    assert_eq!(
        journal_len(dir),
        before,
        "a forged link reached the journal"
    );

    // Opening the link shows the call, the person and a button, and records nothing
    // (a mail scanner following links acknowledges nothing).
    let (code, body) = get(http, &path);
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains("张应急") && body.contains("确认收到叫应"),
        "{body}"
    );
    assert_eq!(journal_len(dir), before, "a GET reached the journal");
    // The button: recorded, call_ack published, no more calls for yjj.
    let (code, body) = post(http, &path);
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains("已确认") && body.contains("后续叫应已停止"),
        "{body}"
    );
    let ack = wait_for(Duration::from_secs(60), "call_ack of yjj", || {
        notices(&watch)
            .into_iter()
            .find(|n| n["kind"] == "call_ack" && n["person"] == "yjj")
    });
    assert_eq!(ack["evidence"]["by"], "link", "{ack}");
    let rows = journal_len(dir);
    let (code, body) = post(http, &path);
    assert_eq!(code, 200);
    assert!(body.contains("此前已回应"), "{body}");
    assert_eq!(journal_len(dir), rows, "a repeated click is not journaled");

    // The other calls run out (3 attempts, 2 s apart) and every webhook is delivered:
    // then the daemon stops, and what it published is compared with what it stored.
    wait_stored(dir, "the round to run out for cg", 1, |n| {
        n.kind.as_str() == "call_unreached" && n.person.as_deref() == Some("cg")
    });
    wait_for(Duration::from_secs(60), "every webhook delivered", || {
        (pending_hooks(dir) == 0).then_some(())
    });
    let sent =
        sink.on("/robot").len() + sink.on("/phone").len() + sink.on("/cgi-bin/message/send").len();
    let counted = format!("yingji_deliveries_total{{sink=\"webhook\"}} {sent}\n");
    let metrics = wait_for(
        Duration::from_secs(30),
        "the webhook deliveries counted",
        || {
            let (_, m) = get(http, "/metrics");
            m.contains(&counted).then_some(m)
        },
    );
    let st = d.term();
    assert!(st.success(), "exit status {st}:\n{}", d.log_text());
    watch.sync();
    let ns = notices(&watch);
    let at_ack = ns.iter().position(|n| n["id"] == ack["id"]).unwrap();
    assert!(
        !ns[at_ack..]
            .iter()
            .any(|n| n["kind"] == "call" && n["person"] == "yjj"),
        "yjj called after the ack: {ns:?}"
    );
    let all_calls = calls(&ns);
    assert!(all_calls.iter().any(|n| n["person"] == "cg"), "{ns:?}");
    // WeCom robot: each call exactly once (the person's name and the attempt are in the
    // text), and never a link.
    let robot = sink.on("/robot");
    let name = |p: &str| if p == "yjj" { "张应急" } else { "王城管" };
    for c in &all_calls {
        let (p, k) = (
            c["person"].as_str().unwrap(),
            c["attempt"].as_u64().unwrap(),
        );
        let n = robot
            .iter()
            .filter(|v| {
                let t = v["markdown"]["content"].as_str().unwrap();
                t.contains("】叫应：") && t.contains(name(p)) && t.contains(&format!("第{k}次叫应"))
            })
            .count();
        assert_eq!(n, 1, "call {} reached the robot {n} times", c["id"]);
    }
    assert!(robot.iter().all(|v| !v.to_string().contains("/ack?")));
    // Phone: exactly the phone attempts, once each, with the number and the link.
    let mut want: Vec<_> = all_calls
        .iter()
        .filter(|c| c["channel"] == "phone")
        .map(phone_key)
        .collect();
    let phone = sink.on("/phone");
    let mut got: Vec<_> = phone.iter().map(phone_key).collect();
    want.sort();
    got.sort();
    assert!(!want.is_empty());
    assert_eq!(got, want, "phone gateway requests");
    assert!(
        all_calls.iter().any(|c| c["channel"] == "wechat"),
        "a WeChat attempt to skip"
    );
    let cg = phone.iter().find(|v| v["person"] == "cg").unwrap();
    assert_eq!(cg["to"], "+8613800000003");
    assert!(cg["ack_url"].as_str().unwrap().contains("/ack?call_id="));
    assert!(cg["text"].as_str().unwrap().contains("叫应"));

    let apps = sink.on("/cgi-bin/message/send");
    assert_eq!(
        robot.len() + phone.len() + apps.len(),
        sent,
        "webhook deliveries after the count: {metrics}"
    );
    // The click is an ordinary journaled command; the replay gives the same notices.
    let store = Store::open(&dir.join("yingji.db")).unwrap();
    let rows = store.journal_after(0).unwrap();
    let clicks: Vec<_> = rows
        .iter()
        .filter(|r| r.topic == "ers/shuozhou/cmd")
        .map(|r| serde_json::from_slice::<Value>(&r.payload).unwrap())
        .collect();
    assert_eq!(
        clicks.len(),
        1,
        "one click journaled, the repeated one answered from the register: {clicks:?}"
    );
    assert_eq!(clicks[0]["by"], "link");
    assert_eq!(clicks[0]["person"], "yjj");
    let (stored, replayed) = replay_journal(dir, &cfg);
    assert_eq!(
        stored, replayed,
        "live notices differ from the replay of the journal"
    );
    assert_eq!(ids(&stored), ids(&ns), "published = stored");
}

/// Count of each key among `vals`.
fn counts(vals: Vec<String>) -> std::collections::BTreeMap<String, usize> {
    let mut m = std::collections::BTreeMap::new();
    for v in vals {
        *m.entry(v).or_insert(0) += 1;
    }
    m
}

fn pending_hooks(dir: &Path) -> usize {
    Store::open(&dir.join("yingji.db"))
        .unwrap()
        .pending(SinkKind::Webhook)
        .unwrap()
        .len()
}

/// An endpoint down while the notices are made and across a SIGKILL receives every
/// message once it is up, exactly once, also across a second SIGKILL and restart.
#[test]
fn webhook_down_then_up_gets_each_message_exactly_once() {
    let tmp = TempDir::new("hooks-down");
    let dir = tmp.path();
    let broker = Mosquitto::start(dir);
    let (http, hook) = (free_port(), free_port());
    let hooks = format!(
        r#"
[[webhook]]
kind = "generic"
name = "all"
url = "http://127.0.0.1:{hook}/all"
timeout_s = 2
[[webhook]]
kind = "phone"
url = "http://127.0.0.1:{hook}/phone"
"#
    );
    let timing = "ack_timeout_s = 1\nphone_retry_s = 1\nphone_attempts = 2";
    let cfg = hooks_config(dir, broker.port, "hooks-down", http, timing, &hooks);
    let mut d = Daemon::start(dir, &cfg, &[]);
    d.wait_ready();
    publish(broker.port, &[warning("hd-rain")]);
    d.wait_log("webhook not delivered", Duration::from_secs(60));
    wait_stored(dir, "the round to run out", 1, |n| {
        n.kind.as_str() == "call_unreached"
    });
    d.kill9();
    let made = Store::open(&dir.join("yingji.db"))
        .unwrap()
        .notices()
        .unwrap();
    assert!(
        made.iter().any(|n| n.kind.as_str() == "call_unreached"),
        "the round ran out"
    );
    assert!(pending_hooks(dir) > 0);

    // Restarted while still down, then the endpoint comes up: retried with backoff.
    let mut d = Daemon::start(dir, &cfg, &[]);
    d.wait_ready();
    d.wait_log("webhook not delivered", Duration::from_secs(60));
    let sink = Sink::default();
    sink.serve(hook);
    wait_for(Duration::from_secs(90), "every webhook delivery", || {
        (pending_hooks(dir) == 0).then_some(())
    });
    d.kill9();
    // Restarted with everything delivered: nothing is sent again. The lift's notice is
    // queued behind whatever the restart would re-send, so once it has arrived, a second
    // copy of anything would have too.
    let mut d = Daemon::start(dir, &cfg, &[]);
    d.wait_ready();
    let lift = m(
        "ers/shuozhou/weather/warning",
        format!(
            r#"{{"ts": "{}", "id": "hd-rain", "hazard": "rainstorm", "action": "lift"}}"#,
            yingji::time::fmt_ts(yingji::clock::now())
        ),
    );
    publish(broker.port, &[lift]);
    wait_for(Duration::from_secs(60), "the lift at the endpoint", || {
        sink.on("/all")
            .into_iter()
            .find(|v| v["kind"] == "terminate")
    });
    wait_for(Duration::from_secs(60), "every webhook delivered", || {
        (pending_hooks(dir) == 0).then_some(())
    });
    let st = d.term();
    assert!(st.success(), "exit status {st}:\n{}", d.log_text());

    let made = Store::open(&dir.join("yingji.db"))
        .unwrap()
        .notices()
        .unwrap();
    let all = counts(
        sink.on("/all")
            .iter()
            .map(|v| v["id"].as_str().unwrap().to_string())
            .collect(),
    );
    let want: Vec<String> = made.iter().map(|n| n.id.clone()).collect();
    assert_eq!(all.keys().cloned().collect::<Vec<_>>(), {
        let mut w = want.clone();
        w.sort();
        w
    });
    assert!(all.values().all(|&n| n == 1), "duplicates: {all:?}");
    let phone = counts(
        sink.on("/phone")
            .iter()
            .map(|v| format!("{:?}", phone_key(v)))
            .collect(),
    );
    let want_phone = made
        .iter()
        .filter(|n| n.kind.as_str() == "call" && n.channel.as_deref() == Some("phone"))
        .count();
    assert!(want_phone > 0);
    assert_eq!(phone.len(), want_phone, "{phone:?}");
    assert!(phone.values().all(|&n| n == 1), "duplicates: {phone:?}");
    // Call kinds carry the called person's name and unit; a generic webhook is a group
    // message: no acknowledgement link (CONTRACT.md "Acknowledgement links").
    let call = sink
        .on("/all")
        .into_iter()
        .find(|v| v["kind"] == "call" && v["person"] == "cg")
        .unwrap();
    assert_eq!(call["contact"]["name"], "王城管");
    assert!(call.get("ack_url").is_none(), "{call}");
    // The phone gateway's request is personal: it carries the link for its SMS.
    let p = sink.on("/phone").into_iter().next().unwrap();
    assert!(p["ack_url"]
        .as_str()
        .unwrap()
        .starts_with(&format!("http://127.0.0.1:{http}/ack?")));
}

/// SIGTERM while a webhook POST is in hand: the daemon waits for the endpoint's answer and
/// marks the delivery, so nothing is sent again after the restart (the webhook sender used
/// to be a thread nobody waited for: the POST was cut and its mark lost).
#[test]
fn sigterm_lets_the_webhook_post_in_hand_finish() {
    let tmp = TempDir::new("hooks-term");
    let dir = tmp.path();
    let broker = Mosquitto::start(dir);
    let (http, hook) = (free_port(), free_port());
    // The endpoint holds each request until the test lets it answer.
    let l = TcpListener::bind(("127.0.0.1", hook)).unwrap();
    let (got_tx, got_rx) = std::sync::mpsc::channel();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let _ = got_tx.send(());
            if go_rx.recv().is_err() {
                return;
            }
            read_request(s);
        }
    });
    let hooks = format!(
        r#"
[[webhook]]
kind = "generic"
name = "all"
url = "http://127.0.0.1:{hook}/all"
kinds = ["activate"]
timeout_s = 30
"#
    );
    let timing = "ack_timeout_s = 1\nphone_retry_s = 1\nphone_attempts = 2";
    let cfg = hooks_config(dir, broker.port, "hooks-term", http, timing, &hooks);
    let mut d = Daemon::start(dir, &cfg, &[]);
    d.wait_ready();
    publish(broker.port, &[warning("ht-rain")]);
    got_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the activation POSTed");
    sigterm(d.pid());
    d.wait_log(
        "stopping: waiting for the delivery attempt in hand",
        Duration::from_secs(60),
    );
    go_tx.send(()).unwrap();
    let st = d.wait_exit(Duration::from_secs(60)).expect("exits");
    assert!(st.success(), "exit status {st}:\n{}", d.log_text());
    assert_eq!(pending_hooks(dir), 0, "the answered POST is marked");
    let made = Store::open(&dir.join("yingji.db"))
        .unwrap()
        .notices()
        .unwrap();
    let act = made.iter().find(|n| n.kind.as_str() == "activate").unwrap();
    assert!(Store::open(&dir.join("yingji.db"))
        .unwrap()
        .is_delivered(&act.id, &sink::Sink::Webhook("all".into()))
        .unwrap());
    assert!(got_rx.try_recv().is_err(), "one POST");
}
