"""A three-node Kafka cluster (deploy/kafka/cluster.sh) shared by the cluster tests of a session:
replication factor 3, min.insync.replicas 2, unclean leader election off."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

CLUSTER_SH = Path(__file__).resolve().parents[2] / "deploy" / "kafka" / "cluster.sh"


class Cluster:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.bootstrap = ""

    def run(self, *command: str, timeout: float = 240) -> str:
        env = {**os.environ, "KAFKA_CLUSTER_DIR": str(self.directory)}
        out = subprocess.run(
            [str(CLUSTER_SH), *command], capture_output=True, text=True, env=env, timeout=timeout
        )
        if out.returncode != 0:
            pytest.fail(f"cluster.sh {' '.join(command)} failed:\n{out.stdout}\n{out.stderr}")
        return out.stdout.strip()


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if os.environ.get("AGENTLEDGER_KAFKA_START_ERROR"):
        pytest.fail(f"no Kafka: {os.environ['AGENTLEDGER_KAFKA_START_ERROR']}")
    c = Cluster(tmp_path_factory.mktemp("kafka-cluster"))
    c.bootstrap = c.run("start").splitlines()[-1]
    yield c
    c.run("stop")
