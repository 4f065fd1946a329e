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
        .filter(|s| s.starts_with(render::SINK_WEBHOOK))
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
fn wecom_markdown_is_chinese_with_person_channel_attempt_and_link() {
    let c = cfg();
    let n = call("yjj", "phone", 2);
    let b = body(&c, "wecom", &n, Some("https://yj.example.org/ack?x=1")).unwrap();
    assert_eq!(b["msgtype"], "markdown");
    let t = b["markdown"]["content"].as_str().unwrap();
    assert!(
        t.starts_with("### 【重大灾害性天气叫应 红色预警】叫应：朔州市"),
        "{t}"
    );
    for want in [
        "原因：暴雨红色预警",
        "张三（市应急管理局）",
        "方式：电话，第2次",
        "(https://yj.example.org/ack?x=1)",
        "编号：severe_weather/shuozhou/rainstorm/9",
    ] {
        assert!(t.contains(want), "{want} missing in {t}");
    }
}

#[test]
fn phone_and_generic_bodies() {
    let c = cfg();
    let n = call("yjj", "phone", 3);
    let p = body(&c, "phone", &n, Some("L")).unwrap();
    assert_eq!(p["to"], "13800000000");
    assert_eq!(p["person"], "yjj");
    assert_eq!(p["call_id"], "w1/1");
    assert_eq!(p["attempt"], 3);
    assert_eq!(p["ack_url"], "L");
    assert!(p["text"].as_str().unwrap().contains("第3次"));
    assert!(body(&c, "phone", &call("nophone", "phone", 1), None).is_none());
    let g = body(&c, "generic", &n, Some("L")).unwrap();
    assert_eq!(g["id"], n.id);
    assert_eq!(g["kind"], "call");
    assert_eq!(g["contact"]["phone"], "13800000000");
    assert_eq!(g["ack_url"], "L");
    let coal = Notice::new(Plan::CoalSupply, "supply", Kind::ReportFollowup, "L2");
    let g = body(&c, "generic", &coal, None).unwrap();
    assert!(g.get("contact").is_none() && g.get("ack_url").is_none());
}

#[test]
fn bad_webhooks_are_refused_and_keys_go_in_the_query() {
    let bad = Config::from_toml("[[webhook]]\nkind = \"fax\"\nurl = \"http://x\"")
        .unwrap()
        .config;
    assert!(validate(&bad).is_err());
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
fn long_report_texts_are_cut_for_wecom_keeping_the_id() {
    let mut n = Notice::new(Plan::CoalSupply, "supply", Kind::ReportFollowup, "L2");
    n.region = "shuozhou".into();
    n.id = "coal_supply/shuozhou/supply/3".into();
    n.text = Some("煤炭".repeat(3000));
    let t = wecom_text(&cfg(), &n, None);
    assert!(t.len() <= 4096, "{} bytes", t.len());
    assert!(t.contains("…") && t.ends_with("编号：coal_supply/shuozhou/supply/3</font>"));
    assert_eq!(cut("叫应", 4), "叫…");
    assert_eq!(cut("叫应", 6), "叫应");
}
