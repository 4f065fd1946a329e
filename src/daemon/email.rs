//! Email (lettre, SMTP from `[email]`): one message per notice and recipient, UTF-8,
//! plain text plus HTML, Message-ID from the notice id. Each (notice, address) is an
//! outbox sink: marked delivered when the SMTP server accepted it; a failure is retried
//! with backoff, and what is still pending at a restart is sent after it. Sending never
//! blocks the plans (its own task, its own database connection).

use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lettre::message::{header, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::clock;
use crate::config::Config;
use crate::daemon::mqtt::{expand_env, secret};
use crate::daemon::render;
use crate::daemon::store::Store;
use crate::notice::Notice;

type Smtp = AsyncSmtpTransport<Tokio1Executor>;

struct Job {
    notice: Arc<Notice>,
    addr: String,
    attempts: u32,
    next_try: Instant,
}

/// Handle on the email sender.
#[derive(Clone)]
pub struct Mailer {
    tx: mpsc::UnboundedSender<(Arc<Notice>, String)>,
    task: Arc<Mutex<Option<JoinHandle<()>>>>,
}

/// The SMTP transport from `smtp_url` (`smtp://`, `smtps://`, `?tls=required`) and the
/// credentials of `[email]`.
fn transport(cfg: &Config) -> anyhow::Result<Option<(Smtp, Mailbox)>> {
    let Some(e) = &cfg.email else {
        return Ok(None);
    };
    let url = expand_env(&e.smtp_url)?;
    let mut b =
        Smtp::from_url(&url).map_err(|err| anyhow::anyhow!("email.smtp_url {url:?}: {err}"))?;
    if let Some(user) = &e.username {
        let pw = secret(e.password.as_deref(), e.password_file.as_deref())?.unwrap_or_default();
        b = b.credentials(Credentials::new(expand_env(user)?, pw));
    }
    let from: Mailbox = e
        .from
        .parse()
        .map_err(|err| anyhow::anyhow!("email.from {:?}: {err}", e.from))?;
    Ok(Some((
        b.timeout(Some(Duration::from_secs(30))).build(),
        from,
    )))
}

impl Mailer {
    /// Starts the sender when `[email]` is configured, with every pending email of the
    /// outbox queued.
    pub fn start(cfg: Arc<Config>, db: &Path) -> anyhow::Result<Option<Mailer>> {
        let Some((smtp, from)) = transport(&cfg)? else {
            return Ok(None);
        };
        let store = Store::open(db)?;
        let now = crate::clock::monotonic();
        let queue: VecDeque<Job> = store
            .pending(render::SINK_EMAIL)?
            .into_iter()
            .map(|p| Job {
                addr: p.sink[render::SINK_EMAIL.len()..].to_string(),
                notice: Arc::new(p.notice),
                attempts: p.attempts,
                next_try: now,
            })
            .collect();
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(cfg, smtp, from, store, queue, rx));
        Ok(Some(Mailer {
            tx,
            task: Arc::new(Mutex::new(Some(task))),
        }))
    }

    pub fn submit(&self, notice: Arc<Notice>, addr: String) {
        let _ = self.tx.send((notice, addr));
    }

    /// Stops sending; what is not sent stays in the outbox for the next start.
    pub async fn stop(&self) {
        let task = self.task.lock().expect("task lock").take();
        if let Some(t) = task {
            t.abort();
            let _ = t.await;
        }
    }
}

/// The email of one notice to one address.
pub fn message(cfg: &Config, from: &Mailbox, n: &Notice, to: &str) -> anyhow::Result<Message> {
    let addr = to;
    let to: Mailbox = to.parse()?;
    let id = n.id.replace('/', ".");
    Ok(Message::builder()
        .from(from.clone())
        .to(to)
        .subject(render::subject(cfg, n))
        .message_id(Some(format!("<{id}@yingji.{}>", n.region)))
        .multipart(
            MultiPart::alternative()
                .singlepart(
                    SinglePart::builder()
                        .header(header::ContentType::TEXT_PLAIN)
                        .body(render::text_body(cfg, n, addr)),
                )
                .singlepart(
                    SinglePart::builder()
                        .header(header::ContentType::TEXT_HTML)
                        .body(render::html_body(cfg, n, addr)),
                ),
        )?)
}

fn backoff(attempts: u32) -> Duration {
    Duration::from_secs(1u64 << attempts.min(8)).min(Duration::from_secs(300))
}

async fn run(
    cfg: Arc<Config>,
    smtp: Smtp,
    from: Mailbox,
    store: Store,
    mut queue: VecDeque<Job>,
    mut rx: mpsc::UnboundedReceiver<(Arc<Notice>, String)>,
) {
    loop {
        let next = queue.iter().map(|j| j.next_try).min();
        let wake = next.unwrap_or_else(|| crate::clock::monotonic() + Duration::from_secs(3600));
        tokio::select! {
            m = rx.recv() => match m {
                Some((notice, addr)) => queue.push_back(Job { notice, addr, attempts: 0, next_try: crate::clock::monotonic() }),
                None => return,
            },
            _ = tokio::time::sleep_until(wake), if next.is_some() => {}
        }
        let now = crate::clock::monotonic();
        let mut rest = VecDeque::new();
        while let Some(mut job) = queue.pop_front() {
            if job.next_try > now {
                rest.push_back(job);
                continue;
            }
            let sink = format!("{}{}", render::SINK_EMAIL, job.addr);
            let sent = match message(&cfg, &from, &job.notice, &job.addr) {
                Ok(m) => smtp.send(m).await.map(|_| ()).map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            match sent {
                Ok(()) => {
                    tracing::info!(id = %job.notice.id, to = %job.addr, "email sent");
                    crate::daemon::http::inc(&crate::daemon::http::METRICS.emails_sent, 1);
                    if let Err(e) = store.mark_delivered(&job.notice.id, &sink, clock::now()) {
                        tracing::error!(error = %e, "could not mark an email sent");
                    }
                }
                Err(e) => {
                    job.attempts += 1;
                    crate::daemon::http::inc(&crate::daemon::http::METRICS.emails_failed, 1);
                    let d = backoff(job.attempts);
                    tracing::warn!(id = %job.notice.id, to = %job.addr, error = %e, retry_in_s = d.as_secs(), "email not sent");
                    let _ = store.mark_failed(&job.notice.id, &sink, &e);
                    job.next_try = crate::clock::monotonic() + d;
                    rest.push_back(job);
                }
            }
        }
        queue = rest;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notice::{Kind, Plan};

    #[test]
    fn message_has_chinese_subject_id_and_both_parts() {
        let cfg = Config::from_toml("[email]\nfrom = \"yingji <y@x.org>\"")
            .unwrap()
            .config;
        let mut n = Notice::new(Plan::HeavyPollution, "graded", Kind::Activate, "orange")
            .previous("none")
            .reason("AQI 连续超标");
        n.id = "heavy_pollution/shuozhou/graded/1".into();
        n.region = "shuozhou".into();
        let from: Mailbox = "yingji <y@x.org>".parse().unwrap();
        let m = message(&cfg, &from, &n, "duty@x.org").unwrap();
        let raw = String::from_utf8(m.formatted()).unwrap();
        assert!(
            raw.contains("Message-ID: <heavy_pollution.shuozhou.graded.1@yingji.shuozhou>"),
            "{raw}"
        );
        assert!(raw.contains("text/plain") && raw.contains("text/html"));
        assert!(
            raw.contains("Subject: =?utf-8?"),
            "subject is encoded: {raw}"
        );
        assert!(message(&cfg, &from, &n, "not an address").is_err());
    }
}
