#!/usr/bin/env bash
# Replay throughput and memory on a generated scenario (see docs/performance.md).
#   bash scripts/bench-replay.sh [DAYS] [STATIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
days=${1:-365}
stations=${2:-20}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cargo build --release --quiet
python3 scripts/gen_scenario.py --days "$days" --stations "$stations" > "$tmp/big.jsonl"
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
python3 - "$tmp" <<'PY'
import os, resource, subprocess, sys, time
tmp = sys.argv[1]
scen = os.path.join(tmp, "big.jsonl")
size = os.path.getsize(scen)
lines = sum(1 for _ in open(scen, "rb"))
t0 = time.perf_counter()
r = subprocess.run(["target/release/yingji", "replay", scen, "--config", os.path.join(tmp, "bench.toml"),
                    "--quiet", "--out", os.path.join(tmp, "out.jsonl")])
dt = time.perf_counter() - t0
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
notices = sum(1 for _ in open(os.path.join(tmp, "out.jsonl"), "rb"))
print(f"scenario: {lines} lines, {size/1e6:.1f} MB; notices: {notices}; exit {r.returncode}")
print(f"replay: {dt:.2f} s, {lines/dt:,.0f} messages/s, {size/1e6/dt:.1f} MB/s, max RSS {rss/1024:.1f} MiB")
PY
