#!/usr/bin/env bash
# make bench: run every benchmark under bench/ (each prints its figures and ratios).
set -euo pipefail
cd "$(dirname "$0")/.."
shopt -s nullglob
benches=(bench/*.py)
if ((${#benches[@]} == 0)); then echo "bench: no benchmarks yet"; exit 0; fi
for b in "${benches[@]}"; do
  echo "== $b"
  # -P: do not put bench/ first on the path (bench/scoring.py would hide the scoring package)
  .venv/bin/python -P "$b" "$@"
done
