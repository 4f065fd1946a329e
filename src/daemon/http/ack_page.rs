//! Acknowledgement links (CONTRACT.md "Acknowledgement links"): `GET /ack?...` shows a
//! page naming the call and the person with a button; the button `POST`s the same
//! signed parameters, which become an `ack` command through the core (journaled like any
//! MQTT input, `by` = `link`). A mail scanner that follows links acknowledges nothing.
//!
//! A link expires when its round ends and `[http] ack_link_hours` after the call at the
//! latest; a person who acknowledged before is answered from the call register without
//! a journal row; requests are rate-limited per client address and POSTs per link.

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{ConnectInfo, Form, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;
use serde::Deserialize;

use super::page::{frame, message, respond};
use super::AppState;
use crate::clock;
use crate::daemon::core::LinkOutcome;
use crate::daemon::metrics::{self, METRICS};
use crate::daemon::{CoreEvent, LinkAck};
use crate::plans::severe_weather::{warning_zh, Round};

/// How long a click waits for the core (it may be recovering or draining echoes).
const ACK_WAIT: Duration = Duration::from_secs(15);

/// The parameters of a link (query of the GET, form of the POST).
#[derive(Debug, Default, Deserialize)]
pub struct LinkParams {
    call_id: Option<String>,
    person: Option<String>,
    t: Option<String>,
    sig: Option<String>,
    region: Option<String>,
}

/// A link whose signature holds.
struct Link {
    region: String,
    call_id: String,
    person: String,
    t: String,
    sig: String,
}

fn limited() -> Response {
    metrics::inc(&METRICS.http_rate_limited, 1);
    message(
        StatusCode::TOO_MANY_REQUESTS,
        "请求过于频繁",
        "短时间内请求过多，请稍后再试，或直接联系值班室。",
    )
}

/// Checks the signature, the region and the link's age.
fn check(app: &AppState, p: LinkParams) -> Result<Link, Box<Response>> {
    let (Some(call_id), Some(person), Some(t), Some(sig)) = (p.call_id, p.person, p.t, p.sig)
    else {
        return Err(Box::new(message(
            StatusCode::BAD_REQUEST,
            "链接不完整",
            "回应链接缺少参数，未记录。请使用消息中的原始链接。",
        )));
    };
    if !app.link_key.verify(&[&call_id, &person, &t], &sig) {
        tracing::warn!(call_id = %call_id.escape_debug(), person = %person.escape_debug(), "ack link with a bad signature refused");
        metrics::count(&METRICS.ack_clicks, "outcome", "forged");
        return Err(Box::new(message(
            StatusCode::FORBIDDEN,
            "链接无效",
            "回应链接签名不符（链接不完整或被改动），未记录。请使用消息中的原始链接。",
        )));
    }
    let region = p.region.unwrap_or_else(|| {
        app.cfg
            .regions
            .first()
            .map(|r| r.id.clone())
            .unwrap_or_default()
    });
    if !app.cfg.regions.iter().any(|r| r.id == region) {
        return Err(Box::new(message(
            StatusCode::BAD_REQUEST,
            "链接无效",
            "回应链接的地区未配置，未记录。",
        )));
    }
    let issued = t.parse::<i64>().ok();
    let hours = app.cfg.http.ack_link_hours;
    let expired = match issued {
        Some(s) => (clock::now().timestamp() - s) as f64 > hours * 3600.0,
        None => true,
    };
    if expired {
        metrics::count(&METRICS.ack_clicks, "outcome", "expired");
        return Err(Box::new(message(
            StatusCode::GONE,
            "链接已过期",
            &format!(
                "回应链接自叫应起{hours}小时内有效，已过期，未记录。如需回应，请直接联系值班室。"
            ),
        )));
    }
    Ok(Link {
        region,
        call_id,
        person,
        t,
        sig,
    })
}

/// "张三（市应急管理局）" of the person in the round, else the id.
fn who(round: Option<&Round>, person: &str) -> String {
    match round.and_then(|r| r.persons.iter().find(|p| p.person == person)) {
        Some(p) if !p.unit.is_empty() => format!("{}（{}）", p.name, p.unit),
        Some(p) if !p.name.is_empty() => p.name.clone(),
        _ => person.to_string(),
    }
}

/// "暴雨红色预警第1轮叫应".
fn what(round: &Round) -> String {
    format!(
        "{}第{}轮叫应",
        warning_zh(&round.hazard, round.color),
        round.number
    )
}

fn client(addr: Option<ConnectInfo<SocketAddr>>) -> String {
    addr.map(|ConnectInfo(a)| a.ip().to_string())
        .unwrap_or_default()
}

/// The per-address limit, then the link's checks.
fn admit(
    app: &AppState,
    addr: Option<ConnectInfo<SocketAddr>>,
    p: LinkParams,
) -> Result<Link, Box<Response>> {
    if !app.limits.ack_per_address.allow(&client(addr)) {
        return Err(Box::new(limited()));
    }
    check(app, p)
}

/// `GET /ack`: the page with the button (or why there is none). Records nothing.
pub async fn show(
    State(app): State<AppState>,
    addr: Option<ConnectInfo<SocketAddr>>,
    Query(p): Query<LinkParams>,
) -> Response {
    let l = match admit(&app, addr, p) {
        Ok(l) => l,
        Err(r) => return *r,
    };
    let view = app.view.borrow().clone();
    let Some(round) = view.round(&l.region, &l.call_id) else {
        return message(
            StatusCode::NOT_FOUND,
            "未找到该轮叫应",
            &format!("系统中没有叫应 {}，未记录。请直接联系值班室。", l.call_id),
        );
    };
    let name = who(Some(round), &l.person);
    let me = round.persons.iter().find(|p| p.person == l.person);
    let ended = round.status != crate::plans::severe_weather::RoundStatus::Current;
    let body = html! {
        h1 { "叫应确认" }
        p { "叫应对象：" strong { (name) } }
        p { "叫应事项：" (what(round)) "（编号 " (l.call_id) "）" }
        @if !round.content.is_empty() {
            div.card { pre { (round.content) } }
        }
        @if me.is_some_and(|p| p.acked) {
            p.ok { "此前已回应，无需再次确认。" }
        } @else if ended {
            p.muted { "该轮叫应已结束，链接已失效。如需回应，请直接联系值班室。" }
        } @else {
            form method="post" action="ack" {
                input type="hidden" name="call_id" value=(l.call_id);
                input type="hidden" name="person" value=(l.person);
                input type="hidden" name="t" value=(l.t);
                input type="hidden" name="sig" value=(l.sig);
                input type="hidden" name="region" value=(l.region);
                button.big type="submit" { "确认收到叫应" }
            }
            p.muted { "按下按钮即记录您已收到本次叫应，后续电话叫应随即停止。" }
        }
    };
    respond(StatusCode::OK, frame("叫应确认", None, body))
}

/// `POST /ack`: the acknowledgement.
pub async fn post(
    State(app): State<AppState>,
    addr: Option<ConnectInfo<SocketAddr>>,
    Form(p): Form<LinkParams>,
) -> Response {
    let l = match admit(&app, addr, p) {
        Ok(l) => l,
        Err(r) => return *r,
    };
    if !app
        .limits
        .ack_per_link
        .allow(&format!("{}\u{0}{}\u{0}{}", l.region, l.call_id, l.person))
    {
        return limited();
    }
    let name = {
        let v = app.view.borrow();
        who(v.round(&l.region, &l.call_id), &l.person)
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    let link = LinkAck {
        region: l.region.clone(),
        call_id: l.call_id.clone(),
        person: l.person.clone(),
        reply: tx,
    };
    if app.core.send(CoreEvent::Link(link)).is_err() {
        return busy();
    }
    let outcome = match tokio::time::timeout(ACK_WAIT, rx).await {
        Ok(Ok(o)) => o,
        _ => return busy(),
    };
    let label = match &outcome {
        LinkOutcome::Recorded => "recorded",
        LinkOutcome::Already => "already",
        LinkOutcome::Ended => "ended",
        LinkOutcome::Refused(_) => "refused",
    };
    metrics::count(&METRICS.ack_clicks, "outcome", label);
    let call_id = &l.call_id;
    match outcome {
        LinkOutcome::Recorded => message(
            StatusCode::OK,
            "已确认",
            &format!("已记录 {name} 对叫应 {call_id} 的回应，后续叫应已停止。"),
        ),
        LinkOutcome::Already => message(
            StatusCode::OK,
            "此前已回应",
            &format!("叫应 {call_id} 此前已收到 {name} 的回应，无需再次确认。"),
        ),
        LinkOutcome::Ended => message(
            StatusCode::GONE,
            "该轮叫应已结束",
            &format!("叫应 {call_id} 已结束，链接已失效，未记录。如需回应，请直接联系值班室。"),
        ),
        LinkOutcome::Refused(reason) => message(
            StatusCode::CONFLICT,
            "未能记录",
            &format!("回应未被接受：{reason}"),
        ),
    }
}

fn busy() -> Response {
    message(
        StatusCode::SERVICE_UNAVAILABLE,
        "暂时无法记录",
        "系统暂时无法记录回应，请稍后重试，或直接联系值班室。",
    )
}
