//! End-to-end, for operators: one daemon per store (lock), a client id taken over by
//! another client, one owner per region (claims), SIGTERM with the broker down.

mod e2e_support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use e2e_support::*;

/// A small config: its own store and client id, the given regions.
fn ops_config(dir: &Path, port: u16, name: &str, protocol: u8, regions: &[&str]) -> PathBuf {
    let mut text = format!(
        "[mqtt]\nurl = \"mqtt://127.0.0.1:{port}\"\nclient_id = \"yingji-e2e-ops-{name}-{pid}\"\n\
         protocol = {protocol}\nkeep_alive_s = 5\nsplit_regions = true\n\n[store]\npath = \"{db}\"\n\n\
         [http]\nlisten = \"127.0.0.1:0\"\n",
        pid = std::process::id(),
        db = dir.join(format!("{name}.db")).display(),
    );
    for r in regions {
        text += &format!("\n[[region]]\nid = \"{r}\"\nname = \"{r}\"\n");
    }
    let p = dir.join(format!("{name}.toml"));
    write(&p, &text);
    p
}

#[test]
fn a_second_daemon_on_the_same_store_exits_2_naming_the_holder() {
    let tmp = TempDir::new("lock");
    let dir = tmp.path();
    let broker = Mosquitto::start(dir);
    let cfg = ops_config(dir, broker.port, "lock", 4, &["shuozhou"]);
    let mut first = Daemon::start(dir, &cfg, &[]);
    first.wait_ready();
    let out = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&cfg)
        .current_dir(dir)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    let pid = first.pid().to_string();
    assert!(
        err.contains("in use by another yingji") && err.contains(&format!("pid {pid}")),
        "{err}"
    );
    assert!(first.term().success(), "{}", first.log_text());
}

/// Another client connecting with the daemon's client id, again and again: each drop is
/// logged as an error naming the cause, and the reconnect delay grows instead of the two
/// knocking each other off every 100 ms.
fn takeover(protocol: u8, cause: &str) {
    let tmp = TempDir::new(&format!("takeover-v{protocol}"));
    let dir = tmp.path();
    let broker = Mosquitto::start(dir);
    let name = format!("takeover{protocol}");
    let cfg = ops_config(dir, broker.port, &name, protocol, &["shuozhou"]);
    let mut d = Daemon::start(dir, &cfg, &[]);
    d.wait_ready();
    let client_id = format!("yingji-e2e-ops-{name}-{}", std::process::id());
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let rogue = {
        let stop = std::sync::Arc::clone(&stop);
        let port = broker.port;
        std::thread::spawn(move || {
            let mut o = rumqttc::MqttOptions::new(client_id, "127.0.0.1", port);
            o.set_keep_alive(Duration::from_secs(5));
            let (_c, mut conn) = rumqttc::Client::new(o, 10);
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                if let Ok(Err(_)) = conn.recv_timeout(Duration::from_millis(200)) {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        })
    };
    // The delays the daemon logs for these drops grow past 800 ms (100, 200, 400, 800).
    wait_for(
        Duration::from_secs(60),
        "a grown backoff after takeovers",
        || {
            d.log_text()
                .lines()
                .filter(|l| l.contains("\"level\":\"ERROR\"") && l.contains(cause))
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .any(|v| v["retry_in_ms"].as_u64() >= Some(800))
                .then_some(())
        },
    );
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    rogue.join().unwrap();
    assert!(d.term().success(), "{}", d.log_text());
}

// mosquitto 2.0 closes the connection it takes over without a DISCONNECT (no 0x8E
// "session taken over", even to an MQTT 5 client): both versions see a connection
// dropped right after its CONNACK.
#[test]
fn a_taken_over_client_id_is_an_error_and_backs_off_v5() {
    takeover(5, "another client with our client id?");
}

#[test]
fn a_taken_over_client_id_is_an_error_and_backs_off_v311() {
    takeover(4, "another client with our client id?");
}

/// The claims retained on the owner topics, as the watcher saw them last: region ->
/// client id of the owner (`None`: cleared).
fn owners(w: &Watcher) -> std::collections::BTreeMap<String, Option<String>> {
    w.all()
        .into_iter()
        .map(|(t, p)| {
            let region = t.rsplit('/').next().unwrap().to_string();
            let owner = (!p.is_empty()).then(|| {
                let v: serde_json::Value = serde_json::from_slice(&p).unwrap();
                v["client_id"].as_str().unwrap().to_string()
            });
            (region, owner)
        })
        .collect()
}

/// docs/deployment.md: several daemons on one broker, each with its own regions, client
/// id and store. Two with disjoint regions run side by side; a third that overlaps one
/// of them is refused (exit 2, naming the owner) and leaves the owner's claim alone; a
/// daemon that stops clears its claims, and its regions can then be taken over.
#[test]
fn daemons_with_disjoint_regions_share_a_broker_and_an_overlapping_one_is_refused() {
    let tmp = TempDir::new("claims");
    let dir = tmp.path();
    let broker = Mosquitto::start(dir);
    let watch = Watcher::start(
        broker.port,
        &format!("e2e-watch-claims-{}", std::process::id()),
        &["ers/_yingji/owner/+"],
    );
    let pid = std::process::id();
    let id = |n: &str| Some(format!("yingji-e2e-ops-{n}-{pid}"));
    let cfg_a = ops_config(dir, broker.port, "north", 4, &["shuocheng", "pinglu"]);
    let cfg_b = ops_config(dir, broker.port, "south", 5, &["huairen", "yingxian"]);
    let cfg_c = ops_config(dir, broker.port, "overlap", 4, &["youyu", "yingxian"]);
    let mut a = Daemon::start(dir, &cfg_a, &[]);
    let mut b = Daemon::start(dir, &cfg_b, &[]);
    a.wait_ready();
    b.wait_ready();
    wait_for(Duration::from_secs(20), "four claims", || {
        let o = owners(&watch);
        (o.len() == 4 && o.values().all(Option::is_some)).then_some(o)
    });
    let o = owners(&watch);
    assert_eq!(o["shuocheng"], id("north"));
    assert_eq!(o["pinglu"], id("north"));
    assert_eq!(o["huairen"], id("south"));
    assert_eq!(o["yingxian"], id("south"));

    let out = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&cfg_c)
        .current_dir(dir)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("region yingxian is owned by another live yingji")
            && err.contains(&id("south").unwrap())
            && err.contains(&format!("pid {}", b.pid())),
        "{err}"
    );
    // The refused daemon's claim of its free region (if it got that far) is gone with it;
    // the owner's stays.
    wait_for(Duration::from_secs(10), "youyu not claimed", || {
        owners(&watch)
            .get("youyu")
            .map_or(true, Option::is_none)
            .then_some(())
    });
    let o = owners(&watch);
    assert_eq!(o["yingxian"], id("south"), "{o:?}");
    assert!(a.log_text().contains("region claimed"));

    // The south daemon stops: its claims are cleared, and the overlapping one starts.
    assert!(b.term().success(), "{}", b.log_text());
    wait_for(Duration::from_secs(10), "south's claims cleared", || {
        let o = owners(&watch);
        (o["huairen"].is_none() && o["yingxian"].is_none()).then_some(())
    });
    let mut c = Daemon::start(dir, &cfg_c, &[]);
    c.wait_ready();
    wait_for(
        Duration::from_secs(20),
        "the overlapping daemon's claims",
        || {
            let o = owners(&watch);
            (o["youyu"] == id("overlap") && o["yingxian"] == id("overlap")).then_some(())
        },
    );
    // A daemon killed outright: its will clears its claims.
    a.kill9();
    wait_for(
        Duration::from_secs(20),
        "north's claims cleared by its will",
        || {
            let o = owners(&watch);
            (o["shuocheng"].is_none() && o["pinglu"].is_none()).then_some(())
        },
    );
    assert!(c.term().success(), "{}", c.log_text());
}

/// After-action review: the journal exported as a scenario file, replayed with the config
/// the daemon stored at its start, gives the stored notices id for id (timers that fired
/// after the last input included); `calls export` reads the register with that config.
#[test]
fn a_whole_journal_export_replays_to_the_stored_notices() {
    use e2e_support::scenario::*;
    let tmp = TempDir::new("export");
    let dir = tmp.path();
    let broker = Mosquitto::start(dir);
    let cfg = config(dir, broker.port, "export", 4, "");
    let now = yingji::clock::now();
    let mut valid = 0;
    // Two runs of the daemon: the export spans a restart.
    for parts in [&[0u8, 1][..], &[2]] {
        let mut d = Daemon::start(dir, &cfg, &[]);
        d.wait_ready();
        for &part in parts {
            let batch = inputs(now, part);
            valid += batch.iter().filter(|(t, p)| !is_malformed(t, p)).count();
            publish(broker.port, &batch);
            if part == 0 {
                // Timers fire between messages: the calls run out, a data gap opens.
                wait_round_over(dir);
                wait_last_gap(dir);
            }
        }
        wait_journal(dir, valid);
        // And after the last input: the export has a timer after its last input to replay.
        wait_last_gap(dir);
        assert!(d.term().success(), "{}", d.log_text());
        // Each accepted input is one line at debug (the harness runs yingji=debug).
        assert!(d.log_text().contains("input accepted"), "{}", d.log_text());
    }
    let scen = dir.join("export.jsonl");
    let stored_cfg = dir.join("stored.toml");
    let st = Command::new(BIN)
        .args(["journal", "export", "--config"])
        .arg(&cfg)
        .arg("--out")
        .arg(&scen)
        .arg("--config-out")
        .arg(&stored_cfg)
        .status()
        .unwrap();
    assert!(st.success());
    let replayed = dir.join("replayed.jsonl");
    let st = Command::new(BIN)
        .args(["replay", "--quiet", "--config"])
        .arg(&stored_cfg)
        .arg("--out")
        .arg(&replayed)
        .arg(&scen)
        .status()
        .unwrap();
    assert!(st.success());
    let replayed: Vec<serde_json::Value> = std::fs::read_to_string(&replayed)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let store = yingji::daemon::store::Store::open(&dir.join("yingji.db")).unwrap();
    let stored: Vec<serde_json::Value> = store
        .notices()
        .unwrap()
        .iter()
        .map(|n| serde_json::to_value(n).unwrap())
        .collect();
    assert!(stored.len() > 5, "{stored:?}");
    assert_eq!(ids(&replayed), ids(&stored));
    assert_eq!(replayed, stored);
    let configs = yingji::daemon::history::stored_configs(&store).unwrap();
    assert_eq!(configs.len(), 2, "one stored config per start");
    assert_eq!(configs[0].fingerprint, configs[1].fingerprint);
    assert!(std::fs::read_to_string(&stored_cfg)
        .unwrap()
        .contains(&configs[1].fingerprint));

    // A partial export: only the inputs of part 2 (a fresh engine, fewer notices).
    let out = Command::new(BIN)
        .args(["journal", "export", "--region", "elsewhere", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.lines().all(|l| l.starts_with("//")), "{text}");

    // The register, with the stored config (the contacts): no --config needed.
    let out = Command::new(BIN)
        .args(["calls", "export", "--event", "e2e-rain", "--store"])
        .arg(dir.join("yingji.db"))
        .current_dir(dir)
        .output()
        .unwrap();
    let csv = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(csv.contains(",yjj,") && csv.lines().count() > 2, "{csv}");
    // Replayed with a config that has no contacts, the same event called nobody: exit 1.
    let empty = dir.join("empty.toml");
    write(&empty, "");
    let out = Command::new(BIN)
        .args(["calls", "export", "--event", "e2e-rain", "--config"])
        .arg(&empty)
        .arg("--replay")
        .arg(&scen)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("called nobody"));
}

/// systemd `Type=notify` with a fake NOTIFY_SOCKET: READY=1 only once the daemon is live
/// (recovered, echoes drained), WATCHDOG=1 pings from the core loop, STOPPING=1 at the
/// end; and the unit file in packaging/ asks for all of it.
#[test]
fn systemd_notify_ready_after_the_drain_then_watchdog_pings() {
    use std::os::unix::net::UnixDatagram;
    let tmp = TempDir::new("notify");
    let dir = tmp.path();
    let broker = Mosquitto::start(dir);
    let cfg = ops_config(dir, broker.port, "notify", 4, &["shuozhou"]);
    let sock_path = dir.join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut d = Daemon::start(
        dir,
        &cfg,
        &[
            ("NOTIFY_SOCKET", sock_path.display().to_string()),
            ("WATCHDOG_USEC", "2000000".into()),
        ],
    );
    let mut got: Vec<String> = Vec::new();
    let recv = |got: &mut Vec<String>| {
        let mut buf = [0u8; 512];
        if let Ok(n) = sock.recv(&mut buf) {
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    };
    let mut log_at_ready = None;
    wait_for(Duration::from_secs(30), "READY=1", || {
        recv(&mut got);
        let ready = got.iter().any(|m| m.lines().any(|l| l == "READY=1"));
        if ready && log_at_ready.is_none() {
            log_at_ready = Some(d.log_text());
        }
        log_at_ready.as_ref().map(|_| ())
    });
    let log = log_at_ready.unwrap();
    assert!(log.contains("recovered state from the store"), "{log}");
    assert!(
        log.contains("sending what was not delivered before"),
        "{log}"
    );
    wait_for(
        Duration::from_secs(30),
        "two watchdog pings after READY",
        || {
            recv(&mut got);
            let after: Vec<&String> = got
                .iter()
                .skip_while(|m| !m.contains("READY=1"))
                .filter(|m| m.lines().any(|l| l == "WATCHDOG=1"))
                .collect();
            (after.len() >= 2).then_some(())
        },
    );
    d.wait_log("input connection up", Duration::from_secs(20));
    assert!(d.term().success());
    wait_for(Duration::from_secs(5), "STOPPING=1", || {
        recv(&mut got);
        got.iter().any(|m| m.contains("STOPPING=1")).then_some(())
    });

    let unit = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/yingji.service"),
    )
    .unwrap();
    for line in [
        "Type=notify",
        "WatchdogSec=30",
        "Restart=on-failure",
        "RestartPreventExitStatus=2",
        "User=yingji",
        "StateDirectory=yingji",
        "WorkingDirectory=/var/lib/yingji",
    ] {
        assert!(
            unit.lines().any(|l| l == line),
            "{line} missing in the unit"
        );
    }
}

/// SIGTERM with the broker down: noticed and the daemon exits cleanly (nothing to flush
/// can go out; the outbox keeps it for the next start).
#[test]
fn sigterm_with_the_broker_down_exits() {
    let tmp = TempDir::new("term-down");
    let dir = tmp.path();
    let cfg = ops_config(dir, free_port(), "termdown", 4, &["shuozhou"]);
    let mut d = Daemon::start(dir, &cfg, &[]);
    d.wait_log("yingji is running", Duration::from_secs(60));
    let st = d.term();
    assert!(st.success(), "{st}: {}", d.log_text());
    assert!(d.log_text().contains("stopped cleanly"));
    // Also while it still waits for the broker to answer the region claims.
    let mut d = Daemon::start(dir, &cfg, &[]);
    d.wait_log("config stored", Duration::from_secs(30));
    assert!(d.term().success(), "{}", d.log_text());
    assert!(d.log_text().contains("stopped while claiming the regions"));
}
