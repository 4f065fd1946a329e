//! `[http] listen`: `/healthz`, `/metrics` (Prometheus text) and `/ack` (acknowledgement
//! links, see ack.rs). A minimal HTTP/1.1 server: one request per connection, GET only.
//! Failing to bind is logged, not fatal.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::config::Config;
use crate::daemon::core::LinkOutcome;
use crate::daemon::{ack, render, CoreEvent, LinkAck};

/// Counters and gauges of the running daemon.
pub struct Metrics {
    pub inputs_accepted: AtomicU64,
    pub inputs_rejected: AtomicU64,
    pub notices: AtomicU64,
    pub mqtt_delivered: AtomicU64,
    pub emails_sent: AtomicU64,
    pub emails_failed: AtomicU64,
    pub webhooks_sent: AtomicU64,
    pub webhooks_failed: AtomicU64,
    pub mqtt_in_up: AtomicBool,
    pub mqtt_out_up: AtomicBool,
    pub live: AtomicBool,
}

pub static METRICS: Metrics = Metrics {
    inputs_accepted: AtomicU64::new(0),
    inputs_rejected: AtomicU64::new(0),
    notices: AtomicU64::new(0),
    mqtt_delivered: AtomicU64::new(0),
    emails_sent: AtomicU64::new(0),
    emails_failed: AtomicU64::new(0),
    webhooks_sent: AtomicU64::new(0),
    webhooks_failed: AtomicU64::new(0),
    mqtt_in_up: AtomicBool::new(false),
    mqtt_out_up: AtomicBool::new(false),
    live: AtomicBool::new(false),
};

/// Adds one to a counter.
pub fn inc(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// Sets a gauge.
pub fn set(g: &AtomicBool, v: bool) {
    g.store(v, Ordering::Relaxed);
}

fn metrics_text() -> String {
    let m = &METRICS;
    let g = |b: &AtomicBool| u8::from(b.load(Ordering::Relaxed));
    let c = |a: &AtomicU64| a.load(Ordering::Relaxed);
    format!(
        "# HELP yingji_inputs_total MQTT inputs handled, by result.\n# TYPE yingji_inputs_total counter\n\
         yingji_inputs_total{{result=\"accepted\"}} {}\nyingji_inputs_total{{result=\"rejected\"}} {}\n\
         # HELP yingji_notices_total Notices made.\n# TYPE yingji_notices_total counter\nyingji_notices_total {}\n\
         # HELP yingji_deliveries_total Deliveries confirmed, by sink.\n# TYPE yingji_deliveries_total counter\n\
         yingji_deliveries_total{{sink=\"mqtt\"}} {}\nyingji_deliveries_total{{sink=\"email\"}} {}\n\
         yingji_deliveries_total{{sink=\"webhook\"}} {}\n\
         # HELP yingji_email_failures_total Failed email attempts (retried).\n# TYPE yingji_email_failures_total counter\n\
         yingji_email_failures_total {}\n\
         # HELP yingji_webhook_failures_total Failed webhook attempts (retried).\n# TYPE yingji_webhook_failures_total counter\n\
         yingji_webhook_failures_total {}\n\
         # HELP yingji_mqtt_connected MQTT connections up.\n# TYPE yingji_mqtt_connected gauge\n\
         yingji_mqtt_connected{{conn=\"in\"}} {}\nyingji_mqtt_connected{{conn=\"out\"}} {}\n",
        c(&m.inputs_accepted),
        c(&m.inputs_rejected),
        c(&m.notices),
        c(&m.mqtt_delivered),
        c(&m.emails_sent),
        c(&m.webhooks_sent),
        c(&m.emails_failed),
        c(&m.webhooks_failed),
        g(&m.mqtt_in_up),
        g(&m.mqtt_out_up),
    ) + &crate::daemon::health::metrics_text()
}

fn healthz() -> (&'static str, String) {
    let m = &METRICS;
    let up = m.mqtt_in_up.load(Ordering::Relaxed) && m.mqtt_out_up.load(Ordering::Relaxed);
    let live = m.live.load(Ordering::Relaxed);
    let problems = crate::daemon::health::problems();
    let ok = up && live && problems.is_empty();
    let status = if ok {
        "200 OK"
    } else {
        "503 Service Unavailable"
    };
    let body = serde_json::json!({
        "status": if ok { "ok" } else { "degraded" },
        "mqtt_in": m.mqtt_in_up.load(Ordering::Relaxed),
        "mqtt_out": m.mqtt_out_up.load(Ordering::Relaxed),
        "live": live,
        "problems": problems,
        "sinks": crate::daemon::health::sinks_json(),
    });
    (status, body.to_string() + "\n")
}

/// Reads a request head (up to the blank line, at most 8 KiB, within 5 s).
async fn read_head(sock: &mut tokio::net::TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    let read = async {
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 8192 {
            let n = sock.read(&mut chunk).await.ok()?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        Some(())
    };
    tokio::time::timeout(std::time::Duration::from_secs(5), read)
        .await
        .ok()??;
    Some(buf)
}

/// What `/ack` needs: the config, the link key and the way to the core thread.
#[derive(Clone)]
pub struct AckRoute {
    pub cfg: Arc<Config>,
    pub key: Arc<Vec<u8>>,
    pub core: std::sync::mpsc::Sender<CoreEvent>,
}

/// How long a click waits for the core (it may be recovering or draining echoes).
const ACK_WAIT: Duration = Duration::from_secs(15);

type Reply = (&'static str, &'static str, String);

async fn route(path: &str, ack: Option<&AckRoute>) -> Reply {
    let (p, q) = path.split_once('?').unwrap_or((path, ""));
    match (p, ack) {
        ("/metrics", _) => ("200 OK", "text/plain; version=0.0.4", metrics_text()),
        ("/healthz", _) => {
            let (s, b) = healthz();
            (s, "application/json", b)
        }
        ("/ack", Some(a)) => ack_page(a, q).await,
        _ => ("404 Not Found", "text/plain", "not found\n".to_string()),
    }
}

fn page(status: &'static str, title: &str, text: &str) -> Reply {
    let body = format!(
        "<!DOCTYPE html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\"><title>{t}</title></head>\
         <body><h2>{t}</h2><p>{x}</p></body></html>\n",
        t = render::esc(title),
        x = render::esc(text)
    );
    (status, "text/html; charset=utf-8", body)
}

/// `GET /ack?call_id=&person=&sig=[&region=]`: a valid signature becomes an `ack`
/// command through the core; the page says what the engine made of it.
async fn ack_page(a: &AckRoute, query: &str) -> Reply {
    let q = ack::query(query);
    let get = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let (Some(call_id), Some(person), Some(sig)) = (get("call_id"), get("person"), get("sig"))
    else {
        return page(
            "400 Bad Request",
            "链接不完整",
            "回应链接缺少参数，未记录。",
        );
    };
    if !ack::verify(&a.key, &call_id, &person, &sig) {
        tracing::warn!(%call_id, %person, "ack link with a bad signature refused");
        return page(
            "403 Forbidden",
            "链接无效",
            "回应链接签名不符（链接不完整或被改动），未记录。请使用消息中的原始链接。",
        );
    }
    let first = a
        .cfg
        .regions
        .first()
        .map(|r| r.id.clone())
        .unwrap_or_default();
    let region = get("region").unwrap_or(first);
    if !a.cfg.regions.iter().any(|r| r.id == region) {
        return page(
            "400 Bad Request",
            "链接无效",
            "回应链接的地区未配置，未记录。",
        );
    }
    let (tx, rx) = tokio::sync::oneshot::channel();
    let link = LinkAck {
        region,
        call_id: call_id.clone(),
        person: person.clone(),
        reply: tx,
    };
    if a.core.send(CoreEvent::Link(link)).is_err() {
        return busy();
    }
    match tokio::time::timeout(ACK_WAIT, rx).await {
        Ok(Ok(LinkOutcome::Recorded)) => page(
            "200 OK",
            "已确认",
            &format!("已记录 {person} 对叫应 {call_id} 的回应，后续叫应已停止。"),
        ),
        Ok(Ok(LinkOutcome::Already)) => page(
            "200 OK",
            "此前已回应",
            &format!("叫应 {call_id} 此前已收到 {person} 的回应（或该轮叫应已结束），无需再次确认；本次点击已记录。"),
        ),
        Ok(Ok(LinkOutcome::Refused(reason))) => page(
            "409 Conflict",
            "未能记录",
            &format!("回应未被接受：{reason}"),
        ),
        _ => busy(),
    }
}

fn busy() -> Reply {
    page(
        "503 Service Unavailable",
        "暂时无法记录",
        "系统暂时无法记录回应，请稍后重试，或直接联系值班室。",
    )
}

/// Serves until the runtime stops. Returns the bound address, or `None` if binding failed.
/// With `ack`, `/ack` takes acknowledgement links.
pub async fn start(listen: &str, ack: Option<AckRoute>) -> Option<std::net::SocketAddr> {
    let l = match TcpListener::bind(listen).await {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(%listen, error = %e, "http: cannot listen; /healthz, /metrics and /ack are off");
            return None;
        }
    };
    let addr = l.local_addr().ok()?;
    tracing::info!(%addr, "http: /healthz and /metrics, /ack");
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = l.accept().await {
            let ack = ack.clone();
            tokio::spawn(async move {
                let Some(buf) = read_head(&mut sock).await else {
                    return;
                };
                let req = String::from_utf8_lossy(&buf);
                let mut words = req.split_whitespace();
                let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
                let (status, ctype, body) = if method == "GET" {
                    route(path, ack.as_ref()).await
                } else {
                    (
                        "405 Method Not Allowed",
                        "text/plain",
                        "GET only\n".to_string(),
                    )
                };
                let resp = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(resp.as_bytes()).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    Some(addr)
}
