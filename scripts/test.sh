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

# shellcheck source=scripts/infra.sh
source scripts/infra.sh
infra_up test 1
# The fault tests stop and restart the broker and the cluster: only deploy/'s own, never one pointed at.
if ((infra_local_kafka)); then export YARDSTICK_TEST_KAFKA_CONTROL=deploy/kafka.sh; fi
if ((infra_local_pg)); then export YARDSTICK_TEST_PG_CONTROL=deploy/postgres.sh; fi

echo "test: running pytest (Kafka at $KAFKA_BOOTSTRAP_SERVERS)"
.venv/bin/pytest -p no:cacheprovider -ra "$@"
