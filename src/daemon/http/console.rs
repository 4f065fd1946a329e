//! The duty console: server-rendered pages (maud), in Chinese, for the duty room's PC and
//! a phone. Live updates by server-sent events (`/events`; `/console.js` swaps the page's
//! `main` when the core's picture changes).
//!
//! Pages: 当前态势 `/` (levels per region and plan, open data gaps, health), 待决事项
//! `/decisions` (pending proposals; approve / reject / confirm for the role that decides,
//! plans/authority.rs), 叫应 `/calls` (rounds, who, channel, attempt, acknowledged;
//! acknowledge on someone's behalf), 落实情况 `/reports` (reports back received, overdue
//! units; enter a report that came by phone), 历史 `/history` (notices of a period with
//! their full text, a call register as CSV, the journal of a period as a scenario file).
//!
//! Every action is the command it is (`approve`, `reject`, `confirm`, `ack`, `report`,
//! with `by` = the operator) handed to the core like an MQTT command: journaled, so replay
//! reproduces it. A decision by an operator without the role is refused here with the
//! reason and reaches nothing. Without `[[operator]]` every page is read-only.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Form, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::json;

use super::page::{frame, message, respond};
use super::session::{Session, Sessions};
use super::AppState;
use crate::daemon::metrics::{self, METRICS};
use crate::daemon::store::Store;
use crate::daemon::{render, ConsoleCmd, CoreEvent};
use crate::notice::{Kind, Notice, Plan};
use crate::plans::authority::{decider, role_zh};
use crate::plans::severe_weather::{warning_zh, RoundStatus};
use crate::time::Ts;
use crate::wording::{Level, Said};

/// How long an action waits for the core.
const CORE_WAIT: Duration = Duration::from_secs(15);

/// "2023年12月1日 09:00".
pub fn zh_time(t: Ts) -> String {
    t.format("%Y年%-m月%-d日 %H:%M").to_string()
}

/// A track's level as its plan names it (二级预警, 橙色预警, 臭氧重污染天气预警, 暴雨红色预警,
/// 无预警; crate::wording::Level); a code no plan has is shown as it is.
pub fn level_zh(plan: Plan, track: &str, level: &str) -> String {
    Level::parse(plan, track, level).map_or_else(|| level.to_string(), |l| l.name_zh())
}

/// The level of a track of the state view, in words.
fn track_level_zh(t: &crate::daemon::view::TrackView) -> String {
    Plan::parse(&t.plan).map_or_else(|| t.level.clone(), |p| level_zh(p, &t.track, &t.level))
}

/// The colour a track's level is shown in: the plan's level, not its code.
fn level_class(t: &crate::daemon::view::TrackView) -> &'static str {
    use crate::input::Color;
    use crate::plans::coal_supply::Level as Coal;
    use crate::plans::heavy_pollution::types::Lv;
    let level = Plan::parse(&t.plan).and_then(|p| Level::parse(p, &t.track, &t.level));
    match level {
        Some(Level::Coal(Coal::L1) | Level::Pollution(Lv::Red) | Level::Weather(_, Color::Red)) => {
            "lv-red"
        }
        Some(
            Level::Coal(Coal::L2) | Level::Pollution(Lv::Orange) | Level::Weather(_, Color::Orange),
        ) => "lv-orange",
        Some(Level::Pollution(Lv::Yellow) | Level::Weather(_, Color::Yellow)) => "lv-yellow",
        Some(Level::Weather(_, Color::Blue)) => "lv-blue",
        _ => "muted",
    }
}

/// A track in words.
pub fn track_zh(track: &str) -> &'static str {
    match track {
        "supply" => "煤炭供应",
        "graded" => "分级预警",
        "ozone" => "臭氧",
        "so2" => "二氧化硫",
        t => crate::input::Hazard::parse(t).name_zh(),
    }
}

fn plan_zh(plan: &str) -> &'static str {
    Plan::parse(plan).map_or("其他", Plan::name_zh)
}

fn region_zh(app: &AppState, id: &str) -> String {
    app.cfg
        .regions
        .iter()
        .find(|r| r.id == id)
        .map(|r| {
            if r.name.is_empty() {
                r.id.clone()
            } else {
                r.name.clone()
            }
        })
        .unwrap_or_else(|| id.to_string())
}

/// An operator's name for an id in a record (the id itself when not an operator).
fn operator_name(app: &AppState, id: &str) -> String {
    app.cfg
        .operators
        .iter()
        .find(|o| o.id == id)
        .map_or_else(|| id.to_string(), |o| o.name.clone())
}

fn roles_zh(s: &Session) -> String {
    s.operator
        .roles
        .iter()
        .map(|r| role_zh(r))
        .collect::<Vec<_>>()
        .join("、")
}

/// The navigation bar: pages, who is logged in, log in / out.
fn nav(app: &AppState, s: Option<&Session>) -> Markup {
    html! {
        nav {
            strong { "应急值守" }
            a href="./" { "当前态势" }
            a href="decisions" { "待决事项" }
            a href="calls" { "叫应" }
            a href="reports" { "落实情况" }
            a href="history" { "历史" }
            span.who {
                @if let Some(s) = s {
                    (s.operator.name) "（" (roles_zh(s)) "） "
                    form method="post" action="logout" style="display:inline" {
                        input type="hidden" name="csrf" value=(s.csrf);
                        button type="submit" { "退出" }
                    }
                } @else if app.sessions.enabled() {
                    a href="login" { "登录" }
                } @else {
                    span { "只读（未配置值班人员）" }
                }
            }
        }
    }
}

/// A console page with the live-update script.
fn page(app: &AppState, s: Option<&Session>, title: &str, body: Markup) -> Response {
    let body = html! {
        (body)
        script src="console.js" {}
    };
    respond(StatusCode::OK, frame(title, Some(nav(app, s)), body))
}

#[derive(Deserialize, Default)]
pub struct Flash {
    msg: Option<String>,
    err: Option<String>,
}

fn flash(f: &Flash) -> Markup {
    html! {
        @if let Some(m) = &f.msg { p.ok.card { (m) } }
        @if let Some(e) = &f.err { p.bad.card { (e) } }
    }
}

/// 当前态势.
pub async fn now(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(f): Query<Flash>,
) -> Response {
    let s = app.sessions.current(&headers);
    let v = app.view.borrow().clone();
    let m = &*METRICS;
    let health = [
        ("MQTT 输入", metrics::is_set(&m.mqtt_in_up)),
        ("MQTT 输出", metrics::is_set(&m.mqtt_out_up)),
        ("存储与恢复", v.live && metrics::is_set(&m.live)),
    ];
    let broker = if app.cfg.mqtt.is_some() {
        "外部 MQTT 服务器"
    } else {
        "内置 MQTT 服务器"
    };
    let body = html! {
        (flash(&f))
        h1 { "当前态势" }
        @if let Some(t) = v.now { p.muted { "系统时间：" (zh_time(t)) } }
        h2 { "运行状况" }
        p {
            (broker) "；"
            @for (name, ok) in health {
                (name) "："
                @if ok { span.ok { "正常" } } @else { span.bad { "异常" } }
                "　"
            }
        }
        @for r in &app.cfg.regions {
            h2 { (region_zh(&app, &r.id)) }
            div.wrap { table {
                tr { th { "预案" } th { "类别" } th { "当前级别" } th { "起始时间" } th { "依据" } th { "最近通知" } }
                @for t in v.tracks.iter().filter(|t| t.region == r.id) {
                    tr {
                        td { (plan_zh(&t.plan)) }
                        td { (track_zh(&t.track)) }
                        td class=(level_class(t)) { (track_level_zh(t)) }
                        td { @if let Some(s) = t.since { (zh_time(s)) } }
                        td { (t.clause) }
                        td { a href={ "notice?id=" (pct(&t.last.id)) } { (Said::of(&t.last).kind_zh()) } " " (zh_time(t.last.at)) }
                    }
                }
            } }
            @let gaps: Vec<_> = v.gaps.iter().filter(|g| g.region == r.id).collect();
            h2 { "数据中断" }
            @if gaps.is_empty() { p.muted { "无" } }
            @for g in gaps {
                p.bad { (plan_zh(g.plan.as_str())) "：" (g.reason) "（" (zh_time(g.at)) "）" }
            }
        }
    };
    page(&app, s.as_ref(), "当前态势", body)
}

/// 待决事项.
pub async fn decisions(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(f): Query<Flash>,
) -> Response {
    let s = app.sessions.current(&headers);
    let v = app.view.borrow().clone();
    let body = html! {
        (flash(&f))
        h1 { "待决事项" }
        @if v.proposals.is_empty() { p.muted { "当前没有待决定的提议。" } }
        @for p in &v.proposals {
            @let n = &p.notice;
            @let current = current_level(&v, n);
            @let role = decider(n.plan, &n.level, &current).unwrap_or("duty");
            @let confirm = is_confirmation(n);
            div.card {
                h2 { (region_zh(&app, &p.region)) " · " (n.plan.name_zh()) " · " (track_zh(&n.track)) }
                p { "提议：" strong { (proposal_what(n, &current)) } }
                p { "理由：" (n.reason) }
                p { "依据：" (n.clause) "　提出时间：" (zh_time(n.at)) }
                p { "决定人：" (role_zh(role)) }
                details { summary { "证据" } pre { (serde_json::to_string_pretty(&n.evidence).unwrap_or_default()) } }
                @match &s {
                    Some(s) if s.operator.has_role(role) => {
                        form method="post" action="decide" {
                            input type="hidden" name="csrf" value=(s.csrf);
                            input type="hidden" name="region" value=(p.region);
                            input type="hidden" name="proposal_id" value=(n.id);
                            @if confirm {
                                button type="submit" name="action" value="confirm" { "确认" }
                            } @else {
                                button type="submit" name="action" value="approve" { "批准" }
                            }
                            " 驳回理由："
                            input type="text" name="reason" placeholder="驳回时必填";
                            button type="submit" name="action" value="reject" { "驳回" }
                        }
                    }
                    Some(_) => { p.muted { "只读：此事项须由" (role_zh(role)) "决定。" } }
                    None => { p.muted { "只读：登录后由" (role_zh(role)) "决定。" } }
                }
            }
        }
    };
    page(&app, s.as_ref(), "待决事项", body)
}

/// The track's level now (from the notices).
fn current_level(v: &crate::daemon::view::View, n: &Notice) -> String {
    v.tracks
        .iter()
        .find(|t| t.region == n.region && t.plan == n.plan.as_str() && t.track == n.track)
        .map_or("none".into(), |t| t.level.clone())
}

/// A termination proposal made for confirmation (coal `require_confirmation`).
fn is_confirmation(n: &Notice) -> bool {
    n.plan == Plan::CoalSupply && n.level == "none"
}

fn proposal_what(n: &Notice, current: &str) -> String {
    if n.level == "none" {
        format!("解除预警（当前{}）", level_zh(n.plan, &n.track, current))
    } else {
        format!(
            "{} → {}",
            level_zh(n.plan, &n.track, current),
            level_zh(n.plan, &n.track, &n.level)
        )
    }
}

/// 叫应.
pub async fn calls(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(f): Query<Flash>,
) -> Response {
    let s = app.sessions.current(&headers);
    let v = app.view.borrow().clone();
    let duty = s.as_ref().filter(|s| s.operator.has_role("duty"));
    let body = html! {
        (flash(&f))
        h1 { "叫应" }
        @if v.rounds.is_empty() { p.muted { "尚无叫应。" } }
        @for r in v.rounds.iter().take(30) {
            @let round = &r.round;
            div.card {
                h2 {
                    (region_zh(&app, &r.region)) " · " (warning_zh(&round.hazard, round.color)) " 第" (round.number) "轮"
                    @match round.status {
                        RoundStatus::Current => { span.bad { "（进行中）" } }
                        RoundStatus::Superseded => { span.muted { "（已被升级取代）" } }
                        RoundStatus::Closed => { span.muted { "（已结束）" } }
                    }
                }
                p.muted { "编号 " (round.call_id) "，开始于 " (zh_time(round.t0)) "　"
                    a href={ "register.csv?region=" (pct(&r.region)) "&event=" (pct(&round.warning_id)) } { "叫应登记表（CSV）" } }
                div.wrap { table {
                    tr { th { "对象" } th { "类别" } th { "渠道" } th { "次数" } th { "状态" } th {} }
                    @for p in &round.persons {
                        tr {
                            td { (p.name) @if !p.unit.is_empty() { "（" (p.unit) "）" } }
                            td { (p.tier.called_zh()) }
                            td { @match p.channel { Some(c) if c.as_str() == "phone" => "电话", Some(_) => "微信", None => "" } }
                            td { "第" (p.attempts) "次" }
                            td {
                                @if p.acked { span.ok { "已回应" } }
                                @else if p.unreached { span.bad { "未叫应到位" } }
                                @else { span.bad { "未回应" } }
                            }
                            td {
                                @if let (Some(s), false, RoundStatus::Current) = (duty, p.acked, round.status) {
                                    form method="post" action="ack-for" {
                                        input type="hidden" name="csrf" value=(s.csrf);
                                        input type="hidden" name="region" value=(r.region);
                                        input type="hidden" name="call_id" value=(round.call_id);
                                        input type="hidden" name="person" value=(p.person);
                                        button type="submit" { "代为确认" }
                                    }
                                }
                            }
                        }
                    }
                } }
            }
        }
    };
    page(&app, s.as_ref(), "叫应", body)
}

/// Reads the store off the async threads.
async fn with_store<T: Send + 'static>(
    app: &AppState,
    f: impl FnOnce(&Store) -> anyhow::Result<T> + Send + 'static,
) -> Result<T, Response> {
    let path = app.cfg.store.path.clone();
    let r = tokio::task::spawn_blocking(move || {
        let s = Store::open(&path)?;
        f(&s)
    })
    .await;
    match r {
        Ok(Ok(t)) => Ok(t),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "console: reading the store failed");
            Err(message(
                StatusCode::SERVICE_UNAVAILABLE,
                "暂时无法读取",
                "读取存储失败，请稍后重试。",
            ))
        }
        Err(_) => Err(message(
            StatusCode::SERVICE_UNAVAILABLE,
            "暂时无法读取",
            "读取存储失败，请稍后重试。",
        )),
    }
}

/// 落实情况.
pub async fn reports(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(f): Query<Flash>,
) -> Response {
    let s = app.sessions.current(&headers);
    let (received, overdue) = match read_reports(&app).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let duty = s.as_ref().filter(|s| s.operator.has_role("duty"));
    let rows = unit_rows(&app, &received, &overdue);
    let body = html! {
        (flash(&f))
        h1 { "落实情况上报" }
        @if app.cfg.units.is_empty() { p.muted { "未配置上报单位。" } }
        @else {
            div.wrap { table {
                tr { th { "单位" } th { "预案" } th { "已收到" } th { "最近一次" } th { "逾期次数" } th { "状态" } }
                @for (unit, plan, n, last, missed, late) in &rows {
                    tr {
                        td { (unit) } td { (plan) } td { (n) "份" }
                        td { @if let Some(t) = last { (zh_time(*t)) } }
                        td { (missed) }
                        td { @if *late { span.bad { "逾期未报" } } @else { span.ok { "正常" } } }
                    }
                }
            } }
        }
        h2 { "逾期记录" }
        @if overdue.is_empty() { p.muted { "无" } }
        @for n in overdue.iter().rev().take(10) {
            p.bad { (zh_time(n.at)) " " (n.plan.name_zh()) "：" (units_text(&n.evidence["units"])) }
        }
        (received_table(&app, &received))
        @if let Some(s) = duty { (report_form(&app, s)) }
    };
    page(&app, s.as_ref(), "落实情况", body)
}

/// The `report` commands journaled (at, payload) and the `report_overdue` notices.
async fn read_reports(
    app: &AppState,
) -> Result<(Vec<(Ts, serde_json::Value)>, Vec<Notice>), Response> {
    let root = app.cfg.topic_root.clone();
    with_store(app, move |st| {
        let mut reports = Vec::new();
        for r in st.journal_after(0)? {
            if !r.topic.starts_with(&format!("{root}/")) || !r.topic.ends_with("/cmd") {
                continue;
            }
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&r.payload) {
                if v["cmd"] == "report" {
                    reports.push((r.at, v));
                }
            }
        }
        let overdue: Vec<Notice> = st
            .notices()?
            .into_iter()
            // `report_overdue` names the units late at each deadline (PLANS.md §5.2).
            .filter(|n| n.kind == Kind::ReportOverdue)
            .collect();
        Ok((reports, overdue))
    })
    .await
}

/// Per unit and plan: reports received, the last one, deadlines missed (the units named by
/// `report_overdue` notices) and whether the last deadline was missed.
fn unit_rows(
    app: &AppState,
    received: &[(Ts, serde_json::Value)],
    overdue: &[Notice],
) -> Vec<UnitRow> {
    app.cfg
        .units
        .iter()
        .flat_map(|u| u.plans.iter().map(move |p| (u, p)))
        .map(|(u, plan)| {
            let mine: Vec<&(Ts, serde_json::Value)> = received
                .iter()
                .filter(|(_, v)| {
                    v["plan"] == plan.as_str() && v["unit"].as_str().is_some_and(|n| u.named(n))
                })
                .collect();
            let named = |n: &&Notice| {
                n.plan == *plan
                    && n.evidence["units"]
                        .as_array()
                        .is_some_and(|a| a.iter().any(|x| x.as_str().is_some_and(|x| u.named(x))))
            };
            let missed = overdue.iter().filter(named).count();
            let last_deadline = overdue.iter().rev().find(|n| n.plan == *plan);
            let late_now =
                last_deadline.is_some_and(|n| named(&n) && !mine.iter().any(|(t, _)| *t > n.at));
            (
                u.name.clone(),
                plan.name_zh(),
                mine.len(),
                mine.last().map(|(t, _)| *t),
                missed,
                late_now,
            )
        })
        .collect()
}

/// The last hundred reports received, newest first.
fn received_table(app: &AppState, received: &[(Ts, serde_json::Value)]) -> Markup {
    html! {
        h2 { "已收到的报告" }
        @if received.is_empty() { p.muted { "尚无" } }
        div.wrap { table {
            tr { th { "时间" } th { "预案" } th { "单位" } th { "内容" } th { "录入人" } }
            @for (at, v) in received.iter().rev().take(100) {
                tr {
                    td { (zh_time(*at)) }
                    td { (plan_zh(v["plan"].as_str().unwrap_or(""))) }
                    td { (v["unit"].as_str().unwrap_or("")) }
                    td { (v["text"].as_str().unwrap_or("")) }
                    td { (operator_name(app, v["by"].as_str().unwrap_or(""))) }
                }
            }
        } }
    }
}

/// The duty officer's form for a report taken by phone.
fn report_form(app: &AppState, s: &Session) -> Markup {
    html! {
        h2 { "录入电话报告" }
        form method="post" action="report" {
            input type="hidden" name="csrf" value=(s.csrf);
            p { "地区 " select name="region" { @for r in &app.cfg.regions { option value=(r.id) { (region_zh(app, &r.id)) } } }
                " 预案 " select name="plan" {
                    option value="coal_supply" { "煤炭保供" }
                    option value="heavy_pollution" { "重污染天气" }
                } }
            p { "单位 " select name="unit" required { @for u in &app.cfg.units { option value=(u.name) { (u.name) } } } }
            p { "内容 " textarea name="text" rows="3" cols="40" required {} }
            button type="submit" { "提交" }
        }
    }
}

/// Unit, plan, reports received, the last one, deadlines missed, late at the last one.
type UnitRow = (String, &'static str, usize, Option<Ts>, usize, bool);

fn units_text(v: &serde_json::Value) -> String {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|u| {
                    u.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| u["unit"].as_str().unwrap_or("").to_string())
                })
                .collect::<Vec<_>>()
                .join("、")
        })
        .unwrap_or_default()
}

#[derive(Deserialize, Default)]
pub struct HistoryQuery {
    from: Option<String>,
    to: Option<String>,
    region: Option<String>,
    plan: Option<String>,
    kind: Option<String>,
}

/// `YYYY-MM-DD` as the start of that day (+08:00).
fn day(s: &Option<String>) -> Option<Ts> {
    let d = chrono::NaiveDate::parse_from_str(s.as_deref()?.trim(), "%Y-%m-%d").ok()?;
    crate::time::parse_ts(&format!("{d}T00:00:00+08:00")).ok()
}

/// 历史: notices of a period, filterable.
pub async fn history(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<HistoryQuery>,
) -> Response {
    let s = app.sessions.current(&headers);
    let (from, to) = (
        day(&q.from),
        day(&q.to).map(|t| t + chrono::Duration::days(1)),
    );
    let all = match with_store(&app, |st| st.notices()).await {
        Ok(n) => n,
        Err(r) => return r,
    };
    let sel = |v: &Option<String>| v.as_deref().filter(|x| !x.is_empty()).map(str::to_string);
    let (region, plan, kind) = (sel(&q.region), sel(&q.plan), sel(&q.kind));
    let shown: Vec<&Notice> = all
        .iter()
        .filter(|n| from.is_none_or_le(n.at) && to.is_none_or_gt(n.at))
        .filter(|n| region.as_deref().is_none_or_eq(&n.region))
        .filter(|n| plan.as_deref().is_none_or_eq(n.plan.as_str()))
        .filter(|n| kind.as_deref().is_none_or_eq(n.kind.as_str()))
        .collect();
    let v = app.view.borrow().clone();
    let mut events: Vec<(String, String)> = v
        .rounds
        .iter()
        .map(|r| (r.region.clone(), r.round.warning_id.clone()))
        .collect();
    events.sort();
    events.dedup();
    let body = html! {
        h1 { "历史" }
        form method="get" action="history" {
            "自 " input type="date" name="from" value=[q.from.as_deref()];
            " 至 " input type="date" name="to" value=[q.to.as_deref()];
            " 地区 " select name="region" { option value="" { "全部" } @for r in &app.cfg.regions { option value=(r.id) selected[region.as_deref() == Some(r.id.as_str())] { (region_zh(&app, &r.id)) } } }
            " 预案 " select name="plan" { option value="" { "全部" } @for p in Plan::ALL { option value=(p.as_str()) selected[plan.as_deref() == Some(p.as_str())] { (p.name_zh()) } } }
            " 类型 " select name="kind" { option value="" { "全部" } @for k in KINDS { option value=(k.as_str()) selected[kind.as_deref() == Some(k.as_str())] { (k.name_zh()) } } }
            " " button type="submit" { "查询" }
        }
        p {
            a href={ "journal.jsonl?from=" (q.from.as_deref().unwrap_or("")) "&to=" (q.to.as_deref().unwrap_or("")) } { "下载此期间的输入记录（场景文件，可回放演练）" }
        }
        @if !events.is_empty() {
            p { "叫应登记表：" @for (r, e) in &events { a href={ "register.csv?region=" (pct(r)) "&event=" (pct(e)) } { (e) } "　" } }
        }
        p.muted { "共 " (shown.len()) " 条" }
        div.wrap { table {
            tr { th { "时间" } th { "地区" } th { "预案" } th { "类别" } th { "类型" } th { "级别" } th { "原因" } }
            @for n in shown.iter().rev().take(500) {
                tr {
                    td { a href={ "notice?id=" (pct(&n.id)) } { (zh_time(n.at)) } }
                    td { (region_zh(&app, &n.region)) }
                    td { (n.plan.name_zh()) }
                    td { (track_zh(&n.track)) }
                    td { (Said::of(n).kind_zh()) }
                    td { (level_zh(n.plan, &n.track, &n.level)) }
                    td { (n.reason) }
                }
            }
        } }
    };
    page(&app, s.as_ref(), "历史", body)
}

const KINDS: [Kind; 18] = [
    Kind::Activate,
    Kind::Escalate,
    Kind::Downgrade,
    Kind::Terminate,
    Kind::ReportFirst,
    Kind::ReportFollowup,
    Kind::ReportFinal,
    Kind::Proposal,
    Kind::Reminder,
    Kind::TargetMissed,
    Kind::BeyondLevel1,
    Kind::Call,
    Kind::CallAck,
    Kind::CallUnreached,
    Kind::DataGap,
    Kind::DataResumed,
    Kind::Suggestion,
    Kind::ReportOverdue,
];

trait OptCmp<T> {
    fn is_none_or_le(&self, t: T) -> bool;
    fn is_none_or_gt(&self, t: T) -> bool;
}

impl OptCmp<Ts> for Option<Ts> {
    fn is_none_or_le(&self, t: Ts) -> bool {
        self.map_or(true, |x| x <= t)
    }
    fn is_none_or_gt(&self, t: Ts) -> bool {
        self.map_or(true, |x| x > t)
    }
}

trait OptEq {
    fn is_none_or_eq(&self, s: &str) -> bool;
}

impl OptEq for Option<&str> {
    fn is_none_or_eq(&self, s: &str) -> bool {
        self.map_or(true, |x| x == s)
    }
}

#[derive(Deserialize)]
pub struct IdQuery {
    id: String,
}

/// One notice, its full text as sent by email, and the record.
pub async fn notice(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<IdQuery>,
) -> Response {
    let s = app.sessions.current(&headers);
    let id = q.id.clone();
    let n = match with_store(&app, move |st| {
        Ok(st.notices()?.into_iter().find(|n| n.id == id))
    })
    .await
    {
        Ok(Some(n)) => n,
        Ok(None) => return message(StatusCode::NOT_FOUND, "未找到", "没有这条通知。"),
        Err(r) => return r,
    };
    let body = html! {
        h1 { (render::subject(&app.cfg, &n)) }
        div.card { pre { (render::text_for(&app.cfg, None, &n, render::Reader::Group)) } }
        details { summary { "原始记录" } pre { (serde_json::to_string_pretty(&n).unwrap_or_default()) } }
    };
    page(&app, s.as_ref(), "通知全文", body)
}

#[derive(Deserialize)]
pub struct CsvQuery {
    region: String,
    event: String,
}

/// The call register of an event as CSV (the same as `yingji calls export`).
pub async fn register_csv(State(app): State<AppState>, Query(q): Query<CsvQuery>) -> Response {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let ask = CoreEvent::RegisterCsv {
        region: q.region.clone(),
        event: q.event.clone(),
        reply: tx,
    };
    if app.core.send(ask).is_err() {
        return busy();
    }
    match tokio::time::timeout(CORE_WAIT, rx).await {
        Ok(Ok(Some(csv))) => {
            let name = format!(
                "calls-{}.csv",
                q.event
                    .replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "_")
            );
            (
                [
                    (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
                    (
                        header::CONTENT_DISPOSITION,
                        format!("attachment; filename=\"{name}\""),
                    ),
                    (header::CACHE_CONTROL, "no-store".to_string()),
                ],
                csv,
            )
                .into_response()
        }
        Ok(Ok(None)) => message(StatusCode::NOT_FOUND, "未找到", "没有这次预警的叫应登记。"),
        _ => busy(),
    }
}

/// The journal of a period as a scenario file (`{"at", "topic", "payload"}` lines), to
/// replay a drill or an incident with `yingji replay`.
pub async fn journal(State(app): State<AppState>, Query(q): Query<HistoryQuery>) -> Response {
    let (from, to) = (
        day(&q.from),
        day(&q.to).map(|t| t + chrono::Duration::days(1)),
    );
    let rows = match with_store(&app, |st| st.journal_after(0)).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let mut out = String::new();
    for r in rows
        .iter()
        .filter(|r| from.is_none_or_le(r.at) && to.is_none_or_gt(r.at))
    {
        out += &crate::daemon::store::scenario_line(r);
        out.push('\n');
    }
    (
        [
            (header::CONTENT_TYPE, "application/jsonl; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"journal.jsonl\"",
            ),
            (header::CACHE_CONTROL, "no-store"),
        ],
        out,
    )
        .into_response()
}

/// Server-sent events: one `update` whenever the core's picture changes.
pub async fn events(
    State(app): State<AppState>,
) -> Sse<impl futures_util::Stream<Item = Result<Event, Infallible>>> {
    let rx = app.view.clone();
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.changed().await.ok()?;
        let v = rx.borrow_and_update().version;
        Some((Ok(Event::default().event("update").data(v.to_string())), rx))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// Swaps the page's `main` for a fresh copy when the picture changes, unless a form
/// field is being filled in.
pub const SCRIPT: &str = "new EventSource('events').addEventListener('update', async () => {
  if (document.activeElement && document.activeElement.form) return;
  const r = await fetch(location.href, {credentials: 'same-origin'});
  if (!r.ok) return;
  const d = new DOMParser().parseFromString(await r.text(), 'text/html');
  document.querySelector('main').replaceWith(d.querySelector('main'));
});
";

pub async fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        SCRIPT,
    )
        .into_response()
}

// ---- log in and out ----

#[derive(Deserialize)]
pub struct LoginForm {
    id: String,
    password: String,
    token: Option<String>,
}

fn login_page(app: &AppState, err: Option<&str>) -> Response {
    if !app.sessions.enabled() {
        return message(
            StatusCode::NOT_FOUND,
            "未开放登录",
            "未配置值班人员，控制台只读。",
        );
    }
    let (token, set) = match app.sessions.login_token() {
        Ok(x) => x,
        Err(_) => return busy(),
    };
    let body = html! {
        h1 { "值班人员登录" }
        @if let Some(e) = err { p.bad { (e) } }
        form method="post" action="login" {
            input type="hidden" name="token" value=(token);
            p { "账号 " input type="text" name="id" autocomplete="username" required; }
            p { "密码 " input type="password" name="password" autocomplete="current-password" required; }
            button type="submit" { "登录" }
        }
    };
    let mut r = respond(StatusCode::OK, frame("登录", Some(nav(app, None)), body));
    if let Ok(v) = set.parse() {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

pub async fn login_form(State(app): State<AppState>) -> Response {
    login_page(&app, None)
}

pub async fn login(
    State(app): State<AppState>,
    addr: Option<axum::extract::ConnectInfo<std::net::SocketAddr>>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    if !app.sessions.enabled() {
        return login_page(&app, None);
    }
    let ip = addr.map(|a| a.0.ip().to_string()).unwrap_or_default();
    if !app.limits.login_per_address.allow(&ip) || !app.limits.login_per_operator.allow(&f.id) {
        metrics::inc(&METRICS.http_rate_limited, 1);
        metrics::count(&METRICS.console_logins, "result", "rate_limited");
        return message(
            StatusCode::TOO_MANY_REQUESTS,
            "尝试过于频繁",
            "登录尝试过多，请一分钟后再试。",
        );
    }
    if !app
        .sessions
        .login_token_ok(&headers, f.token.as_deref().unwrap_or(""))
    {
        metrics::count(&METRICS.console_logins, "result", "csrf");
        return csrf_refused();
    }
    let sessions = std::sync::Arc::clone(&app);
    let (id, pw) = (f.id.clone(), f.password);
    let op = tokio::task::spawn_blocking(move || sessions.sessions.check(&id, &pw))
        .await
        .ok()
        .flatten();
    let Some(op) = op else {
        tracing::warn!(operator = %f.id.escape_debug(), "console: login refused");
        metrics::count(&METRICS.console_logins, "result", "refused");
        let mut r = login_page(&app, Some("账号或密码错误。"));
        *r.status_mut() = StatusCode::UNAUTHORIZED;
        return r;
    };
    tracing::info!(operator = %op.id, "console: logged in");
    metrics::count(&METRICS.console_logins, "result", "ok");
    match app.sessions.start(op) {
        Ok(cookie) => {
            let mut r = redirect("./");
            if let Ok(v) = cookie.parse() {
                r.headers_mut().append(header::SET_COOKIE, v);
            }
            r
        }
        Err(_) => busy(),
    }
}

#[derive(Deserialize)]
pub struct CsrfOnly {
    csrf: Option<String>,
}

pub async fn logout(
    State(app): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<CsrfOnly>,
) -> Response {
    let Some(s) = app.sessions.current(&headers) else {
        return redirect("./");
    };
    if !Sessions::csrf_ok(&s, f.csrf.as_deref().unwrap_or("")) {
        return csrf_refused();
    }
    let clear = app.sessions.end(&headers);
    let mut r = redirect("./");
    if let Ok(v) = clear.parse() {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

fn redirect(to: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, to.to_string())]).into_response()
}

fn csrf_refused() -> Response {
    message(
        StatusCode::FORBIDDEN,
        "请求无效",
        "表单校验失败（页面已过期或来源不明），未执行。请刷新页面后重试。",
    )
}

fn busy() -> Response {
    message(
        StatusCode::SERVICE_UNAVAILABLE,
        "暂时无法处理",
        "系统暂时无法处理，请稍后重试。",
    )
}

/// The logged-in operator of an action with a valid CSRF token, else the refusal.
fn actor(
    app: &AppState,
    headers: &HeaderMap,
    csrf: Option<&str>,
) -> Result<Session, Box<Response>> {
    let Some(s) = app.sessions.current(headers) else {
        return Err(Box::new(message(
            StatusCode::UNAUTHORIZED,
            "请先登录",
            "此操作需要值班人员登录。",
        )));
    };
    if !Sessions::csrf_ok(&s, csrf.unwrap_or("")) {
        tracing::warn!(operator = %s.operator.id, "console: action without a valid CSRF token refused");
        return Err(Box::new(csrf_refused()));
    }
    Ok(s)
}

/// `actor` holding the `duty` role (acknowledging for someone, entering a report).
fn duty(
    app: &AppState,
    headers: &HeaderMap,
    csrf: Option<&str>,
    what: &str,
) -> Result<Session, Box<Response>> {
    let s = actor(app, headers, csrf)?;
    if !s.operator.has_role("duty") {
        return Err(Box::new(message(
            StatusCode::FORBIDDEN,
            "无权操作",
            &format!("{what}须由值班员操作，未执行，未记录。"),
        )));
    }
    Ok(s)
}

/// Hands a command to the core; the page it returns to says what came of it.
async fn run(app: &AppState, region: &str, cmd: serde_json::Value, back: &str) -> Response {
    let label = cmd["cmd"].as_str().unwrap_or("").to_string();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let c = ConsoleCmd {
        region: region.to_string(),
        payload: cmd.to_string().into_bytes(),
        reply: tx,
    };
    if app.core.send(CoreEvent::Command(c)).is_err() {
        return busy();
    }
    match tokio::time::timeout(CORE_WAIT, rx).await {
        Ok(Ok(Ok(()))) => {
            metrics::count(&METRICS.console_actions, "cmd", &label);
            tracing::info!(cmd = %label, by = %cmd["by"].as_str().unwrap_or(""), "console: action journaled");
            redirect(&format!("{back}?msg={}", pct("已提交并记录。")))
        }
        Ok(Ok(Err(reason))) => redirect(&format!(
            "{back}?err={}",
            pct(&format!("未被接受：{reason}"))
        )),
        _ => busy(),
    }
}

#[derive(Deserialize)]
pub struct DecideForm {
    csrf: Option<String>,
    region: String,
    proposal_id: String,
    action: String,
    reason: Option<String>,
}

/// Approve, reject or confirm a pending proposal: only for the role that decides it.
pub async fn decide(
    State(app): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<DecideForm>,
) -> Response {
    let s = match actor(&app, &headers, f.csrf.as_deref()) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let v = app.view.borrow().clone();
    let Some(p) = v.proposal(&f.proposal_id).filter(|p| p.region == f.region) else {
        return redirect(&format!(
            "decisions?err={}",
            pct("该提议已不在待决之列（已决定或已失效）。")
        ));
    };
    let current = current_level(&v, &p.notice);
    let role = decider(p.notice.plan, &p.notice.level, &current).unwrap_or("duty");
    if !s.operator.has_role(role) {
        tracing::warn!(operator = %s.operator.id, proposal = %f.proposal_id, "console: decision refused, role missing");
        return message(
            StatusCode::FORBIDDEN,
            "无权决定",
            &format!(
                "此事项须由{}决定，您的角色为{}，未执行，未记录。",
                role_zh(role),
                roles_zh(&s)
            ),
        );
    }
    let by = s.operator.id.clone();
    let cmd = match f.action.as_str() {
        "approve" | "confirm" => json!({"cmd": f.action, "proposal_id": f.proposal_id, "by": by}),
        "reject" => {
            let reason = f.reason.unwrap_or_default();
            if reason.trim().is_empty() {
                return redirect(&format!("decisions?err={}", pct("驳回须填写理由。")));
            }
            json!({"cmd": "reject", "proposal_id": f.proposal_id, "by": by, "reason": reason.trim()})
        }
        _ => return message(StatusCode::BAD_REQUEST, "请求无效", "未知的操作。"),
    };
    run(&app, &f.region, cmd, "decisions").await
}

#[derive(Deserialize)]
pub struct AckForm {
    csrf: Option<String>,
    region: String,
    call_id: String,
    person: String,
}

/// Acknowledge a call on someone's behalf (`by` = the operator).
pub async fn ack_for(
    State(app): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<AckForm>,
) -> Response {
    let s = match duty(&app, &headers, f.csrf.as_deref(), "代为确认叫应") {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let cmd = json!({"cmd": "ack", "call_id": f.call_id, "person": f.person, "by": s.operator.id});
    run(&app, &f.region, cmd, "calls").await
}

#[derive(Deserialize)]
pub struct ReportForm {
    csrf: Option<String>,
    region: String,
    plan: String,
    unit: String,
    text: String,
}

/// Enter a unit's report back that came by phone (`report`, PLANS.md §5.2).
pub async fn report(
    State(app): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<ReportForm>,
) -> Response {
    let s = match duty(&app, &headers, f.csrf.as_deref(), "录入报告") {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let cmd = json!({"cmd": "report", "plan": f.plan, "unit": f.unit.trim(), "text": f.text.trim(), "by": s.operator.id});
    run(&app, &f.region, cmd, "reports").await
}

fn pct(s: &str) -> String {
    crate::daemon::ack::pct(s)
}
