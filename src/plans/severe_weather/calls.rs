//! Rounds and the per-person call timeline (PLANS.md §3 "How a call proceeds"; §三, §四.2,
//! §四.3 of the original).
//!
//! With t0 the round's start, a = `ack_timeout_s`, r = `phone_retry_s`, n =
//! `phone_attempts`: attempt 1 by WeChat at t0; attempt k+1 by phone at t0 + a + (k−1)·r
//! for k = 1 … n; `call_unreached` at t0 + a + n·r. So after attempt m the next step is due
//! at t0 + a + (m−1)·r, whether it is attempt m+1 (m <= n) or `call_unreached` (m = n+1).

use std::collections::btree_map;

use chrono::Duration;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::register::{Entry, EntryKind};
use super::tracks::hazard_zh;
use super::{SevereWeather, Timer, DOC, MET_BUREAU};
use crate::config::{Config, Contact};
use crate::input::{Color, Warning};
use crate::levels::Tier;
use crate::notice::{Kind, Notice, Plan};
use crate::plans::cx::Cx;
use crate::time::{fmt_ts, Ts};

/// A call channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Wechat,
    Phone,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Wechat => "wechat",
            Channel::Phone => "phone",
        }
    }
    fn zh(self) -> &'static str {
        match self {
            Channel::Wechat => "微信",
            Channel::Phone => "电话",
        }
    }
}

/// Where a round stands: only an `escalate` (superseded) or a `terminate` (closed) ends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RoundStatus {
    Current,
    Superseded,
    Closed,
}

/// One person in one round.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonCall {
    pub person: String,
    pub tier: Tier,
    /// Name and unit when the round started (for the register).
    pub name: String,
    pub unit: String,
    /// Attempts made so far (1 = WeChat, 2.. = phone).
    pub attempts: u32,
    /// Channel of the latest attempt.
    pub channel: Option<Channel>,
    pub acked: bool,
    pub unreached: bool,
}

/// One round of calls.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Round {
    pub call_id: String,
    pub warning_id: String,
    pub number: u32,
    pub hazard: String,
    /// The colour the round started with (its `level` for ever).
    pub color: Color,
    pub extreme: bool,
    pub tiers: Vec<Tier>,
    pub t0: Ts,
    pub status: RoundStatus,
    /// The call's content (§三: situation, trend, warning service, risk, advice).
    pub content: String,
    /// In call order: tier A, B, C, each in file order.
    pub persons: Vec<PersonCall>,
}

/// A value given and not empty.
fn has(v: &Option<String>) -> bool {
    v.as_deref().is_some_and(|s| !s.trim().is_empty())
}

/// §四.2: attempt 1 by WeChat, the others by phone; a contact without WeChat gets a phone
/// call in its place, one without a phone a WeChat message (PLANS.md §3). A contact with
/// neither keeps the nominal channel (it cannot be reached; `check` reports it).
pub fn channel_for(c: Option<&Contact>, attempt: u32) -> Channel {
    let (wx, ph) = c.map_or((false, false), |c| (has(&c.wechat), has(&c.phone)));
    match attempt {
        1 if !wx && ph => Channel::Phone,
        1 => Channel::Wechat,
        _ if !ph && wx => Channel::Wechat,
        _ => Channel::Phone,
    }
}

/// Due time of the step after attempt `m` (see the module doc).
pub fn next_due(cfg: &Config, t0: Ts, m: u32) -> Ts {
    let w = &cfg.weather_call;
    let secs = w.ack_timeout_s as i64 + i64::from(m.saturating_sub(1)) * w.phone_retry_s as i64;
    t0 + Duration::seconds(secs)
}

/// A person by name and unit, "张三(市应急管理局)"; never the contact id.
pub fn who(cfg: &Config, id: &str) -> String {
    match cfg.contact(id) {
        Some(c) if !c.name.is_empty() && !c.unit.is_empty() => format!("{}({})", c.name, c.unit),
        Some(c) if !c.name.is_empty() => c.name.clone(),
        Some(c) if !c.unit.is_empty() => format!("{}被叫应人", c.unit),
        _ => "被叫应人".to_string(),
    }
}

/// Who acknowledged: the person by name, "本人(确认链接)" for a click on the link.
fn by_zh(cfg: &Config, by: &str, person: &str) -> String {
    match by {
        "" => who(cfg, person),
        "link" => "本人(确认链接)".to_string(),
        b if cfg.contact(b).is_some() => who(cfg, b),
        b => b.to_string(),
    }
}

/// §三: what the call says to a tier. A: the departments' responsible persons are told
/// the situation and reminded to take precautions (§三.1); B: the city leaders in charge
/// are reported the situation, the responses started and advice (§三.2); C: the top
/// leaders get a direct report of an extreme event (§三.3). "Responses started" are what
/// this round does: the tiers it calls, with their numbers. Every call asks for "收到".
fn tier_text(tier: Tier, round: &Round) -> String {
    let others: Vec<String> = [Tier::A, Tier::B, Tier::C]
        .into_iter()
        .filter(|t| *t != tier)
        .filter_map(|t| {
            let n = round.persons.iter().filter(|p| p.tier == t).count();
            (n > 0).then(|| format!("{}{n}人", t.called_zh()))
        })
        .collect();
    let started = if others.is_empty() {
        "已启动重大灾害性天气叫应服务。".to_string()
    } else {
        format!(
            "已启动重大灾害性天气叫应服务,同时叫应{}。",
            others.join("、")
        )
    };
    let ask = "收到后请回复“收到”。";
    match tier {
        Tier::A => format!(
            "{}叫应:{}请加强防范,按照职责做好本部门气象灾害叫应信息的再传播,组织做好相应防灾避险工作。{ask}",
            tier.caller_zh(),
            round.content
        ),
        Tier::B => format!(
            "{}报告:{}{started}防范建议:督促相关部门加强防范,组织做好防灾避险工作。{ask}",
            tier.caller_zh(),
            round.content
        ),
        Tier::C => format!(
            "{}直通式报告:当前出现极端{}天气,影响严重、情况紧急。{}{started}防范建议:统筹组织做好防灾避险工作。{ask}",
            tier.caller_zh(),
            hazard_zh(&round.hazard),
            round.content
        ),
    }
}

impl SevereWeather {
    /// The round a move at `color` starts (not yet recorded): contacts of the applicable
    /// tiers (A and B always, C when extreme, §三), in file order sorted by tier.
    pub(super) fn plan_round(
        &self,
        cx: &Cx,
        hz: &str,
        w: &Warning,
        color: Color,
        extreme: bool,
    ) -> Round {
        let mut tiers = vec![Tier::A, Tier::B];
        if extreme {
            tiers.push(Tier::C);
        }
        let mut persons = Vec::new();
        for t in &tiers {
            for c in cx.cfg.contacts.iter().filter(|c| c.tier == Some(*t)) {
                persons.push(PersonCall {
                    person: c.id.clone(),
                    tier: *t,
                    name: c.name.clone(),
                    unit: c.unit.clone(),
                    attempts: 0,
                    channel: None,
                    acked: false,
                    unreached: false,
                });
            }
        }
        let number = self.rounds_per_warning.get(&w.id).copied().unwrap_or(0) + 1;
        // §三: the situation — the warning as issued, its text (雨情, trend, risk).
        let content = format!(
            "{MET_BUREAU}于{}发布{}{}预警(编号 {}){}。",
            crate::time::time_zh(w.ts),
            hazard_zh(hz),
            color.name_zh(),
            w.id,
            w.text
                .as_deref()
                .map(|t| format!(",预警内容:{}", t.trim_end_matches('。')))
                .unwrap_or_default(),
        );
        Round {
            call_id: format!("{}/{number}", w.id),
            warning_id: w.id.clone(),
            number,
            hazard: hz.to_string(),
            color,
            extreme,
            tiers,
            t0: cx.now,
            status: RoundStatus::Current,
            content,
            persons,
        }
    }

    /// Records the round as its track's current one and makes every first attempt, in
    /// call order (their timers are armed in that order, so later steps keep it).
    pub(super) fn start_round(&mut self, cx: &mut Cx, round: Round) {
        let id = round.call_id.clone();
        self.rounds_per_warning
            .insert(round.warning_id.clone(), round.number);
        let track = self.tracks.entry(round.hazard.clone()).or_default();
        track.round = Some(id.clone());
        track.episode.push(id.clone());
        let round = match self.rounds.entry(id) {
            btree_map::Entry::Vacant(v) => v.insert(round),
            btree_map::Entry::Occupied(mut o) => {
                o.insert(round);
                o.into_mut()
            }
        };
        for i in 0..round.persons.len() {
            let line = attempt(cx, round, i);
            self.register.push(line);
        }
    }

    /// Ends the track's current round: cancels its pending calls (attempts and unreached).
    pub(super) fn end_current_round(&mut self, cx: &mut Cx, hz: &str, status: RoundStatus) {
        let Some(id) = self.tracks.get_mut(hz).and_then(|t| t.round.take()) else {
            return;
        };
        let round = self.rounds.get_mut(&id);
        debug_assert!(
            round.is_some(),
            "a track's current round {id} is a known round"
        );
        let Some(round) = round else { return };
        round.status = status;
        for p in &round.persons {
            cx.cancel(Timer::Call {
                call_id: id.clone(),
                person: p.person.clone(),
            });
        }
    }

    /// A call timer: the next phone attempt, or `call_unreached` after the last one.
    pub(super) fn on_call_timer(&mut self, cx: &mut Cx, id: &str, person: &str) {
        let Some(round) = self.rounds.get_mut(id) else {
            return;
        };
        if round.status != RoundStatus::Current {
            return;
        }
        let Some(i) = round.persons.iter().position(|p| p.person == person) else {
            return;
        };
        let p = &round.persons[i];
        if p.acked || p.unreached {
            return;
        }
        let line = if p.attempts <= cx.cfg.weather_call.phone_attempts {
            attempt(cx, round, i)
        } else {
            unreached(cx, round, i)
        };
        self.register.push(line);
    }

    /// §四.3 / PLANS.md §3: an ack. Refused (no state change) when the call id was never
    /// issued or the person is not in that round.
    pub(super) fn on_ack(
        &mut self,
        cx: &mut Cx,
        id: &str,
        person: &str,
        by: Option<&str>,
    ) -> Result<(), String> {
        let Some(round) = self.rounds.get_mut(id) else {
            return Err(format!("no call {id:?} was issued (叫应编号不存在)"));
        };
        let Some(i) = round.persons.iter().position(|p| p.person == person) else {
            return Err(format!(
                "{person:?} was not called in {id:?} (该轮叫应无此对象)"
            ));
        };
        let p = &round.persons[i];
        let by = by.filter(|b| !b.is_empty()).unwrap_or(person).to_string();
        let (current, duplicate, late) =
            (round.status == RoundStatus::Current, p.acked, p.unreached);
        let kind = EntryKind::Ack {
            by: by.clone(),
            duplicate,
            late,
            round_status: round.status,
        };
        self.register.push(Entry::new(cx.now, id, person, kind));
        if !current || duplicate {
            // A second ack, or one for a superseded or closed round: recorded only.
            return Ok(());
        }
        ack_current(cx, round, i, &by);
        Ok(())
    }
}

/// A notice about one person of a round, with the five call fields of the contract
/// (`call_id`, `person`, `channel`, `attempt`: the person's attempts so far, `text`)
/// set in this one place.
fn call_notice(
    round: &Round,
    p: &PersonCall,
    kind: Kind,
    ch: Channel,
    text: Option<String>,
) -> Notice {
    let mut n = Notice::new(
        Plan::SevereWeather,
        &round.hazard,
        kind,
        round.color.as_str(),
    );
    n.call_id = Some(round.call_id.clone());
    n.person = Some(p.person.clone());
    n.channel = Some(ch.as_str().to_string());
    n.attempt = Some(p.attempts);
    n.text = text;
    n
}

/// Clause and reason of a person's latest attempt: the first names who calls the tier
/// (§三), the others are the retries of §四.2.
fn attempt_words(cfg: &Config, round: &Round, p: &PersonCall, ch: Channel) -> (String, String) {
    let k = p.attempts;
    if k == 1 {
        (
            format!("{DOC} {}; {DOC} §四.2", p.tier.clause()),
            format!(
                "{}通过{}叫应{},请及时回应",
                p.tier.caller_zh(),
                ch.zh(),
                who(cfg, &p.person)
            ),
        )
    } else {
        (
            format!("{DOC} §四.2"),
            format!(
                "{}于{}叫应后未回应,第{}次叫应,通过{}继续叫应(第{}次电话叫应)",
                who(cfg, &p.person),
                crate::time::time_zh(round.t0),
                k,
                ch.zh(),
                k - 1
            ),
        )
    }
}

/// Makes the next attempt of person `i` of `round` and arms the step after it; returns
/// its register line.
fn attempt(cx: &mut Cx, round: &mut Round, i: usize) -> Entry {
    let p = &mut round.persons[i];
    debug_assert!(
        round.status == RoundStatus::Current && !p.acked && !p.unreached,
        "no attempt after an ack, `call_unreached` or the round's end (PLANS.md §3)"
    );
    p.attempts += 1;
    let k = p.attempts;
    let ch = channel_for(cx.cfg.contact(&p.person), k);
    p.channel = Some(ch);
    let p = &round.persons[i];
    let due = next_due(cx.cfg, round.t0, k);
    let nominal = if k == 1 {
        Channel::Wechat
    } else {
        Channel::Phone
    };
    let (clause, reason) = attempt_words(cx.cfg, round, p, ch);
    let n = call_notice(round, p, Kind::Call, ch, Some(tier_text(p.tier, round)))
        .clause(clause)
        .authority(p.tier.caller_zh())
        .reason(reason)
        .evidence(json!({
            "tier": p.tier, "round_start": fmt_ts(round.t0), "substituted": ch != nominal,
            "next_step_due": fmt_ts(due), "warning_id": round.warning_id,
        }))
        .recipients(vec![p.person.clone()]);
    cx.emit(n);
    cx.arm(
        Timer::Call {
            call_id: round.call_id.clone(),
            person: p.person.clone(),
        },
        due,
    );
    let kind = EntryKind::Attempt {
        attempt: k,
        channel: ch,
    };
    Entry::new(cx.now, &round.call_id, &p.person, kind)
}

/// Who is told when a person is not reached (§四.2 "确保叫应到位"): `escalate_to`, then
/// the person's backup.
fn told(cfg: &Config, person: &str) -> Vec<String> {
    let mut to = cfg.weather_call.escalate_to.clone();
    if let Some(b) = cfg.contact(person).and_then(|c| c.backup.clone()) {
        if !to.contains(&b) {
            to.push(b);
        }
    }
    to
}

/// §四.2 "确保叫应到位": after the last phone attempt, `escalate_to` and the backup;
/// returns the register line.
fn unreached(cx: &mut Cx, round: &mut Round, i: usize) -> Entry {
    debug_assert!(
        round.status == RoundStatus::Current
            && !round.persons[i].acked
            && !round.persons[i].unreached,
        "`call_unreached` once, before any ack, in a current round (PLANS.md §3)"
    );
    round.persons[i].unreached = true;
    let p = &round.persons[i];
    let to = told(cx.cfg, &p.person);
    let ch = p.channel.unwrap_or(Channel::Wechat);
    let reason = format!(
        "{}自{}起经{}次叫应(最后一次为{})仍未回应,叫应未到位;通报{}",
        who(cx.cfg, &p.person),
        crate::time::time_zh(round.t0),
        p.attempts,
        ch.zh(),
        if to.is_empty() {
            "(未配置通报对象)".to_string()
        } else {
            to.iter()
                .map(|t| who(cx.cfg, t))
                .collect::<Vec<_>>()
                .join("、")
        }
    );
    let n = call_notice(
        round,
        p,
        Kind::CallUnreached,
        ch,
        Some(round.content.clone()),
    )
    .clause(format!("{DOC} §四.2"))
    .authority(MET_BUREAU)
    .reason(reason)
    .evidence(json!({
        "tier": p.tier, "round_start": fmt_ts(round.t0), "attempts": p.attempts,
        "warning_id": round.warning_id,
    }))
    .recipients(to.clone());
    cx.emit(n);
    let kind = EntryKind::Unreached {
        attempt: p.attempts,
        channel: ch,
        told: to,
    };
    Entry::new(cx.now, &round.call_id, &p.person, kind)
}

/// Stops the person's pending calls and gives `call_ack`.
fn ack_current(cx: &mut Cx, round: &mut Round, i: usize, by: &str) {
    debug_assert!(
        round.status == RoundStatus::Current && !round.persons[i].acked,
        "`call_ack` once per person, in a current round (PLANS.md §3)"
    );
    round.persons[i].acked = true;
    let p = &round.persons[i];
    cx.cancel(Timer::Call {
        call_id: round.call_id.clone(),
        person: p.person.clone(),
    });
    let ch = p.channel.unwrap_or(Channel::Wechat);
    let after = if p.unreached {
        ",在叫应未到位通报之后"
    } else {
        ""
    };
    let reason = format!(
        "{}已回应叫应(第{}次叫应,{}){after},回应人{},停止后续叫应",
        who(cx.cfg, &p.person),
        p.attempts,
        ch.zh(),
        by_zh(cx.cfg, by, &p.person)
    );
    // A late ack goes to those told of the unreached call.
    let to = if p.unreached {
        told(cx.cfg, &p.person)
    } else {
        Vec::new()
    };
    let n = call_notice(round, p, Kind::CallAck, ch, None)
        .clause(format!("{DOC} §四.3"))
        .authority(MET_BUREAU)
        .reason(reason)
        .evidence(json!({
            "by": by, "round_start": fmt_ts(round.t0), "late": p.unreached,
            "seconds_after_start": (cx.now - round.t0).num_seconds(),
            "warning_id": round.warning_id,
        }))
        .recipients(to);
    cx.emit(n);
}
