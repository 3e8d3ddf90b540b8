#!/usr/bin/env bash
# A private PostgreSQL cluster for development and tests, one database per service.
#
#   deploy/postgres.sh start      install PostgreSQL (Debian) if missing, initdb once, start, create the
#                                 role and databases, print one YARDSTICK_*_DATABASE_URL=... line each
#   deploy/postgres.sh stop       pg_ctl stop -m fast
#   deploy/postgres.sh status     exit 0 when running, 3 when not, 4 when running on another port than a
#                                 PG_PORT given; prints the port the running cluster listens on
#   deploy/postgres.sh url NAME   one URL; NAME is e.g. intake, yardstick_intake or
#                                 YARDSTICK_INTAKE_DATABASE_URL. Its port: PG_PORT when given, else the
#                                 running cluster's, else 15432
#
# Environment:
#   PG_PORT        TCP port on 127.0.0.1 (default 15432); nothing listens on other addresses
#   PG_DATA_DIR    the cluster's data directory (default .cache/postgres/data)
#   PG_DATABASES   extra database names to create, e.g. "yardstick_extra other_db"
#   PG_FAST=1      fsync=off, synchronous_commit=off, full_page_writes=off: for throwaway test data
#                  only (a crash can corrupt the cluster); read at every start
#   PG_BIN         directory with initdb/pg_ctl (default: newest /usr/lib/postgresql/*/bin)
#   PG_STATE_DIR   where the cluster lives (default below); a second cluster beside this checkout's needs
#                  its own, e.g. PG_STATE_DIR=/var/tmp/pg-35432 PG_PORT=35432
#
# Where the cluster lives: .cache/postgres/ at the repository root (git-ignored): data/, run/ (the
# unix socket), postgres.log. PostgreSQL refuses to run as root, so when this script runs as root the
# server runs as the `postgres` user, which must be able to reach that folder. If the repository path
# is not traversable by `postgres` (e.g. a home directory with mode 700), the script does not loosen
# its permissions but uses /var/tmp/yardstick-postgres-<hash of the repository path>/ instead;
# `deploy/postgres.sh status` shows which folder is in use. One cluster per folder: `start` with another
# PG_PORT refuses while that folder's cluster runs, and `stop` with a PG_PORT other than the running
# cluster's refuses to stop it.
#
# Authentication is `trust` for the unix socket and 127.0.0.1: acceptable only because this is a
# throwaway development cluster that listens on loopback alone. The role still has a password
# (yardstick/yardstick), so the printed URLs also work against a cluster that checks passwords.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"

HOST=127.0.0.1
PORT="${PG_PORT:-15432}"
DB_USER=yardstick
DB_PASSWORD=yardstick
DEFAULT_DATABASES=(yardstick_intake yardstick_targets yardstick_scoring yardstick_notices yardstick_auth)
TIMEOUT="${PG_START_TIMEOUT:-60}"

say() { printf 'postgres: %s\n' "$*"; }
die() { printf 'postgres: error: %s\n' "$*" >&2; exit 1; }

is_root() { [[ "$(id -u)" == 0 ]]; }

# Runs a PostgreSQL server program: as `postgres` when we are root (initdb and pg_ctl refuse root),
# from / so that an unreadable current directory does not matter, without the lock's descriptor (the
# server would inherit it and hold the lock for its lifetime).
as_pg() {
    if is_root; then
        (cd / && runuser -u postgres -- "$@" 9>&-)
    else
        (cd / && "$@" 9>&-)
    fi
}

# One start/stop at a time (two test runs starting together would both run initdb).
lock() {
    mkdir -p "$STATE_DIR"
    exec 9>"$STATE_DIR/.lock"
    if command -v flock >/dev/null 2>&1; then
        flock -w 120 9 || die "another deploy/postgres.sh is still running (lock $STATE_DIR/.lock)"
    fi
}

# ---- where things are --------------------------------------------------------------------------

find_pg_bin() {
    if [[ -n "${PG_BIN:-}" ]]; then
        [[ -x "$PG_BIN/initdb" ]] || die "PG_BIN=$PG_BIN has no initdb"
        echo "$PG_BIN"
        return 0
    fi
    local dir best=""
    while IFS= read -r dir; do
        [[ -x "$dir/initdb" && -x "$dir/pg_ctl" ]] && best="$dir"
    done < <(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -type d -name bin 2>/dev/null | sort -V)
    if [[ -z "$best" ]] && command -v initdb >/dev/null 2>&1; then
        best="$(dirname "$(readlink -f "$(command -v initdb)")")"
    fi
    [[ -n "$best" ]] || return 1
    echo "$best"
}

install_postgres() {
    is_root || die "PostgreSQL is not installed; as root run: apt-get update && apt-get install -y postgresql"
    command -v apt-get >/dev/null 2>&1 || die "PostgreSQL is not installed and apt-get is not available"
    say "PostgreSQL not found; installing it from Debian (apt-get install -y postgresql)..."
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq postgresql >/dev/null
    # Debian's package creates and starts a `main` cluster on 5432; it does not get in our way.
}

resolve_state_dir() {
    if [[ -n "${PG_STATE_DIR:-}" ]]; then
        echo "$PG_STATE_DIR"
    elif ! is_root || ! id postgres >/dev/null 2>&1 || runuser -u postgres -- test -x "$REPO_ROOT"; then
        echo "$REPO_ROOT/.cache/postgres"
    else
        echo "/var/tmp/yardstick-postgres-$(printf '%s' "$REPO_ROOT" | sha256sum | cut -c1-12)"
    fi
}

STATE_DIR="$(resolve_state_dir)"
DATA_DIR="${PG_DATA_DIR:-$STATE_DIR/data}"
LOG_FILE="$STATE_DIR/postgres.log"
SOCKET_DIR="$STATE_DIR/run"
# A unix socket path must fit in 107 bytes.
if ((${#SOCKET_DIR} + ${#PORT} + 12 > 100)); then
    SOCKET_DIR="/tmp/yardstick-pg-$(printf '%s' "$STATE_DIR" | sha256sum | cut -c1-12)"
fi

all_databases() {
    local -a names=("${DEFAULT_DATABASES[@]}")
    local extra db seen
    for extra in "${EXTRA_DATABASES[@]}"; do
        seen=0
        for db in "${names[@]}"; do [[ "$db" == "$extra" ]] && seen=1; done
        ((seen)) || names+=("$extra")
    done
    printf '%s\n' "${names[@]}"
}

# yardstick_intake -> YARDSTICK_INTAKE_DATABASE_URL; other_db -> YARDSTICK_OTHER_DB_DATABASE_URL
env_name() {
    local short="${1#yardstick_}"
    short="${short^^}"
    echo "YARDSTICK_${short//[^A-Z0-9]/_}_DATABASE_URL"
}

db_url() { echo "postgresql+asyncpg://$DB_USER:$DB_PASSWORD@$HOST:${2:-$PORT}/$1"; }

print_urls() {
    local db
    while IFS= read -r db; do
        echo "$(env_name "$db")=$(db_url "$db")"
    done < <(all_databases)
}

# ---- server ------------------------------------------------------------------------------------

running() {
    [[ -f "$DATA_DIR/PG_VERSION" ]] || return 1
    as_pg "$PG_BIN_DIR/pg_ctl" status -D "$DATA_DIR" >/dev/null 2>&1
}

# The port of the cluster running in $DATA_DIR, from its postmaster.pid (line 1 the pid, line 4 the
# port), whatever PG_PORT says now; nothing when no server of that folder is alive.
running_port() {
    local pid port
    pid="$(sed -n 1p "$DATA_DIR/postmaster.pid" 2>/dev/null)" || return 0
    port="$(sed -n 4p "$DATA_DIR/postmaster.pid" 2>/dev/null)" || return 0
    [[ "$pid" =~ ^[0-9]+$ && "$port" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null && echo "$port"
    return 0
}

# A PG_PORT given in the environment that is not the running cluster's port $1.
other_port_asked() { [[ -n "${PG_PORT:-}" && -n "$1" && "$PG_PORT" != "$1" ]]; }

prepare_dirs() {
    mkdir -p "$STATE_DIR" "$SOCKET_DIR" "$DATA_DIR"
    if is_root; then
        id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
        if [[ "$STATE_DIR" == "$REPO_ROOT/.cache/postgres" ]] &&
            ! runuser -u postgres -- test -x "$REPO_ROOT/.cache"; then
            chmod o+x "$REPO_ROOT/.cache"
        fi
        chown -R postgres:postgres "$STATE_DIR" "$SOCKET_DIR" "$DATA_DIR"
        runuser -u postgres -- test -w "$DATA_DIR" ||
            die "user postgres cannot write $DATA_DIR (a parent directory is not traversable?)"
    fi
    chmod 700 "$DATA_DIR"
}

init_cluster() {
    [[ -f "$DATA_DIR/PG_VERSION" ]] && return 0
    say "creating a new cluster in $DATA_DIR"
    local -a nosync=()
    [[ "${PG_FAST:-0}" == 1 ]] && nosync=(--no-sync)
    if ! as_pg "$PG_BIN_DIR/initdb" -D "$DATA_DIR" -U postgres --auth=trust --encoding=UTF8 --locale=C \
        "${nosync[@]}" >"$STATE_DIR/initdb.log" 2>&1; then
        cat "$STATE_DIR/initdb.log" >&2
        die "initdb failed"
    fi
    # Settings this script owns live in yardstick.conf, rewritten at every start.
    printf "\ninclude_if_exists = 'yardstick.conf'\n" >>"$DATA_DIR/postgresql.conf"
    cat >"$DATA_DIR/pg_hba.conf" <<'EOF'
# Written by deploy/postgres.sh. `trust`: a throwaway development cluster on loopback only.
# TYPE  DATABASE  USER  ADDRESS        METHOD
local   all       all                  trust
host    all       all   127.0.0.1/32   trust
EOF
    if is_root; then chown postgres:postgres "$DATA_DIR/pg_hba.conf" "$DATA_DIR/postgresql.conf"; fi
}

write_settings() {
    local fast=on
    [[ "${PG_FAST:-0}" == 1 ]] && fast=off
    cat >"$DATA_DIR/yardstick.conf" <<EOF
# Written by deploy/postgres.sh at every start; edit the script, not this file.
listen_addresses = '$HOST'
port = $PORT
unix_socket_directories = '$SOCKET_DIR'
max_connections = 200
# PG_FAST=1 (tests) turns these off; a crash may then corrupt the cluster.
fsync = $fast
synchronous_commit = $fast
full_page_writes = $fast
EOF
    if is_root; then chown postgres:postgres "$DATA_DIR/yardstick.conf"; fi
}

port_open() { (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null; }

psql_admin() {
    "$PG_BIN_DIR/psql" -X -q -v ON_ERROR_STOP=1 -h "$SOCKET_DIR" -p "$PORT" -U postgres -d postgres "$@"
}

ensure_role_and_databases() {
    psql_admin >/dev/null <<EOF
DO \$\$BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$DB_USER') THEN
    CREATE ROLE $DB_USER LOGIN SUPERUSER PASSWORD '$DB_PASSWORD';
  END IF;
END\$\$;
EOF
    local db
    while IFS= read -r db; do
        if [[ -z "$(psql_admin -tA -c "SELECT 1 FROM pg_database WHERE datname = '$db'")" ]]; then
            psql_admin -c "CREATE DATABASE $db OWNER $DB_USER" >/dev/null
            say "created database $db"
        fi
    done < <(all_databases)
}

failed() {
    printf 'postgres: %s\n' "$1" >&2
    if [[ -f "$LOG_FILE" ]]; then
        echo "---- last lines of $LOG_FILE ----" >&2
        tail -n 30 "$LOG_FILE" >&2
        echo "----" >&2
    fi
    cat >&2 <<EOF
postgres: what to try:
  - port in use?        ss -ltnp | grep ':$PORT\\b'   (or set PG_PORT)
  - broken cluster?     $0 stop; rm -rf $DATA_DIR; $0 start   (wipes all data)
EOF
    exit 1
}

start() {
    if ! PG_BIN_DIR="$(find_pg_bin)"; then
        install_postgres
        PG_BIN_DIR="$(find_pg_bin)" || die "PostgreSQL binaries not found even after installing"
    fi
    if running; then
        local actual_port
        actual_port="$(running_port)"
        if [[ -n "$actual_port" && "$actual_port" != "$PORT" ]]; then
            die "the cluster in $DATA_DIR is running on port $actual_port, not $PORT (one cluster per" \
                "folder): use its port, or another PG_STATE_DIR"
        fi
        say "already running ($DATA_DIR)"
        ensure_role_and_databases
        print_urls
        return 0
    fi
    if port_open; then
        failed "port $PORT on $HOST is already taken by another process"
    fi
    prepare_dirs
    init_cluster
    write_settings
    say "starting PostgreSQL $("$PG_BIN_DIR/postgres" --version | awk '{print $3}') on $HOST:$PORT (data $DATA_DIR)"
    local started=$SECONDS
    if ! as_pg "$PG_BIN_DIR/pg_ctl" start -D "$DATA_DIR" -l "$LOG_FILE" -W -s; then
        failed "pg_ctl start failed"
    fi
    local next_note=$((SECONDS + 5))
    until "$PG_BIN_DIR/pg_isready" -q -h "$HOST" -p "$PORT" -d postgres -U postgres; do
        if [[ ! -f "$DATA_DIR/postmaster.pid" ]] && ((SECONDS - started > 2)); then
            failed "the server exited during startup"
        fi
        if ((SECONDS - started >= TIMEOUT)); then
            failed "the server was not ready after ${TIMEOUT}s"
        fi
        if ((SECONDS >= next_note)); then
            say "waiting for the server... ($((SECONDS - started))s)"
            next_note=$((SECONDS + 5))
        fi
        sleep 0.2
    done
    ensure_role_and_databases
    say "ready in $((SECONDS - started))s (log $LOG_FILE)"
    print_urls
}

stop() {
    PG_BIN_DIR="$(find_pg_bin)" || { say "not installed"; return 0; }
    if ! running; then
        say "not running"
        return 0
    fi
    if other_port_asked "$(running_port)"; then
        die "the cluster in $DATA_DIR runs on port $(running_port), not on PG_PORT=$PG_PORT; not stopping it"
    fi
    say "stopping ($DATA_DIR)..."
    as_pg "$PG_BIN_DIR/pg_ctl" stop -D "$DATA_DIR" -m fast -w -t 60 -s || die "pg_ctl stop failed"
    say "stopped"
}

status() {
    PG_BIN_DIR="$(find_pg_bin)" || { say "not installed"; return 3; }
    if running; then
        local port
        port="$(running_port)"
        port="${port:-$PORT}"
        say "running on $HOST:$port (data $DATA_DIR, socket $SOCKET_DIR)"
        if other_port_asked "$port"; then
            say "not on PG_PORT=$PG_PORT: $DATA_DIR holds one cluster (another needs PG_STATE_DIR)" >&2
            return 4
        fi
        return 0
    fi
    say "not running (data $DATA_DIR)"
    return 3
}

url() {
    local want="${1:-}" db port
    [[ -n "$want" ]] || die "usage: $0 url NAME (e.g. intake)"
    # PG_PORT when given (a cluster in another PG_STATE_DIR), else the port of the cluster running here.
    port="$(running_port)"
    if other_port_asked "$port"; then
        say "note: the cluster in $DATA_DIR runs on port $port; this URL uses PG_PORT=$PG_PORT" >&2
    fi
    [[ -n "${PG_PORT:-}" ]] && port="$PG_PORT"
    while IFS= read -r db; do
        if [[ "$want" == "$db" || "yardstick_${want,,}" == "$db" || "$want" == "$(env_name "$db")" ]]; then
            db_url "$db" "$port"
            return 0
        fi
    done < <(all_databases)
    die "unknown database '$want'; known: $(all_databases | tr '\n' ' ')"
}

# Extra databases: plain lowercase identifiers only, since they end up in SQL and URLs.
read -r -a EXTRA_DATABASES <<<"${PG_DATABASES:-}"
for extra_db in "${EXTRA_DATABASES[@]}"; do
    [[ "$extra_db" =~ ^[a-z_][a-z0-9_]*$ ]] || die "bad database name in PG_DATABASES: '$extra_db'"
done

PG_BIN_DIR=""
case "${1:-}" in
    start) lock; start ;;
    stop) lock; stop ;;
    status) status ;;
    url) url "${2:-}" ;;
    *)
        echo "usage: $0 {start|stop|status|url NAME}" >&2
        exit 2
        ;;
esac
