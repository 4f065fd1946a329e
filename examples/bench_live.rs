//! The MQTT side of `scripts/bench-live.sh` (docs/performance.md, "Live ingest and round
//! trip"). Plain MQTT 3.1.1 on 127.0.0.1; every subcommand prints a summary.
//!
//!     bench_live fill PORT REGION N           queue N QoS 1 stock readings + one `manual L2`
//!     bench_live await PORT REGION            wait for the L2 notice; print its arrival time
//!     bench_live roundtrip PORT REGION N DIR  N sequential `manual` round trips, then N
//!                                             4 KiB write + fdatasync in DIR (the disk's share)
//!     bench_live echo PORT REGION N           the broker's floor: N round trips of the same
//!                                             client against a bare responder (below)
//!
//! `fill` ends with a `manual L2` command, so the L2 notice that `await` sees marks the end
//! of the drain: the daemon handles its input in order.

#![warn(clippy::too_many_lines)]
// A benchmark measures wall-clock time; it is a client of the daemon, not part of the core
// that clippy.toml keeps off the clock.
#![allow(clippy::disallowed_methods)]

use std::io::Write;
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rumqttc::{Client, Connection, Event, MqttOptions, Packet, QoS};
use serde_json::{json, Value};

fn client(port: u16, id: &str) -> (Client, Connection) {
    let mut o = MqttOptions::new(id, "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(30));
    o.set_clean_session(true);
    o.set_max_packet_size(1 << 20, 1 << 20);
    o.set_inflight(100);
    let (c, mut conn) = Client::new(o, 1000);
    let mut n = rumqttc::NetworkOptions::new();
    n.set_tcp_nodelay(true);
    conn.eventloop.set_network_options(n);
    (c, conn)
}

fn manual(level: &str) -> Vec<u8> {
    json!({"cmd": "manual", "plan": "coal_supply", "level": level, "reason": "人工预警", "by": "市能源局"})
        .to_string()
        .into_bytes()
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs_f64()
}

/// Publishes N stock readings (100 plants, healthy stock, one second apart per plant,
/// ending now) and the closing `manual L2`, and waits for every PUBACK.
fn fill(port: u16, region: &str, n: usize) {
    let (c, mut conn) = client(port, &format!("bench-fill-{}", std::process::id()));
    let total = n + 1;
    let (done_tx, done_rx) = mpsc::channel();
    let pump = std::thread::spawn(move || {
        let mut acks = 0;
        for ev in conn.iter() {
            match ev {
                Ok(Event::Incoming(Packet::PubAck(_))) => {
                    acks += 1;
                    if acks == total {
                        let _ = done_tx.send(());
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => panic!("fill connection: {e}"),
            }
        }
    });
    let now = chrono::Utc::now().timestamp();
    let first = now - (n as i64) / 100;
    let cst = chrono::FixedOffset::east_opt(8 * 3600).expect("valid offset");
    let topic = format!("ers/{region}/coal/stock");
    let t0 = Instant::now();
    for i in 0..n {
        let ts = chrono::DateTime::from_timestamp(first + (i / 100) as i64, 0)
            .expect("valid time")
            .with_timezone(&cst);
        let p = json!({"ts": ts.to_rfc3339(), "plant": format!("plant-{:02}", i % 100),
                       "stock_t": 250_000, "burn_t_per_day": 10_000});
        c.publish(&topic, QoS::AtLeastOnce, false, p.to_string().into_bytes())
            .expect("publish");
    }
    c.publish(
        format!("ers/{region}/cmd"),
        QoS::AtLeastOnce,
        false,
        manual("L2"),
    )
    .expect("publish");
    done_rx
        .recv_timeout(Duration::from_secs(600))
        .expect("every PUBACK within 10 min");
    println!(
        "filled {total} messages in {:.2} s",
        t0.elapsed().as_secs_f64()
    );
    let _ = c.disconnect();
    let _ = pump.join();
}

type Notices = mpsc::Receiver<(Instant, Value)>;

/// The topic of the coal notices.
fn notice_topic(region: &str) -> String {
    format!("ers/{region}/notice/coal_supply")
}

/// Subscribes to `topic`; returns the client and a receiver of (arrival, notice).
fn notices(port: u16, topic: &str, tag: &str) -> (Client, Notices) {
    let (c, mut conn) = client(port, &format!("bench-{tag}-{}", std::process::id()));
    c.subscribe(topic, QoS::AtLeastOnce).expect("subscribe");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for ev in conn.iter() {
            let v = match ev {
                Ok(Event::Incoming(Packet::SubAck(_))) => Value::Null,
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    serde_json::from_slice(&p.payload).unwrap_or(Value::Null)
                }
                Ok(_) => continue,
                Err(e) => {
                    eprintln!("notice connection: {e}");
                    return;
                }
            };
            if tx.send((Instant::now(), v)).is_err() {
                return;
            }
        }
    });
    // The SUBACK comes first.
    rx.recv_timeout(Duration::from_secs(30)).expect("SUBACK");
    (c, rx)
}

/// Waits for the notice of `kind` at `level` (other notices, such as reports, are skipped).
fn wait_notice(rx: &Notices, kind: &str, level: &str, within: Duration) -> Instant {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let (at, v) = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no coal {kind} at level {level} within {within:?}"));
        if v["kind"] == kind && v["level"] == level {
            return at;
        }
    }
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    let i = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[i.clamp(1, sorted.len()) - 1]
}

fn summary(name: &str, mut ms: Vec<f64>) {
    if ms.is_empty() {
        println!("{name}: n=0 (nothing timed)");
        return;
    }
    ms.sort_by(f64::total_cmp);
    println!(
        "{name}: n={} p50={:.2} ms p90={:.2} ms p99={:.2} ms max={:.2} ms",
        ms.len(),
        pct(&ms, 50.0),
        pct(&ms, 90.0),
        pct(&ms, 99.0),
        ms[ms.len() - 1]
    );
}

/// A connection that only publishes (its event loop pumped by a thread of its own).
fn publisher(port: u16, tag: &str) -> Client {
    let (c, mut conn) = client(port, &format!("bench-{tag}-{}", std::process::id()));
    std::thread::spawn(move || {
        for ev in conn.iter() {
            if let Err(e) = ev {
                eprintln!("command connection: {e}");
                return;
            }
        }
    });
    c
}

/// N `manual` commands on `cmd`, one after another, each timed until the notice it makes
/// arrives on `notice`; prints the percentiles as `name`.
fn rounds(port: u16, (cmd, notice): (&str, &str), n: usize, name: &str) {
    let (sub, rx) = notices(port, notice, "rt");
    // BENCH_RT_SPLIT=1: the commands on a connection of their own (for comparison).
    let c = if std::env::var_os("BENCH_RT_SPLIT").is_some() {
        publisher(port, "rt-cmd")
    } else {
        sub.clone()
    };
    let mut ms = Vec::with_capacity(n);
    for i in 0..n {
        // The drain left L2 in force: none, L2, none, …
        let (kind, level) = if i % 2 == 0 {
            ("terminate", "none")
        } else {
            ("activate", "L2")
        };
        let t0 = Instant::now();
        c.publish(cmd, QoS::AtLeastOnce, false, manual(level))
            .expect("publish");
        let at = wait_notice(&rx, kind, level, Duration::from_secs(60));
        ms.push(at.duration_since(t0).as_secs_f64() * 1e3);
    }
    summary(name, ms);
    let _ = c.disconnect();
    let _ = sub.disconnect();
}

fn roundtrip(port: u16, region: &str, n: usize, dir: &str) {
    let topics = (format!("ers/{region}/cmd"), notice_topic(region));
    rounds(port, (&topics.0, &topics.1), n, "round trip");
    // The disk's share: what one synced write costs at least on this file system.
    let path = std::path::Path::new(dir).join("bench-fsync.tmp");
    let mut f = std::fs::File::create(&path).expect("create");
    let block = vec![7u8; 4096];
    let mut ms = Vec::with_capacity(n);
    for _ in 0..n {
        let t0 = Instant::now();
        f.write_all(&block).expect("write");
        f.sync_data().expect("fdatasync");
        ms.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    summary("fdatasync 4 KiB", ms);
    let _ = std::fs::remove_file(path);
}

/// The broker's floor for the round trip: a bare responder (a rumqttc client like the
/// daemon's connections: TCP_NODELAY, QoS 1, the command PUBACKed before the answer is
/// published, as the daemon acks an input before its notice goes out) answers each command
/// on `bench/{region}/cmd` with a small notice of the same kind and level on
/// `bench/{region}/notice`; the same client as `roundtrip` times N rounds against it. The
/// topics are not the daemon's, so the daemon sees none of it. Whatever the broker adds
/// (e.g. Nagle's algorithm on its sockets, `set_tcp_nodelay false`) is in this number too.
fn echo(port: u16, region: &str, n: usize) {
    let (cmd, notice) = (
        format!("bench/{region}/cmd"),
        format!("bench/{region}/notice"),
    );
    let (c, mut conn) = client(port, &format!("bench-echo-{}", std::process::id()));
    c.subscribe(&cmd, QoS::AtLeastOnce).expect("subscribe");
    let (ready_tx, ready_rx) = mpsc::channel();
    let responder = c.clone();
    let topic = notice.clone();
    std::thread::spawn(move || {
        for ev in conn.iter() {
            match ev {
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    let _ = ready_tx.send(());
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let v: Value = serde_json::from_slice(&p.payload).unwrap_or(Value::Null);
                    let level = v["level"].as_str().unwrap_or("none");
                    let kind = if level == "none" {
                        "terminate"
                    } else {
                        "activate"
                    };
                    let answer = json!({"plan": "coal_supply", "kind": kind, "level": level});
                    responder
                        .publish(&topic, QoS::AtLeastOnce, false, answer.to_string())
                        .expect("publish");
                }
                Ok(_) => {}
                Err(e) => {
                    eprintln!("responder connection: {e}");
                    return;
                }
            }
        }
    });
    ready_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("responder SUBACK");
    rounds(port, (&cmd, &notice), n, "round trip, bare responder");
    let _ = c.disconnect();
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let port = |i: usize| a[i].parse::<u16>().expect("PORT");
    match a.get(1).map(String::as_str) {
        Some("fill") => fill(port(2), &a[3], a[4].parse().expect("N")),
        Some("await") => {
            let (_c, rx) = notices(port(2), &notice_topic(&a[3]), "await");
            println!("ready");
            std::io::stdout().flush().expect("stdout");
            wait_notice(&rx, "activate", "L2", Duration::from_secs(1800));
            println!("{:.6}", unix_now());
        }
        Some("roundtrip") => roundtrip(port(2), &a[3], a[4].parse().expect("N"), &a[5]),
        Some("echo") => echo(port(2), &a[3], a[4].parse().expect("N")),
        _ => {
            eprintln!("usage: bench_live fill|await|roundtrip|echo PORT REGION [N] [DIR]");
            std::process::exit(2);
        }
    }
}
