"""Transport unit tests: everything over ``MemoryTransport``, no broker."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from agentledger.pipeline.settings import KafkaSettings
from agentledger.pipeline.transport import MemoryTransport


@pytest.fixture
def transport() -> MemoryTransport:
    return MemoryTransport(
        KafkaSettings(
            bootstrap_servers=None,
            spans_topic="spans",
            logs_topic="logs",
            dead_letter_topic="spans.dlq",
            feedback_topic="feedback",
            intents_topic="intents",
            controls_topic="controls",
            partitions=3,
            group_id="pipeline",
            max_record_bytes=64 * 1024,
            produce_timeout_s=1,
        )
    )


def wait_for(predicate: Callable[[], Any], what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.01)


class Running:
    """Runs a consumer's ``run()`` in a thread for the ``with`` block; ``stop()`` and join after."""

    def __init__(self, consumer: Any) -> None:
        self.consumer = consumer
        self.thread = threading.Thread(target=consumer.run, daemon=True)

    def __enter__(self) -> Any:
        self.thread.start()
        return self.consumer

    def __exit__(self, *exc: object) -> None:
        self.consumer.stop()
        self.thread.join(timeout=10)
        assert not self.thread.is_alive()
