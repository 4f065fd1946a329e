//! End-to-end: the HTTP server out of file descriptors (issue 9 item 4). The daemon runs
//! under a lowered RLIMIT_NOFILE (`prlimit`, in a child process) against a real mosquitto;
//! more connections than it has descriptors are opened and held. It must log the accept
//! failure, keep its MQTT side running, and answer `/healthz` again once they are gone
//! (the hand-written server's accept loop ended on the first EMFILE, until restart).

mod e2e_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use e2e_support::scenario::*;
use e2e_support::*;

struct Limited {
    child: Child,
    log: std::path::PathBuf,
}

impl Drop for Limited {
    fn drop(&mut self) {
        sigterm(self.child.id());
        let _ = self.child.wait();
    }
}

/// GET `path` on a fresh connection; `None` when nothing answers within 3 s.
fn try_get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    (!out.is_empty()).then_some(out)
}

#[test]
fn out_of_file_descriptors_the_server_pauses_and_serves_again() {
    let tmp = TempDir::new("e2e-emfile");
    let dir = tmp.path();
    let broker = Mosquitto::start(dir);
    let http = free_port();
    let p = config(dir, broker.port, "emfile", 4, "");
    let text = std::fs::read_to_string(&p).unwrap().replace(
        "listen = \"127.0.0.1:0\"",
        &format!("listen = \"127.0.0.1:{http}\"\nmax_connections = 1000"),
    );
    std::fs::write(&p, text).unwrap();
    let log = dir.join("daemon.log");
    let f = std::fs::File::create(&log).unwrap();
    let child = Command::new("prlimit")
        .arg("--nofile=64:64")
        .arg(env!("CARGO_BIN_EXE_yingji"))
        .args(["run", "--json-logs", "--config"])
        .arg(&p)
        .current_dir(dir)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(f.try_clone().unwrap())
        .stderr(f)
        .spawn()
        .expect("prlimit (util-linux) runs yingji");
    let d = Limited { child, log };
    let healthy = || {
        try_get(http, "/healthz").filter(|r| r.starts_with("HTTP/1.1 200") && r.contains("\"ok\""))
    };
    wait_for(Duration::from_secs(60), "the daemon healthy", healthy);

    // Far more connections than 64 descriptors, held open.
    let held: Vec<TcpStream> = (0..150)
        .filter_map(|_| TcpStream::connect(("127.0.0.1", http)).ok())
        .collect();
    assert!(held.len() > 64, "only {} connections opened", held.len());
    let log_text = || std::fs::read_to_string(&d.log).unwrap_or_default();
    // Every descriptor is taken once the listen queue is drained into the process.
    wait_for(Duration::from_secs(30), "descriptors exhausted", || {
        (try_get(http, "/healthz").is_none()).then_some(())
    });
    drop(held);
    wait_for(
        Duration::from_secs(60),
        "/healthz answering after the descriptors came back",
        healthy,
    );
    let metrics = try_get(http, "/metrics").expect("metrics");
    let errors: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("yingji_http_accept_errors_total "))
        .expect("accept errors counted")
        .trim()
        .parse()
        .unwrap();
    assert!(errors > 0, "{metrics}");
    assert!(
        log_text().contains("cannot accept connections")
            && log_text().contains("accepting connections again"),
        "{}",
        log_text()
    );
}
