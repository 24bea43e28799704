"""A full disk under the embedded store: requests get a retryable 503 that says so (never a 400,
which an exporter drops, nor a 500), no acknowledged span is lost, and once space is back the
same server takes requests again. The data directory lives on a small tmpfs mounted for the
test (root is needed to mount it; the test fails, not skips, without)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import httpx
import pytest

from bench.traffic import REALISTIC, requests
from tests.kafka.conftest import free_port
from tests.kafka.test_kafka_path import PB, wait_for

pytestmark = pytest.mark.slow


def _mount(where: Path, size: str, remount: bool = False) -> None:
    options = f"remount,size={size}" if remount else f"size={size}"
    out = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True, text=True
    )
    if out.returncode != 0:
        pytest.fail(f"mounting a {size} tmpfs needs root: {out.stderr.strip()}")


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_a_full_disk_answers_503_and_loses_no_acknowledged_span(tmp_path) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    _mount(disk, "40m")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "agentledger.cli", "serve", "--no-auth", "--port", str(port)]
        + ["--data-dir", str(disk / "data"), "--log-level", "warning"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    acked: list[str] = []
    refusals: list[httpx.Response] = []
    try:
        wait_for(lambda: _ready(url), what="serve on the small disk")
        with httpx.Client(timeout=120) as client:
            for req in requests(3000, runs_per_request=10, mix=REALISTIC, seed=151):
                response = client.post(
                    f"{url}/v1/traces", content=req.SerializeToString(), headers=PB
                )
                if response.status_code == 200:
                    acked += [s.trace_id.hex() for s in req.resource_spans[0].scope_spans[0].spans]
                    continue
                refusals.append(response)
                if len(refusals) >= 3:
                    break
            assert refusals, "the disk never filled up"
            for response in refusals:
                assert response.status_code == 503, response.text
                assert "out of disk space" in response.text
                assert int(response.headers["retry-after"]) >= 1
            _mount(disk, "400m", remount=True)  # space is back
            (again,) = requests(1, runs_per_request=1, seed=157)
            wait_for(
                lambda: (
                    client.post(
                        f"{url}/v1/traces", content=again.SerializeToString(), headers=PB
                    ).status_code
                    == 200
                ),
                what="requests taken again once space is back",
            )
            acked += [s.trace_id.hex() for s in again.resource_spans[0].scope_spans[0].spans]
    finally:
        server.terminate()
        server.wait(timeout=60)
        copy = Path(tempfile.mkdtemp()) / "data"
        if (disk / "data").exists():
            shutil.copytree(disk / "data", copy, symlinks=True)
        subprocess.run(["umount", str(disk)], check=False)
    count = textwrap.dedent(
        """
        import json, sys
        from agentledger.pipeline.store.embedded import EmbeddedStore
        with EmbeddedStore(sys.argv[1]) as store:
            rows = store.query_rows("SELECT DISTINCT trace_id FROM spans")
        print(json.dumps([r["trace_id"] for r in rows]))
        """
    )
    out = subprocess.run([sys.executable, "-c", count, str(copy)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    import json

    stored = set(json.loads(out.stdout))
    assert acked and set(acked) <= stored, f"{len(set(acked) - stored)} acknowledged traces lost"
