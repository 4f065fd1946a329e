#!/usr/bin/env python3
"""Fault injection against a real mosquitto, a real SMTP server and the yingji binary.

Reruns the runs that found issue 9's failures and counts what went wrong:
  1. kill:           inputs arrive while the daemon is SIGKILLed and restarted, repeatedly;
  2. broker restart: mosquitto is restarted twice while call timers run;
  3. SMTP hang:      the SMTP server accepts and never greets, then a real one replaces it;
  4. flood:          thousands of inputs at once, retained ones among them, then restarts;
  plus retained warnings issued, lifted and replayed by the broker at every restart.

Prints, for notices on MQTT and for emails, how many were lost (in the outbox, never
seen), duplicated (seen more than once) and resurrected (a lifted warning activated
again), and exits 1 unless all are zero.

Usage: python3 scripts/fault_injection.py [--bin target/debug/yingji] [--keep]
Needs: mosquitto, mosquitto-clients, python3-aiosmtpd (scripts/test.sh installs them).
"""
import argparse
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import datetime, timedelta, timezone

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TZ = timezone(timedelta(hours=8))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def ts(t):
    return t.astimezone(TZ).isoformat(timespec="seconds")


def wait(what, f, within=60.0):
    end = time.monotonic() + within
    while time.monotonic() < end:
        v = f()
        if v:
            return v
        time.sleep(0.05)
    raise SystemExit(f"timed out after {within} s waiting for {what}")


class Broker:
    def __init__(self, d):
        self.port = free_port()
        self.dir = os.path.join(d, "mosquitto")
        os.makedirs(self.dir, exist_ok=True)
        self.conf = os.path.join(self.dir, "mosquitto.conf")
        with open(self.conf, "w") as f:
            f.write(
                f"listener {self.port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\n"
                f"persistence true\npersistence_location {self.dir}/\nautosave_interval 1\n"
                "user root\nlog_dest stderr\n"
            )
        self.p = None
        self.start()

    def start(self):
        log = open(os.path.join(self.dir, "log.txt"), "a")
        self.p = subprocess.Popen(["mosquitto", "-c", self.conf], stdout=log, stderr=log)
        CHILDREN.append(self.p)
        wait("mosquitto", lambda: _connects(self.port), 10)

    def stop(self):
        if self.p:
            self.p.send_signal(signal.SIGTERM)
            self.p.wait(10)
            self.p = None

    def restart(self):
        self.stop()
        self.start()


def _connects(port):
    try:
        socket.create_connection(("127.0.0.1", port), 0.2).close()
        return True
    except OSError:
        return False


class Daemon:
    n = 0

    def __init__(self, binary, d, cfg):
        self.binary, self.d, self.cfg = binary, d, cfg
        self.p = None

    def start(self):
        Daemon.n += 1
        self.log = os.path.join(self.d, f"daemon-{Daemon.n}.log")
        f = open(self.log, "w")
        env = dict(os.environ, RUST_LOG="info")
        self.p = subprocess.Popen(
            [self.binary, "run", "--json-logs", "--config", self.cfg],
            cwd=self.d, stdout=f, stderr=f, env=env,
        )
        CHILDREN.append(self.p)
        wait("the daemon's connections", lambda: "output connection up" in self.text(), 30)

    def text(self):
        with open(self.log) as f:
            return f.read()

    def kill9(self):
        self.p.kill()
        self.p.wait()

    def term(self):
        self.p.send_signal(signal.SIGTERM)
        self.p.wait(20)

    def http(self, path):
        for line in self.text().splitlines():
            if "/healthz and /metrics" in line:
                addr = json.loads(line)["addr"]
                try:
                    with urllib.request.urlopen(f"http://{addr}{path}", timeout=5) as r:
                        return r.read().decode()
                except urllib.error.HTTPError as e:
                    return e.read().decode()
        return ""


def publish(port, topic, payloads, retain=False):
    cmd = ["mosquitto_pub", "-p", str(port), "-q", "1", "-t", topic, "-l"]
    if retain:
        cmd.append("-r")
    subprocess.run(cmd, input="\n".join(payloads) + "\n", text=True, check=True)


def journal_len(db):
    c = sqlite3.connect(db)
    try:
        return c.execute("SELECT COUNT(*) FROM journal").fetchone()[0]
    finally:
        c.close()


class HungSmtp:
    """Accepts connections and never says a word."""

    def __init__(self, port):
        self.s = socket.socket()
        self.s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.s.bind(("127.0.0.1", port))
        self.s.listen(64)
        self.held = []
        self.stopped = False
        threading.Thread(target=self.run, daemon=True).start()

    def run(self):
        while not self.stopped:
            try:
                c, _ = self.s.accept()
                self.held.append(c)
            except OSError:
                return

    def stop(self):
        self.stopped = True
        self.s.close()
        for c in self.held:
            c.close()


def config(d, port, smtp_port):
    text = f"""
[mqtt]
url = "mqtt://127.0.0.1:{port}"
client_id = "yingji-fault-{os.getpid()}"
keep_alive_s = 5

[store]
path = "{d}/yingji.db"
snapshot_every = 50

[http]
listen = "127.0.0.1:0"

[email]
smtp_url = "smtp://127.0.0.1:{smtp_port}"
from = "应急 <yingji@example.org>"
timeout_s = 10

[weather_call]
ack_timeout_s = 1
phone_retry_s = 1
phone_attempts = 2
escalate_to = ["duty"]

[limits]
max_payload_bytes = 65536

[[contact]]
id = "yjj"
name = "张应急"
unit = "市应急管理局"
tier = "A"
role = "emergency"
wechat = "zhangyj"
phone = "+8613800000001"
email = "yjj@example.org"

[[contact]]
id = "duty"
name = "值班室"
unit = "市应急管理局"
email = "duty@example.org"
plans = ["severe_weather", "heavy_pollution", "coal_supply"]
"""
    p = os.path.join(d, "yingji.toml")
    with open(p, "w") as f:
        f.write(text)
    return p


def warning(wid, action, color=None):
    w = {"ts": ts(datetime.now(timezone.utc)), "id": wid, "hazard": "rainstorm", "action": action}
    if color:
        w["color"] = color
    return json.dumps(w)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, "target", "debug", "yingji"))
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    a.bin = os.path.abspath(a.bin)  # the daemon runs in a temp dir
    if not os.path.exists(a.bin):
        subprocess.run(["cargo", "build", "--quiet"], cwd=ROOT, check=True)
    d = tempfile.mkdtemp(prefix="yingji-fault-")
    broker = Broker(d)
    smtp_port = free_port()
    cfg = config(d, broker.port, smtp_port)
    db = os.path.join(d, "yingji.db")
    seen_path = os.path.join(d, "notices.txt")
    watcher = subprocess.Popen(
        ["mosquitto_sub", "-p", str(broker.port), "-q", "1", "-c", "-i", f"fault-watch-{os.getpid()}",
         "-t", "ers/+/notice/#", "-F", "%j"],
        stdout=open(seen_path, "w"), stderr=subprocess.DEVNULL,
    )
    CHILDREN.append(watcher)
    time.sleep(0.5)  # the watcher's SUBSCRIBE before anything is published
    daemon = Daemon(a.bin, d, cfg)
    hung = HungSmtp(smtp_port)
    daemon.start()
    lifted = []
    published = 0

    # 1. kill: inputs arrive while the daemon is SIGKILLed and restarted.
    print("run 1: SIGKILL while inputs arrive and call timers run", flush=True)
    for k in range(5):
        wid = f"fi-kill-{k}"
        publish(broker.port, "ers/shuozhou/weather/warning", [warning(wid, "issue", "red")], retain=True)
        now = datetime.now(timezone.utc)
        hour = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=k + 1)
        publish(broker.port, "ers/shuozhou/air/aqi",
                [json.dumps({"ts": ts(hour), "aqi": 150 + 20 * k, "primary": "PM2.5"})])
        published += 2
        time.sleep(0.3 * k)
        daemon.kill9()
        publish(broker.port, "ers/shuozhou/weather/warning", [warning(wid, "lift")])
        published += 1
        lifted.append(wid)
        daemon.start()

    # 2. broker restarts while timers run.
    print("run 2: mosquitto restarted twice", flush=True)
    publish(broker.port, "ers/shuozhou/weather/warning", [warning("fi-broker", "issue", "orange")])
    published += 1
    for _ in range(2):
        time.sleep(1.5)
        broker.restart()
    publish(broker.port, "ers/shuozhou/weather/warning", [warning("fi-broker", "lift")])
    published += 1
    lifted.append("fi-broker")

    # 3. SMTP hang: the sink must be reported degraded, then everything arrives once.
    print("run 3: SMTP server that never greets", flush=True)
    wait("the email sink degraded on /healthz", lambda: '"email":{"failures_in_row"' in daemon.http("/healthz")
         and "degraded" in daemon.http("/healthz"), 90)
    hung.stop()
    mail_dir = os.path.join(d, "mail")
    smtp = subprocess.Popen([sys.executable, os.path.join(ROOT, "tests", "e2e_support", "smtp_sink.py"),
                             str(smtp_port), mail_dir], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    CHILDREN.append(smtp)
    wait("the SMTP server", lambda: _connects(smtp_port), 20)

    # 4. flood: thousands of inputs, retained ones among them, then restarts.
    print("run 4: flood of 3000 inputs, then two restarts", flush=True)
    base = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
    aqi = [json.dumps({"ts": ts(base - timedelta(hours=1 + i % 100)), "aqi": 40 + i % 50, "primary": "PM10"})
           for i in range(3000)]
    publish(broker.port, "ers/shuozhou/air/aqi", aqi)
    publish(broker.port, "ers/shuozhou/coal/storage",
            [json.dumps({"ts": ts(datetime.now(timezone.utc)), "storage_t": 120000})], retain=True)
    published += 3001
    wait("the flood journaled", lambda: journal_len(db) >= published, 180)
    for _ in range(2):
        daemon.term()
        daemon.start()
    probe = json.dumps({"ts": ts(base - timedelta(hours=150)), "aqi": 41, "primary": "PM10"})
    publish(broker.port, "ers/shuozhou/air/aqi", [probe])
    published += 1
    wait("the probe journaled", lambda: journal_len(db) >= published, 60)
    time.sleep(4)  # call rounds of 1 s run out

    # Outbox and deliveries settle, then a clean stop.
    def settled():
        c = sqlite3.connect(db)
        try:
            return c.execute("SELECT COUNT(*) FROM deliveries WHERE delivered_at IS NULL").fetchone()[0] == 0
        finally:
            c.close()
    wait("every delivery made", settled, 180)
    daemon.term()
    time.sleep(1)
    watcher.send_signal(signal.SIGTERM)
    watcher.wait(5)
    smtp.terminate()

    c = sqlite3.connect(db)
    outbox = [json.loads(r[0]) for r in c.execute("SELECT json FROM notices ORDER BY n")]
    emails = [r[0] for r in c.execute(
        "SELECT notice_id || ' ' || substr(sink, 7) FROM deliveries WHERE sink LIKE 'email:%'")]
    journaled = journal_len(db)
    c.close()
    seen = []
    with open(seen_path) as f:
        for line in f:
            try:
                seen.append(json.loads(json.loads(line)["payload"]))
            except (ValueError, KeyError, TypeError):
                pass
    seen_ids = [n.get("id") for n in seen]
    lost = [n["id"] for n in outbox if n["id"] not in seen_ids]
    dup = sorted({i for i in seen_ids if seen_ids.count(i) > 1})
    # Each warning was issued once and lifted: one activate each, and one call round
    # (call ids "{warning}/{round}"). More is a lifted warning that came back.
    activates = sum(1 for n in outbox if n["plan"] == "severe_weather" and n["kind"] == "activate")
    rounds = {n["call_id"] for n in outbox if n.get("call_id") and n["call_id"].split("/")[0] in lifted}
    resurrected = max(0, activates - len(lifted)) + sum(1 for r in rounds if not r.endswith("/1"))
    mails = []
    for name in os.listdir(mail_dir) if os.path.isdir(mail_dir) else []:
        with open(os.path.join(mail_dir, name)) as f:
            v = json.load(f)
        mid = v["message_id"].strip("<>").split("@")[0]
        mails.append(f"{mid} {v['to']}")
    want = [e.split(" ")[0].replace("/", ".") + " " + e.split(" ")[1] for e in emails]
    mail_lost = [e for e in want if e not in mails]
    mail_dup = sorted({m for m in mails if mails.count(m) > 1})
    print(f"inputs published {published}, journaled {journaled}")
    print(f"notices: outbox {len(outbox)}, seen on MQTT {len(seen_ids)}; "
          f"lost {len(lost)}, duplicated {len(dup)}, resurrected {resurrected}")
    print(f"emails: expected {len(want)}, received {len(mails)}; lost {len(mail_lost)}, duplicated {len(mail_dup)}")
    bad = len(lost) + len(dup) + resurrected + len(mail_lost) + len(mail_dup) + abs(journaled - published)
    if bad:
        print("lost:", lost[:10], "duplicated:", dup[:10], "emails lost:", mail_lost[:5], "dup:", mail_dup[:5])
    broker.stop()
    if a.keep or bad:
        print("files kept in", d)
    else:
        shutil.rmtree(d, ignore_errors=True)
    sys.exit(1 if bad else 0)


CHILDREN = []


if __name__ == "__main__":
    try:
        main()
    finally:
        for ch in CHILDREN:
            if ch.poll() is None:
                ch.kill()
