"""The ledger appended by ``agentledger pipeline run`` processes (real broker, a ClickHouse server
over HTTP): spans through Kafka become leaves under a signed, witnessed checkpoint that ``agentledger
ledger verify`` accepts; with two processes of one group and the partitions moving A -> B -> A while
load flows, every span is one leaf, every index is taken once and the log verifies."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from agentledger.pipeline.derive import tlog_store as S
from agentledger.pipeline.derive.tlog_verify import verify_log
from agentledger.pipeline.tlog import Signer, create_signing_key
from agentledger.pipeline.transport import record_headers
from agentledger.pipeline.transport.kafka import ensure_topics
from bench.traffic import SPANS_PER_RUN, requests
from tests.kafka.conftest import kafka_bootstrap, kafka_settings  # noqa: F401 (fixtures)
from tests.kafka.test_kafka_path import wait_for
from tests.kafka.test_resilience import _pipeline_env, _produce

TENANT = "default"
SIGNED = re.compile(r"ledger of default: signed a checkpoint at size (\d+)")


class Pipeline:
    """``agentledger pipeline run`` as a child process, its output collected line by line."""

    def __init__(self, env: dict[str, str]) -> None:
        self.metrics = f"http://127.0.0.1:{env['AGENTLEDGER_METRICS_PORT']}/metrics"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "agentledger.cli", "pipeline", "run", "--log-level", "info"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def signed(self) -> list[int]:
        """Sizes of the checkpoints this process signed."""
        return [int(m.group(1)) for line in list(self.lines) if (m := SIGNED.search(line))]

    def stored(self) -> float:
        """Spans this process stored (its metrics endpoint), 0 before it answers."""
        try:
            text = httpx.get(self.metrics, timeout=5).text
        except httpx.HTTPError:
            return 0.0
        found = re.search(r"^agentledger_pipeline_spans_stored_total (\S+)$", text, re.M)
        return float(found.group(1)) if found else 0.0

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=90)
        self._reader.join(timeout=10)
        out = "".join(self.lines)
        assert self.proc.returncode == 0, out
        return out


def _env(kafka_settings, ch_store, endpoint, key: Path, witness: Path) -> dict[str, str]:  # noqa: F811
    return _pipeline_env(
        kafka_settings,
        ch_store,
        endpoint,
        AGENTLEDGER_LEDGER_SIGNING_KEY_FILE=str(key),
        AGENTLEDGER_WITNESS_DIR=str(witness),
        AGENTLEDGER_JOBS_INTERVAL_S="0.5",
    )


def _head(store) -> tuple[int, int]:
    count, following, _ = S.log_head(store, TENANT)
    assert count == following, f"{count} leaves but indices up to {following - 1}"
    signed = S.latest_checkpoint(store, TENANT)
    return count, signed.tree_size if signed else 0


def _spans(store) -> int:
    return int(store.query_scalar("SELECT count() FROM spans FINAL"))


def _assert_one_leaf_per_span(store, signer: Signer) -> int:
    spans = _spans(store)
    count, signed = _head(store)
    assert count == signed == spans
    leaves = store.query_rows(
        "SELECT count() AS n, uniqExact(leaf_index) AS idx, uniqExact(record_key, record_id) AS ids"
        ", max(leaf_index) AS top FROM ledger_leaves WHERE tenant = 'default'"
    )[0]
    assert leaves == {"n": spans, "idx": spans, "ids": spans, "top": spans - 1}
    report = verify_log(store, TENANT, [signer.verifier()])
    assert report.ok, report.problems
    assert report.leaves == report.checkpoint_size == spans
    return spans


def test_spans_through_kafka_are_appended_signed_and_verified(
    kafka_settings,  # noqa: F811
    ch_store,
    endpoint,
    tmp_path: Path,
) -> None:
    key, witness = tmp_path / "deploy.key", tmp_path / "witness"
    signer = create_signing_key(key)
    reqs = list(requests(20, runs_per_request=2, seed=61))
    total = 20 * SPANS_PER_RUN
    _produce(kafka_settings, reqs)
    pipeline = Pipeline(_env(kafka_settings, ch_store, endpoint, key, witness))
    try:
        wait_for(lambda: _head(ch_store) == (total, total), what="every span signed in the log")
    finally:
        out = pipeline.stop()
    assert pipeline.signed()[-1] == total, out
    assert _assert_one_leaf_per_span(ch_store, signer) == total
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTLEDGER_")}
    env.update(AGENTLEDGER_CLICKHOUSE_URL=endpoint.url, AGENTLEDGER_DATABASE=ch_store.database)
    verified = subprocess.run(
        [sys.executable, "-m", "agentledger.cli", "ledger", "verify", "--tenant", TENANT]
        + ["--key-file", str(key), "--witness-dir", str(witness)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert f"OK: tenant default: {total} leaves recomputed" in verified.stdout
    assert f"witnessed at {total}" in verified.stdout


class _Load:
    """Keeps producing span batches to the topic until stopped; counts the spans sent."""

    def __init__(self, settings) -> None:
        from kafka import KafkaProducer

        ensure_topics(settings)
        self.settings = settings
        self.producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all")
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        rng = random.Random(71)
        while not self._stop.is_set():
            for req in requests(4, runs_per_request=1, seed=rng.randrange(1 << 30)):
                self.producer.send(
                    self.settings.spans_topic,
                    req.SerializeToString(),
                    headers=record_headers(TENANT, 1),
                ).get(timeout=30)
                self.sent += SPANS_PER_RUN
            self._stop.wait(0.2)

    def __enter__(self) -> _Load:
        self._thread.start()
        return self

    def stop(self) -> int:
        self._stop.set()
        self._thread.join(timeout=60)
        self.producer.close()
        return self.sent

    def __exit__(self, *exc: object) -> None:
        if not self._stop.is_set():
            self.stop()


@pytest.mark.slow
def test_partitions_move_a_b_a_under_load_and_the_log_stays_one_copy(
    kafka_settings,  # noqa: F811
    ch_store,
    endpoint,
    tmp_path: Path,
) -> None:
    key, witness = tmp_path / "deploy.key", tmp_path / "witness"
    signer = create_signing_key(key)
    outputs: list[str] = []

    def start() -> Pipeline:
        return Pipeline(_env(kafka_settings, ch_store, endpoint, key, witness))

    def grows(process: Pipeline, what: str) -> None:
        """``process`` stores spans and signs a larger checkpoint than any before."""
        stored, (_, signed) = process.stored(), _head(ch_store)
        wait_for(lambda: process.stored() > stored, what=f"{what} storing spans")
        wait_for(lambda: any(s > signed for s in process.signed()), what=f"{what} signing")

    with _Load(kafka_settings) as load:
        a = start()
        try:
            grows(a, "A alone")
            b = start()  # the group rebalances: B takes partitions from A, both append
            try:
                grows(b, "B beside A")
                outputs.append(a.stop())  # A leaves: B holds every partition
                grows(b, "B alone")
                a = start()  # and back: A takes partitions again
                grows(a, "A beside B")
            finally:
                outputs.append(b.stop())  # B leaves: A holds every partition
            grows(a, "A alone again")
            sent = load.stop()
            wait_for(lambda: _spans(ch_store) == sent, what="every span sent stored")
            wait_for(lambda: _head(ch_store) == (sent, sent), what="every span signed")
        finally:
            outputs.append(a.stop())
    assert _assert_one_leaf_per_span(ch_store, signer) == sent
    assert not any("forked" in out for out in outputs), outputs
