#!/usr/bin/env bash
# Live ingest and notice round trip of `yingji run` (docs/performance.md, "Live ingest and
# round trip").
#   bash scripts/bench-live.sh [N] [ROUNDS]        (defaults 100000 and 1000)
# Starts its own mosquitto (max_queued_messages 0, a free loopback port), an SMTP sink and a
# webhook sink, and the daemon with the console and every sink enabled (MQTT notice + CAP,
# email, WeCom robot, phone gateway, generic webhook). Then:
#  1. drain: N QoS 1 stock readings (and one closing `manual L2`) are queued for the
#     daemon's persistent session and for a bare `mosquitto_sub -c -q 1` session on the same
#     topics; each drains its queue from start (the subscriber first, then the daemon, until
#     the L2 notice comes out). Prints both rates, their ratio and the daemon's peak RSS,
#     and the CPU time of the broker (both drains) and of the subscriber.
#  2. round trip: first the broker's floor, the same client against a bare responder
#     (`bench_live echo`, topics of its own), then ROUNDS `manual` coal commands one after
#     another, each waiting for the notice it makes (p50/p90/p99), and as many 4 KiB write +
#     fdatasync in the store's directory (the disk's share of a synced commit).
# mosquitto runs with set_tcp_nodelay true, as docs/daemon.md recommends: with mosquitto's
# own default (false) the broker holds each notice to a subscriber that sends nothing back
# until that subscriber's delayed ACK, ~40 ms, and the bare responder's round trip is then
# 44 ms too (docs/performance.md): that is the broker's, not the daemon's, and no daemon
# can go under it.
# Env: BENCH_KEEP=1 keeps the temp dir (logs, store) and prints its path;
#      BENCH_YINGJI=path BENCH_CLIENT=path use these binaries instead of building them
#      (the sinks, examples/bench_sinks.rs, are taken from beside BENCH_CLIENT, or BENCH_SINKS);
#      BENCH_NODELAY=false runs mosquitto with its own default (Nagle on its sockets);
#      BENCH_WRAP="heaptrack -o FILE" runs the daemon under a profiler (the RSS printed is
#      then the wrapper's);
#      BENCH_RT_SPLIT=1 publishes the round trip's commands on a connection of their own
#      (default: on the connection that receives the notices).
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-100000}
rounds=${2:-1000}
region=shuozhou
if [ -z "${BENCH_YINGJI:-}" ] || [ -z "${BENCH_CLIENT:-}" ]; then
  cargo build --release --quiet --bin yingji --example bench_live --example bench_sinks
fi
bin=${BENCH_YINGJI:-$PWD/target/release/yingji}
client=${BENCH_CLIENT:-$PWD/target/release/examples/bench_live}
sinks=${BENCH_SINKS:-$(dirname "$client")/bench_sinks}
[ -x "$sinks" ] || cargo build --release --quiet --example bench_sinks
tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "${BENCH_KEEP:-}" ]; then echo "kept: $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_for() { # seconds what command...
  local until=$((SECONDS + $1)) what=$2
  shift 2
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $until ] || { echo "timed out waiting for $what" >&2; exit 1; }
    sleep 0.1
  done
}
now() { date +%s.%N; }

mport=$(free_port)
sport=$(free_port)
hport=$(free_port)
mosq=$(command -v mosquitto || echo /usr/sbin/mosquitto)
cat > "$tmp/mosquitto.conf" <<CONF
listener $mport 127.0.0.1
max_queued_messages 0
set_tcp_nodelay ${BENCH_NODELAY:-true}
persistence false
allow_anonymous true
log_dest file $tmp/mosquitto.log
$( [ "$(id -u)" = 0 ] && echo "user root" )
CONF
"$mosq" -c "$tmp/mosquitto.conf" & pids+=($!)
mosq_pid=$!
# The broker's CPU time so far (user + system, clock ticks): it shares the 2 cores.
broker_cpu() { awk '{print $14 + $15}' "/proc/$mosq_pid/stat"; }
# The sinks' servers (examples/bench_sinks.rs) only accept, each on one thread, with
# TCP_NODELAY: they share the two cores with the daemon here, where a real mail server
# or chat gateway runs elsewhere (the Python sinks of the e2e tests took 3 ms of CPU per
# round trip, more than the daemon). Their CPU time during the round trip is printed below.
"$sinks" smtp "$sport" > "$tmp/smtp.log" 2>&1 & pids+=($!)
smtp_pid=$!
"$sinks" http "$hport" > "$tmp/hook.log" 2>&1 & pids+=($!)
hook_pid=$!
wait_for 10 mosquitto mosquitto_sub -p "$mport" -t x -E
wait_for 10 "the SMTP sink" grep -q ready "$tmp/smtp.log"
wait_for 10 "the webhook sink" grep -q ready "$tmp/hook.log"

cat > "$tmp/yingji.toml" <<TOML
[mqtt]
url = "mqtt://127.0.0.1:$mport"
client_id = "yingji-bench"

[store]
path = "$tmp/store/yingji.db"

[http]
listen = "127.0.0.1:0"

[email]
smtp_url = "smtp://127.0.0.1:$sport"
from = "应急 <yingji@example.org>"

[[webhook]]
kind = "wecom"
url = "http://127.0.0.1:$hport/robot"
key = "robot-key"

[[webhook]]
kind = "phone"
url = "http://127.0.0.1:$hport/phone"

[[webhook]]
kind = "generic"
url = "http://127.0.0.1:$hport/all"

[[contact]]
id = "nyj"
name = "能源局值班员"
unit = "市能源局"
tier = "A"
role = "energy"
phone = "+8613800000002"
email = "nyj@example.org"
plans = ["coal_supply"]

[[contact]]
id = "yjj"
name = "张应急"
unit = "市应急管理局"
tier = "A"
role = "emergency"
wechat = "zhangyj"
phone = "+8613800000001"
email = "yjj@example.org"
TOML
mkdir -p "$tmp/store"

# Where the daemon's resident memory is now: anonymous (heap, thread arenas, stacks) vs
# file-backed (the binary's pages), the threads, and the largest anonymous mappings.
memory() {
  python3 - "$daemon_pid" "$1" <<'PY'
import sys
pid, when = sys.argv[1], sys.argv[2]
st = dict(l.split(":", 1) for l in open(f"/proc/{pid}/status"))
kb = lambda k: int(st[k].split()[0])
print(f"daemon memory {when}: RSS {kb('VmRSS') / 1024:.1f} MiB (anonymous {kb('RssAnon') / 1024:.1f}, "
      f"file {kb('RssFile') / 1024:.1f}), peak {kb('VmHWM') / 1024:.1f} MiB, threads {st['Threads'].strip()}")
maps, cur = [], None
for line in open(f"/proc/{pid}/smaps"):
    f = line.split()
    if "-" in f[0] and not f[0].endswith(":"):
        cur = [f[5] if len(f) > 5 else "[anon]", 0]
        maps.append(cur)
    elif f[0] == "Rss:":
        cur[1] = int(f[1])
anon = sorted((m for m in maps if not m[0].startswith("/")), key=lambda m: -m[1])
print("  largest anonymous mappings (KiB): " + ", ".join(f"{n} {r}" for n, r in anon[:8]))
print(f"  anonymous mappings over 1 MiB: {sum(1 for m in anon if m[1] > 1024)}")
PY
}
daemon_pid=
start_daemon() {
  # yingji::timing: one line per batch of inputs (daemon_us, commit_us), read below.
  RUST_LOG=info,yingji::timing=debug ${BENCH_WRAP:-} "$bin" run --json-logs --config "$tmp/yingji.toml" >> "$tmp/daemon.log" 2>&1 &
  daemon_pid=$!
  pids+=($daemon_pid)
}
stop_daemon() {
  kill -TERM "$daemon_pid"
  wait "$daemon_pid" || true
}
# The daemon's session: subscribed once, then stopped, so the broker queues for it.
start_daemon
wait_for 60 "the daemon's input connection" grep -q "input connection up" "$tmp/daemon.log"
wait_for 60 "the daemon's output connection" grep -q "output connection up" "$tmp/daemon.log"
stop_daemon
# The bare subscriber's session, on the same topics.
topics=(-t "ers/$region/coal/stock" -t "ers/$region/cmd")
mosquitto_sub -p "$mport" -c -i bench-sub -q 1 "${topics[@]}" -E
"$client" fill "$mport" "$region" "$n"

echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
b0=$(broker_cpu)
t0=$(now)
# The subscriber's own CPU time (user + system) goes to $tmp/sub.cpu.
{ TIMEFORMAT='%U %S'; time mosquitto_sub -p "$mport" -c -i bench-sub -q 1 "${topics[@]}" -C $((n + 1)) > /dev/null; } 2> "$tmp/sub.cpu"
t1=$(now)
b1=$(broker_cpu)
"$client" await "$mport" "$region" > "$tmp/await.out" &
await_pid=$!
pids+=($await_pid)
wait_for 30 "the notice subscriber" grep -q ready "$tmp/await.out"
b2=$(broker_cpu)
t2=$(now)
start_daemon
wait "$await_pid"
t3=$(tail -1 "$tmp/await.out")
b3=$(broker_cpu)
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$daemon_pid/status")
# The daemon's CPU time so far (user + system, all threads), and the broker's.
cpu=$(awk '{print $14 + $15}' "/proc/$daemon_pid/stat")
python3 - "$n" "$t0" "$t1" "$t2" "$t3" "$hwm" "$cpu" "$(getconf CLK_TCK)" <<'PY'
import sys
n, t0, t1, t2, t3, hwm = int(sys.argv[1]) + 1, *map(float, sys.argv[2:6]), int(sys.argv[6])
cpu = int(sys.argv[7]) / int(sys.argv[8])
b, d = n / (t1 - t0), n / (t3 - t2)
print(f"drain of {n:,} QoS 1 messages: mosquitto_sub {t1 - t0:.2f} s ({b:,.0f}/s), "
      f"yingji {t3 - t2:.2f} s from start ({d:,.0f}/s): {100 * d / b:.0f} % of the subscriber's rate")
print(f"daemon CPU time (user + system) from start to the end of the drain: {cpu:.2f} s "
      f"({1e6 * cpu / n:.1f} us per message)")
print(f"daemon peak RSS after the drain: {hwm / 1024:.1f} MiB")
PY
python3 - "$b0" "$b1" "$b2" "$b3" "$(getconf CLK_TCK)" "$t0" "$t1" "$t2" "$t3" "$(cat "$tmp/sub.cpu")" <<'PY'
import sys
b0, b1, b2, b3, tck = (int(x) for x in sys.argv[1:6])
t0, t1, t2, t3 = map(float, sys.argv[6:10])
sub = sum(map(float, sys.argv[10].split()))
print(f"broker CPU time: {(b1 - b0) / tck:.2f} s during the subscriber's drain "
      f"(subscriber {sub:.2f} s, wall {t1 - t0:.2f} s), {(b3 - b2) / tck:.2f} s during the daemon's "
      f"(wall {t3 - t2:.2f} s)")
PY
echo "load average $(cut -d' ' -f1-3 /proc/loadavg)"
memory "after the drain"
# How the core batched the drain (target yingji::timing, "drain batch handled").
python3 - "$tmp/daemon.log" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if "drain batch handled" in l]
if rows:
    sizes = sorted(r["inputs"] for r in rows)
    ingest = sum(r["ingest_us"] for r in rows) / 1e6
    commit = sum(r["commit_us"] for r in rows) / 1e6
    print(f"drain batches: {len(rows)} ({sum(sizes):,} inputs, median {sizes[len(sizes) // 2]}, "
          f"max {sizes[-1]}); core handling {ingest:.2f} s, of which the commits {commit:.2f} s")
PY
logged=$(wc -l < "$tmp/daemon.log")
# The broker's floor: the same client against a bare responder on topics of its own.
"$client" echo "$mport" "$region" "$rounds"
# CPU time (user + system, clock ticks) of the daemon and of the servers around it.
ticks() { for p in "$daemon_pid" "$smtp_pid" "$hook_pid" "$mosq_pid"; do awk '{printf "%d ", $14 + $15}' "/proc/$p/stat"; done; }
cpu0=$(ticks)
"$client" roundtrip "$mport" "$region" "$rounds" "$tmp/store"
cpu1=$(ticks)
python3 - "$rounds" "$(getconf CLK_TCK)" "$cpu0" "$cpu1" <<'PY'
import sys
rounds, hz = int(sys.argv[1]), int(sys.argv[2])
a, b = (list(map(int, x.split())) for x in sys.argv[3:5])
names = ["daemon", "SMTP sink", "webhook sink", "mosquitto"]
print("CPU time during the round trip (incl. the fdatasync loop): " + ", ".join(
    f"{n} {(y - x) / hz:.2f} s ({1e3 * (y - x) / hz / max(rounds, 1):.2f} ms per round)"
    for n, x, y in zip(names, a, b)))
PY
# The daemon's share of each round trip: from the command's arrival off the network until
# its notices were handed to the output connection, and the journal commit (disk sync)
# within it.
tail -n +$((logged + 1)) "$tmp/daemon.log" | python3 -c '
import json, math, sys
lines = sys.stdin.readlines()
rows = [json.loads(l) for l in lines if "batch handled" in l]
def pct(v, p):  # nearest rank, as bench_live prints the round trip
    v = sorted(v)
    return v[min(max(math.ceil(p / 100 * len(v)), 1), len(v)) - 1] / 1000
def show(name, v):
    print(f"{name}: n={len(v)} p50={pct(v, 50):.2f} ms p90={pct(v, 90):.2f} ms "
          f"p99={pct(v, 99):.2f} ms max={max(v) / 1000:.2f} ms")
if rows:
    col = lambda k: [int(r.get(k, 0)) for r in rows]
    show("daemon, arrival to notice handed out", col("daemon_us"))
    show("  of which the journal commit (sync)", col("commit_us"))
    show("  the daemon without the commit", [r["daemon_us"] - r["commit_us"] for r in rows])
    for k, what in [("wait_us", "arrival until the core takes it up"),
                    ("ingest_us", "handling incl. the commit"),
                    ("tick_us", "links, commands, timers"),
                    ("show_us", "console picture"),
                    ("apply_us", "handing to the sinks")]:
        if k in rows[0]:
            show(f"  {k[:-3]}: {what}", col(k))
confirms = [json.loads(l) for l in lines if "echoes confirmed" in l]
if confirms:
    show("core confirming echoes (per batch of echoes and proofs)", [int(r["confirm_us"]) for r in confirms])
    if "mark_us" in confirms[0]:
        show("  of which the delivery marks (write transaction)", [int(r["mark_us"]) for r in confirms])
    if "check_us" in confirms[0]:
        show("  of which checking the echoes (render, compare)", [int(r["check_us"]) for r in confirms])
'
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$daemon_pid/status")
echo "daemon peak RSS at the end: $((hwm / 1024)) MiB; load average $(cut -d' ' -f1-3 /proc/loadavg)"
memory "at the end"
stop_daemon
