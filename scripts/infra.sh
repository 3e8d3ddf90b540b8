#!/usr/bin/env bash
# Sourced by scripts/test.sh and scripts/bench.sh: Kafka and PostgreSQL from deploy/ unless the
# environment already points at running ones (KAFKA_BOOTSTRAP_SERVERS, YARDSTICK_TEST_PG_ADMIN_URL),
# and whatever was started here stopped again when the sourcing script exits.
#
#   infra_up WHO [PG_FAST]   WHO prefixes the messages; PG_FAST=1 starts PostgreSQL without fsync (tests)
# Afterwards infra_local_kafka / infra_local_pg are 1 where deploy/'s broker or cluster is the one in use.

# shellcheck disable=SC2034  # infra_local_* are read by the script that sources this one
infra_started=()
infra_local_kafka=0
infra_local_pg=0

infra_cleanup() {
  local code=$?
  for what in "${infra_started[@]:-}"; do
    [[ -n "$what" ]] || continue
    echo "$infra_who: stopping $what"
    bash "deploy/$what.sh" stop >/dev/null 2>&1 || true
  done
  exit "$code"
}

infra_up() {
  infra_who=$1
  local pg_fast=${2:-0}
  trap infra_cleanup EXIT
  if [[ -z "${KAFKA_BOOTSTRAP_SERVERS:-}" ]]; then
    if ! bash deploy/kafka.sh status >/dev/null 2>&1; then
      echo "$infra_who: starting a local Kafka broker (deploy/kafka.sh) ..."
      bash deploy/kafka.sh start
      infra_started+=(kafka)
    fi
    # The address the running broker listens on, as status reads it from the broker's own config
    # (as scripts/up.sh does), not rebuilt here from KAFKA_PORT's default.
    KAFKA_BOOTSTRAP_SERVERS="$(bash deploy/kafka.sh status | sed -n 's/^KAFKA_BOOTSTRAP_SERVERS=//p')"
    [[ -n "$KAFKA_BOOTSTRAP_SERVERS" ]] || { echo "$infra_who: deploy/kafka.sh status names no broker address; see .cache/kafka/kafka.log" >&2; exit 1; }
    export KAFKA_BOOTSTRAP_SERVERS
    infra_local_kafka=1
  fi
  if [[ -z "${YARDSTICK_TEST_PG_ADMIN_URL:-}" ]]; then
    if ! bash deploy/postgres.sh status >/dev/null 2>&1; then
      echo "$infra_who: starting a local PostgreSQL cluster (deploy/postgres.sh) ..."
      PG_FAST=$pg_fast bash deploy/postgres.sh start >/dev/null
      infra_started+=(postgres)
    fi
    # Tests and benchmarks create a fresh database per run next to the services' own ones.
    YARDSTICK_TEST_PG_ADMIN_URL="$(bash deploy/postgres.sh url yardstick_auth | sed 's#/yardstick_auth$#/postgres#')"
    export YARDSTICK_TEST_PG_ADMIN_URL
    infra_local_pg=1
  fi
}
