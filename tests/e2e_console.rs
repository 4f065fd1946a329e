//! End-to-end: the duty console in a real headless Chromium (Debian `chromium` and
//! `chromium-driver`, driven over WebDriver with fantoccini) against the `yingji` binary,
//! a real mosquitto and a real SMTP server (aiosmtpd).
//!
//! A duty officer logs in, sees a pending proposal and cannot decide it (no button; a
//! POST made with the officer's own CSRF token is refused and journaled nowhere); the
//! operator whose role decides it logs in and approves it, and the move appears on MQTT.
//! With `coal.l1_by_commander` (PLANS.md §5.1) that is a coal L1 proposal and the
//! commander; on a build without it, a pollution proposal (`require_approval`) and the
//! city government's signer. A called person opens the acknowledgement link from their
//! email, sees the page, presses the button, and the duty officer's calls page shows the
//! call acknowledged without a reload (server-sent events). A forged link, a missing CSRF
//! token and a wrong password are refused.
//!
//! Screenshots of every page go to the test's directory; with
//! `YINGJI_UPDATE_SCREENSHOTS=1` also to docs/console/.

mod e2e_support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use e2e_support::scenario::*;
use e2e_support::*;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use yingji::daemon::store::Store;

/// chromedriver and one browser session, driven from sync test code.
struct Browser {
    rt: tokio::runtime::Runtime,
    client: Option<Client>,
    driver: Child,
    shots: PathBuf,
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(c) = self.client.take() {
            let _ = self.rt.block_on(c.close());
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn chromedriver() -> &'static str {
    ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("chromedriver (apt-get install chromium chromium-driver; scripts/test.sh does)")
}

impl Browser {
    fn start(dir: &Path) -> Browser {
        let port = free_port();
        let driver = Command::new(chromedriver())
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        wait_for(Duration::from_secs(30), "chromedriver listening", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        });
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let profile = dir.join("chromium-profile");
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    format!("--user-data-dir={}", profile.display()),
                    "--window-size=1280,900", "--lang=zh-CN",
                ],
            },
        });
        let caps = caps.as_object().unwrap().clone().into_iter().collect();
        let client = rt
            .block_on(
                ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                    .capabilities(caps)
                    .connect(&format!("http://127.0.0.1:{port}")),
            )
            .expect("a WebDriver session with headless Chromium");
        let shots = dir.join("screenshots");
        std::fs::create_dir_all(&shots).unwrap();
        Browser {
            rt,
            client: Some(client),
            driver,
            shots,
        }
    }

    fn c(&self) -> &Client {
        self.client.as_ref().unwrap()
    }

    fn goto(&self, url: &str) {
        self.rt.block_on(self.c().goto(url)).unwrap();
    }

    /// The page's visible text (empty while a page is loading).
    fn text(&self) -> String {
        self.rt
            .block_on(async { self.c().find(Locator::Css("body")).await?.text().await })
            .unwrap_or_default()
    }

    fn fill(&self, css: &str, value: &str) {
        self.rt
            .block_on(async {
                self.c()
                    .find(Locator::Css(css))
                    .await?
                    .send_keys(value)
                    .await
            })
            .unwrap();
    }

    fn click(&self, css: &str) {
        self.rt
            .block_on(async { self.c().find(Locator::Css(css)).await?.click().await })
            .unwrap();
    }

    fn has(&self, css: &str) -> bool {
        self.rt
            .block_on(self.c().find_all(Locator::Css(css)))
            .map(|v| !v.is_empty())
            .unwrap_or(false)
    }

    fn js(&self, script: &str) -> Value {
        self.rt.block_on(self.c().execute(script, vec![])).unwrap()
    }

    /// Runs `script` as an async function body (its `return` is the result).
    fn js_async(&self, script: &str) -> Value {
        let wrapped = format!(
            "const done = arguments[arguments.length - 1]; (async () => {{ {script} }})().then(done, e => done(String(e)));"
        );
        self.rt
            .block_on(self.c().execute_async(&wrapped, vec![]))
            .unwrap()
    }

    fn shot(&self, name: &str) {
        let png = self.rt.block_on(self.c().screenshot()).unwrap();
        std::fs::write(self.shots.join(format!("{name}.png")), png).unwrap();
    }

    fn log_in(&self, base: &str, id: &str, password: &str) {
        self.rt.block_on(self.c().delete_all_cookies()).unwrap();
        self.goto(&format!("{base}/login"));
        self.fill("input[name=id]", id);
        self.fill("input[name=password]", password);
        self.click("form[action=login] button");
    }

    /// Waits until the page's text contains `needle`.
    fn wait_text(&self, needle: &str, within: Duration) -> String {
        wait_for(within, needle, || {
            let t = self.text();
            t.contains(needle).then_some(t)
        })
    }
}

/// One operator: id, name, roles, password.
const OPERATORS: [(&str, &str, &str, &str); 4] = [
    ("zhiban", "值班员甲", "duty", "duty-password-1"),
    ("zhihui", "指挥长乙", "commander", "commander-password-2"),
    ("zhuren", "办公室主任丙", "director", "director-password-3"),
    ("qianfa", "签发人丁", "signer", "signer-password-4"),
];

fn hash(pw: &str) -> String {
    yingji::daemon::http::session::hash_password(pw).unwrap()
}

/// Whether this build knows `coal.l1_by_commander` (PLANS.md §5.1).
fn l1_by_commander_known() -> bool {
    yingji::config::Config::from_toml("[coal]\nl1_by_commander = true")
        .map(|l| l.unknown_keys.is_empty())
        .unwrap_or(false)
}

fn now_ts() -> String {
    yingji::time::fmt_ts(yingji::clock::now())
}

/// A forecast of AQI 260 for the next 30 hours (a yellow warning, PLANS.md §2).
fn forecast() -> (String, Vec<u8>) {
    let now = yingji::clock::now();
    let h0 = yingji::time::parse_ts(&now.format("%Y-%m-%dT%H:00:00+08:00").to_string()).unwrap();
    let hours: Vec<Value> = (1..31)
        .map(|i| {
            json!({"ts": yingji::time::fmt_ts(h0 + chrono::Duration::hours(i)), "aqi": 260, "primary": "PM2.5"})
        })
        .collect();
    let p = json!({"issued": now_ts(), "hours": hours});
    (
        "ers/shuozhou/air/forecast".into(),
        p.to_string().into_bytes(),
    )
}

fn journal_len(dir: &Path) -> usize {
    Store::open(&dir.join("yingji.db"))
        .unwrap()
        .journal_after(0)
        .unwrap()
        .len()
}

/// `wait_for` that says what the daemon logged and what was published when it times out.
fn wait_or_explain<T>(d: &Daemon, w: &Watcher, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = yingji::clock::monotonic();
    while start.elapsed() < Duration::from_secs(20) {
        if let Some(t) = f() {
            return t;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let topics: Vec<String> = w.all().into_iter().map(|(t, _)| t).collect();
    panic!(
        "timed out waiting for {what}; published: {topics:?}\nlog:\n{}",
        d.log_text()
    );
}

#[test]
fn duty_console_decisions_calls_and_ack_links_in_a_real_browser() {
    let tmp = TempDir::new("e2e-console");
    let dir = tmp.path();
    let broker = Mosquitto::start(dir);
    let (http, smtp_port) = (free_port(), free_port());
    let mail = dir.join("mail");
    let _smtp = Smtp::start(smtp_port, &mail);
    let coal_l1 = l1_by_commander_known();
    let mut ops = String::new();
    for (id, name, role, pw) in OPERATORS {
        ops += &format!(
            "[[operator]]\nid = \"{id}\"\nname = \"{name}\"\nroles = [\"{role}\"]\npassword_hash = '{}'\n",
            hash(pw)
        );
    }
    let decision_cfg = if coal_l1 {
        "[coal]\nl1_by_commander = true\n\n[pollution]\n"
    } else {
        "[pollution]\nrequire_approval = true\n"
    };
    let base = format!("http://127.0.0.1:{http}");
    let cfg_path = config(
        dir,
        broker.port,
        "console",
        4,
        &format!(
            "[email]\nsmtp_url = \"smtp://127.0.0.1:{smtp_port}\"\nfrom = \"应急 <yingji@example.org>\"\n"
        ),
    );
    let text = std::fs::read_to_string(&cfg_path)
        .unwrap()
        .replace(
            "listen = \"127.0.0.1:0\"",
            &format!("listen = \"127.0.0.1:{http}\"\npublic_url = \"{base}\""),
        )
        // Calls that wait long enough to be acknowledged by hand.
        .replace("ack_timeout_s = 1", "ack_timeout_s = 600")
        .replace("[pollution]\n", decision_cfg)
        // A 30-hour forecast is longer than the shared config's small limit.
        .replace("max_payload_bytes = 2048", "max_payload_bytes = 65536")
        + "\n"
        + &ops
        + "\n[[unit]]\nname = \"市工业和信息化局\"\naliases = [\"市工信局\"]\nplans = [\"coal_supply\", \"heavy_pollution\"]\n";
    std::fs::write(&cfg_path, text).unwrap();
    let watch = Watcher::start(
        broker.port,
        &format!("e2e-watch-console-{}", std::process::id()),
        &["ers/+/notice/#"],
    );
    let mut d = Daemon::start(dir, &cfg_path, &[]);
    d.wait_ready();
    let b = Browser::start(dir);

    // Read-only before logging in.
    b.goto(&format!("{base}/"));
    b.wait_text("当前态势", Duration::from_secs(10));
    assert!(b.text().contains("登录"));

    // A wrong password is refused.
    b.log_in(&base, "zhiban", "not-the-password");
    b.wait_text("账号或密码错误", Duration::from_secs(20));
    b.shot("login");

    // The proposal.
    let (plan, decider, move_kind) = if coal_l1 {
        let stock = json!({"ts": now_ts(), "plant": "A", "stock_days": 10});
        publish(
            broker.port,
            &[(
                "ers/shuozhou/coal/stock".into(),
                stock.to_string().into_bytes(),
            )],
        );
        ("coal_supply", OPERATORS[1], "escalate")
    } else {
        publish(broker.port, &[forecast()]);
        ("heavy_pollution", OPERATORS[3], "activate")
    };
    let proposal = wait_or_explain(&d, &watch, "the proposal on MQTT", || {
        watch
            .json_on("/notice")
            .into_iter()
            .find(|n| n["kind"] == "proposal" && n["plan"] == plan)
    });

    // The duty officer sees it and cannot decide it.
    let (id, _, _, pw) = OPERATORS[0];
    b.log_in(&base, id, pw);
    b.wait_text("值班员甲", Duration::from_secs(20));
    b.shot("now");
    b.goto(&format!("{base}/decisions"));
    let page = b.wait_text("待决事项", Duration::from_secs(10));
    assert!(page.contains("只读：此事项须由"), "{page}");
    assert!(
        !b.has("button[value=approve]"),
        "an approve button for duty"
    );
    b.shot("decisions-duty");
    let before = journal_len(dir);
    let refused = b.js_async(&format!(
        "const csrf = document.querySelector('input[name=csrf]').value;
         const r = await fetch('decide', {{method: 'POST', headers: {{'Content-Type': 'application/x-www-form-urlencoded'}},
           body: new URLSearchParams({{csrf, region: 'shuozhou', proposal_id: {id}, action: 'approve'}})}});
         return [r.status, await r.text()];",
        id = Value::from(proposal["id"].as_str().unwrap())
    ));
    assert_eq!(refused[0], 403, "{refused}");
    assert!(
        refused[1].as_str().unwrap().contains("无权决定"),
        "{refused}"
    );
    // A form without its CSRF token is refused.
    let no_csrf = b.js_async(
        "const r = await fetch('ack-for', {method: 'POST', headers: {'Content-Type': 'application/x-www-form-urlencoded'},
           body: new URLSearchParams({region: 'shuozhou', call_id: 'x/1', person: 'yjj'})});
         return [r.status, await r.text()];",
    );
    assert_eq!(no_csrf[0], 403, "{no_csrf}");
    assert!(
        no_csrf[1].as_str().unwrap().contains("表单校验失败"),
        "{no_csrf}"
    );
    assert_eq!(journal_len(dir), before, "a refused action was journaled");

    // The operator whose role decides it approves it; the move appears on MQTT.
    let (id, name, _, pw) = decider;
    b.log_in(&base, id, pw);
    b.wait_text(name, Duration::from_secs(20));
    b.goto(&format!("{base}/decisions"));
    b.wait_text("批准", Duration::from_secs(10));
    b.shot("decisions");
    b.click("button[value=approve]");
    b.wait_text("已提交并记录", Duration::from_secs(20));
    let moved = wait_for(Duration::from_secs(20), "the approved move on MQTT", || {
        watch
            .json_on("/notice")
            .into_iter()
            .find(|n| n["kind"] == move_kind && n["plan"] == plan)
    });
    let approve = Store::open(&dir.join("yingji.db"))
        .unwrap()
        .journal_after(0)
        .unwrap()
        .into_iter()
        .filter(|r| r.topic == "ers/shuozhou/cmd")
        .map(|r| serde_json::from_slice::<Value>(&r.payload).unwrap())
        .find(|c| c["cmd"] == "approve")
        .expect("the approve journaled");
    assert_eq!(approve["by"], id, "{approve}");
    assert_eq!(approve["proposal_id"], proposal["id"]);
    assert!(moved["id"].as_str().is_some());

    // A call: the duty officer watches the calls page while yjj acknowledges by email.
    publish(
        broker.port,
        &[(
            "ers/shuozhou/weather/warning".into(),
            json!({"ts": now_ts(), "id": "cz-rain", "hazard": "rainstorm", "action": "issue", "color": "red"})
                .to_string()
                .into_bytes(),
        )],
    );
    let email = wait_for(Duration::from_secs(30), "the call email to yjj", || {
        std::fs::read_dir(&mail)
            .ok()?
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
            .filter_map(|e| {
                serde_json::from_str::<Value>(&std::fs::read_to_string(e.path()).ok()?).ok()
            })
            .find(|m| {
                m["to"] == "yjj@example.org" && m["text"].as_str().unwrap_or("").contains("/ack?")
            })
    });
    let body = email["text"].as_str().unwrap();
    let link = body[body.find(&format!("{base}/ack?")).unwrap()..]
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();

    let (id, _, _, pw) = OPERATORS[0];
    b.log_in(&base, id, pw);
    b.wait_text("值班员甲", Duration::from_secs(20));
    b.goto(&format!("{base}/calls"));
    b.wait_text("未回应", Duration::from_secs(20));
    b.shot("calls");
    let duty_window = b.rt.block_on(b.c().window()).unwrap();
    // The page must update in place: a marker that a reload would lose.
    b.js("window.__noReload = true; return true;");

    let forged = link.replace("person=yjj", "person=cg");
    let other = b.rt.block_on(b.c().new_window(true)).unwrap();
    b.rt.block_on(b.c().switch_to_window(other.handle)).unwrap();
    b.goto(&forged);
    let page = b.wait_text("链接无效", Duration::from_secs(10));
    assert!(page.contains("签名不符"), "{page}");
    b.goto(&link);
    let page = b.wait_text("叫应确认", Duration::from_secs(10));
    assert!(
        page.contains("张应急") && page.contains("暴雨红色预警第1轮叫应"),
        "{page}"
    );
    b.shot("ack-link");
    b.click("form[action=ack] button");
    b.wait_text("已确认", Duration::from_secs(20));
    b.shot("ack-done");
    let clicked = yingji::clock::monotonic();

    b.rt.block_on(b.c().switch_to_window(duty_window)).unwrap();
    wait_for(
        Duration::from_secs(10),
        "the calls page showing the ack",
        || b.text().contains("已回应").then_some(()),
    );
    let shown_after = clicked.elapsed();
    assert_eq!(
        b.js("return window.__noReload === true;"),
        Value::Bool(true),
        "the page was reloaded instead of updated by server-sent events"
    );
    eprintln!("calls page showed the acknowledgement {shown_after:?} after the click returned");
    b.shot("calls-acked");

    let ack = wait_for(Duration::from_secs(10), "call_ack on MQTT", || {
        watch
            .json_on("/notice")
            .into_iter()
            .find(|n| n["kind"] == "call_ack" && n["person"] == "yjj")
    });
    assert_eq!(ack["evidence"]["by"], "link");

    // The other pages render.
    b.goto(&format!("{base}/history"));
    b.wait_text("叫应登记表", Duration::from_secs(10));
    b.shot("history");
    b.click("td a");
    b.wait_text("原始记录", Duration::from_secs(10));
    b.shot("notice");
    // A report that came by phone, entered by the duty officer (PLANS.md §5.2).
    b.goto(&format!("{base}/reports"));
    b.wait_text("录入电话报告", Duration::from_secs(10));
    b.rt.block_on(async {
        b.c()
            .find(Locator::Css(&format!(
                "select[name=plan] option[value={plan}]"
            )))
            .await?
            .click()
            .await
    })
    .unwrap();
    b.fill(
        "textarea[name=text]",
        "已督促重点电厂加快电煤调运，当日到煤3万吨。",
    );
    b.click("form[action=report] button");
    let page = b.wait_text("已提交并记录", Duration::from_secs(20));
    assert!(page.contains("1份"), "{page}");
    b.shot("reports");
    let report = Store::open(&dir.join("yingji.db"))
        .unwrap()
        .journal_after(0)
        .unwrap()
        .into_iter()
        .filter_map(|r| serde_json::from_slice::<Value>(&r.payload).ok())
        .find(|c| c["cmd"] == "report")
        .expect("the report journaled");
    assert_eq!(report["by"], "zhiban");
    assert_eq!(report["unit"], "市工业和信息化局");

    let st = d.term();
    assert!(st.success(), "exit status {st}:\n{}", d.log_text());
    let log = d.log_text();
    for (_, _, _, pw) in OPERATORS {
        assert!(!log.contains(pw), "a password in the log");
    }
    if std::env::var_os("YINGJI_UPDATE_SCREENSHOTS").is_some() {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/console");
        std::fs::create_dir_all(&docs).unwrap();
        for e in std::fs::read_dir(&b.shots).unwrap().flatten() {
            std::fs::copy(e.path(), docs.join(e.file_name())).unwrap();
        }
    }
}
