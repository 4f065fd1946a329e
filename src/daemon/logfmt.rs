//! Log output: text (default) or JSON lines, where no logged value can forge a line.
//!
//! Values come from outside (an ack link's `call_id`, a topic, an SMTP error): a newline
//! in one must not start a new log line, nor an escape sequence drive a terminal. The text
//! format escapes every control character (and the Unicode line separators) in every field
//! and in the message, `\n` -> `\\n`, others `\\u{..}`; JSON lines are escaped by serde.
//!
//! Secrets: the HTTP client (ureq) logs each request's URL at debug level, and a
//! webhook's URL carries its key in the query: its logs are capped at info, whatever
//! `RUST_LOG` says.

use std::io::Write;

use tracing_subscriber::field::MakeExt;
use tracing_subscriber::fmt::MakeWriter;

/// A value as it may appear in a log line: control characters escaped.
pub fn escape(s: &str) -> std::borrow::Cow<'_, str> {
    let bad = |c: char| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}');
    if !s.chars().any(bad) {
        return s.into();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if bad(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out.into()
}

/// The filter: `RUST_LOG` (default `info`, rumqttd off, rumqttc warnings), with the HTTP
/// client's request logs (URLs with keys) never below info.
pub fn filter() -> tracing_subscriber::EnvFilter {
    let f = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rumqttd=off,rumqttc=warn"));
    f.add_directive("ureq=info".parse().expect("valid directive"))
}

/// The subscriber writing to `w`: JSON lines with `json`, else escaped text.
pub fn subscriber<W>(
    json: bool,
    ansi: bool,
    utc: bool,
    w: W,
) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter())
        .with_timer(LogTime { utc })
        .with_ansi(ansi)
        .with_writer(w);
    if json {
        Box::new(b.json().flatten_event(true).finish())
    } else {
        let fields = tracing_subscriber::fmt::format::debug_fn(|w, field, value| {
            let v = format!("{value:?}");
            if field.name() == "message" {
                write!(w, "{}", escape(&v))
            } else {
                write!(w, "{}={}", field.name(), escape(&v))
            }
        })
        .delimited(" ");
        Box::new(b.fmt_fields(fields).finish())
    }
}

/// Log timestamps: the notices' time zone (+08:00) by default, UTC with `--utc-logs`.
struct LogTime {
    utc: bool,
}

impl tracing_subscriber::fmt::time::FormatTime for LogTime {
    fn format_time(&self, w: &mut tracing_subscriber::fmt::format::Writer<'_>) -> std::fmt::Result {
        let t = crate::clock::now();
        if self.utc {
            write!(w, "{}", t.naive_utc().format("%Y-%m-%dT%H:%M:%S%.3fZ"))
        } else {
            write!(w, "{}", t.format("%Y-%m-%dT%H:%M:%S%.3f%:z"))
        }
    }
}

/// A writer into shared memory (tests).
#[derive(Clone, Default)]
pub struct Buffer(pub std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("buffer").extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Buffer {
    type Writer = Buffer;
    fn make_writer(&'a self) -> Buffer {
        self.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 9 item 9: `GET /ack?call_id=x%0A<fake line>` wrote a forged ERROR line.
    #[test]
    fn a_forged_newline_makes_no_log_line() {
        for json in [false, true] {
            let buf = Buffer::default();
            let sub = subscriber(json, false, false, buf.clone());
            tracing::subscriber::with_default(sub, || {
                let call_id = "x\n2026-01-01T00:00:00Z ERROR yingji: forged\r\u{1b}[2J";
                tracing::warn!(%call_id, person = ?"p\nq", "ack link with a bad signature refused");
                tracing::warn!("message with {call_id}");
            });
            let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
            assert_eq!(text.lines().count(), 2, "json={json}: {text}");
            assert!(!text.contains('\u{1b}') && !text.contains('\r'), "{text:?}");
            assert!(text.contains("forged"), "the value is still there: {text}");
        }
    }
}
