#!/usr/bin/env bash
# make test: start Kafka and PostgreSQL unless the environment points at running ones,
# run the unit and integration tests, and stop what this script started.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests use: Chromium and a CJK font for the browser tests, shellcheck for the
# script tests. Installed once; as root here and in CI.
missing=()
[[ -x /usr/bin/chromium ]] || missing+=(chromium)
fc-list 2>/dev/null | grep -qi "wenquanyi\|wqy" || missing+=(fonts-wqy-microhei)
command -v shellcheck >/dev/null 2>&1 || missing+=(shellcheck)
if ((${#missing[@]})); then
  echo "test: installing ${missing[*]} from Debian's packages (once) ..."
  if [[ "$(id -u)" == 0 ]]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "test: not root; install them with: sudo apt-get install -y ${missing[*]}" >&2
  fi
fi
export YARDSTICK_TEST_ARTIFACTS="${YARDSTICK_TEST_ARTIFACTS:-$PWD/test-artifacts}"
mkdir -p "$YARDSTICK_TEST_ARTIFACTS"

started=()
cleanup() {
  local code=$?
  for what in "${started[@]:-}"; do
    [[ -n "$what" ]] || continue
    echo "test: stopping $what"
    bash "deploy/$what.sh" stop >/dev/null 2>&1 || true
  done
  exit "$code"
}
trap cleanup EXIT

if [[ -z "${KAFKA_BOOTSTRAP_SERVERS:-}" ]]; then
  if ! bash deploy/kafka.sh status >/dev/null 2>&1; then
    echo "test: starting a local Kafka broker (deploy/kafka.sh) ..."
    bash deploy/kafka.sh start
    started+=(kafka)
  fi
  export KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:${KAFKA_PORT:-19092}"
  export YARDSTICK_TEST_KAFKA_CONTROL=deploy/kafka.sh
fi
if [[ -z "${YARDSTICK_TEST_PG_ADMIN_URL:-}" ]]; then
  if ! bash deploy/postgres.sh status >/dev/null 2>&1; then
    echo "test: starting a local PostgreSQL cluster (deploy/postgres.sh) ..."
    PG_FAST=1 bash deploy/postgres.sh start
    started+=(postgres)
  fi
  # Tests create a fresh database per run next to the services' own ones.
  YARDSTICK_TEST_PG_ADMIN_URL="$(bash deploy/postgres.sh url yardstick_auth | sed 's#/yardstick_auth$#/postgres#')"
  export YARDSTICK_TEST_PG_ADMIN_URL
  export YARDSTICK_TEST_PG_CONTROL=deploy/postgres.sh
fi

echo "test: running pytest (Kafka at $KAFKA_BOOTSTRAP_SERVERS)"
.venv/bin/pytest -p no:cacheprovider -ra "$@"
