#!/usr/bin/env bash
# make up / make down: the four services as separate processes on local Kafka and PostgreSQL.
#   scripts/up.sh start   start Kafka and PostgreSQL if needed, then `yardstick serve` for each service
#   scripts/up.sh stop    stop the services, then Kafka and PostgreSQL if this script started them
#   scripts/up.sh status
set -euo pipefail
cd "$(dirname "$0")/.."
STATE=.cache/up
SERVICES=(feedback-intake target-tracker scoring notices)
declare -A PREFIX=([feedback-intake]=INTAKE [target-tracker]=TARGETS [scoring]=SCORING [notices]=NOTICES)
declare -A PORT=([feedback-intake]=8001 [target-tracker]=8002 [scoring]=8003 [notices]=8004)
mkdir -p "$STATE"

alive() { [[ -f "$STATE/$1.pid" ]] && kill -0 "$(cat "$STATE/$1.pid")" 2>/dev/null; }

start() {
  if ! bash deploy/kafka.sh status >/dev/null 2>&1; then
    bash deploy/kafka.sh start && touch "$STATE/started-kafka"
  fi
  if ! bash deploy/postgres.sh status >/dev/null 2>&1; then
    bash deploy/postgres.sh start >/dev/null && touch "$STATE/started-postgres"
  fi
  export YARDSTICK_BUS=kafka KAFKA_BOOTSTRAP_SERVERS="${KAFKA_BOOTSTRAP_SERVERS:-127.0.0.1:19092}"
  if [[ -z "${YARDSTICK_AUTH_SECRET:-}" ]]; then
    [[ -f "$STATE/auth-secret" ]] || (umask 077; head -c 48 /dev/urandom | base64 -w0 >"$STATE/auth-secret")
    YARDSTICK_AUTH_SECRET="$(cat "$STATE/auth-secret")"
    export YARDSTICK_AUTH_SECRET
  fi
  while IFS= read -r line; do export "${line?}"; done < <(bash deploy/postgres.sh start | grep '^YARDSTICK_')
  for svc in "${SERVICES[@]}"; do
    if alive "$svc"; then echo "up: $svc already running (pid $(cat "$STATE/$svc.pid"))"; continue; fi
    echo "up: starting $svc on 127.0.0.1:${PORT[$svc]} (log $STATE/$svc.log)"
    env "YARDSTICK_${PREFIX[$svc]}_PORT=${PORT[$svc]}" setsid nohup .venv/bin/yardstick serve "$svc" \
      >>"$STATE/$svc.log" 2>&1 </dev/null &
    echo $! >"$STATE/$svc.pid"
  done
  for svc in "${SERVICES[@]}"; do
    for _ in $(seq 1 120); do
      curl -fsS "http://127.0.0.1:${PORT[$svc]}/readyz" >/dev/null 2>&1 && break
      alive "$svc" || { echo "up: $svc died; see $STATE/$svc.log:"; tail -20 "$STATE/$svc.log"; exit 1; }
      sleep 0.5
    done
    echo "up: $svc ready: http://127.0.0.1:${PORT[$svc]}/docs"
  done
  echo "up: tokens: YARDSTICK_AUTH_SECRET=\$(cat $STATE/auth-secret) YARDSTICK_BUS=kafka" \
       "YARDSTICK_AUTH_DATABASE_URL=\$(deploy/postgres.sh url auth) .venv/bin/yardstick token issue --role commission"
}

stop() {
  for svc in "${SERVICES[@]}"; do
    if alive "$svc"; then
      pid="$(cat "$STATE/$svc.pid")"
      echo "down: stopping $svc (pid $pid)"
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
      kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$STATE/$svc.pid"
  done
  if [[ -f "$STATE/started-kafka" ]]; then bash deploy/kafka.sh stop; rm -f "$STATE/started-kafka"; fi
  if [[ -f "$STATE/started-postgres" ]]; then bash deploy/postgres.sh stop; rm -f "$STATE/started-postgres"; fi
}

status() {
  for svc in "${SERVICES[@]}"; do
    if alive "$svc"; then echo "$svc: running (pid $(cat "$STATE/$svc.pid"))"; else echo "$svc: stopped"; fi
  done
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
