"""The benchmarks' pure helpers: /proc stat parsing, a process tree's CPU, percentiles."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench.sender import parse_stat, percentile, tree_cpu_seconds

pytestmark = pytest.mark.unit


def _stat(pid: int, ppid: int, name: str, utime: int, stime: int, cut: int, cst: int) -> str:
    # pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime ...
    return f"{pid} ({name}) S {ppid} 1 1 0 -1 4194560 10 0 0 0 {utime} {stime} {cut} {cst} 20 0 4\n"


def test_a_stat_line_with_spaces_and_parentheses_in_the_name() -> None:
    assert parse_stat(_stat(42, 7, "python (worker) 2", 100, 20, 3, 4)) == (42, 7, 127)
    assert parse_stat(Path(f"/proc/{os.getpid()}/stat").read_text())[0] == os.getpid()


def test_a_tree_counts_live_descendants_only(tmp_path: Path) -> None:
    tree = {
        10: _stat(10, 1, "phoenix", 100, 50, 30, 0),  # 30 ticks of reaped children
        11: _stat(11, 10, "worker", 200, 0, 0, 0),
        12: _stat(12, 11, "grand child", 5, 5, 0, 0),
        20: _stat(20, 1, "other", 999, 999, 0, 0),
    }
    for pid, text in tree.items():
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "stat").write_text(text)
    (tmp_path / "self").mkdir()  # not a pid: skipped
    (tmp_path / "30").mkdir()  # exited while listed: no stat file, skipped
    ticks = os.sysconf("SC_CLK_TCK")
    assert tree_cpu_seconds(10, tmp_path) == pytest.approx(390 / ticks)
    assert tree_cpu_seconds(11, tmp_path) == pytest.approx(210 / ticks)
    assert tree_cpu_seconds(99, tmp_path) == 0


def test_percentiles_follow_the_ingest_benchmark() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 51 and percentile(values, 0.99) == 100
    assert percentile([3.0], 0.99) == 3.0
