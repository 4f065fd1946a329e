//! Messaging webhooks (`[[webhook]]`): a WeCom group robot (`wecom`), a phone / SMS
//! gateway (`phone`) and a plain JSON endpoint (`generic`). Each (notice, webhook) is an
//! outbox sink like an email: marked delivered once the endpoint answered 2xx (for WeCom:
//! 2xx with `errcode` 0), retried with backoff otherwise, and sent after a restart when
//! still pending. The daemon only delivers what the notices say: which notices go where
//! is `render::webhook_wants`; the texts are below.
//!
//! Deliveries are queued and retried by the retry driver that email uses too
//! (retry/driver.rs), on the daemon's runtime with its own database connection, so a slow
//! endpoint never blocks the plans, and a stop lets the attempt in hand finish.
//! HTTP client: `ureq` 2 (blocking, small, rustls with the ring provider that lettre
//! already brings; no second TLS stack); each attempt runs on the runtime's blocking pool.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::clock;
use crate::config::{Config, WebhookKind};
use crate::daemon::ack::{self, AckKey};
use crate::daemon::metrics;
use crate::daemon::render;
use crate::daemon::retry::driver::{Delivery, Driver, Transport};
use crate::daemon::retry::Backoff;
use crate::daemon::sink::{Sink, SinkKind};
use crate::daemon::store::Store;
use crate::notice::{Kind, Notice};
use crate::secret::{expand_env, secret};
use prometheus_client::metrics::counter::Counter;

/// A webhook ready to post to: its sink and resolved URL (with `?key=`).
struct Hook {
    sink: Sink,
    kind: WebhookKind,
    url: String,
    agent: ureq::Agent,
    /// The deadline of each request (connect and the whole exchange).
    timeout: Duration,
    /// `wecom_app`: the application's credentials and its cached access token.
    app: Option<App>,
}

/// A WeCom application (企业微信应用): `gettoken` with corp id and secret gives an access
/// token valid `expires_in` seconds (7200); it is cached and fetched again 5 minutes
/// before it expires, or at once when the API says it is invalid or expired.
struct App {
    corp_id: String,
    agent_id: i64,
    secret: String,
    token: std::sync::Mutex<Option<(String, tokio::time::Instant)>>,
}

/// WeCom error codes of an invalid or expired access token.
const TOKEN_ERRORS: [i64; 3] = [40001, 40014, 42001];

/// Handle on the webhook sender: the shared retry driver over HTTP.
#[derive(Clone)]
pub struct Hooks {
    driver: Driver,
    /// The sinks of the configured webhooks.
    sinks: Arc<Vec<Sink>>,
}

/// One attempt at one webhook delivery: a POST (or, for `wecom_app`, up to two token
/// requests and two sends) on the blocking pool.
struct Posts {
    cfg: Arc<Config>,
    /// The key that signs the called person's acknowledgement link (None: no links).
    links: Option<AckKey>,
    hooks: Arc<Vec<Hook>>,
}

/// The resolved webhooks of the config; an unreadable key is an error (an unknown
/// `kind` does not load).
fn hooks(cfg: &Config) -> anyhow::Result<Vec<Hook>> {
    let mut out = Vec::new();
    for (i, w) in cfg.webhooks.iter().enumerate() {
        let mut url = expand_env(&w.url)?;
        anyhow::ensure!(
            url.starts_with("http://") || url.starts_with("https://"),
            "webhook {i}: url {url:?} is not http(s)"
        );
        if let Some(k) = secret(w.key.as_deref(), w.key_file.as_deref())? {
            url += if url.contains('?') { "&key=" } else { "?key=" };
            url += &ack::pct(&k);
        }
        let app = if w.kind == WebhookKind::WecomApp {
            let corp_id = w
                .corp_id
                .clone()
                .ok_or_else(|| anyhow::anyhow!("webhook {i}: wecom_app needs corp_id"))?;
            let agent_id = w
                .agent_id
                .ok_or_else(|| anyhow::anyhow!("webhook {i}: wecom_app needs agent_id"))?;
            let secret =
                secret(w.secret.as_deref(), w.secret_file.as_deref())?.ok_or_else(|| {
                    anyhow::anyhow!("webhook {i}: wecom_app needs secret or secret_file")
                })?;
            Some(App {
                corp_id: expand_env(&corp_id)?,
                agent_id,
                secret,
                token: std::sync::Mutex::new(None),
            })
        } else {
            None
        };
        // A deadline on every request: connect and the whole exchange.
        let t = Duration::from_secs(w.timeout_s.max(1));
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(t)
            .timeout(t)
            .redirects(0)
            .build();
        out.push(Hook {
            sink: Sink::Webhook(render::webhook_name(i, w)),
            kind: w.kind,
            url: url.trim_end_matches('/').to_string(),
            agent,
            timeout: t,
            app,
        });
    }
    Ok(out)
}

impl Hooks {
    /// Starts the sender when webhooks are configured, with every pending delivery of
    /// the outbox queued.
    pub fn start(
        cfg: Arc<Config>,
        links: Option<AckKey>,
        db: &Path,
    ) -> anyhow::Result<Option<Hooks>> {
        let hooks = hooks(&cfg)?;
        if hooks.is_empty() {
            return Ok(None);
        }
        let sinks: Vec<Sink> = hooks.iter().map(|h| h.sink.clone()).collect();
        let store = Store::open_sink(db)?;
        let mut pending = Vec::new();
        for p in store.pending(SinkKind::Webhook)? {
            if sinks.contains(&p.sink) {
                let d = Delivery {
                    notice: Arc::new(p.notice),
                    sink: p.sink,
                };
                pending.push((d, p.attempts));
            } else {
                tracing::warn!(id = %p.notice.id, sink = %p.sink, "pending delivery to a webhook no longer configured: left in the outbox");
            }
        }
        let posts = Posts {
            cfg,
            links,
            hooks: Arc::new(hooks),
        };
        let driver = Driver::start(posts, Backoff::WEBHOOK, store, pending);
        Ok(Some(Hooks {
            driver,
            sinks: Arc::new(sinks),
        }))
    }

    /// Queues a delivery of `notice` to the webhook named `name` (the sink
    /// [`Sink::Webhook`]; one not configured is left in the outbox).
    pub fn submit(&self, notice: Arc<Notice>, name: String) {
        let sink = Sink::Webhook(name);
        if self.sinks.contains(&sink) {
            self.driver.submit(notice, sink);
        }
    }

    /// Stops sending; what is not delivered stays in the outbox for the next start. An
    /// attempt in progress is let finish (at most its requests' deadlines).
    pub async fn stop(&self) {
        self.driver.stop().await;
    }
}

impl Transport for Posts {
    const KIND: SinkKind = SinkKind::Webhook;
    const SENT: &'static str = "webhook delivered";
    const NOT_SENT: &'static str = "webhook not delivered";

    fn health_name(&self, d: &Delivery) -> String {
        d.sink.to_string()
    }

    /// A `wecom_app` attempt may make four requests (token, send, token again, send).
    fn grace(&self) -> Duration {
        let requests = |h: &Hook| if h.app.is_some() { 4 } else { 1 };
        let each = self.hooks.iter().map(|h| h.timeout * requests(h));
        each.max().unwrap_or_default()
    }

    fn counters(&self) -> (&'static Counter, &'static Counter) {
        let m: &'static metrics::Metrics = &metrics::METRICS;
        (&m.webhooks_sent, &m.webhooks_failed)
    }

    async fn attempt(&self, d: &Delivery) -> Result<(), String> {
        let hook = self.hooks.iter().position(|h| h.sink == d.sink);
        let hook = hook.ok_or_else(|| format!("{} is not configured", d.sink))?;
        let (cfg, links) = (Arc::clone(&self.cfg), self.links.clone());
        let (hooks, n) = (Arc::clone(&self.hooks), Arc::clone(&d.notice));
        tokio::task::spawn_blocking(move || post(&cfg, links.as_ref(), &hooks[hook], &n))
            .await
            .unwrap_or_else(|e| Err(format!("the attempt failed: {e}")))
    }
}

/// One POST; `Err` unless the endpoint answered 2xx (and, for WeCom, `errcode` 0).
fn post(cfg: &Config, links: Option<&AckKey>, h: &Hook, n: &Notice) -> Result<(), String> {
    if let Some(app) = &h.app {
        return post_app(cfg, links, h, app, n);
    }
    let body = match body(cfg, links, h.kind, n) {
        Some(b) => b,
        None => return Err("nothing to send (contact without phone?)".into()),
    };
    let text = send(h, &h.url, &body)?;
    if h.kind == WebhookKind::Wecom {
        wecom_ok(&text).map_err(|(_, t)| t)?;
    }
    Ok(())
}

/// POSTs JSON to `url`; the answer's text on 2xx.
fn send(h: &Hook, url: &str, body: &Value) -> Result<String, String> {
    let resp = h
        .agent
        .post(url)
        .set("Content-Type", "application/json; charset=utf-8")
        .send_string(&body.to_string())
        .map_err(|e| match e {
            ureq::Error::Status(code, _) => format!("HTTP {code}"),
            other => redact(&other.to_string(), url),
        })?;
    resp.into_string().map_err(|e| e.to_string())
}

/// `Ok` when a WeCom answer has `errcode` 0; else the code and message.
fn wecom_ok(text: &str) -> Result<Value, (i64, String)> {
    let v: Value = serde_json::from_str(text).map_err(|e| (-1, format!("WeCom answer: {e}")))?;
    let code = v.get("errcode").and_then(Value::as_i64).unwrap_or(0);
    if code != 0 {
        return Err((code, format!("WeCom errcode {code}: {}", v["errmsg"])));
    }
    Ok(v)
}

impl From<(i64, String)> for WeComError {
    fn from((code, text): (i64, String)) -> Self {
        WeComError { code, text }
    }
}

struct WeComError {
    code: i64,
    text: String,
}

/// The application's access token: the cached one, or a new one from `gettoken`.
fn token(h: &Hook, app: &App) -> Result<String, String> {
    let mut cache = app.token.lock().expect("token lock");
    if let Some((t, until)) = cache.as_ref() {
        if clock::monotonic() < *until {
            return Ok(t.clone());
        }
    }
    let url = format!(
        "{}/cgi-bin/gettoken?corpid={}&corpsecret={}",
        h.url,
        ack::pct(&app.corp_id),
        ack::pct(&app.secret)
    );
    let text = h
        .agent
        .get(&url)
        .call()
        .map_err(|e| match e {
            ureq::Error::Status(code, _) => format!("gettoken: HTTP {code}"),
            other => redact(&other.to_string(), &url),
        })?
        .into_string()
        .map_err(|e| e.to_string())?;
    let v = wecom_ok(&text).map_err(|(_, t)| format!("gettoken: {t}"))?;
    let t = v["access_token"]
        .as_str()
        .filter(|t| !t.is_empty())
        .ok_or("gettoken: no access_token")?
        .to_string();
    let secs = v["expires_in"].as_u64().unwrap_or(7200).saturating_sub(300);
    *cache = Some((t.clone(), clock::monotonic() + Duration::from_secs(secs)));
    Ok(t)
}

/// `message/send` of a call to its person; a token the API calls invalid or expired is
/// dropped and fetched once more.
fn post_app(
    cfg: &Config,
    links: Option<&AckKey>,
    h: &Hook,
    app: &App,
    n: &Notice,
) -> Result<(), String> {
    let body = app_json(cfg, links, n, app.agent_id)
        .ok_or("nothing to send (contact without WeCom user id?)")?;
    for round in 0..2 {
        let t = token(h, app)?;
        let url = format!(
            "{}/cgi-bin/message/send?access_token={}",
            h.url,
            ack::pct(&t)
        );
        let text = send(h, &url, &body)?;
        match wecom_ok(&text).map_err(WeComError::from) {
            Ok(v) => {
                // A user id WeCom does not know is not delivered.
                let bad = v["invaliduser"].as_str().unwrap_or("");
                if !bad.is_empty() {
                    return Err(format!("WeCom: unknown user {bad}"));
                }
                return Ok(());
            }
            Err(e) if round == 0 && TOKEN_ERRORS.contains(&e.code) => {
                *app.token.lock().expect("token lock") = None;
            }
            Err(e) => return Err(e.text),
        }
    }
    Err("WeCom: access token refused twice".into())
}

/// An error text without the URL's query (it holds the key).
fn redact(e: &str, url: &str) -> String {
    match url.split_once('?') {
        Some((_, q)) => e.replace(q, "…"),
        None => e.to_string(),
    }
}

/// The JSON posted for a notice to a webhook of `kind`; `None` when it cannot be made
/// (a phone call or application message to a contact without a number or user id).
/// Group messages (the WeCom robot, the generic webhook) carry no acknowledgement link;
/// messages to the called person alone (phone gateway, WeCom application) do.
pub fn body(cfg: &Config, links: Option<&AckKey>, kind: WebhookKind, n: &Notice) -> Option<Value> {
    match kind {
        WebhookKind::Wecom => Some(json!({"msgtype": "markdown",
            "markdown": {"content": render::wecom_text(cfg, None, n, render::Reader::Group, true)}})),
        WebhookKind::Phone => phone_json(cfg, links, n),
        WebhookKind::WecomApp => app_json(cfg, links, n, 0),
        WebhookKind::Generic => Some(generic_json(cfg, n)),
    }
}

/// The called contact of a call notice.
fn called<'a>(cfg: &'a Config, n: &Notice) -> Option<&'a crate::config::Contact> {
    n.person.as_deref().and_then(|p| cfg.contact(p))
}

/// The phone gateway's request of a `call` on the phone channel: the script to read and
/// the personal acknowledgement link for the gateway's SMS.
pub fn phone_json(cfg: &Config, links: Option<&AckKey>, n: &Notice) -> Option<Value> {
    let c = called(cfg, n)?;
    let to = c.phone.clone()?;
    let r = render::Reader::Contact(c);
    Some(json!({
        "to": to, "person": c.id, "call_id": n.call_id, "attempt": n.attempt,
        "text": render::phone_script(cfg, n), "ack_url": render::personal_link(cfg, links, n, r),
    }))
}

/// A WeCom application message (`message/send`) of a call to the called person alone.
pub fn app_json(cfg: &Config, links: Option<&AckKey>, n: &Notice, agent_id: i64) -> Option<Value> {
    let c = called(cfg, n)?;
    let user = c.wechat.clone()?;
    let r = render::Reader::Contact(c);
    Some(json!({
        "touser": user, "msgtype": "text", "agentid": agent_id,
        "text": {"content": render::wecom_text(cfg, links, n, r, false)},
        "safe": 0,
    }))
}

/// The notice as it is, plus `subject` (with 【演练】 in drill mode), `drill`, and
/// `contact` (the called person's name and unit) for call kinds. A group message: no
/// acknowledgement link.
pub fn generic_json(cfg: &Config, n: &Notice) -> Value {
    let mut v = serde_json::to_value(n).expect("notice serialises");
    v["subject"] = json!(render::subject(cfg, n));
    if cfg.drill {
        v["drill"] = json!(true);
    }
    if matches!(n.kind, Kind::Call | Kind::CallAck | Kind::CallUnreached) {
        if let Some(c) = called(cfg, n) {
            v["contact"] = json!({"id": c.id, "name": c.name, "unit": c.unit});
        }
    }
    v
}

/// Checks the `[[webhook]]` entries (for `check` and start-up).
pub fn validate(cfg: &Config) -> anyhow::Result<()> {
    hooks(cfg).map(|_| ())
}

#[cfg(test)]
mod tests;
