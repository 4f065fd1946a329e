#!/usr/bin/env bash
# Replay throughput and memory on a generated scenario (see docs/performance.md).
#   bash scripts/bench-replay.sh [DAYS] [STATIONS] [PLANTS]
# Env: BENCH_DIR=dir keeps the scenario and output there (default: a temp dir, removed);
#      BENCH_SEED=n generator seed (default 7).
# Prints the scenario size, replay time, messages/s, MB/s and the replay's max RSS. The
# replay streams its input, so max RSS should not grow with the file.
set -euo pipefail
cd "$(dirname "$0")/.."
days=${1:-365}
stations=${2:-20}
plants=${3:-5}
seed=${BENCH_SEED:-7}
if [ -n "${BENCH_DIR:-}" ]; then
  tmp=$BENCH_DIR
  mkdir -p "$tmp"
else
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
fi
cargo build --release --quiet
scen="$tmp/bench-${days}d-${stations}s-${plants}p.jsonl"
if [ ! -s "$scen" ]; then
  python3 scripts/gen_scenario.py --days "$days" --stations "$stations" --plants "$plants" \
    --seed "$seed" > "$scen.part"
  mv "$scen.part" "$scen"
fi
cat > "$tmp/bench.toml" <<'TOML'
[[contact]]
id = "yjj-duty"
name = "值班员"
unit = "市应急管理局"
tier = "A"
role = "emergency"
wechat = "duty"
phone = "+8613800000000"
TOML
python3 - "$tmp" "$scen" <<'PY'
import os, resource, subprocess, sys, time
tmp, scen = sys.argv[1], sys.argv[2]
out = os.path.join(tmp, "out.jsonl")
size = os.path.getsize(scen)
with open(scen, "rb") as f:
    lines = sum(1 for _ in f)
t0 = time.perf_counter()
r = subprocess.run(["target/release/yingji", "replay", scen, "--config", os.path.join(tmp, "bench.toml"),
                    "--quiet", "--out", out])
dt = time.perf_counter() - t0
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux
with open(out, "rb") as f:
    notices = sum(1 for _ in f)
print(f"scenario: {os.path.basename(scen)}: {lines:,} lines, {size/1e6:.1f} MB; notices: {notices:,}; exit {r.returncode}")
print(f"replay: {dt:.2f} s, {lines/dt:,.0f} messages/s, {size/1e6/dt:.1f} MB/s, max RSS {rss/1024:.1f} MiB")
sys.exit(r.returncode)
PY
