"""A real Kafka broker for the tests that need one.

``AGENTLEDGER_KAFKA_BOOTSTRAP_SERVERS`` names a running broker (scripts/test.sh
starts one from deploy/kafka); without it the session starts its own with
deploy/kafka/kafka.sh. If no broker can be had, these tests FAIL with the reason.
"""

from __future__ import annotations

import os
import socket
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from agentledger.pipeline.settings import KafkaSettings, PipelineSettings

ROOT = Path(__file__).resolve().parents[2]
KAFKA_SH = ROOT / "deploy" / "kafka" / "kafka.sh"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Broker:
    """A broker this test session started itself (restartable)."""

    port: int
    controller_port: int
    data_dir: Path

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _env(self) -> dict[str, str]:
        return {
            **os.environ,
            "KAFKA_PORT": str(self.port),
            "KAFKA_CONTROLLER_PORT": str(self.controller_port),
            "KAFKA_DATA_DIR": str(self.data_dir),
            "KAFKA_HEAP_OPTS": "-Xms128m -Xmx384m",
        }

    def run(self, command: str, timeout: float = 180) -> None:
        out = subprocess.run(
            [str(KAFKA_SH), command],
            env=self._env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if out.returncode != 0:
            pytest.fail(
                f"kafka.sh {command} failed (exit {out.returncode}):\n{out.stdout}\n{out.stderr}"
            )


def start_broker(data_dir: Path) -> Broker:
    broker = Broker(free_port(), free_port(), data_dir)
    broker.run("start")
    return broker


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    configured = os.environ.get("AGENTLEDGER_KAFKA_BOOTSTRAP_SERVERS")
    if configured:
        yield configured
        return
    if os.environ.get("AGENTLEDGER_KAFKA_START_ERROR"):
        pytest.fail(f"no Kafka broker: {os.environ['AGENTLEDGER_KAFKA_START_ERROR']}")
    broker = start_broker(tmp_path_factory.mktemp("kafka"))
    yield broker.bootstrap
    broker.run("stop")


@pytest.fixture
def kafka_settings(kafka_bootstrap: str) -> KafkaSettings:
    """Settings with topics and a consumer group of this test's own."""
    tag = uuid.uuid4().hex[:10]
    return KafkaSettings(
        bootstrap_servers=kafka_bootstrap,
        spans_topic=f"t{tag}.spans",
        logs_topic=f"t{tag}.logs",
        dead_letter_topic=f"t{tag}.spans.dlq",
        feedback_topic=f"t{tag}.feedback",
        intents_topic=f"t{tag}.intents",
        controls_topic=f"t{tag}.controls",
        partitions=3,
        group_id=f"g{tag}",
        max_record_bytes=1024 * 1024,
        produce_timeout_s=10,
    )


@pytest.fixture
def pipeline_settings() -> PipelineSettings:
    return PipelineSettings(
        batch_max_spans=2000, batch_max_seconds=0.5, metrics_port=0, retry_max_seconds=1.0
    )
