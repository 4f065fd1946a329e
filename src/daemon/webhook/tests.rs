use super::*;
use crate::notice::Plan;

fn cfg() -> Config {
    Config::from_toml(
        r#"
[http]
public_url = "https://yj.example.org"
[[contact]]
id = "yjj"
name = "张三"
unit = "市应急管理局"
tier = "A"
phone = "13800000000"
[[contact]]
id = "nophone"
name = "李四"
unit = "市水务局"
tier = "A"
[[webhook]]
kind = "wecom"
url = "http://127.0.0.1:1/robot"
kinds = ["call", "call_unreached", "activate"]
[[webhook]]
kind = "phone"
name = "gateway"
url = "http://127.0.0.1:1/call"
[[webhook]]
kind = "generic"
url = "http://127.0.0.1:1/any"
plans = ["coal_supply"]
"#,
    )
    .unwrap()
    .config
}

fn call(person: &str, channel: &str, attempt: u32) -> Notice {
    let mut n = Notice::new(Plan::SevereWeather, "rainstorm", Kind::Call, "red")
        .reason("暴雨红色预警，叫应张三");
    n.id = "severe_weather/shuozhou/rainstorm/9".into();
    n.region = "shuozhou".into();
    n.call_id = Some("w1/1".into());
    n.person = Some(person.into());
    n.channel = Some(channel.into());
    n.attempt = Some(attempt);
    n
}

fn sinks(n: &Notice) -> Vec<String> {
    render::sinks(&cfg(), n)
        .into_iter()
        .filter(|s| s.kind() == SinkKind::Webhook)
        .map(|s| s.to_string())
        .collect()
}

#[test]
fn filters_pick_the_webhooks_of_each_notice() {
    assert_eq!(
        sinks(&call("yjj", "phone", 2)),
        ["webhook:wecom-0", "webhook:gateway"]
    );
    // WeChat attempts and people without a phone number do not go to the gateway.
    assert_eq!(sinks(&call("yjj", "wechat", 1)), ["webhook:wecom-0"]);
    assert_eq!(sinks(&call("nophone", "phone", 2)), ["webhook:wecom-0"]);
    let mut ack = call("yjj", "phone", 2);
    ack.kind = Kind::CallAck;
    assert!(sinks(&ack).is_empty(), "call_ack is not in the wecom kinds");
    let coal = Notice::new(Plan::CoalSupply, "supply", Kind::ReportFollowup, "L2");
    assert_eq!(sinks(&coal), ["webhook:generic-2"]);
    let mut act = Notice::new(Plan::CoalSupply, "supply", Kind::Activate, "L2");
    act.region = "shuozhou".into();
    assert_eq!(sinks(&act), ["webhook:wecom-0", "webhook:generic-2"]);
}

#[test]
fn wecom_robot_is_a_group_copy_without_link_or_codes() {
    let key = AckKey::new(b"webhook-test-key-0123456789".to_vec());
    let c = cfg();
    let n = call("yjj", "phone", 2);
    let b = body(&c, Some(&key), WebhookKind::Wecom, &n).unwrap();
    assert_eq!(b["msgtype"], "markdown");
    let t = b["markdown"]["content"].as_str().unwrap();
    assert!(
        t.starts_with("### 【重大灾害性天气 暴雨红色预警】叫应：朔州市"),
        "{t}"
    );
    for want in [
        "内容：暴雨红色预警",
        "**张三（市应急管理局）**",
        "叫应方式：电话，第2次叫应",
    ] {
        assert!(t.contains(want), "{want} missing in {t}");
    }
    for not in ["/ack?", "yjj", "severe_weather", "rainstorm"] {
        assert!(!t.contains(not), "{not} in {t}");
    }
}

#[test]
fn phone_and_generic_bodies() {
    let key = AckKey::new(b"webhook-test-key-0123456789".to_vec());
    let c = cfg();
    let n = call("yjj", "phone", 3);
    let p = body(&c, Some(&key), WebhookKind::Phone, &n).unwrap();
    assert_eq!(p["to"], "13800000000");
    assert_eq!(p["person"], "yjj");
    assert_eq!(p["call_id"], "w1/1");
    assert_eq!(p["attempt"], 3);
    assert!(p["ack_url"]
        .as_str()
        .unwrap()
        .contains("/ack?call_id=w1%2F1&person=yjj"));
    let script = p["text"].as_str().unwrap();
    assert!(
        script.starts_with("暴雨红色预警，暴雨红色预警。张三您好"),
        "{script}"
    );
    assert!(
        script.contains("请回复收到") && !script.contains('“'),
        "{script}"
    );
    assert!(body(
        &c,
        Some(&key),
        WebhookKind::Phone,
        &call("nophone", "phone", 1)
    )
    .is_none());
    let g = body(&c, Some(&key), WebhookKind::Generic, &n).unwrap();
    assert_eq!(g["id"], n.id);
    assert_eq!(g["kind"], "call");
    assert_eq!(g["contact"]["name"], "张三");
    assert!(
        g.get("ack_url").is_none(),
        "a group message carries no link: {g}"
    );
    let coal = Notice::new(Plan::CoalSupply, "supply", Kind::ReportFollowup, "L2");
    let g = body(&c, Some(&key), WebhookKind::Generic, &coal).unwrap();
    assert!(g.get("contact").is_none() && g.get("ack_url").is_none());
}

#[test]
fn drill_mode_sends_nothing_to_the_phone_gateway() {
    let mut c = cfg();
    let n = call("yjj", "phone", 2);
    assert_eq!(sinks(&n), ["webhook:wecom-0", "webhook:gateway"]);
    c.drill = true;
    let s: Vec<String> = render::sinks(&c, &n)
        .into_iter()
        .filter(|s| s.kind() == SinkKind::Webhook)
        .map(|s| s.to_string())
        .collect();
    assert_eq!(s, ["webhook:wecom-0"]);
    let b = body(&c, None, WebhookKind::Wecom, &n).unwrap();
    assert!(b["markdown"]["content"]
        .as_str()
        .unwrap()
        .starts_with("### 【演练】"));
}

/// A local WeCom API: `gettoken` and `message/send`, answering the first send with an
/// expired-token error; records every request line and body.
type Seen = std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>;

fn wecom_api() -> (String, Seen) {
    use std::io::{BufRead, BufReader, Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", l.local_addr().unwrap());
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        let mut tokens = 0;
        let mut sends = 0;
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            let mut len = 0;
            loop {
                let mut h = String::new();
                r.read_line(&mut h).unwrap();
                if h == "\r\n" || h.is_empty() {
                    break;
                }
                if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
            }
            let mut b = vec![0; len];
            r.read_exact(&mut b).unwrap();
            let path = line.split(' ').nth(1).unwrap_or("").to_string();
            log.lock()
                .unwrap()
                .push((path.clone(), String::from_utf8(b).unwrap()));
            let answer = if path.starts_with("/cgi-bin/gettoken?corpid=ww1&corpsecret=s%20e") {
                tokens += 1;
                format!(
                    r#"{{"errcode":0,"errmsg":"ok","access_token":"T{tokens}","expires_in":7200}}"#
                )
            } else if path.starts_with("/cgi-bin/message/send?access_token=") {
                sends += 1;
                if sends == 1 {
                    r#"{"errcode":42001,"errmsg":"access_token expired"}"#.to_string()
                } else {
                    r#"{"errcode":0,"errmsg":"ok","invaliduser":""}"#.to_string()
                }
            } else {
                r#"{"errcode":40013,"errmsg":"invalid corpid"}"#.to_string()
            };
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                answer.len()
            );
        }
    });
    (base, seen)
}

#[test]
fn wecom_app_messages_go_to_the_person_with_a_cached_refreshed_token() {
    let key = AckKey::new(b"webhook-test-key-0123456789".to_vec());
    let (base, seen) = wecom_api();
    let c = Config::from_toml(&format!(
        r#"
[http]
public_url = "https://yj.example.org"
[[contact]]
id = "yjj"
name = "张三"
unit = "市应急管理局"
tier = "A"
wechat = "ZhangSan"
[[webhook]]
kind = "wecom_app"
url = "{base}/"
corp_id = "ww1"
agent_id = 1000002
secret = "s e"
timeout_s = 5
"#
    ))
    .unwrap()
    .config;
    let hs = hooks(&c).unwrap();
    let n = call("yjj", "wechat", 1);
    assert_eq!(
        render::sinks(&c, &n).last().unwrap().to_string(),
        "webhook:wecom_app-0"
    );
    assert!(!render::webhook_wants(
        &c,
        &c.webhooks[0],
        &call("yjj", "phone", 2)
    ));
    post(&c, Some(&key), &hs[0], &n).unwrap();
    post(&c, Some(&key), &hs[0], &n).unwrap();
    let seen = seen.lock().unwrap().clone();
    let paths: Vec<&str> = seen
        .iter()
        .map(|(p, _)| p.split('?').next().unwrap())
        .collect();
    // token, send (expired), token again, send, send with the cached token.
    assert_eq!(
        paths,
        [
            "/cgi-bin/gettoken",
            "/cgi-bin/message/send",
            "/cgi-bin/gettoken",
            "/cgi-bin/message/send",
            "/cgi-bin/message/send"
        ]
    );
    assert!(seen[3].0.ends_with("access_token=T2") && seen[4].0.ends_with("access_token=T2"));
    let m: Value = serde_json::from_str(&seen[3].1).unwrap();
    assert_eq!(m["touser"], "ZhangSan");
    assert_eq!(m["agentid"], 1000002);
    assert_eq!(m["msgtype"], "text");
    let t = m["text"]["content"].as_str().unwrap();
    assert!(
        t.contains("/ack?call_id=w1%2F1&person=yjj&t=") && t.contains("&sig="),
        "personal link: {t}"
    );
    assert!(t.contains("收到后请回复“收到”"), "{t}");
    let no_id = Config::from_toml(
        "[[webhook]]\nkind = \"wecom_app\"\nurl = \"http://x\"\ncorp_id = \"a\"\nsecret = \"b\"",
    )
    .unwrap()
    .config;
    assert!(validate(&no_id).is_err(), "agent_id is required");
}

#[test]
fn bad_webhooks_are_refused_and_keys_go_in_the_query() {
    // An unknown kind does not load: the parse names the key.
    let e = Config::from_toml("[[webhook]]\nkind = \"fax\"\nurl = \"http://x\"").unwrap_err();
    assert_eq!(e[0].key, "webhook[0].kind", "{e:?}");
    assert!(e[0].message.contains("fax"), "{e:?}");
    let bad = Config::from_toml("[[webhook]]\nkind = \"wecom\"\nurl = \"ftp://x\"")
        .unwrap()
        .config;
    assert!(validate(&bad).is_err());
    let k = Config::from_toml(
        "[[webhook]]\nkind = \"wecom\"\nurl = \"https://qyapi.weixin.qq.com/cgi-bin/webhook/send\"\nkey = \"a b\"",
    )
    .unwrap()
    .config;
    let h = hooks(&k).unwrap();
    assert_eq!(
        h[0].url,
        "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=a%20b"
    );
    assert_eq!(
        redact("error at https://x/send?key=a%20b", &h[0].url),
        "error at https://x/send?…"
    );
}

#[test]
fn long_report_texts_are_cut_for_wecom() {
    let mut n = Notice::new(Plan::CoalSupply, "supply", Kind::ReportFollowup, "L2");
    n.region = "shuozhou".into();
    n.id = "coal_supply/shuozhou/supply/3".into();
    n.text = Some("煤炭".repeat(3000));
    let t = render::wecom_text(&cfg(), None, &n, render::Reader::Group, true);
    assert!(t.len() <= 4096, "{} bytes", t.len());
    assert!(t.contains("…"));
    assert_eq!(render::cut("叫应", 4), "叫…");
    assert_eq!(render::cut("叫应", 6), "叫应");
}
