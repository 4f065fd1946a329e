//! The receiving ends of the daemon's email and webhook sinks for `scripts/bench-live.sh`:
//! an SMTP server and an HTTP server that accept everything, on one thread each, spending
//! as little CPU as they can. On the bench's two cores they run beside the daemon and the
//! broker (a real mail server or chat gateway runs elsewhere): the Python sinks of the
//! end-to-end tests took 3 ms of CPU per round trip, more than the daemon itself.
//!
//!     bench_sinks smtp PORT    SMTP (EHLO, MAIL, RCPT, DATA, QUIT): every message accepted
//!     bench_sinks http PORT    HTTP/1.1 keep-alive: every request answered 200 with
//!                              {"errcode":0,"errmsg":"ok"} (a WeCom robot's success)
//!
//! Prints `ready` once listening; on SIGTERM prints how many messages or requests it took.
//! Accepted sockets set TCP_NODELAY: each answer is one write, but the client's next
//! command must not wait for a delayed ACK of the last one.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (mode, port) = match (args.get(1).map(String::as_str), args.get(2)) {
        (Some(m @ ("smtp" | "http")), Some(p)) => (m.to_string(), p.parse::<u16>().ok()),
        _ => (String::new(), None),
    };
    let Some(port) = port else {
        eprintln!("usage: bench_sinks smtp|http PORT");
        std::process::exit(2);
    };
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    println!("ready");
    let taken = Arc::new(AtomicU64::new(0));
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _) = accepted?;
                stream.set_nodelay(true)?;
                let taken = taken.clone();
                let smtp = mode == "smtp";
                tokio::spawn(async move {
                    // A connection that breaks off is the client's business: not counted.
                    let _ = if smtp { smtp_session(stream, &taken).await } else { http_session(stream, &taken).await };
                });
            }
            _ = term.recv() => {
                println!("{mode}: {} taken", taken.load(Ordering::Relaxed));
                return Ok(());
            }
        }
    }
}

/// One SMTP session (RFC 5321): 8BITMIME and SMTPUTF8 offered (the notices are UTF-8).
async fn smtp_session(stream: TcpStream, taken: &AtomicU64) -> std::io::Result<()> {
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    w.write_all(b"220 bench-sink ESMTP\r\n").await?;
    let mut line = Vec::with_capacity(1024);
    loop {
        line.clear();
        if r.read_until(b'\n', &mut line).await? == 0 {
            return Ok(());
        }
        let verb = line.get(..4).map(|v| v.to_ascii_uppercase());
        let reply: &[u8] = match verb.as_deref() {
            Some(b"EHLO") => b"250-bench-sink\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n",
            Some(b"HELO") => b"250 bench-sink\r\n",
            Some(b"DATA") => {
                w.write_all(b"354 end data with <CR><LF>.<CR><LF>\r\n")
                    .await?;
                // The message ends at a line that is a single dot.
                loop {
                    line.clear();
                    if r.read_until(b'\n', &mut line).await? == 0 {
                        return Ok(());
                    }
                    if line == b".\r\n" {
                        break;
                    }
                }
                taken.fetch_add(1, Ordering::Relaxed);
                b"250 OK\r\n"
            }
            Some(b"QUIT") => {
                w.write_all(b"221 bye\r\n").await?;
                return Ok(());
            }
            // MAIL, RCPT, RSET, NOOP: accepted.
            _ => b"250 OK\r\n",
        };
        w.write_all(reply).await?;
    }
}

/// Requests on one kept-alive HTTP/1.1 connection, each answered in one write.
async fn http_session(stream: TcpStream, taken: &AtomicU64) -> std::io::Result<()> {
    const ANSWER: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 27\r\n\r\n{\"errcode\":0,\"errmsg\":\"ok\"}";
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    let mut line = Vec::with_capacity(256);
    let mut body = Vec::new();
    loop {
        // The head: lines up to an empty one; the body's length from Content-Length.
        let mut len = 0usize;
        let mut first = true;
        loop {
            line.clear();
            if r.read_until(b'\n', &mut line).await? == 0 {
                return Ok(());
            }
            if line == b"\r\n" && !first {
                break;
            }
            first = false;
            if let Some(v) = header_value(&line, b"content-length") {
                len = v.parse().unwrap_or(0);
            }
        }
        body.resize(len, 0);
        r.read_exact(&mut body).await?;
        taken.fetch_add(1, Ordering::Relaxed);
        w.write_all(ANSWER).await?;
    }
}

/// The value of header `name` (lowercase) if `line` is that header.
fn header_value<'a>(line: &'a [u8], name: &[u8]) -> Option<&'a str> {
    let colon = line.iter().position(|&b| b == b':')?;
    if !line[..colon].eq_ignore_ascii_case(name) {
        return None;
    }
    std::str::from_utf8(&line[colon + 1..]).ok().map(str::trim)
}
