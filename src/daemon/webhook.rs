//! Messaging webhooks (`[[webhook]]`): a WeCom group robot (`wecom`), a phone / SMS
//! gateway (`phone`) and a plain JSON endpoint (`generic`). Each (notice, webhook) is an
//! outbox sink like an email: marked delivered once the endpoint answered 2xx (for WeCom:
//! 2xx with `errcode` 0), retried with backoff otherwise, and sent after a restart when
//! still pending. The daemon only delivers what the notices say: which notices go where
//! is `render::webhook_wants`; the texts are below.
//!
//! HTTP client: `ureq` 2 (blocking, small, rustls with the ring provider that lettre
//! already brings; no second TLS stack, no async runtime needed), on its own thread with
//! its own database connection, so a slow endpoint never blocks the plans.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::clock;
use crate::config::Config;
use crate::daemon::mqtt::{expand_env, secret};
use crate::daemon::store::Store;
use crate::daemon::{ack, http, render};
use crate::notice::{Kind, Notice};
use crate::time::Ts;

/// A webhook ready to post to: its sink name and resolved URL (with `?key=`).
#[derive(Clone)]
struct Hook {
    sink: String,
    kind: String,
    url: String,
    agent: ureq::Agent,
}

struct Job {
    notice: Arc<Notice>,
    hook: usize,
    attempts: u32,
    next_try: Ts,
}

/// Handle on the webhook sender thread.
#[derive(Clone)]
pub struct Hooks {
    tx: Sender<(Arc<Notice>, String)>,
}

/// The resolved webhooks of the config; an unknown `kind` or unreadable key is an error.
fn hooks(cfg: &Config) -> anyhow::Result<Vec<Hook>> {
    let mut out = Vec::new();
    for (i, w) in cfg.webhooks.iter().enumerate() {
        anyhow::ensure!(
            matches!(w.kind.as_str(), "wecom" | "phone" | "generic"),
            "webhook {i}: kind {:?} is not wecom, phone or generic",
            w.kind
        );
        let mut url = expand_env(&w.url)?;
        anyhow::ensure!(
            url.starts_with("http://") || url.starts_with("https://"),
            "webhook {i}: url {url:?} is not http(s)"
        );
        if let Some(k) = secret(w.key.as_deref(), w.key_file.as_deref())? {
            url += if url.contains('?') { "&key=" } else { "?key=" };
            url += &ack::pct(&k);
        }
        let t = Duration::from_secs(w.timeout_s.max(1));
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(t)
            .timeout(t)
            .redirects(0)
            .build();
        out.push(Hook {
            sink: format!("{}{}", render::SINK_WEBHOOK, render::webhook_name(i, w)),
            kind: w.kind.clone(),
            url,
            agent,
        });
    }
    Ok(out)
}

impl Hooks {
    /// Starts the sender when webhooks are configured, with every pending delivery of
    /// the outbox queued.
    pub fn start(cfg: Arc<Config>, db: &Path) -> anyhow::Result<Option<Hooks>> {
        let hooks = hooks(&cfg)?;
        if hooks.is_empty() {
            return Ok(None);
        }
        let store = Store::open(db)?;
        let mut queue = VecDeque::new();
        for p in store.pending(render::SINK_WEBHOOK)? {
            match hooks.iter().position(|h| h.sink == p.sink) {
                Some(hook) => queue.push_back(Job {
                    notice: Arc::new(p.notice),
                    hook,
                    attempts: p.attempts,
                    next_try: clock::now(),
                }),
                None => {
                    tracing::warn!(id = %p.notice.id, sink = %p.sink, "pending delivery to a webhook no longer configured: left in the outbox")
                }
            }
        }
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("webhooks".into())
            .spawn(move || run(&cfg, &hooks, &store, queue, &rx))?;
        Ok(Some(Hooks { tx }))
    }

    /// Queues a delivery of `notice` to the webhook sink `sink`.
    pub fn submit(&self, notice: Arc<Notice>, sink: String) {
        let _ = self.tx.send((notice, sink));
    }
}

fn backoff(attempts: u32) -> Duration {
    Duration::from_secs(1u64 << attempts.min(6)).min(Duration::from_secs(60))
}

fn run(
    cfg: &Config,
    hooks: &[Hook],
    store: &Store,
    mut queue: VecDeque<Job>,
    rx: &Receiver<(Arc<Notice>, String)>,
) {
    loop {
        let wait = queue
            .iter()
            .map(|j| clock::until(j.next_try))
            .min()
            .unwrap_or(Duration::from_secs(3600));
        match rx.recv_timeout(wait) {
            Ok(m) => enqueue(hooks, &mut queue, m),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        while let Ok(m) = rx.try_recv() {
            enqueue(hooks, &mut queue, m);
        }
        let now = clock::now();
        let mut rest = VecDeque::new();
        while let Some(mut job) = queue.pop_front() {
            if job.next_try > now {
                rest.push_back(job);
                continue;
            }
            let h = &hooks[job.hook];
            match post(cfg, h, &job.notice) {
                Ok(()) => {
                    tracing::info!(id = %job.notice.id, sink = %h.sink, "webhook delivered");
                    http::inc(&http::METRICS.webhooks_sent, 1);
                    crate::daemon::health::sink_ok(&h.sink);
                    if let Err(e) = store.mark_delivered(&job.notice.id, &h.sink, clock::now()) {
                        tracing::error!(error = %e, "could not mark a webhook delivery");
                    }
                }
                Err(e) => {
                    job.attempts += 1;
                    http::inc(&http::METRICS.webhooks_failed, 1);
                    crate::daemon::health::sink_failed(&h.sink, &e);
                    let d = backoff(job.attempts);
                    tracing::warn!(id = %job.notice.id, sink = %h.sink, error = %e, retry_in_s = d.as_secs(), "webhook not delivered");
                    let _ = store.mark_failed(&job.notice.id, &h.sink, &e);
                    job.next_try = clock::now() + chrono::Duration::from_std(d).unwrap_or_default();
                    rest.push_back(job);
                }
            }
        }
        queue = rest;
    }
}

fn enqueue(hooks: &[Hook], queue: &mut VecDeque<Job>, (notice, sink): (Arc<Notice>, String)) {
    if let Some(hook) = hooks.iter().position(|h| h.sink == sink) {
        queue.push_back(Job {
            notice,
            hook,
            attempts: 0,
            next_try: clock::now(),
        });
    }
}

/// One POST; `Err` unless the endpoint answered 2xx (and, for WeCom, `errcode` 0).
fn post(cfg: &Config, h: &Hook, n: &Notice) -> Result<(), String> {
    let body = match body(cfg, &h.kind, n, ack::link(cfg, n).as_deref()) {
        Some(b) => b,
        None => return Err("nothing to send (contact without phone?)".into()),
    };
    let resp = h
        .agent
        .post(&h.url)
        .set("Content-Type", "application/json; charset=utf-8")
        .send_string(&body.to_string())
        .map_err(|e| match e {
            ureq::Error::Status(code, _) => format!("HTTP {code}"),
            other => redact(&other.to_string(), &h.url),
        })?;
    if h.kind == "wecom" {
        let text = resp.into_string().map_err(|e| e.to_string())?;
        let v: Value = serde_json::from_str(&text).map_err(|e| format!("WeCom answer: {e}"))?;
        let code = v.get("errcode").and_then(Value::as_i64).unwrap_or(0);
        if code != 0 {
            return Err(format!("WeCom errcode {code}: {}", v["errmsg"]));
        }
    }
    Ok(())
}

/// An error text without the URL's query (it holds the key).
fn redact(e: &str, url: &str) -> String {
    match url.split_once('?') {
        Some((_, q)) => e.replace(q, "…"),
        None => e.to_string(),
    }
}

/// The JSON posted for a notice to a webhook of `kind`; `None` when it cannot be made
/// (a phone call to a contact without a number).
pub fn body(cfg: &Config, kind: &str, n: &Notice, link: Option<&str>) -> Option<Value> {
    match kind {
        "wecom" => {
            Some(json!({"msgtype": "markdown", "markdown": {"content": wecom_text(cfg, n, link)}}))
        }
        "phone" => phone_json(cfg, n, link),
        _ => Some(generic_json(cfg, n, link)),
    }
}

fn channel_zh(c: &str) -> &str {
    match c {
        "wechat" => "微信",
        "phone" => "电话",
        other => other,
    }
}

/// "张三（市应急管理局）" or the id when no contact has it.
fn who(cfg: &Config, id: &str) -> String {
    match cfg.contact(id) {
        Some(c) if !c.name.is_empty() => format!("{}（{}）", c.name, c.unit),
        _ => id.to_string(),
    }
}

fn is_call_kind(k: Kind) -> bool {
    matches!(k, Kind::Call | Kind::CallAck | Kind::CallUnreached)
}

/// The WeCom markdown text: title, time, clause, reason, and for call kinds the person,
/// channel, attempt and the acknowledgement link.
pub fn wecom_text(cfg: &Config, n: &Notice, link: Option<&str>) -> String {
    let mut s = format!("### {}\n", render::subject(cfg, n));
    s += &format!("> 时间：{}\n", crate::time::fmt_ts(n.at));
    if !n.clause.is_empty() {
        s += &format!("> 依据：{}\n", n.clause);
    }
    s += &format!("> 原因：{}\n", n.reason);
    if is_call_kind(n.kind) {
        if let Some(p) = &n.person {
            s += &format!("> 叫应对象：**{}**\n", who(cfg, p));
        }
        if let (Some(c), Some(a)) = (&n.channel, n.attempt) {
            s += &format!("> 方式：{}，第{a}次\n", channel_zh(c));
        }
    }
    if let Some(t) = &n.text {
        s += &format!("\n{}\n", cut(t, MAX_TEXT));
    }
    if let Some(l) = link {
        s += &format!("\n[收到请点击确认（回应叫应）]({l})\n");
    }
    s += &format!("\n<font color=\"comment\">编号：{}</font>", n.id);
    s
}

/// WeCom refuses markdown over 4096 bytes: a report's text is cut to this many bytes.
const MAX_TEXT: usize = 2500;

/// `t` cut to at most `max` bytes on a character boundary, with `…` when cut.
fn cut(t: &str, max: usize) -> String {
    if t.len() <= max {
        return t.to_string();
    }
    let mut i = max;
    while !t.is_char_boundary(i) {
        i -= 1;
    }
    format!("{}…", &t[..i])
}

/// The phone gateway's request of a `call` on the phone channel.
pub fn phone_json(cfg: &Config, n: &Notice, link: Option<&str>) -> Option<Value> {
    let person = n.person.as_deref()?;
    let to = cfg.contact(person)?.phone.clone()?;
    let text = format!(
        "{}：{}。请回应叫应（第{}次）。",
        render::subject(cfg, n),
        n.reason,
        n.attempt.unwrap_or(1)
    );
    Some(json!({
        "to": to, "person": person, "call_id": n.call_id, "attempt": n.attempt,
        "text": text, "ack_url": link,
    }))
}

/// The notice as it is, plus `contact` (the called person) and `ack_url` for call kinds.
pub fn generic_json(cfg: &Config, n: &Notice, link: Option<&str>) -> Value {
    let mut v = serde_json::to_value(n).expect("notice serialises");
    if is_call_kind(n.kind) {
        if let Some(c) = n.person.as_deref().and_then(|p| cfg.contact(p)) {
            v["contact"] = json!({
                "id": c.id, "name": c.name, "unit": c.unit, "phone": c.phone,
                "wechat": c.wechat, "email": c.email,
            });
        }
        if let Some(l) = link {
            v["ack_url"] = json!(l);
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
