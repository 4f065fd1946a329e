//! The picture's data as CSV, unthinned, for a spreadsheet: one row per level run, mark,
//! hourly value, mean and stock reading, in that order of sections, each in time order.
//!
//! Columns: `time,until,series,track,level,value,text`; times are RFC 3339 in +08:00;
//! `until` is the end of a level run.

use std::fmt::Write as _;

use crate::time::{at_secs, fmt_ts};

use super::model::{MarkKind, Model, TRACKS};

const HEADER: &str = "time,until,series,track,level,value,text\n";

pub fn csv(m: &Model) -> String {
    let mut out = String::from(HEADER);
    let mut row = |t: i64,
                   until: Option<i64>,
                   series: &str,
                   track: &str,
                   level: &str,
                   value: &str,
                   text: &str| {
        let until = until.map(|u| fmt_ts(at_secs(u))).unwrap_or_default();
        let _ = writeln!(
            out,
            "{},{until},{series},{track},{level},{value},{}",
            fmt_ts(at_secs(t)),
            quote(text)
        );
    };
    for (i, runs) in m.bands.iter().enumerate() {
        for r in runs {
            row(
                r.from,
                Some(r.to),
                "level",
                TRACKS[i].track,
                &r.level,
                "",
                "",
            );
        }
    }
    for k in &m.marks {
        let series = match k.kind {
            MarkKind::Move => "move",
            MarkKind::Proposal => "proposal",
            MarkKind::Decision => "decision",
            MarkKind::Overdue => "report_overdue",
            MarkKind::Unreached => "call_unreached",
        };
        row(k.t, None, series, TRACKS[k.row].track, "", "", &k.title);
    }
    for h in &m.obs {
        row(h.t, None, "aqi", "", "", &num(h.value), &h.note);
    }
    for h in &m.fc {
        row(h.t, None, "aqi_forecast", "", "", &num(h.value), &h.note);
    }
    for &(t, v) in &m.m {
        row(t, None, "aqi_mean_24h", "", "", &num(v), "");
    }
    for (plant, pts) in &m.stock {
        for &(t, d) in pts {
            row(t, None, "stock_days", "", "", &num(d), plant);
        }
    }
    out
}

/// Shortest text that reads back as the same number.
fn num(v: f64) -> String {
    format!("{v}")
}

fn quote(f: &str) -> String {
    if f.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", f.replace('"', "\"\""))
    } else {
        f.to_string()
    }
}
