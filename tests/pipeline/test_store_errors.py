"""Which store errors are worth retrying: the engine's "not now" (full disk, read-only, out of
memory, too many parts) is retryable on both stores, so it is answered 503 or retried by the
consumer, never taken for bad data (a 400, or the dead-letter topic)."""

from __future__ import annotations

import pytest
from clickhouse_connect.driver.exceptions import DatabaseError

from agentledger.pipeline.store import StoreRejected, StoreUnavailable
from agentledger.pipeline.store.base import retryable_reason
from agentledger.pipeline.store.clickhouse import _translate as server_translate
from agentledger.pipeline.store.embedded import _translate as embedded_translate


@pytest.mark.parametrize(
    ("message", "why"),
    [
        (
            "Code: 243. DB::Exception: Cannot reserve 1.00 MiB, not enough space. (NOT_ENOUGH_SPACE)",
            "out of disk space",
        ),
        (
            "Code: 242. DB::Exception: Table is in readonly mode. (TABLE_IS_READ_ONLY)",
            "the table is read-only",
        ),
        (
            "Code: 241. DB::Exception: Memory limit (total) exceeded. (MEMORY_LIMIT_EXCEEDED)",
            "out of memory",
        ),
        (
            "Code: 252. DB::Exception: Too many parts (3000). (TOO_MANY_PARTS)",
            "too many parts waiting to merge",
        ),
        ("Cannot open file /data/x.bin: No space left on device", "out of disk space"),
        ("Cannot create directory: Read-only file system", "the data directory is read-only"),
        ("Code: 62. DB::Exception: Syntax error: failed at position 1. (SYNTAX_ERROR)", None),
        ("Code: 53. DB::Exception: Type mismatch. (TYPE_MISMATCH)", None),
    ],
)
def test_retryable_reason(message: str, why: str | None) -> None:
    assert retryable_reason(message) == why
    expected = StoreRejected if why is None else StoreUnavailable
    assert isinstance(embedded_translate(RuntimeError(message), ":memory:"), expected)
    assert isinstance(server_translate(DatabaseError(message)), expected)
