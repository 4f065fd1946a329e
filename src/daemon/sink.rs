//! Where a notice is delivered: the sinks of the outbox.
//!
//! Every notice goes into the outbox (store.rs) with one row per sink it needs
//! (`render::sinks`). A row is marked delivered once its sink confirmed the delivery; what
//! is still unmarked at a start is sent again, so a notice is never lost (it may go twice
//! after a power loss, with the same id: docs/daemon.md).
//!
//! Outside the process a sink is a string: the outbox's `sink` column, the echo proof (an
//! HMAC over `sink \0 id \0 payload`, echo.rs), logs and the console show
//! `mqtt:notice`, `mqtt:cap`, `email:{address}` and `webhook:{name}`. [`Sink`]'s `Display`
//! writes exactly that form and its `FromStr` reads it back, so a store written by an
//! earlier version reads the same and is written the same. Inside the daemon a sink is
//! this type, parsed once where it is read; a stored string this version does not know is
//! an [`UnknownSink`], which the reader logs and leaves where it is.

use std::fmt;
use std::str::FromStr;

/// One place a notice is delivered to. Each variant says what it delivers, where, and
/// what confirms the delivery (the outbox row is marked delivered then, never before).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Sink {
    /// The notice itself, one JSON line, on `{root}/{region}/notice/{plan}` (QoS 1, not
    /// retained), for every notice. Confirmed by the broker's PUBACK, or, for a
    /// publication whose PUBACK was lost to a restart, by the broker routing it back to
    /// this daemon together with its proof (echo.rs). Stored as `mqtt:notice`.
    Notice,
    /// The notice as a CAP 1.2 alert (XML) on `{root}/{region}/cap/{plan}` (QoS 1), for the
    /// kinds `render::carried` names (level moves, proposals, calls). Confirmed like
    /// [`Sink::Notice`]. Stored as `mqtt:cap`.
    Cap,
    /// An email (plain text and HTML, `render::subject` / `text_body` / `html_body`) to
    /// this address, over the SMTP server of `[email]`. Confirmed when the server accepted
    /// the message; retried with backoff until then (retry.rs). Stored as
    /// `email:{address}`.
    Email(String),
    /// A POST to the `[[webhook]]` of this name (its `name`, else `{kind}-{index}`: WeCom
    /// group robot, WeCom application, phone gateway or plain JSON). Confirmed by a 2xx
    /// answer (WeCom: with `errcode` 0); retried with backoff until then. Stored as
    /// `webhook:{name}`; a row naming a webhook no longer configured stays in the outbox.
    Webhook(String),
}

/// The two sinks published over MQTT: what the publisher sends (`outbound::Out::Tracked`)
/// and what an echo of our own publication confirms. `Copy`, so an echo carries it
/// without allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MqttSink {
    /// [`Sink::Notice`]: the JSON notice on the notice topic.
    Notice,
    /// [`Sink::Cap`]: the CAP alert on the CAP topic.
    Cap,
}

/// How a sink is reached: what a query of the pending deliveries selects
/// (`Store::pending`), the `sink` label of the delivery metrics, and the retry driver's
/// name in logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SinkKind {
    /// [`Sink::Notice`] and [`Sink::Cap`]: published by the MQTT output connection.
    Mqtt,
    /// [`Sink::Email`]: sent by the email retry driver.
    Email,
    /// [`Sink::Webhook`]: posted by the webhook retry driver.
    Webhook,
}

/// A stored sink string this version does not know (neither `mqtt:notice`, `mqtt:cap`,
/// `email:…` nor `webhook:…`): the string as it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownSink(pub String);

impl Sink {
    /// How this sink is reached.
    pub fn kind(&self) -> SinkKind {
        match self {
            Sink::Notice | Sink::Cap => SinkKind::Mqtt,
            Sink::Email(_) => SinkKind::Email,
            Sink::Webhook(_) => SinkKind::Webhook,
        }
    }

    /// The MQTT sink this is; `None` for an email or a webhook.
    pub fn mqtt(&self) -> Option<MqttSink> {
        match self {
            Sink::Notice => Some(MqttSink::Notice),
            Sink::Cap => Some(MqttSink::Cap),
            Sink::Email(_) | Sink::Webhook(_) => None,
        }
    }
}

impl MqttSink {
    /// The stored form (`mqtt:notice`, `mqtt:cap`), as [`Sink`]'s `Display` writes it.
    pub const fn as_str(self) -> &'static str {
        match self {
            MqttSink::Notice => "mqtt:notice",
            MqttSink::Cap => "mqtt:cap",
        }
    }
}

impl From<MqttSink> for Sink {
    fn from(s: MqttSink) -> Sink {
        match s {
            MqttSink::Notice => Sink::Notice,
            MqttSink::Cap => Sink::Cap,
        }
    }
}

impl SinkKind {
    /// Every kind.
    pub const ALL: [SinkKind; 3] = [SinkKind::Mqtt, SinkKind::Email, SinkKind::Webhook];

    /// The kind's name: `mqtt`, `email`, `webhook` (metrics label, logs).
    pub const fn as_str(self) -> &'static str {
        match self {
            SinkKind::Mqtt => "mqtt",
            SinkKind::Email => "email",
            SinkKind::Webhook => "webhook",
        }
    }

    /// How every stored sink of this kind begins: `mqtt:`, `email:`, `webhook:`.
    pub const fn prefix(self) -> &'static str {
        match self {
            SinkKind::Mqtt => "mqtt:",
            SinkKind::Email => "email:",
            SinkKind::Webhook => "webhook:",
        }
    }
}

impl fmt::Display for Sink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Sink::Notice => f.write_str(MqttSink::Notice.as_str()),
            Sink::Cap => f.write_str(MqttSink::Cap.as_str()),
            Sink::Email(address) => write!(f, "{}{address}", SinkKind::Email.prefix()),
            Sink::Webhook(name) => write!(f, "{}{name}", SinkKind::Webhook.prefix()),
        }
    }
}

impl fmt::Display for MqttSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for SinkKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Sink {
    type Err = UnknownSink;

    /// Reads the stored form back: exactly what `Display` writes, nothing else (an
    /// email's address and a webhook's name are taken as they are, whatever follows the
    /// prefix).
    fn from_str(s: &str) -> Result<Sink, UnknownSink> {
        if s == MqttSink::Notice.as_str() {
            Ok(Sink::Notice)
        } else if s == MqttSink::Cap.as_str() {
            Ok(Sink::Cap)
        } else if let Some(address) = s.strip_prefix(SinkKind::Email.prefix()) {
            Ok(Sink::Email(address.to_string()))
        } else if let Some(name) = s.strip_prefix(SinkKind::Webhook.prefix()) {
            Ok(Sink::Webhook(name.to_string()))
        } else {
            Err(UnknownSink(s.to_string()))
        }
    }
}

impl fmt::Display for UnknownSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown delivery sink {:?}", self.0)
    }
}

impl std::error::Error for UnknownSink {}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every variant, with the string an earlier version stored for it.
    fn every_sink() -> Vec<(Sink, &'static str)> {
        vec![
            (Sink::Notice, "mqtt:notice"),
            (Sink::Cap, "mqtt:cap"),
            (Sink::Email("duty@x.org".into()), "email:duty@x.org"),
            (Sink::Webhook("wecom-0".into()), "webhook:wecom-0"),
            (Sink::Webhook("值班群".into()), "webhook:值班群"),
        ]
    }

    #[test]
    fn every_sink_round_trips_through_its_stored_string() {
        for (sink, stored) in every_sink() {
            assert_eq!(sink.to_string(), stored);
            assert_eq!(stored.parse::<Sink>(), Ok(sink.clone()));
            assert_eq!(sink.to_string().parse::<Sink>(), Ok(sink.clone()));
            assert!(stored.starts_with(sink.kind().prefix()), "{stored}");
            if let Some(m) = sink.mqtt() {
                assert_eq!(Sink::from(m), sink);
                assert_eq!(m.as_str(), stored);
            }
        }
        for m in [MqttSink::Notice, MqttSink::Cap] {
            assert_eq!(Sink::from(m).to_string(), m.as_str());
            assert_eq!(Sink::from(m).mqtt(), Some(m));
            assert_eq!(Sink::from(m).kind(), SinkKind::Mqtt);
        }
    }

    #[test]
    fn what_follows_a_prefix_is_kept_as_it_is() {
        // A webhook named like another sink, an address with a colon: the prefix decides.
        for stored in ["webhook:mqtt:cap", "email:a:b@x.org", "email:", "webhook:"] {
            let sink: Sink = stored.parse().unwrap();
            assert_eq!(sink.to_string(), stored);
        }
        assert_eq!(
            "webhook:mqtt:cap".parse::<Sink>(),
            Ok(Sink::Webhook("mqtt:cap".into()))
        );
    }

    #[test]
    fn an_unknown_sink_is_an_error_naming_it() {
        for stored in [
            "mqtt:",
            "mqtt:notices",
            "mqtt:state",
            "sms:123",
            "",
            "Email:a@x",
            "notice",
        ] {
            let err = stored.parse::<Sink>().unwrap_err();
            assert_eq!(err, UnknownSink(stored.to_string()));
            assert!(err.to_string().contains(&format!("{stored:?}")), "{err}");
        }
    }

    #[test]
    fn kinds_name_their_metrics_label_and_prefix() {
        let got: Vec<_> = SinkKind::ALL
            .iter()
            .map(|k| (k.as_str(), k.prefix()))
            .collect();
        assert_eq!(
            got,
            [
                ("mqtt", "mqtt:"),
                ("email", "email:"),
                ("webhook", "webhook:")
            ]
        );
        for k in SinkKind::ALL {
            assert_eq!(k.to_string(), k.as_str());
        }
    }
}
