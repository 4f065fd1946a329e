//! Email (lettre, SMTP from `[email]`): one message per notice and recipient, UTF-8,
//! plain text plus HTML, Message-ID from the notice id. Each (notice, address) is an
//! outbox sink: marked delivered when the SMTP server accepted it; a failure is retried
//! with backoff, and what is still pending at a restart is sent after it. Sending never
//! blocks the plans (its own task, its own database connection).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use lettre::message::{header, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::AsyncSmtpConnection;
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::config::Config;
use crate::daemon::ack::AckKey;
use crate::daemon::metrics;
use crate::daemon::render;
use crate::daemon::retry::driver::{Delivery, Driver, Transport};
use crate::daemon::retry::Backoff;
use crate::daemon::sink::{Sink, SinkKind};
use crate::daemon::store::Store;
use crate::notice::Notice;
use crate::secret::{expand_env, secret};
use prometheus_client::metrics::counter::Counter;

type Smtp = AsyncSmtpTransport<Tokio1Executor>;

/// Handle on the email sender: the shared retry driver (retry/driver.rs) over SMTP.
#[derive(Clone)]
pub struct Mailer {
    driver: Driver,
}

/// One attempt at one email: the message to its address over SMTP.
struct Email {
    cfg: Arc<Config>,
    smtp: Smtp,
    /// A plain relay (`smtp://` without TLS or credentials) is spoken to over a socket of
    /// our own ([`Relay`]); every other URL through lettre's transport.
    relay: Option<Relay>,
    from: Mailbox,
    /// The key that signs a recipient's acknowledgement link (None: no links).
    links: Option<AckKey>,
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
        let pending = store
            .pending(SinkKind::Email)?
            .into_iter()
            .map(|p| {
                let d = Delivery {
                    notice: Arc::new(p.notice),
                    sink: p.sink,
                };
                (d, p.attempts)
            })
            .collect();
        let relay = Relay::of(&cfg);
        let email = Email {
            cfg,
            smtp,
            relay,
            from,
            links,
        };
        let driver = Driver::start(email, Backoff::EMAIL, store, pending);
        Ok(Some(Mailer { driver }))
    }

    /// Queues the email of `notice` to `addr` (the sink [`Sink::Email`]).
    pub fn submit(&self, notice: Arc<Notice>, addr: String) {
        self.driver.submit(notice, Sink::Email(addr));
    }

    /// Stops sending; what is not sent stays in the outbox for the next start.
    /// An attempt in progress is let finish (at most its deadline): aborting it after the
    /// server accepted the message would send it again after the restart.
    pub async fn stop(&self) {
        self.driver.stop().await;
    }
}

impl Transport for Email {
    const KIND: SinkKind = SinkKind::Email;
    const SENT: &'static str = "email sent";
    const NOT_SENT: &'static str = "email not sent";

    /// One name for every address: `email`.
    fn health_name(&self, _: &Delivery) -> String {
        SinkKind::Email.to_string()
    }

    fn grace(&self) -> Duration {
        deadline(&self.cfg)
    }

    fn counters(&self) -> (&'static Counter, &'static Counter) {
        let m: &'static metrics::Metrics = &metrics::METRICS;
        (&m.emails_sent, &m.emails_failed)
    }

    async fn attempt(&self, d: &Delivery) -> Result<(), String> {
        let addr = match &d.sink {
            Sink::Email(addr) => addr,
            // The mailer queues only its own sinks (`submit`, `pending`).
            Sink::Notice | Sink::Cap | Sink::Webhook(_) => {
                return Err(format!("{} is not an email", d.sink))
            }
        };
        let m = message(
            &self.cfg,
            (&self.from, self.links.as_ref()),
            &d.notice,
            addr,
        )
        .map_err(|e| e.to_string())?;
        // One deadline over every network step: lettre's own timeout did not cover a
        // server that accepts and never greets.
        let deadline = deadline(&self.cfg);
        let send = async {
            match &self.relay {
                Some(relay) => relay.send(&m).await,
                None => self
                    .smtp
                    .send(m)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
            }
        };
        match tokio::time::timeout(deadline, send).await {
            Ok(r) => r,
            Err(_) => Err(format!("no answer within {} s", deadline.as_secs())),
        }
    }
}

/// A plain SMTP relay, `smtp://host[:port][/hello-name]` (no `?tls=`, no credentials: a
/// mail server on the host or the LAN), as lettre reads that URL (port 25, the path as
/// the EHLO name). lettre's own connection leaves Nagle's algorithm on and writes the
/// end of the message data (`CRLF.CRLF`) apart from the body, so each email waited for
/// the server's delayed ACK, about 40 ms (docs/performance.md, branch `latency`). Here
/// lettre speaks SMTP over a socket of ours with TCP_NODELAY; the session is the one
/// lettre's transport holds (EHLO, MAIL, RCPT, DATA, QUIT), one per email. lettre fixed
/// the stall upstream (PR #1159) after 0.11.23: with a release that has it, this path
/// can go.
#[derive(Debug, Clone, PartialEq)]
struct Relay {
    host: String,
    port: u16,
    hello: ClientId,
}

impl Relay {
    /// `None` for any URL that is not a plain relay's (TLS, credentials, a query, a
    /// percent-encoded or unparsable authority): those go through lettre's transport.
    fn from_url(url: &str) -> Option<Relay> {
        let rest = url.strip_prefix("smtp://")?;
        if rest.contains(['?', '@', '#', '%']) {
            return None;
        }
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (host, port) = match authority.strip_prefix('[') {
            // An IPv6 literal: [::1] or [::1]:2525.
            Some(v6) => {
                let (host, after) = v6.split_once(']')?;
                (host, after.strip_prefix(':'))
            }
            None => match authority.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            },
        };
        let port = match port {
            Some(p) => p.parse().ok()?,
            None => 25,
        };
        let name = path.trim_matches('/');
        if host.is_empty() {
            return None;
        }
        Some(Relay {
            host: host.to_string(),
            port,
            hello: if name.is_empty() {
                ClientId::default()
            } else {
                ClientId::Domain(name.to_string())
            },
        })
    }

    /// The relay of `[email]`, if its URL is a plain relay's and no credentials are set
    /// (lettre's transport authenticates).
    fn of(cfg: &Config) -> Option<Relay> {
        let e = cfg.email.as_ref()?;
        if e.username.is_some() {
            return None;
        }
        Relay::from_url(&expand_env(&e.smtp_url).ok()?)
    }

    async fn send(&self, m: &Message) -> Result<(), String> {
        let tcp = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| format!("Connection error: {e}"))?;
        tcp.set_nodelay(true)
            .map_err(|e| format!("Connection error: {e}"))?;
        let mut conn = AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &self.hello)
            .await
            .map_err(|e| e.to_string())?;
        let sent = conn.send(m.envelope(), &m.formatted()).await;
        conn.abort().await;
        sent.map(|_| ()).map_err(|e| e.to_string())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notice::{Kind, Plan};

    /// Only a plain relay's URL is spoken to directly; the port and EHLO name as lettre
    /// reads them.
    #[test]
    fn a_plain_relay_is_read_from_its_url() {
        let relay = |host: &str, port, hello: Option<&str>| Relay {
            host: host.into(),
            port,
            hello: hello.map_or_else(ClientId::default, |h| ClientId::Domain(h.into())),
        };
        for (url, want) in [
            (
                "smtp://127.0.0.1:2525",
                Some(relay("127.0.0.1", 2525, None)),
            ),
            (
                "smtp://mail.example.org",
                Some(relay("mail.example.org", 25, None)),
            ),
            (
                "smtp://mail.example.org/",
                Some(relay("mail.example.org", 25, None)),
            ),
            (
                "smtp://[::1]:2525/yingji.example.org",
                Some(relay("::1", 2525, Some("yingji.example.org"))),
            ),
            ("smtp://[::1]", Some(relay("::1", 25, None))),
            ("smtps://mail.example.org", None),
            ("smtp://mail.example.org?tls=required", None),
            ("smtp://mail.example.org:587?tls=opportunistic", None),
            ("smtp://user:pw@mail.example.org", None),
            ("smtp://mail.example.org:smtp", None),
            ("smtp://mail.example.org:99999", None),
            ("smtp://", None),
            ("smtp://:25", None),
            ("smtp://m%61il.example.org", None),
            ("SMTP://mail.example.org", None),
        ] {
            assert_eq!(Relay::from_url(url), want, "{url}");
        }
        let cfg = |extra: &str| {
            Config::from_toml(&format!(
                "[email]\nsmtp_url = \"smtp://127.0.0.1:2525\"\nfrom = \"y <y@x.org>\"\n{extra}"
            ))
            .unwrap()
            .config
        };
        assert_eq!(Relay::of(&cfg("")), Some(relay("127.0.0.1", 2525, None)));
        assert_eq!(
            Relay::of(&cfg("username = \"duty\"\npassword = \"pw\"")),
            None
        );
    }

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
