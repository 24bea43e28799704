"""Output files of an export: one per split, written incrementally, checksummed as they grow.

Files are written under a ``.partial`` name and renamed when complete, so a
directory never shows a half-written file under its final name.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import IO, Any, Final

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

__all__ = [
    "CHAT_PARQUET_SCHEMA",
    "MESSAGES_ARROW_TYPE",
    "MembersFile",
    "ParquetFiles",
    "SplitFiles",
    "sha256_file",
]

_PARTIAL: Final = ".partial"


class _Checksummed:
    """A binary file written under ``name.partial``, its SHA-256 and size kept as it grows."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._tmp = path.with_name(path.name + _PARTIAL)
        self._fh: IO[bytes] = open(self._tmp, "wb", buffering=1 << 20)
        self._sha = hashlib.sha256()
        self.bytes = 0
        self.rows = 0

    def write(self, data: bytes, rows: int = 1) -> None:
        self._fh.write(data)
        self._sha.update(data)
        self.bytes += len(data)
        self.rows += rows

    def close(self) -> dict[str, Any]:
        self._fh.close()
        os.replace(self._tmp, self.path)
        return {"path": self.path.name, "bytes": self.bytes, "sha256": self._sha.hexdigest()}

    def abort(self) -> None:
        self._fh.close()
        self._tmp.unlink(missing_ok=True)


class SplitFiles:
    """JSON Lines, one file per split (``train.jsonl``, ``validation.jsonl``), opened on first use."""

    def __init__(self, out_dir: Path, suffix: str = ".jsonl") -> None:
        self.out_dir = out_dir
        self.suffix = suffix
        self._files: dict[str, _Checksummed] = {}

    def write(self, split: str, line: bytes) -> None:
        f = self._files.get(split)
        if f is None:
            f = self._files[split] = _Checksummed(self.out_dir / f"{split}{self.suffix}")
        f.write(line)

    def close(self) -> list[dict[str, Any]]:
        out = []
        for split, f in sorted(self._files.items()):
            info = f.close()
            out.append({**info, "split": split, "examples": f.rows})
        return out

    def abort(self) -> None:
        for f in self._files.values():
            f.abort()


_TOOL_CALL = pa.struct(
    [
        pa.field("id", pa.string()),
        pa.field("type", pa.string()),
        pa.field(
            "function",
            pa.struct([pa.field("name", pa.string()), pa.field("arguments", pa.string())]),
        ),
    ]
)
MESSAGES_ARROW_TYPE: Final = pa.list_(
    pa.struct(
        [
            pa.field("role", pa.string()),
            pa.field("content", pa.string()),
            pa.field("name", pa.string()),
            pa.field("tool_call_id", pa.string()),
            pa.field("tool_calls", pa.list_(_TOOL_CALL)),
            pa.field("images", pa.list_(pa.string())),
        ]
    )
)
"""OpenAI chat messages as Arrow: content is text (image parts listed in ``images``)."""

CHAT_PARQUET_SCHEMA: Final = pa.schema(
    [
        pa.field("id", pa.string()),
        pa.field("messages", MESSAGES_ARROW_TYPE),
        pa.field("tools", pa.string()),
        pa.field("span_id", pa.string()),
        pa.field("trace_id", pa.string()),
        pa.field("split", pa.string()),
    ]
)
"""Parquet rows of a chat dataset: ``messages`` as TRL and Hugging Face expect, ``tools`` as JSON
text (schemas of any shape), and lineage."""


def _arrow_message(m: dict[str, Any]) -> dict[str, Any]:
    content = m.get("content")
    images: list[str] = []
    if isinstance(content, list):
        images = [p["image_url"]["url"] for p in content if p.get("type") == "image_url"]
        content = "\n".join(p["text"] for p in content if p.get("type") == "text")
    return {
        "role": m["role"],
        "content": content,
        "name": m.get("name"),
        "tool_call_id": m.get("tool_call_id"),
        "tool_calls": m.get("tool_calls"),
        "images": images,
    }


class ParquetFiles:
    """Parquet, one file per split, rows buffered and written as row groups of ``row_group`` rows."""

    def __init__(self, out_dir: Path, row_group: int = 5_000) -> None:
        self.out_dir = out_dir
        self.row_group = row_group
        self._writers: dict[str, tuple[pq.ParquetWriter, Path, Path]] = {}
        self._buffers: dict[str, list[dict[str, Any]]] = {}
        self._rows: dict[str, int] = {}

    def write(
        self, split: str, example_id: str, example: dict[str, Any], span_id: str, trace_id: str
    ) -> None:
        tools = example.get("tools")
        buf = self._buffers.setdefault(split, [])
        buf.append(
            {
                "id": example_id,
                "messages": [_arrow_message(m) for m in example["messages"]],
                "tools": orjson.dumps(tools).decode() if tools else None,
                "span_id": span_id,
                "trace_id": trace_id,
                "split": split,
            }
        )
        if len(buf) >= self.row_group:
            self._flush(split)

    def _flush(self, split: str) -> None:
        buf = self._buffers.get(split)
        if not buf:
            return
        if split not in self._writers:
            path = self.out_dir / f"{split}.parquet"
            tmp = path.with_name(path.name + _PARTIAL)
            self._writers[split] = (
                pq.ParquetWriter(tmp, CHAT_PARQUET_SCHEMA, compression="zstd"),
                tmp,
                path,
            )
        self._writers[split][0].write_table(pa.Table.from_pylist(buf, schema=CHAT_PARQUET_SCHEMA))
        self._rows[split] = self._rows.get(split, 0) + len(buf)
        self._buffers[split] = []

    def close(self) -> list[dict[str, Any]]:
        for split in list(self._buffers):
            self._flush(split)
        out = []
        for split, (writer, tmp, path) in sorted(self._writers.items()):
            writer.close()
            os.replace(tmp, path)
            out.append(
                {
                    "path": path.name,
                    "bytes": path.stat().st_size,
                    "sha256": sha256_file(path),
                    "split": split,
                    "examples": self._rows[split],
                }
            )
        return out

    def abort(self) -> None:
        for writer, tmp, _ in self._writers.values():
            writer.close()
            tmp.unlink(missing_ok=True)


class MembersFile:
    """``members.jsonl``: one line per (span, example) - the lineage the store records too."""

    NAME: Final = "members.jsonl"

    def __init__(self, out_dir: Path) -> None:
        self._file = _Checksummed(out_dir / self.NAME)

    def write(self, span_id: str, trace_id: str, example_hash: str, split: str, role: str) -> None:
        self._file.write(
            orjson.dumps(
                {
                    "span_id": span_id,
                    "trace_id": trace_id,
                    "example_hash": example_hash,
                    "split": split,
                    "role": role,
                }
            )
            + b"\n"
        )

    @property
    def rows(self) -> int:
        return self._file.rows

    def close(self) -> dict[str, Any]:
        return {**self._file.close(), "rows": self._file.rows, "role": "lineage"}

    def abort(self) -> None:
        self._file.abort()


def sha256_file(path: Path) -> str:
    """SHA-256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
