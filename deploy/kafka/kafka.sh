#!/usr/bin/env bash
# Local single-node Apache Kafka 4.x (KRaft, broker+controller in one JVM) for development
# and tests. Jars come from Maven Central via deploy/kafka/pom.xml; nothing else is downloaded.
#
#   deploy/kafka/kafka.sh fetch|start|stop|kill9|restart|status|bootstrap|logs|wipe
#
# See deploy/kafka/README.md for the environment variables.
set -euo pipefail

SCRIPT_DIR="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"
REPO_ROOT="$(cd -- "$SCRIPT_DIR/../.." && pwd -P)"

KAFKA_PORT="${KAFKA_PORT:-19092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-19093}"
KAFKA_DATA_DIR="${KAFKA_DATA_DIR:-$REPO_ROOT/.kafka}"
# Cluster membership (set by deploy/kafka/cluster.sh; a lone node leaves them empty).
KAFKA_NODE_ID="${KAFKA_NODE_ID:-1}"
KAFKA_QUORUM_VOTERS="${KAFKA_QUORUM_VOTERS:-}"
KAFKA_CLUSTER_ID="${KAFKA_CLUSTER_ID:-}"
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms256m -Xmx768m}"
KAFKA_JVM_OPTS="${KAFKA_JVM_OPTS:--XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true}"
KAFKA_START_TIMEOUT="${KAFKA_START_TIMEOUT:-120}"
KAFKA_STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-30}"
# Client listener: plaintext, or sasl_plaintext (PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 for
# the users of KAFKA_SASL_USERS; the controller listener stays PLAINTEXT on loopback).
KAFKA_SECURITY="${KAFKA_SECURITY:-plaintext}"
KAFKA_SASL_USERS="${KAFKA_SASL_USERS:-agentledger:agentledger-secret}"
MVN="${MVN:-mvn}"
if [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then
  JAVA="${JAVA:-$JAVA_HOME/bin/java}"; JAVAC="${JAVAC:-$JAVA_HOME/bin/javac}"
else
  JAVA="${JAVA:-java}"; JAVAC="${JAVAC:-javac}"
fi

# Make the data dir absolute (a relative KAFKA_DATA_DIR is taken relative to the caller's cwd).
case "$KAFKA_DATA_DIR" in /*) ;; *) KAFKA_DATA_DIR="$PWD/$KAFKA_DATA_DIR" ;; esac

LIB_DIR="$SCRIPT_DIR/lib"
TARGET_DIR="$SCRIPT_DIR/target"
PROBE_DIR="$TARGET_DIR/probe"
POM="$SCRIPT_DIR/pom.xml"
PROBE_SRC="$SCRIPT_DIR/KafkaReady.java"

PROPS="$KAFKA_DATA_DIR/server.properties"
LOG_DIRS="$KAFKA_DATA_DIR/kafka-logs"
PID_FILE="$KAFKA_DATA_DIR/kafka.pid"
SERVER_LOG="$KAFKA_DATA_DIR/server.log"   # log4j2 (see log4j2.properties)
JVM_OUT="$KAFKA_DATA_DIR/kafka.out"       # JVM stdout/stderr (crashes, bad flags)
CLIENT_PROPS="$KAFKA_DATA_DIR/client.properties"  # the probe's client settings (SASL only)
SCRAM_MARK="$KAFKA_DATA_DIR/scram.users"       # hash of the SCRAM users the storage holds
BOOTSTRAP="127.0.0.1:$KAFKA_PORT"

log() { printf 'kafka.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

sha() { cat "$@" | sha256sum | cut -d' ' -f1; }

# ---------------------------------------------------------------------------------- fetch
cmd_fetch() {
  mkdir -p "$TARGET_DIR"
  local pom_hash probe_hash
  pom_hash="$(sha "$POM")"
  probe_hash="$(sha "$POM" "$PROBE_SRC")"
  if [[ "$(cat "$LIB_DIR/.pom.sha256" 2>/dev/null)" == "$pom_hash" &&
        "$(cat "$PROBE_DIR/.src.sha256" 2>/dev/null)" == "$probe_hash" ]]; then
    return 0
  fi
  # Serialize concurrent fetches (e.g. parallel test sessions).
  exec 8>"$TARGET_DIR/fetch.lock"
  flock -w 600 8 || die "timed out waiting for $TARGET_DIR/fetch.lock"

  if [[ "$(cat "$LIB_DIR/.pom.sha256" 2>/dev/null)" != "$pom_hash" ]]; then
    command -v "$MVN" >/dev/null || die "maven ($MVN) not found"
    log "fetching Kafka jars from Maven Central into $LIB_DIR ..."
    # Fresh directory each time: stale jars of another version on the classpath break Kafka.
    local tmp="$SCRIPT_DIR/lib.tmp.$$"
    rm -rf "$tmp"
    if ! "$MVN" -q -B -Dstyle.color=never -f "$POM" dependency:copy-dependencies \
          -DincludeScope=runtime -DoutputDirectory="$tmp" >"$TARGET_DIR/mvn-fetch.log" 2>&1; then
      cat "$TARGET_DIR/mvn-fetch.log" >&2
      rm -rf "$tmp"; die "maven dependency fetch failed (log: $TARGET_DIR/mvn-fetch.log)"
    fi
    ls "$tmp"/kafka_2.13-*.jar >/dev/null 2>&1 || { rm -rf "$tmp"; die "no kafka_2.13 jar fetched"; }
    echo "$pom_hash" >"$tmp/.pom.sha256"
    rm -rf "$LIB_DIR"
    mv "$tmp" "$LIB_DIR"
  fi

  if [[ "$(cat "$PROBE_DIR/.src.sha256" 2>/dev/null)" != "$probe_hash" ]]; then
    rm -rf "$PROBE_DIR"; mkdir -p "$PROBE_DIR"
    "$JAVAC" -nowarn -d "$PROBE_DIR" -cp "$LIB_DIR/*" "$PROBE_SRC" >&2 || die "javac KafkaReady failed"
    echo "$probe_hash" >"$PROBE_DIR/.src.sha256"
  fi
  exec 8>&-
  log "jars ready: $(kafka_version_string)"
}

kafka_version_string() {
  local jars=("$LIB_DIR"/kafka_2.13-*.jar) j
  j="${jars[0]##*/kafka_2.13-}"; echo "Apache Kafka ${j%.jar}"
}

# Short-lived tool JVMs: small heap, fast startup, quiet logging.
run_tool() {
  "$JAVA" -Xms32m -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$SCRIPT_DIR/log4j2-tools.properties" \
    -cp "$PROBE_DIR:$LIB_DIR/*" "$@"
}

# ---------------------------------------------------------------------------------- helpers
read_pid() { [[ -f "$PID_FILE" ]] && tr -dc '0-9' <"$PID_FILE" || true; }

# True if $1 is a live broker JVM started by this script for this data dir (guards pid reuse).
is_ours() {
  local pid="$1"
  [[ -n "$pid" && -r "/proc/$pid/cmdline" ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "kafka.Kafka $PROPS" || return 1
  # A zombie (killed, not yet reaped) has state Z; treat it as gone.
  [[ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != "Z" ]]
}

port_open() { timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

probe() { # probe <timeout-s> [pid]
  local opts=()
  [[ -f "$CLIENT_PROPS" ]] && opts=("-Dkafka.ready.client.config=$CLIENT_PROPS")
  run_tool ${opts[@]+"${opts[@]}"} KafkaReady "$BOOTSTRAP" "$@" >/dev/null
}

# ---------------------------------------------------------------------------------- SASL
# KAFKA_SASL_USERS: name:password pairs separated by spaces or commas. The characters are
# restricted so that no quoting is needed in the JAAS line or in StorageTool's --add-scram.
SASL_USERS=()
parse_sasl_users() {
  local pair
  SASL_USERS=()
  for pair in ${KAFKA_SASL_USERS//,/ }; do
    [[ "$pair" =~ ^[A-Za-z0-9_-]+:[A-Za-z0-9._~-]+$ ]] \
      || die "KAFKA_SASL_USERS: the entry starting '${pair%%:*}' is not name:password (name: letters, digits, _ -; password: also . ~)"
    [[ "${pair%%:*}" == broker ]] && die "KAFKA_SASL_USERS: the name 'broker' is the broker's own"
    SASL_USERS+=("$pair")
  done
  ((${#SASL_USERS[@]})) || die "KAFKA_SASL_USERS names no user"
}

sasl_users_hash() { printf '%s\n' "${SASL_USERS[@]}" | sort | sha256sum | cut -d' ' -f1; }

# Listener and SASL lines of server.properties, and the probe's client settings. The broker
# authenticates to itself (inter-broker listener) and the probe as user 'broker' over PLAIN,
# with a password new on every start: PLAIN users live only in the JAAS line written here.
sasl_listener_properties() {
  local broker_pw pair jaas scram_jaas
  broker_pw="$(head -c 18 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
  jaas="org.apache.kafka.common.security.plain.PlainLoginModule required"
  jaas+=" username=\"broker\" password=\"$broker_pw\" user_broker=\"$broker_pw\""
  for pair in "${SASL_USERS[@]}"; do jaas+=" user_${pair%%:*}=\"${pair#*:}\""; done
  scram_jaas="org.apache.kafka.common.security.scram.ScramLoginModule required;"
  cat <<EOF
listeners=SASL_PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=SASL_PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
listener.security.protocol.map=SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=SASL_PLAINTEXT
sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=PLAIN
listener.name.sasl_plaintext.plain.sasl.jaas.config=$jaas;
listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config=$scram_jaas
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=$scram_jaas
EOF
  cat >"$CLIENT_PROPS.tmp" <<EOF
security.protocol=SASL_PLAINTEXT
sasl.mechanism=PLAIN
sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="broker" password="$broker_pw";
EOF
  mv "$CLIENT_PROPS.tmp" "$CLIENT_PROPS"
}

lock_data_dir() {
  mkdir -p "$KAFKA_DATA_DIR"
  exec 9>"$KAFKA_DATA_DIR/.kafka.sh.lock"
  flock -w $((KAFKA_START_TIMEOUT + KAFKA_STOP_TIMEOUT + 30)) 9 \
    || die "timed out waiting for the lock on $KAFKA_DATA_DIR"
}

dump_logs() {
  {
    echo "----- last 50 lines of $SERVER_LOG -----"
    tail -n 50 "$SERVER_LOG" 2>/dev/null || echo "(no server.log)"
    if [[ -s "$JVM_OUT" ]]; then
      echo "----- last 20 lines of $JVM_OUT -----"
      tail -n 20 "$JVM_OUT"
    fi
  } >&2
}

listener_properties() {
  if [[ "$KAFKA_SECURITY" == sasl_plaintext ]]; then
    sasl_listener_properties
    return
  fi
  rm -f "$CLIENT_PROPS"
  cat <<EOF
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
EOF
}

# One node alone: Kafka 4.x dynamic quorum (KIP-853), storage formatted with --standalone, so the
# voter set lives in the metadata log (controller.quorum.voters must NOT be set with it). A
# member of a cluster (deploy/kafka/cluster.sh): the static voter set KAFKA_QUORUM_VOTERS.
quorum_properties() {
  if [[ -n "$KAFKA_QUORUM_VOTERS" ]]; then
    echo "controller.quorum.voters=$KAFKA_QUORUM_VOTERS"
  else
    echo "controller.quorum.bootstrap.servers=127.0.0.1:$KAFKA_CONTROLLER_PORT"
  fi
}

write_properties() {
  local mask listeners
  mask="$(umask)"
  umask 077  # with SASL, server.properties and client.properties hold passwords
  listeners="$(listener_properties)"
  cat >"$PROPS.tmp" <<EOF
# Written by deploy/kafka/kafka.sh on every start; edits here are overwritten.
process.roles=broker,controller
node.id=$KAFKA_NODE_ID
$listeners
controller.listener.names=CONTROLLER
$(quorum_properties)

log.dirs=$LOG_DIRS
num.partitions=1
default.replication.factor=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0

# The project sends records up to ~10 MB.
message.max.bytes=16777216
replica.fetch.max.bytes=16777216
replica.fetch.response.max.bytes=16777216

# Modest footprint: 2-core dev machine shared with the tests.
num.network.threads=2
num.io.threads=4
background.threads=4
num.recovery.threads.per.data.dir=1
log.cleaner.threads=1
log.cleaner.dedupe.buffer.size=33554432

# After a SIGKILL the restarted controller rejects the new broker registration
# (DuplicateBrokerRegistrationException) until the old session expires; the default 9 s
# session makes kill9+start take ~15 s. 6 s / 1 s heartbeats keeps a margin for GC/CPU stalls.
broker.session.timeout.ms=6000
broker.heartbeat.interval.ms=1000
EOF
  if [[ -n "${KAFKA_EXTRA_PROPERTIES:-}" ]]; then
    printf '\n# KAFKA_EXTRA_PROPERTIES (later keys win)\n%s\n' "$KAFKA_EXTRA_PROPERTIES" >>"$PROPS.tmp"
  fi
  mv "$PROPS.tmp" "$PROPS"
  umask "$mask"
}

format_if_needed() {
  # Formatted once; later starts reuse the storage (ports may change between starts: the
  # single voter's endpoint is refreshed from the config, checked with 4.4.0).
  # SCRAM credentials live in the metadata log: they are written here, at format time.
  [[ -f "$LOG_DIRS/meta.properties" ]] && return 0
  local cid pair mech scram=()
  if [[ "$KAFKA_SECURITY" == sasl_plaintext ]]; then
    for pair in "${SASL_USERS[@]}"; do
      for mech in SCRAM-SHA-256 SCRAM-SHA-512; do
        scram+=(--add-scram "$mech=[name=${pair%%:*},password=${pair#*:}]")
      done
    done
  fi
  # Kafka cluster ids are 16 random bytes in url-safe base64 (22 chars); avoid a leading '-'
  # (argparse would read it as an option).
  cid="$KAFKA_CLUSTER_ID"  # a cluster's members share the id cluster.sh made
  while [[ -z "$cid" ]]; do
    cid="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
    [[ "$cid" == -* ]] && cid=""
  done
  local standalone=(--standalone)
  [[ -n "$KAFKA_QUORUM_VOTERS" ]] && standalone=()
  log "formatting KRaft storage in $LOG_DIRS (cluster id $cid, node $KAFKA_NODE_ID)"
  if ! run_tool kafka.tools.StorageTool format -t "$cid" -c "$PROPS" ${standalone[@]+"${standalone[@]}"} \
      ${scram[@]+"${scram[@]}"} >"$KAFKA_DATA_DIR/format.log" 2>&1; then
    cat "$KAFKA_DATA_DIR/format.log" >&2
    die "kafka-storage format failed (log: $KAFKA_DATA_DIR/format.log)"
  fi
  echo "$cid" >"$KAFKA_DATA_DIR/cluster.id"
  if [[ "$KAFKA_SECURITY" == sasl_plaintext ]]; then
    sasl_users_hash >"$SCRAM_MARK"
  else
    rm -f "$SCRAM_MARK"
  fi
}

# Formatted storage holds the SCRAM users it was formatted with; SASL needs those of now.
check_scram_users() {
  [[ "$KAFKA_SECURITY" == sasl_plaintext && -f "$LOG_DIRS/meta.properties" ]] || return 0
  [[ "$(cat "$SCRAM_MARK" 2>/dev/null)" == "$(sasl_users_hash)" ]] && return 0
  die "$KAFKA_DATA_DIR was formatted with other SCRAM users (or none), and SCRAM users are written when the storage is formatted: run '$0 wipe' or use another KAFKA_DATA_DIR"
}

# ---------------------------------------------------------------------------------- commands
cmd_start() {
  cmd_fetch
  lock_data_dir
  local pid t0 rc=0
  t0=$SECONDS
  pid="$(read_pid)"
  if is_ours "$pid"; then
    if probe "$KAFKA_START_TIMEOUT" "$pid"; then
      log "already running (pid $pid) at $BOOTSTRAP"
      echo "$BOOTSTRAP"
      return 0
    fi
    dump_logs
    die "broker pid $pid is alive but does not answer on $BOOTSTRAP (try: $0 restart)"
  fi
  rm -f "$PID_FILE"
  port_open "$KAFKA_PORT" && die "127.0.0.1:$KAFKA_PORT is already in use by another process"
  port_open "$KAFKA_CONTROLLER_PORT" && die "127.0.0.1:$KAFKA_CONTROLLER_PORT is already in use by another process"

  check_scram_users
  write_properties
  format_if_needed

  # Keep the previous run's logs (e.g. of a crash) next to the new ones, not mixed in.
  [[ -f "$JVM_OUT" ]] && mv -f "$JVM_OUT" "$JVM_OUT.prev"
  [[ -f "$SERVER_LOG" ]] && mv -f "$SERVER_LOG" "$SERVER_LOG.prev"
  # shellcheck disable=SC2086  # word splitting of the *_OPTS variables is intended
  # setsid: the broker gets its own session, so Ctrl-C / signals to the caller's process
  # group (a test runner) do not hit it. 9>&- : do not leak the data-dir lock into the JVM.
  nohup setsid "$JAVA" $KAFKA_HEAP_OPTS $KAFKA_JVM_OPTS \
    -Dkafka.logs.dir="$KAFKA_DATA_DIR" \
    -Dlog4j2.configurationFile="$SCRIPT_DIR/log4j2.properties" \
    -cp "$LIB_DIR/*" kafka.Kafka "$PROPS" \
    </dev/null >>"$JVM_OUT" 2>&1 9>&- 8>&- &
  pid=$!
  echo "$pid" >"$PID_FILE"
  log "started broker pid $pid, waiting up to ${KAFKA_START_TIMEOUT}s for $BOOTSTRAP ..."

  probe "$KAFKA_START_TIMEOUT" "$pid" || rc=$?
  if [[ $rc -ne 0 ]]; then
    dump_logs
    if is_ours "$pid"; then
      log "broker did not become ready; stopping it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$PID_FILE"
    die "Kafka failed to start (probe exit $rc); logs: $SERVER_LOG $JVM_OUT"
  fi
  log "$(kafka_version_string) ready at $BOOTSTRAP (${KAFKA_SECURITY^^}, pid $pid, data $KAFKA_DATA_DIR, $((SECONDS - t0))s)"
  echo "$BOOTSTRAP"
}

wait_gone() { # wait_gone <pid> <seconds>; true if gone in time
  local pid="$1" deadline=$((SECONDS + $2))
  while is_ours "$pid"; do
    ((SECONDS >= deadline)) && return 1
    sleep 0.2
  done
}

cmd_stop() {
  lock_data_dir
  local pid
  pid="$(read_pid)"
  if ! is_ours "$pid"; then
    rm -f "$PID_FILE"
    log "not running"
    return 0
  fi
  log "stopping broker pid $pid (SIGTERM, up to ${KAFKA_STOP_TIMEOUT}s)"
  kill -TERM "$pid" 2>/dev/null || true
  if ! wait_gone "$pid" "$KAFKA_STOP_TIMEOUT"; then
    log "still alive after ${KAFKA_STOP_TIMEOUT}s; SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    wait_gone "$pid" 10 || die "pid $pid survived SIGKILL"
  fi
  rm -f "$PID_FILE"
  log "stopped"
}

cmd_kill9() {
  lock_data_dir
  local pid
  pid="$(read_pid)"
  if ! is_ours "$pid"; then
    rm -f "$PID_FILE"
    log "not running"
    return 0
  fi
  kill -KILL "$pid" 2>/dev/null || true
  wait_gone "$pid" 10 || die "pid $pid survived SIGKILL"
  rm -f "$PID_FILE"
  log "killed broker pid $pid with SIGKILL"
}

cmd_status() {
  local pid
  pid="$(read_pid)"
  if ! is_ours "$pid"; then
    echo "not running" >&2
    return 3
  fi
  if [[ ! -x "$(command -v "$JAVA")" || ! -d "$PROBE_DIR" ]] || ! probe 10 "$pid"; then
    echo "pid $pid alive but not answering on $BOOTSTRAP" >&2
    return 1
  fi
  echo "$BOOTSTRAP"
}

cmd_wipe() {
  cmd_stop
  # Only delete something that looks like a data dir this script created.
  if [[ -d "$KAFKA_DATA_DIR" ]]; then
    [[ -f "$PROPS" || -d "$LOG_DIRS" ||
       -z "$(find "$KAFKA_DATA_DIR" -mindepth 1 -maxdepth 1 ! -name .kafka.sh.lock -print -quit)" ]] \
      || die "$KAFKA_DATA_DIR does not look like a kafka.sh data dir; not deleting"
    rm -rf -- "$KAFKA_DATA_DIR"
    log "wiped $KAFKA_DATA_DIR"
  fi
}

usage() {
  cat >&2 <<EOF
usage: $0 {fetch|start|stop|kill9|restart|status|bootstrap|logs|wipe}
  fetch      download the pinned jars from Maven Central (no-op when up to date)
  start      fetch, format KRaft storage once, start the broker, wait until it serves requests
  stop       SIGTERM, wait up to \$KAFKA_STOP_TIMEOUT (30) s, then SIGKILL
  kill9      SIGKILL immediately (crash tests)
  restart    stop + start
  status     exit 0 and print the bootstrap address if running and answering
  bootstrap  print 127.0.0.1:\$KAFKA_PORT
  logs       tail -n \${N:-50} of the broker log
  wipe       stop and delete \$KAFKA_DATA_DIR
KAFKA_SECURITY=sasl_plaintext: the client listener requires SASL (PLAIN, SCRAM-SHA-256/512)
for the name:password pairs of \$KAFKA_SASL_USERS (see deploy/kafka/README.md).
EOF
}

case "$KAFKA_SECURITY" in
  plaintext) ;;
  sasl_plaintext) parse_sasl_users ;;
  *) die "KAFKA_SECURITY must be plaintext or sasl_plaintext, not '$KAFKA_SECURITY'" ;;
esac

case "${1:-}" in
  fetch) cmd_fetch ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  kill9) cmd_kill9 ;;
  restart) cmd_stop; cmd_start ;;
  status) cmd_status ;;
  bootstrap) echo "$BOOTSTRAP" ;;
  logs) tail -n "${N:-50}" "$SERVER_LOG" ;;
  wipe) cmd_wipe ;;
  -h|--help|help) usage ;;
  *) usage; exit 64 ;;
esac
