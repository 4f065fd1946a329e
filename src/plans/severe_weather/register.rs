//! The call register (§四.5 "做好叫应服务的信息登记", PLANS.md §3 "The register"): every
//! attempt, channel, time and acknowledgement (who, when), kept in the plan state so it is
//! in every snapshot, and exported as CSV per event (the warning id).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Channel, RoundStatus, SevereWeather};
use crate::time::{fmt_ts, serde_ts, Ts};

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EntryKind {
    /// A call attempt (1 = WeChat, 2.. = phone).
    Attempt { attempt: u32, channel: Channel },
    /// `call_unreached` after the last attempt; `told` = its recipients.
    Unreached {
        attempt: u32,
        channel: Channel,
        told: Vec<String>,
    },
    /// An acknowledgement: who (the ack's `by`, else the person), whether it repeats an
    /// earlier one, comes after `call_unreached`, and the round's state when it came.
    Ack {
        by: String,
        duplicate: bool,
        late: bool,
        round_status: RoundStatus,
    },
}

/// One register line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    #[serde(with = "serde_ts")]
    pub at: Ts,
    pub call_id: String,
    pub person: String,
    pub kind: EntryKind,
}

impl Entry {
    pub(super) fn new(at: Ts, call_id: &str, person: &str, kind: EntryKind) -> Entry {
        Entry {
            at,
            call_id: call_id.to_string(),
            person: person.to_string(),
            kind,
        }
    }
}

const HEADER: &str = "time,event,call_id,round,hazard,level,person,name,unit,tier,record,\
attempt,channel,ack_by,duplicate,late,round_status,told,region";

/// The register of one event (all rounds of warning `event`) as CSV, in time order. An ack
/// row carries the attempt and channel of the person's last attempt before it (as
/// `call_ack` does, PLANS.md §3); the last column is the region.
pub fn to_csv(s: &SevereWeather, event: &str) -> Option<String> {
    if !s.rounds.values().any(|r| r.warning_id == event) {
        return None;
    }
    let mut out = String::from(HEADER);
    out.push('\n');
    // (call id, person) -> (attempt, channel) of the latest attempt so far.
    let mut last: BTreeMap<(&str, &str), (u32, Channel)> = BTreeMap::new();
    for e in &s.register {
        if let EntryKind::Attempt { attempt, channel } = e.kind {
            last.insert((&e.call_id, &e.person), (attempt, channel));
        }
        let Some(r) = s.rounds.get(&e.call_id) else {
            continue;
        };
        if r.warning_id != event {
            continue;
        }
        let (tier, name, unit) = r
            .persons
            .iter()
            .find(|p| p.person == e.person)
            .map_or(("", "", ""), |p| {
                (p.tier.as_str(), p.name.as_str(), p.unit.as_str())
            });
        let mut row = vec![
            fmt_ts(e.at),
            event.to_string(),
            e.call_id.clone(),
            r.number.to_string(),
            r.hazard.as_str().to_string(),
            r.color.as_str().to_string(),
            e.person.clone(),
            name.to_string(),
            unit.to_string(),
            tier.to_string(),
        ];
        row.extend(kind_fields(
            &e.kind,
            last.get(&(e.call_id.as_str(), e.person.as_str())).copied(),
        ));
        row.push(s.region.clone());
        let line: Vec<String> = row.iter().map(|f| quote(f)).collect();
        out.push_str(&line.join(","));
        out.push('\n');
    }
    Some(out)
}

/// record, attempt, channel, ack_by, duplicate, late, round_status, told; `last` = the
/// person's latest attempt (for ack rows).
fn kind_fields(k: &EntryKind, last: Option<(u32, Channel)>) -> Vec<String> {
    let s = |x: &str| x.to_string();
    match k {
        EntryKind::Attempt { attempt, channel } => vec![
            s("attempt"),
            attempt.to_string(),
            s(channel.as_str()),
            s(""),
            s(""),
            s(""),
            s(""),
            s(""),
        ],
        EntryKind::Unreached {
            attempt,
            channel,
            told,
        } => vec![
            s("unreached"),
            attempt.to_string(),
            s(channel.as_str()),
            s(""),
            s(""),
            s(""),
            s(""),
            told.join(" "),
        ],
        EntryKind::Ack {
            by,
            duplicate,
            late,
            round_status,
        } => vec![
            s("ack"),
            last.map_or(String::new(), |l| l.0.to_string()),
            s(last.map_or("", |l| l.1.as_str())),
            by.clone(),
            duplicate.to_string(),
            late.to_string(),
            s(match round_status {
                RoundStatus::Current => "current",
                RoundStatus::Superseded => "superseded",
                RoundStatus::Closed => "closed",
            }),
            s(""),
        ],
    }
}

/// RFC 4180 quoting where needed.
fn quote(f: &str) -> String {
    if f.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", f.replace('"', "\"\""))
    } else {
        f.to_string()
    }
}
