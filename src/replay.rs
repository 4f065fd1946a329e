//! `yingji replay`: scenario files on virtual time (CONTRACT.md "Scenario files").
//!
//! Streaming: one line at a time into a reused buffer, payloads borrowed from the line,
//! so a scenario of any size runs in constant memory.

use std::borrow::Cow;
use std::io::{BufRead, Write};
use std::sync::Arc;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::config::Config;
use crate::engine::Engine;
use crate::input::Rejection;
use crate::notice::Notice;
use crate::time::{fmt_ts, parse_ts, Ts};
use crate::timeline::Recorder;

/// A scenario problem that stops the replay (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("{file}:{line}: {message}")]
    Bad {
        file: String,
        line: usize,
        message: String,
    },
    #[error("{file}: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
}

#[derive(Deserialize)]
struct Line<'a> {
    #[serde(borrow)]
    at: Cow<'a, str>,
    #[serde(borrow, default)]
    topic: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    payload: Option<&'a RawValue>,
    #[serde(default)]
    end: bool,
}

/// Counts of one replay.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub messages: u64,
    pub rejected: u64,
    pub notices: u64,
}

/// One scenario event, parsed.
pub enum Event<'a> {
    Message {
        at: Ts,
        topic: Cow<'a, str>,
        payload: Cow<'a, [u8]>,
    },
    End {
        at: Ts,
    },
}

/// Parses one non-comment scenario line.
pub fn parse_line(text: &str) -> Result<Event<'_>, String> {
    let line: Line = serde_json::from_str(text).map_err(|e| format!("not a scenario line: {e}"))?;
    let at = parse_ts(&line.at).map_err(|e| format!("at: {e}"))?;
    if line.end {
        return Ok(Event::End { at });
    }
    let topic = line
        .topic
        .ok_or("a line needs \"topic\" and \"payload\" (or \"end\": true)")?;
    let raw = line.payload.ok_or("a line needs \"payload\"")?;
    let payload: Cow<[u8]> = if raw.get().starts_with('"') {
        // A JSON string stands for the raw payload bytes (its UTF-8).
        let s: String = serde_json::from_str(raw.get()).map_err(|e| format!("payload: {e}"))?;
        Cow::Owned(s.into_bytes())
    } else {
        Cow::Borrowed(raw.get().as_bytes())
    };
    Ok(Event::Message { at, topic, payload })
}

/// What a replay tells a progress display: after each line, its size and whether it was
/// a message, and the virtual time reached.
#[derive(Debug, Clone, Copy)]
pub struct Tick {
    pub bytes: usize,
    pub message: bool,
    pub at: Option<Ts>,
}

/// A progress display of a replay (`yingji replay` on a terminal).
pub trait Progress {
    fn tick(&self, t: Tick);
    /// Prints a line on stderr without tearing the display.
    fn log(&self, line: &str);
}

/// What a replay feeds besides its notices and rejections, both optional: a progress
/// display, and the recorder of a timeline picture. Without them the replay does nothing
/// more than before.
#[derive(Default)]
pub struct Watch<'a> {
    pub progress: Option<&'a dyn Progress>,
    pub timeline: Option<&'a mut Recorder>,
}

/// Runs one scenario on a fresh engine; each notice goes to `sink`, each rejection to
/// `on_reject`.
pub fn run_scenario<R: BufRead>(
    cfg: &Arc<Config>,
    name: &str,
    reader: R,
    sink: &mut dyn FnMut(&Notice),
    on_reject: &mut dyn FnMut(Ts, &Rejection),
) -> Result<Stats, ScenarioError> {
    let mut engine = Engine::new(Arc::clone(cfg));
    feed_scenario(&mut engine, name, reader, sink, on_reject)
}

/// Feeds one scenario into an existing engine (its history goes on from the engine's
/// state); `at` may not go back before the scenario's previous line.
pub fn feed_scenario<R: BufRead>(
    engine: &mut Engine,
    name: &str,
    reader: R,
    sink: &mut dyn FnMut(&Notice),
    on_reject: &mut dyn FnMut(Ts, &Rejection),
) -> Result<Stats, ScenarioError> {
    feed_scenario_watched(engine, name, reader, sink, on_reject, &mut Watch::default())
}

/// [`feed_scenario`], telling `watch` about each line, accepted input and notice.
pub fn feed_scenario_watched<R: BufRead>(
    engine: &mut Engine,
    name: &str,
    mut reader: R,
    sink: &mut dyn FnMut(&Notice),
    on_reject: &mut dyn FnMut(Ts, &Rejection),
    watch: &mut Watch,
) -> Result<Stats, ScenarioError> {
    let mut feed = Feed {
        engine,
        sink,
        on_reject,
        watch,
        stats: Stats::default(),
    };
    let mut buf = String::new();
    let mut lineno = 0usize;
    let mut last: Option<Ts> = None;
    let bad = |line, message: String| ScenarioError::Bad {
        file: name.to_string(),
        line,
        message,
    };
    loop {
        buf.clear();
        let n = reader
            .read_line(&mut buf)
            .map_err(|source| ScenarioError::Io {
                file: name.to_string(),
                source,
            })?;
        if n == 0 {
            break;
        }
        lineno += 1;
        // A byte-order mark (editors on Windows add one) is not part of the first line.
        let text = buf.trim().trim_start_matches('\u{feff}');
        if text.is_empty() || text.starts_with("//") {
            feed.tick(n, false, last);
            continue;
        }
        let ev = parse_line(text).map_err(|m| bad(lineno, m))?;
        let at = ev.at();
        if let Some(prev) = last.filter(|prev| at < *prev) {
            let m = format!(
                "at {} is earlier than the previous line's {}",
                fmt_ts(at),
                fmt_ts(prev)
            );
            return Err(bad(lineno, m));
        }
        last = Some(at);
        let is_message = matches!(ev, Event::Message { .. });
        feed.event(ev);
        feed.tick(n, is_message, Some(at));
    }
    Ok(feed.stats)
}

impl Event<'_> {
    /// The line's `at`.
    pub fn at(&self) -> Ts {
        match self {
            Event::Message { at, .. } | Event::End { at } => *at,
        }
    }
}

/// One replay's engine and where its output goes.
struct Feed<'a, 'w> {
    engine: &'a mut Engine,
    sink: &'a mut dyn FnMut(&Notice),
    on_reject: &'a mut dyn FnMut(Ts, &Rejection),
    watch: &'a mut Watch<'w>,
    stats: Stats,
}

impl Feed<'_, '_> {
    /// An end line advances the clock; a message goes through the one ingest path.
    fn event(&mut self, ev: Event) {
        if let Some(r) = self.watch.timeline.as_deref_mut() {
            r.saw(ev.at());
        }
        match ev {
            Event::End { at } => {
                let notices = self.engine.advance_to(at);
                self.emit(&notices);
            }
            Event::Message { at, topic, payload } => {
                self.stats.messages += 1;
                let step = self.engine.ingest(at, &topic, &payload);
                self.emit(&step.notices);
                match (step.rejection, step.message) {
                    (Some(r), _) => {
                        self.stats.rejected += 1;
                        (self.on_reject)(at, &r);
                    }
                    (None, Some(msg)) => {
                        if let Some(rec) = self.watch.timeline.as_deref_mut() {
                            rec.input(self.engine.config(), at, &msg);
                        }
                    }
                    (None, None) => {}
                }
            }
        }
    }

    fn emit(&mut self, notices: &[Notice]) {
        for n in notices {
            (self.sink)(n);
            if let Some(r) = self.watch.timeline.as_deref_mut() {
                r.notice(n);
            }
        }
        self.stats.notices += notices.len() as u64;
    }

    fn tick(&self, bytes: usize, message: bool, at: Option<Ts>) {
        if let Some(p) = self.watch.progress {
            p.tick(Tick { bytes, message, at });
        }
    }
}

/// Runs scenario files one after another, each on a fresh engine, writing JSONL notices to
/// `out` and collecting them when `collect` is set (for `--expect`).
pub fn run_files(
    cfg: &Arc<Config>,
    files: &[std::path::PathBuf],
    out: &mut dyn Write,
    collect: Option<&mut Vec<Notice>>,
    log_rejections: bool,
) -> Result<Stats, ScenarioError> {
    run_files_watched(
        cfg,
        files,
        out,
        collect,
        log_rejections,
        &mut Watch::default(),
    )
}

/// [`run_files`] with a [`Watch`]; rejections are printed through its progress display
/// when it has one.
pub fn run_files_watched(
    cfg: &Arc<Config>,
    files: &[std::path::PathBuf],
    out: &mut dyn Write,
    collect: Option<&mut Vec<Notice>>,
    log_rejections: bool,
    watch: &mut Watch,
) -> Result<Stats, ScenarioError> {
    let progress = watch.progress;
    let mut total = Stats::default();
    let mut collected = collect;
    for f in files {
        let name = f.display().to_string();
        let file = std::fs::File::open(f).map_err(|source| ScenarioError::Io {
            file: name.clone(),
            source,
        })?;
        let reader = std::io::BufReader::with_capacity(1 << 16, file);
        let mut write_err: Option<std::io::Error> = None;
        let mut sink = |n: &Notice| {
            if write_err.is_none() {
                if let Err(e) = serde_json::to_writer(&mut *out, n)
                    .and_then(|_| out.write_all(b"\n").map_err(serde_json::Error::io))
                {
                    // Keep the kind: a reader that went away (BrokenPipe) is no error.
                    let kind = e.io_error_kind().unwrap_or(std::io::ErrorKind::Other);
                    write_err = Some(std::io::Error::new(kind, e));
                }
            }
            if let Some(c) = collected.as_deref_mut() {
                c.push(n.clone());
            }
        };
        let mut on_reject = |at: Ts, r: &Rejection| {
            if log_rejections {
                let line = format!("{name}: {}: {r}", fmt_ts(at));
                match progress {
                    Some(p) => p.log(&line),
                    None => eprintln!("{line}"),
                }
            }
        };
        let mut engine = Engine::new(Arc::clone(cfg));
        let s =
            feed_scenario_watched(&mut engine, &name, reader, &mut sink, &mut on_reject, watch)?;
        if let Some(e) = write_err {
            return Err(ScenarioError::Io {
                file: name,
                source: e,
            });
        }
        total.messages += s.messages;
        total.rejected += s.rejected;
        total.notices += s.notices;
    }
    Ok(total)
}

/// Runs a scenario given as text; returns its notices (tests and benches).
pub fn replay_str(cfg: &Arc<Config>, scenario: &str) -> Result<Vec<Notice>, ScenarioError> {
    let mut out = Vec::new();
    run_scenario(
        cfg,
        "<scenario>",
        scenario.as_bytes(),
        &mut |n| out.push(n.clone()),
        &mut |_, _| {},
    )?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> Arc<Config> {
        Arc::new(Config::from_toml("").unwrap().config)
    }

    #[test]
    fn rejected_and_irrelevant_input_makes_no_notice() {
        let s = r#"
// comments and blank lines are skipped

{"at": "2023-12-01T08:05:00+08:00", "topic": "ers/shuozhou/air/aqi", "payload": "{not json"}
{"at": "2023-12-01T08:06:00+08:00", "topic": "ers/nowhere/air/aqi", "payload": {"ts": "2023-12-01T08:00:00+08:00", "aqi": 50, "primary": null}}
{"at": "2023-12-01T08:07:00+08:00", "topic": "ers/shuozhou/weather/warning", "payload": {"ts": "2023-12-01T08:00:00+08:00", "id": "w1", "hazard": "fog", "color": "red", "action": "issue"}}
{"at": "2023-12-01T09:00:00+08:00", "end": true}
"#;
        assert!(replay_str(&cfg(), s).unwrap().is_empty());
    }

    #[test]
    fn at_going_backwards_is_an_error_naming_the_line() {
        let s = "{\"at\": \"2023-12-01T08:05:00+08:00\", \"end\": true}\n{\"at\": \"2023-12-01T08:04:00+08:00\", \"end\": true}\n";
        let e = replay_str(&cfg(), s).unwrap_err().to_string();
        assert!(e.contains(":2:") && e.contains("earlier"), "{e}");
    }

    #[test]
    fn string_payload_is_raw_bytes() {
        let ev =
            parse_line(r#"{"at": "2023-12-01T08:05:00Z", "topic": "t", "payload": "{\"a\":1}"}"#)
                .unwrap();
        match ev {
            Event::Message { payload, at, .. } => {
                assert_eq!(&*payload, br#"{"a":1}"#);
                assert_eq!(fmt_ts(at), "2023-12-01T16:05:00+08:00");
            }
            Event::End { .. } => panic!("not an end line"),
        }
        let ev =
            parse_line(r#"{"at": "2023-12-01T08:05:00Z", "topic": "t", "payload": {"a": [1, 2]}}"#)
                .unwrap();
        match ev {
            Event::Message { payload, .. } => assert_eq!(&*payload, br#"{"a": [1, 2]}"#),
            Event::End { .. } => panic!("not an end line"),
        }
    }

    #[test]
    fn a_byte_order_mark_is_ignored() {
        let s = "\u{feff}{\"at\": \"2023-12-01T08:05:00+08:00\", \"end\": true}\n";
        assert!(replay_str(&cfg(), s).unwrap().is_empty());
    }

    #[test]
    fn malformed_lines_are_errors() {
        assert!(parse_line(r#"{"topic": "t", "payload": {}}"#).is_err());
        assert!(parse_line(r#"{"at": "yesterday", "end": true}"#).is_err());
        assert!(parse_line(r#"{"at": "2023-12-01T08:05:00Z"}"#).is_err());
    }
}
