#!/usr/bin/env bash
# Replay cost as a ratio to parsing (docs/performance.md, "Replay vs parsing").
#   bash scripts/bench-ratio.sh
# For each scenario: the parse-only baseline (examples/parse_baseline.rs: each line into a
# serde_json::Value) and `yingji replay --quiet`, run in turn, CPU time (user + sys,
# best of BENCH_RUNS, default 3, from wait4's rusage) and max RSS of each, and the ratio
# replay / baseline.
# Scenarios (scripts/gen_scenario.py, seed 7):
#   one region, 365 days, 20 stations, 5 plants (about 188k lines)
#   100 regions x 14 days, 10 stations, 5 plants each, interleaved by time (about 384k lines)
# Env: BENCH_DIR=dir keeps the scenarios there (default: a temp dir, removed);
#      BENCH_CALLGRIND=1 also counts instructions with valgrind --tool=callgrind (slow:
#      minutes; repeatable on a loaded machine, where CPU times are not);
#      BENCH_ONLY=single|multi runs one scenario;
#      BENCH_NO_BUILD=1 uses target/release/{yingji,examples/parse_baseline} as they are;
#      BENCH_BIN=path replays with another yingji binary (a build of another commit, for a
#      before/after comparison in the same minutes; the baseline stays the one built here).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${BENCH_DIR:-}" ]; then
  tmp=$BENCH_DIR
  mkdir -p "$tmp"
else
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
fi
if [ -z "${BENCH_NO_BUILD:-}" ]; then
  cargo build --release --quiet --bin yingji --example parse_baseline
fi
contact='[[contact]]
id = "yjj-duty"
name = "值班员"
unit = "市应急管理局"
tier = "A"
role = "emergency"
wechat = "duty"
phone = "+8613800000000"'

gen() { # name args...
  local name=$1
  shift
  if [ ! -s "$tmp/$name.jsonl" ]; then
    python3 scripts/gen_scenario.py "$@" --seed 7 > "$tmp/$name.part"
    mv "$tmp/$name.part" "$tmp/$name.jsonl"
  fi
  { python3 scripts/gen_scenario.py "$@" --print-config; echo "$contact"; } > "$tmp/$name.toml"
}
names=()
if [ "${BENCH_ONLY:-single}" != multi ]; then
  gen single-365d-20s-5p --days 365 --stations 20 --plants 5
  names+=(single-365d-20s-5p)
fi
if [ "${BENCH_ONLY:-multi}" != single ]; then
  gen multi-100r-14d-10s-5p --days 14 --stations 10 --plants 5 --regions 100
  names+=(multi-100r-14d-10s-5p)
fi

echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
for name in "${names[@]}"; do
  python3 - "$tmp" "$name" "${BENCH_RUNS:-3}" "${BENCH_CALLGRIND:-0}" "${BENCH_BIN:-target/release/yingji}" <<'PY'
import os, subprocess, sys
tmp, name, runs, cg = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1"
scen = os.path.join(tmp, name + ".jsonl")
base = ["target/release/examples/parse_baseline", scen]
replay = [sys.argv[5], "replay", scen, "--config", os.path.join(tmp, name + ".toml"),
          "--quiet", "--out", os.path.join(tmp, name + ".out.jsonl")]

def run(cmd):
    """CPU time (user + sys) and max RSS of one run. The program runs under /usr/bin/time,
    which reports its max RSS (a child forked from Python would count Python's own pages
    in it); the CPU time is the rusage `wait4` returns for /usr/bin/time (its own and its
    child's, in microseconds: `time -f %U` prints hundredths, a large part of a 0.15 s
    baseline)."""
    tf = os.path.join(tmp, "time.txt")
    p = subprocess.Popen(["/usr/bin/time", "-f", "%M", "-o", tf] + cmd,
                         stdout=subprocess.DEVNULL)
    _, status, ru = os.wait4(p.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{cmd[0]} failed")
    with open(tf) as f:
        rss = int(f.read().split()[-1])
    return ru.ru_utime + ru.ru_stime, rss / 1024

def instructions(cmd, tag):
    out = os.path.join(tmp, f"callgrind.{name}.{tag}")
    subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"] + cmd,
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(out) as f:
        for line in f:
            if line.startswith("summary:") or line.startswith("totals:"):
                return int(line.split()[1])
    sys.exit("no summary in " + out)

with open(scen, "rb") as f:
    lines = sum(1 for _ in f)
# Baseline and replay alternate, so that a change in the machine's load hits both.
# The best CPU time and the largest max RSS of each.
bt = brss = rt = rrss = None
for _ in range(runs):
    (b, bm), (r, rm) = run(base), run(replay)
    bt, brss = min(b, bt or b), max(bm, brss or bm)
    rt, rrss = min(r, rt or r), max(rm, rrss or rm)
with open(os.path.join(tmp, name + ".out.jsonl"), "rb") as f:
    notices = sum(1 for _ in f)
print(f"{name}: {lines:,} lines, {os.path.getsize(scen)/1e6:.1f} MB, {notices:,} notices")
print(f"  CPU  baseline {bt:.3f} s (max RSS {brss:.1f} MiB), replay {rt:.3f} s (max RSS {rrss:.1f} MiB): ratio {rt/bt:.2f}x")
if cg:
    bi, ri = instructions(base, "baseline"), instructions(replay, "replay")
    print(f"  instructions  baseline {bi:,}, replay {ri:,}: ratio {ri/bi:.2f}x")
PY
done
