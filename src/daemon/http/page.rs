//! The page frame shared by the console and the acknowledgement pages (maud; every value
//! is escaped by the template). One small stylesheet, readable on a PC and a phone.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup, DOCTYPE};

const STYLE: &str = "\
body{font-family:system-ui,'Noto Sans CJK SC','Microsoft YaHei',sans-serif;margin:0;color:#222;background:#f6f6f4}\
main{max-width:72rem;margin:0 auto;padding:.8rem}\
nav{background:#8b1a1a;color:#fff;padding:.5rem .8rem;display:flex;flex-wrap:wrap;gap:.8rem;align-items:center}\
nav a{color:#fff;text-decoration:none}nav .who{margin-left:auto}\
h1{font-size:1.3rem}h2{font-size:1.1rem;margin-top:1.4rem;border-bottom:1px solid #ccc}\
table{border-collapse:collapse;width:100%;background:#fff;font-size:.92rem}\
th,td{border:1px solid #ddd;padding:.3rem .4rem;text-align:left;vertical-align:top}\
.wrap{overflow-x:auto}.muted{color:#777}.ok{color:#1a6b1a}.bad{color:#a11}\
.card{background:#fff;border:1px solid #ddd;border-radius:4px;padding:.6rem;margin:.6rem 0}\
button{font-size:1rem;padding:.4rem 1rem;margin:.2rem}.big{font-size:1.3rem;padding:.8rem 2rem}\
input,select{font-size:1rem;padding:.3rem}pre{white-space:pre-wrap;word-break:break-all}\
.lv-red{color:#c00;font-weight:bold}.lv-orange{color:#d60;font-weight:bold}.lv-yellow{color:#a80;font-weight:bold}\
.lv-blue{color:#06c;font-weight:bold}";

/// A whole page: `title`, an optional navigation bar, the body.
pub fn frame(title: &str, nav: Option<Markup>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="zh-CN" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="no-referrer";
                title { (title) }
                style { (maud::PreEscaped(STYLE)) }
            }
            body {
                @if let Some(n) = nav { (n) }
                main { (body) }
            }
        }
    }
}

/// An HTML response that no cache keeps and no other site may frame.
pub fn respond(status: StatusCode, m: Markup) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::X_FRAME_OPTIONS, "DENY"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; style-src 'unsafe-inline'; script-src 'self'; frame-ancestors 'none'; form-action 'self'",
            ),
        ],
        m.into_string(),
    )
        .into_response()
}

/// A page with a heading and one paragraph.
pub fn message(status: StatusCode, title: &str, text: &str) -> Response {
    respond(
        status,
        frame(title, None, html! { h1 { (title) } p { (text) } }),
    )
}
