"""Operators' actions on anomalies: acknowledge, mute, unmute, label as a true or false alarm.

Each action is a record (kind ``anomaly_label``, migration 0011) in the insert-only ``records``
table: nothing is updated, and the state of an anomaly is computed from the log:

* acked: some ``ack`` (or ``label``: labelling implies having looked) names it;
* label: the latest ``label`` naming it (``true_alarm`` / ``false_alarm``);
* muted: the latest ``mute`` / ``unmute`` of its *mute key* (its type and dimensions, not its
  hour) is a mute whose ``until`` is zero or later than now. Muting one anomaly therefore mutes
  the later anomalies of the same signature (the same principal's off-hours, the same tool's
  bursts): the alert receivers do not hear of them and ``list_anomalies`` marks them.

Labels are what ``bench/detection.py`` calls operator precision: the share of labelled anomalies
of each type labelled ``true_alarm``.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

from agentledger.pipeline.store import Store
from agentledger.pipeline.store.records import append_records
from agentledger.schemas.records import VIEWS, Actor, RecordKind, make_record

__all__ = [
    "ACTIONS",
    "LABELS",
    "anomaly_states",
    "find_anomaly",
    "label_anomaly",
    "label_precision",
    "muted_keys",
    "mute_key",
]

ACTIONS = ("ack", "mute", "unmute", "label")
LABELS = ("true_alarm", "false_alarm")
_VIEW = VIEWS[RecordKind.ANOMALY_LABEL]
_ZERO = datetime(1970, 1, 1, tzinfo=timezone.utc)


def mute_key(type_: str, dimensions: dict[str, str]) -> str:
    """What a mute covers: the anomaly's type and dimensions (not its window), hashed."""
    text = "\x1f".join([type_, *(f"{k}={v}" for k, v in sorted(dimensions.items()))])
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def find_anomaly(store: Store, tenant: str, ref: str) -> dict[str, Any] | None:
    """The stored anomaly whose id is ``ref`` or starts with it (8 characters at least, unique)."""
    if len(ref) < 8:
        return None
    rows = store.query_rows(
        "SELECT DISTINCT anomaly_id, type, dimensions FROM anomalies FINAL "
        "WHERE tenant = {tenant:String} AND startsWith(anomaly_id, {ref:String}) LIMIT 2",
        {"tenant": tenant, "ref": ref},
    )
    if len(rows) != 1:
        return None
    row = rows[0]
    return {
        "anomaly_id": row["anomaly_id"],
        "type": row["type"],
        "dimensions": dict(row["dimensions"]),
    }


def label_anomaly(
    store: Store,
    tenant: str,
    anomaly: dict[str, Any],
    action: str,
    *,
    label: str = "",
    note: str = "",
    until: datetime | None = None,
    actor: str = Actor.CLI,
    now: datetime | None = None,
) -> str:
    """Record ``action`` on ``anomaly`` (a record of ``list_anomalies``); return the action id."""
    if action not in ACTIONS:
        raise ValueError(f"action must be one of {ACTIONS}, not {action!r}")
    if (action == "label") != bool(label) or (label and label not in LABELS):
        raise ValueError(f"a label action takes a label in {LABELS}; other actions take none")
    at = now or datetime.now(timezone.utc)
    action_id = uuid.uuid4().hex
    record = make_record(
        RecordKind.ANOMALY_LABEL,
        tenant,
        {
            "action_id": action_id,
            "anomaly_id": anomaly["anomaly_id"],
            "action": action,
            "label": label,
            "mute_key": mute_key(anomaly["type"], anomaly["dimensions"])
            if action in ("mute", "unmute")
            else "",
            "until": until or _ZERO,
            "note": note,
            "created_at": at,
        },
        actor=actor,
        recorded_at_ns=int(at.timestamp() * 1e9),
    )
    append_records(store, [record])
    return action_id


def _rows(store: Store, tenant: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = store.query_rows(
        f"""
        SELECT anomaly_id, action, label, mute_key, toUnixTimestamp64Micro(until) AS until_us,
               toUnixTimestamp64Micro(created_at) AS at
        FROM {_VIEW} WHERE tenant = {{tenant:String}}
        ORDER BY created_at, action_id
        """,
        {"tenant": tenant},
    )
    return rows


def muted_keys(store: Store, tenant: str, now: datetime) -> set[str]:
    """Mute keys in force at ``now``."""
    latest: dict[str, dict[str, Any]] = {}
    for r in _rows(store, tenant):
        if r["action"] in ("mute", "unmute"):
            latest[r["mute_key"]] = r
    now_us = int(now.timestamp() * 1e6)
    return {
        k
        for k, r in latest.items()
        if r["action"] == "mute" and (r["until_us"] <= 0 or r["until_us"] > now_us)
    }


def anomaly_states(
    store: Store, tenant: str, anomalies: Iterable[dict[str, Any]], now: datetime | None = None
) -> dict[str, dict[str, Any]]:
    """``{anomaly_id: {"acked", "muted", "label"}}`` for these anomaly records."""
    rows = _rows(store, tenant)
    muted = muted_keys(store, tenant, now or datetime.now(timezone.utc)) if rows else set()
    acked = {r["anomaly_id"] for r in rows if r["action"] in ("ack", "label")}
    labels = {r["anomaly_id"]: r["label"] for r in rows if r["action"] == "label"}
    return {
        a["anomaly_id"]: {
            "acked": a["anomaly_id"] in acked,
            "muted": mute_key(a["type"], a["dimensions"]) in muted,
            "label": labels.get(a["anomaly_id"], ""),
        }
        for a in anomalies
    }


def label_precision(store: Store, tenant: str) -> dict[str, dict[str, float]]:
    """Per anomaly type: labelled true alarms, false alarms, and their precision."""
    rows = store.query_rows(
        f"""
        SELECT a.type AS type, l.label AS label, count() AS n
        FROM (SELECT anomaly_id, argMax(label, (created_at, action_id)) AS label FROM {_VIEW}
              WHERE tenant = {{tenant:String}} AND action = 'label' GROUP BY anomaly_id) AS l
        INNER JOIN (SELECT DISTINCT anomaly_id, type FROM anomalies WHERE tenant = {{tenant:String}}) AS a
        USING anomaly_id
        GROUP BY type, label
        """,
        {"tenant": tenant},
    )
    out: dict[str, dict[str, float]] = {}
    for r in rows:
        t = out.setdefault(r["type"], {"true_alarm": 0, "false_alarm": 0})
        t[r["label"]] = r["n"]
    for t in out.values():
        total = t["true_alarm"] + t["false_alarm"]
        t["precision"] = t["true_alarm"] / total if total else float("nan")
    return out
