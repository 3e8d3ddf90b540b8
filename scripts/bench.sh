#!/usr/bin/env bash
# make bench: run every benchmark under bench/ (each prints its figures and ratios), then a summary.
#
#   scripts/bench.sh [--quick] [NAME ...]   NAME is a file of bench/ without .py (default: all of them)
#   make bench                              every benchmark at full size (tens of minutes)
#   make bench BENCH_ARGS=--quick           every benchmark briefly: a smoke test of the suite, not figures
#
# Kafka and PostgreSQL: KAFKA_BOOTSTRAP_SERVERS and YARDSTICK_TEST_PG_ADMIN_URL when set; otherwise the local
# broker and cluster of deploy/, started here if they are not running and stopped again at the end.
# Each benchmark's full output is kept in .cache/bench/<name>.log; the summary repeats its figure lines.
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0
names=()
for arg in "$@"; do
  case "$arg" in
    --quick) quick=1 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    -*) echo "bench: unknown option $arg" >&2; exit 2 ;;
    *) names+=("$arg") ;;
  esac
done
if ((${#names[@]} == 0)); then
  for b in bench/*.py; do names+=("$(basename "$b" .py)"); done
fi
for name in "${names[@]}"; do
  [[ -f "bench/$name.py" ]] || { echo "bench: no bench/$name.py" >&2; exit 2; }
done

# Quick mode: each benchmark's own knobs turned down so the whole suite runs in a few minutes.
declare -A QUICK=(
  [intake]="--seconds 2 --concurrency 8 --households 300"
  [bulk_insert]="--batches 20 --rounds 1"
  [post_cost]="--posts 300 --rounds 1"
  [targets]="--database sqlite --single-days 1 --reads 50"
  [scoring]="--events 40000 --reads 100"
  [notices]=""
  [relay]="--events 2000"
  [transaction]="--transactions 200 --rounds 1"
  [wakeup]="--wakeups 200"
  [pages]="--events 20000 --reads 5"
  [e2e]="--quick"
  [scaleout]="--quick"
)

# shellcheck source=scripts/infra.sh
source scripts/infra.sh
infra_up bench

logs=.cache/bench
mkdir -p "$logs"
declare -A status seconds
total=${#names[@]}
i=0
for name in "${names[@]}"; do
  i=$((i + 1))
  args=()
  if ((quick)); then read -r -a args <<<"${QUICK[$name]:-}"; fi
  echo
  echo "== [$i/$total] bench/$name.py ${args[*]:-}"
  began=$SECONDS
  # -P: do not put bench/ first on the path (bench/scoring.py would hide the scoring package).
  # The output goes to the terminal as it comes (progress) and to the log for the summary.
  if .venv/bin/python -P "bench/$name.py" "${args[@]}" 2>&1 | tee "$logs/$name.log"; then
    status[$name]=ok
  else
    status[$name]=FAILED
  fi
  seconds[$name]=$((SECONDS - began))
done

echo
echo "== summary$( ((quick)) && echo ' (quick mode: smoke test, not figures)')"
failed=0
for name in "${names[@]}"; do
  printf '%-11s %-6s %4ss   log %s\n' "$name" "${status[$name]}" "${seconds[$name]}" "$logs/$name.log"
  [[ "${status[$name]}" == ok ]] || failed=$((failed + 1))
  # The lines that carry an aim, a ratio or the e2e summary.
  grep -E 'aim|ratio|^summary:' "$logs/$name.log" | sed 's/^/    /' || true
done
if ((failed)); then
  echo "bench: $failed of $total benchmarks failed"
  exit 1
fi
echo "bench: all $total benchmarks ran"
