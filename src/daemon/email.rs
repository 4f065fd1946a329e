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
use crate::daemon::ack::AckKey;
use crate::daemon::render;
use crate::daemon::store::Store;
use crate::notice::Notice;
use crate::secret::{expand_env, secret};

type Smtp = AsyncSmtpTransport<Tokio1Executor>;

/// The email sink's name in the health registry.
const SINK: &str = "email";

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
    /// Set on shutdown: no new attempt starts; the one in hand finishes (within its
    /// deadline), so an email the server accepted is marked and not sent again.
    stopping: Arc<std::sync::atomic::AtomicBool>,
    wake: Arc<tokio::sync::Notify>,
    deadline: Duration,
}

/// The SMTP transport from `smtp_url` (`smtp://`, `smtps://`, `?tls=required`) and the
/// credentials of `[email]`.
fn transport(cfg: &Config) -> anyhow::Result<Option<(Smtp, Mailbox)>> {
    let Some(e) = &cfg.email else {
        return Ok(None);
    };
    let url = expand_env(&e.smtp_url)?;
    // lettre's error may quote the URL: neither is shown as given (it may hold a password).
    let mut b = Smtp::from_url(&url).map_err(|err| {
        let shown = crate::secret::redact_url(&url);
        let err = err.to_string().replace(&url, &shown);
        anyhow::anyhow!("email.smtp_url {shown:?} is not a valid SMTP URL: {err}")
    })?;
    if let Some(user) = &e.username {
        let pw = secret(e.password.as_deref(), e.password_file.as_deref())?.unwrap_or_default();
        b = b.credentials(Credentials::new(expand_env(user)?, pw));
    }
    let from: Mailbox = e
        .from
        .parse()
        .map_err(|err| anyhow::anyhow!("email.from {:?}: {err}", e.from))?;
    Ok(Some((
        b.timeout(Some(Duration::from_secs(e.timeout_s.max(1))))
            .build(),
        from,
    )))
}

/// Checks `[email]` as the daemon would (for `check`): the SMTP URL and the sender.
pub fn validate(cfg: &Config) -> anyhow::Result<()> {
    transport(cfg).map(|_| ())
}

impl Mailer {
    /// Starts the sender when `[email]` is configured, with every pending email of the
    /// outbox queued.
    pub fn start(
        cfg: Arc<Config>,
        links: Option<AckKey>,
        db: &Path,
    ) -> anyhow::Result<Option<Mailer>> {
        let Some((smtp, from)) = transport(&cfg)? else {
            return Ok(None);
        };
        let store = Store::open_sink(db)?;
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
        let stopping = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let deadline = deadline(&cfg);
        let wake = Arc::new(tokio::sync::Notify::new());
        let stop = (Arc::clone(&stopping), Arc::clone(&wake));
        let task = tokio::spawn(run(cfg, smtp, (from, links), store, queue, rx, stop));
        Ok(Some(Mailer {
            tx,
            task: Arc::new(Mutex::new(Some(task))),
            stopping,
            wake,
            deadline,
        }))
    }

    pub fn submit(&self, notice: Arc<Notice>, addr: String) {
        let _ = self.tx.send((notice, addr));
    }

    /// Stops sending; what is not sent stays in the outbox for the next start.
    /// An attempt in progress is let finish (at most its deadline): aborting it after the
    /// server accepted the message would send it again after the restart.
    pub async fn stop(&self) {
        self.stopping
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.wake.notify_one();
        let task = self.task.lock().expect("task lock").take();
        if let Some(mut t) = task {
            let wait = self.deadline + Duration::from_secs(1);
            if tokio::time::timeout(wait, &mut t).await.is_err() {
                t.abort();
                let _ = t.await;
            }
        }
    }
}

/// The email of one notice to one address.
pub fn message(
    cfg: &Config,
    (from, links): (&Mailbox, Option<&AckKey>),
    n: &Notice,
    to: &str,
) -> anyhow::Result<Message> {
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
                        .body(render::text_body(cfg, links, n, addr)),
                )
                .singlepart(
                    SinglePart::builder()
                        .header(header::ContentType::TEXT_HTML)
                        .body(render::html_body(cfg, links, n, addr)),
                ),
        )?)
}

/// The deadline of one email's whole exchange (`[email] timeout_s`).
fn deadline(cfg: &Config) -> Duration {
    Duration::from_secs(cfg.email.as_ref().map_or(30, |e| e.timeout_s.max(1)))
}

fn backoff(attempts: u32) -> Duration {
    Duration::from_secs(1u64 << attempts.min(8)).min(Duration::from_secs(300))
}

async fn run(
    cfg: Arc<Config>,
    smtp: Smtp,
    (from, links): (Mailbox, Option<AckKey>),
    store: Store,
    mut queue: VecDeque<Job>,
    mut rx: mpsc::UnboundedReceiver<(Arc<Notice>, String)>,
    (stopping, wake): (Arc<std::sync::atomic::AtomicBool>, Arc<tokio::sync::Notify>),
) {
    let stop = || stopping.load(std::sync::atomic::Ordering::SeqCst);
    while !stop() {
        let next = queue.iter().map(|j| j.next_try).min();
        let wake_at = next.unwrap_or_else(|| crate::clock::monotonic() + Duration::from_secs(3600));
        tokio::select! {
            m = rx.recv() => match m {
                Some((notice, addr)) => queue.push_back(Job { notice, addr, attempts: 0, next_try: crate::clock::monotonic() }),
                None => return,
            },
            _ = tokio::time::sleep_until(wake_at), if next.is_some() => {}
            _ = wake.notified() => {}
        }
        let now = crate::clock::monotonic();
        let mut rest = VecDeque::new();
        while let Some(mut job) = queue.pop_front() {
            if job.next_try > now || stop() {
                rest.push_back(job);
                continue;
            }
            let sink = format!("{}{}", render::SINK_EMAIL, job.addr);
            let deadline = deadline(&cfg);
            let sent = match message(&cfg, (&from, links.as_ref()), &job.notice, &job.addr) {
                // One deadline over every network step: lettre's own timeout did not
                // cover a server that accepts and never greets.
                Ok(m) => match tokio::time::timeout(deadline, smtp.send(m)).await {
                    Ok(r) => r.map(|_| ()).map_err(|e| e.to_string()),
                    Err(_) => Err(format!("no answer within {} s", deadline.as_secs())),
                },
                Err(e) => Err(e.to_string()),
            };
            match sent {
                Ok(()) => {
                    tracing::info!(id = %job.notice.id, to = %job.addr, "email sent");
                    crate::daemon::metrics::inc(&crate::daemon::metrics::METRICS.emails_sent, 1);
                    crate::daemon::health::sink_ok(SINK);
                    if let Err(e) = store.mark_delivered(&job.notice.id, &sink, clock::now()) {
                        tracing::error!(error = %e, "could not mark an email sent");
                    }
                }
                Err(e) => {
                    job.attempts += 1;
                    crate::daemon::metrics::inc(&crate::daemon::metrics::METRICS.emails_failed, 1);
                    crate::daemon::health::sink_failed(SINK, &e);
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
        let m = message(&cfg, (&from, None), &n, "duty@x.org").unwrap();
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
        assert!(message(&cfg, (&from, None), &n, "not an address").is_err());
    }
}
