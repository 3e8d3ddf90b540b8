#!/usr/bin/env bash
# A single-node Apache Kafka (KRaft: broker and controller in one JVM) for development and tests.
#
#   deploy/kafka.sh fetch    resolve the broker jars from Maven Central into .cache/kafka/libs (once)
#   deploy/kafka.sh start    fetch if needed, format storage if new, start, wait until it serves
#   deploy/kafka.sh stop     TERM, then KILL after 30 s
#   deploy/kafka.sh status   exit 0 when running, 3 when not, 4 when running on another port than a
#                            KAFKA_PORT given; prints the port the running broker listens on
#   deploy/kafka.sh tools    resolve Kafka's command-line tools into .cache/kafka/tools (once)
#   deploy/kafka.sh consumer-groups ARGS...   kafka-consumer-groups (fetches the tools if needed)
#   deploy/kafka.sh topics ARGS...            kafka-topics (likewise)
#
# The tools' jars live apart from the broker's (.cache/kafka/libs), so fetching them never touches a
# running broker; the two wrappers are `java -cp '.cache/kafka/tools/*' <class> ARGS...`.
#
# Environment:
#   KAFKA_PORT             client listener on 127.0.0.1 (default 19092)
#   KAFKA_CONTROLLER_PORT  KRaft controller listener on 127.0.0.1 (default 19093)
#   KAFKA_DATA_DIR         log.dirs (default .cache/kafka/data)
#   KAFKA_RESET=1          stop if running and wipe the data before `start`
#   KAFKA_HEAP             JVM heap flags (default "-Xms1g -Xmx1g", as Kafka's own start script and image;
#                          see docs/decisions/0030-kafka-heap.md before making it smaller)
#   KAFKA_START_TIMEOUT    seconds `start` waits for the broker (default 90)
#
# Everything lives in the git-ignored .cache/kafka/ at the repository root. Needs Java 17+ and Maven.
# One broker per checkout: the pid file, config and log are .cache/kafka's whatever the ports, so
# `start` with other ports refuses while this checkout's broker runs, and `stop` with a KAFKA_PORT
# other than the running broker's refuses to stop it.
# Topics are not created here: the services create their own (auto.create.topics.enable=false).
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
POM="$SCRIPT_DIR/kafka/pom.xml"
KAFKA_VERSION="$(sed -n 's:.*<kafka\.version>\(.*\)</kafka\.version>.*:\1:p' "$POM" | head -n 1)"

CACHE="$REPO_ROOT/.cache/kafka"
LIBS="$CACHE/libs"
MARKER="$LIBS/.fetched-kafka-$KAFKA_VERSION"
DATA_DIR="${KAFKA_DATA_DIR:-$CACHE/data}"
CONFIG="$CACHE/server.properties"
LOG4J_CONFIG="$CACHE/log4j2.xml"
PID_FILE="$CACHE/kafka.pid"
LOG_FILE="$CACHE/kafka.log"
CLUSTER_ID_FILE="$CACHE/cluster.id"
TOOLS_POM="$SCRIPT_DIR/kafka/tools/pom.xml"
TOOLS="$CACHE/tools"
TOOLS_MARKER="$TOOLS/.fetched"

PORT="${KAFKA_PORT:-19092}"
CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-19093}"
HOST=127.0.0.1
TIMEOUT="${KAFKA_START_TIMEOUT:-90}"
# The broker holds about 150 MB live from its start (128 MiB of it the log cleaner's dedupe buffer). A
# heap that starts near that (it was -Xms256m) keeps G1 in back-to-back concurrent cycles: under kiosk
# load two thirds of the broker's CPU went to its collector (decision 0030). Initial = maximum, as
# Kafka's own start script has it.
read -r -a HEAP <<<"${KAFKA_HEAP:--Xms1g -Xmx1g}"
VENV_PYTHON="$REPO_ROOT/.venv/bin/python"

say() { printf 'kafka: %s\n' "$*"; }
die() { printf 'kafka: error: %s\n' "$*" >&2; exit 1; }

need() {
    command -v "$1" >/dev/null 2>&1 || die "$1 not found; $2"
}

# One invocation at a time (two test runs starting the broker together would both format it).
lock() {
    mkdir -p "$CACHE"
    exec 9>"$CACHE/.lock"
    if command -v flock >/dev/null 2>&1; then
        flock -w 180 9 || die "another deploy/kafka.sh is still running (lock $CACHE/.lock)"
    fi
}

pom_digest() { sha256sum "$POM" | cut -d' ' -f1; }

fetched() { [[ -f "$MARKER" && "$(cat "$MARKER")" == "$(pom_digest)" ]]; }

fetch() {
    if fetched; then
        return 0
    fi
    need java "install a JDK 17+ (Debian: apt-get install -y openjdk-17-jre-headless)"
    need mvn "install Maven (Debian: apt-get install -y maven)"
    say "fetching Apache Kafka $KAFKA_VERSION jars from Maven Central (once)..."
    local started=$SECONDS
    rm -rf "$LIBS" "$LIBS.tmp"
    mkdir -p "$LIBS.tmp"
    if ! mvn -B -q -f "$POM" dependency:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$LIBS.tmp" >"$CACHE/fetch.log" 2>&1; then
        tail -n 40 "$CACHE/fetch.log" >&2
        die "Maven could not resolve the Kafka jars (full output: $CACHE/fetch.log)"
    fi
    mv "$LIBS.tmp" "$LIBS"
    pom_digest >"$MARKER"
    say "fetched $(find "$LIBS" -name '*.jar' | wc -l) jars into $LIBS in $((SECONDS - started))s"
}

tools_fetched() { [[ -f "$TOOLS_MARKER" && "$(cat "$TOOLS_MARKER")" == "$(sha256sum "$TOOLS_POM" | cut -d' ' -f1)" ]]; }

fetch_tools() {
    if tools_fetched; then
        return 0
    fi
    need java "install a JDK 17+ (Debian: apt-get install -y openjdk-17-jre-headless)"
    need mvn "install Maven (Debian: apt-get install -y maven)"
    say "fetching Apache Kafka's command-line tools from Maven Central (once)..." >&2
    local started=$SECONDS
    rm -rf "$TOOLS" "$TOOLS.tmp"
    mkdir -p "$TOOLS.tmp"
    if ! mvn -B -q -f "$TOOLS_POM" dependency:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$TOOLS.tmp" >"$CACHE/tools-fetch.log" 2>&1; then
        tail -n 40 "$CACHE/tools-fetch.log" >&2
        die "Maven could not resolve the Kafka tools (full output: $CACHE/tools-fetch.log)"
    fi
    mv "$TOOLS.tmp" "$TOOLS"
    sha256sum "$TOOLS_POM" | cut -d' ' -f1 >"$TOOLS_MARKER"
    say "fetched $(find "$TOOLS" -name '*.jar' | wc -l) jars into $TOOLS in $((SECONDS - started))s" >&2
}

# Runs one of Kafka's tools (a main class of kafka-tools) with the remaining arguments.
tool() {
    local class=$1
    shift
    lock
    fetch_tools
    exec 9>&-
    exec java -Djava.awt.headless=true -cp "$TOOLS/*" "$class" "$@"
}

# The pid from the pid file, if that process is alive and is our broker.
running_pid() {
    [[ -f "$PID_FILE" ]] || return 1
    local pid
    pid="$(cat "$PID_FILE")"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'kafka\.Kafka' || return 1
    echo "$pid"
}

port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

# The client port of the running broker: its config is written at its start (write_config), so it is
# the one it listens on, whatever KAFKA_PORT says now. Empty when the config does not say.
running_port() {
    sed -n "s|^advertised.listeners=PLAINTEXT://$HOST:\([0-9]*\)\$|\1|p" "$CONFIG" 2>/dev/null | head -n 1
}

# A KAFKA_PORT given in the environment that is not the running broker's port $1.
other_port_asked() { [[ -n "${KAFKA_PORT:-}" && -n "$1" && "$KAFKA_PORT" != "$1" ]]; }

write_config() {
    mkdir -p "$DATA_DIR"
    cat >"$CONFIG" <<EOF
# Written by deploy/kafka.sh on every start; edit the script, not this file.
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=$HOST:$CONTROLLER_PORT
listeners=PLAINTEXT://$HOST:$PORT,CONTROLLER://$HOST:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$HOST:$PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$DATA_DIR
num.partitions=6
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
delete.topic.enable=true
EOF
    cat >"$LOG4J_CONFIG" <<'EOF'
<?xml version="1.0" encoding="UTF-8"?>
<!-- Written by deploy/kafka.sh. Console goes to .cache/kafka/kafka.log (stdout is redirected there). -->
<Configuration status="WARN">
  <Appenders>
    <Console name="stdout" target="SYSTEM_OUT">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
    </Console>
  </Appenders>
  <Loggers>
    <Root level="WARN">
      <AppenderRef ref="stdout"/>
    </Root>
    <!-- "Kafka Server started" and the shutdown lines. -->
    <Logger name="kafka.server.KafkaRaftServer" level="INFO"/>
    <Logger name="kafka.Kafka" level="INFO"/>
  </Loggers>
</Configuration>
EOF
}

format_storage() {
    if [[ -f "$DATA_DIR/meta.properties" ]]; then
        return 0
    fi
    local cp="$LIBS/*"
    if [[ ! -s "$CLUSTER_ID_FILE" ]]; then
        java -cp "$cp" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1 >"$CLUSTER_ID_FILE"
    fi
    say "formatting new storage in $DATA_DIR (cluster id $(cat "$CLUSTER_ID_FILE"))"
    # Kafka 4.x: a lone KRaft controller is a dynamic quorum initialised with --standalone, which
    # requires controller.quorum.bootstrap.servers (not controller.quorum.voters) in the config.
    if ! java -cp "$cp" -Dlog4j2.configurationFile="$LOG4J_CONFIG" kafka.tools.StorageTool format \
        --standalone --ignore-formatted -t "$(cat "$CLUSTER_ID_FILE")" -c "$CONFIG" \
        >"$CACHE/format.log" 2>&1; then
        cat "$CACHE/format.log" >&2
        die "formatting storage failed; try KAFKA_RESET=1 $0 start"
    fi
}

# Serves requests: answers a metadata request (the venv's aiokafka), or at least logged its start.
broker_ready() {
    port_open "$PORT" || return 1
    grep -q 'Kafka Server started' "$LOG_FILE" 2>/dev/null || return 1
    if [[ -x "$VENV_PYTHON" ]] && "$VENV_PYTHON" -c 'import aiokafka' 2>/dev/null; then
        "$VENV_PYTHON" - "$HOST:$PORT" >/dev/null 2>&1 <<'EOF' || return 1
import asyncio
import sys

from aiokafka.admin import AIOKafkaAdminClient


async def main() -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=sys.argv[1], request_timeout_ms=5000)
    await admin.start()
    try:
        await admin.list_topics()
    finally:
        await admin.close()


asyncio.run(asyncio.wait_for(main(), 10))
EOF
    fi
    return 0
}

print_env() { echo "KAFKA_BOOTSTRAP_SERVERS=$HOST:$PORT"; }

failed() {
    printf 'kafka: %s\n' "$1" >&2
    if [[ -f "$LOG_FILE" ]]; then
        echo "---- last lines of $LOG_FILE ----" >&2
        tail -n 40 "$LOG_FILE" >&2
        echo "----" >&2
    fi
    cat >&2 <<EOF
kafka: what to try:
  - a port in use?      ss -ltnp | grep -E ':($PORT|$CONTROLLER_PORT)\\b'  (or set KAFKA_PORT / KAFKA_CONTROLLER_PORT)
  - broken data dir?    KAFKA_RESET=1 $0 start   (wipes $DATA_DIR)
  - broken jar cache?   rm -rf $LIBS && $0 start
EOF
    exit 1
}

# Waits until the broker with pid $1 serves requests; stops it and fails after $TIMEOUT seconds.
wait_ready() {
    local pid=$1 started=$SECONDS
    local next_note=$((SECONDS + 5))
    until broker_ready; do
        if ! kill -0 "$pid" 2>/dev/null; then
            rm -f "$PID_FILE"
            failed "the broker exited during startup"
        fi
        if ((SECONDS - started >= TIMEOUT)); then
            printf 'kafka: not ready after %ss; stopping it\n' "$TIMEOUT" >&2
            stop >&2
            failed "the broker was not ready after ${TIMEOUT}s"
        fi
        if ((SECONDS >= next_note)); then
            say "waiting for the broker... ($((SECONDS - started))s)"
            next_note=$((SECONDS + 5))
        fi
        sleep 1
    done
}

start() {
    local pid actual
    if pid="$(running_pid)"; then
        actual="$(running_port)"
        if [[ "${KAFKA_RESET:-0}" == 1 ]]; then
            say "KAFKA_RESET=1: stopping the running broker first"
            stop
        elif [[ "$actual" != "$PORT" ]]; then
            die "this checkout's broker (pid $pid) runs on port ${actual:-(unknown)}, not $PORT (one broker" \
                "per checkout: its state is in $CACHE); use its port, or another checkout"
        else
            wait_ready "$pid"
            say "already running (pid $pid) on $HOST:$PORT"
            print_env
            return 0
        fi
    fi
    rm -f "$PID_FILE"
    need java "install a JDK 17+ (Debian: apt-get install -y openjdk-17-jre-headless)"
    fetch
    if [[ "${KAFKA_RESET:-0}" == 1 ]]; then
        say "KAFKA_RESET=1: wiping $DATA_DIR"
        rm -rf "$DATA_DIR" "$CLUSTER_ID_FILE"
    fi
    if port_open "$PORT" || port_open "$CONTROLLER_PORT"; then
        failed "port $PORT or $CONTROLLER_PORT on $HOST is already taken by another process"
    fi
    write_config
    format_storage

    say "starting broker on $HOST:$PORT (controller $HOST:$CONTROLLER_PORT, data $DATA_DIR)"
    local started=$SECONDS
    # A fresh log per run (readiness greps it); the previous run's is kept as kafka.log.1.
    if [[ -f "$LOG_FILE" ]]; then mv -f "$LOG_FILE" "$LOG_FILE.1"; fi
    # setsid: the broker must outlive the shell (and a Ctrl-C) that started it; 9>&-: it must not
    # inherit (and so hold) the lock.
    setsid nohup java "${HEAP[@]}" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
        -Dlog4j2.configurationFile="$LOG4J_CONFIG" -Dlog4j2.shutdownHookEnabled=false -cp "$LIBS/*" \
        kafka.Kafka "$CONFIG" </dev/null >>"$LOG_FILE" 2>&1 9>&- &
    pid=$!
    echo "$pid" >"$PID_FILE"

    wait_ready "$pid"
    say "ready in $((SECONDS - started))s (pid $pid, log $LOG_FILE)"
    print_env
}

stop() {
    local pid
    if ! pid="$(running_pid)"; then
        say "not running"
        rm -f "$PID_FILE"
        return 0
    fi
    if other_port_asked "$(running_port)"; then
        die "this checkout's broker (pid $pid) runs on $HOST:$(running_port), not on KAFKA_PORT=$KAFKA_PORT; not stopping it"
    fi
    say "stopping broker (pid $pid)..."
    kill -TERM "$pid" 2>/dev/null || true
    local waited=0
    while kill -0 "$pid" 2>/dev/null; do
        if ((waited >= 30)); then
            say "still running after 30s; sending KILL"
            kill -KILL "$pid" 2>/dev/null || true
            sleep 1
            break
        fi
        sleep 1
        waited=$((waited + 1))
    done
    rm -f "$PID_FILE"
    say "stopped"
}

status() {
    local pid port
    if pid="$(running_pid)"; then
        port="$(running_port)"
        port="${port:-$PORT}"
        say "running (pid $pid) on $HOST:$port"
        echo "KAFKA_BOOTSTRAP_SERVERS=$HOST:$port"
        if other_port_asked "$port"; then
            say "not on KAFKA_PORT=$KAFKA_PORT: this checkout runs one broker (state in $CACHE)" >&2
            return 4
        fi
    else
        say "not running"
        return 3
    fi
}

usage() {
    echo "usage: $0 {fetch|start|stop|status|tools|consumer-groups ARGS...|topics ARGS...}" >&2
    exit 2
}

[[ -n "$KAFKA_VERSION" ]] || die "could not read <kafka.version> from $POM"
case "${1:-}" in
    fetch) lock; fetch; say "jars for Kafka $KAFKA_VERSION are in $LIBS" ;;
    start) lock; start ;;
    stop) lock; stop ;;
    status) status ;;
    tools) lock; fetch_tools; say "Kafka's command-line tools are in $TOOLS" ;;
    consumer-groups) shift; tool org.apache.kafka.tools.consumer.group.ConsumerGroupCommand "$@" ;;
    topics) shift; tool org.apache.kafka.tools.TopicCommand "$@" ;;
    *) usage ;;
esac
