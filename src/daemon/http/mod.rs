//! `[http] listen`: `/healthz`, `/readyz`, `/metrics`, the acknowledgement links
//! (`/ack`, ack_page.rs) and the duty console (console.rs), served by axum on hyper.
//!
//! The accept loop survives running out of file descriptors (EMFILE/ENFILE): it logs,
//! counts, pauses and goes on accepting. At most `[http] max_connections` connections are
//! served at once (more wait in the kernel's listen queue), and a connection that does not
//! send a request head within `HEAD_TIMEOUT` is closed, so idle sockets cannot hold the
//! slots. Failing to bind is logged, not fatal.

pub mod ack_page;
pub mod console;
pub mod limit;
pub mod page;
pub mod session;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tower::ServiceExt;

use crate::config::Config;
use crate::daemon::metrics::{self, METRICS};
use crate::daemon::view::View;
use crate::daemon::CoreEvent;

/// What the handlers share.
pub struct App {
    pub cfg: Arc<Config>,
    /// Key of the acknowledgement links.
    pub link_key: crate::daemon::ack::AckKey,
    /// The way to the core thread.
    pub core: std::sync::mpsc::Sender<CoreEvent>,
    /// The core's latest picture.
    pub view: watch::Receiver<Arc<View>>,
    pub limits: limit::Limits,
    /// Console operators and their sessions.
    pub sessions: session::Sessions,
}

pub type AppState = Arc<App>;

/// A request head must arrive within this time (idle keep-alive connections included).
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause after an accept error that is not about one connection (EMFILE, ENFILE, ENOMEM).
const ACCEPT_PAUSE: Duration = Duration::from_millis(200);

/// The routes.
pub fn router(app: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .route("/ack", get(ack_page::show).post(ack_page::post))
        .route("/", get(console::now))
        .route("/decisions", get(console::decisions))
        .route("/calls", get(console::calls))
        .route("/reports", get(console::reports))
        .route("/history", get(console::history))
        .route("/notice", get(console::notice))
        .route("/register.csv", get(console::register_csv))
        .route("/journal.jsonl", get(console::journal))
        .route("/events", get(console::events))
        .route("/console.js", get(console::script))
        .route("/login", get(console::login_form).post(console::login))
        .route("/logout", post(console::logout))
        .route("/decide", post(console::decide))
        .route("/ack-for", post(console::ack_for))
        .route("/report", post(console::report))
        .with_state(app)
}

fn json(status: StatusCode, v: serde_json::Value) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        v.to_string() + "\n",
    )
        .into_response()
}

/// 200 when both MQTT connections are up, the daemon is live and no sink is degraded nor
/// a degrading fault counted (daemon/health.rs), else 503 with the problems.
async fn healthz() -> Response {
    let m = &*METRICS;
    let (i, o, live) = (
        metrics::is_set(&m.mqtt_in_up),
        metrics::is_set(&m.mqtt_out_up),
        metrics::is_set(&m.live),
    );
    let problems = crate::daemon::health::problems();
    let ok = i && o && live && problems.is_empty();
    json(
        if ok {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        serde_json::json!({
            "status": if ok { "ok" } else { "degraded" },
            "mqtt_in": i, "mqtt_out": o, "live": live,
            "problems": problems,
            "sinks": crate::daemon::health::sinks_json(),
        }),
    )
}

/// 200 once the store is recovered, the echoes drained (notices flow) and the inputs
/// subscribed; before that 503 with the stage it is at.
async fn readyz(State(app): State<AppState>) -> Response {
    let m = &*METRICS;
    let live = app.view.borrow().live && metrics::is_set(&m.live);
    let inputs = metrics::is_set(&m.mqtt_in_up);
    let stage = match (live, inputs) {
        (false, _) => "recovering",
        (true, false) => "connecting",
        (true, true) => "ready",
    };
    let ok = stage == "ready";
    json(
        if ok {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        serde_json::json!({"ready": ok, "stage": stage}),
    )
}

async fn metrics_text() -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            ),
            (header::CACHE_CONTROL, "no-store"),
        ],
        METRICS.render(),
    )
        .into_response()
}

/// Whether an accept error concerns one connection only (accept again at once).
fn per_connection(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset | Interrupted | WouldBlock
    )
}

/// Accepts and serves until the runtime stops: at most `max` connections at once; an
/// accept error pauses the loop, never ends it.
pub async fn serve(listener: TcpListener, router: Router, max: usize) {
    let slots = Arc::new(Semaphore::new(max.max(1)));
    let mut failing = false;
    loop {
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        let (sock, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) if per_connection(&e) => continue,
            Err(e) => {
                metrics::inc(&METRICS.http_accept_errors, 1);
                if !failing {
                    tracing::error!(error = %e, "http: cannot accept connections (out of file descriptors?); pausing and retrying");
                }
                failing = true;
                drop(slot);
                tokio::time::sleep(ACCEPT_PAUSE).await;
                continue;
            }
        };
        if failing {
            tracing::info!("http: accepting connections again");
            failing = false;
        }
        let router = router.clone();
        tokio::spawn(async move {
            METRICS.http_connections.inc();
            let svc = hyper::service::service_fn(move |mut req: hyper::Request<_>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                router.clone().oneshot(req.map(axum::body::Body::new))
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEAD_TIMEOUT)
                .serve_connection(TokioIo::new(sock), svc);
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "http: connection ended with an error");
            }
            METRICS.http_connections.dec();
            drop(slot);
        });
    }
}

/// Binds `listen` and serves `app` in the background. Returns the bound address, or
/// `None` if binding failed.
pub async fn start(listen: &str, app: AppState) -> Option<SocketAddr> {
    let l = match TcpListener::bind(listen).await {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(%listen, error = %e, "http: cannot listen; /healthz, /metrics, /ack and the console are off");
            return None;
        }
    };
    let addr = l.local_addr().ok()?;
    let max = app.cfg.http.max_connections;
    tracing::info!(%addr, max_connections = max, "http: /healthz and /metrics, /readyz, /ack, console at /");
    tokio::spawn(serve(l, router(app), max));
    Some(addr)
}

#[cfg(test)]
mod tests;
