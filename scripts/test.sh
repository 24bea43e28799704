#!/usr/bin/env bash
# Fresh machine -> AgentLedger and its test dependencies installed -> static checks (ruff,
# import-linter, mypy) -> a real Kafka broker fetched from Maven Central and started -> the
# test suite, every tier -> broker stopped.
# Set AGENTLEDGER_KAFKA_BOOTSTRAP_SERVERS to test against a broker you already run.
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
# The OpenTelemetry Collector that the slow-tier deploy tests run (tests/deploy/test_otel_collector.py)
# is built once per release (~5 minutes the first time, then cached): started first, in the
# background while the install and static checks run; the tests wait for it (a lock), and fail
# with its log if it failed.
bash "$ROOT/scripts/otelcol.sh" >/dev/null 2>&1 &
al_install dev
al_install_native required
cd "$ROOT"
bash scripts/lint.sh
bash scripts/test_otel_versions.sh

if [ -z "${AGENTLEDGER_KAFKA_BOOTSTRAP_SERVERS:-}" ]; then
    export KAFKA_DATA_DIR="${KAFKA_DATA_DIR:-$ROOT/.kafka-test}"
    # free loopback ports, so a broker already running on the defaults does not get in the way
    free_port() { "$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
    export KAFKA_PORT="${KAFKA_PORT:-$(free_port)}" KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-$(free_port)}"
    # A failed start is not fatal here: the tests that need Kafka then fail with the reason.
    if deploy/kafka/kafka.sh start; then
        trap 'deploy/kafka/kafka.sh stop || true' EXIT
        export AGENTLEDGER_KAFKA_BOOTSTRAP_SERVERS="$(deploy/kafka/kafka.sh bootstrap)"
    else
        echo "kafka: broker did not start; Kafka tests will fail with the reason" >&2
        export AGENTLEDGER_KAFKA_START_ERROR="deploy/kafka/kafka.sh start failed (see its output above)"
    fi
fi

"$VENV/bin/python" -m pytest "$@"
