"""Storage per span: bytes on disk in ClickHouse (chDB, the same engine) and OTLP bytes on the wire.

Sizing a cluster (docs/scaling.md) needs bytes per span as well as spans per CPU-second. This
stores ``bench.traffic``'s agent runs through the embedded sink (normalized, contents by hash),
merges every table's parts (``OPTIMIZE ... FINAL``, as background merges would in time) and
reports, per stored span: the OTLP protobuf size and the compressed and uncompressed bytes of
each table. Run: ``.venv/bin/python bench/storage.py [--runs 4000] [--mix light|realistic]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agentledger.pipeline.settings import StoreSettings  # noqa: E402
from agentledger.pipeline.sinks import IngestBatch  # noqa: E402
from agentledger.pipeline.sinks.embedded import EmbeddedSink  # noqa: E402
from agentledger.pipeline.store import migrate  # noqa: E402
from agentledger.pipeline.store.embedded import EmbeddedStore  # noqa: E402
from bench.traffic import LIGHT, REALISTIC, requests  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=4000, help="agent runs (5 spans each)")
    parser.add_argument("--mix", choices=("light", "realistic"), default="light")
    args = parser.parse_args()
    mix = REALISTIC if args.mix == "realistic" else LIGHT
    with tempfile.TemporaryDirectory() as data:
        store = EmbeddedStore(data, database="storage")
        migrate(store)
        sink = EmbeddedSink(store, StoreSettings().make_normalizer())
        wire = 0
        for request in requests(args.runs, runs_per_request=10, seed=5, mix=mix):
            spans = sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
            wire += request.ByteSize()
            sink.write(IngestBatch("acme", time.time_ns(), request, spans))
        sink.close()
        tables = store.query_rows(
            "SELECT DISTINCT table FROM system.parts WHERE database = 'storage' AND active"
        )
        for row in tables:
            store.command(f"OPTIMIZE TABLE {row['table']} FINAL")
        stored = store.query_scalar("SELECT count() FROM spans")
        rows = store.query_rows(
            "SELECT table, sum(bytes_on_disk) AS disk, sum(data_uncompressed_bytes) AS raw "
            "FROM system.parts WHERE database = 'storage' AND active "
            "GROUP BY table ORDER BY disk DESC"
        )
        store.close()
    disk = sum(r["disk"] for r in rows)
    print(f"mix {mix.name}: {stored} spans stored; OTLP protobuf {wire / stored:.0f} B/span")
    print(f"on disk, all tables: {disk / stored:.0f} B/span")
    for r in rows:
        if r["disk"] / stored >= 1:
            print(
                f"  {r['table']:<24} {r['disk'] / stored:8.0f} B/span on disk"
                f" ({r['raw'] / stored:.0f} uncompressed)"
            )


if __name__ == "__main__":
    main()
