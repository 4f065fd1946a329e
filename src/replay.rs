//! `yingji replay`: scenario files on virtual time (CONTRACT.md "Scenario files").
//!
//! Streaming: lines are read and parsed [`BATCH`] at a time into reused buffers, payloads
//! borrowed from their lines, then fed to the engine in order, so a scenario of any size
//! runs in constant memory.

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

/// A scenario line read in one pass, its payload object parsed on the way (the usual
/// line): [`parse_line`] scans the payload as raw JSON and the engine then parses it a
/// second time. Only a line that reads cleanly this way is taken (fields as
/// [`parse_line`] reads them, unknown ones skipped, an object payload without a repeated
/// key); anything else (`None`) goes through [`parse_line`] and the engine's own parse,
/// which say what is wrong in their words.
struct FastLine<'a> {
    at: Ts,
    topic: &'a str,
    payload: FastPayload<'a>,
}

/// A payload as the fast read takes it: an object, parsed; anything else (a string
/// standing for the payload's bytes, say) is left to [`parse_line`].
enum FastPayload<'a> {
    Null,
    Object(crate::input::Parsed<'a>),
}

impl<'de> Deserialize<'de> for FastPayload<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(FastPayloadVisitor)
    }
}

struct FastPayloadVisitor;

impl<'de> serde::de::Visitor<'de> for FastPayloadVisitor {
    type Value = FastPayload<'de>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a payload object or null")
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(FastPayload::Null)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, a: A) -> Result<Self::Value, A::Error> {
        let d = serde::de::value::MapAccessDeserializer::new(a);
        crate::input::Parsed::deserialize(d).map(FastPayload::Object)
    }
}

/// The fields of a line as [`Line`] has them (a repeated one is refused there too).
struct FastFields<'a> {
    at: &'a str,
    topic: Option<&'a str>,
    payload: Option<FastPayload<'a>>,
    end: bool,
}

impl<'de> Deserialize<'de> for FastFields<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(FastFieldsVisitor)
    }
}

struct FastFieldsVisitor;

impl<'de> serde::de::Visitor<'de> for FastFieldsVisitor {
    type Value = FastFields<'de>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a scenario line")
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
        use serde::de::Error;
        let (mut at, mut topic, mut payload, mut end) = (None, None, None, None);
        while let Some(k) = a.next_key::<&'de str>()? {
            match k {
                "at" if at.is_none() => at = Some(a.next_value::<&'de str>()?),
                "topic" if topic.is_none() => topic = Some(a.next_value::<Option<&'de str>>()?),
                "payload" if payload.is_none() => payload = Some(a.next_value::<FastPayload>()?),
                "end" if end.is_none() => end = Some(a.next_value::<bool>()?),
                "at" | "topic" | "payload" | "end" => return Err(A::Error::custom("repeated")),
                _ => {
                    a.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        Ok(FastFields {
            at: at.ok_or_else(|| A::Error::custom("no at"))?,
            topic: topic.flatten(),
            payload: payload.filter(|p| !matches!(p, FastPayload::Null)),
            end: end.unwrap_or(false),
        })
    }
}

/// A message line read in one pass (see [`FastLine`]); `None` for anything else (an end
/// line, a malformed line, a payload that is not a clean object or string).
fn read_fast(text: &str) -> Option<FastLine<'_>> {
    let f: FastFields = serde_json::from_str(text).ok()?;
    if f.end {
        return None;
    }
    Some(FastLine {
        at: parse_ts(f.at).ok()?,
        topic: f.topic?,
        payload: f.payload?,
    })
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
    let cfg = Arc::clone(feed.engine.config());
    let mut batch = Batch::default();
    let mut lineno = 0usize;
    // The latest `at` read, and the latest fed (ticks of skipped lines report it).
    let (mut last, mut fed_at): (Option<Ts>, Option<Ts>) = (None, None);
    loop {
        // Read and parse up to BATCH lines (parsing reads no engine state), then feed
        // them: each phase's code stays in the instruction cache for a whole batch.
        let eof = batch.fill(&mut reader, name, &cfg, &mut lineno, &mut last);
        for (i, item) in batch.items.drain(..).enumerate() {
            match item {
                Item::Skip { n } => feed.tick(n, false, fed_at),
                Item::Parsed { n, at, topic, msg } => {
                    feed.parsed(at, &batch.bufs[i][topic], msg);
                    fed_at = Some(at);
                    feed.tick(n, true, fed_at);
                }
                Item::Line { n } => {
                    let text = line_text(&batch.bufs[i]);
                    let ev = parse_line(text).expect("read before");
                    let is_message = matches!(ev, Event::Message { .. });
                    fed_at = Some(ev.at());
                    feed.event(ev);
                    feed.tick(n, is_message, fed_at);
                }
                Item::Bad(e) => return Err(e),
            }
        }
        if eof {
            return Ok(feed.stats);
        }
    }
}

/// Lines read and parsed ahead of the engine, in their order.
#[derive(Default)]
struct Batch {
    bufs: Vec<String>,
    items: Vec<Item>,
}

/// One line of a batch (`n`: its bytes, for the progress display).
enum Item {
    /// Blank or a comment.
    Skip { n: usize },
    /// A message line read in one pass ([`read_fast`]) and its payload parsed (`topic`:
    /// where the topic is in the line).
    Parsed {
        n: usize,
        at: Ts,
        topic: std::ops::Range<usize>,
        msg: Result<crate::input::Message, Rejection>,
    },
    /// Any other line: read again by [`parse_line`] when it is fed.
    Line { n: usize },
    /// The replay stops here, after the lines before it were fed.
    Bad(ScenarioError),
}

/// Lines per batch.
const BATCH: usize = 128;

/// A line without its surrounding blanks and a byte-order mark (editors on Windows add
/// one to the first line).
fn line_text(buf: &str) -> &str {
    buf.trim().trim_start_matches('\u{feff}')
}

impl Batch {
    /// Reads up to [`BATCH`] lines; `true` at the end of the input, or at a line (or a
    /// read error) that stops the replay, which is then the batch's last item.
    fn fill<R: BufRead>(
        &mut self,
        reader: &mut R,
        name: &str,
        cfg: &Config,
        lineno: &mut usize,
        last: &mut Option<Ts>,
    ) -> bool {
        let max_payload = cfg.limits.max_payload_bytes;
        let bad = |line, message: String| ScenarioError::Bad {
            file: name.to_string(),
            line,
            message,
        };
        for i in 0..BATCH {
            if self.bufs.len() <= i {
                self.bufs.push(String::new());
            }
            let buf = &mut self.bufs[i];
            buf.clear();
            let n = match reader.read_line(buf) {
                Ok(n) => n,
                // After the lines before it are fed, as a line that stops the replay.
                Err(source) => {
                    self.items.push(Item::Bad(ScenarioError::Io {
                        file: name.to_string(),
                        source,
                    }));
                    return true;
                }
            };
            if n == 0 {
                return true;
            }
            *lineno += 1;
            let text = line_text(buf);
            if text.is_empty() || text.starts_with("//") {
                self.items.push(Item::Skip { n });
                continue;
            }
            // The payload's bytes are part of the line: a line within the limit cannot
            // carry a payload over it, so the payload's exact length is not needed.
            let fast = (text.len() <= max_payload)
                .then(|| read_fast(text))
                .flatten();
            let (at, item) = match fast {
                Some(FastLine {
                    at,
                    topic,
                    payload: FastPayload::Object(p),
                }) => {
                    let msg = crate::input::parse_parsed(cfg, topic, &p.with_bound(text.len()), at);
                    let from = topic.as_ptr() as usize - buf.as_ptr() as usize;
                    let topic = from..from + topic.len();
                    (at, Item::Parsed { n, at, topic, msg })
                }
                _ => match parse_line(text) {
                    Ok(ev) => (ev.at(), Item::Line { n }),
                    Err(m) => {
                        self.items.push(Item::Bad(bad(*lineno, m)));
                        return true;
                    }
                },
            };
            if let Some(prev) = last.filter(|prev| at < *prev) {
                let m = format!(
                    "at {} is earlier than the previous line's {}",
                    fmt_ts(at),
                    fmt_ts(prev)
                );
                self.items.push(Item::Bad(bad(*lineno, m)));
                return true;
            }
            *last = Some(at);
            self.items.push(item);
        }
        false
    }
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
                let step = self.engine.ingest(at, &topic, &payload);
                self.message(at, step);
            }
        }
    }

    /// A message line read in one pass (its payload parsed ahead): the same as
    /// [`Feed::event`] does for a message, without parsing the payload again.
    fn parsed(&mut self, at: Ts, topic: &str, msg: Result<crate::Message, Rejection>) {
        if let Some(r) = self.watch.timeline.as_deref_mut() {
            r.saw(at);
        }
        let step = self.engine.ingest_checked(at, topic, msg);
        self.message(at, step);
    }

    fn message(&mut self, at: Ts, step: crate::engine::Step) {
        self.stats.messages += 1;
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

    /// A line read in one pass (the limit: 200 bytes), into a fresh engine.
    fn fast_step(cfg: &Arc<Config>, line: &str) -> Option<crate::engine::Step> {
        let mut e = Engine::new(Arc::clone(cfg));
        let f = (line.len() <= 200).then(|| read_fast(line)).flatten()?;
        let FastPayload::Object(p) = f.payload else {
            panic!("no null payload")
        };
        let msg = crate::input::parse_parsed(cfg, f.topic, &p.with_bound(line.len()), f.at);
        Some(e.ingest_checked(f.at, f.topic, msg))
    }

    /// A line read by `parse_line`, its payload parsed from bytes, into a fresh engine.
    fn slow_step(cfg: &Arc<Config>, line: &str) -> crate::engine::Step {
        let mut e = Engine::new(Arc::clone(cfg));
        match parse_line(line).unwrap() {
            Event::Message { at, topic, payload } => e.ingest(at, &topic, &payload),
            Event::End { .. } => panic!("a message line"),
        }
    }

    /// A line read in one pass gives the engine the same step as the same line read by
    /// `parse_line` with its payload parsed from bytes; a line the one-pass read does not
    /// take cleanly (escapes in a field, a repeated key, a payload that is not an object
    /// or a string, a positional line) is left to `parse_line`.
    #[test]
    fn a_line_read_in_one_pass_is_the_line_read_in_two() {
        let cfg = Arc::new(
            Config::from_toml("[limits]\nmax_payload_bytes = 200\n")
                .unwrap()
                .config,
        );
        let at = r#""at": "2023-12-01T08:05:00+08:00""#;
        let aqi = r#""topic": "ers/shuozhou/air/aqi""#;
        let taken = [
            format!(
                r#"{{{at}, {aqi}, "payload": {{"ts": "2023-12-01T08:00:00+08:00", "aqi": 250, "primary": ["PM2.5"]}}}}"#
            ),
            format!(
                r#"{{"payload": {{"ts": "2023-12-01T08:00:00+08:00", "aqi": 50.5, "so2": 3e2}}, "x": [1, {{"y": null}}], {aqi}, {at}, "end": false}}"#
            ),
            format!(
                r#"{{{at}, {aqi}, "payload": {{"ts": "2023-12-01T08:00:00+08:00", "aqi": "50"}}}}"#
            ),
            format!(
                r#"{{{at}, {aqi}, "payload": {{"ts": "2023-12-01T08:00:00+08:00", "a\u0071i": 50}}}}"#
            ),
            format!(r#"{{{at}, "topic": "ers/nowhere/air/aqi", "payload": {{}}}}"#),
            format!(r#"{{{at}, "topic": "ers/shuozhou/air/nothing", "payload": {{"a": 1}}}}"#),
            format!(
                r#"{{{at}, {aqi}, "payload": {{"ts": "2023-12-01T08:00:00+08:00", "aqi": 50, "primary": "smoke"}}}}"#
            ),
            format!(
                r#"{{{at}, {aqi}, "payload": {{"ts": "2023-12-01T08:00:00+08:00", "aqi": 50, "pad": "{}"}}}}"#,
                "x".repeat(60)
            ),
        ];
        let left = [
            format!(
                r#"{{{at}, {aqi}, "payload": "{{\"ts\": \"2023-12-01T08:00:00+08:00\", \"aqi\": 60}}"}}"#
            ),
            format!(r#"{{{at}, {aqi}, "payload": "{{not json"}}"#),
            format!(r#"{{{at}, {aqi}, "payload": "{{\"aqi\": 1, \"aqi\": 2}}"}}"#),
            format!(
                r#"{{{at}, {aqi}, "payload": {{"ts": "2023-12-01T08:00:00+08:00", "aqi": 50, "aqi": 500}}}}"#
            ),
            format!(r#"{{{at}, {aqi}, "payload": [1, 2]}}"#),
            format!(r#"{{{at}, {aqi}, "payload": 7}}"#),
            format!(r#"{{{at}, {aqi}, "payload": {{"aqi": 1}}, "topic": "x"}}"#),
            format!(
                r#"{{"\u0061t": "2023-12-01T08:05:00+08:00", {aqi}, "payload": {{"aqi": 1}}}}"#
            ),
            r#"["2023-12-01T08:05:00+08:00", "ers/shuozhou/air/aqi", {"aqi": 1}]"#.to_string(),
            format!(
                r#"{{{at}, {aqi}, "payload": {{"ts": "2023-12-01T08:00:00+08:00", "aqi": 50, "pad": "{}"}}}}"#,
                "x".repeat(200)
            ),
        ];
        for line in &taken {
            let fast = fast_step(&cfg, line).unwrap_or_else(|| panic!("taken in one pass: {line}"));
            let slow = slow_step(&cfg, line);
            assert_eq!(fast.rejection, slow.rejection, "{line}");
            assert_eq!(fast.message, slow.message, "{line}");
            assert_eq!(fast.journal, slow.journal, "{line}");
        }
        for line in &left {
            assert!(
                fast_step(&cfg, line).is_none(),
                "left to parse_line: {line}"
            );
            // It is still a line (or an error) for parse_line.
            let _ = parse_line(line);
        }
    }

    /// Lines are parsed in batches ahead of the engine, but a line that stops the replay
    /// still stops it only after every line before it was fed.
    #[test]
    fn lines_before_a_bad_line_are_fed() {
        let msg = r#"{"at": "2023-12-01T08:05:00+08:00", "topic": "ers/nowhere/air/aqi", "payload": {"aqi": 1}}"#;
        for bad in [
            "{\"at\": 1}",
            "{\"at\": \"2023-12-01T08:00:00+08:00\", \"end\": true}",
        ] {
            let s = format!("{msg}\n{msg}\n{bad}\n{msg}\n");
            let mut rejected = 0;
            let e = run_scenario(&cfg(), "s", s.as_bytes(), &mut |_| {}, &mut |_, _| {
                rejected += 1
            })
            .unwrap_err()
            .to_string();
            assert!(e.starts_with("s:3: "), "{e}");
            assert_eq!(rejected, 2, "the two lines before the bad one were fed");
        }
    }

    #[test]
    fn malformed_lines_are_errors() {
        assert!(parse_line(r#"{"topic": "t", "payload": {}}"#).is_err());
        assert!(parse_line(r#"{"at": "yesterday", "end": true}"#).is_err());
        assert!(parse_line(r#"{"at": "2023-12-01T08:05:00Z"}"#).is_err());
    }
}
