"""``patterns --new`` and ``anomalies ack | mute | unmute | label``: unexpected use as a product view.

Kept apart from ``usage.py`` (the listing commands): these are what an operator does with a
detection. The actions append records of kind ``anomaly_label``
(``agentledger.pipeline.derive.labels``); they run against a data directory or ClickHouse
(``--data-dir``), as the collector's route set has no route for them yet.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import typer
from rich.table import Table

from agentledger.cli import render
from agentledger.cli._common import (
    ApiKeyOpt,
    DataDirOpt,
    JsonOpt,
    TenantOpt,
    UrlOpt,
    ask,
    connect,
    fail,
    print_json,
)
from agentledger.schemas.read import NewUse

__all__ = ["new_use_render", "register_actions"]


def _first(ids: list[str]) -> str:
    return ids[0] if ids else ""


def new_use_render(new: NewUse) -> None:
    """``patterns --new``: one row per new thing, with what it may mean."""
    console = render.console()
    if new.baseline_empty:
        console.print("[dim]No traffic in the baseline window: nothing can be called new.[/dim]")
        return
    table = Table(
        title=f"New this window {new.window[0][:16]} .. {new.window[1][:16]} "
        f"(baseline from {new.baseline[0][:16]})",
        title_justify="left",
    )
    for col in ("what", "value", "traces", "first seen", "example trace", "description"):
        table.add_column(col)
    for s in new.sequences:
        table.add_row(
            "sequence",
            f"{s.agent}: {' > '.join(s.sequence) or '(no tools)'}",
            str(s.traces),
            s.first_seen[:16],
            _first(s.example_trace_ids),
            s.description,
        )
    for nt in new.topics:
        table.add_row(
            "topic",
            ", ".join(nt.terms[:5]),
            str(nt.traces),
            "",
            _first(nt.example_trace_ids),
            nt.description,
        )
    for what, entities in (
        ("principal", new.principals),
        ("model", new.models),
        ("tool", new.tools),
        ("agent", new.agents),
        ("provider", new.providers),
    ):
        for e in entities:
            table.add_row(
                what,
                e.value,
                str(e.traces),
                e.first_seen[:16],
                _first(e.example_trace_ids),
                e.description,
            )
    console.print(table if table.row_count else "[green]Nothing new this window.[/green]")


def _hours(text: str) -> timedelta:
    unit = {"m": 60, "h": 3600, "d": 86400}.get(text[-1:])
    if unit is None or not text[:-1].isdigit():
        fail(f"--for takes a span such as 30m, 2h or 7d, not {text!r}")
    return timedelta(seconds=int(text[:-1]) * unit)


def register_actions(anomalies_app: typer.Typer) -> None:
    """Add ``ack``, ``mute``, ``unmute`` and ``label`` to ``agentledger anomalies``."""

    def act(
        action: str,
        ref: str,
        *,
        label: str = "",
        note: str = "",
        until: datetime | None = None,
        url: str,
        data_dir: str | None,
        api_key: str | None,
        tenant: str,
        as_json: bool,
    ) -> None:
        client = connect(url, data_dir, api_key, tenant)
        done = ask(
            client,
            lambda c: c.anomaly_action(ref, action, label=label, note=note, until=until),
        )
        if as_json:
            print_json(done)
        else:
            what = f"{action} ({label})" if label else action
            render.console().print(f"{what}: {done.type} {done.anomaly_id} {done.dimensions}")

    RefArg = typer.Argument(..., help="Anomaly id (or its first 8+ characters).")
    NoteOpt = typer.Option("", "--note", help="Why (kept with the record).")

    @anomalies_app.command("ack")
    def ack(
        ref: str = RefArg,
        note: str = NoteOpt,
        url: str = UrlOpt,
        data_dir: str | None = DataDirOpt,
        api_key: str | None = ApiKeyOpt,
        tenant: str = TenantOpt,
        as_json: bool = JsonOpt,
    ) -> None:
        """Acknowledge an anomaly: someone is on it."""
        act(
            "ack",
            ref,
            note=note,
            url=url,
            data_dir=data_dir,
            api_key=api_key,
            tenant=tenant,
            as_json=as_json,
        )

    @anomalies_app.command("mute")
    def mute(
        ref: str = RefArg,
        for_: str | None = typer.Option(
            None, "--for", help="Mute this long (30m, 2h, 7d); default until unmuted."
        ),
        note: str = NoteOpt,
        url: str = UrlOpt,
        data_dir: str | None = DataDirOpt,
        api_key: str | None = ApiKeyOpt,
        tenant: str = TenantOpt,
        as_json: bool = JsonOpt,
    ) -> None:
        """Mute an anomaly's signature (type and dimensions): later ones are stored but not alerted."""
        until = datetime.now(timezone.utc) + _hours(for_) if for_ else None
        act(
            "mute",
            ref,
            note=note,
            until=until,
            url=url,
            data_dir=data_dir,
            api_key=api_key,
            tenant=tenant,
            as_json=as_json,
        )

    @anomalies_app.command("unmute")
    def unmute(
        ref: str = RefArg,
        note: str = NoteOpt,
        url: str = UrlOpt,
        data_dir: str | None = DataDirOpt,
        api_key: str | None = ApiKeyOpt,
        tenant: str = TenantOpt,
        as_json: bool = JsonOpt,
    ) -> None:
        """Lift the mute of an anomaly's signature."""
        act(
            "unmute",
            ref,
            note=note,
            url=url,
            data_dir=data_dir,
            api_key=api_key,
            tenant=tenant,
            as_json=as_json,
        )

    @anomalies_app.command("label")
    def label(
        ref: str = RefArg,
        verdict: str = typer.Argument(..., help="true (a real problem) or false (a false alarm)."),
        note: str = NoteOpt,
        url: str = UrlOpt,
        data_dir: str | None = DataDirOpt,
        api_key: str | None = ApiKeyOpt,
        tenant: str = TenantOpt,
        as_json: bool = JsonOpt,
    ) -> None:
        """Label an anomaly a true or a false alarm (labels give precision per type)."""
        if verdict not in ("true", "false"):
            fail("the verdict is true or false")
        act(
            "label",
            ref,
            label=f"{verdict}_alarm",
            note=note,
            url=url,
            data_dir=data_dir,
            api_key=api_key,
            tenant=tenant,
            as_json=as_json,
        )
