//! End-to-end harness: a real mosquitto started per test (config from STACK-NOTES.md), the
//! `yingji` binary as a child process, and MQTT clients (rumqttc) to publish and watch.
//! Every test uses its own free ports and temp dir; children are killed on drop.
#![allow(dead_code)]

use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::sleep;
use std::time::Duration;

use rumqttc::{Client, Event, MqttOptions, Packet, QoS};

pub mod scenario;

pub const BIN: &str = env!("CARGO_BIN_EXE_yingji");

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A fresh temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let p = std::env::temp_dir().join(format!("yingji-e2e-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("YINGJI_E2E_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Polls `f` every 20 ms until it returns `Some`, or panics after `within` with `what`.
pub fn wait_for<T>(within: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let steps = (within.as_millis() / 20).max(1);
    for _ in 0..steps {
        if let Some(v) = f() {
            return v;
        }
        sleep(Duration::from_millis(20));
    }
    panic!("timed out after {within:?} waiting for {what}");
}

fn mosquitto_bin() -> PathBuf {
    for p in [
        "/usr/sbin/mosquitto",
        "/usr/local/sbin/mosquitto",
        "/usr/bin/mosquitto",
    ] {
        if Path::new(p).exists() {
            return p.into();
        }
    }
    if Command::new("mosquitto").arg("-h").output().is_ok() {
        return "mosquitto".into();
    }
    panic!("mosquitto is not installed: the end-to-end tests need a real broker (run scripts/test.sh, which installs it)");
}

/// A mosquitto broker on a free port, with persistence in a temp dir.
pub struct Mosquitto {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
    starts: u32,
    /// Replaces `allow_anonymous true` and adds listeners (auth, TLS tests).
    extra: Option<String>,
}

impl Mosquitto {
    pub fn start(dir: &Path) -> Mosquitto {
        Self::start_with(dir, None)
    }

    /// With `extra` config lines instead of `allow_anonymous true`.
    pub fn start_with(dir: &Path, extra: Option<String>) -> Mosquitto {
        let mut m = Mosquitto {
            port: free_port(),
            dir: dir.join("mosquitto"),
            child: None,
            starts: 0,
            extra,
        };
        std::fs::create_dir_all(&m.dir).unwrap();
        m.spawn();
        m
    }

    /// On a given port (a daemon may have been started before its broker).
    pub fn start_on(dir: &Path, port: u16) -> Mosquitto {
        let mut m = Mosquitto {
            port,
            dir: dir.join("mosquitto"),
            child: None,
            starts: 0,
            extra: None,
        };
        std::fs::create_dir_all(&m.dir).unwrap();
        m.spawn();
        m
    }

    /// Starts it again after [`Mosquitto::stop`] (same port, same persistence).
    pub fn start_again(&mut self) {
        self.spawn();
    }

    fn spawn(&mut self) {
        let conf = self.dir.join("mosquitto.conf");
        // STACK-NOTES.md: max_queued_messages 0 (the default 1000 silently drops QoS 1
        // messages to a busy subscriber); persistence for sessions across a restart; as
        // root it would drop to user `mosquitto`, which cannot write the temp dir.
        let auth = self
            .extra
            .clone()
            .unwrap_or_else(|| "allow_anonymous true\n".into());
        let text = format!(
            "listener {port} 127.0.0.1\nmax_queued_messages 0\n\
             persistence true\npersistence_location {dir}/\nautosave_interval 1\n\
             user root\nlog_dest stderr\n{auth}",
            port = self.port,
            dir = self.dir.display()
        );
        std::fs::write(&conf, text).unwrap();
        self.starts += 1;
        let log = std::fs::File::create(self.dir.join(format!("log-{}.txt", self.starts))).unwrap();
        let child = Command::new(mosquitto_bin())
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start mosquitto");
        self.child = Some(child);
        let port = self.port;
        wait_for(Duration::from_secs(30), "mosquitto to listen", || {
            TcpStream::connect(("127.0.0.1", port)).ok()
        });
    }

    /// SIGTERM, wait for it to exit (it saves its persistence file), start again.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            sigterm(c.id());
            let _ = wait_exit(&mut c, Duration::from_secs(10));
        }
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub fn sigterm(pid: u32) {
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
}

fn wait_exit(c: &mut Child, within: Duration) -> Option<ExitStatus> {
    let steps = within.as_millis() / 10;
    for _ in 0..steps {
        if let Ok(Some(s)) = c.try_wait() {
            return Some(s);
        }
        sleep(Duration::from_millis(10));
    }
    let _ = c.kill();
    c.wait().ok();
    None
}

/// The daemon as a child process; its log (JSON lines) in the temp dir.
pub struct Daemon {
    child: Option<Child>,
    pub log: PathBuf,
}

impl Daemon {
    pub fn start(dir: &Path, config: &Path, env: &[(&str, String)]) -> Daemon {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let log = dir.join(format!("daemon-{n}.log"));
        let f = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new(BIN);
        cmd.args(["run", "--json-logs", "--config"])
            .arg(config)
            .current_dir(dir)
            .env("RUST_LOG", "info,yingji=debug")
            .stdin(Stdio::null())
            .stdout(f.try_clone().unwrap())
            .stderr(f);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("start yingji");
        Daemon {
            child: Some(child),
            log,
        }
    }

    /// The process id (while it runs).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log has `needle` (panics with the log otherwise).
    pub fn wait_log(&mut self, needle: &str, within: Duration) {
        let steps = within.as_millis() / 20;
        for _ in 0..steps {
            if self.log_text().contains(needle) {
                return;
            }
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(s)) = c.try_wait() {
                    panic!(
                        "yingji exited ({s}) before logging {needle:?}:\n{}",
                        self.log_text()
                    );
                }
            }
            sleep(Duration::from_millis(20));
        }
        panic!(
            "yingji did not log {needle:?} within {within:?}:\n{}",
            self.log_text()
        );
    }

    /// Running, with both MQTT connections up.
    pub fn wait_ready(&mut self) {
        self.wait_log("input connection up", Duration::from_secs(60));
        self.wait_log("output connection up", Duration::from_secs(60));
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait; returns the exit status (panics if it does not stop in 60 s).
    pub fn term(&mut self) -> ExitStatus {
        let mut c = self.child.take().expect("running");
        sigterm(c.id());
        wait_exit(&mut c, Duration::from_secs(60))
            .unwrap_or_else(|| panic!("yingji did not stop on SIGTERM:\n{}", self.log_text()))
    }

    /// Waits for the process to exit by itself.
    pub fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let mut c = self.child.take().expect("running");
        wait_exit(&mut c, within)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A subscriber with a persistent session that records every message, reconnecting
/// through broker restarts.
/// Messages received: (topic, payload).
pub type Received = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

pub struct Watcher {
    pub msgs: Received,
    client: Client,
    port: u16,
    /// A topic of its own, for `sync`.
    sync_topic: String,
}

impl Watcher {
    pub fn start(port: u16, id: &str, filters: &[&str]) -> Watcher {
        Self::start_as(port, id, filters, None)
    }

    /// With a username and password (`creds`) when the broker wants them.
    pub fn start_as(port: u16, id: &str, filters: &[&str], creds: Option<(&str, &str)>) -> Watcher {
        let mut o = MqttOptions::new(id, "127.0.0.1", port);
        o.set_clean_session(false)
            .set_keep_alive(Duration::from_secs(5))
            .set_max_packet_size(1 << 24, 1 << 24);
        if let Some((u, p)) = creds {
            o.set_credentials(u, p);
        }
        let (client, mut conn) = Client::new(o, 100);
        let msgs = Arc::new(Mutex::new(Vec::new()));
        let subscribed = Arc::new(Mutex::new(0usize));
        let (m, s) = (Arc::clone(&msgs), Arc::clone(&subscribed));
        let c = client.clone();
        let sync_topic = format!("e2e-sync/{id}");
        let mut filters: Vec<String> = filters.iter().map(|f| f.to_string()).collect();
        filters.push(sync_topic.clone());
        let want = filters.len();
        std::thread::spawn(move || loop {
            match conn.recv() {
                Err(_) => return,
                Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => {
                    for f in &filters {
                        let _ = c.try_subscribe(f.clone(), QoS::AtLeastOnce);
                    }
                }
                Ok(Ok(Event::Incoming(Packet::SubAck(_)))) => *s.lock().unwrap() += 1,
                Ok(Ok(Event::Incoming(Packet::Publish(p)))) => m
                    .lock()
                    .unwrap()
                    .push((p.topic.clone(), p.payload.to_vec())),
                Ok(Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect))) => return,
                Ok(Ok(_)) => {}
                Ok(Err(_)) => sleep(Duration::from_millis(100)),
            }
        });
        wait_for(
            Duration::from_secs(30),
            "the watcher's subscriptions",
            || (*subscribed.lock().unwrap() >= want).then_some(()),
        );
        Watcher {
            msgs,
            client,
            port,
            sync_topic,
        }
    }

    /// Every message received (the `sync` markers left out).
    pub fn all(&self) -> Vec<(String, Vec<u8>)> {
        let mut v = self.msgs.lock().unwrap().clone();
        v.retain(|(t, _)| *t != self.sync_topic);
        v
    }

    /// Returns once the watcher has received everything the broker routed to it before
    /// this call: a marker published now to the watcher's own topic comes back after
    /// them (the broker sends a subscriber's messages in the order it queued them).
    /// Call it after the daemon stopped (its outbox flushed: the broker acknowledged
    /// every publication) to see all it published, without waiting for a guessed time.
    pub fn sync(&self) {
        let marker = format!("sync-{}", COUNTER.fetch_add(1, Ordering::SeqCst));
        publish(
            self.port,
            &[(self.sync_topic.clone(), marker.clone().into_bytes())],
        );
        let topic = &self.sync_topic;
        wait_for(Duration::from_secs(60), "the watcher's sync marker", || {
            self.msgs
                .lock()
                .unwrap()
                .iter()
                .any(|(t, p)| t == topic && *p == marker.as_bytes())
                .then_some(())
        });
    }

    /// Payloads (as JSON) of messages whose topic contains `part`.
    pub fn json_on(&self, part: &str) -> Vec<serde_json::Value> {
        self.all()
            .into_iter()
            .filter(|(t, _)| t.contains(part))
            .map(|(t, p)| {
                serde_json::from_slice(&p).unwrap_or_else(|e| panic!("{t}: not JSON ({e})"))
            })
            .collect()
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.client.try_disconnect();
    }
}

/// Publishes every message with QoS 1 and waits until the broker acknowledged them all.
pub fn publish(port: u16, msgs: &[(String, Vec<u8>)]) {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let mut o = MqttOptions::new(
        format!("e2e-pub-{}-{n}", std::process::id()),
        "127.0.0.1",
        port,
    );
    o.set_max_packet_size(1 << 24, 1 << 24);
    let (client, mut conn) = Client::new(o, msgs.len() + 10);
    for (t, p) in msgs {
        client
            .publish(t.clone(), QoS::AtLeastOnce, false, p.clone())
            .unwrap();
    }
    let mut acked = 0;
    let mut errors = 0;
    while acked < msgs.len() {
        match conn.recv_timeout(Duration::from_secs(30)) {
            Ok(Ok(Event::Incoming(Packet::PubAck(_)))) => acked += 1,
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                errors += 1;
                assert!(errors < 50, "publishing failed: {e}");
                sleep(Duration::from_millis(100));
            }
            Err(e) => panic!(
                "publishing: no PUBACK ({e:?}), {acked}/{} acked",
                msgs.len()
            ),
        }
    }
    let _ = client.disconnect();
    let _ = conn.recv_timeout(Duration::from_millis(200));
}

/// Writes a file.
pub fn write(path: &Path, text: &str) {
    let mut f = std::fs::File::create(path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
}
