#!/usr/bin/env bash
# Makes flakiness visible: runs every end-to-end test binary (tests/e2e_*.rs) N times
# (default 10) and prints pass/fail per test, then a summary. Exits non-zero if any test
# failed in any run. The output of a failed run is kept under target/flake/.
#
#   scripts/flake.sh [N] [-- ARGS FOR THE TEST BINARIES]
#   scripts/flake.sh 20
#   scripts/flake.sh 5 -- calls_reach_wecom      # one test by name
#
# Run it idle and under load (e.g. `stress-ng --cpu 1` beside it): an end-to-end test
# must not depend on the machine's speed.
set -euo pipefail
cd "$(dirname "$0")/.."

n=${1:-10}
[ $# -gt 0 ] && shift
[ "${1:-}" = "--" ] && shift
case $n in '' | *[!0-9]*) echo "usage: $0 [N] [-- TEST ARGS]" >&2; exit 2 ;; esac

targets=()
for f in tests/e2e_*.rs; do
  t=$(basename "$f" .rs)
  targets+=(--test "$t")
done
[ ${#targets[@]} -gt 0 ] || { echo "no tests/e2e_*.rs" >&2; exit 2; }

echo "building ${targets[*]}"
# The executables cargo built, one per target (from its JSON messages).
mapfile -t bins < <(
  cargo test --locked --no-run "${targets[@]}" --message-format=json 2>/dev/null |
    python3 -c '
import json, sys
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"].startswith("e2e_"):
        print(m["target"]["name"] + " " + m["executable"])
'
)
[ ${#bins[@]} -gt 0 ] || { echo "build failed: cargo test --no-run ${targets[*]}" >&2; exit 2; }

logs=target/flake
mkdir -p "$logs"
results=$(mktemp)
trap 'rm -f "$results"' EXIT

start=$(date +%s)
for i in $(seq 1 "$n"); do
  for b in "${bins[@]}"; do
    name=${b%% *}
    exe=${b#* }
    out="$logs/$name-run$i.txt"
    set +e
    "$exe" "$@" >"$out" 2>&1
    rc=$?
    set -e
    # "test NAME ... ok" / "... FAILED" lines; a binary that died without them counts
    # as one failure of "NAME::(binary-exit-RC)".
    lines=$(grep -E '^test .* \.\.\. (ok|FAILED|ignored)$' "$out" || true)
    if [ -z "$lines" ] || { [ $rc -ne 0 ] && ! grep -q ' \.\.\. FAILED$' <<<"$lines"; }; then
      echo "$name::(binary-exit-$rc) FAILED" >>"$results"
    fi
    grep -E ' \.\.\. (ok|FAILED)$' <<<"$lines" |
      sed -E "s/^test (.*) \.\.\. (ok|FAILED)$/$name::\1 \2/" >>"$results" || true
    failed=$(grep -cE ' \.\.\. FAILED$' <<<"$lines" || true)
    passed=$(grep -cE ' \.\.\. ok$' <<<"$lines" || true)
    if [ "$rc" -eq 0 ]; then
      rm -f "$out"
      echo "run $i/$n  $name: $passed passed"
    else
      echo "run $i/$n  $name: $failed FAILED, $passed passed (output: $out)"
    fi
  done
done

echo
echo "$n runs in $(($(date +%s) - start)) s"
printf '%-80s %6s %6s\n' TEST PASS FAIL
awk '{ t = $1; if ($2 == "ok") p[t]++; else f[t]++; all[t] = 1 }
     END { for (t in all) printf "%-80s %6d %6d\n", t, p[t], f[t] }' "$results" | sort
total_fail=$(grep -c ' FAILED$' "$results" || true)
total=$(wc -l <"$results")
echo "summary: $((total - total_fail)) passed, $total_fail failed of $total test runs"
[ "$total_fail" -eq 0 ]
