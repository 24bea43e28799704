#!/usr/bin/env bash
# Local three-node Apache Kafka 4.x cluster (KRaft, each node broker+controller, static voter
# set) on loopback, for fault tests and for trying AgentLedger at production shape:
# replication factor 3, min.insync.replicas=2, unclean leader election off. Each node is a
# deploy/kafka/kafka.sh node (same jars, same logs layout) in a directory of its own.
#
#   deploy/kafka/cluster.sh start|stop|status|bootstrap|wipe
#   deploy/kafka/cluster.sh kill9 N | start-node N | stop-node N      (N = 1, 2 or 3)
#
# KAFKA_CLUSTER_DIR (default .kafka-cluster) holds node1..node3 and ports.env: the ports are
# picked once (free loopback ports, or KAFKA_CLUSTER_BASE_PORT+0..5) and kept, so a node
# restarted after kill9 comes back where the others expect it.
set -euo pipefail

SCRIPT_DIR="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"
REPO_ROOT="$(cd -- "$SCRIPT_DIR/../.." && pwd -P)"
KAFKA_CLUSTER_DIR="${KAFKA_CLUSTER_DIR:-$REPO_ROOT/.kafka-cluster}"
case "$KAFKA_CLUSTER_DIR" in /*) ;; *) KAFKA_CLUSTER_DIR="$PWD/$KAFKA_CLUSTER_DIR" ;; esac
NODES=(1 2 3)
PORTS_FILE="$KAFKA_CLUSTER_DIR/ports.env"

log() { printf 'cluster.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Ports and the cluster id, chosen on first use and kept in ports.env.
load_layout() {
  mkdir -p "$KAFKA_CLUSTER_DIR"
  if [[ ! -f "$PORTS_FILE" ]]; then
    local n base="${KAFKA_CLUSTER_BASE_PORT:-}" cid
    {
      for n in "${NODES[@]}"; do
        if [[ -n "$base" ]]; then
          echo "PORT_$n=$((base + 2 * (n - 1)))"
          echo "CONTROLLER_PORT_$n=$((base + 2 * (n - 1) + 1))"
        else
          echo "PORT_$n=$(free_port)"
          echo "CONTROLLER_PORT_$n=$(free_port)"
        fi
      done
      while :; do
        cid="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
        [[ "$cid" != -* ]] && break
      done
      echo "CLUSTER_ID=$cid"
    } >"$PORTS_FILE.tmp"
    mv "$PORTS_FILE.tmp" "$PORTS_FILE"
  fi
  # shellcheck disable=SC1090
  source "$PORTS_FILE"
}

voters() {
  local n out=()
  for n in "${NODES[@]}"; do
    local cport="CONTROLLER_PORT_$n"
    out+=("$n@127.0.0.1:${!cport}")
  done
  (IFS=,; echo "${out[*]}")
}

bootstrap() {
  local n out=()
  for n in "${NODES[@]}"; do
    local port="PORT_$n"
    out+=("127.0.0.1:${!port}")
  done
  (IFS=,; echo "${out[*]}")
}

# Run kafka.sh for node N with its directory, ports and the cluster's settings.
node() {
  local n="$1"; shift
  [[ " ${NODES[*]} " == *" $n "* ]] || die "no node $n (nodes: ${NODES[*]})"
  local port="PORT_$n" cport="CONTROLLER_PORT_$n"
  KAFKA_DATA_DIR="$KAFKA_CLUSTER_DIR/node$n" \
  KAFKA_PORT="${!port}" KAFKA_CONTROLLER_PORT="${!cport}" \
  KAFKA_NODE_ID="$n" KAFKA_QUORUM_VOTERS="$(voters)" KAFKA_CLUSTER_ID="$CLUSTER_ID" \
  KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms128m -Xmx512m}" \
  KAFKA_EXTRA_PROPERTIES="default.replication.factor=3
min.insync.replicas=2
unclean.leader.election.enable=false
offsets.topic.replication.factor=3
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
share.coordinator.state.topic.replication.factor=3
share.coordinator.state.topic.min.isr=2
${KAFKA_EXTRA_PROPERTIES:-}" \
    "$SCRIPT_DIR/kafka.sh" "$@"
}

cmd_start() {
  "$SCRIPT_DIR/kafka.sh" fetch
  load_layout
  # All at once: a node is ready only when a majority of the voters is up.
  local n pids=() failed=0
  for n in "${NODES[@]}"; do
    node "$n" start >/dev/null &
    pids+=($!)
  done
  for n in "${!pids[@]}"; do wait "${pids[$n]}" || failed=1; done
  ((failed == 0)) || die "a node did not start (logs: $KAFKA_CLUSTER_DIR/node*/server.log)"
  log "3 nodes ready at $(bootstrap) (replication 3, min.insync.replicas 2)"
  bootstrap
}

cmd_stop() {
  [[ -f "$PORTS_FILE" ]] || return 0
  load_layout
  local n pids=()
  for n in "${NODES[@]}"; do node "$n" stop & pids+=($!); done
  for n in "${!pids[@]}"; do wait "${pids[$n]}" || true; done
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) load_layout; for n in "${NODES[@]}"; do node "$n" status || true; done ;;
  bootstrap) load_layout; bootstrap ;;
  kill9) load_layout; node "${2:?node number}" kill9 ;;
  start-node) load_layout; node "${2:?node number}" start ;;
  stop-node) load_layout; node "${2:?node number}" stop ;;
  wipe) cmd_stop; rm -rf "$KAFKA_CLUSTER_DIR" ;;
  *) die "usage: $0 start|stop|status|bootstrap|wipe|kill9 N|start-node N|stop-node N" ;;
esac
