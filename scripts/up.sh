#!/usr/bin/env bash
# make up / make down: the four services as separate processes on local Kafka and PostgreSQL.
#   scripts/up.sh start   start Kafka and PostgreSQL if needed, then `yardstick serve` for each service
#   scripts/up.sh stop    stop the services, then Kafka and PostgreSQL if this script started them
#   scripts/up.sh status
#
# Environment: KAFKA_BOOTSTRAP_SERVERS (when set, that broker is used and deploy/kafka.sh is left alone;
# else deploy/kafka.sh's broker, on KAFKA_PORT when set), KAFKA_PORT / KAFKA_CONTROLLER_PORT and PG_PORT
# (passed to deploy/), and each service's YARDSTICK_<INTAKE|TARGETS|SCORING|NOTICES>_PORT and _HOST,
# which the services read too (default ports 8001-8004 on 127.0.0.1). UP_READY_TIMEOUT: seconds a
# service may take to be ready, its start-up migration included (default 120).
set -euo pipefail
cd "$(dirname "$0")/.."
STATE=.cache/up
SERVICES=(feedback-intake target-tracker scoring notices)
declare -A PREFIX=([feedback-intake]=INTAKE [target-tracker]=TARGETS [scoring]=SCORING [notices]=NOTICES)
declare -A DEFAULT_PORT=([feedback-intake]=8001 [target-tracker]=8002 [scoring]=8003 [notices]=8004)
declare -A PORT=() ADDRESS=()
for svc in "${SERVICES[@]}"; do
  # The variables the service's settings read (YARDSTICK_SCORING_PORT, ...): the script and the service agree.
  port_var="YARDSTICK_${PREFIX[$svc]}_PORT" host_var="YARDSTICK_${PREFIX[$svc]}_HOST"
  PORT[$svc]="${!port_var:-${DEFAULT_PORT[$svc]}}"
  host="${!host_var:-127.0.0.1}"
  # A service listening on every address is reached on loopback.
  [[ "$host" == 0.0.0.0 || "$host" == "::" ]] && host=127.0.0.1
  ADDRESS[$svc]="$host:${PORT[$svc]}"
done
READY_TIMEOUT="${UP_READY_TIMEOUT:-120}"
mkdir -p "$STATE"

alive() { [[ -f "$STATE/$1.pid" ]] && kill -0 "$(cat "$STATE/$1.pid")" 2>/dev/null; }

port_taken() { (exec 3<>"/dev/tcp/${1%:*}/${1##*:}") 2>/dev/null; }

# Ready: /readyz answers 200 and says it is service $1 (another program on the port is not $1).
ready() {
  local body
  body="$(curl -fsS --max-time 3 "http://${ADDRESS[$1]}/readyz" 2>/dev/null)" || return 1
  [[ "$body" =~ \"service\"[[:space:]]*:[[:space:]]*\"$1\" ]]
}

start() {
  if [[ -z "${KAFKA_BOOTSTRAP_SERVERS:-}" ]]; then
    # status exits 3 when no broker runs, 4 when this checkout's runs on another port than KAFKA_PORT
    # (start then says so and fails).
    if ! bash deploy/kafka.sh status >/dev/null 2>&1; then
      bash deploy/kafka.sh start
      touch "$STATE/started-kafka"
    fi
    # The address the running broker listens on (status reads it from the broker's own config).
    KAFKA_BOOTSTRAP_SERVERS="$(bash deploy/kafka.sh status | sed -n 's/^KAFKA_BOOTSTRAP_SERVERS=//p')"
  fi
  if ! bash deploy/postgres.sh status >/dev/null 2>&1; then
    bash deploy/postgres.sh start >/dev/null
    touch "$STATE/started-postgres"
  fi
  export YARDSTICK_BUS=kafka KAFKA_BOOTSTRAP_SERVERS
  if [[ -z "${YARDSTICK_AUTH_SECRET:-}" ]]; then
    [[ -f "$STATE/auth-secret" ]] || (umask 077; head -c 48 /dev/urandom | base64 -w0 >"$STATE/auth-secret")
    YARDSTICK_AUTH_SECRET="$(cat "$STATE/auth-secret")"
    export YARDSTICK_AUTH_SECRET
  fi
  while IFS= read -r line; do export "${line?}"; done < <(bash deploy/postgres.sh start | grep '^YARDSTICK_')
  for svc in "${SERVICES[@]}"; do
    if ! alive "$svc" && port_taken "${ADDRESS[$svc]}"; then
      echo "up: ${ADDRESS[$svc]} ($svc) is taken by another program; set YARDSTICK_${PREFIX[$svc]}_PORT" >&2
      exit 1
    fi
  done
  for svc in "${SERVICES[@]}"; do
    if alive "$svc"; then echo "up: $svc already running (pid $(cat "$STATE/$svc.pid"))"; continue; fi
    echo "up: starting $svc on ${ADDRESS[$svc]} (log $STATE/$svc.log)"
    env "YARDSTICK_${PREFIX[$svc]}_PORT=${PORT[$svc]}" setsid nohup .venv/bin/yardstick serve "$svc" \
      >>"$STATE/$svc.log" 2>&1 </dev/null &
    echo $! >"$STATE/$svc.pid"
  done
  for svc in "${SERVICES[@]}"; do
    local deadline=$((SECONDS + READY_TIMEOUT))
    until ready "$svc"; do
      alive "$svc" || { echo "up: $svc died; see $STATE/$svc.log:" >&2; tail -20 "$STATE/$svc.log" >&2; exit 1; }
      if ((SECONDS >= deadline)); then
        echo "up: $svc not ready after ${READY_TIMEOUT}s (http://${ADDRESS[$svc]}/readyz); see $STATE/$svc.log" >&2
        exit 1
      fi
      sleep 0.5
    done
    echo "up: $svc ready: http://${ADDRESS[$svc]}/docs"
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
    if ! alive "$svc"; then echo "$svc: stopped"
    elif ready "$svc"; then echo "$svc: ready on ${ADDRESS[$svc]} (pid $(cat "$STATE/$svc.pid"))"
    else echo "$svc: running (pid $(cat "$STATE/$svc.pid")), not ready on ${ADDRESS[$svc]}"; fi
  done
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
