#!/usr/bin/env bash
# make bench: run every benchmark under bench/ (each prints its figures and ratios).
set -euo pipefail
cd "$(dirname "$0")/.."
shopt -s nullglob
benches=(bench/*.py)
if ((${#benches[@]} == 0)); then echo "bench: no benchmarks yet"; exit 0; fi
for b in "${benches[@]}"; do
  echo "== $b"
  .venv/bin/python "$b" "$@"
done
