//! `[http] listen`: `/healthz` and `/metrics` (Prometheus text). A minimal HTTP/1.1
//! server: one request per connection, GET only. Failing to bind is logged, not fatal.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Counters and gauges of the running daemon.
pub struct Metrics {
    pub inputs_accepted: AtomicU64,
    pub inputs_rejected: AtomicU64,
    pub notices: AtomicU64,
    pub mqtt_delivered: AtomicU64,
    pub emails_sent: AtomicU64,
    pub emails_failed: AtomicU64,
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
         # HELP yingji_email_failures_total Failed email attempts (retried).\n# TYPE yingji_email_failures_total counter\n\
         yingji_email_failures_total {}\n\
         # HELP yingji_mqtt_connected MQTT connections up.\n# TYPE yingji_mqtt_connected gauge\n\
         yingji_mqtt_connected{{conn=\"in\"}} {}\nyingji_mqtt_connected{{conn=\"out\"}} {}\n",
        c(&m.inputs_accepted),
        c(&m.inputs_rejected),
        c(&m.notices),
        c(&m.mqtt_delivered),
        c(&m.emails_sent),
        c(&m.emails_failed),
        g(&m.mqtt_in_up),
        g(&m.mqtt_out_up),
    )
}

fn healthz() -> (&'static str, String) {
    let m = &METRICS;
    let up = m.mqtt_in_up.load(Ordering::Relaxed) && m.mqtt_out_up.load(Ordering::Relaxed);
    let live = m.live.load(Ordering::Relaxed);
    let status = if up && live {
        "200 OK"
    } else {
        "503 Service Unavailable"
    };
    let body = serde_json::json!({
        "status": if up && live { "ok" } else { "degraded" },
        "mqtt_in": m.mqtt_in_up.load(Ordering::Relaxed),
        "mqtt_out": m.mqtt_out_up.load(Ordering::Relaxed),
        "live": live,
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

/// Serves until the runtime stops. Returns the bound address, or `None` if binding failed.
pub async fn start(listen: &str) -> Option<std::net::SocketAddr> {
    let l = match TcpListener::bind(listen).await {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(%listen, error = %e, "http: cannot listen; /healthz and /metrics are off");
            return None;
        }
    };
    let addr = l.local_addr().ok()?;
    tracing::info!(%addr, "http: /healthz and /metrics");
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = l.accept().await {
            tokio::spawn(async move {
                let Some(buf) = read_head(&mut sock).await else {
                    return;
                };
                let req = String::from_utf8_lossy(&buf);
                let path = req.split_whitespace().nth(1).unwrap_or("");
                let (status, ctype, body) = match path {
                    "/metrics" => ("200 OK", "text/plain; version=0.0.4", metrics_text()),
                    "/healthz" => {
                        let (s, b) = healthz();
                        (s, "application/json", b)
                    }
                    _ => ("404 Not Found", "text/plain", "not found\n".to_string()),
                };
                let resp = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(resp.as_bytes()).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    Some(addr)
}
