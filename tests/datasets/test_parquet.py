"""Parquet exports round-trip through the real Hugging Face ``datasets`` library."""

from __future__ import annotations

import json

import datasets

from agentledger.pipeline.services.datasets import ExportRequest, export_dataset
from tests.datasets import otlp
from tests.datasets.conftest import read_lines


def _strip(messages: list[dict]) -> list[dict]:
    """Arrow rows carry every struct field; keep the ones a message actually set."""
    out = []
    for m in messages:
        kept = {k: v for k, v in m.items() if v is not None and k != "images"}
        if m.get("tool_calls") is None:
            kept.pop("tool_calls", None)
        out.append(kept)
    return out


def test_parquet_loads_with_hugging_face_datasets(server, run_agent, tmp_path) -> None:
    run_agent()
    otlp.send(
        server.url,
        [otlp.chat_span(f"Parquet question {i}?", f"Parquet answer {i}.") for i in range(12)],
    )
    store = server.store
    pq_manifest = export_dataset(
        store, "default", tmp_path / "pq", ExportRequest(format="parquet", validation_fraction=0.25)
    )
    jsonl_manifest = export_dataset(
        store, "default", tmp_path / "jsonl", ExportRequest(validation_fraction=0.25)
    )
    splits = pq_manifest["counts"]["splits"]
    assert set(splits) == {"train", "validation"} and sum(splits.values()) == 14

    loaded = datasets.load_dataset(
        "parquet",
        data_files={split: str(tmp_path / "pq" / f"{split}.parquet") for split in splits},
        cache_dir=str(tmp_path / "hf-cache"),
    )
    assert {name: len(ds) for name, ds in loaded.items()} == splits
    train = loaded["train"]
    assert {"id", "messages", "tools", "span_id", "trace_id", "split"} <= set(train.column_names)

    # the same examples as the JSONL export, message for message
    by_id = {}
    for split in splits:
        for row in loaded[split]:
            assert row["split"] == split
            by_id[row["span_id"]] = row
    members = {
        json.loads(line)["span_id"]: json.loads(line)
        for line in read_lines(tmp_path / "jsonl" / "members.jsonl")
    }
    jsonl = {}
    for split in splits:
        for line, member in zip(
            read_lines(tmp_path / "jsonl" / f"{split}.jsonl"),
            [m for m in members.values() if m["split"] == split],
        ):
            jsonl[member["span_id"]] = json.loads(line)
    assert set(by_id) == set(jsonl) == set(members)
    for span_id, row in by_id.items():
        assert _strip(row["messages"]) == jsonl[span_id]["messages"]
        assert (json.loads(row["tools"]) if row["tools"] else None) == jsonl[span_id].get("tools")
        assert row["id"] == members[span_id]["example_hash"]
    tool_rows = [r for r in by_id.values() if r["tools"]]
    assert (
        len(tool_rows) == 2
        and json.loads(tool_rows[0]["tools"])[0]["function"]["name"] == "lookup_journal_entry"
    )
    assert pq_manifest["content_digest"] == jsonl_manifest["content_digest"]
