//! The HTTP side against a real core (acknowledgement links), in process: the router
//! through `tower::ServiceExt::oneshot`, the accept loop through real sockets.

use std::sync::mpsc;

use axum::body::Body;
use axum::http::Request;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::clock;
use crate::daemon::ack;
use crate::daemon::core::{Core, Incoming};
use crate::daemon::store::Store;

const KEY: &[u8] = b"http-test-link-key-0123456789";

fn cfg(extra: &str) -> Arc<Config> {
    Arc::new(
        Config::from_toml(&format!(
            r#"
[http]
public_url = "http://yj.test"
{extra}
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
"#
        ))
        .unwrap()
        .config,
    )
}

/// A core with a red rainstorm warning issued now (yjj called), served by a thread
/// like the daemon's core loop; returns the app and the first call notice.
struct Rig {
    app: AppState,
    call: crate::notice::Notice,
    journal: std::path::PathBuf,
}

/// A core thread for the server under test: answers link clicks (publishing the new
/// picture first) and register exports.
fn serve_core(mut core: Core) -> (watch::Receiver<Arc<View>>, mpsc::Sender<CoreEvent>) {
    let (view_tx, view_rx) = watch::channel(Arc::new(core.view(true, 1)));
    let (tx, rx) = mpsc::channel::<CoreEvent>();
    std::thread::spawn(move || {
        let mut version = 1;
        while let Ok(ev) = rx.recv() {
            match ev {
                CoreEvent::Link(l) => {
                    let (_, out) = core
                        .link_ack::<()>(&l.region, &l.call_id, &l.person, clock::now())
                        .unwrap();
                    version += 1;
                    view_tx.send_replace(Arc::new(core.view(true, version)));
                    let _ = l.reply.send(out);
                }
                CoreEvent::RegisterCsv {
                    region,
                    event,
                    reply,
                } => {
                    let _ = reply.send(core.register_csv(&region, &event));
                }
                _ => {}
            }
        }
    });
    (view_rx, tx)
}

fn rig(name: &str, extra: &str) -> Rig {
    let cfg = cfg(extra);
    let dir = std::env::temp_dir().join(format!("yingji-http-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let path = dir.join("y.db");
    let now = clock::now();
    let mut core = Core::recover(Arc::clone(&cfg), Store::open(&path).unwrap(), now).unwrap();
    let ts = crate::time::fmt_ts(now);
    let w = format!(
        r#"{{"ts": "{ts}", "id": "w1", "hazard": "rainstorm", "action": "issue", "color": "red"}}"#
    );
    let fx = core
        .ingest(
            vec![Incoming {
                topic: "ers/shuozhou/weather/warning".into(),
                payload: w.into_bytes(),
                pkid: 0,
                dup: false,
                retained: false,
                arrived: None,
                parsed: None,
                token: (),
            }],
            now,
        )
        .unwrap();
    let call = fx
        .notices
        .iter()
        .find(|(n, _)| n.kind == crate::notice::Kind::Call)
        .unwrap()
        .0
        .as_ref()
        .clone();
    let (view_rx, tx) = serve_core(core);
    let app = Arc::new(App {
        cfg: Arc::clone(&cfg),
        link_key: ack::AckKey::new(KEY),
        core: tx,
        view: view_rx,
        limits: limit::Limits::default(),
        sessions: session::Sessions::new(&cfg).unwrap(),
    });
    Rig {
        app,
        call,
        journal: path,
    }
}

fn journal_len(path: &std::path::Path) -> usize {
    Store::open(path).unwrap().journal_after(0).unwrap().len()
}

async fn send(app: &AppState, req: Request<Body>) -> (u16, String, String) {
    let r = router(Arc::clone(app)).oneshot(req).await.unwrap();
    let status = r.status().as_u16();
    let ctype = r
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
    (status, ctype, String::from_utf8(body.to_vec()).unwrap())
}

async fn get(app: &AppState, uri: &str) -> (u16, String) {
    let (s, _, b) = send(app, Request::get(uri).body(Body::empty()).unwrap()).await;
    (s, b)
}

async fn post(app: &AppState, form: &str) -> (u16, String) {
    let req = Request::post("/ack")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(form.to_string()))
        .unwrap();
    let (s, _, b) = send(app, req).await;
    (s, b)
}

/// The path and query of the call's link.
fn link(r: &Rig) -> String {
    let u = r.app.link_key.url(&r.app.cfg, &r.call).unwrap();
    u.strip_prefix("http://yj.test").unwrap().to_string()
}

#[tokio::test]
async fn get_shows_the_call_and_the_person_and_records_nothing_post_acknowledges() {
    let r = rig("ack", "");
    let before = journal_len(&r.journal);
    let (code, body) = get(&r.app, &link(&r)).await;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("张应急（市应急管理局）"), "{body}");
    assert!(body.contains("暴雨红色预警第1轮叫应"), "{body}");
    assert!(body.contains("method=\"post\""), "{body}");
    assert_eq!(journal_len(&r.journal), before, "a GET records nothing");

    let query = link(&r).split_once('?').unwrap().1.to_string();
    let (code, body) = post(&r.app, &query).await;
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains("已确认") && body.contains("后续叫应已停止"),
        "{body}"
    );
    assert_eq!(journal_len(&r.journal), before + 1);

    // Repeated: answered from the register, no journal row; the page says so too.
    let (code, body) = post(&r.app, &query).await;
    assert_eq!(code, 200);
    assert!(body.contains("此前已回应"), "{body}");
    let (_, page) = get(&r.app, &link(&r)).await;
    assert!(
        page.contains("此前已回应") && !page.contains("<form"),
        "{page}"
    );
    assert_eq!(journal_len(&r.journal), before + 1);

    // Per link: five POSTs a minute, then 429 without reaching the core.
    for _ in 0..3 {
        post(&r.app, &query).await;
    }
    let (code, _) = post(&r.app, &query).await;
    assert_eq!(code, 429);
    assert_eq!(journal_len(&r.journal), before + 1);
}

#[tokio::test]
async fn forged_incomplete_and_expired_links_are_refused() {
    let r = rig("forged", "ack_link_hours = 1");
    let l = link(&r);
    let (code, body) = get(&r.app, &l.replace("person=yjj", "person=cg")).await;
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("签名不符"));
    let query = l.split_once('?').unwrap().1;
    let t = r.call.at.timestamp();
    let later = query.replace(&format!("t={t}"), &format!("t={}", t + 86400));
    let (code, _) = post(&r.app, &later).await;
    assert_eq!(code, 403, "a moved expiry breaks the signature");
    let (code, _) = post(&r.app, "call_id=w1%2F1&person=yjj").await;
    assert_eq!(code, 400);

    // A link signed two hours ago, valid for one: expired.
    let old = (r.call.at - chrono::Duration::hours(2))
        .timestamp()
        .to_string();
    let sig = ack::sign(KEY, &["w1/1", "yjj", &old]);
    let (code, body) = post(
        &r.app,
        &format!("call_id=w1%2F1&person=yjj&t={old}&sig={sig}"),
    )
    .await;
    assert_eq!(code, 410, "{body}");
    assert!(body.contains("已过期"));
    assert_eq!(journal_len(&r.journal), 1, "only the warning");
}

#[tokio::test]
async fn per_address_limit_and_metrics_and_readiness() {
    let r = rig("limits", "");
    let mut last = 0;
    for _ in 0..61 {
        last = get(&r.app, "/ack?call_id=x").await.0;
    }
    assert_eq!(last, 429, "sixty requests a minute per address");
    let (code, ctype, text) = send(
        &r.app,
        Request::get("/metrics").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(code, 200);
    assert!(ctype.starts_with("application/openmetrics-text"), "{ctype}");
    assert!(text.contains("yingji_http_rate_limited_total "), "{text}");
    assert!(text.ends_with("# EOF\n"));
    assert!(!text.contains(std::str::from_utf8(KEY).unwrap()));
    let (code, body) = get(&r.app, "/readyz").await;
    // The metrics' `live` is not set in this process: not ready, and says why.
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("\"stage\""), "{body}");
}

/// At most `max` connections are served at once; the next waits in the listen queue and
/// is served when a slot frees: an idle connection that sends no request head is closed
/// after `HEAD_TIMEOUT`, so idle sockets cannot hold the slots for ever.
#[tokio::test]
async fn connections_beyond_the_cap_wait_for_a_free_slot() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let r = rig("cap", "");
    tokio::spawn(serve(l, router(Arc::clone(&r.app)), 1));
    let hold = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut next = tokio::net::TcpStream::connect(addr).await.unwrap();
    next.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let waited = tokio::time::timeout(Duration::from_millis(500), next.read_to_end(&mut buf)).await;
    assert!(
        waited.is_err(),
        "served beyond the cap: {:?}",
        String::from_utf8_lossy(&buf)
    );
    tokio::time::timeout(Duration::from_secs(60), next.read_to_end(&mut buf))
        .await
        .expect("served once the idle connection is closed")
        .unwrap();
    assert!(
        String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 503"),
        "not live here"
    );
    let mut hold = hold;
    let mut rest = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(5), hold.read_to_end(&mut rest))
        .await
        .expect("the idle connection was closed");
    assert_eq!(n.unwrap_or(0), 0);
}

/// Without `[[operator]]` the console is read-only: pages render, `/login` is off and
/// every action is refused before the core (nothing journaled).
#[tokio::test]
async fn without_operators_the_console_is_read_only() {
    let r = rig("readonly", "");
    let before = journal_len(&r.journal);
    for path in ["/", "/decisions", "/calls", "/history", "/reports"] {
        let (code, body) = get(&r.app, path).await;
        assert_eq!(code, 200, "{path}: {body}");
        assert!(body.contains("只读（未配置值班人员）"), "{path}: {body}");
        assert!(!body.contains("name=\"csrf\""), "{path}: a form");
    }
    let (code, _) = get(&r.app, "/login").await;
    assert_eq!(code, 404);
    let form = "region=shuozhou&call_id=w1%2F1&person=yjj";
    let req = Request::post("/ack-for")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(form))
        .unwrap();
    let (code, _, body) = send(&r.app, req).await;
    assert_eq!(code, 401, "{body}");
    assert_eq!(journal_len(&r.journal), before);
    // The calls page shows the round in progress and who is called.
    let (_, calls) = get(&r.app, "/calls").await;
    assert!(
        calls.contains("暴雨红色预警 第1轮") && calls.contains("张应急"),
        "{calls}"
    );
    let (code, csv) = get(&r.app, "/register.csv?region=shuozhou&event=w1").await;
    assert_eq!(code, 200, "{csv}");
    assert!(
        csv.starts_with("time,event,call_id") && csv.contains(",yjj,"),
        "{csv}"
    );
    let (code, _) = get(&r.app, "/register.csv?region=shuozhou&event=none").await;
    assert_eq!(code, 404);
}
