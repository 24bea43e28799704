"""Charts of usage time series: PNG through matplotlib, or a self-contained HTML page (inline SVG).

matplotlib is optional: ``.html`` never needs it; ``.png`` needs it and says
so when it is missing. The HTML page has no scripts and no external assets.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

__all__ = ["write_plot", "series", "PlotError"]

_COLOURS = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)


class PlotError(Exception):
    """The chart cannot be written (unknown format, matplotlib missing for PNG)."""


def series(
    rows: list[dict[str, Any]], dims: Sequence[str], metric: str
) -> tuple[list[str], dict[str, list[float]]]:
    """(sorted buckets, label -> values per bucket, 0 where a group had no row)."""
    buckets = sorted({r["bucket"] for r in rows})
    index = {b: i for i, b in enumerate(buckets)}
    out: dict[str, list[float]] = {}
    for r in rows:
        label = " / ".join(str(r[d]) or "(none)" for d in dims) or "all"
        values = out.setdefault(label, [0.0] * len(buckets))
        values[index[r["bucket"]]] = float(r.get(metric) or 0.0)
    return buckets, out


def write_plot(
    path: str, rows: list[dict[str, Any]], dims: Sequence[str], metric: str, title: str
) -> str:
    """Write the chart; return the format written (``png`` or ``html``)."""
    suffix = Path(path).suffix.lower()
    buckets, lines = series(rows, dims, metric)
    if suffix in (".html", ".htm"):
        Path(path).write_text(_html(buckets, lines, metric, title), encoding="utf-8")
        return "html"
    if suffix == ".png":
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError as exc:
            raise PlotError(
                "PNG charts need matplotlib (pip install matplotlib); or write FILE.html"
            ) from exc
        times = [datetime.fromisoformat(b.replace("Z", "+00:00")) for b in buckets]
        fig, ax = plt.subplots(figsize=(10, 4.5), dpi=100)
        for label, values in lines.items():
            ax.plot(times, values, marker="o", markersize=3, linewidth=1.5, label=label)  # type: ignore[arg-type]
        ax.set_title(title)
        ax.set_ylabel(metric)
        ax.set_xlabel("UTC")
        ax.grid(True, alpha=0.3)
        if lines:
            ax.legend(fontsize=8, loc="upper left")
        fig.autofmt_xdate()
        fig.tight_layout()
        fig.savefig(path)
        plt.close(fig)
        return "png"
    raise PlotError(
        f"--plot writes .png or .html files, not {suffix or 'a file without extension'}"
    )


def _html(buckets: list[str], lines: dict[str, list[float]], metric: str, title: str) -> str:
    width, height, left, bottom, top, right = 900, 380, 70, 50, 30, 20
    top_value = max((v for values in lines.values() for v in values), default=0.0) or 1.0
    n = max(len(buckets) - 1, 1)

    def x(i: int) -> float:
        return left + (width - left - right) * i / n

    def y(v: float) -> float:
        return height - bottom - (height - bottom - top) * v / top_value

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
        f'font-size="11">',
        f'<line x1="{left}" y1="{height - bottom}" x2="{width - right}" y2="{height - bottom}" stroke="#444"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{height - bottom}" stroke="#444"/>',
    ]
    for frac in (0.0, 0.25, 0.5, 0.75, 1.0):
        v = top_value * frac
        parts.append(f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{v:.4g}</text>')
        parts.append(
            f'<line x1="{left}" y1="{y(v):.1f}" x2="{width - right}" y2="{y(v):.1f}" stroke="#eee"/>'
        )
    step = max(1, len(buckets) // 8)
    for i in range(0, len(buckets), step):
        parts.append(
            f'<text x="{x(i):.1f}" y="{height - bottom + 16}" text-anchor="middle">'
            f"{html.escape(buckets[i][5:16].replace('T', ' '))}</text>"
        )
    for j, (label, values) in enumerate(lines.items()):
        colour = _COLOURS[j % len(_COLOURS)]
        points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(values))
        parts.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{points}"/>'
        )
        parts.append(
            f'<text x="{left + 8}" y="{top + 14 * (j + 1)}" fill="{colour}">{html.escape(label)}</text>'
        )
    parts.append("</svg>")
    rows = "".join(
        f"<tr><td>{html.escape(b)}</td>"
        + "".join(f"<td>{lines[label][i]:.6g}</td>" for label in lines)
        + "</tr>"
        for i, b in enumerate(buckets)
    )
    head = "".join(f"<th>{html.escape(label)}</th>" for label in lines)
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;margin:24px}table{border-collapse:collapse;font-size:12px}"
        "td,th{border:1px solid #ddd;padding:2px 6px;text-align:right}</style></head><body>"
        f"<h2>{html.escape(title)}</h2><p>{html.escape(metric)} per bucket (UTC)</p>{''.join(parts)}"
        f"<table><tr><th>bucket</th>{head}</tr>{rows}</table></body></html>"
    )
