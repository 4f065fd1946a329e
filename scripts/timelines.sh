#!/usr/bin/env bash
# Redraws the pictures in docs/timeline/ from three repo scenarios, one per plan:
#   bash scripts/timelines.sh
# Each is `yingji replay SCENARIO --timeline docs/timeline/NAME.svg` (with the scenario's
# .toml as config when it has one, else the built-in defaults), which also writes NAME.csv. The pictures are
# deterministic: rerunning this on an unchanged tree changes no file.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet
out=docs/timeline
mkdir -p "$out"
for name in coal-manual pollution-approval weather-two-hazards; do
  args=(replay "scenarios/$name.jsonl" --quiet --out /dev/null --timeline "$out/$name.svg")
  # The scenario's config, else the built-in defaults (as tests/scenarios.rs runs it).
  config=scenarios/$name.toml
  [ -f "$config" ] || config=tests/fixtures/defaults.toml
  args+=(--config "$config")
  target/debug/yingji "${args[@]}"
  echo "$out/$name.svg"
done
